"""The oriented-box loss (ultralytics 8.4's v8OBBLoss) with a per-anchor breakdown.

Each term is a sum over anchors divided by ``target_scores_sum = max(sum(target_scores), 1)``:

* cls: BCE-with-logits of every anchor and class against the soft target scores;
* box: ``(1 - ProbIoU(pred, target)) * w`` over positives (ProbIoU with 0.01 added to both boxes' variances),
  ``w`` the positive's target score;
* dfl: the distribution focal loss of the 4 sides (mean), times ``w``, over positives; the targets are the
  distances from the anchor to the target's sides measured along the target's own axes (``rbox_to_ltrb``), in
  grid units, clamped to [0, reg_max - 1.01]. With ``reg_max == 1``: the L1 distance of the predicted and target
  distances normalised by the image size (unclamped targets) instead;
* angle: ``sin^2(2 * d) * exp(-log(w/h)^2 / 9) * w`` over positives, d the predicted minus the target angle (the
  exp factor lets nearly square targets, whose angle means little, count less).

Reported ``loss_*`` values are gain-weighted (box 7.5, cls 0.5, dfl 1.5, angle 1.0 by default) and, like the
values ultralytics logs, not multiplied by the batch size.

GT rows narrower or lower than 2 px (after scaling to the image size) never reach the assigner: the reference
drops them first (``obb_targets``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .core.rotated import PROBIOU_FLOOR_LOSS, probiou_pairs, rbox_to_ltrb
from .loss import dfl_loss

ANGLE_LAMBDA = 3.0  # aspect-ratio sensitivity of the angle term's weight
MIN_OBB_SIDE_PX = 2.0  # GTs with w or h below this (px) are dropped before assignment
DEFAULT_OBB_GAINS = (7.5, 0.5, 1.5, 1.0)  # box, cls, dfl, angle


@dataclass(frozen=True)
class ObbTargets:
    """GTs padded per image as the assigner reads them.

    gt_labels (b, M, 1) float class ids; gt_bboxes (b, M, 5) px xywhr (zeros for padding); mask_gt (b, M, 1)
    float 1.0 for real GTs; kept (n,) bool: which input rows survived the 2 px filter; slot (n,) i64 each kept
    row's GT index in its image (-1 for dropped rows).
    """

    gt_labels: torch.Tensor
    gt_bboxes: torch.Tensor
    mask_gt: torch.Tensor
    kept: torch.Tensor
    slot: torch.Tensor


def obb_targets(batch_idx: torch.Tensor, cls: torch.Tensor, xywhr_norm: torch.Tensor, batch: int,
                imgsz: tuple[int, int]) -> ObbTargets:
    """Label rows -> padded pixel targets, as the reference's OBB loss builds them.

    batch_idx (n,), cls (n,), xywhr_norm (n, 5): centre and sides normalised by the image width/height, angle
    in radians (rows sorted by image, as a collated batch is). imgsz (h, w) px. Rows with a side under 2 px are
    dropped; the others keep their order within each image.
    """
    h, w = imgsz
    boxes = xywhr_norm.float()
    keep = (boxes[:, 2] * float(w) >= MIN_OBB_SIDE_PX) & (boxes[:, 3] * float(h) >= MIN_OBB_SIDE_PX)
    bi = batch_idx.long()[keep]
    counts = torch.bincount(bi, minlength=batch) if bi.numel() else torch.zeros(batch, dtype=torch.int64)
    m = int(counts.max()) if bi.numel() else 0
    starts = torch.cumsum(counts, 0) - counts
    within = torch.arange(bi.numel()) - starts[bi]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    px = boxes[keep].clone()
    px[:, :4] = px[:, :4] * scale
    gt_labels = torch.zeros(batch, m, 1)
    gt_bboxes = torch.zeros(batch, m, 5)
    gt_labels[bi, within, 0] = cls.float()[keep]
    gt_bboxes[bi, within] = px
    mask_gt = (gt_bboxes.sum(2, keepdim=True) > 0).float()
    slot = torch.full((len(boxes),), -1, dtype=torch.int64)
    slot[keep] = within
    return ObbTargets(gt_labels, gt_bboxes, mask_gt, keep, slot)


@dataclass(frozen=True)
class ObbLossResult:
    """Loss terms and their per-anchor parts. Shapes: b images, A anchors, nc classes.

    target_scores_sum ()        normaliser
    cls_per_anchor    (b, A)    BCE summed over classes / target_scores_sum (raw, no gain)
    box_per_anchor    (b, A)    (1 - ProbIoU) * weight / target_scores_sum at positives, 0 elsewhere (raw)
    dfl_per_anchor    (b, A)    DFL (or L1) * weight / target_scores_sum at positives (raw)
    angle_per_anchor  (b, A)    angle term * weight / target_scores_sum at positives (raw)
    probiou           (b, A)    ProbIoU (variance floor 0.01) of prediction and target at positives, 0 elsewhere
    angle_weight      (b, A)    exp(-log(w/h)^2 / 9) of the target at positives, 0 elsewhere
    dfl_target_ltrb   (b, A, 4) unclamped target distances in grid units at positives, 0 elsewhere
    dfl_clamped       (b, A, 4) bool: that side's DFL target was clamped (outside [0, reg_max - 1.01])
    loss_box/cls/dfl/angle  ()  gain-weighted totals
    raw_box/cls/dfl/angle   ()  totals before the gains
    """

    target_scores_sum: torch.Tensor
    cls_per_anchor: torch.Tensor
    box_per_anchor: torch.Tensor
    dfl_per_anchor: torch.Tensor
    angle_per_anchor: torch.Tensor
    probiou: torch.Tensor
    angle_weight: torch.Tensor
    dfl_target_ltrb: torch.Tensor
    dfl_clamped: torch.Tensor
    raw_box: torch.Tensor
    raw_cls: torch.Tensor
    raw_dfl: torch.Tensor
    raw_angle: torch.Tensor
    loss_box: torch.Tensor
    loss_cls: torch.Tensor
    loss_dfl: torch.Tensor
    loss_angle: torch.Tensor

    def per_image(self) -> dict[str, torch.Tensor]:
        """Raw terms summed per image: name -> (b,)."""
        return {k: getattr(self, f"{k}_per_anchor").sum(1) for k in ("box", "cls", "dfl", "angle")}

    def per_gt(self, target_gt_idx: torch.Tensor, fg_mask: torch.Tensor, m: int) -> dict[str, torch.Tensor]:
        """Raw box/dfl/angle terms summed per GT: name -> (b, M) (positives only; cls is per anchor)."""
        out = {}
        for k in ("box", "dfl", "angle"):
            v = getattr(self, f"{k}_per_anchor") * fg_mask
            acc = torch.zeros(v.shape[0], m, dtype=v.dtype)
            if m:
                acc.scatter_add_(1, target_gt_idx, v)
            out[k] = acc
        return out


def angle_term(pred_angle: torch.Tensor, target_rboxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair angle loss before the score weight: pred (P,) radians, targets (P, 5) -> (term (P,), weight (P,)).

    term = sin^2(2 d) with d the angle difference wrapped to [-pi/2, pi/2]; weight = exp(-log(w/h)^2 / lambda^2).
    """
    log_ar = torch.log((target_rboxes[:, 2] + 1e-9) / (target_rboxes[:, 3] + 1e-9))
    weight = torch.exp(-(log_ar**2) / (ANGLE_LAMBDA**2))
    d = pred_angle - target_rboxes[:, 4]
    d = d - torch.round(d / math.pi) * math.pi
    return torch.sin(2 * d) ** 2, weight


