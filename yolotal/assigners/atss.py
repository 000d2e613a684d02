"""ATSS as YOLOv6's ``ATSSAssigner`` / mmyolo's ``BatchATSSAssigner`` run it, with every intermediate kept.

Each anchor point carries a prior box of 5 strides (side) centred on it. For each GT:

1. per level, the ``topk`` (9) priors whose centres are nearest the GT centre are candidates;
2. the IoU of the GT with each candidate prior; threshold = mean + std (unbiased) of those IoUs;
3. candidates with IoU > threshold whose centre lies strictly inside the GT box are positives;
4. an anchor positive for several GTs goes to the GT whose prior IoU is largest (lowest index on ties).

Soft target score of a positive: the IoU of its GT with the anchor's *predicted* box (YOLOv6).
Assignment itself never looks at the predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRID_CELL_SIZE = 5.0


@dataclass(frozen=True)
class ATSSResult:
    """b images, M GT slots, A anchors, K = topk * levels candidates per GT.

    priors        (A, 4)      prior boxes px xyxy
    overlaps      (b, M, A)   IoU(GT, prior)
    distances     (b, M, A)   GT centre to anchor centre, px
    candidate_idxs (b, M, K)  per level, the topk nearest anchors
    is_candidate  (b, M, A)   bool
    threshold     (b, M)      mean + std of the candidates' IoUs
    is_pos        (b, M, A)   candidate with IoU > threshold
    in_gt         (b, M, A)   anchor centre strictly inside the GT
    mask_pos      (b, M, A)   final positives after conflicts
    fg_mask, target_gt_idx (b, A); target_scores (b, A, nc) one-hot * IoU(GT, prediction)
    """

    priors: torch.Tensor
    overlaps: torch.Tensor
    distances: torch.Tensor
    candidate_idxs: torch.Tensor
    is_candidate: torch.Tensor
    threshold: torch.Tensor
    is_pos: torch.Tensor
    in_gt: torch.Tensor
    mask_pos: torch.Tensor
    fg_mask: torch.Tensor
    target_gt_idx: torch.Tensor
    target_labels: torch.Tensor
    target_bboxes: torch.Tensor
    target_scores: torch.Tensor


def priors_for(anc_points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(A, 2) px centres, (A, 1) strides -> (A, 4) prior boxes of GRID_CELL_SIZE strides, xyxy."""
    half = GRID_CELL_SIZE * strides * 0.5
    return torch.cat((anc_points - half, anc_points + half), 1)


def box_iou_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU, union floored at eps (mmdet's bbox_overlaps)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = torch.max(area_a[:, None] + area_b[None] - overlap, torch.tensor([eps]))
    return overlap / union


def pair_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """(b, M, 4) GTs x (b, A, 4) predictions xyxy -> (b, M, A) IoU (YOLOv6's iou_calculator)."""
    a, b = a.unsqueeze(2), b.unsqueeze(1)
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    overlap = (rb - lt).clip(0).prod(-1)
    area1 = (a[..., 2:] - a[..., :2]).clip(0).prod(-1)
    area2 = (b[..., 2:] - b[..., :2]).clip(0).prod(-1)
    return overlap / (area1 + area2 - overlap + eps)


def assign(
    anc_points: torch.Tensor,
    strides: torch.Tensor,
    level_sizes: list[int],
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    pd_bboxes: torch.Tensor,
    num_classes: int,
    topk: int = 9,
) -> ATSSResult:
    """anc_points (A, 2) px, strides (A, 1), level_sizes anchors per level, gt_* padded as for TAL,
    pd_bboxes (b, A, 4) px xyxy."""
    b, m = gt_bboxes.shape[:2]
    a = anc_points.shape[0]
    priors = priors_for(anc_points, strides)
    flat = gt_bboxes.reshape(-1, 4)
    overlaps = box_iou_matrix(flat, priors).reshape(b, m, a)
    gt_c = torch.stack(((flat[:, 0] + flat[:, 2]) / 2.0, (flat[:, 1] + flat[:, 3]) / 2.0), 1)
    ac = torch.stack(((priors[:, 0] + priors[:, 2]) / 2.0, (priors[:, 1] + priors[:, 3]) / 2.0), 1)
    distances = (gt_c[:, None, :] - ac[None]).pow(2).sum(-1).sqrt().reshape(b, m, a)

    valid = mask_gt.bool()  # (b, M, 1)
    cand_parts, idx_parts, start = [], [], 0
    for size, dist in zip(level_sizes, torch.split(distances, level_sizes, dim=-1)):
        k = min(topk, size)
        idx = dist.topk(k, dim=-1, largest=False).indices  # (b, M, k)
        idx_parts.append(idx + start)
        idx = torch.where(valid.expand(-1, -1, k), idx, torch.zeros_like(idx))
        count = torch.zeros(b, m, size, dtype=torch.int64).scatter_add_(-1, idx, torch.ones_like(idx))
        cand_parts.append(count == 1)
        start += size
    is_candidate = torch.cat(cand_parts, -1)
    candidate_idxs = torch.cat(idx_parts, -1)

    cand_overlaps = torch.where(is_candidate, overlaps, torch.zeros_like(overlaps))
    gathered = cand_overlaps.gather(-1, candidate_idxs)  # (b, M, K)
    threshold = gathered.mean(-1) + gathered.std(-1)
    is_pos = is_candidate & (cand_overlaps > threshold.unsqueeze(-1))
    x, y = ac[:, 0], ac[:, 1]
    g = gt_bboxes
    in_gt = ((x - g[..., 0:1] > 1e-9) & (y - g[..., 1:2] > 1e-9) & (g[..., 2:3] - x > 1e-9) & (g[..., 3:4] - y > 1e-9))
    mask_pos = is_pos & in_gt & valid

    multi = mask_pos.sum(1) > 1  # (b, A)
    if m:
        best = overlaps.argmax(1)
        is_best = torch.zeros_like(mask_pos).scatter_(1, best.unsqueeze(1), True)
        mask_pos = torch.where(multi.unsqueeze(1), is_best, mask_pos)
        fg, target_gt_idx = mask_pos.to(torch.int8).max(1)
    else:
        fg, target_gt_idx = torch.zeros(b, a, dtype=torch.int8), torch.zeros(b, a, dtype=torch.int64)
    fg_mask = fg.bool()
    bidx = torch.arange(b).unsqueeze(1)
    if m:
        labels = gt_labels[..., 0].long()[bidx, target_gt_idx]
        target_bboxes = gt_bboxes[bidx, target_gt_idx]
    else:
        labels, target_bboxes = torch.zeros(b, a, dtype=torch.int64), torch.zeros(b, a, 4)
    target_labels = torch.where(fg_mask, labels, torch.full_like(labels, num_classes))
    target_scores = torch.nn.functional.one_hot(target_labels, num_classes + 1)[..., :num_classes].float()
    if m:
        ious = (pair_iou(gt_bboxes, pd_bboxes) * mask_pos).max(-2).values  # (b, A)
        target_scores = target_scores * ious.unsqueeze(-1)
    return ATSSResult(priors, overlaps, distances, candidate_idxs, is_candidate, threshold, is_pos, in_gt, mask_pos,
                      fg_mask, target_gt_idx, target_labels, target_bboxes, target_scores)
