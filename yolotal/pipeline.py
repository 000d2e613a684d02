"""run(config, labels, heads) -> Trace: every stage of anchors -> decode -> assign -> loss, by name.

Renderers (terminal, export) only read the trace. Stage order and tensor names:

anchors     anchor_points (A,2) grid units, stride_tensor (A,1)
decode      pred_distri (b,A,4*reg_max) logits, pred_logits (b,A,nc), pred_ltrb (b,A,4) grid units,
            pred_bboxes_grid (b,A,4) grid xyxy, pred_bboxes (b,A,4) px xyxy, pred_scores (b,A,nc) sigmoid
gt          gt_labels (b,M,1), gt_bboxes (b,M,4) px xyxy, mask_gt (b,M,1)
candidates  cand_bboxes (b,M,4) px, mask_in_gts (b,M,A)
metrics     bbox_scores, overlaps, align_metric (b,M,A)
topk        topk_idxs (b,M,topk), mask_topk, mask_pos_topk (b,M,A)
conflicts   mask_multi (b,A), mask_pos (b,M,A)
  -- or, when the dense (b,M,A) tensors would exceed config.dense_budget_mb (trace.summarised says so):
pairs       pair_b, pair_m, pair_a (P,) candidate pairs; pair_s, pair_u, pair_t (P,); pair_topk, pair_pos (P,);
            mask_multi (b,A)
targets     fg_mask, target_gt_idx, target_labels (b,A), target_bboxes (b,A,4), target_scores (b,A,nc),
            pos_align_metrics, pos_overlaps (b,M), norm_align_metric (b,A)
loss        loss_box, loss_cls, loss_dfl (gain-weighted), target_scores_sum, cls/box/dfl_per_anchor (b,A) ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .assigners.tal import TALParams, assign, candidate_boxes
from .assigners.tal_sparse import assign_sparse
from .config import Config
from .core.anchors import Level, levels_for, make_anchors
from .core.boxes import xywh_to_xyxy
from .core.decode import dfl_distances, ltrb_to_xyxy
from .errors import InputError
from .inputs.heads import Heads, check_grids, synthetic_randn, synthetic_trained
from .inputs.labels import Labels, check_classes, with_batch
from .loss import detection_loss


DENSE_BYTES_PER_CELL = 32  # peak bytes per (image, GT, anchor) cell of the dense assignment and its stages


@dataclass
class Stage:
    name: str
    title: str
    tensors: dict[str, torch.Tensor]


@dataclass
class Trace:
    """The recorded pipeline. ``trace["overlaps"]`` finds a tensor in any stage."""

    config: Config
    levels: list[Level]
    labels: Labels
    heads_source: str
    gt_origin: list[list[tuple[str, int]]]  # per image, per real GT: (file, line)
    stages: dict[str, Stage] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    summarised: str = ""  # why the dense (b, M, A) stages were not built, when they were not
    pictures: list = field(default_factory=list)  # per image: (path, Letterbox) of its picture, or None
    notes: list[str] = field(default_factory=list)  # how the inputs were read (geometry, model): shown as info
    assigner_heads: str = ""  # simota / yolov5: the heads their assignment and loss read (heads_source: the v8 decode's)

    def add(self, name: str, title: str, **tensors: torch.Tensor) -> None:
        self.stages[name] = Stage(name, title, tensors)

    def __getitem__(self, key: str) -> torch.Tensor:
        for st in self.stages.values():
            if key in st.tensors:
                return st.tensors[key]
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return any(key in st.tensors for st in self.stages.values())

    def tensors(self) -> dict[str, torch.Tensor]:
        """All tensors of all stages, in stage order."""
        out: dict[str, torch.Tensor] = {}
        for st in self.stages.values():
            out.update(st.tensors)
        return out

    @property
    def batch(self) -> int:
        return int(self["pred_scores"].shape[0])

    def n_gts(self, image: int) -> int:
        return len(self.gt_origin[image])


def pad_targets(labels: Labels, batch: int, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels -> padded (gt_labels (b,M,1), gt_bboxes (b,M,4) px xyxy, mask_gt (b,M,1)), M = most GTs per image.

    Boxes are scaled to pixels first and converted to corners second, like the reference; a padding row is
    all zeros, and ``mask_gt`` is "xyxy sums to more than 0", the reference's rule.
    """
    counts = np.bincount(labels.batch_idx, minlength=batch) if len(labels) else np.zeros(batch, np.int64)
    m = int(counts.max()) if len(labels) else 0
    out = torch.zeros(batch, m, 5)
    slot = np.zeros(batch, np.int64)
    for i in range(len(labels)):
        bi = int(labels.batch_idx[i])
        out[bi, slot[bi], 0] = float(labels.cls[i])
        out[bi, slot[bi], 1:] = torch.from_numpy(labels.xywhn[i])
        slot[bi] += 1
    h, w = imgsz
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    out[..., 1:5] = xywh_to_xyxy(out[..., 1:5] * scale)
    gt_labels, gt_bboxes = out.split((1, 4), 2)
    mask_gt = (gt_bboxes.sum(2, keepdim=True) > 0).float()
    return gt_labels, gt_bboxes, mask_gt


