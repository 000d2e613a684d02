"""Family adapters of the rotated task-aligned assigner: ``obb`` (YOLOv8/YOLO11 OBB, one-to-many, topk 10) and
``obb-o2o`` (YOLO26-obb's one-to-one branch: topk 7, topk2 1).

Label rows are OBB corners (``Labels.segments``, (4, 2) normalised, already letterboxed onto the canvas). They
become training targets as ultralytics makes them: corners in canvas pixels (float32) -> minimum-area rectangle
-> xywhr (``core.rotated.quads_to_xywhr``), normalised by the canvas, then rows with a side under 2 px dropped
(``loss_obb.obb_targets``). The GT slots of every stage are those kept rows, in the trainer's order: the generic
``gt`` stage is rewritten to them (its axis-aligned hulls, for the renderers), and each dropped row is a warning
naming its file and line.

Heads: the YOLOv8 layout plus one angle channel after the classes. Inside a run ``Heads.extra["angle"]`` always
holds radians: a levels file's channel is decoded with its ``angle_encoding`` array when it has one, else with
the family's (``sigmoid`` for YOLOv8/YOLO11 OBB heads, ``radians`` for YOLO26's); an 8.4 model's training dict
(``--model``, a ``.pt`` dict) holds radians already.

Stages (after the generic anchors, decode, gt): obb_gt, obb_decode, candidates, metrics, topk, conflicts,
targets; loss (v8OBBLoss: ProbIoU box term, DFL or L1, BCE, angle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .registry import Family, register

ANGLE_GAIN = 1.0  # ultralytics' default hyp.angle
DENSE_BYTES_PER_CELL = 32  # peak bytes per (image, GT, anchor) cell of the dense stages (as the detect family)
ANGLE_ENCODING_KEY = "angle_encoding"  # a levels .npz may say how its angle channel is encoded


def _encoding_of(path: Path, default: str) -> str:
    """The ``angle_encoding`` array of a levels .npz (``--save-heads`` writes ``radians``), else ``default``."""
    if path.suffix != ".npz" or not path.is_file():
        return default
    try:
        with np.load(path, allow_pickle=False) as z:
            if ANGLE_ENCODING_KEY in z.files:
                enc = str(z[ANGLE_ENCODING_KEY])
                from ..core.rotated import ANGLE_ENCODINGS

                if enc not in ANGLE_ENCODINGS:
                    raise InputError(f"{ANGLE_ENCODING_KEY} must be one of {', '.join(ANGLE_ENCODINGS)}, got {enc!r}",
                                     str(path))
                return enc
    except InputError:
        raise
    except Exception:  # unreadable: the heads reader says why
        return default
    return default


def radians_heads(heads, encoding: str):
    """Heads whose ``extra["angle"]`` is decoded to radians (a copy; the other channels shared)."""
    from ..core.rotated import angle_from_head
    from ..inputs.heads import Heads

    if "angle" not in heads.extra:
        raise InputError("OBB heads need an angle channel (4*reg_max + nc + 1 channels per level, the angle last; "
                         "a .pt dict needs 'angle'): these look like detect heads", heads.source)
    extra = dict(heads.extra)
    extra["angle"] = angle_from_head(heads.extra["angle"], encoding).contiguous()
    return Heads(heads.boxes, heads.scores, heads.grids, heads.source, extra)


def label_rboxes(labels, imgsz: tuple[int, int]) -> torch.Tensor:
    """Every OBB row's corners -> (n, 5) xywhr normalised by the canvas (angle in radians), as the trainer's
    Format step makes them: float32 corners in canvas pixels, the minimum-area rectangle, then cx, w / width and
    cy, h / height. Rows are validated first (InputError naming the file and line of a degenerate row)."""
    from ..core.rotated import quads_to_xywhr, validate_quads

    n = len(labels)
    if not n:
        return torch.zeros(0, 5)
    segs = labels.segments
    if not segs or any(s is None or np.asarray(s).shape != (4, 2) for s in segs):
        k = 0 if not segs else next(i for i, s in enumerate(segs) if s is None or np.asarray(s).shape != (4, 2))
        f, ln = labels.origin[k]
        raise InputError("OBB rows need four corners: cls x1 y1 x2 y2 x3 y3 x4 y4 (normalised)", f, ln)
    h, w = imgsz
    quads = np.stack([np.asarray(s, np.float32) for s in segs]).copy()  # (n, 4, 2)
    quads[..., 0] *= np.float32(w)
    quads[..., 1] *= np.float32(h)
    files: dict[str, list[int]] = {}
    for i, (f, _) in enumerate(labels.origin):
        files.setdefault(f, []).append(i)
    for f, rows in files.items():
        validate_quads(quads[rows], f, [labels.origin[i][1] for i in rows])
    xywhr = quads_to_xywhr(quads)  # float32, px
    xywhr[:, [0, 2]] /= float(w)
    xywhr[:, [1, 3]] /= float(h)
    return xywhr


def rotated_targets(trace, labels, batch: int, imgsz: tuple[int, int]):
    """OBB rows -> the trainer's padded targets (``loss_obb.ObbTargets``) and the rewritten generic ``gt`` stage.

    Rows with a side under 2 px are dropped (a warning each, with file and line); the GT slots left are the
    trainer's, and ``trace.gt_origin`` / ``gt_labels`` / ``gt_bboxes`` (axis-aligned hulls) / ``mask_gt`` follow
    them. Returns (targets, gt_corners (b, M, 4, 2) px of the kept rows)."""
    from ..core.rotated import xywhr_to_corners
    from ..loss_obb import MIN_OBB_SIDE_PX, obb_targets

    xywhr_n = label_rboxes(labels, imgsz)
    n = len(labels)
    bidx = torch.from_numpy(np.asarray(labels.batch_idx, np.int64))
    order = torch.argsort(bidx, stable=True)
    tg = obb_targets(bidx[order], torch.from_numpy(np.asarray(labels.cls, np.float32))[order], xywhr_n[order],
                     batch, imgsz)
    kept = torch.zeros(n, dtype=torch.bool)
    kept[order] = tg.kept
    slot = torch.full((n,), -1, dtype=torch.int64)
    slot[order] = tg.slot
    h, w = imgsz
    old_boxes = trace["gt_bboxes"]
    m = tg.gt_bboxes.shape[1]
    hull = torch.zeros(batch, m, 4)
    origin: list[list[tuple[str, int]]] = [[] for _ in range(batch)]
    generic_slot = np.zeros(batch, np.int64)
    kept_rows: list[tuple[int, int, int]] = []
    for i in range(n):  # rows in label order: the generic gt stage's slots
        b = int(labels.batch_idx[i])
        g = int(generic_slot[b])
        generic_slot[b] += 1
        if not kept[i]:
            f, ln = labels.origin[i]
            wpx, hpx = float(xywhr_n[i, 2]) * w, float(xywhr_n[i, 3]) * h
            trace.warnings.append(
                f"{f}:{ln}: OBB GT of image {b} is {wpx:.2f}×{hpx:.2f} px (a side under {MIN_OBB_SIDE_PX:g} px): the "
                "trainer drops it before assignment, and so does this run")
            continue
        kept_rows.append((b, int(slot[i]), g))
    for b, s, g in sorted(kept_rows):
        hull[b, s] = old_boxes[b, g]
        origin[b].append(trace.gt_origin[b][g])
    trace.gt_origin[:] = origin
    trace.add("gt", "Padded ground truth (OBB rows kept by the 2 px rule; boxes: axis-aligned hulls)",
              gt_labels=tg.gt_labels, gt_bboxes=hull, mask_gt=tg.mask_gt)
    corners = xywhr_to_corners(tg.gt_bboxes) * tg.mask_gt.unsqueeze(-1)
    return tg, corners


class _View:
    """Attribute access to trace tensors, for the pure module's per-GT helpers (``gt_candidates``)."""

    def __init__(self, trace):
        self._t = trace

    def __getattr__(self, name):
        return self._t[name]


