"""Family adapters of segmentation: ``seg`` (YOLOv8/YOLO11-seg: the detection TAL + ``v8SegmentationLoss``),
``seg26`` (YOLO26-seg: the mask-aware TAL + ``SegmentLoss26``) and ``seg26-o2o`` (YOLO26-seg's one-to-one branch:
topk 7, topk2 1).

GT masks are made as the trainer makes them (:mod:`yolotal.core.masks`): each image's polygons, normalised to the
original picture (taken before the pipeline's letterbox), resampled to 1000 points and mapped through the
letterbox in float32 (:func:`trainer_polygons`), filled and shrunk to imgsz / 4. With ``overlap_mask`` (the
config key, default True as in ultralytics) the trainer reorders each image's objects by mask area, largest
first, and keeps one index image: the GT slots of every stage follow that order, so the generic ``gt`` stage is
rewritten to it (``gt_order`` says which label row each slot holds).

Heads: the YOLOv8 layout (DFL boxes + class logits) plus ``Heads.extra`` ``mask_coef`` (b, nm, A) and
``protos`` (b, nm, mh, mw) (and ``semantic`` (b, nc, h, w) when a heads file has them); a ``--heads`` .npz keeps
them next to ``level0..`` under those names (:mod:`yolotal.inputs.seg_heads`).

Stages (after the generic anchors, decode, gt):
  seg_gt       gt_masks (b, M, H, W) bool, gt_mask_area (b, M) px, gt_order (b, M) label row of each slot (-1 pad)
  seg:   candidates, metrics, topk, conflicts, targets (the detection TAL, see tal_family)
  seg26: candidates, box_metrics (box_overlaps, box_metric), mask_iou (pair_image, pair_gt, pair_anchor,
         pair_mask_iou, pair_inter, pair_union, pair_pred_area, gt_mask_pixels, mask_k), metrics (overlaps =
         (u + mask IoU) / 2), topk, conflicts, targets
  loss         loss_box, loss_seg, loss_cls, loss_dfl, loss_sem (gain-weighted, as logged), raw_*, per anchor
               cls/box/dfl/seg, seg_per_gt (b, M)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .registry import register
from .tal_family import TaskAligned, record_selection, tal_params

MASK_RATIO = 4  # ultralytics' default mask_ratio: GT masks at imgsz / 4


# ------------------------------------------------------------------------------------------------ GT masks
def image_polygons(source_segments, labels, letterboxes: list, batch: int, imgsz: tuple[int, int]) -> list[list]:
    """Per image, its objects' pixel polygons in label order, as the trainer's masks see them.

    source_segments: each label row's polygon (k, 2) normalised to its original picture; letterboxes: per image
    its Letterbox or None (then the normalised polygon is taken as an imgsz picture). A row without a polygon is
    an InputError naming its file and line.
    """
    from ..core.masks import trainer_polygons

    n = len(labels)
    segs = list(source_segments) if source_segments else [None] * n
    for k in range(n):
        if segs[k] is None or np.asarray(segs[k]).reshape(-1, 2).shape[0] < 3:
            f, ln = labels.origin[k]
            raise InputError("a segment task needs polygon rows (cls x1 y1 x2 y2 x3 y3 ..., at least 3 points): "
                             "this row has no polygon, so it has no GT mask (ultralytics refuses such a dataset)",
                             f, ln)
    h, w = imgsz
    out: list[list] = []
    for i in range(batch):
        rows = np.nonzero(labels.batch_idx == i)[0]
        polys = [segs[k] for k in rows]
        lb = letterboxes[i] if i < len(letterboxes) else None
        if not polys:
            out.append([])
        elif lb is not None:
            out.append(list(trainer_polygons(polys, (lb.w0, lb.h0), (lb.r, lb.r), (lb.left, lb.top))))
        else:
            out.append(list(trainer_polygons(polys, (w, h))))
    return out


def seg_targets(trace, inputs, cfg) -> torch.Tensor:
    """GT masks (b, M, H, W) bool into a ``seg_gt`` stage, and the ``gt`` stage (and ``trace.gt_origin``)
    rewritten to the trainer's slot order. Returns the masks."""
    from ..core.masks import batch_gt_masks

    b = trace.batch
    polys = image_polygons(inputs.source_segments, inputs.labels, inputs.letterboxes, b, cfg.imgsz)
    masks, orders = batch_gt_masks(polys, cfg.imgsz, MASK_RATIO, cfg.overlap_mask)
    gl, gb, mg = trace["gt_labels"], trace["gt_bboxes"], trace["mask_gt"]
    m = gl.shape[1]
    perm = torch.arange(m).repeat(b, 1)
    order = torch.full((b, m), -1, dtype=torch.int64)
    for i, o in enumerate(orders):
        if len(o):
            perm[i, : len(o)] = torch.from_numpy(o)
            order[i, : len(o)] = torch.from_numpy(o)
            trace.gt_origin[i] = [trace.gt_origin[i][int(j)] for j in o]
    gather = lambda x: x.gather(1, perm[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
    how = ("by mask area, largest first (overlap_mask)" if cfg.overlap_mask else "label order (overlap_mask off)")
    trace.add("gt", f"Padded ground truth, slots in the trainer's order: {how}",
              gt_labels=gather(gl), gt_bboxes=gather(gb), mask_gt=gather(mg))
    gm = torch.from_numpy(masks)
    if gm.shape[1] < m:  # no polygons at all in a batch with padding slots (cannot happen with labels) -- keep M
        gm = torch.cat((gm, torch.zeros(b, m - gm.shape[1], *gm.shape[2:], dtype=torch.bool)), 1)
    area = gm.flatten(2).sum(-1)
    trace.add("seg_gt", f"GT masks at imgsz / {MASK_RATIO} ({'one index image per picture, smaller masks on top' if cfg.overlap_mask else 'one mask per object'})",
              gt_masks=gm, gt_mask_area=area, gt_order=order)
    for i in range(b):
        for j in range(trace.n_gts(i)):
            if int(area[i, j]) == 0:
                f, ln = trace.gt_origin[i][j]
                trace.warnings.append(
                    f"{f}:{ln}: GT {j} of image {i} has an empty mask at {gm.shape[-1]}×{gm.shape[-2]} (its polygon "
                    f"covers no mask pixel{' not covered by a smaller object' if cfg.overlap_mask else ''}): its "
                    "positives learn an all-background mask")
    return gm


def _tal_inputs(trace, inputs):
    ps, pb, anc = inputs.tal_inputs[:3]
    return (ps, pb, anc, trace["gt_labels"], trace["gt_bboxes"], trace["mask_gt"])


def _seg_extra(heads, source: str) -> dict:
    from ..inputs.seg_heads import check_seg_extra

    return check_seg_extra(heads.extra, heads, None, source)


def record_seg_heads(trace, inputs) -> dict:
    """The heads' mask coefficients (anchor-major) and prototypes (and semantic logits) into a ``seg_heads``
    stage: the loss and the renderers read them from the trace."""
    ex = _seg_extra(inputs.heads, inputs.heads.source)
    t = {"mask_coef": ex["mask_coef"].permute(0, 2, 1).contiguous(), "protos": ex["protos"]}
    if "semantic" in ex:
        t["semantic"] = ex["semantic"]
    trace.add("seg_heads", "Mask coefficients (b, A, nm) and prototypes (b, nm, mh, mw)", **t)
    return t


# ------------------------------------------------------------------------------------------------ families
@register
class Segment(TaskAligned):
    """YOLOv8/YOLO11-seg: the detection TAL on the seg heads' boxes and scores, and v8SegmentationLoss."""

    name = "seg"
    task = "segment"  # profiles: the detection TAL's, by ultralytics release (a checkpoint's own with auto)
    loss_name = "v8SegmentationLoss"
    heads_title = "segmentation"
    pairs_fallback = False
    head_classes = ("Segment",)

    # ---------------------------------------------------------------- inputs
    def load_heads(self, path, cfg):
        from ..inputs.heads import Heads, load_heads
        from ..inputs.seg_heads import read_seg_extra

        p = Path(path)
        h = load_heads(p, cfg.reg_max, cfg.nc)
        extra = dict(h.extra)
        if p.suffix == ".npz":
            extra.update(read_seg_extra(p))
        h = Heads(h.boxes, h.scores, h.grids, h.source, extra)
        extra.update(_seg_extra(h, str(p)))
        return h

    def make_heads(self, cfg, labels, heads, batch):
        if heads is not None:
            _seg_extra(heads, heads.source)
            return heads
        from ..core.anchors import levels_for, make_anchors
        from ..core.masks import polygon_masks
        from ..inputs.heads import Heads
        from ..inputs.seg_heads import anchor_owners, synthetic_seg_randn, synthetic_seg_trained
        from ..pipeline import make_heads, pad_targets

        base = make_heads(cfg, labels, None, batch)
        h, w = cfg.imgsz
        size = (h // MASK_RATIO, w // MASK_RATIO)
        if cfg.heads.kind == "randn":
            extra = synthetic_seg_randn(base, size, cfg.heads.seed)
        else:  # near the GT masks (drawn from the letterboxed polygons: good enough for synthetic heads)
            b = base.batch
            gl, gb, mg = pad_targets(labels, b, cfg.imgsz)
            m = gb.shape[1]
            gm = torch.zeros(b, m, *size, dtype=torch.bool)
            slot = np.zeros(b, np.int64)
            for k in range(len(labels)):
                i = int(labels.batch_idx[k])
                seg = labels.segments[k] if labels.segments else None
                if seg is not None:
                    px = np.asarray(seg, np.float32) * np.array([w, h], np.float32)
                    gm[i, slot[i]] = torch.from_numpy(polygon_masks(cfg.imgsz, [px], MASK_RATIO)[0].astype(bool))
                slot[i] += 1
            anc, st = make_anchors(levels_for(list(base.grids), cfg.strides))
            owners = anchor_owners(anc * st, gb, mg[..., 0].bool())
            extra = synthetic_seg_trained(base, gm, owners, cfg.heads.seed)
        return Heads(base.boxes, base.scores, base.grids,
                     f"{base.source} + {cfg.heads.kind} mask coefficients and prototypes (nm {extra['mask_coef'].shape[1]})",
                     extra)

    def model_heads(self, lm, images, source, branch):
        from ..inputs.heads import Heads, heads_from_object
        from ..inputs.model import raw_outputs
        from ..inputs.seg_heads import seg_extra_from_output

        try:  # the detect families' hint on the other branch does not apply (seg26 / seg26-o2o name them)
            from ..inputs.model import OTHER_BRANCH

            for hint in OTHER_BRANCH.values():
                source = source.replace(hint, "")
        except ImportError:
            pass
        raw = raw_outputs(lm, images, branch)
        if not isinstance(raw, dict) or not {"boxes", "scores", "feats"} <= set(raw):
            raise InputError("the model's head did not return 8.4's training dict (boxes, scores, feats, "
                             "mask_coefficient, proto): segment models need ultralytics 8.4", lm.path)
        heads = heads_from_object({k: raw[k] for k in ("boxes", "scores", "feats")}, source, lm.reg_max, lm.nc)
        try:
            extra = seg_extra_from_output(raw, branch)
        except InputError as e:
            raise InputError(e.args[0] if e.args else str(e), lm.path) from None
        return Heads(heads.boxes, heads.scores, heads.grids, heads.source, extra)

    # ---------------------------------------------------------------- stages
    def assign(self, trace, cfg, inputs) -> None:
        seg_targets(trace, inputs, cfg)
        record_seg_heads(trace, inputs)
        super().assign(trace, cfg, replace(inputs, tal_inputs=_tal_inputs(trace, inputs)))

    def loss(self, trace, cfg, inputs) -> None:
        seg_loss(trace, cfg, inputs)

    def params(self, cfg) -> dict:
        out = super().params(cfg)
        out.update(mask_ratio=MASK_RATIO, overlap_mask=cfg.overlap_mask)
        return out

    def loss_meta(self, cfg) -> dict:
        lo = cfg.loss
        return {"name": self.loss_name, "gains": {"box": lo.box, "cls": lo.cls, "dfl": lo.dfl, "seg": lo.box,
                                                  "sem": lo.box},
                "items": ["box_loss", "seg_loss", "cls_loss", "dfl_loss" if cfg.reg_max > 1 else "l1_loss", "sem_loss"],
                "overlap_mask": cfg.overlap_mask}

    # ---------------------------------------------------------------- render hooks
    def render_assign(self, trace, con, images, full) -> None:
        from ..render.seg import render_assign_v8

        render_assign_v8(trace, con, images, full)

    def render_loss(self, trace, con, images) -> None:
        from ..render.seg import render_loss

        render_loss(trace, con, images)

    def render_walk(self, trace, con, full) -> None:
        from ..render.seg import render_walk

        render_walk(trace, con, full)

    def legend(self, cfg) -> str:
        return cfg.assigner.profile


@register
class Segment26(Segment):
    """YOLO26-seg (one-to-many branch): SegTaskAlignedAssigner, overlap = (box CIoU + mask IoU) / 2 where the mask
    IoU is computed for each GT's 3·topk best box-metric pairs; SegmentLoss26."""

    name = "seg26"
    loss_name = "SegmentLoss26"
    head_classes = ("Segment26",)
    profiles = ("v8.4.0", "ultralytics")  # YOLO26 trains with ultralytics 8.4

    def assign(self, trace, cfg, inputs) -> None:
        from .seg_tal import assign, masks_at_proto_size

        gm = seg_targets(trace, inputs, cfg)
        ex = record_seg_heads(trace, inputs)
        coef, protos = ex["mask_coef"], ex["protos"]
        mh = protos.shape[-2]
        r = assign(*_tal_inputs(trace, inputs), coef, protos, masks_at_proto_size(gm, tuple(protos.shape[-2:])),
                   mh / cfg.imgsz[0], tal_params(cfg, inputs.nc))
        t = r.tal
        trace.add("candidates", "Candidates: anchor centres inside each GT", cand_bboxes=t.cand_bboxes,
                  mask_in_gts=t.mask_in_gts)
        trace.add("box_metrics", "Box metric s^alpha·u^beta + eps: ranks each GT's candidates for a mask IoU",
                  box_overlaps=r.box_overlaps, box_metric=r.box_metric)
        trace.add("mask_iou", f"Mask IoU of each GT's {r.mask_k} (3·topk) best box-metric candidates",
                  pair_image=r.pair_image, pair_gt=r.pair_gt, pair_anchor=r.pair_anchor, pair_mask_iou=r.pair_mask_iou,
                  pair_inter=r.pair_inter, pair_union=r.pair_union, pair_pred_area=r.pair_pred_area,
                  gt_mask_pixels=r.gt_area, mask_k=torch.tensor(r.mask_k))
        trace.add("metrics", "Alignment metric t = s^alpha · ((u + mask IoU) / 2)^beta",
                  bbox_scores=t.bbox_scores, overlaps=t.overlaps, align_metric=t.align_metric)
        record_selection(trace, t)

    def params(self, cfg) -> dict:
        out = super().params(cfg)
        out.update(overlap="(CIoU + mask IoU) / 2", mask_pairs_per_gt=3 * cfg.assigner.topk)
        return out

    def end_to_end(self, trace, gathered, epoch) -> None:
        """YOLO26-seg's E2ELoss (``loss --model``): the other branch's SegmentLoss26 on the same images, the branch
        weights at ``epoch`` (default: the checkpoint's; o2m from 0.8 at epoch 0 to 0.1 at the last), the weighted
        items and the logged ones (the one2one branch's). Stage ``e2e``."""
        if "loss_items" not in trace:
            return super().end_to_end(trace, gathered, epoch)
        other = "seg26" if self.model_branch == "one2one" else "seg26-o2o"
        self.both_branches(trace, gathered, epoch, other, "YOLO26-seg")

    def render_assign(self, trace, con, images, full) -> None:
        from ..render.seg import render_assign_26

        render_assign_26(trace, con, images, full)


@register
class Segment26OneToOne(Segment26):
    """YOLO26-seg's one-to-one branch: topk 7, topk2 1 (E2ELoss), the model's one2one heads."""

    name = "seg26-o2o"
    default_topk = 7
    default_topk2 = 1
    model_branch = "one2one"


# ------------------------------------------------------------------------------------------------ loss
def seg_loss(trace, cfg, inputs) -> None:
    """The segmentation loss stage from the targets in the trace (v8SegmentationLoss / SegmentLoss26: the same
    terms; the assignment differs)."""
    from ..loss_seg import segmentation_loss

    lo = cfg.loss
    gl, mg = trace["gt_labels"], trace["mask_gt"]
    fg, tgi = trace["fg_mask"], trace["target_gt_idx"]
    r = segmentation_loss(
        trace["pred_distri"], trace["pred_logits"], trace["pred_bboxes_grid"], trace["anchor_points"],
        trace["stride_tensor"], fg, tgi, trace["target_bboxes"], trace["target_scores"],
        trace["mask_coef"], trace["protos"], trace["gt_masks"], cfg.imgsz, cfg.reg_max,
        (lo.box, lo.cls, lo.dfl), semantic=trace["semantic"] if "semantic" in trace else None, gt_cls=gl[..., 0], valid=mg[..., 0].bool(),
    )
    d = r.det
    trace.add(
        "loss", f"Loss ({registry_loss_name(cfg)})",
        loss_box=d.loss_box, loss_seg=r.loss_seg, loss_cls=d.loss_cls, loss_dfl=d.loss_dfl, loss_sem=r.loss_sem,
        target_scores_sum=d.target_scores_sum, raw_box=d.raw_box, raw_seg=r.raw_seg, raw_cls=d.raw_cls,
        raw_dfl=d.raw_dfl, raw_sem=r.raw_sem, raw_sem_bce=r.raw_sem_bce, raw_sem_dice=r.raw_sem_dice,
        n_fg=torch.tensor(r.n_fg), has_semantic=torch.tensor(r.has_semantic),
        cls_per_anchor=d.cls_per_anchor, box_per_anchor=d.box_per_anchor, dfl_per_anchor=d.dfl_per_anchor,
        seg_per_anchor=r.seg_per_anchor, seg_bce_in_box=r.bce_sum_in_box, seg_box_area=r.box_area,
        seg_per_gt=r.seg_per_gt(tgi, fg, gl.shape[1]), ciou=d.ciou, dfl_target_ltrb=d.dfl_target_ltrb,
        dfl_clamped=d.dfl_clamped,
        loss_items=torch.stack([d.loss_box, r.loss_seg, d.loss_cls, d.loss_dfl, r.loss_sem]).float().detach(),
    )


def registry_loss_name(cfg) -> str:
    from . import registry

    return registry.get(cfg.assigner.name).loss_name


def loss_items(trace) -> dict[str, float]:
    """The loss items as ultralytics logs them, in its order: box, seg, cls, dfl (or l1), sem."""
    third = "dfl_loss" if trace.config.reg_max > 1 else "l1_loss"
    return {"box_loss": float(trace["loss_box"]), "seg_loss": float(trace["loss_seg"]),
            "cls_loss": float(trace["loss_cls"]), third: float(trace["loss_dfl"]), "sem_loss": float(trace["loss_sem"])}


# ------------------------------------------------------------------------------------------------ views
class _View:
    """Attribute access to trace tensors (the pure module's TALResult field names)."""

    def __init__(self, trace):
        self._t = trace

    def __getattr__(self, name):
        return self._t[name]


class SegView:
    """A SegTALResult read back from a trace (``candidates_of(image, gt)`` for the renderers)."""

    def __init__(self, trace):
        from .seg_tal import SegTALResult

        self.tal = _View(trace)
        self.box_overlaps, self.box_metric = trace["box_overlaps"], trace["box_metric"]
        self.mask_k = int(trace["mask_k"])
        self.pair_image, self.pair_gt, self.pair_anchor = trace["pair_image"], trace["pair_gt"], trace["pair_anchor"]
        self.pair_mask_iou = trace["pair_mask_iou"]
        self._cand = SegTALResult.candidates_of
        self._miou = SegTALResult.mask_iou_of

    def mask_iou_of(self, image: int, gt: int):
        return self._miou(self, image, gt)

    def candidates_of(self, image: int, gt: int):
        return self._cand(self, image, gt)


def predicted_masks_of(trace, image: int, anchors: torch.Tensor) -> torch.Tensor:
    """(k, mh, mw) bool predicted masks of some anchors of one image, cropped to their predicted boxes."""
    from .seg_tal import predicted_masks

    coef = trace["mask_coef"][image, anchors]  # (k, nm)
    proto = trace["protos"][image]
    scale = proto.shape[-2] / trace.config.imgsz[0]
    return predicted_masks(coef, proto, trace["pred_bboxes"][image, anchors] * scale)
