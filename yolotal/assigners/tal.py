"""Task-aligned assignment (TOOD / YOLOv8), with every intermediate kept.

Notation: b images, M padded GTs per image, A anchors, nc classes. Boxes are pixel xyxy.

For each GT, the anchors whose centres lie strictly inside its candidate box are candidates. Each candidate
gets the alignment metric ``t = s^alpha * u^beta`` (s: predicted score of the GT's class, u: CIoU of the
predicted box with the GT, clamped at 0). The top-k candidates by t are the GT's positives. An anchor picked
by several GTs goes to the GT with the largest CIoU at that anchor *among all GTs* (the reference trainer's
rule; the winner may be a GT that did not pick it). Targets are the GT's class and box; the soft score of a
positive is ``t / max_t(GT) * max_u(GT)``.

Profiles (``yolotal.profiles``, by ultralytics release):
* ``ultralytics`` (8.4.128 on): GT sides shorter than ``stride_val`` (the second stride) are enlarged to it about
  the centre for candidate selection only; ``topk2`` < ``topk`` then keeps each GT's topk2 best positives.
* ``v8.4.0`` (8.4.0-8.4.127): the same, but only sides shorter than the first stride are enlarged (to the second).
* ``classic`` (8.0.52-8.3, and the seed walkthroughs): the candidate box is the GT box.
* ``v8.0.0`` / ``v8.0.35`` (8.0.0-8.0.51): as classic, but s, u and t are computed at every anchor, and a
  multiply claimed anchor goes to the largest CIoU among all GTs of the image (candidates of it or not); the
  winner's t and u there then count in its soft scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import profiles
from ..core.boxes import complete_box_iou_pairs, xywh_to_xyxy, xyxy_to_xywh
from ..core.threads import pow_in_whole_blocks

IN_BOX_EPS = 1e-9  # an anchor centre must be more than this inside every edge


@dataclass(frozen=True)
class TALParams:
    num_classes: int
    topk: int = 10
    topk2: int | None = None
    alpha: float = 0.5
    beta: float = 6.0
    eps: float = 1e-9
    profile: str = "ultralytics"
    stride_val: float = 16.0
    strides: tuple[float, ...] = ()  # the model's strides; () = (stride_val,) for the rule's threshold (see below)

    @property
    def rule(self) -> profiles.Profile:
        return profiles.get(self.profile)

    @property
    def enlarge(self) -> bool:
        return self.rule.enlarge is not None

    @property
    def enlargement(self) -> tuple[float, float] | None:
        """(sides below this px, become this px) for candidate selection, or None.

        Without ``strides`` only the newest rule can be applied (it needs stride_val alone); the v8.4.0 rule
        (threshold: the first stride) then raises ValueError.
        """
        if self.rule.enlarge is None:
            return None
        if self.strides:
            below, size = profiles.enlargement(self.profile, self.strides)
            return below, size
        if self.rule.enlarge == "below-second":
            return self.stride_val, self.stride_val
        raise ValueError(f"profile {self.profile}: TALParams.strides (the model's strides) is needed for its "
                         "small-GT enlargement (sides below the first stride)")

    @classmethod
    def from_config(cls, cfg, num_classes: int) -> "TALParams":
        """The parameters of a validated ``Config`` (TAL assigners): every field, the strides included."""
        a = cfg.assigner
        return cls(num_classes=num_classes, topk=a.topk, topk2=a.topk2, alpha=a.alpha, beta=a.beta, eps=a.eps,
                   profile=a.profile, stride_val=cfg.stride_val, strides=tuple(float(s) for s in cfg.strides))


@dataclass(frozen=True)
class TALResult:
    """Every stage of one assignment. Masks are bool unless noted.

    cand_bboxes      (b, M, 4)   candidate box of each GT (small sides enlarged under the 8.4 profiles), px xyxy
    mask_in_gts      (b, M, A)   anchor centre strictly inside the candidate box
    bbox_scores      (b, M, A)   predicted score of the GT's class, at candidates (0 elsewhere; v8.0.x: every anchor)
    overlaps         (b, M, A)   CIoU(GT, prediction) clamped at 0, at candidates (0 elsewhere; v8.0.x: everywhere)
    align_metric     (b, M, A)   s^alpha * u^beta at candidates (0 elsewhere; v8.0.x: everywhere)
    topk_idxs        (b, M, k)   anchors returned by top-k per GT (padding GTs: 0)
    mask_topk        (b, M, A)   anchors chosen exactly once by the top-k lists
    mask_pos_topk    (b, M, A)   positives before conflict resolution (topk & in box & real GT)
    mask_multi       (b, A)      anchors claimed by more than one GT
    mask_pos         (b, M, A)   final positives (after conflicts and topk2)
    fg_mask          (b, A)      anchor has a GT
    target_gt_idx    (b, A) i64  its GT index (0 for background, as the reference returns)
    target_labels    (b, A) i64  its GT's class (for background: class of GT 0, or nc for an empty batch)
    target_bboxes    (b, A, 4)   its GT's box, px xyxy (GT 0's box for background)
    target_scores    (b, A, nc)  soft one-hot target
    pos_align_metrics(b, M)      largest t among each GT's final positives
    pos_overlaps     (b, M)      largest u among each GT's final positives
    norm_align_metric(b, A)      soft score of each anchor (0 for background)
    """

    cand_bboxes: torch.Tensor
    mask_in_gts: torch.Tensor
    bbox_scores: torch.Tensor
    overlaps: torch.Tensor
    align_metric: torch.Tensor
    topk_idxs: torch.Tensor
    mask_topk: torch.Tensor
    mask_pos_topk: torch.Tensor
    mask_multi: torch.Tensor
    mask_pos: torch.Tensor
    fg_mask: torch.Tensor
    target_gt_idx: torch.Tensor
    target_labels: torch.Tensor
    target_bboxes: torch.Tensor
    target_scores: torch.Tensor
    pos_align_metrics: torch.Tensor
    pos_overlaps: torch.Tensor
    norm_align_metric: torch.Tensor


def candidate_boxes(gt_bboxes: torch.Tensor, mask_gt: torch.Tensor, p: TALParams) -> torch.Tensor:
    """(b, M, 4) GT boxes -> (b, M, 4) candidate boxes: under the 8.4 profiles each side below the profile's
    threshold (``p.enlargement``) becomes its size, about the box centre; otherwise a copy."""
    rule = p.enlargement
    if rule is None:
        return gt_bboxes.clone()
    below, size = rule
    xywh = xyxy_to_xywh(gt_bboxes)
    small = (xywh[..., 2:] < below) & mask_gt.bool()  # (b, M, 2)
    wh = torch.where(small, torch.tensor(size, dtype=xywh.dtype, device=xywh.device), xywh[..., 2:])
    return xywh_to_xyxy(torch.cat((xywh[..., :2], wh), -1))


def anchors_in_boxes(anc_points: torch.Tensor, boxes: torch.Tensor, eps: float = IN_BOX_EPS) -> torch.Tensor:
    """Anchor centres (A, 2) px strictly inside boxes (b, M, 4) px xyxy -> (b, M, A) bool."""
    x, y = anc_points[:, 0], anc_points[:, 1]  # (A,)
    x1, y1, x2, y2 = (boxes[..., i : i + 1] for i in range(4))  # (b, M, 1) each
    return (x - x1 > eps) & (y - y1 > eps) & (x2 - x > eps) & (y2 - y > eps)


def alignment(s: torch.Tensor, u: torch.Tensor, p: TALParams) -> torch.Tensor:
    """t = s^alpha * u^beta of pair values (P,); each value's bits depend on its inputs alone."""
    return pow_in_whole_blocks(s, p.alpha) * pow_in_whole_blocks(u, p.beta)


