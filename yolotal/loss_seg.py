"""Segmentation losses of ultralytics 8.4 (YOLOv8/YOLO11-seg ``v8SegmentationLoss``, YOLO26-seg
``SegmentLoss26``), with per-anchor parts.

The box, cls and dfl (or l1) terms are the detection loss (:func:`yolotal.loss.detection_loss`) on the
assignment's targets: the detection TAL for YOLOv8/YOLO11, the mask-aware TAL
(:mod:`yolotal.assigners.seg_tal`) for YOLO26. On top of them:

* seg: for each positive anchor, its predicted mask logits ``coef @ protos`` against its GT's mask, binary
  cross-entropy per pixel, kept only inside the GT box (at prototype resolution: columns
  ``x1 <= c < x2``, rows ``y1 <= r < y2``), averaged over *all* prototype pixels and divided by the GT box's
  area as a fraction of the image. Summed over positives and images, divided by the number of positives,
  times the box gain (7.5).
* sem (models whose prototype branch also returns semantic logits, i.e. YOLO26-seg while training): the
  per-pixel class target (the class of the smallest GT mask covering the pixel; no class where none does)
  one-hot, resized to the logits' size (nearest), scored by 0.5·BCE (mean) + 0.5·Dice (sigmoid, smooth 1,
  mean over classes and images), times the box gain. Computed only when the batch has a positive.

Like the values ultralytics logs, the reported terms are gain-weighted and not multiplied by the batch size.
End-to-end models (YOLO26) train two branches: one-to-many (topk 10) and one-to-one (topk 7, topk2 1), total
``0.8 · o2m + 0.2 · o2o`` at the start of training (see :func:`e2e_weights`), the logged items the o2o ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .loss import LossResult, detection_loss

SEM_BCE_WEIGHT = 0.5
SEM_DICE_WEIGHT = 0.5
SEM_DICE_SMOOTH = 1.0


@dataclass(frozen=True)
class SegLossResult:
    """Loss terms of a segmentation batch. b images, A anchors, M GT slots.

    det             LossResult  box / cls / dfl (or l1) terms, as for detection
    n_fg            int         positives (the seg term's normaliser)
    seg_per_anchor  (b, A)      each positive's cropped BCE mean / box area (raw: before / n_fg and the gain)
    bce_sum_in_box  (b, A)      each positive's BCE summed over the pixels inside its GT box
    box_area        (b, A)      its GT box area as a fraction of the image (0 for background)
    raw_seg, loss_seg ()        sum(seg_per_anchor) / n_fg; times the box gain
    has_semantic    bool        the heads carry semantic logits
    raw_sem_bce, raw_sem_dice ()  the semantic BCE and Dice parts (0 without semantic logits or positives)
    raw_sem, loss_sem ()        0.5·BCE + 0.5·Dice; times the box gain
    """

    det: LossResult
    n_fg: int
    seg_per_anchor: torch.Tensor
    bce_sum_in_box: torch.Tensor
    box_area: torch.Tensor
    raw_seg: torch.Tensor
    loss_seg: torch.Tensor
    has_semantic: bool
    raw_sem_bce: torch.Tensor
    raw_sem_dice: torch.Tensor
    raw_sem: torch.Tensor
    loss_sem: torch.Tensor

    def items(self, reg_max: int) -> dict[str, float]:
        """The loss items ultralytics logs, in its order: box, seg, cls, dfl (or l1), sem."""
        last = "dfl_loss" if reg_max > 1 else "l1_loss"
        return {"box_loss": float(self.det.loss_box), "seg_loss": float(self.loss_seg), "cls_loss": float(self.det.loss_cls),
                last: float(self.det.loss_dfl), "sem_loss": float(self.loss_sem)}

    def total(self, batch_size: int) -> torch.Tensor:
        """The loss the trainer back-propagates for this branch: the sum of the gain-weighted terms times the
        batch size (an end-to-end model adds its two branches with :func:`e2e_weights`)."""
        det = self.det
        return (det.loss_box + self.loss_seg + det.loss_cls + det.loss_dfl + self.loss_sem) * batch_size

    def seg_per_gt(self, target_gt_idx: torch.Tensor, fg_mask: torch.Tensor, m: int) -> torch.Tensor:
        """(b, M) each GT's share of raw_seg (its positives' seg_per_anchor / n_fg)."""
        b = fg_mask.shape[0]
        out = torch.zeros(b, m)
        out.scatter_add_(1, torch.where(fg_mask, target_gt_idx, 0), self.seg_per_anchor * fg_mask / max(self.n_fg, 1))
        return out


def e2e_weights(updates: int = 0, epochs: int = 100) -> tuple[float, float]:
    """(one-to-many, one-to-one) weights of an end-to-end loss after ``updates`` epochs' decay steps."""
    from .e2e import branch_weights

    return branch_weights(updates, epochs)


