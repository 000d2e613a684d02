"""YOLOv8 detection loss (BCE + CIoU + DFL) with a per-anchor breakdown.

Each term is a sum over anchors divided by ``target_scores_sum = max(sum(target_scores), 1)``:

* cls: BCE-with-logits of every anchor and class against the soft target scores;
* box: ``(1 - CIoU(pred, target)) * w`` over positives, with ``w`` the positive's target score;
* dfl: the distribution focal loss of the 4 sides (mean), times ``w``, over positives. Targets are the ltrb
  distances in grid units clamped to ``[0, reg_max - 1.01]``. With ``reg_max == 1`` the 8.4 profiles use an L1
  term on image-normalised distances instead (logged as ``l1_loss`` from 8.4.104: ``profiles.third_term_name``),
  the older ones none.

The normaliser is floored at 1 in every release but 8.0.0-8.0.6 (profile v8.0.0), which divide by the raw sum.

Reported ``loss_*`` values are gain-weighted (box 7.5, cls 0.5, dfl 1.5 by default) and, like the values
ultralytics logs, not multiplied by the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import profiles
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
        profile: a ``yolotal.profiles`` name (the L1 term at reg_max 1, the normaliser's floor).
    """
    b, a, _ = pred_logits.shape
    rule = profiles.get(profile)
    tss = target_scores.sum().clamp(min=1) if rule.floor_score_sum else target_scores.sum()
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
        elif rule.l1_term:  # reg_max == 1 (8.4): L1 on distances normalised by the image size
            size = torch.tensor([imgsz[1], imgsz[0], imgsz[1], imgsz[0]], dtype=torch.float32)
            s = stride_tensor[ai]  # (P, 1)
            l1 = ((pred_dist[bi, ai] * s) / size - (ltrb * s) / size).abs().mean(-1)
            dfl_num[bi, ai] = l1 * weight

    # totals are taken the way the reference takes them: whole sum / normaliser
    if bi.numel():
        raw_box, raw_dfl = box_num[bi, ai].sum() / tss, dfl_num[bi, ai].sum() / tss
        box_pa, dfl_pa = box_num / tss, dfl_num / tss
    else:  # no positive: the box terms are not computed (0 even where the normaliser is 0: v8.0.0)
        raw_box, raw_dfl = torch.zeros(()), torch.zeros(())
        box_pa, dfl_pa = box_num, dfl_num
    raw_cls = bce.sum() / tss
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


@dataclass(frozen=True)
class YoloxLoss:
    """YOLOX's loss (``get_losses``, L1 term off). Sums are divided by the batch's foreground count.

    loss_iou   5.0 * sum(1 - IoU^2) / num_fg     (reg_weight 5.0 included, as YOLOX logs it)
    loss_obj   sum BCE(objectness logit, fg) over every anchor / num_fg
    loss_cls   sum BCE(class logits, one-hot * IoU of the match) over foreground / num_fg
    iou_per_anchor, obj_per_anchor, cls_per_anchor (b, A): raw contributions before / num_fg
    """

    loss: torch.Tensor
    loss_iou: torch.Tensor
    loss_obj: torch.Tensor
    loss_cls: torch.Tensor
    num_fg: int
    iou_per_anchor: torch.Tensor
    obj_per_anchor: torch.Tensor
    cls_per_anchor: torch.Tensor


YOLOX_REG_WEIGHT = 5.0


def yolox_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of (n, 4) cx, cy, w, h pairs (YOLOX's IOUloss arithmetic, eps 1e-16)."""
    tl = torch.max(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    br = torch.min(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    area_p, area_g = torch.prod(pred[:, 2:], 1), torch.prod(target[:, 2:], 1)
    inter = torch.prod(br - tl, 1) * (tl < br).type(tl.type()).prod(dim=1)
    return inter / (area_p + area_g - inter + 1e-16)


def yolox_loss(
    pred_cxcywh: torch.Tensor,
    obj_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    fg: torch.Tensor,
    matched_gt: torch.Tensor,
    matched_iou: torch.Tensor,
    gt_cxcywh: list[torch.Tensor],
    gt_cls: list[torch.Tensor],
) -> YoloxLoss:
    """pred (b, A, 4) px, obj (b, A, 1), cls (b, A, nc) logits, fg/matched_gt/matched_iou (b, A) from SimOTA,
    gt_cxcywh / gt_cls: per image (n_i, 4) px and (n_i,)."""
    b, a, nc = cls_logits.shape
    reg_t, cls_t = [], []
    for i in range(b):
        m = matched_gt[i][fg[i]]
        reg_t.append(gt_cxcywh[i][m] if len(m) else pred_cxcywh.new_zeros(0, 4))
        cls_t.append(F.one_hot(gt_cls[i][m].long(), nc) * matched_iou[i][fg[i]].unsqueeze(-1) if len(m)
                     else pred_cxcywh.new_zeros(0, nc))
    reg_t, cls_t = torch.cat(reg_t), torch.cat(cls_t)
    num_fg = max(int(fg.sum()), 1)
    iou_terms = 1 - yolox_iou(pred_cxcywh.reshape(-1, 4)[fg.reshape(-1)], reg_t) ** 2
    obj_terms = F.binary_cross_entropy_with_logits(obj_logits.reshape(-1, 1), fg.reshape(-1, 1).float(),
                                                   reduction="none")
    cls_terms = F.binary_cross_entropy_with_logits(cls_logits.reshape(-1, nc)[fg.reshape(-1)], cls_t, reduction="none")
    loss_iou = YOLOX_REG_WEIGHT * (iou_terms.sum() / num_fg)
    loss_obj = obj_terms.sum() / num_fg
    loss_cls = cls_terms.sum() / num_fg
    iou_pa, cls_pa = torch.zeros(b, a), torch.zeros(b, a)
    iou_pa[fg] = iou_terms
    cls_pa[fg] = cls_terms.sum(-1)
    return YoloxLoss(loss_iou + loss_obj + loss_cls, loss_iou, loss_obj, loss_cls, num_fg, iou_pa,
                     obj_terms.view(b, a), cls_pa)