@register
class RotatedTaskAligned(Family):
    """ultralytics' RotatedTaskAlignedAssigner (YOLOv8/YOLO11 OBB, YOLO26-obb's one-to-many branch)."""

    name = "obb"
    task = "obb"
    profiles = ("ultralytics", "v8.4.0", "classic")
    default_profile = "ultralytics"
    default_topk = 10
    task_aligned = True
    loss_name = "v8obb"
    heads_title = "OBB"
    angle_encoding = "sigmoid"  # a levels file's angle channel without an angle_encoding array

    # ---------------------------------------------------------------- inputs
    def load_heads(self, path, cfg):
        from ..inputs.obb_heads import load_obb_heads

        p = Path(path)
        heads, enc = load_obb_heads(p, cfg.reg_max, cfg.nc, _encoding_of(p, self.angle_encoding))
        return radians_heads(heads, enc)

    def make_heads(self, cfg, labels, heads, batch):
        if heads is not None:
            if "angle" not in heads.extra:
                raise InputError("OBB heads need an angle channel: these are detect heads", heads.source)
            return heads
        from ..inputs.obb_heads import synthetic_obb_randn, synthetic_obb_trained

        batch = batch or cfg.heads.batch or max(labels.n_images, 1)
        if cfg.heads.kind == "randn":
            h = synthetic_obb_randn(batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.heads.seed)
            return radians_heads(h, self.angle_encoding)
        xywhr = label_rboxes(labels, cfg.imgsz)
        hh, ww = cfg.imgsz
        px = xywhr.clone()
        px[:, [0, 2]] *= float(ww)
        px[:, [1, 3]] *= float(hh)
        h = synthetic_obb_trained(batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.strides, cfg.heads.seed,
                                  labels.batch_idx, labels.cls, px.numpy(), self.angle_encoding)
        return radians_heads(h, self.angle_encoding)

    def model_heads(self, lm, images, source, branch):
        from ..inputs.model import model_heads

        heads = model_heads(lm, images, source, branch)
        if "angle" not in heads.extra:
            raise InputError("the model's head returned no angle: not an OBB model of ultralytics 8.4", lm.path)
        return heads  # the 8.4 training dict's angle is radians already

    # ---------------------------------------------------------------- stages
    def assign(self, trace, cfg, inputs) -> None:
        from ..core.rotated import decode_obb_heads
        from .rotated_tal import assign_rotated
        from .tal_family import record_selection, tal_params

        b = trace.batch
        names = inputs.labels.names
        if names and len(names) != inputs.nc:
            raise InputError(f"the heads carry {inputs.nc} classes but the dataset names {len(names)}: OBB heads have "
                             f"4*reg_max + nc + 1 channels (the angle last); detect heads lack the angle channel",
                             inputs.heads.source)
        tg, corners = rotated_targets(trace, inputs.labels, b, cfg.imgsz)
        trace.add("obb_gt", "Rotated GTs: corners -> minimum-area rectangle xywhr (px), rows under 2 px dropped",
                  gt_rboxes=tg.gt_bboxes, gt_corners=corners)
        anc, st = trace["anchor_points"], trace["stride_tensor"]
        grid, px, angle = decode_obb_heads(inputs.heads, anc, st, cfg.reg_max, "radians")
        trace.add("obb_decode", "Rotated decode: distances along the predicted angle -> xywhr",
                  pred_angle=angle, pred_rboxes_grid=grid, pred_rboxes=px)
        p = tal_params(cfg, inputs.nc)
        m, n_anc = tg.gt_bboxes.shape[1], anc.shape[0]
        need_mb = b * m * n_anc * DENSE_BYTES_PER_CELL / 2**20
        if need_mb > cfg.dense_budget_mb:
            self._assign_pairs(trace, cfg, tg, px, anc * st, p, need_mb)
            return
        r = assign_rotated(trace["pred_scores"], px, anc * st, tg.gt_labels, tg.gt_bboxes, tg.mask_gt, p)
        trace.add("candidates", "Candidates: anchor centres inside each rotated GT (sides floored at stride_val)",
                  cand_rboxes=r.cand_bboxes, mask_in_gts=r.mask_in_gts)
        trace.add("metrics", "Alignment metric t = s^alpha * ProbIoU^beta",
                  bbox_scores=r.bbox_scores, overlaps=r.overlaps, align_metric=r.align_metric)
        record_selection(trace, r, "Conflict resolution (largest ProbIoU)", boxes="target_rboxes")

    @staticmethod
    def _assign_pairs(trace, cfg, tg, px, anc_px, p, need_mb: float) -> None:
        """Over the dense budget: the same targets from the candidate pairs (``rotated_tal_sparse``)."""
        from .rotated_tal import candidate_rboxes
        from .rotated_tal_sparse import assign_rotated_sparse

        b, m = tg.gt_bboxes.shape[:2]
        trace.summarised = (
            f"the dense (b, M, A) = ({b}, {m}, {anc_px.shape[0]}) assignment tensors would take about "
            f"{need_mb:,.0f} MB, over the {cfg.dense_budget_mb} MB budget (--budget-mb, config dense_budget_mb): "
            "assigned on candidate pairs instead, with the same targets and loss; shown: candidate tables of the "
            "flagged GTs and per-GT summaries, not the (b, M, A) tensors")
        sp = assign_rotated_sparse(trace["pred_scores"], px, anc_px, tg.gt_labels, tg.gt_bboxes, tg.mask_gt, p)
        trace.add("candidates", "Candidates: anchor centres inside each rotated GT (sides floored at stride_val)",
                  cand_rboxes=candidate_rboxes(tg.gt_bboxes, tg.mask_gt, p))
        trace.add("pairs", "Candidate pairs (image, GT, anchor)",
                  pair_b=sp.pair_b, pair_m=sp.pair_m, pair_a=sp.pair_a, pair_s=sp.pair_s, pair_u=sp.pair_u,
                  pair_t=sp.pair_t, pair_topk=sp.pair_topk, pair_pos=sp.pair_pos, mask_multi=sp.multi)
        trace.add("targets", "Targets",
                  fg_mask=sp.fg_mask, target_gt_idx=sp.target_gt_idx, target_labels=sp.target_labels,
                  target_rboxes=sp.target_bboxes, target_scores=sp.target_scores,
                  pos_align_metrics=sp.pos_align_metrics, pos_overlaps=sp.pos_overlaps,
                  norm_align_metric=sp.target_scores.amax(-1))

    def loss(self, trace, cfg, inputs) -> None:
        from ..loss_obb import obb_loss

        lo = obb_loss(trace["pred_distri"], trace["pred_logits"], trace["pred_rboxes_grid"], trace["anchor_points"],
                      trace["stride_tensor"], trace["fg_mask"], trace["target_rboxes"], trace["target_scores"],
                      cfg.imgsz, cfg.reg_max, self.gains(cfg))
        trace.add(
            "loss", "Loss (v8OBBLoss)",
            loss_box=lo.loss_box, loss_cls=lo.loss_cls, loss_dfl=lo.loss_dfl, loss_angle=lo.loss_angle,
            target_scores_sum=lo.target_scores_sum, raw_box=lo.raw_box, raw_cls=lo.raw_cls, raw_dfl=lo.raw_dfl,
            raw_angle=lo.raw_angle, cls_per_anchor=lo.cls_per_anchor, box_per_anchor=lo.box_per_anchor,
            dfl_per_anchor=lo.dfl_per_anchor, angle_per_anchor=lo.angle_per_anchor, loss_probiou=lo.probiou,
            angle_weight=lo.angle_weight, dfl_target_ltrb=lo.dfl_target_ltrb, dfl_clamped=lo.dfl_clamped,
            loss_items=torch.stack((lo.loss_box, lo.loss_cls, lo.loss_dfl, lo.loss_angle)),
        )

    @staticmethod
    def loss_names(trace) -> tuple[str, ...]:
        """The trainer's log names of ``loss_items``."""
        return ("box_loss", "cls_loss", "dfl_loss" if trace.config.reg_max > 1 else "l1_loss", "angle_loss")

    def end_to_end(self, trace, gathered, epoch) -> None:
        """YOLO26-obb's E2ELoss(v8OBBLoss): the other branch's loss on the same images, the branch weights at
        ``epoch`` (o2m from 0.8 at epoch 0 to 0.1 at the last; o2o the rest), the weighted items (what is
        back-propagated, / batch) and the logged ones (the one2one branch's). Stage ``e2e``."""
        if "loss_items" not in trace:
            return super().end_to_end(trace, gathered, epoch)
        other = "obb-o2o" if self.model_branch == "one2many" else "obb"
        self.both_branches(trace, gathered, epoch, other, "YOLO26-obb")

    @staticmethod
    def gains(cfg) -> tuple[float, float, float, float]:
        lo = cfg.loss
        return (lo.box, lo.cls, lo.dfl, float(getattr(lo, "angle", ANGLE_GAIN)))

    def candidates(self, trace):
        if "mask_in_gts" in trace:
            return torch.nonzero(trace["mask_in_gts"] & trace["mask_gt"].bool())
        return torch.stack((trace["pair_b"], trace["pair_m"], trace["pair_a"]), 1)

    def params(self, cfg) -> dict:
        a = cfg.assigner
        out = {"topk": a.topk, "topk2": a.topk2, "alpha": a.alpha, "beta": a.beta, "eps": a.eps,
               "overlap": "probiou"}
        if cfg.enlargement is not None:  # GT sides below it (v8.4.0: below enlarge_below) are raised to it
            out["stride_val"] = cfg.enlargement[1]
            if cfg.enlargement[0] != cfg.enlargement[1]:
                out["enlarge_below"] = cfg.enlargement[0]
        return out

    def loss_meta(self, cfg) -> dict:
        box, cls, dfl, angle = self.gains(cfg)
        return {"name": self.loss_name, "gains": {"box": box, "cls": cls, "dfl": dfl, "angle": angle},
                "third_term": "l1" if cfg.reg_max == 1 else "dfl"}

    # ---------------------------------------------------------------- render hooks
    def render_assign(self, trace, con, images, full) -> None:
        from ..render.obb import render_assign

        render_assign(trace, con, images, full)

    def render_loss(self, trace, con, images) -> None:
        from ..render.obb import render_loss

        render_loss(trace, con, images)

    def render_walk(self, trace, con, full) -> None:
        from ..render.obb import render_walk

        render_walk(trace, con, full)

    def legend(self, cfg) -> str:
        return f"{cfg.assigner.name} ({cfg.assigner.profile})"


