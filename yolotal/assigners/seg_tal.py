"""Mask-aware task-aligned assignment (YOLO26-seg, ultralytics 8.4), with every stage kept.

Notation as in :mod:`yolotal.assigners.tal`: b images, M padded GTs, A anchors, nm mask coefficients, prototype
masks of (mh, mw) pixels.

Candidates are the detection TAL's (anchor centres inside the enlarged GT box). Each candidate pair first gets
the box metric ``s^alpha * u^beta + eps`` (u: CIoU clamped at 0; the eps keeps pairs whose metric underflows
to 0 rankable). For each GT, the pairs among its ``3 * topk`` largest box metrics (over all A anchors, as
``torch.topk`` orders them) get a mask IoU: the anchor's predicted mask (``coef @ protos > 0``, cropped to its
predicted box at prototype resolution: columns ``x1 <= c < x2``, rows ``y1 <= r < y2``) against the GT mask,
``inter / max(union, 1)`` in pixels. Every other candidate's mask IoU is 0. The overlap of a pair is
``(u + mask IoU) / 2``; from there on the assignment is the detection TAL's (metric ``s^alpha * overlap^beta``,
top-k, conflicts to the largest overlap, soft scores), with this overlap wherever TAL uses the CIoU.

Mask IoUs are computed for the selected pairs only, in chunks of anchors (each selected anchor's mask decoded
once, inside its crop box only): nothing of size (GT, anchor, pixels) or a dense (GT, anchor) mask-IoU table is
ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.threads import pow_in_whole_blocks
from .tal import TALParams, TALResult, anchors_in_boxes, candidate_boxes, pair_metrics, select_and_target

MASK_PAIRS_PER_TOPK = 3  # each GT's 3 * topk best box-metric pairs get a mask IoU
CHUNK_PIXELS = 1 << 18  # window pixels decoded per chunk (with nm = 32: 32 MB of gathered prototypes)


@dataclass(frozen=True)
class SegTALResult:
    """Every stage of one mask-aware assignment.

    tal           TALResult  the TAL stages run on the combined overlap: ``tal.overlaps`` (b, M, A) is
                             (u + mask IoU) / 2 at candidates, ``tal.align_metric`` its metric, then top-k,
                             conflicts, targets, soft scores
    box_overlaps  (b, M, A)  CIoU u clamped at 0, at candidates (0 elsewhere)
    box_metric    (b, M, A)  s^alpha * u^beta + eps at candidates (0 elsewhere): ranks the pairs for a mask IoU
    mask_k        int        pairs per GT ranked for a mask IoU (3 * topk, at most A)
    pair_image, pair_gt, pair_anchor (P,) i64   the pairs that got a mask IoU (candidates among their GT's
                             mask_k best box metrics), in (image, GT, anchor) order
    pair_mask_iou (P,)       their mask IoU
    pair_inter, pair_union, pair_pred_area (P,) i64   intersection, union (before max(., 1)), predicted area, px
    gt_area       (b, M) i64 each GT mask's pixels
    """

    tal: TALResult
    box_overlaps: torch.Tensor
    box_metric: torch.Tensor
    mask_k: int
    pair_image: torch.Tensor
    pair_gt: torch.Tensor
    pair_anchor: torch.Tensor
    pair_mask_iou: torch.Tensor
    pair_inter: torch.Tensor
    pair_union: torch.Tensor
    pair_pred_area: torch.Tensor
    gt_area: torch.Tensor

    def candidates_of(self, image: int, gt: int) -> "SegCandidates":
        """One GT's candidates with every stage's value, in anchor order (see :class:`SegCandidates`)."""
        t = self.tal
        anchors = t.mask_in_gts[image, gt].nonzero().squeeze(1)
        if t.mask_pos.shape[1] <= gt or not bool(self.box_metric[image, gt].gt(0).any()):
            anchors = anchors[:0]
        pa, pm = self.mask_iou_of(image, gt)
        has = torch.isin(anchors, pa)
        miou = torch.zeros(anchors.numel())
        if pa.numel():
            pos = torch.searchsorted(pa, anchors).clamp(max=pa.numel() - 1)
            miou = torch.where(has, pm[pos], miou)
        return SegCandidates(
            anchors=anchors,
            score=t.bbox_scores[image, gt, anchors],
            box_iou=self.box_overlaps[image, gt, anchors],
            box_metric=self.box_metric[image, gt, anchors],
            has_mask_iou=has,
            mask_iou=miou,
            overlap=t.overlaps[image, gt, anchors],
            align_metric=t.align_metric[image, gt, anchors],
            topk=t.mask_topk[image, gt, anchors] if t.mask_topk.shape[1] else has & False,
            positive=t.mask_pos[image, gt, anchors],
            lost_to=torch.where(
                t.mask_pos_topk[image, gt, anchors] & ~t.mask_pos[image, gt, anchors],
                t.target_gt_idx[image, anchors].where(t.fg_mask[image, anchors], torch.tensor(-1)),
                torch.tensor(-1),
            ),
        )

    def mask_iou_of(self, image: int, gt: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(anchors (k,), mask IoUs (k,)) of one GT's pairs that got a mask IoU."""
        sel = (self.pair_image == image) & (self.pair_gt == gt)
        return self.pair_anchor[sel], self.pair_mask_iou[sel]