def make_heads(cfg: Config, labels: Labels, heads: Heads | None, batch: int | None = None) -> Heads:
    """The given heads, or synthetic ones of the configured kind (``batch`` images: by default
    ``heads.batch`` of the config, else as many as the labels describe)."""
    if heads is not None:
        return heads
    batch = batch or cfg.heads.batch or max(labels.n_images, 1)
    if cfg.heads.kind == "randn":
        return synthetic_randn(batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.heads.seed)
    gt = xywh_to_xyxy(torch.from_numpy(labels.xywhn) * torch.tensor([cfg.imgsz[1], cfg.imgsz[0]] * 2)).numpy()
    return synthetic_trained(
        batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.strides, cfg.heads.seed, labels.batch_idx, labels.cls, gt
    )


def run(cfg: Config, labels: Labels, heads: Heads | None = None, with_loss: bool = True,
        pictures: list | None = None, yolox_heads: Heads | None = None,
        yolov5_heads: list[torch.Tensor] | None = None, letterboxes: list | None = None,
        notes: list[str] | None = None) -> Trace:
    """Run the whole pipeline and record every stage.

    pictures: per image, the path of its image or None. One geometry rule for every command: an image's
    labels are first mapped through ultralytics' validation letterbox onto the imgsz canvas (scale r, then
    padding), so the numbers describe the pixels the trainer (and a model) sees; without an image, the
    normalised labels are scaled to the imgsz canvas.
    letterboxes: per image, its Letterbox (or None) when already known (from a model run or a saved heads
    file); default: computed from each picture's header.
    yolox_heads: YOLOX-layout heads for the simota assigner (default: the same predictions as ``heads``).
    yolov5_heads: YOLOv5 head maps (b, na, h, w, 5+nc) per level for yolov5's loss (default: synthetic).
    notes: lines describing where the inputs came from, shown before the geometry notes.
    """
    pictures = list(pictures or [])
    if letterboxes is None:
        from .inputs.pictures import image_size, letterbox_for

        letterboxes = [None if pic is None else letterbox_for(*image_size(pic), cfg.imgsz) for pic in pictures]
    boxes = list(letterboxes)
    if any(lb is not None for lb in boxes):
        from .inputs.pictures import apply_letterbox

        labels = apply_letterbox(labels, boxes, cfg.imgsz)
    # the assigner's own heads (YOLOX, YOLOv5) set the batch when the v8 heads are synthetic: images beyond the
    # labels are background, whichever heads say how many there are
    own = yolox_heads.batch if yolox_heads is not None else yolov5_heads[0].shape[0] if yolov5_heads else None
    heads = make_heads(cfg, labels, heads, None if own is None else int(own))
    if own is not None and int(own) != heads.batch:
        raise InputError(f"the {'YOLOX' if yolox_heads is not None else 'YOLOv5'} heads hold {int(own)} images but "
                         f"the YOLOv8 heads {heads.batch}", heads.source)
    check_grids(heads, cfg.grids, cfg.imgsz, cfg.strides)
    nc = heads.nc
    check_classes(labels, nc)
    labels = with_batch(labels, heads.batch)
    a_cfg = cfg.assigner
    levels = levels_for(list(heads.grids), cfg.strides)
    n_anchors = levels[-1].stop
    if a_cfg.is_tal and a_cfg.topk > n_anchors:
        raise InputError(f"assigner.topk ({a_cfg.topk}) is larger than the number of anchors ({n_anchors})", "config")

    gt_origin: list[list[tuple[str, int]]] = [[] for _ in range(heads.batch)]
    for i in range(len(labels)):
        gt_origin[int(labels.batch_idx[i])].append(labels.origin[i])
    trace = Trace(cfg, levels, labels, heads.source, gt_origin, warnings=list(cfg.warnings) + list(labels.warnings),
                  notes=list(labels.notes) + list(notes or []))
    trace.notes += geometry_notes(labels, pictures, boxes, cfg.imgsz)
    for i in range(heads.batch):
        pic = pictures[i] if i < len(pictures) else None
        lb = boxes[i] if i < len(boxes) else None
        trace.pictures.append(None if pic is None or lb is None else (str(pic), lb))

    anchor_points, stride_tensor = make_anchors(levels)
    trace.add("anchors", "Anchor points", anchor_points=anchor_points, stride_tensor=stride_tensor)

    pred_distri = heads.boxes.permute(0, 2, 1).contiguous()  # (b, A, 4R)
    pred_logits = heads.scores.permute(0, 2, 1).contiguous()  # (b, A, nc)
    pred_ltrb = dfl_distances(pred_distri, cfg.reg_max)
    pred_bboxes_grid = ltrb_to_xyxy(pred_ltrb, anchor_points)
    pred_bboxes = pred_bboxes_grid * stride_tensor
    pred_scores = pred_logits.sigmoid()
    trace.add(
        "decode", "DFL decode of the predictions",
        pred_distri=pred_distri, pred_logits=pred_logits, pred_ltrb=pred_ltrb,
        pred_bboxes_grid=pred_bboxes_grid, pred_bboxes=pred_bboxes, pred_scores=pred_scores,
    )

    gt_labels, gt_bboxes, mask_gt = pad_targets(labels, heads.batch, cfg.imgsz)
    trace.add("gt", "Padded ground truth", gt_labels=gt_labels, gt_bboxes=gt_bboxes, mask_gt=mask_gt)
    for bi, origins in enumerate(gt_origin):
        for j, (f, ln) in enumerate(origins):
            if not mask_gt[bi, j, 0]:
                trace.warnings.append(
                    f"{f}:{ln}: GT {j} of image {bi} has corner coordinates summing to <= 0; the reference "
                    "trainer treats it as padding, and so does this run"
                )

    inputs = (pred_scores, pred_bboxes, anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
    if a_cfg.is_tal:
        _assign_tal(trace, cfg, nc, inputs)
    elif a_cfg.name == "atss":
        _assign_atss(trace, cfg, nc, inputs)
    elif a_cfg.name == "simota":
        xh = yolox_heads if yolox_heads is not None else yolox_from_v8(trace)
        trace.assigner_heads = xh.source
        _assign_simota(trace, cfg, nc, xh)
    else:
        trace.assigner_heads = ("YOLOv5 heads given (--heads)" if yolov5_heads is not None else
                                f"synthetic {cfg.heads.kind} YOLOv5 heads (seed {cfg.heads.seed})")
        v5_levels = _assign_yolov5(trace, cfg, labels)
    _add_positives(trace)
    if with_loss and a_cfg.name in V8_LOSS_ASSIGNERS:
        _add_loss(trace, cfg, pred_distri, pred_logits, pred_bboxes_grid, anchor_points, stride_tensor)
    elif with_loss and a_cfg.name == "simota":
        _add_yolox_loss(trace)
    elif with_loss:
        _add_v5_loss(trace, cfg, nc, v5_levels, yolov5_heads)
    return trace


def geometry_notes(labels: Labels, pictures: list, boxes: list, imgsz: tuple[int, int]) -> list[str]:
    """One line per image with a letterbox (original size, r, padding), and one for those without."""
    h, w = imgsz
    out, missing = [], []
    for i in range(labels.n_images):
        lb = boxes[i] if i < len(boxes) else None
        if lb is None:
            missing.append(i)
            continue
        pic = pictures[i] if i < len(pictures) and pictures[i] is not None else "saved letterbox"
        out.append(f"image {i} ({pic}): {lb.describe(imgsz)}; its labels are mapped the same way")
    if missing and not out:
        out.append(f"no image found: labels taken as a {w}×{h} image (normalised × imgsz, no letterbox)")
    elif missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        out.append(f"image(s) {shown}: no image found: labels taken as a {w}×{h} image")
    return out


V8_LOSS_ASSIGNERS = ("tal", "tal-o2o", "atss")  # whose targets feed the v8 loss (BCE, CIoU, DFL)


def _assign_tal(trace: Trace, cfg: Config, nc: int, inputs: tuple) -> None:
    """Task-aligned assignment: dense stages, or candidate pairs when they would not fit the budget."""
    a_cfg = cfg.assigner
    b, m, n_anchors = inputs[4].shape[0], inputs[4].shape[1], inputs[0].shape[1]
    params = TALParams(
        num_classes=nc, topk=a_cfg.topk, topk2=a_cfg.topk2, alpha=a_cfg.alpha, beta=a_cfg.beta,
        eps=a_cfg.eps, profile=a_cfg.profile, stride_val=cfg.stride_val,
    )
    need_mb = b * m * n_anchors * DENSE_BYTES_PER_CELL / 2**20
    if need_mb > cfg.dense_budget_mb:
        trace.summarised = (
            f"the dense (b, M, A) = ({b}, {m}, {n_anchors}) assignment tensors would take "
            f"about {need_mb:,.0f} MB, over the {cfg.dense_budget_mb} MB budget (--budget-mb, config "
            "dense_budget_mb): assigned on candidate pairs instead, with the same targets and loss; shown: per-GT "
            "summaries, not the in-box grids, candidate and conflict tables or (b, M, A) tensors"
        )
        sp = assign_sparse(*inputs, params)
        trace.add("candidates", "Candidates: anchor centres inside each GT",
                  cand_bboxes=candidate_boxes(inputs[4], inputs[5], params))
        trace.add(
            "pairs", "Candidate pairs (image, GT, anchor)",
            pair_b=sp.pair_b, pair_m=sp.pair_m, pair_a=sp.pair_a, pair_s=sp.pair_s, pair_u=sp.pair_u,
            pair_t=sp.pair_t, pair_topk=sp.pair_topk, pair_pos=sp.pair_pos, mask_multi=sp.multi,
        )
        trace.add(
            "targets", "Targets",
            fg_mask=sp.fg_mask, target_gt_idx=sp.target_gt_idx, target_labels=sp.target_labels,
            target_bboxes=sp.target_bboxes, target_scores=sp.target_scores, pos_align_metrics=sp.pos_align_metrics,
            pos_overlaps=sp.pos_overlaps, norm_align_metric=sp.target_scores.amax(-1),
        )
        return
    r = assign(*inputs, params)
    trace.add("candidates", "Candidates: anchor centres inside each GT", cand_bboxes=r.cand_bboxes, mask_in_gts=r.mask_in_gts)
    trace.add(
        "metrics", "Alignment metric t = s^alpha * u^beta",
        bbox_scores=r.bbox_scores, overlaps=r.overlaps, align_metric=r.align_metric,
    )
    trace.add("topk", "Top-k picks", topk_idxs=r.topk_idxs, mask_topk=r.mask_topk, mask_pos_topk=r.mask_pos_topk)
    trace.add("conflicts", "Conflict resolution", mask_multi=r.mask_multi, mask_pos=r.mask_pos)
    trace.add(
        "targets", "Targets",
        fg_mask=r.fg_mask, target_gt_idx=r.target_gt_idx, target_labels=r.target_labels,
        target_bboxes=r.target_bboxes, target_scores=r.target_scores, pos_align_metrics=r.pos_align_metrics,
        pos_overlaps=r.pos_overlaps, norm_align_metric=r.norm_align_metric,
    )


def _check_dense_budget(name: str, shape: str, cells: int, bytes_per_cell: int, cfg: Config) -> None:
    """Assigners that are dense by nature refuse inputs that would not fit the budget, instead of swapping."""
    need_mb = cells * bytes_per_cell / 2**20
    if need_mb > cfg.dense_budget_mb:
        raise InputError(
            f"{name} builds dense {shape} tensors: about {need_mb:,.0f} MB here, over the {cfg.dense_budget_mb} MB "
            "budget; raise --budget-mb (config dense_budget_mb) if the machine has the memory, or show fewer images "
            "or GTs (only tal and tal-o2o can fall back to candidate pairs)"
        )


def _assign_atss(trace: Trace, cfg: Config, nc: int, inputs: tuple) -> None:
    from .assigners import atss

    _, pd_bboxes, anc_px, gt_labels, gt_bboxes, mask_gt = inputs
    _check_dense_budget("atss", "(b, M, A)", gt_bboxes.shape[0] * gt_bboxes.shape[1] * anc_px.shape[0], 40, cfg)
    r = atss.assign(anc_px, trace["stride_tensor"], [lv.count for lv in trace.levels], gt_labels, gt_bboxes, mask_gt,
                    pd_bboxes, nc, cfg.assigner.topk)
    trace.add("atss_candidates", f"ATSS candidates: the {cfg.assigner.topk} nearest prior boxes per level",
              priors=r.priors, prior_overlaps=r.overlaps, distances=r.distances, candidate_idxs=r.candidate_idxs,
              is_candidate=r.is_candidate)
    trace.add("atss_threshold", "IoU threshold = mean + std of each GT's candidates", iou_threshold=r.threshold,
              is_pos=r.is_pos, in_gt=r.in_gt)
    trace.add("conflicts", "Conflict resolution: the largest prior IoU wins", mask_pos=r.mask_pos)
    trace.add("targets", "Targets", fg_mask=r.fg_mask, target_gt_idx=r.target_gt_idx, target_labels=r.target_labels,
              target_bboxes=r.target_bboxes, target_scores=r.target_scores)


def yolox_from_v8(trace: Trace) -> Heads:
    """YOLOX-layout heads carrying the same predictions as the trace's (v8) heads: the decoded boxes as
    (x, y, log w, log h) regressions, the same class logits, and as objectness logit the largest class logit
    (so sqrt(cls * obj) is the class score where that class leads, and background anchors stay background)."""
    ap, st = trace["anchor_points"], trace["stride_tensor"]
    box = trace["pred_bboxes"]  # (b, A, 4) px xyxy
    wh = (box[..., 2:] - box[..., :2]).clamp(min=1e-3)
    cxy = (box[..., :2] + box[..., 2:]) / 2
    reg = torch.cat((cxy / st - (ap - 0.5), torch.log(wh / st)), -1)
    obj = trace["pred_logits"].amax(-1, keepdim=True)
    lead = torch.cat((reg, obj), -1).permute(0, 2, 1).contiguous()
    return Heads(lead, trace["pred_logits"].permute(0, 2, 1).contiguous(), tuple((lv.h, lv.w) for lv in trace.levels),
                 "the same predictions as the TAL heads, in YOLOX's layout (objectness = the largest class logit)")


def _assign_simota(trace: Trace, cfg: Config, nc: int, heads: Heads) -> None:
    from .assigners.simota import assign_image, decode

    ap, st = trace["anchor_points"], trace["stride_tensor"]
    cells = ap - 0.5
    lead = heads.boxes.permute(0, 2, 1)  # (b, A, 5)
    cls = heads.scores.permute(0, 2, 1)  # (b, A, nc)
    pred = decode(lead[..., :4], cells, st)  # (b, A, 4) cx, cy, w, h px
    b, n_anchors = pred.shape[:2]
    fg = torch.zeros(b, n_anchors, dtype=torch.bool)
    gt_idx = torch.zeros(b, n_anchors, dtype=torch.int64)
    iou = torch.zeros(b, n_anchors)
    per_image: dict[str, torch.Tensor] = {}
    h, w = cfg.imgsz
    lab = trace.labels
    most = max((trace.n_gts(i) for i in range(b)), default=0)
    _check_dense_budget("simota", "(GTs, candidates) per image", most * n_anchors, 32, cfg)
    for i in range(b):
        n = trace.n_gts(i)
        if n == 0:
            continue
        # YOLOX takes labels as cx, cy, w, h in pixels: scaled straight from the normalised values
        rows = lab.batch_idx == i
        gt_cxcywh = torch.from_numpy(lab.xywhn[rows]) * torch.tensor([w, h, w, h], dtype=torch.float32)
        per_image[f"simota_gt_cxcywh[{i}]"] = gt_cxcywh
        r = assign_image(gt_cxcywh, trace["gt_labels"][i, :n, 0], pred[i], cls[i], lead[i, :, 4:5], cells, st, nc,
                         cfg.assigner.profile, cfg.assigner.topk)
        fg[i], iou[i] = r.fg, r.matched_iou
        gt_idx[i] = r.matched_gt.clamp(min=0)
        for k in ("candidates", "in_box", "in_centre", "geometry", "ious", "cls_cost", "iou_cost", "cost", "topk_ious",
                  "dynamic_k", "picked", "matching"):
            per_image[f"simota_{k}[{i}]"] = getattr(r, k)
    trace.add("simota_decode", f"YOLOX decode ({heads.source})", yolox_pred_cxcywh=pred,
              yolox_obj_logits=lead[..., 4:5].contiguous(), yolox_cls_logits=cls.contiguous())
    trace.add("simota", "SimOTA per image (C = candidate anchors of the image)", **per_image)
    trace.add("targets", "Targets", fg_mask=fg, target_gt_idx=gt_idx, pred_ious=iou)


def _add_yolox_loss(trace: Trace) -> None:
    """YOLOX's loss on the SimOTA targets."""
    from .loss import yolox_loss

    b = trace.batch
    fg, gt_idx = trace["fg_mask"], trace["target_gt_idx"]
    gts = [trace[f"simota_gt_cxcywh[{i}]"] if f"simota_gt_cxcywh[{i}]" in trace else torch.zeros(0, 4) for i in range(b)]
    cls = [trace["gt_labels"][i, : trace.n_gts(i), 0] for i in range(b)]
    lo = yolox_loss(trace["yolox_pred_cxcywh"], trace["yolox_obj_logits"], trace["yolox_cls_logits"], fg, gt_idx,
                    trace["pred_ious"], gts, cls)
    trace.add("loss", "YOLOX loss (reg_weight 5, no L1 term)", yolox_loss=lo.loss, yolox_loss_iou=lo.loss_iou,
              yolox_loss_obj=lo.loss_obj, yolox_loss_cls=lo.loss_cls, yolox_num_fg=torch.tensor(lo.num_fg),
              iou_per_anchor=lo.iou_per_anchor, obj_per_anchor=lo.obj_per_anchor, cls_per_anchor=lo.cls_per_anchor)


def _assign_yolov5(trace: Trace, cfg: Config, labels: Labels) -> list:
    from .assigners.yolov5 import anchors_tensor, build_targets

    rows = np.concatenate([labels.batch_idx[:, None], labels.cls[:, None], labels.xywhn], 1).astype(np.float32)
    lvs = build_targets(torch.from_numpy(rows), [(lv.h, lv.w) for lv in trace.levels], cfg.strides,
                        anchors_tensor(cfg.assigner.anchors), cfg.assigner.anchor_t)
    # label row -> slot within its image
    slot = np.zeros(len(labels), np.int64)
    seen: dict[int, int] = {}
    for k, bi in enumerate(labels.batch_idx.tolist()):
        slot[k] = seen.get(bi, 0)
        seen[bi] = slot[k] + 1
    slot_t = torch.from_numpy(slot)
    tensors: dict[str, torch.Tensor] = {}
    for lv, g in zip(trace.levels, lvs):
        p = f"v5_l{lv.index}_"
        tensors.update({p + "anchors": g.anchors, p + "ratio": g.ratio, p + "match": g.match, p + "gxy": g.gxy,
                        p + "near": g.near, p + "image": g.image, p + "anchor": g.anchor, p + "gy": g.gy,
                        p + "gx": g.gx, p + "gt": slot_t[g.label] if len(g.label) else g.label,
                        p + "m_gt": slot_t[g.m_label] if len(g.m_label) else g.m_label, p + "m_anchor": g.m_anchor,
                        p + "offset": g.offset, p + "tbox": g.tbox})
    trace.add("yolov5", "YOLOv5 static matching per level", **tensors)
    return lvs


def synthetic_v5(trace: Trace, cfg: Config, nc: int, lvs: list) -> list[torch.Tensor]:
    """YOLOv5 head maps (b, na, h, w, 5+nc): ``randn`` (seeded), or ``trained``: every target entry predicts its
    tbox with noise, objectness and its class logit high; elsewhere objectness and classes low."""
    gen = torch.Generator().manual_seed(cfg.heads.seed)
    na = len(cfg.assigner.anchors[0]) // 2
    out = []
    for lv, g in zip(trace.levels, lvs):
        x = torch.randn(trace.batch, na, lv.h, lv.w, 5 + nc, generator=gen)
        if cfg.heads.kind == "trained":
            x = x * 0.5
            x[..., 4:] -= 4.0
            if len(g.image):
                logit = lambda p: torch.log(p / (1 - p))  # noqa: E731
                xy = logit(((g.tbox[:, :2] + 0.5) / 2).clamp(0.02, 0.98))
                wh = logit((torch.sqrt(g.tbox[:, 2:] / g.anchors[g.anchor]) / 2).clamp(0.02, 0.98))
                noise = torch.randn(len(g.image), 4, generator=gen) * 0.2
                x[g.image, g.anchor, g.gy, g.gx, :4] = torch.cat((xy, wh), 1) + noise
                x[g.image, g.anchor, g.gy, g.gx, 4] = 3.0
                x[g.image, g.anchor, g.gy, g.gx, 5 + g.cls] = 3.0
        out.append(x)
    return out


def _add_v5_loss(trace: Trace, cfg: Config, nc: int, lvs: list, preds: list[torch.Tensor] | None) -> None:
    from .assigners.yolov5 import yolov5_loss

    if preds is None:
        preds = synthetic_v5(trace, cfg, nc, lvs)
    for lv, p in zip(trace.levels, preds):
        if tuple(p.shape[2:4]) != (lv.h, lv.w) or p.shape[0] != trace.batch:
            raise InputError(f"YOLOv5 heads: level {lv.index} is {tuple(p.shape)}, expected (b={trace.batch}, na, "
                             f"{lv.h}, {lv.w}, 5+nc)")
    g = (cfg.loss.v5_box, cfg.loss.v5_obj, cfg.loss.v5_cls)
    lo = yolov5_loss(preds, lvs, nc, gains=g)
    ciou = {f"v5_l{i}_ciou": c for i, c in enumerate(lo.ciou)}
    trace.add("loss", f"YOLOv5 loss (hyp box {g[0]:g}, obj {g[1]:g}, cls {g[2]:g}; balance 4, 1, 0.4)", v5_loss=lo.total,
              v5_lbox=lo.lbox, v5_lobj=lo.lobj, v5_lcls=lo.lcls, v5_level_box=torch.tensor(lo.level_box),
              v5_level_obj=torch.tensor(lo.level_obj), v5_level_cls=torch.tensor(lo.level_cls), **ciou)


def _add_positives(trace: Trace) -> None:
    """Every assigner's positives as unique (image, GT slot, anchor cell) triples, and its candidates too."""
    if "v5_l0_image" in trace:
        parts = []
        for lv in trace.levels:
            p = f"v5_l{lv.index}_"
            cell = lv.start + trace[p + "gy"] * lv.w + trace[p + "gx"]
            parts.append(torch.stack((trace[p + "image"], trace[p + "gt"], cell), 1))
        pos = torch.unique(torch.cat(parts), dim=0) if parts else torch.zeros(0, 3, dtype=torch.int64)
        cand = torch.zeros(0, 3, dtype=torch.int64)
    else:
        fg, tgi = trace["fg_mask"], trace["target_gt_idx"]
        bi, ai = torch.nonzero(fg, as_tuple=True)
        pos = torch.stack((bi, tgi[bi, ai], ai), 1)
        if "mask_in_gts" in trace:
            cand = torch.nonzero(trace["mask_in_gts"] & trace["mask_gt"].bool())
        elif "pair_b" in trace:
            cand = torch.stack((trace["pair_b"], trace["pair_m"], trace["pair_a"]), 1)
        elif "is_candidate" in trace:
            cand = torch.nonzero(trace["is_candidate"] & trace["mask_gt"].bool())
        else:  # simota: each GT's allowed anchors
            rows = []
            for i in range(trace.batch):
                if f"simota_geometry[{i}]" in trace:
                    ci = torch.nonzero(trace[f"simota_candidates[{i}]"]).flatten()
                    m, c = torch.nonzero(trace[f"simota_geometry[{i}]"], as_tuple=True)
                    rows.append(torch.stack((torch.full_like(m, i), m, ci[c]), 1))
            cand = torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.int64)
    trace.add("positives", "Positives and candidates of every assigner as (image, GT, anchor cell)",
              pos_triples=pos, cand_triples=cand)


def _add_loss(trace: Trace, cfg: Config, pred_distri, pred_logits, pred_bboxes_grid, anchor_points, stride_tensor) -> None:
    """The loss stage, from the targets already in the trace."""
    lo = detection_loss(
        pred_distri, pred_logits, pred_bboxes_grid, anchor_points, stride_tensor, trace["fg_mask"],
        trace["target_bboxes"], trace["target_scores"], cfg.imgsz, cfg.reg_max,
        (cfg.loss.box, cfg.loss.cls, cfg.loss.dfl), cfg.loss_profile,
    )
    trace.add(
        "loss", "Loss",
        loss_box=lo.loss_box, loss_cls=lo.loss_cls, loss_dfl=lo.loss_dfl, target_scores_sum=lo.target_scores_sum,
        raw_box=lo.raw_box, raw_cls=lo.raw_cls, raw_dfl=lo.raw_dfl,
        cls_per_anchor=lo.cls_per_anchor, box_per_anchor=lo.box_per_anchor, dfl_per_anchor=lo.dfl_per_anchor,
        ciou=lo.ciou, dfl_target_ltrb=lo.dfl_target_ltrb, dfl_clamped=lo.dfl_clamped,
    )
