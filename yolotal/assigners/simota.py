"""YOLOX's SimOTA (``yolox/models/yolo_head.py``), one image at a time, with every intermediate kept.

Profiles:
* ``yolox`` (YOLOX main since 2023): candidates are anchors whose centre lies within 1.5 strides of a GT
  centre (a square, per level); no in-box test; cost penalty 1e6 for a pair outside that square.
* ``yolox-0.3`` (the PyPI package 0.3.0 and YOLOX before 2023): candidates are anchors inside some GT box
  *or* within 2.5 strides of some GT centre; penalty 100000 for a pair that is not both in that GT's box and
  in its centre square.

Then, on the candidates C of the image: pairwise IoU (n, C) of GT and predicted boxes, cost =
BCE(sqrt(sigmoid(cls) * sigmoid(obj)), one-hot) summed over classes + 3 * (-log(IoU + 1e-8)) + penalty;
each GT's dynamic k = max(1, int(sum of its topk (10) largest IoUs)); each GT takes its k lowest-cost candidates;
an anchor taken by several GTs goes to the GT of lowest cost there.

Head layout accepted: per level (b, 5 + nc, h, w) = YOLOX's raw output order reg (x, y, log w, log h),
objectness, class logits. Decoded: centre = (reg_xy + cell index) * stride, size = exp(reg_wh) * stride.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PROFILES = {"yolox": (1.5, 1e6, False), "yolox-0.3": (2.5, 100000.0, True)}  # radius, penalty, box test
N_CANDIDATE_K = 10
CLS_COST_BLOCK = 1 << 24  # elements of the (GTs, C, nc) class-cost temporary per block


@dataclass(frozen=True)
class SimOTAImage:
    """One image. n GTs, A anchors, C candidate anchors.

    candidates     (A,) bool   anchors considered (the reference's first fg_mask)
    in_box, in_centre (n, A) bool   anchor centre inside the GT box / its centre square
    geometry       (n, C) bool pair allowed without penalty
    ious           (n, C)      IoU(GT, predicted box)
    cls_cost       (n, C)      BCE of sqrt(cls * obj) against the GT's one-hot class, summed
    iou_cost       (n, C)      3 * -log(IoU + 1e-8)
    cost           (n, C)      cls_cost + iou_cost + penalty * ~geometry
    topk_ious      (n, 10)     each GT's largest IoUs; dynamic_k (n,) = max(1, int(sum))
    picked         (n, C) bool each GT's dynamic_k lowest-cost candidates
    matching       (n, C) bool after conflicts (lowest cost wins)
    fg             (A,) bool   positives; matched_gt (A,) i64 (-1 for background); matched_iou (A,)
    """

    candidates: torch.Tensor
    in_box: torch.Tensor
    in_centre: torch.Tensor
    geometry: torch.Tensor
    ious: torch.Tensor
    cls_cost: torch.Tensor
    iou_cost: torch.Tensor
    cost: torch.Tensor
    topk_ious: torch.Tensor
    dynamic_k: torch.Tensor
    picked: torch.Tensor
    matching: torch.Tensor
    fg: torch.Tensor
    matched_gt: torch.Tensor
    matched_iou: torch.Tensor

    @property
    def cand_index(self) -> torch.Tensor:
        """(C,) anchor index of each candidate column."""
        return torch.nonzero(self.candidates).flatten()


def decode(reg: torch.Tensor, cell_xy: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """reg (..., A, 4) raw, cell_xy (A, 2) cell indices, strides (A, 1) -> (..., A, 4) px cx, cy, w, h."""
    return torch.cat(((reg[..., :2] + cell_xy) * strides, torch.exp(reg[..., 2:4]) * strides), -1)


def pair_iou_cxcywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of (n, 4) and (m, 4) centre-size boxes -> (n, m); touching boxes give 0."""
    tl = torch.max(a[:, None, :2] - a[:, None, 2:] / 2, b[:, :2] - b[:, 2:] / 2)
    br = torch.min(a[:, None, :2] + a[:, None, 2:] / 2, b[:, :2] + b[:, 2:] / 2)
    area_a, area_b = torch.prod(a[:, 2:], 1), torch.prod(b[:, 2:], 1)
    inside = (tl < br).type(tl.type()).prod(dim=2)
    inter = torch.prod(br - tl, 2) * inside
    return inter / (area_a[:, None] + area_b - inter)


def assign_image(
    gt_cxcywh: torch.Tensor,
    gt_cls: torch.Tensor,
    pred_cxcywh: torch.Tensor,
    cls_logits: torch.Tensor,
    obj_logits: torch.Tensor,
    cell_xy: torch.Tensor,
    strides: torch.Tensor,
    num_classes: int,
    profile: str = "yolox",
    topk: int = N_CANDIDATE_K,
) -> SimOTAImage:
    """SimOTA for one image with n >= 1 GTs.

    gt_cxcywh (n, 4) px, gt_cls (n,), pred_cxcywh (A, 4) px, cls_logits (A, nc), obj_logits (A, 1),
    cell_xy (A, 2) cell indices, strides (A, 1). topk: how many of each GT's largest IoUs are summed for its
    dynamic k (YOLOX: 10; config assigner.topk).
    """
    radius, penalty, box_test = PROFILES[profile]
    n, a = gt_cxcywh.shape[0], pred_cxcywh.shape[0]
    s = strides[:, 0]
    centre = (cell_xy + 0.5) * strides  # (A, 2) anchor centres px
    gx, gy = gt_cxcywh[:, 0:1], gt_cxcywh[:, 1:2]
    dist = s[None] * radius
    in_centre = torch.stack((centre[:, 0] - (gx - dist), centre[:, 1] - (gy - dist),
                             (gx + dist) - centre[:, 0], (gy + dist) - centre[:, 1]), 2).min(-1).values > 0.0
    half_w, half_h = 0.5 * gt_cxcywh[:, 2:3], 0.5 * gt_cxcywh[:, 3:4]
    in_box = torch.stack((centre[:, 0] - (gx - half_w), centre[:, 1] - (gy - half_h),
                          (gx + half_w) - centre[:, 0], (gy + half_h) - centre[:, 1]), 2).min(-1).values > 0.0
    if box_test:
        candidates = in_box.any(0) | in_centre.any(0)
        geometry = in_box[:, candidates] & in_centre[:, candidates]
    else:
        candidates = in_centre.any(0)
        geometry = in_centre[:, candidates]
    c = int(candidates.sum())

    ious = pair_iou_cxcywh(gt_cxcywh, pred_cxcywh[candidates])  # (n, C)
    iou_cost = -torch.log(ious + 1e-8)
    one_hot = F.one_hot(gt_cls.long(), num_classes).float()  # (n, nc)
    score = (cls_logits[candidates].float().sigmoid() * obj_logits[candidates].float().sigmoid()).sqrt()  # (C, nc)
    # BCE over (GTs, C, nc) in blocks of GTs: each (GT, candidate) sum is independent of the blocking
    step = max(1, CLS_COST_BLOCK // max(c * num_classes, 1))
    cls_cost = torch.cat([
        F.binary_cross_entropy(score.unsqueeze(0).expand(len(oh), -1, -1), oh.unsqueeze(1).expand(-1, c, -1),
                               reduction="none").sum(-1)
        for oh in one_hot.split(step)
    ]) if n else torch.zeros(0, c)
    cost = cls_cost + 3.0 * iou_cost + penalty * (~geometry)

    k = min(topk, c)
    topk_ious = torch.topk(ious, k, dim=1).values
    dynamic_k = torch.clamp(topk_ious.sum(1).int(), min=1)
    picked = torch.zeros_like(cost, dtype=torch.bool)
    for j in range(n):
        picked[j, torch.topk(cost[j], k=int(dynamic_k[j]), largest=False).indices] = True
    matching = picked.clone()
    multi = matching.sum(0) > 1
    if bool(multi.any()):
        winner = torch.min(cost[:, multi], dim=0).indices
        matching[:, multi] = False
        matching[winner, multi] = True
    fg_c = matching.any(0)
    fg = torch.zeros(a, dtype=torch.bool)
    fg[torch.nonzero(candidates).flatten()[fg_c]] = True
    matched_gt = torch.full((a,), -1, dtype=torch.int64)
    matched_gt[fg] = matching[:, fg_c].to(torch.uint8).argmax(0)
    matched_iou = torch.zeros(a)
    matched_iou[fg] = (matching * ious).sum(0)[fg_c]
    return SimOTAImage(candidates, in_box, in_centre, geometry, ious, cls_cost, 3.0 * iou_cost, cost, topk_ious,
                       dynamic_k, picked, matching, fg, matched_gt, matched_iou)
