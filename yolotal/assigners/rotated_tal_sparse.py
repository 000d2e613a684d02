"""Rotated task-aligned assignment on candidate pairs only: the targets of ``rotated_tal.assign_rotated`` in
time and memory bounded by the (GT, anchor) candidate pairs, not by b*M*A.

* candidates: each GT's rotated candidate box (sides floored at stride_val) is enclosed in its axis-aligned
  bounding box, widened by CELL_SLACK px; the grid cells inside that box are enumerated per level
  (``tal_sparse.candidate_pairs``: GT-major, ascending anchors, the order of ``mask.nonzero()``), in blocks of
  GTs, and kept when the exact rotated in-box test passes. The test's corner vectors and squared side lengths
  are computed on the whole (b, M) GT tensor exactly as the dense test computes them, then gathered, so every
  anchor on an edge decides as it does there.
* overlaps: ProbIoU of the P pairs, in the dense order (bit-identical to the dense values).
* selection, conflicts, topk2 and targets: ``tal_sparse.pair_targets``, the detect family's pair rule.

As in the detect family, positives of zero weight that the reference picks in torch's tie order among
anchors of metric 0 may differ (``tal_sparse``); every weighted positive, soft score and loss value is the
reference's.
"""

from __future__ import annotations

import torch

from ..core.rotated import probiou_pairs, xywhr_to_corners
from ..core.threads import serial_on_cpu
from .rotated_tal import candidate_rboxes
from .tal import TALParams
from .tal_sparse import SparseTAL, candidate_pairs, pair_targets

CELL_SLACK = 0.01  # px added around the bounding box, so anchors exactly on an axis-aligned edge stay candidates
GT_BLOCK = 256  # GTs enumerated at a time (bounds the bounding-box superset held at once)


def rotated_candidate_pairs(anc_points: torch.Tensor, cand: torch.Tensor, valid: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(GT, anchor) pairs with the anchor centre inside the rotated candidate box (edges included).

    anc_points (A, 2) px; cand (b, M, 5) px xywhr; valid (b, M) bool. Returns flat GT ids (image * M + slot) and
    flat anchor ids (image * A + anchor), (P,) int64 each, in ``mask.nonzero()`` order.
    """
    b, m = valid.shape
    n_anc = anc_points.shape[0]
    corners = xywhr_to_corners(cand)  # (b, M, 4, 2), as the dense test computes them
    a, bb, d = corners[..., 0, :], corners[..., 1, :], corners[..., 3, :]
    ab, ad = bb - a, d - a
    n_ab, n_ad = (ab * ab).sum(-1), (ad * ad).sum(-1)  # (b, M)
    lo, hi = corners.amin(-2) - CELL_SLACK, corners.amax(-2) + CELL_SLACK  # (b, M, 2)
    aabb = torch.cat((lo, hi), -1)
    flat_valid = valid.reshape(-1)
    a_f, ab_f, ad_f = a.reshape(-1, 2), ab.reshape(-1, 2), ad.reshape(-1, 2)
    n_ab_f, n_ad_f = n_ab.reshape(-1), n_ad.reshape(-1)
    segs, keys = [], []
    ids = torch.arange(b * m, device=valid.device)
    for start in range(0, b * m, GT_BLOCK):
        block = flat_valid & (ids >= start) & (ids < start + GT_BLOCK)
        if not bool(block.any()):
            continue
        seg, key = candidate_pairs(anc_points, aabb, block.view(b, m))
        pt = anc_points[key % n_anc]  # (p, 2)
        px, py = pt[:, 0] - a_f[seg, 0], pt[:, 1] - a_f[seg, 1]
        p_ab = px * ab_f[seg, 0] + py * ab_f[seg, 1]
        p_ad = px * ad_f[seg, 0] + py * ad_f[seg, 1]
        inside = (p_ab >= 0) & (p_ab <= n_ab_f[seg]) & (p_ad >= 0) & (p_ad <= n_ad_f[seg])
        segs.append(seg[inside])
        keys.append(key[inside])
    empty = torch.zeros(0, dtype=torch.int64, device=valid.device)
    return (torch.cat(segs), torch.cat(keys)) if segs else (empty, empty)


def assign_rotated_sparse(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    anc_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    p: TALParams,
) -> SparseTAL:
    """Rotated task-aligned assignment of one batch on candidate pairs. Inputs as ``rotated_tal.assign_rotated``
    (boxes px xywhr (b, ·, 5))."""
    dev = pd_scores.device
    b, n_anc, nc = pd_scores.shape
    m = gt_bboxes.shape[1]
    out_dtype = torch.promote_types(pd_scores.dtype, pd_bboxes.dtype)
    work = torch.promote_types(out_dtype, torch.float32)
    gt_w, pd_w, anc_w = gt_bboxes.to(work), pd_bboxes.to(work), anc_points.to(work)
    with serial_on_cpu(dev):
        cand = candidate_rboxes(gt_w, mask_gt, p)
        seg, key = rotated_candidate_pairs(anc_w, cand, mask_gt[..., 0].bool())
        labels = gt_labels[..., 0].long().reshape(-1)
        s = pd_scores.reshape(-1).take(key * nc + labels.take(seg)).to(work)
        u = probiou_pairs(gt_w.reshape(-1, 5)[seg], pd_w.reshape(-1, 5)[key]).clamp_(min=0)
        return pair_targets(seg, key, s, u, gt_bboxes, labels, b, m, n_anc, nc, out_dtype, p)
