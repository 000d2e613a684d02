"""Family adapter of ATSS (YOLOv6 / mmyolo BatchATSSAssigner semantics) feeding the YOLOv8 loss."""

from __future__ import annotations

from .registry import Family, register
from .tal_family import v8_loss


def check_dense_budget(name: str, shape: str, cells: int, bytes_per_cell: int, cfg) -> None:
    """Assigners that are dense by nature refuse inputs that would not fit the budget, instead of swapping."""
    from ..errors import InputError

    need_mb = cells * bytes_per_cell / 2**20
    if need_mb > cfg.dense_budget_mb:
        raise InputError(
            f"{name} builds dense {shape} tensors: about {need_mb:,.0f} MB here, over the {cfg.dense_budget_mb} MB "
            "budget; raise --budget-mb (config dense_budget_mb) if the machine has the memory, or show fewer images "
            "or GTs (only tal and tal-o2o can fall back to candidate pairs)"
        )


@register
class ATSS(Family):
    name = "atss"
    profiles = ("yolov6",)
    default_profile = "yolov6"
    default_topk = 9  # candidates per level

    def assign(self, trace, cfg, inputs) -> None:
        from . import atss

        _, pd_bboxes, anc_px, gt_labels, gt_bboxes, mask_gt = inputs.tal_inputs
        check_dense_budget("atss", "(b, M, A)", gt_bboxes.shape[0] * gt_bboxes.shape[1] * anc_px.shape[0], 40, cfg)
        r = atss.assign(anc_px, trace["stride_tensor"], [lv.count for lv in trace.levels], gt_labels, gt_bboxes,
                        mask_gt, pd_bboxes, inputs.nc, cfg.assigner.topk)
        trace.add("atss_candidates", f"ATSS candidates: the {cfg.assigner.topk} nearest prior boxes per level",
                  priors=r.priors, prior_overlaps=r.overlaps, distances=r.distances, candidate_idxs=r.candidate_idxs,
                  is_candidate=r.is_candidate)
        trace.add("atss_threshold", "IoU threshold = mean + std of each GT's candidates", iou_threshold=r.threshold,
                  is_pos=r.is_pos, in_gt=r.in_gt)
        trace.add("conflicts", "Conflict resolution: the largest prior IoU wins", mask_pos=r.mask_pos)
        trace.add("targets", "Targets", fg_mask=r.fg_mask, target_gt_idx=r.target_gt_idx,
                  target_labels=r.target_labels, target_bboxes=r.target_bboxes, target_scores=r.target_scores)

    def loss(self, trace, cfg, inputs) -> None:
        v8_loss(trace, cfg)

    def candidates(self, trace):
        import torch

        return torch.nonzero(trace["is_candidate"] & trace["mask_gt"].bool())

    def render_image(self, trace, con, image: int, rows: int, full: bool) -> None:
        from ..render.others import atss_image

        atss_image(trace, con, image, rows)