WORD_BLOCK = 128  # int64 words summed per block by count_true: each byte lane stays below 256


def count_true(x: torch.Tensor) -> torch.Tensor:
    """Number of True values in each row of a contiguous bool tensor (n, P) -> (n,) int64, exactly.

    The rows are read as int64 words (8 bools each); words are summed in blocks of WORD_BLOCK, where every byte
    lane of the sum still fits a byte, and the 8 lanes are then added up: ~100x faster than ``x.sum(-1)``.
    """
    n, p = x.shape
    if n == 0 or p == 0:
        return torch.zeros(n, dtype=torch.int64)
    step = 8 * WORD_BLOCK
    pad = (-p) % step
    u = x.contiguous().view(torch.uint8)
    if pad:
        u = torch.cat((u, u.new_zeros(n, pad)), 1)
    blocks = u.view(torch.int64).view(n, -1, WORD_BLOCK).sum(-1)  # (n, nb): 8 packed lane sums <= 128 each
    total = torch.zeros(n, blocks.shape[1], dtype=torch.int64)
    for k in range(8):
        total += (blocks >> (8 * k)) & 0xFF
    return total.sum(-1)


@dataclass(frozen=True)
class SegCandidates:
    """One GT's candidate anchors (k,) and their values at each stage.

    anchors (k,) i64; score s; box_iou u (CIoU >= 0); box_metric s^alpha u^beta + eps; has_mask_iou (k,) bool:
    among the GT's 3·topk best box metrics; mask_iou (0 where not computed); overlap (u + mask IoU) / 2;
    align_metric t = s^alpha overlap^beta; topk (k,) bool picked by the GT's top-k; positive (k,) bool final;
    lost_to (k,) i64 the GT that won a picked anchor in a conflict (-1 otherwise).
    """

    anchors: torch.Tensor
    score: torch.Tensor
    box_iou: torch.Tensor
    box_metric: torch.Tensor
    has_mask_iou: torch.Tensor
    mask_iou: torch.Tensor
    overlap: torch.Tensor
    align_metric: torch.Tensor
    topk: torch.Tensor
    positive: torch.Tensor
    lost_to: torch.Tensor


