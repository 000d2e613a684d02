"""YOLOv8 detection loss (BCE + CIoU + DFL) with a per-anchor breakdown.

Each term is a sum over anchors divided by ``target_scores_sum = max(sum(target_scores), 1)``:

* cls: BCE-with-logits of every anchor and class against the soft target scores;
* box: ``(1 - CIoU(pred, target)) * w`` over positives, with ``w`` the positive's target score;
* dfl: the distribution focal loss of the 4 sides (mean), times ``w``, over positives. Targets are the ltrb
  distances in grid units clamped to ``[0, reg_max - 1.01]``. With ``reg_max == 1`` the ultralytics profile
  uses an L1 term on image-normalised distances instead, the classic profile none.

Reported ``loss_*`` values are gain-weighted (box 7.5, cls 0.5, dfl 1.5 by default) and, like the values
ultralytics logs, not multiplied by the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .core.boxes import complete_box_iou_pairs
from .core.decode import xyxy_to_ltrb


@dataclass(frozen=True)
class LossResult:
    """Loss terms and their per-anchor parts. Shapes: b images, A anchors, nc classes.

    target_scores_sum ()        normaliser
    cls_per_anchor    (b, A)    BCE summed over classes / target_scores_sum (raw, no gain)
    box_per_anchor    (b, A)    (1 - CIoU) * weight / target_scores_sum at positives, 0 elsewhere (raw)
    dfl_per_anchor    (b, A)    DFL (or L1) * weight / target_scores_sum at positives, 0 elsewhere (raw)
    ciou              (b, A)    CIoU of prediction and target at positives, 0 elsewhere
    dfl_target_ltrb   (b, A, 4) unclamped target distances in grid units at positives, 0 elsewhere
    dfl_clamped       (b, A, 4) bool: that side's DFL target was clamped (outside [0, reg_max - 1.01])
    loss_box/cls/dfl  ()        gain-weighted totals
    raw_box/cls/dfl   ()        totals before the gains
    """

    target_scores_sum: torch.Tensor
    cls_per_anchor: torch.Tensor
    box_per_anchor: torch.Tensor
    dfl_per_anchor: torch.Tensor
    ciou: torch.Tensor
    dfl_target_ltrb: torch.Tensor
    dfl_clamped: torch.Tensor
    raw_box: torch.Tensor
    raw_cls: torch.Tensor
    raw_dfl: torch.Tensor
    loss_box: torch.Tensor
    loss_cls: torch.Tensor
    loss_dfl: torch.Tensor


def dfl_loss(logits: torch.Tensor, target: torch.Tensor, reg_max: int) -> torch.Tensor:
    """DFL (Li et al. 2020) of Tensor[P, 4, reg_max] logits against Tensor[P, 4] distances -> Tensor[P].

    The target is split between its two neighbouring bins with linear weights; the loss is the weighted
    cross-entropy of both, averaged over the four sides.
    """
    t = target.clamp(0, reg_max - 1 - 0.01)
    left = t.long()
    right = left + 1
    w_left = right - t
    w_right = 1 - w_left
    logp = F.log_softmax(logits, dim=-1)  # (P, 4, reg_max)
    nll = logp.gather(-1, left.unsqueeze(-1)).squeeze(-1) * w_left + logp.gather(-1, right.unsqueeze(-1)).squeeze(-1) * w_right
    return -nll.mean(-1)


def detection_loss(
    pred_dist: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_bboxes: torch.Tensor,
    anchor_points: torch.Tensor,
    stride_tensor: torch.Tensor,
    fg_mask: torch.Tensor,
    target_bboxes: torch.Tensor,
    target_scores: torch.Tensor,
    imgsz: tuple[int, int],
    reg_max: int,
    gains: tuple[float, float, float],
    profile: str = "ultralytics",
) -> LossResult:
    """Loss of one batch.

    Args:
        pred_dist: (b, A, 4*reg_max) raw DFL logits (or (b, A, 4) distances when reg_max == 1).
        pred_logits: (b, A, nc) class logits.
        pred_bboxes: (b, A, 4) decoded boxes, grid units xyxy.
        anchor_points: (A, 2) grid units; stride_tensor: (A, 1).
        fg_mask: (b, A) bool; target_bboxes: (b, A, 4) px xyxy; target_scores: (b, A, nc).
        imgsz: (h, w) px. gains: (box, cls, dfl).
    """
    b, a, _ = pred_logits.shape
    tss = target_scores.sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(pred_logits, target_scores, reduction="none")  # (b, A, nc)
    cls_pa = bce.sum(-1) / tss  # (b, A)

    box_num = torch.zeros(b, a)  # numerators: (1 - CIoU) * weight, DFL * weight
    dfl_num = torch.zeros(b, a)
    ciou = torch.zeros(b, a)
    ltrb_all = torch.zeros(b, a, 4)
    clamped = torch.zeros(b, a, 4, dtype=torch.bool)
    bi, ai = fg_mask.nonzero(as_tuple=True)
    if bi.numel():
        tgt_grid = target_bboxes / stride_tensor  # (b, A, 4) grid units
        weight = target_scores[bi, ai].sum(-1)  # (P,)
        iou = complete_box_iou_pairs(pred_bboxes[bi, ai], tgt_grid[bi, ai])  # (P,)
        ciou[bi, ai] = iou
        box_num[bi, ai] = (1.0 - iou) * weight
        ltrb = xyxy_to_ltrb(anchor_points[ai], tgt_grid[bi, ai])  # (P, 4) unclamped
        ltrb_all[bi, ai] = ltrb
        if reg_max > 1:
            clamped[bi, ai] = (ltrb < 0) | (ltrb > reg_max - 1 - 0.01)
            logits = pred_dist[bi, ai].view(-1, 4, reg_max)
            dfl_num[bi, ai] = dfl_loss(logits, ltrb.clamp(0, reg_max - 1 - 0.01), reg_max) * weight
        elif profile == "ultralytics":  # reg_max == 1: L1 on distances normalised by the image size
            size = torch.tensor([imgsz[1], imgsz[0], imgsz[1], imgsz[0]], dtype=torch.float32)
            s = stride_tensor[ai]  # (P, 1)
            l1 = ((pred_dist[bi, ai] * s) / size - (ltrb * s) / size).abs().mean(-1)
            dfl_num[bi, ai] = l1 * weight

    # totals are taken the way the reference takes them: whole sum / normaliser
    raw_box, raw_dfl = box_num[bi, ai].sum() / tss, dfl_num[bi, ai].sum() / tss
    raw_cls = bce.sum() / tss
    box_pa, dfl_pa = box_num / tss, dfl_num / tss
    g_box, g_cls, g_dfl = gains
    return LossResult(
        target_scores_sum=tss,
        cls_per_anchor=cls_pa,
        box_per_anchor=box_pa,
        dfl_per_anchor=dfl_pa,
        ciou=ciou,
        dfl_target_ltrb=ltrb_all,
        dfl_clamped=clamped,
        raw_box=raw_box,
        raw_cls=raw_cls,
        raw_dfl=raw_dfl,
        loss_box=raw_box * g_box,
        loss_cls=raw_cls * g_cls,
        loss_dfl=raw_dfl * g_dfl,
    )