def obb_loss(
    pred_dist: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_rboxes: torch.Tensor,
    anchor_points: torch.Tensor,
    stride_tensor: torch.Tensor,
    fg_mask: torch.Tensor,
    target_rboxes: torch.Tensor,
    target_scores: torch.Tensor,
    imgsz: tuple[int, int],
    reg_max: int,
    gains: tuple[float, float, float, float] = DEFAULT_OBB_GAINS,
) -> ObbLossResult:
    """Loss of one batch.

    Args:
        pred_dist: (b, A, 4*reg_max) raw DFL logits (or (b, A, 4) distances when reg_max == 1).
        pred_logits: (b, A, nc) class logits.
        pred_rboxes: (b, A, 5) decoded rotated boxes, grid units (angle in radians).
        anchor_points: (A, 2) grid units; stride_tensor: (A, 1).
        fg_mask: (b, A) bool; target_rboxes: (b, A, 5) px xywhr; target_scores: (b, A, nc).
        imgsz: (h, w) px. gains: (box, cls, dfl, angle).
    """
    b, a, _ = pred_logits.shape
    tss = target_scores.sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(pred_logits, target_scores, reduction="none")
    cls_pa = bce.sum(-1) / tss

    box_num, dfl_num, ang_num = torch.zeros(b, a), torch.zeros(b, a), torch.zeros(b, a)
    piou, ang_w = torch.zeros(b, a), torch.zeros(b, a)
    ltrb_all = torch.zeros(b, a, 4)
    clamped = torch.zeros(b, a, 4, dtype=torch.bool)
    bi, ai = fg_mask.nonzero(as_tuple=True)
    if bi.numel():
        tgt = torch.cat((target_rboxes[..., :4] / stride_tensor, target_rboxes[..., 4:]), -1)  # grid units
        weight = target_scores[bi, ai].sum(-1)  # (P,)
        iou = probiou_pairs(pred_rboxes[bi, ai], tgt[bi, ai], floor=PROBIOU_FLOOR_LOSS)
        piou[bi, ai] = iou
        box_num[bi, ai] = (1.0 - iou) * weight
        ltrb = rbox_to_ltrb(tgt[bi, ai], anchor_points[ai])  # (P, 4) unclamped
        ltrb_all[bi, ai] = ltrb
        if reg_max > 1:
            hi = reg_max - 1 - 0.01
            clamped[bi, ai] = (ltrb < 0) | (ltrb > hi)
            logits = pred_dist[bi, ai].view(-1, 4, reg_max)
            dfl_num[bi, ai] = dfl_loss(logits, ltrb.clamp(0, hi), reg_max) * weight
        else:  # L1 on distances normalised by the image size
            size = torch.tensor([imgsz[1], imgsz[0], imgsz[1], imgsz[0]], dtype=torch.float32)
            s = stride_tensor[ai]
            dfl_num[bi, ai] = ((pred_dist[bi, ai] * s) / size - (ltrb * s) / size).abs().mean(-1) * weight
        term, w_ar = angle_term(pred_rboxes[bi, ai, 4], tgt[bi, ai])
        ang_w[bi, ai] = w_ar
        ang_num[bi, ai] = w_ar * term * weight

    raw_box, raw_dfl, raw_ang = (x[bi, ai].sum() / tss for x in (box_num, dfl_num, ang_num))
    raw_cls = bce.sum() / tss
    g_box, g_cls, g_dfl, g_ang = gains
    return ObbLossResult(
        target_scores_sum=tss,
        cls_per_anchor=cls_pa,
        box_per_anchor=box_num / tss,
        dfl_per_anchor=dfl_num / tss,
        angle_per_anchor=ang_num / tss,
        probiou=piou,
        angle_weight=ang_w,
        dfl_target_ltrb=ltrb_all,
        dfl_clamped=clamped,
        raw_box=raw_box,
        raw_cls=raw_cls,
        raw_dfl=raw_dfl,
        raw_angle=raw_ang,
        loss_box=raw_box * g_box,
        loss_cls=raw_cls * g_cls,
        loss_dfl=raw_dfl * g_dfl,
        loss_angle=raw_ang * g_ang,
    )
