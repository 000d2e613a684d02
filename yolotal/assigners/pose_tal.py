"""Pose task-aligned assignment (YOLO26-pose, ultralytics 8.4), with every intermediate kept.

Notation: b images, M padded GTs per image, A anchors, K keypoints, L pyramid levels, P candidate pairs.
Boxes and keypoints are in pixels.

It is the detection TAL (yolotal.assigners.tal) with two changes:

1. Level gate. A GT's candidates are the anchors inside its (small-side enlarged) box, as in detection, but only
   on the levels whose stride s fits the GT's size ``r = sqrt(w * h)`` (its own box, not the enlarged one):
   ``lo * s <= r <= hi * s`` with (lo, hi) = (2, 12). The finest level has no lower bound and the coarsest no
   upper bound. A GT that the gate would leave without any candidate keeps its ungated ones (fallback).
2. Overlap. ``u`` is the OKS of the anchor's predicted keypoints with the GT's: per keypoint
   ``exp(-d² / ((2σ)² · (0.53 · w · h + eps) · 2))``, averaged over the GT's visible keypoints (v > 0). A GT
   without any visible keypoint keeps the detection overlap, CIoU clamped at 0.

Top-k by ``t = s^alpha * u^beta``, conflicts (largest u among all GTs; here OKS or CIoU), topk2 and the targets
are the detection TAL's own functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.boxes import complete_box_iou_pairs
from ..core.keypoints import OKS_AREA_FACTOR, oks_pairs
from .tal import TALParams, TALResult, alignment, anchors_in_boxes, candidate_boxes, select_and_target

LEVEL_RANGE = (2.0, 12.0)  # (lo, hi): a GT of size r is a candidate on stride s when lo*s <= r <= hi*s


@dataclass(frozen=True)
class LevelGate:
    """Which pyramid levels each GT may take candidates from.

    level_strides (L,)        the strides, ascending (level index = position)
    anchor_level  (A,) i64    level index of each anchor
    size          (b, M)      r = sqrt(w * h) of the GT box, px (0 for padding)
    lower         (L,)        lo * s: smallest r a level takes (the finest level takes any)
    upper         (L,)        hi * s: largest r a level takes (the coarsest level takes any)
    too_small     (b, M, L)   r < lo * s on a level that is not the finest
    too_large     (b, M, L)   r > hi * s on a level that is not the coarsest
    level_open    (b, M, L)   neither: the gate lets the GT's in-box anchors of that level through
    mask_in_box   (b, M, A)   anchor centre inside the enlarged GT box (the detection rule), real GTs only
    mask_gated    (b, M, A)   mask_in_box on open levels
    fallback      (b, M)      the gate left no candidate but the box has some: the ungated ones are used
    no_candidates (b, M)      a real GT without any anchor inside its box, gated or not
    mask_in_gts   (b, M, A)   the candidates used: mask_gated, or mask_in_box where fallback
    """

    level_strides: torch.Tensor
    anchor_level: torch.Tensor
    size: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    too_small: torch.Tensor
    too_large: torch.Tensor
    level_open: torch.Tensor
    mask_in_box: torch.Tensor
    mask_gated: torch.Tensor
    fallback: torch.Tensor
    no_candidates: torch.Tensor
    mask_in_gts: torch.Tensor


@dataclass(frozen=True)
class OKSStage:
    """The overlap u of each candidate pair, and what it was made of.

    sigmas        (K,)        OKS sigmas used
    oks_area      (b, M)      0.53 * w * h of the GT box, px² (the OKS scale)
    n_visible     (b, M) i64  GT keypoints with v > 0
    uses_oks      (b, M)      n_visible > 0: u is the OKS; else u is the CIoU
    ciou          (b, M, A)   CIoU(GT, prediction) clamped at 0, at candidates (0 elsewhere)
    oks           (b, M, A)   OKS at candidates of GTs with visible keypoints (0 elsewhere)
    pair_b, pair_m, pair_a (P,) i64  the candidate pairs, in (image, GT, anchor) order
    pair_kpt_sim  (P, K)      per-keypoint similarity exp(-d²/...) of each pair (invisible ones included)
    pair_kpt_dist (P, K)      distance predicted-GT keypoint, px
    """

    sigmas: torch.Tensor
    oks_area: torch.Tensor
    n_visible: torch.Tensor
    uses_oks: torch.Tensor
    ciou: torch.Tensor
    oks: torch.Tensor
    pair_b: torch.Tensor
    pair_m: torch.Tensor
    pair_a: torch.Tensor
    pair_kpt_sim: torch.Tensor
    pair_kpt_dist: torch.Tensor


@dataclass(frozen=True)
class PoseTALResult:
    """gate, overlap stages, then the detection TAL's stages on them (``tal.mask_in_gts`` = gate.mask_in_gts,
    ``tal.overlaps`` = u: OKS or CIoU per GT)."""

    gate: LevelGate
    oks: OKSStage
    tal: TALResult


def level_gate(
    anc_points: torch.Tensor,
    anc_strides: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    p: TALParams,
    level_range: tuple[float, float] = LEVEL_RANGE,
) -> tuple[torch.Tensor, LevelGate]:
    """Candidates of each GT after the level gate.

    anc_points (A, 2) px; anc_strides (A,); gt_bboxes (b, M, 4) px xyxy; mask_gt (b, M, 1).
    Returns (cand_bboxes (b, M, 4) enlarged boxes, LevelGate).
    """
    lo, hi = level_range
    valid = mask_gt.bool()[..., 0]  # (b, M)
    cand_bboxes = candidate_boxes(gt_bboxes, mask_gt, p)
    in_box = anchors_in_boxes(anc_points, cand_bboxes)  # (b, M, A)
    size = (gt_bboxes[..., 2:] - gt_bboxes[..., :2]).prod(-1).clamp(min=0).sqrt()  # (b, M)
    s = anc_strides.reshape(-1)
    ok_lo = (size[..., None] >= lo * s) | (s == s.min())  # (b, M, A)
    ok_hi = (size[..., None] <= hi * s) | (s == s.max())
    gated = in_box & ok_lo & ok_hi
    has = gated.any(-1)  # (b, M)
    final = torch.where(has[..., None], gated, in_box)

    strides = torch.unique(s)  # (L,) ascending
    anchor_level = torch.searchsorted(strides, s)
    lower, upper = lo * strides, hi * strides
    finest = strides == strides.min()
    coarsest = strides == strides.max()
    too_small = (size[..., None] < lower) & ~finest & valid[..., None]  # (b, M, L)
    too_large = (size[..., None] > upper) & ~coarsest & valid[..., None]
    return cand_bboxes, LevelGate(
        level_strides=strides,
        anchor_level=anchor_level,
        size=size,
        lower=lower,
        upper=upper,
        too_small=too_small,
        too_large=too_large,
        level_open=~too_small & ~too_large & valid[..., None],
        mask_in_box=in_box & valid[..., None],
        mask_gated=gated & valid[..., None],
        fallback=valid & ~has & in_box.any(-1),
        no_candidates=valid & ~in_box.any(-1),
        mask_in_gts=final,
    )


def pose_overlaps(
    cand: torch.Tensor,
    pd_bboxes: torch.Tensor,
    gt_bboxes: torch.Tensor,
    pd_kpts: torch.Tensor,
    gt_kpts: torch.Tensor,
    sigmas: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, OKSStage]:
    """u at the candidate pairs (P,) in (image, GT, anchor) order, and the dense OKS stage.

    cand (b, M, A) bool; pd_bboxes (b, A, 4), gt_bboxes (b, M, 4) px xyxy; pd_kpts (b, A, K, 2) px;
    gt_kpts (b, M, K, 3) px x, y, visibility; sigmas (K,).
    """
    shape = cand.shape
    bi, mi, ai = cand.nonzero(as_tuple=True)  # (P,) each
    ciou = complete_box_iou_pairs(gt_bboxes[bi, mi], pd_bboxes[bi, ai]).clamp(min=0)  # (P,)
    g = gt_bboxes[bi, mi]  # (P, 4)
    area = (g[:, 2:] - g[:, :2]).prod(-1, keepdim=True) * OKS_AREA_FACTOR  # (P, 1)
    gk = gt_kpts[bi, mi]  # (P, K, 3)
    oks, sim, vis = oks_pairs(pd_kpts[bi, ai], gk, area, sigmas, eps)
    u = torch.where(vis.any(-1), oks.to(ciou.dtype), ciou)
    dist = (pd_kpts[bi, ai].float() - gk[..., :2]).pow(2).sum(-1).sqrt()  # (P, K)

    n_visible = (gt_kpts[..., 2] > 0).sum(-1)  # (b, M)
    uses_oks = n_visible > 0
    dense_ciou = torch.zeros(shape)
    dense_ciou[bi, mi, ai] = ciou
    dense_oks = torch.zeros(shape)
    dense_oks[bi, mi, ai] = torch.where(vis.any(-1), oks, torch.zeros_like(oks))
    oks_area = (gt_bboxes[..., 2:] - gt_bboxes[..., :2]).prod(-1) * OKS_AREA_FACTOR  # (b, M)
    return u, OKSStage(
        sigmas=sigmas,
        oks_area=oks_area,
        n_visible=n_visible,
        uses_oks=uses_oks,
        ciou=dense_ciou,
        oks=dense_oks,
        pair_b=bi,
        pair_m=mi,
        pair_a=ai,
        pair_kpt_sim=sim,
        pair_kpt_dist=dist,
    )


def assign_pose(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    anc_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    anc_strides: torch.Tensor,
    pd_kpts: torch.Tensor,
    gt_kpts: torch.Tensor,
    sigmas: torch.Tensor,
    p: TALParams,
    level_range: tuple[float, float] = LEVEL_RANGE,
) -> PoseTALResult:
    """Pose task-aligned assignment of one batch.

    Args:
        pd_scores: (b, A, nc) class probabilities (after sigmoid).
        pd_bboxes: (b, A, 4) predicted boxes, px xyxy.
        anc_points: (A, 2) anchor centres, px; anc_strides: (A,) or (A, 1) their strides.
        gt_labels: (b, M, 1) class ids (float, as padded); gt_bboxes: (b, M, 4) px xyxy; mask_gt: (b, M, 1).
        pd_kpts: (b, A, K, 2) predicted keypoints, px (YOLO26 decode); gt_kpts: (b, M, K, 3) px x, y, visibility.
        sigmas: (K,) OKS sigmas (core.keypoints.select_sigmas).
        p: TAL parameters (profile "ultralytics": the detection TAL's small-side enlargement applies).
    """
    b, a, nc = pd_scores.shape
    m = gt_bboxes.shape[1]
    cand_bboxes, gate = level_gate(anc_points, anc_strides, gt_bboxes, mask_gt, p, level_range)
    cand = gate.mask_in_gts & mask_gt.bool()
    u, oks = pose_overlaps(cand, pd_bboxes, gt_bboxes, pd_kpts, gt_kpts, sigmas, p.eps)
    s = pd_scores[oks.pair_b, oks.pair_a, gt_labels[oks.pair_b, oks.pair_m, 0].long()]  # (P,)
    t = alignment(s, u, p)
    dense = []
    for v in (s, u, t):
        x = torch.zeros(b, m, a, dtype=v.dtype)
        x[oks.pair_b, oks.pair_m, oks.pair_a] = v
        dense.append(x)
    bbox_scores, overlaps, align_metric = dense
    tal = select_and_target(cand_bboxes, gate.mask_in_gts, cand, bbox_scores, overlaps, align_metric, gt_labels,
                            gt_bboxes, mask_gt, nc, p)
    return PoseTALResult(gate=gate, oks=oks, tal=tal)


def gate_reason(gate: LevelGate, image: int, gt: int, level: int) -> str:
    """One line saying why level ``level`` is open or closed for GT ``gt`` of image ``image``."""
    r = float(gate.size[image, gt])
    st = float(gate.level_strides[level])
    lo, hi = float(gate.lower[level]), float(gate.upper[level])
    if bool(gate.too_small[image, gt, level]):
        return f"closed: sqrt(area) {r:.1f} < {lo:g} = {lo / st:g}·stride {st:g}"
    if bool(gate.too_large[image, gt, level]):
        return f"closed: sqrt(area) {r:.1f} > {hi:g} = {hi / st:g}·stride {st:g}"
    low = f"{r:.1f} >= {lo:g}" if r >= lo else "finest level: no lower bound"
    high = f"{r:.1f} <= {hi:g}" if r <= hi else "coarsest level: no upper bound"
    return f"open: {low}, {high}"


def gt_levels(res: PoseTALResult, image: int, gt: int) -> list[dict]:
    """Per level, for one GT: stride, bounds, open or why closed, in-box anchors, anchors after the gate, positives."""
    g, t = res.gate, res.tal
    rows = []
    for lvl in range(len(g.level_strides)):
        on = g.anchor_level == lvl
        rows.append(dict(
            stride=int(g.level_strides[lvl]),
            lower=float(g.lower[lvl]),
            upper=float(g.upper[lvl]),
            open=bool(g.level_open[image, gt, lvl]),
            reason=gate_reason(g, image, gt, lvl),
            in_box=int((g.mask_in_box[image, gt] & on).sum()),
            candidates=int((g.mask_in_gts[image, gt] & on).sum()),
            positives=int((t.mask_pos[image, gt] & on).sum()),
        ))
    return rows


def gt_candidates(res: PoseTALResult, anc_points: torch.Tensor, image: int, gt: int,
                  pd_kpts: torch.Tensor | None = None, gt_kpts: torch.Tensor | None = None,
                  gt_bboxes: torch.Tensor | None = None, eps: float = 1e-9) -> list[dict]:
    """Every in-box anchor of one GT, best t first: level, cell, whether the gate kept it, s, OKS (or CIoU), t,
    picked by top-k, final positive, and the GT that took it in a conflict (None if none did).

    With pd_kpts (b, A, K, 2), gt_kpts (b, M, K, 3) and gt_bboxes (b, M, 4), an anchor the gate dropped also gets
    ``oks_if_open``: the OKS its keypoints would have had (the reference never computes it).
    """
    g, o, t = res.gate, res.oks, res.tal
    idx = g.mask_in_box[image, gt].nonzero().squeeze(1)
    would = {}
    dropped = idx[~g.mask_in_gts[image, gt, idx]]
    if pd_kpts is not None and dropped.numel() and bool(o.uses_oks[image, gt]):
        box = gt_bboxes[image, gt]
        area = ((box[2:] - box[:2]).prod() * OKS_AREA_FACTOR).view(1, 1).expand(dropped.numel(), 1)
        v, _, _ = oks_pairs(pd_kpts[image, dropped], gt_kpts[image, gt].expand(dropped.numel(), -1, -1), area,
                            o.sigmas, eps)
        would = dict(zip(dropped.tolist(), v.tolist()))
    order = torch.argsort(t.align_metric[image, gt, idx], descending=True, stable=True)
    rows = []
    for a in idx[order].tolist():
        lvl = int(g.anchor_level[a])
        s = float(g.level_strides[lvl])
        lost = bool(t.mask_pos_topk[image, gt, a]) and not bool(t.mask_pos[image, gt, a]) and bool(t.fg_mask[image, a])
        rows.append(dict(
            anchor=a,
            stride=int(s),
            cell=(int(anc_points[a, 0] // s), int(anc_points[a, 1] // s)),
            kept=bool(g.mask_in_gts[image, gt, a]),
            score=float(t.bbox_scores[image, gt, a]),
            oks=float(o.oks[image, gt, a]) if bool(o.uses_oks[image, gt]) else None,
            ciou=float(o.ciou[image, gt, a]),
            t=float(t.align_metric[image, gt, a]),
            picked=bool(t.mask_pos_topk[image, gt, a]),
            positive=bool(t.mask_pos[image, gt, a]),
            taken_by=int(t.target_gt_idx[image, a]) if lost else None,
            oks_if_open=would.get(a),
        ))
    return rows
