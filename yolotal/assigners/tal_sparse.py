"""Task-aligned assignment on candidate pairs only: time and memory bounded by the pairs, not by b*M*A.

Only an anchor whose centre lies inside a GT's candidate box can become that GT's positive, so every stage
works on the list of candidate pairs (image, GT, anchor): P pairs, a few per cent of b*M*A at most.

* candidates: per GT and level, the rectangle of grid cells whose centres pass the strict in-box test is
  computed from the box corners (the test is separable in x and y; the two end cells of each range are
  tested exactly, with the anchors' own coordinates), then enumerated. Anchors that are not cell-centre grids
  fall back to the dense test in blocks of GTs. The pairs come out in ``mask.nonzero()`` order.
* metrics: s, u (CIoU clamped at 0) and t = s^alpha * u^beta per pair, in that same order, bit-identical to
  the dense computation (see ``complete_box_iou_gathered``).
* top-k: each GT's pairs are contiguous; GTs with more than topk pairs are grouped by length, padded into
  blocks and passed to torch.topk. A pair of t = 0 is never picked here (but see below).
* conflicts: an anchor picked by several GTs goes to the GT with the largest CIoU there among all candidate
  GTs (lowest GT index on ties), found with two scatter reductions.
* topk2: a sort of the surviving positives only.
* threads: on the CPU the whole assignment runs on one intra-op thread (``core.threads.serial_on_cpu``: a
  chain of small kernels loses to threading on a busy machine), and ``t`` uses ``pow_in_whole_blocks``, so the
  bits do not depend on the thread count. No host reads: the anchor layout is recognised once and recalled
  with one on-device comparison; only data-dependent sizes (nonzero, repeat_interleave) remain.

The reference's top-k runs over all A anchors, so a GT with fewer than topk candidates of t > 0 also "picks"
anchors of t = 0, in an order torch leaves unspecified. Those that are candidates become positives without
weight (soft score 0: they add nothing to any loss term), except that such a pick can make an anchor
multiply claimed and hand it, with weight, to another GT with a larger CIoU there. For the few GTs where that
can happen, the dense row is rebuilt and given to the same torch.topk, so those picks are the reference's.
Result: every positive that carries weight, every soft target score and every loss value is the reference's;
``fg_mask`` can differ only at positives of weight 0.

Profiles v8.0.0 / v8.0.35 (ultralytics 8.0.0-8.0.51) computed CIoU at every anchor and gave a multiply claimed
anchor to the largest CIoU among *all* GTs of the image. Here only those anchors are looked at again: the CIoU
of every real GT of the image is computed there, and a winner that has no candidate pair at the anchor gets
one, appended after the candidate pairs (``pair_topk`` False, ``pair_pos`` True), so its t and u count in its
soft scores as they do there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.boxes import complete_box_iou_gathered
from ..core.threads import pow_in_whole_blocks, serial_on_cpu
from .tal import IN_BOX_EPS, TALParams, candidate_boxes

DENSE_CHUNK = 1 << 24  # GT x anchor cells per block in the fallback in-box test
ROW_BLOCK = 1 << 18  # GT x anchor cells per block of rebuilt dense top-k rows


@dataclass(frozen=True)
class GridLevel:
    start: int
    w: int
    h: int
    stride: float


@dataclass(frozen=True)
class SparseTAL:
    """The result of a candidate-pair assignment: P candidate pairs in (image, GT, anchor) order.

    pair_gt, pair_key       (P,) i64   flat GT id (image * M + slot) and flat anchor id (image * A + anchor)
    pair_s, pair_u, pair_t  (P,)       class score, CIoU (>= 0) and alignment metric
    pair_topk               (P,) bool  picked by its GT's top-k
    pair_pos                (P,) bool  final positive (after conflicts and topk2)
    multi                   (b, A) bool anchors picked by more than one GT
    fg_mask, target_gt_idx, target_labels (b, A); target_bboxes (b, A, 4); target_scores (b, A, nc)
    pos_align_metrics, pos_overlaps (b, M)
    n_appended              pairs after the candidate pairs: v8.0.x conflict winners that were no candidate there
    """

    n_gt_slots: int  # M
    n_anchors: int  # A
    pair_gt: torch.Tensor
    pair_key: torch.Tensor
    pair_s: torch.Tensor
    pair_u: torch.Tensor
    pair_t: torch.Tensor
    pair_topk: torch.Tensor
    pair_pos: torch.Tensor
    multi: torch.Tensor
    fg_mask: torch.Tensor
    target_gt_idx: torch.Tensor
    target_labels: torch.Tensor
    target_bboxes: torch.Tensor
    target_scores: torch.Tensor
    pos_align_metrics: torch.Tensor
    pos_overlaps: torch.Tensor
    n_appended: int = 0

    @property
    def n_pairs(self) -> int:
        return int(self.pair_gt.numel())

    @property
    def pair_b(self) -> torch.Tensor:
        return torch.div(self.pair_gt, max(self.n_gt_slots, 1), rounding_mode="floor")

    @property
    def pair_m(self) -> torch.Tensor:
        return self.pair_gt % max(self.n_gt_slots, 1)

    @property
    def pair_a(self) -> torch.Tensor:
        return self.pair_key % self.n_anchors


def grid_structure(anc_points: torch.Tensor) -> list[GridLevel] | None:
    """Recognise anchors laid out as cell-centre grids, level after level, row-major, (i + 0.5) * stride.

    Returns the levels, or None when the anchors are laid out any other way.
    """
    pts = anc_points.detach().float().cpu()
    n = pts.shape[0]
    levels: list[GridLevel] = []
    start = 0
    while start < n:
        s = float(pts[start, 0]) * 2
        if s <= 0 or float(pts[start, 1]) != s / 2:
            return None
        rest = pts[start:]
        k = torch.arange(rest.shape[0])
        row_change = (rest[:, 1] != rest[0, 1]).nonzero()
        w = int(row_change[0]) if row_change.numel() else rest.shape[0]
        ex = ((k % w).float() + 0.5) * s
        ey = ((k // w).float() + 0.5) * s
        bad = ((rest[:, 0] != ex) | (rest[:, 1] != ey)).nonzero()
        end = int(bad[0]) if bad.numel() else rest.shape[0]
        h = end // w
        if h == 0:
            return None
        levels.append(GridLevel(start, w, h, s))
        start += h * w
    return levels


_GRID_CACHE: list[tuple[torch.Tensor, list[GridLevel] | None]] = []  # (anchors, layout), most recent last
_GRID_CACHE_SIZE = 4  # a few image sizes (multi-scale training); 270 KB per entry at 1280 px


def grid_structure_cached(anc_points: torch.Tensor) -> list[GridLevel] | None:
    """``grid_structure`` remembered for the last few anchor tensors (a trainer passes equal anchors every
    batch): one comparison on the anchors' device instead of reading them back to the host."""
    for pts, levels in reversed(_GRID_CACHE):
        if pts.shape == anc_points.shape and pts.device == anc_points.device and pts.dtype == anc_points.dtype \
                and torch.equal(pts, anc_points):
            return levels
    levels = grid_structure(anc_points)
    _GRID_CACHE.append((anc_points.detach().clone(), levels))
    del _GRID_CACHE[:-_GRID_CACHE_SIZE]
    return levels


