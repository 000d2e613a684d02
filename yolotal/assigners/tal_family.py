"""Family adapters of the detection task-aligned assigner (``tal``) and YOLO26's one-to-one branch (``tal-o2o``).

Stages: candidates, metrics, topk, conflicts, targets (dense), or candidates, pairs, targets when the dense
(b, M, A) tensors would exceed ``dense_budget_mb``. Loss: the YOLOv8/YOLO11 loss (BCE, CIoU, DFL or L1).
"""

from __future__ import annotations

from .. import profiles as _profiles
from .registry import Family, register

DENSE_BYTES_PER_CELL = 32  # peak bytes per (image, GT, anchor) cell of the dense assignment and its stages


def tal_params(cfg, nc: int):
    """The TAL hyper-parameters of a run (the profile's enlargement from the config's strides)."""
    from .tal import TALParams

    return TALParams.from_config(cfg, nc)


@register
class TaskAligned(Family):
    name = "tal"
    profiles = _profiles.NAMES  # by ultralytics release (yolotal/profiles.py); aliases and auto resolve to these
    default_profile = _profiles.NEWEST
    default_topk = 10
    task_aligned = True
    pairs_fallback = True

    def assign(self, trace, cfg, inputs) -> None:
        """Dense stages, or candidate pairs when they would not fit the budget."""
        from .tal import assign, candidate_boxes
        from .tal_sparse import assign_sparse

        tal_in = inputs.tal_inputs
        b, m, n_anchors = tal_in[4].shape[0], tal_in[4].shape[1], tal_in[0].shape[1]
        params = tal_params(cfg, inputs.nc)
        need_mb = b * m * n_anchors * DENSE_BYTES_PER_CELL / 2**20
        if need_mb > cfg.dense_budget_mb:
            trace.summarised = (
                f"the dense (b, M, A) = ({b}, {m}, {n_anchors}) assignment tensors would take "
                f"about {need_mb:,.0f} MB, over the {cfg.dense_budget_mb} MB budget (--budget-mb, config "
                "dense_budget_mb): assigned on candidate pairs instead, with the same targets and loss; shown: per-GT "
                "summaries, not the in-box grids, candidate and conflict tables or (b, M, A) tensors"
            )
            sp = assign_sparse(*tal_in, params)
            trace.add("candidates", "Candidates: anchor centres inside each GT",
                      cand_bboxes=candidate_boxes(tal_in[4], tal_in[5], params))
            trace.add(
                "pairs", "Candidate pairs (image, GT, anchor)",
                pair_b=sp.pair_b, pair_m=sp.pair_m, pair_a=sp.pair_a, pair_s=sp.pair_s, pair_u=sp.pair_u,
                pair_t=sp.pair_t, pair_topk=sp.pair_topk, pair_pos=sp.pair_pos, mask_multi=sp.multi,
            )
            trace.add(
                "targets", "Targets",
                fg_mask=sp.fg_mask, target_gt_idx=sp.target_gt_idx, target_labels=sp.target_labels,
                target_bboxes=sp.target_bboxes, target_scores=sp.target_scores,
                pos_align_metrics=sp.pos_align_metrics, pos_overlaps=sp.pos_overlaps,
                norm_align_metric=sp.target_scores.amax(-1),
            )
            return
        r = assign(*tal_in, params)
        trace.add("candidates", "Candidates: anchor centres inside each GT", cand_bboxes=r.cand_bboxes,
                  mask_in_gts=r.mask_in_gts)
        trace.add("metrics", "Alignment metric t = s^alpha * u^beta",
                  bbox_scores=r.bbox_scores, overlaps=r.overlaps, align_metric=r.align_metric)
        record_selection(trace, r)

    def loss(self, trace, cfg, inputs) -> None:
        v8_loss(trace, cfg)

    def candidates(self, trace):
        import torch

        if "mask_in_gts" in trace:
            return torch.nonzero(trace["mask_in_gts"] & trace["mask_gt"].bool())
        return torch.stack((trace["pair_b"], trace["pair_m"], trace["pair_a"]), 1)

    def params(self, cfg) -> dict:
        a = cfg.assigner
        out = {"topk": a.topk, "topk2": a.topk2, "alpha": a.alpha, "beta": a.beta, "eps": a.eps}
        if cfg.enlargement is not None:  # GT sides below it (v8.4.0: below enlarge_below) are enlarged to it
            out["stride_val"] = cfg.enlargement[1]
            if cfg.enlargement[0] != cfg.enlargement[1]:
                out["enlarge_below"] = cfg.enlargement[0]
        return out

    def render_assign(self, trace, con, images, full) -> None:
        from ..render.terminal import render_assign

        render_assign(trace, con, images, full)

    def render_walk(self, trace, con, full) -> None:
        from ..render.walk import walk_tal

        walk_tal(trace, con, full)

    def legend(self, cfg) -> str:
        return cfg.assigner.profile


@register
class TaskAlignedOneToOne(TaskAligned):
    """YOLO26 / YOLOv10 one-to-one branch: topk 7 and topk2 1 by default, the model's one2one heads."""

    name = "tal-o2o"
    default_topk = 7
    default_topk2 = 1
    model_branch = "one2one"


def record_selection(trace, r, conflicts: str = "Conflict resolution", boxes: str = "target_bboxes") -> None:
    """The stages every task-aligned family records after its metric, from its TALResult ``r``: topk,
    conflicts (titled ``conflicts``) and targets (the target boxes under the name ``boxes``)."""
    trace.add("topk", "Top-k picks", topk_idxs=r.topk_idxs, mask_topk=r.mask_topk, mask_pos_topk=r.mask_pos_topk)
    trace.add("conflicts", conflicts, mask_multi=r.mask_multi, mask_pos=r.mask_pos)
    trace.add("targets", "Targets", fg_mask=r.fg_mask, target_gt_idx=r.target_gt_idx, target_labels=r.target_labels,
              **{boxes: r.target_bboxes}, target_scores=r.target_scores, pos_align_metrics=r.pos_align_metrics,
              pos_overlaps=r.pos_overlaps, norm_align_metric=r.norm_align_metric)


def v8_loss(trace, cfg) -> None:
    """The YOLOv8/YOLO11 loss stage (BCE, CIoU, DFL or L1) from the targets already in the trace."""
    from ..loss import detection_loss

    lo = detection_loss(
        trace["pred_distri"], trace["pred_logits"], trace["pred_bboxes_grid"], trace["anchor_points"],
        trace["stride_tensor"], trace["fg_mask"], trace["target_bboxes"], trace["target_scores"], cfg.imgsz,
        cfg.reg_max, (cfg.loss.box, cfg.loss.cls, cfg.loss.dfl), cfg.loss_profile,
    )
    trace.add(
        "loss", "Loss",
        loss_box=lo.loss_box, loss_cls=lo.loss_cls, loss_dfl=lo.loss_dfl, target_scores_sum=lo.target_scores_sum,
        raw_box=lo.raw_box, raw_cls=lo.raw_cls, raw_dfl=lo.raw_dfl,
        cls_per_anchor=lo.cls_per_anchor, box_per_anchor=lo.box_per_anchor, dfl_per_anchor=lo.dfl_per_anchor,
        ciou=lo.ciou, dfl_target_ltrb=lo.dfl_target_ltrb, dfl_clamped=lo.dfl_clamped,
    )