def pair_metrics(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    cand: torch.Tensor,
    p: TALParams,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores s, CIoU u and metric t for candidate pairs only, scattered into dense (b, M, A) tensors."""
    shape = cand.shape
    bi, mi, ai = cand.nonzero(as_tuple=True)  # (P,) each
    s = pd_scores[bi, ai, gt_labels[bi, mi, 0].long()]  # (P,)
    u = complete_box_iou_pairs(gt_bboxes[bi, mi], pd_bboxes[bi, ai]).clamp(min=0)  # (P,)
    t = alignment(s, u, p)
    out = []
    for v in (s, u, t):
        dense = torch.zeros(shape, dtype=v.dtype)
        dense[bi, mi, ai] = v
        out.append(dense)
    return out[0], out[1], out[2]


def topk_mask(metric: torch.Tensor, mask_gt: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k anchors per GT by metric (b, M, A) -> (indices (b, M, k), mask (b, M, A) bool).

    Padding GTs point all k picks at anchor 0; an anchor counted more than once by a row is dropped, which
    removes those padding picks (as the reference does).
    """
    idx = torch.topk(metric, k, dim=-1, largest=True).indices  # (b, M, k)
    idx = idx.masked_fill(~mask_gt.bool().expand(-1, -1, k), 0)
    count = torch.zeros(metric.shape, dtype=torch.int8)
    count.scatter_add_(-1, idx, torch.ones_like(idx, dtype=torch.int8))
    return idx, count == 1


def resolve_conflicts(
    mask_pos: torch.Tensor, overlaps: torch.Tensor, align_metric: torch.Tensor, p: TALParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Give each multiply-claimed anchor to the GT with the largest overlap there, then apply topk2.

    Returns (mask_multi (b, A) bool, mask_pos (b, M, A) bool).
    """
    multi = mask_pos.sum(1) > 1  # (b, A)
    if mask_pos.shape[1] == 0:
        return multi, mask_pos
    best = overlaps.max(1).indices  # (b, A) first GT with the largest CIoU
    is_best = torch.zeros_like(mask_pos).scatter_(1, best.unsqueeze(1), True)
    mask_pos = torch.where(multi.unsqueeze(1), is_best, mask_pos)
    k2 = p.topk2 or p.topk
    if k2 != p.topk:
        idx = torch.topk(align_metric * mask_pos, k2, dim=-1, largest=True).indices  # (b, M, k2)
        keep = torch.zeros_like(mask_pos).scatter_(-1, idx, True)
        mask_pos = mask_pos & keep
    return multi, mask_pos


def assign(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    anc_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    p: TALParams,
) -> TALResult:
    """Task-aligned assignment of one batch.

    Args:
        pd_scores: (b, A, nc) class probabilities (after sigmoid).
        pd_bboxes: (b, A, 4) predicted boxes, px xyxy.
        anc_points: (A, 2) anchor centres, px.
        gt_labels: (b, M, 1) class ids (float, as padded).
        gt_bboxes: (b, M, 4) GT boxes, px xyxy (zeros for padding).
        mask_gt: (b, M, 1) 1.0 for real GTs.
    """
    b, a, nc = pd_scores.shape
    valid = mask_gt.bool()  # (b, M, 1)
    cand_bboxes = candidate_boxes(gt_bboxes, mask_gt, p)
    mask_in_gts = anchors_in_boxes(anc_points, cand_bboxes)  # (b, M, A)
    cand = mask_in_gts & valid
    everywhere = p.rule.conflicts_all_gts  # 8.0.0-8.0.51: metrics at every anchor of every real GT
    bbox_scores, overlaps, align_metric = pair_metrics(
        pd_scores, pd_bboxes, gt_labels, gt_bboxes, valid.expand(-1, -1, a) if everywhere else cand, p)
    topk_idxs, mask_topk, mask_pos_topk, mask_multi, mask_pos = select_positives(
        align_metric, overlaps, cand, mask_gt, p)
    tg = assign_targets(mask_pos, overlaps, align_metric, gt_labels, gt_bboxes, nc, p.eps)
    return TALResult(
        cand_bboxes=cand_bboxes,
        mask_in_gts=mask_in_gts,
        bbox_scores=bbox_scores,
        overlaps=overlaps,
        align_metric=align_metric,
        topk_idxs=topk_idxs,
        mask_topk=mask_topk,
        mask_pos_topk=mask_pos_topk,
        mask_multi=mask_multi,
        mask_pos=mask_pos,
        **tg,
    )


def select_positives(
    align_metric: torch.Tensor, overlaps: torch.Tensor, cand: torch.Tensor, mask_gt: torch.Tensor, p: TALParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k by the metric, restricted to candidates, then conflicts and topk2 (shared by the TAL families).

    align_metric, overlaps (b, M, A); cand (b, M, A) bool candidates of real GTs; mask_gt (b, M, 1).
    Returns (topk_idxs (b, M, k), mask_topk, mask_pos_topk, mask_multi (b, A), mask_pos).
    """
    b, m, a = align_metric.shape
    everywhere = p.rule.conflicts_all_gts  # 8.0.0-8.0.51: the metric exists off the candidates too
    if m:
        topk_idxs, mask_topk = topk_mask(align_metric * cand if everywhere else align_metric, mask_gt, p.topk)
    else:
        topk_idxs, mask_topk = torch.zeros(b, 0, p.topk, dtype=torch.int64), torch.zeros(b, 0, a, dtype=torch.bool)
    mask_pos_topk = mask_topk & cand
    mask_multi, mask_pos = resolve_conflicts(mask_pos_topk, overlaps, align_metric, p)
    return topk_idxs, mask_topk, mask_pos_topk, mask_multi, mask_pos


def assign_targets(
    mask_pos: torch.Tensor,
    overlaps: torch.Tensor,
    align_metric: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    nc: int,
    eps: float,
) -> dict[str, torch.Tensor]:
    """Targets of the final positives mask_pos (b, M, A): the TALResult fields from fg_mask on, by name.

    The soft score of a positive is t / max_t(GT) * max_u(GT), u being whatever overlap the family uses.
    """
    b, m, a = mask_pos.shape
    if m:
        fg, target_gt_idx = mask_pos.to(torch.int8).max(1)  # (b, A) each; first GT for empty columns
        fg_mask = fg.bool()
        bidx = torch.arange(b).unsqueeze(1)  # (b, 1)
        target_labels = gt_labels[..., 0].long()[bidx, target_gt_idx].clamp(min=0)  # (b, A)
        target_bboxes = gt_bboxes[bidx, target_gt_idx]  # (b, A, 4)
    else:  # nothing to assign: the reference's early return
        fg_mask = torch.zeros(b, a, dtype=torch.bool)
        target_gt_idx = torch.zeros(b, a, dtype=torch.int64)
        target_labels = torch.full((b, a), nc, dtype=torch.int64)
        target_bboxes = torch.zeros(b, a, gt_bboxes.shape[-1])  # 4 (xyxy) or 5 (rotated xywhr)
    one_hot = torch.zeros(b, a, nc, dtype=torch.float32)
    if m:
        one_hot.scatter_(2, target_labels.unsqueeze(-1), 1.0)
    one_hot = one_hot * fg_mask.unsqueeze(-1)

    am = align_metric * mask_pos  # (b, M, A)
    pos_align = am.amax(-1, keepdim=True) if m else torch.zeros(b, 0, 1)  # (b, M, 1)
    pos_ov = (overlaps * mask_pos).amax(-1, keepdim=True) if m else torch.zeros(b, 0, 1)
    norm = (am * pos_ov / (pos_align + eps)).amax(-2) if m else torch.zeros(b, a)  # (b, A)
    target_scores = one_hot * norm.unsqueeze(-1)
    return dict(
        fg_mask=fg_mask,
        target_gt_idx=target_gt_idx,
        target_labels=target_labels,
        target_bboxes=target_bboxes,
        target_scores=target_scores,
        pos_align_metrics=pos_align.squeeze(-1),
        pos_overlaps=pos_ov.squeeze(-1),
        norm_align_metric=norm,
    )


def select_and_target(
    cand_bboxes: torch.Tensor,
    mask_in_gts: torch.Tensor,
    cand: torch.Tensor,
    bbox_scores: torch.Tensor,
    overlaps: torch.Tensor,
    align_metric: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    nc: int,
    p: TALParams,
) -> TALResult:
    """The stages after the pair metrics as one TALResult: top-k, conflicts, targets and soft scores (the seg
    family's overlap is the mean of box and mask IoU; everything after it is the detection rule).

    cand (b, M, A) bool candidate pairs of real GTs; overlaps / align_metric (b, M, A) at candidates.
    """
    topk_idxs, mask_topk, mask_pos_topk, mask_multi, mask_pos = select_positives(align_metric, overlaps, cand,
                                                                                 mask_gt, p)
    tg = assign_targets(mask_pos, overlaps, align_metric, gt_labels, gt_bboxes, nc, p.eps)
    return TALResult(cand_bboxes=cand_bboxes, mask_in_gts=mask_in_gts, bbox_scores=bbox_scores, overlaps=overlaps,
                     align_metric=align_metric, topk_idxs=topk_idxs, mask_topk=mask_topk, mask_pos_topk=mask_pos_topk,
                     mask_multi=mask_multi, mask_pos=mask_pos, **tg)