@register
class RotatedTaskAlignedOneToOne(RotatedTaskAligned):
    """YOLO26-obb's one-to-one branch: topk 7, topk2 1 (E2ELoss), the model's one2one heads; its angle channel
    is the angle itself."""

    name = "obb-o2o"
    default_topk = 7
    default_topk2 = 1
    model_branch = "one2one"
    angle_encoding = "radians"


def gt_candidate_rows(trace, image: int, gt: int) -> list[dict]:
    """One GT's candidates (``rotated_tal.gt_candidates`` on the trace's tensors, or the same rows from the
    candidate pairs when the run was assigned on pairs), best metric first."""
    from .rotated_tal import gt_candidates

    if "mask_in_gts" in trace:
        return gt_candidates(_View(trace), image, gt, trace.levels)
    from ..core.anchors import cell_of

    sel = ((trace["pair_b"] == image) & (trace["pair_m"] == gt)).nonzero().squeeze(1)
    order = torch.argsort(trace["pair_t"][sel], descending=True, stable=True)
    fg, tgi = trace["fg_mask"][image], trace["target_gt_idx"][image]
    rows = []
    for k in sel[order].tolist():
        a = int(trace["pair_a"][k])
        lv, x, y = cell_of(trace.levels, a)
        if trace["pair_pos"][k]:
            what = "positive"
        elif trace["pair_topk"][k]:
            what = f"lost to GT {int(tgi[a])}" if fg[a] and int(tgi[a]) != gt else "cut by topk2"
        else:
            what = "not in top-k"
        rows.append(dict(anchor=a, stride=lv.stride, cell=(x, y), s=float(trace["pair_s"][k]),
                         u=float(trace["pair_u"][k]), t=float(trace["pair_t"][k]), result=what))
    return rows