def predicted_masks(coef: torch.Tensor, proto: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Binary predicted masks of n anchors of one image, cropped to their boxes.

    coef (n, nm) mask coefficients; proto (nm, mh, mw) prototypes; boxes (n, 4) xyxy in prototype pixels.
    Returns (n, mh, mw) bool: ``coef @ proto > 0`` inside ``x1 <= col < x2``, ``y1 <= row < y2``.
    """
    nm, mh, mw = proto.shape
    pm = ((coef @ proto.reshape(nm, mh * mw)) > 0).view(-1, mh, mw)
    cols = torch.arange(mw, dtype=boxes.dtype)  # (mw,)
    rows = torch.arange(mh, dtype=boxes.dtype)
    x1, y1, x2, y2 = (boxes[:, i : i + 1] for i in range(4))  # (n, 1) each
    in_x = (cols >= x1) & (cols < x2)  # (n, mw)
    in_y = (rows >= y1) & (rows < y2)  # (n, mh)
    return pm & in_x[:, None, :] & in_y[:, :, None]


_LADDER = torch.tensor([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048])


def _ladder(x: torch.Tensor) -> torch.Tensor:
    """Round sizes (n,) int64 up to the next ladder step (steps at most 1.5x apart; beyond: to a multiple of 512)."""
    i = torch.searchsorted(_LADDER, x).clamp(max=len(_LADDER) - 1)
    return torch.where(x > _LADDER[-1], (x + 511) // 512 * 512, _LADDER[i])


MIN_WINDOW = 16  # pixels per decoded window, at least (see window_logits)


def window_logits(proto_px: torch.Tensor, coef: torch.Tensor, base: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Mask logits of n anchors at their window pixels: proto_px (b*mh*mw, nm) pixel-major prototypes, coef (n, nm),
    base (n,) each anchor's image offset (image * mh*mw), flat (n, w) pixel indices -> (n, w) float32.

    Computed as one batched matrix product (n, w, nm) @ (n, nm, 1), which gives every logit the same bits as the
    full-image product ``coef @ protos`` the reference evaluates, provided the batch has at least 2 anchors and
    w >= MIN_WINDOW (smaller products take other kernels that round differently in the last bit; measured with
    AVX-512 and default kernels). A single anchor is therefore computed twice.
    """
    n, w = flat.shape
    nm = proto_px.shape[1]
    if n == 1:
        return window_logits(proto_px, coef.expand(2, nm), base.expand(2), flat.expand(2, w))[:1]
    pix = proto_px.index_select(0, (base[:, None] + flat).reshape(-1)).view(n, w, nm)
    return (pix @ coef.unsqueeze(-1)).squeeze(-1)


def box_windows(boxes: torch.Tensor, mh: int, mw: int) -> tuple[torch.Tensor, ...]:
    """The pixel window holding every prototype pixel a crop box keeps.

    boxes (n, 4) xyxy in prototype pixels -> (row0, col0, rows, cols) (n,) int64 each: a pixel (r, c) with
    ``x1 <= c < x2`` and ``y1 <= r < y2`` inside the image lies in rows [row0, row0 + rows) and columns
    [col0, col0 + cols) (at least one of each, so empty boxes keep a 1-pixel window that the crop empties).
    """
    c0 = boxes[:, 0].floor().clamp(0, mw - 1)
    r0 = boxes[:, 1].floor().clamp(0, mh - 1)
    c1 = boxes[:, 2].ceil().clamp(1, mw)
    r1 = boxes[:, 3].ceil().clamp(1, mh)
    return r0.long(), c0.long(), (r1 - r0).clamp(min=1).long(), (c1 - c0).clamp(min=1).long()


def pair_mask_ious(
    pair_image: torch.Tensor,
    pair_gt: torch.Tensor,
    pair_anchor: torch.Tensor,
    pd_coef: torch.Tensor,
    pd_bboxes: torch.Tensor,
    mask_scale: float,
    proto: torch.Tensor,
    gt_masks: torch.Tensor,
    chunk_pixels: int = CHUNK_PIXELS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask IoU of P (image, GT, anchor) pairs, decoding each distinct anchor's mask once, in chunks.

    pd_coef (b, A, nm); pd_bboxes (b, A, 4) px xyxy; mask_scale: prototype pixels per image pixel;
    proto (b, nm, mh, mw); gt_masks (b, M, mh, mw) bool.
    Returns (iou (P,) float32, inter, union, pred_area (P,) int64, gt_area (b, M) int64).

    A predicted mask is zero outside its crop box, so it is decoded only inside the box's pixel window
    (:func:`box_windows`), and the intersection with a GT mask is counted there. Anchors are taken in order of
    window size and chunked so that a chunk's padded windows hold at most ``chunk_pixels`` pixels.
    """
    b, a, nm = pd_coef.shape
    mh, mw = proto.shape[-2:]
    gt_area = count_true(gt_masks.reshape(-1, mh * mw)).view(gt_masks.shape[:2])  # (b, M) int64
    p = pair_image.numel()
    inter = torch.zeros(p, dtype=torch.int64)
    pred_area = torch.zeros(p, dtype=torch.int64)
    if p:
        key = pair_image * a + pair_anchor  # (P,)
        ukey, inv = key.unique(return_inverse=True)  # sorted by image, then anchor
        ub, ua = ukey // a, ukey % a
        boxes = pd_bboxes[ub, ua] * torch.tensor(mask_scale, dtype=pd_bboxes.dtype)  # (U, 4) prototype px
        r0, c0, nr, nc = box_windows(boxes, mh, mw)
        # window sizes rounded up to a ladder of sizes (ratio <= 1.5): anchors of one rounded size share a chunk
        hb, wb = _ladder(nr).clamp(max=mh), _ladder(nc).clamp(max=mw)
        by_size = torch.argsort(hb * (mw + 1) + wb, stable=True)
        rank = torch.empty_like(by_size)
        rank[by_size] = torch.arange(by_size.numel())
        pair_rank = rank[inv]  # (P,) each pair's anchor position in size order
        pair_order = torch.argsort(pair_rank, stable=True)
        starts = torch.searchsorted(pair_rank[pair_order], torch.arange(by_size.numel() + 1))
        px = mh * mw
        proto_px = proto.flatten(2).transpose(1, 2).reshape(-1, nm)  # (b*mh*mw, nm): pixel-major rows
        m_all = gt_masks.shape[1]
        gt_flat = gt_masks.reshape(-1).view(torch.uint8)  # (b*M*mh*mw,)
        keys = list(zip(hb[by_size].tolist(), wb[by_size].tolist()))
        n_u, g0 = len(keys), 0
        while g0 < n_u:  # one group per rounded window size
            hmax, wmax = keys[g0]
            g1 = g0
            while g1 < n_u and keys[g1] == keys[g0]:
                g1 += 1
            if hmax * wmax < MIN_WINDOW:  # small windows are widened (the extra columns fail the crop test)
                wmax = -(-MIN_WINDOW // hmax)
            per = max(1, chunk_pixels // (hmax * wmax))
            for u in range(g0, g1, per):
                v = min(u + per, g1)
                idx = by_size[u:v]  # (n,) unique anchors of this chunk
                n = idx.numel()
                rows = r0[idx, None] + torch.arange(hmax)  # (n, hmax)
                cols = c0[idx, None] + torch.arange(wmax)  # (n, wmax)
                bx = boxes[idx]
                in_r = (rows < mh) & (rows.to(bx.dtype) >= bx[:, 1:2]) & (rows.to(bx.dtype) < bx[:, 3:4])
                in_c = (cols < mw) & (cols.to(bx.dtype) >= bx[:, 0:1]) & (cols.to(bx.dtype) < bx[:, 2:3])
                flat = rows.clamp(max=mh - 1)[:, :, None] * mw + cols.clamp(max=mw - 1)[:, None, :]  # (n, hmax, wmax)
                img = ub[idx]
                logits = window_logits(proto_px, pd_coef[img, ua[idx]], img * px, flat.view(n, -1)).view(flat.shape)
                pm = ((logits > 0) & in_r[:, :, None] & in_c[:, None, :]).view(n, -1)  # (n, hmax*wmax)
                parea = count_true(pm)
                sl = pair_order[starts[u] : starts[v]]  # the pairs of these anchors
                loc = pair_rank[sl] - u
                base = (pair_image[sl] * m_all + pair_gt[sl]) * px  # (k,)
                gm = gt_flat.index_select(0, (base[:, None] + flat.view(n, -1)[loc]).view(-1)).view(torch.bool)
                inter[sl] = count_true(gm.view(sl.numel(), -1) & pm[loc])
                pred_area[sl] = parea[loc]
            g0 = g1
    union = gt_area[pair_image, pair_gt] + pred_area - inter
    iou = inter.to(torch.float32) / union.clamp(min=1).to(torch.float32)
    return iou, inter, union, pred_area, gt_area


def masks_at_proto_size(gt_masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """GT masks (b, M, H, W) bool at imgsz / mask ratio -> (b, M, mh, mw) bool at the prototypes' size, by nearest
    neighbour as the trainer does when the mask ratio is not 4 (unchanged when the sizes agree)."""
    if tuple(gt_masks.shape[-2:]) == tuple(size) or gt_masks.numel() == 0:
        return gt_masks if gt_masks.numel() else gt_masks.new_zeros(*gt_masks.shape[:2], *size)
    b, m = gt_masks.shape[:2]
    small = F.interpolate(gt_masks.reshape(1, b * m, *gt_masks.shape[-2:]).float(), size, mode="nearest")
    return small.view(b, m, *size) > 0.5


def assign(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    anc_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    pd_coef: torch.Tensor,
    proto: torch.Tensor,
    gt_masks: torch.Tensor,
    mask_scale: float,
    p: TALParams,
    chunk_pixels: int = CHUNK_PIXELS,
) -> SegTALResult:
    """Mask-aware task-aligned assignment of one batch.

    Args:
        pd_scores (b, A, nc) probabilities; pd_bboxes (b, A, 4) px xyxy; anc_points (A, 2) px;
        gt_labels (b, M, 1); gt_bboxes (b, M, 4) px xyxy; mask_gt (b, M, 1) as in :func:`tal.assign`.
        pd_coef: (b, A, nm) mask coefficients (anchor-major, i.e. ``Heads.extra["mask_coef"]`` permuted).
        proto: (b, nm, mh, mw) prototypes. gt_masks: (b, M, mh, mw) bool GT masks at prototype resolution.
        mask_scale: prototype pixels per image pixel (mh / image height; 0.25 at the default mask ratio).
    """
    b, a, nc = pd_scores.shape
    m = gt_bboxes.shape[1]
    valid = mask_gt.bool()
    cand_bboxes = candidate_boxes(gt_bboxes, mask_gt, p)
    mask_in_gts = anchors_in_boxes(anc_points, cand_bboxes)  # (b, M, A)
    cand = mask_in_gts & valid
    bbox_scores, box_ov, box_t = pair_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, cand, p)
    box_metric = torch.where(cand, box_t + p.eps, torch.zeros((), dtype=box_t.dtype))
    mask_k = min(MASK_PAIRS_PER_TOPK * p.topk, a)
    if m and a:
        top = box_metric.topk(mask_k, dim=-1).indices  # (b, M, mask_k)
        ranked = torch.zeros(b, m, a, dtype=torch.bool).scatter_(-1, top, True)
        sel = ranked & cand
    else:
        sel = torch.zeros(b, m, a, dtype=torch.bool)
    pi, pg, pa = sel.nonzero(as_tuple=True)
    if pd_coef.shape[1] != a or proto.shape[0] != b or gt_masks.shape[0] != b or gt_masks.shape[1] < m:
        raise ValueError(
            f"seg assignment: mask coefficients {tuple(pd_coef.shape)}, protos {tuple(proto.shape)} and GT masks "
            f"{tuple(gt_masks.shape)} do not fit {b} images, {a} anchors, {m} GTs"
        )
    miou, inter, union, parea, gt_area = pair_mask_ious(
        pi, pg, pa, pd_coef, pd_bboxes, mask_scale, proto, gt_masks[:, :m], chunk_pixels
    )
    # combined overlap and its metric, at candidates
    ci, cg, ca = cand.nonzero(as_tuple=True)
    cand_key = (ci * m + cg) * a + ca  # (C,) ascending (nonzero order)
    at = torch.searchsorted(cand_key, (pi * m + pg) * a + pa)  # each mask pair's place among the candidates
    mask_iou_c = torch.zeros(ci.numel())
    mask_iou_c[at] = miou
    ov = (box_ov[ci, cg, ca] + mask_iou_c) / 2  # (C,)
    t = pow_in_whole_blocks(bbox_scores[ci, cg, ca], p.alpha) * pow_in_whole_blocks(ov, p.beta)
    overlaps = torch.zeros(b, m, a)
    overlaps[ci, cg, ca] = ov
    align_metric = torch.zeros(b, m, a)
    align_metric[ci, cg, ca] = t
    tal = select_and_target(
        cand_bboxes, mask_in_gts, cand, bbox_scores, overlaps, align_metric, gt_labels, gt_bboxes, mask_gt, nc, p
    )
    return SegTALResult(
        tal=tal,
        box_overlaps=box_ov,
        box_metric=box_metric,
        mask_k=mask_k,
        pair_image=pi,
        pair_gt=pg,
        pair_anchor=pa,
        pair_mask_iou=miou,
        pair_inter=inter,
        pair_union=union,
        pair_pred_area=parea,
        gt_area=gt_area,
    )
