"""Task-aligned assignment of rotated boxes (ultralytics' RotatedTaskAlignedAssigner), every stage kept.

Notation: b images, M padded GTs per image, A anchors, nc classes. Boxes are pixel xywhr (cx, cy, w, h, angle
in radians; see ``core.rotated``).

The detect rule (``assigners.tal``) with two changes:

* candidates: the GT's sides shorter than ``stride_val`` are raised to it (profile ``ultralytics``; the angle and
  centre are kept), and an anchor is a candidate when its centre is inside that rotated box, edges included
  (projection onto two sides of the box: ``core.rotated.points_in_rboxes``);
* overlaps: ProbIoU of the GT and the predicted rotated box (clamped at 0) instead of CIoU.

Top-k, the conflict rule (an anchor claimed by several GTs goes to the GT with the largest overlap there), topk2
and the soft scores are the detect family's own functions.
"""

from __future__ import annotations


import torch

from ..core.rotated import points_in_rboxes, probiou_pairs
from ..core.threads import pow_in_whole_blocks
from .tal import TALParams, TALResult, assign_targets, select_positives


class RotatedTALResult(TALResult):
    """Every stage of one rotated assignment. Masks are bool.

    cand_bboxes      (b, M, 5)   candidate box of each GT (sides floored at stride_val under ``ultralytics``), px
    mask_in_gts      (b, M, A)   anchor centre inside the rotated candidate box (edges included)
    bbox_scores      (b, M, A)   predicted score of the GT's class, at candidates (0 elsewhere)
    overlaps         (b, M, A)   ProbIoU(GT, prediction) clamped at 0, at candidates (0 elsewhere)
    align_metric     (b, M, A)   s^alpha * u^beta at candidates (0 elsewhere)
    topk_idxs        (b, M, k)   anchors returned by top-k per GT (padding GTs: 0)
    mask_topk        (b, M, A)   anchors chosen exactly once by the top-k lists
    mask_pos_topk    (b, M, A)   positives before conflict resolution (topk & in box & real GT)
    mask_multi       (b, A)      anchors claimed by more than one GT
    mask_pos         (b, M, A)   final positives (after conflicts and topk2)
    fg_mask          (b, A)      anchor has a GT
    target_gt_idx    (b, A) i64  its GT index (0 for background, as the reference returns)
    target_labels    (b, A) i64  its GT's class (for background: class of GT 0, or nc for an empty batch)
    target_bboxes    (b, A, 5)   its GT's box, px xywhr (GT 0's box for background)
    target_scores    (b, A, nc)  soft one-hot target
    pos_align_metrics(b, M)      largest t among each GT's final positives
    pos_overlaps     (b, M)      largest u among each GT's final positives
    norm_align_metric(b, A)      soft score of each anchor (0 for background)
    """

    @property
    def background(self) -> torch.Tensor:
        """(b, A) bool: anchors without a GT (their target_gt_idx 0 means nothing)."""
        return ~self.fg_mask


def candidate_rboxes(gt_bboxes: torch.Tensor, mask_gt: torch.Tensor, p: TALParams) -> torch.Tensor:
    """(b, M, 5) GT xywhr -> (b, M, 5) candidate boxes under the profile's floor (real GTs only; centre and angle
    unchanged): ``ultralytics`` (8.4.128+) raises sides < stride[1] to stride[1]; ``v8.4.0`` (8.4.0-8.4.127)
    raises sides < stride[0] to stride[1]; ``classic`` keeps the box."""
    if not p.enlarge:
        return gt_bboxes.clone()
    below, size = p.enlargement
    wh = gt_bboxes[..., 2:4]
    small = (wh < below) & mask_gt.bool()  # (b, M, 2)
    wh = torch.where(small, torch.tensor(size, dtype=gt_bboxes.dtype), wh)
    return torch.cat((gt_bboxes[..., :2], wh, gt_bboxes[..., 4:]), -1)