RANGE_MARGIN = 0.01  # cells; far above the float error of x / s - 0.5, so the ranges are supersets


def _ranges(lo: torch.Tensor, hi: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell index ranges [first, first + count) holding every cell i with lo < i < hi (cell units), clipped.

    A cell near an edge may be included and then fail the exact in-box test; none that passes it is left out.
    """
    first = (lo + (1 - RANGE_MARGIN)).floor().clamp(0, size).long()
    last = (hi - (1 - RANGE_MARGIN)).ceil().clamp(-1, size - 1).long()
    return first, (last - first + 1).clamp(min=0)


def candidate_pairs(anc_points: torch.Tensor, cand_bboxes: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(GT, anchor) pairs with the anchor centre strictly inside the candidate box.

    Args:
        anc_points: (A, 2) anchor centres, px.
        cand_bboxes: (b, M, 4) candidate boxes, px xyxy.
        valid: (b, M) bool real GTs.
    Returns:
        pair_gt (image * M + slot), pair_key (image * A + anchor): (P,) int64 each, in the order of
        ``mask.nonzero()`` on the dense (b, M, A) mask. The order matters: torch's vectorised pow/atan can
        differ in the last bit between an element in a SIMD block and one in a tail, so the metrics are
        bit-identical to the dense ones only when computed in the same order.
    """
    dev = cand_bboxes.device
    m, n_anc = valid.shape[1], anc_points.shape[0]
    gb, gm = valid.nonzero(as_tuple=True)  # (G,)
    gseg, gbase = gb * m + gm, gb * n_anc  # (G,) flat GT id, first flat anchor id of its image
    boxes = cand_bboxes[gb, gm]  # (G, 4)
    n_gt = boxes.shape[0]
    levels = grid_structure_cached(anc_points)
    empty = torch.zeros(0, dtype=torch.int64, device=dev)
    if levels is None:  # any anchor layout: the exact test in blocks of GTs
        step = max(1, DENSE_CHUNK // max(anc_points.shape[0], 1))
        g_parts, a_parts = [empty], [empty]
        for i in range(0, n_gt, step):
            gi, ai = _inside(anc_points, boxes[i : i + step]).nonzero(as_tuple=True)  # (g, A) -> pairs
            g_parts.append(gi + i)
            a_parts.append(ai)
        g, a = torch.cat(g_parts), torch.cat(a_parts)
        return gseg[g], gbase[g] + a
    # per GT and level, the rectangle of cells inside the box (the test is separable in x and y); enumerated
    # GT-major, level by level, row by row: ascending anchor order within each GT, as nonzero() gives
    x0, nx, y0, ny = _cell_rects(boxes, levels)  # (G, L) each
    starts = torch.tensor([lv.start for lv in levels], device=dev)  # (L,)
    widths = torch.tensor([lv.w for lv in levels], device=dev)
    empty_rect = (nx == 0) | (ny == 0)
    nx, ny = nx.masked_fill(empty_rect, 0).reshape(-1), ny.masked_fill(empty_rect, 0).reshape(-1)  # (G * L,)
    first_cell = (gbase.unsqueeze(1) + starts + y0 * widths + x0).reshape(-1)  # (G * L,) flat anchor id of (x0, y0)
    row_rect = torch.repeat_interleave(ny)  # (R,) rectangle of each row
    row_no = torch.arange(row_rect.numel(), device=dev) - (ny.cumsum(0) - ny).take(row_rect)
    row_first = first_cell.take(row_rect) + row_no * widths.repeat(n_gt).take(row_rect)
    row_len = nx.take(row_rect)
    done = row_len.cumsum(0) - row_len  # cells enumerated before each row
    key = torch.repeat_interleave(row_first - done, row_len)
    key += torch.arange(key.numel(), device=dev)
    return torch.repeat_interleave(gseg.take(torch.div(row_rect, len(levels), rounding_mode="floor")), row_len), key


def _cell_rects(boxes: torch.Tensor, levels: list[GridLevel]) -> tuple[torch.Tensor, ...]:
    """``_cell_rect`` for all levels at once: (G, 4) px boxes -> first column, column count, first row, row count,
    each (G, L) int64. The same element-wise arithmetic, broadcast over the levels (one kernel per step
    instead of one per level)."""
    dev, dt = boxes.device, boxes.dtype
    stride = torch.tensor([lv.stride for lv in levels], dtype=dt, device=dev)  # (L,)
    out = []
    for lo_i, hi_i, sizes in ((0, 2, [lv.w for lv in levels]), (1, 3, [lv.h for lv in levels])):
        size = torch.tensor(sizes, device=dev)  # (L,)
        lo, hi = boxes[:, lo_i : lo_i + 1], boxes[:, hi_i : hi_i + 1]  # (G, 1)
        first = torch.minimum(torch.maximum((lo / stride - 0.5 + (1 - RANGE_MARGIN)).floor(), torch.zeros((), dtype=dt, device=dev)), size.to(dt)).long()
        last = torch.minimum(torch.maximum((hi / stride - 0.5 - (1 - RANGE_MARGIN)).ceil(), torch.full((), -1.0, dtype=dt, device=dev)), (size - 1).to(dt)).long()
        last = torch.maximum(last, first - 1)  # empty ranges: count 0
        centre_first = (first.to(dt) + 0.5) * stride
        centre_last = (last.to(dt) + 0.5) * stride
        first = first + (~(centre_first - lo > IN_BOX_EPS)).long()
        last = last - (~(hi - centre_last > IN_BOX_EPS)).long()
        out += [first, (last - first + 1).clamp(min=0)]
    return out[0], out[1], out[2], out[3]


def _cell_rect(boxes: torch.Tensor, lv: GridLevel) -> tuple[torch.Tensor, ...]:
    """(G, 4) px boxes -> first column, column count, first row, row count of the cells of one level whose
    centres pass the strict in-box test, each (G,) int64.

    A coarse range from x / s - 0.5 (the centre of cell i is (i + 0.5) * s) is a superset missing nothing;
    the test is monotone along a row, so only its two end cells can fail, and those are tested exactly, with
    the anchor coordinates and comparisons of the dense rule.
    """
    out = []
    for lo_i, hi_i, size in ((0, 2, lv.w), (1, 3, lv.h)):
        lo, hi = boxes[:, lo_i], boxes[:, hi_i]
        first, count = _ranges(lo / lv.stride - 0.5, hi / lv.stride - 0.5, size)
        last = first + count - 1
        centre_first = (first.to(boxes.dtype) + 0.5) * lv.stride
        centre_last = (last.to(boxes.dtype) + 0.5) * lv.stride
        first = first + (~(centre_first - lo > IN_BOX_EPS)).long()
        last = last - (~(hi - centre_last > IN_BOX_EPS)).long()
        out += [first, (last - first + 1).clamp(min=0)]
    return out[0], out[1], out[2], out[3]


def _inside(points: torch.Tensor, boxes: torch.Tensor, eps: float = IN_BOX_EPS) -> torch.Tensor:
    """(A, 2) points, (g, 4) boxes -> (g, A) strictly inside, the dense rule."""
    x, y = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (boxes[:, i : i + 1] for i in range(4))
    return (x - x1 > eps) & (y - y1 > eps) & (x2 - x > eps) & (y2 - y > eps)


def _rank_order(seg: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Permutation sorting pairs by GT, then t descending; equal t keep their input (anchor) order."""
    if t.dtype == torch.float32:
        # float32 values sort like their bit patterns once the negative ones have their magnitude bits flipped:
        # one int64 sort on (GT, descending t), no host-side check of the signs
        bits = t.view(torch.int32)
        bits = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + (1 << 31)  # order-preserving, in [0, 2^32)
        return torch.sort(seg * (1 << 32) + ((1 << 32) - 1 - bits), stable=True).indices
    order = torch.sort(t, descending=True, stable=True).indices
    return order[torch.sort(seg[order], stable=True).indices]


def _segment_rank(seg: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Rank of each selected element among the selected elements of its segment (seg sorted ascending)."""
    cs = selected.long().cumsum(0)
    before = cs - selected.long()  # selected elements strictly before this one, globally
    n = seg.numel()
    is_start = torch.ones(n, dtype=torch.bool, device=seg.device)
    if n > 1:
        is_start[1:] = seg[1:] != seg[:-1]
    start_idx = torch.nonzero(is_start).squeeze(1)
    seg_no = is_start.long().cumsum(0) - 1
    return before - before[start_idx][seg_no]


def _segment_topk(seg: torch.Tensor, t: torch.Tensor, counts: torch.Tensor, first: torch.Tensor,
                  k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) bool: the k pairs of largest t > 0 of each segment (pairs of a segment are contiguous; counts and
    first (n_seg,) give each segment's length and first pair); and the segments (sorted ids) whose k-th and
    (k+1)-th largest t are equal and > 0: which of the tied pairs the reference keeps is torch.topk's tie order on
    its dense row, so those are left to :func:`_dense_topk`.

    Segments of at most k pairs keep all their pairs of t > 0. Longer ones are grouped by length into powers
    of two, padded into (rows, 2^j) blocks and passed to torch.topk: at most 2P values are read in all.
    """
    picked = t > 0
    long_segs = (counts > k).nonzero().squeeze(1)
    ties = []
    if not long_segs.numel():
        return picked, long_segs
    picked[(counts[seg] > k)] = False
    width_exp = torch.ceil(torch.log2(counts[long_segs].double())).long()
    # every possible width, known without reading counts back: 2^e with k < 2^e, up to the largest segment
    for e in range(max(k, 1).bit_length(), max(t.numel(), 2).bit_length() + 1):
        rows = long_segs[width_exp == e]
        if not rows.numel():
            continue
        width = 1 << e
        col = torch.arange(width, device=t.device)
        idx = first[rows].unsqueeze(1) + col  # (r, width)
        inside = col < counts[rows].unsqueeze(1)
        vals = torch.where(inside, t.take(idx.clamp(max=t.numel() - 1)), torch.full((), -1.0, dtype=t.dtype))
        top_vals, top_cols = torch.topk(vals, k + 1, dim=1)  # one more than k: is the cut inside a tie?
        chosen = first[rows].unsqueeze(1) + top_cols[:, :k]
        picked[chosen[top_vals[:, :k] > 0]] = True
        ties.append(rows[(top_vals[:, k - 1] == top_vals[:, k]) & (top_vals[:, k] > 0)])
    return picked, torch.sort(torch.cat(ties)).values if ties else long_segs[:0]


def _dense_topk(gts: torch.Tensor, row_values: torch.Tensor, key: torch.Tensor, counts: torch.Tensor,
                first: torch.Tensor, n_anc: int, k: int) -> torch.Tensor:
    """The reference's own top-k for the GTs ``gts`` (sorted ids): each GT's dense (A,) row is rebuilt — its pairs'
    ``row_values`` (P,) at their anchors, 0 at every other anchor, as the reference's (b, M, A) tensor holds it —
    and passed to torch.topk, in cache-sized blocks, so ties fall as they fall there. Returns a (P,) bool mask of
    the pairs of those GTs whose anchor was picked (False for every other pair)."""
    out = torch.zeros(row_values.shape, dtype=torch.bool, device=row_values.device)
    dev = row_values.device
    k = min(k, n_anc)
    rows_per_block = max(1, ROW_BLOCK // max(n_anc, 1))
    for i in range(0, gts.numel(), rows_per_block):
        block = gts[i : i + rows_per_block]
        n_pairs = counts[block]
        r = torch.repeat_interleave(torch.arange(block.numel(), device=dev), n_pairs)
        sel = torch.repeat_interleave(first[block] - (n_pairs.cumsum(0) - n_pairs), n_pairs)
        sel = sel + torch.arange(sel.numel(), device=dev)  # the pairs of the block's GTs
        col = key[sel] % n_anc
        rows = torch.zeros(block.numel(), n_anc, dtype=row_values.dtype, device=dev)
        rows[r, col] = row_values[sel]
        idx = torch.topk(rows, k, dim=-1, largest=True).indices
        picked = torch.zeros(rows.shape, dtype=torch.bool, device=dev).scatter_(1, idx, True)
        out[sel] = picked[r, col]
    return out


def _zero_picks_that_matter(
    seg: torch.Tensor,
    key: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    positive_t: torch.Tensor,
    weighted_picks: torch.Tensor,
    counts: torch.Tensor,
    first: torch.Tensor,
    n_keys: int,
    n_anc: int,
    k: int,
    any_gt_can_win: bool = False,
) -> torch.Tensor:
    """Zero-metric candidates the dense top-k would pick where that can change who wins an anchor.

    A GT with fewer than k candidates of t > 0 fills its top-k list with anchors of t = 0, in torch's
    (unspecified) tie order. Such a pick is harmless unless it makes its anchor multiply claimed while another
    GT has u > 0 there: then the anchor may go to that GT, with weight. That needs another claimant: a weighted
    pick of another GT, or a second such zero pick. For exactly the GTs with a candidate in that position the
    dense row (t at candidates, 0 elsewhere) is rebuilt and passed to the same torch.topk, in blocks, so the
    picks are the reference's. counts, first (n_seg,): each GT's number of pairs and first pair.
    any_gt_can_win: the v8.0.x rule, where a GT that is not a candidate of the anchor can win it: then the
    "another GT has u > 0" condition is not checked (it would need every GT's CIoU there).
    Returns a (P,) bool mask of the zero-metric pairs picked.
    """
    out = torch.zeros_like(positive_t)
    if not t.numel():
        return out
    dev = t.device
    n_seg = counts.numel()
    n_weighted = torch.bincount(seg[positive_t], minlength=n_seg)
    needy = ~positive_t & (n_weighted[seg] < k)  # zero-metric pairs of GTs whose top-k reaches zeros
    needy_keys = key[needy]
    if not needy_keys.numel():
        return out

    # count claimants only at anchors a needy pair touches
    touched = torch.zeros(n_keys, dtype=torch.bool, device=dev)
    touched[needy_keys] = True
    near = touched[key].nonzero().squeeze(1)  # pairs at those anchors
    k_near = key[near]

    def per_anchor(mask: torch.Tensor) -> torch.Tensor:  # (len(near),) count of mask over pairs at the anchor
        return torch.zeros(n_keys, dtype=torch.int64, device=dev).index_add_(0, k_near, mask.long())[k_near]

    nd = needy[near]
    needs = nd & ((per_anchor(weighted_picks[near]) > 0) | (per_anchor(nd) > 1))
    if not any_gt_can_win:
        u_pos = u[near] > 0
        needs &= (per_anchor(u_pos) - u_pos.long()) > 0  # another candidate GT with u > 0 at the anchor
    gts = torch.unique(seg[near[needs]])  # sorted GT ids
    if not gts.numel():
        return out
    out = _dense_topk(gts, t, key, counts, first, n_anc, k)
    return out & ~positive_t


def pair_positives(seg: torch.Tensor, key: torch.Tensor, s: torch.Tensor, u: torch.Tensor, b: int, m: int, n_anc: int,
                   p: TALParams) -> tuple[torch.Tensor, ...]:
    """The task-aligned selection on candidate pairs, from each pair's class score ``s`` and CIoU ``u`` (P,).

    seg (P,) flat GT (image * M + slot), key (P,) flat anchor (image * A + anchor), in candidate_pairs' order.
    Returns t (P,), the top-k picks (P,) bool, the final positives (P,) bool after conflicts (and topk2), and
    the anchors claimed more than once (b * A,) bool. On the CPU it runs on one intra-op thread, and ``t`` is
    computed position-independently (``pow_in_whole_blocks``), like the dense one.
    """
    dev = s.device
    with serial_on_cpu(dev):
        t = pow_in_whole_blocks(s, p.alpha) * pow_in_whole_blocks(u, p.beta)
        positive_t = t > 0
        counts = torch.bincount(seg, minlength=b * m)  # pairs per GT; a GT's pairs are contiguous
        first = counts.cumsum(0) - counts
        pos_topk, tied = _segment_topk(seg, t, counts, first, p.topk)
        if tied.numel():  # the cut falls inside a tie of t > 0: the reference's torch.topk on its dense row decides
            in_tied = torch.zeros(counts.numel(), dtype=torch.bool, device=dev)
            in_tied[tied] = True
            on_tied = in_tied[seg]
            pos_topk[on_tied] = (_dense_topk(tied, t, key, counts, first, n_anc, p.topk) & positive_t)[on_tied]
        pos_topk |= _zero_picks_that_matter(seg, key, t, u, positive_t, pos_topk, counts, first, b * n_anc, n_anc,
                                            p.topk, p.rule.conflicts_all_gts)

        # conflicts: anchors picked more than once go to the largest CIoU among all candidate GTs there
        claims = torch.bincount(key[pos_topk], minlength=b * n_anc)
        multi_flat = claims > 1
        pos = pos_topk.clone()
        at_multi = multi_flat.take(key).nonzero().squeeze(1)
        if at_multi.numel():
            km, um, sm = key[at_multi], u[at_multi], seg[at_multi]
            best_u = torch.zeros(b * n_anc, dtype=u.dtype, device=dev).scatter_reduce_(0, km, um, "amax")
            cand_gt = torch.where(um == best_u[km], sm, torch.full_like(sm, b * m))
            winner = torch.full((b * n_anc,), b * m, dtype=torch.int64, device=dev).scatter_reduce_(
                0, km, cand_gt, "amin")
            pos[at_multi] = sm == winner[km]

        if p.topk2 and p.topk2 != p.topk:  # keep each GT's topk2 best surviving positives of t > 0
            # (the reference's second top-k also runs over all anchors, so a positive of t = 0 survives it only
            # by torch's tie order; dropping them keeps our positives a subset of the reference's)
            pos &= positive_t
            idx = pos.nonzero().squeeze(1)
            order = idx[_rank_order(seg[idx], t[idx])]
            rank = _segment_rank(seg[order], torch.ones_like(order, dtype=torch.bool))
            # a GT whose topk2-th and next surviving t are equal: torch.topk's tie order on the reference's row
            # (t at the GT's surviving positives, 0 elsewhere) decides which of the tied ones stay
            last_kept = torch.full((b * m,), -1.0, dtype=t.dtype, device=dev)
            first_cut = torch.full((b * m,), -2.0, dtype=t.dtype, device=dev)
            last_kept[seg[order[rank == p.topk2 - 1]]] = t[order[rank == p.topk2 - 1]]
            first_cut[seg[order[rank == p.topk2]]] = t[order[rank == p.topk2]]
            tied = (last_kept == first_cut).nonzero().squeeze(1)
            survivors = pos.clone()
            pos[order[rank >= p.topk2]] = False
            if tied.numel():
                in_tied = torch.zeros(b * m, dtype=torch.bool, device=dev)
                in_tied[tied] = True
                on_tied = in_tied[seg]
                row = torch.where(survivors, t, torch.zeros((), dtype=t.dtype, device=dev))
                pos[on_tied] = (_dense_topk(tied, row, key, counts, first, n_anc, p.topk2) & survivors)[on_tied]

    return t, pos_topk, pos, multi_flat


def assign_sparse(
    pd_scores: torch.Tensor,
    pd_bboxes: torch.Tensor,
    anc_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    p: TALParams,
) -> SparseTAL:
    """Task-aligned assignment of one batch on candidate pairs. Inputs as ``tal.assign``."""
    dev = pd_scores.device
    b, n_anc, nc = pd_scores.shape
    m = gt_bboxes.shape[1]
    # float16 / bfloat16 inputs (CUDA AMP) are computed in float32: the CIoU of a 1280-px box overflows float16
    # (w * h > 65504) and s^alpha * u^beta underflows; the soft scores go back in the caller's dtype
    out_dtype = torch.promote_types(pd_scores.dtype, pd_bboxes.dtype)
    work = torch.promote_types(out_dtype, torch.float32)
    gt_w, pd_w, anc_w = gt_bboxes.to(work), pd_bboxes.to(work), anc_points.to(work)  # no copy when float32
    # On the CPU all of it runs on one intra-op thread (core.threads: a chain of ~200 small kernels loses to
    # threading on a busy machine).
    with serial_on_cpu(dev):
        cand = candidate_boxes(gt_w, mask_gt, p)
        seg, key = candidate_pairs(anc_w, cand, mask_gt[..., 0].bool())  # (P,) flat GT, flat anchor
        labels = gt_labels[..., 0].long().reshape(-1)  # (b * M,)
        s = pd_scores.reshape(-1).take(key * nc + labels.take(seg)).to(work)  # only the P pairs are upcast
        u = complete_box_iou_gathered(gt_w.reshape(-1, 4), seg, pd_w.reshape(-1, 4), key).clamp_(min=0)
        return pair_targets(seg, key, s, u, gt_bboxes, labels, b, m, n_anc, nc, out_dtype, p,
                            all_gts=(pd_scores, pd_w, gt_w, mask_gt, work))


def pair_targets(seg: torch.Tensor, key: torch.Tensor, s: torch.Tensor, u: torch.Tensor, gt_bboxes: torch.Tensor,
                 labels: torch.Tensor, b: int, m: int, n_anc: int, nc: int, out_dtype, p: TALParams,
                 all_gts: tuple | None = None) -> SparseTAL:
    """Candidate pairs with their scores ``s`` and overlaps ``u`` (P,) -> the assignment: selection
    (``pair_positives``), each GT's largest t and u over its final positives, and the per-anchor targets.
    Shared by every family whose rule differs only in its candidates and its overlap (detect, rotated).

    all_gts: (pd_scores, pd_bboxes, gt_bboxes in the working dtype, mask_gt, working dtype) of a detection run,
    for the 8.0.0-8.0.51 profiles whose conflicts are decided among all GTs (off the candidates too)."""
    dev = s.device
    with serial_on_cpu(dev):
        t, pos_topk, pos, multi_flat = pair_positives(seg, key, s, u, b, m, n_anc, p)
        n_cand = seg.numel()
        if p.rule.conflicts_all_gts and m and all_gts is not None:
            pd_scores, pd_w, gt_w, mask_gt, work = all_gts
            seg, key, s, u, t, pos_topk, pos = _conflicts_among_all_gts(
                seg, key, s, u, t, pos_topk, pos, multi_flat, pd_scores, pd_w, gt_w, labels, mask_gt, n_anc, p, work)

        # per-GT maxima over the final positives, and the per-anchor outputs
        idx = pos.nonzero().squeeze(1)
        gid, kid, tp, up = seg[idx], key[idx], t[idx], u[idx]
        pos_align = torch.zeros(b * m, dtype=t.dtype, device=dev).scatter_reduce_(0, gid, tp, "amax")
        pos_ov = torch.zeros(b * m, dtype=u.dtype, device=dev).scatter_reduce_(0, gid, up, "amax")
        norm_vals = tp * pos_ov[gid] / (pos_align[gid] + p.eps)  # the reference's order of operations

        fg = torch.zeros(b * n_anc, dtype=torch.bool, device=dev)
        fg[kid] = True
        gt_idx = torch.zeros(b * n_anc, dtype=torch.int64, device=dev)
        gt_idx[kid] = gid % max(m, 1)
        norm = torch.zeros(b * n_anc, dtype=t.dtype, device=dev)
        norm[kid] = norm_vals
        r = dict(seg=seg, key=key, s=s, u=u, t=t, pos_topk=pos_topk, pos=pos, multi=multi_flat.view(b, n_anc),
                 fg=fg.view(b, n_anc), gt_idx=gt_idx.view(b, n_anc), norm=norm.view(b, n_anc),
                 pos_align=pos_align.view(b, m), pos_ov=pos_ov.view(b, m), n_appended=seg.numel() - n_cand)
        return _outputs(r, gt_bboxes, labels, b, m, n_anc, nc, out_dtype)


def _conflicts_among_all_gts(seg, key, s, u, t, pos_topk, pos, multi_flat, pd_scores, pd_w, gt_w, labels, mask_gt,
                             n_anc: int, p: TALParams, work) -> tuple[torch.Tensor, ...]:
    """The v8.0.x conflict rule: each multiply claimed anchor goes to the first GT of the image with the largest
    CIoU there among all its real GTs (padding slots count as 0, as a zero box's clamped CIoU is). Winners
    without a candidate pair at the anchor get one appended. Returns seg, key, s, u, t, pos_topk, pos."""
    dev = seg.device
    b, m = mask_gt.shape[:2]
    mk = multi_flat.nonzero().squeeze(1)  # (K,) flat anchor ids
    if not mk.numel():
        return seg, key, s, u, t, pos_topk, pos
    img = torch.div(mk, n_anc, rounding_mode="floor")  # (K,)
    slots = img.unsqueeze(1) * m + torch.arange(m, device=dev)  # (K, M) flat GT ids
    u_all = complete_box_iou_gathered(gt_w.reshape(-1, 4), slots.reshape(-1), pd_w.reshape(-1, 4),
                                      mk.repeat_interleave(m)).clamp_(min=0).view(-1, m)
    u_all = u_all * mask_gt.reshape(-1)[slots].to(u_all.dtype)  # padding slots: 0
    win = slots.gather(1, u_all.max(1).indices.unsqueeze(1)).squeeze(1)  # (K,) first GT with the largest CIoU
    win_u = u_all.max(1).values
    winner_of = torch.full((multi_flat.numel(),), -1, dtype=torch.int64, device=dev)
    winner_of[mk] = win
    at_multi = multi_flat.take(key)
    pos = torch.where(at_multi, seg == winner_of.take(key), pos)
    covered = torch.zeros(multi_flat.numel(), dtype=torch.bool, device=dev)
    covered[key[at_multi & (seg == winner_of.take(key))]] = True
    new = ~covered[mk]  # winners that were not candidates there (no host read: possibly none appended)
    nk, ng, nu = mk[new], win[new], win_u[new]
    nc = pd_scores.shape[-1]
    ns = pd_scores.reshape(-1).take(nk * nc + labels.take(ng)).to(work)
    nt = pow_in_whole_blocks(ns, p.alpha) * pow_in_whole_blocks(nu, p.beta)
    seg, key = torch.cat((seg, ng)), torch.cat((key, nk))
    s, u, t = torch.cat((s, ns)), torch.cat((u, nu)), torch.cat((t, nt))
    pos_topk = torch.cat((pos_topk, torch.zeros_like(ng, dtype=torch.bool)))
    pos = torch.cat((pos, torch.ones_like(ng, dtype=torch.bool)))
    return seg, key, s, u, t, pos_topk, pos


def _outputs(r: dict, gt_bboxes, labels, b: int, m: int, n_anc: int, nc: int, out_dtype) -> SparseTAL:
    """The dense per-anchor targets (b, A, nc), (b, A, 4), (b, A) from the per-anchor vectors."""
    dev = gt_bboxes.device
    gt_idx, norm = r["gt_idx"], r["norm"]
    target_scores = torch.zeros(b, n_anc, nc, dtype=out_dtype, device=dev)
    if m:
        bidx = torch.arange(b, device=dev).unsqueeze(1)
        target_labels = labels.view(b, m)[bidx, gt_idx].clamp(min=0)  # (b, A)
        target_bboxes = gt_bboxes[bidx, gt_idx]  # (b, A, 4), the caller's dtype
        target_scores.scatter_(2, target_labels.unsqueeze(-1), norm.to(out_dtype).unsqueeze(-1))  # 0 off fg
    else:
        target_labels = torch.full((b, n_anc), nc, dtype=torch.int64, device=dev)
        target_bboxes = torch.zeros(b, n_anc, gt_bboxes.shape[-1], dtype=gt_bboxes.dtype, device=dev)

    return SparseTAL(
        n_gt_slots=m, n_anchors=n_anc, pair_gt=r["seg"], pair_key=r["key"], pair_s=r["s"], pair_u=r["u"],
        pair_t=r["t"], pair_topk=r["pos_topk"], pair_pos=r["pos"], multi=r["multi"], fg_mask=r["fg"],
        target_gt_idx=gt_idx, target_labels=target_labels, target_bboxes=target_bboxes,
        target_scores=target_scores, pos_align_metrics=r["pos_align"], pos_overlaps=r["pos_ov"],
        n_appended=int(r.get("n_appended", 0)),
    )