def mask_targets_from_index(index: torch.Tensor, m: int) -> torch.Tensor:
    """Overlap index images (b, H, W) (value i + 1 = object slot i) -> (b, M, H, W) bool GT masks."""
    return index[:, None] == torch.arange(1, m + 1, dtype=index.dtype)[:, None, None]


def mask_bce_terms(
    coef: torch.Tensor, proto: torch.Tensor, gt_mask: torch.Tensor, box: torch.Tensor, area: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's positives: coef (n, nm), proto (nm, H, W), gt_mask (n, H, W) float, box (n, 4) xyxy in
    prototype pixels, area (n,) image fractions -> (seg term (n,) = cropped BCE mean / area, BCE sum in box (n,))."""
    logits = torch.einsum("in,nhw->ihw", coef, proto)  # (n, H, W)
    bce = F.binary_cross_entropy_with_logits(logits, gt_mask, reduction="none")
    _, h, w = bce.shape
    cols = torch.arange(w, dtype=box.dtype)[None, None, :]
    rows = torch.arange(h, dtype=box.dtype)[None, :, None]
    x1, y1, x2, y2 = (box[:, i, None, None] for i in range(4))  # (n, 1, 1)
    bce = bce * ((cols >= x1) * (cols < x2))
    bce = bce * ((rows >= y1) * (rows < y2))
    return bce.mean(dim=(1, 2)) / area, bce.sum(dim=(1, 2))


def semantic_targets(gt_masks: torch.Tensor, gt_cls: torch.Tensor, valid: torch.Tensor, nc: int) -> torch.Tensor:
    """(b, M, H, W) bool masks, (b, M) classes, (b, M) bool -> (b, nc, H, W) one-hot: at each covered pixel the
    class of the smallest covering GT mask (ties: the lower slot), nothing where no mask covers it."""
    b, m, h, w = gt_masks.shape
    out = torch.zeros(b, nc, h, w)
    if not m:
        return out
    masks = gt_masks & valid[:, :, None, None]
    area = masks.flatten(2).sum(-1)  # (b, M)
    big = torch.iinfo(torch.int64).max
    key = torch.where(masks, area[:, :, None, None], torch.full((), big, dtype=torch.int64))
    owner = key.argmin(1)  # (b, H, W) first minimum
    present = masks.any(1)
    cls = gt_cls.long().clamp(min=0).gather(1, owner.flatten(1)).view(b, h, w)
    out.scatter_(1, cls[:, None], present[:, None].float())
    return out


def semantic_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pred (b, nc, h, w) logits, target (b, nc, H, W) one-hot -> (BCE mean, Dice loss), target resized
    to (h, w) by nearest neighbour first."""
    if tuple(target.shape[-2:]) != tuple(pred.shape[-2:]):
        target = F.interpolate(target, pred.shape[-2:], mode="nearest")
    bce = F.binary_cross_entropy_with_logits(pred, target)
    p = pred.sigmoid()
    inter = (p * target).sum(dim=(2, 3))
    union = p.sum(dim=(2, 3)) + target.sum(dim=(2, 3))
    dice = 1.0 - (2.0 * inter + SEM_DICE_SMOOTH) / (union + SEM_DICE_SMOOTH)
    return bce, dice.mean(dim=1).mean()


def segmentation_loss(
    pred_dist: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_bboxes: torch.Tensor,
    anchor_points: torch.Tensor,
    stride_tensor: torch.Tensor,
    fg_mask: torch.Tensor,
    target_gt_idx: torch.Tensor,
    target_bboxes: torch.Tensor,
    target_scores: torch.Tensor,
    pred_coef: torch.Tensor,
    proto: torch.Tensor,
    gt_masks: torch.Tensor,
    imgsz: tuple[int, int],
    reg_max: int,
    gains: tuple[float, float, float],
    semantic: torch.Tensor | None = None,
    gt_cls: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> SegLossResult:
    """Segmentation loss of one batch (one branch).

    Args:
        pred_dist, pred_logits, pred_bboxes, anchor_points, stride_tensor, fg_mask, target_bboxes,
            target_scores, imgsz, reg_max, gains: as :func:`yolotal.loss.detection_loss` takes them.
        target_gt_idx: (b, A) GT slot of each anchor (from the assignment).
        pred_coef: (b, A, nm) mask coefficients. proto: (b, nm, mh, mw) prototypes.
        gt_masks: (b, M, H, W) bool GT masks (H, W: imgsz / mask ratio; prototypes are resized bilinearly
            to it when they differ).
        semantic: (b, nc, h, w) semantic logits or None; gt_cls (b, M) and valid (b, M) bool are needed with it.
    """
    det = detection_loss(pred_dist, pred_logits, pred_bboxes, anchor_points, stride_tensor, fg_mask, target_bboxes,
                         target_scores, imgsz, reg_max, gains)
    g_box = gains[0]
    b, a = fg_mask.shape
    seg_pa = torch.zeros(b, a)
    bce_in = torch.zeros(b, a)
    area_pa = torch.zeros(b, a)
    n_fg = int(fg_mask.sum())
    zero = torch.zeros(())
    raw_seg, raw_bce, raw_dice, raw_sem = zero, zero, zero, zero
    if n_fg:
        h_m, w_m = gt_masks.shape[-2:]
        if tuple(proto.shape[-2:]) != (h_m, w_m):
            proto = F.interpolate(proto, (h_m, w_m), mode="bilinear", align_corners=False)
        img_h, img_w = imgsz
        size = torch.tensor([img_w, img_h, img_w, img_h], dtype=target_bboxes.dtype)
        norm = target_bboxes / size  # (b, A, 4)
        area = (norm[..., 2] - norm[..., 0]) * (norm[..., 3] - norm[..., 1])  # (b, A)
        mxyxy = norm * torch.tensor([w_m, h_m, w_m, h_m], dtype=norm.dtype)
        total = torch.zeros(())
        for i in range(b):
            fg = fg_mask[i]
            if not fg.any():
                continue
            gm = gt_masks[i, target_gt_idx[i, fg]].float()
            term, bsum = mask_bce_terms(pred_coef[i, fg], proto[i], gm, mxyxy[i, fg], area[i, fg])
            seg_pa[i, fg], bce_in[i, fg], area_pa[i, fg] = term, bsum, area[i, fg]
            total = total + term.sum()
        raw_seg = total / n_fg
        if semantic is not None:
            target = semantic_targets(gt_masks, gt_cls, valid, semantic.shape[1])
            raw_bce, raw_dice = semantic_loss(semantic, target)
            raw_sem = SEM_BCE_WEIGHT * raw_bce + SEM_DICE_WEIGHT * raw_dice
    return SegLossResult(
        det=det, n_fg=n_fg, seg_per_anchor=seg_pa, bce_sum_in_box=bce_in, box_area=area_pa, raw_seg=raw_seg,
        loss_seg=raw_seg * g_box, has_semantic=semantic is not None, raw_sem_bce=raw_bce, raw_sem_dice=raw_dice,
        raw_sem=raw_sem, loss_sem=raw_sem * g_box,
    )