def rotated_pair_metrics(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    cand: torch.Tensor,
    p: TALParams,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores s, ProbIoU u (>= 0) and metric t at the candidate pairs ``cand`` (b, M, A), as dense (b, M, A)."""
    bi, mi, ai = cand.nonzero(as_tuple=True)  # (P,) each
    s, u, t = pair_values(pd_scores, pd_bboxes, gt_labels, gt_bboxes, bi, mi, ai, p)
    out = []
    for v in (s, u, t):
        dense = torch.zeros(cand.shape, dtype=v.dtype)
        dense[bi, mi, ai] = v
        out.append(dense)
    return out[0], out[1], out[2]


def pair_values(pd_scores, pd_bboxes, gt_labels, gt_bboxes, bi, mi, ai, p: TALParams):
    """(s, u, t), each (P,), for the pairs (image bi, GT mi, anchor ai)."""
    s = pd_scores[bi, ai, gt_labels[bi, mi, 0].long()]
    u = probiou_pairs(gt_bboxes[bi, mi], pd_bboxes[bi, ai]).clamp(min=0)
    t = pow_in_whole_blocks(s, p.alpha) * pow_in_whole_blocks(u, p.beta)
    return s, u, t


def assign_rotated(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    anc_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    p: TALParams,
) -> RotatedTALResult:
    """Rotated task-aligned assignment of one batch.

    Args:
        pd_scores: (b, A, nc) class probabilities (after sigmoid).
        pd_bboxes: (b, A, 5) predicted boxes, px xywhr.
        anc_points: (A, 2) anchor centres, px.
        gt_labels: (b, M, 1) class ids (float, as padded).
        gt_bboxes: (b, M, 5) GT boxes, px xywhr (zeros for padding).
        mask_gt: (b, M, 1) 1.0 for real GTs.
    """
    nc = pd_scores.shape[-1]
    valid = mask_gt.bool()
    cand_bboxes = candidate_rboxes(gt_bboxes, mask_gt, p)
    mask_in_gts = points_in_rboxes(anc_points, cand_bboxes)  # (b, M, A)
    cand = mask_in_gts & valid
    bbox_scores, overlaps, align_metric = rotated_pair_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, cand, p)
    topk_idxs, mask_topk, mask_pos_topk, mask_multi, mask_pos = select_positives(align_metric, overlaps, cand,
                                                                                 mask_gt, p)
    tg = assign_targets(mask_pos, overlaps, align_metric, gt_labels, gt_bboxes, nc, p.eps)
    return RotatedTALResult(cand_bboxes=cand_bboxes, mask_in_gts=mask_in_gts, bbox_scores=bbox_scores,
                            overlaps=overlaps, align_metric=align_metric, topk_idxs=topk_idxs, mask_topk=mask_topk,
                            mask_pos_topk=mask_pos_topk, mask_multi=mask_multi, mask_pos=mask_pos, **tg)


def gt_candidates(res: RotatedTALResult, image: int, gt: int, levels) -> list[dict]:
    """One GT's candidate anchors, best metric first: anchor, level stride, cell (x, y), s, ProbIoU u, t and
    what became of it: ``positive``, ``lost to GT k`` (picked, but the anchor went to GT k's larger ProbIoU),
    ``cut by topk2``, or ``not in top-k``. levels: ``core.anchors.levels_for(...)``."""
    from ..core.anchors import cell_of

    cand = res.mask_in_gts[image, gt].nonzero().squeeze(1)
    order = torch.argsort(res.align_metric[image, gt, cand], descending=True, stable=True)
    rows = []
    for a in cand[order].tolist():
        lv, x, y = cell_of(levels, a)
        if res.mask_pos[image, gt, a]:
            what = "positive"
        elif res.mask_pos_topk[image, gt, a]:
            owner = int(res.target_gt_idx[image, a])
            what = f"lost to GT {owner}" if res.fg_mask[image, a] and owner != gt else "cut by topk2"
        else:
            what = "not in top-k"
        rows.append(dict(anchor=a, stride=lv.stride, cell=(x, y), s=float(res.bbox_scores[image, gt, a]),
                         u=float(res.overlaps[image, gt, a]), t=float(res.align_metric[image, gt, a]), result=what))
    return rows
