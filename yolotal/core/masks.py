"""Ground-truth instance masks as the ultralytics trainer rasterises them, in numpy (no OpenCV).

The trainer turns each polygon (pixel coordinates at the letterboxed image size ``(h, w)``) into a mask by
filling it at full resolution and then shrinking it to ``(h // r, w // r)`` (``r`` = ``mask_ratio``, 4 by
default, so 160 x 160 at imgsz 640). Both steps are OpenCV's, and their pixel rules are reproduced here:

Filling (``cv2.fillPoly`` with 8-connected lines, no sub-pixel shift):

* vertices become integers by truncation toward zero (a float -> int32 cast);
* every edge's outline is drawn as an 8-connected digital line, stepped from its left end along the major
  axis; at step k the minor offset is ``ceil((2·k·d_minor - d_major) / (2·d_major))`` (a tie rounds toward
  the start); edges leaving the image are first clipped to it (integer end points, the cut computed in
  double precision and truncated);
* the interior is filled scanline by scanline: an edge covers rows ``y0 <= y < y1`` (its lower end excluded),
  its x at a row is a 16.16 fixed-point value stepped by ``trunc(dx·2^16 / dy)``; on each row the active
  edges, sorted by x, pair up into spans ``[ceil(x_left), floor(x_right)]``.

Shrinking (``cv2.resize`` of a uint8 0/1 image, default bilinear): destination pixel centres map to
``(d + 0.5)·s - 0.5`` in the source; each output is the two-by-two bilinear blend in 11-bit fixed-point
weights, rounded to the nearest integer. An exact 2x shrink uses the 2x2 box mean instead (as OpenCV does).
For r = 4 an output pixel is 1 when at least two of the source pixels (4y+1..4y+2, 4x+1..4x+2) are set.

With ``overlap_mask`` the trainer keeps one index image per picture instead of a mask per object: objects
sorted by mask area, largest first, object i drawn as value i+1 with a running maximum (a smaller object
covers a larger one). Its sort key is the negated area in unsigned 64-bit arithmetic, so an object whose mask
is empty sorts *first* (its negated area 0 is the smallest key); that is reproduced.

Before any of this the trainer resamples each label polygon (normalised coordinates) to 1000 points (or one
more than the image's longest polygon) and maps it to the letterboxed image; the extra vertices on every edge
change which pixels the truncated outline covers, so :func:`trainer_polygons` does the same first.
"""

from __future__ import annotations

import math

import numpy as np

FIX = 16  # fixed-point fraction bits of the scanline edges
ONE = 1 << FIX
RESIZE_BITS = 11  # fixed-point bits of the bilinear weights


# ------------------------------------------------------------------------------------------------ filling
def _trunc_vertices(polygon: np.ndarray) -> np.ndarray:
    """(k, 2) float x, y -> (k, 2) int64, truncated toward zero like a float -> int32 cast."""
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    return np.trunc(p).astype(np.int64)


def _clip_segment(p0: tuple[int, int], p1: tuple[int, int], w: int, h: int):
    """Clip the segment p0-p1 (integer end points) to the image [0, w-1] x [0, h-1] (Cohen-Sutherland style,
    cuts in double precision truncated to integers). Returns (q0, q1, inside)."""
    x1, y1 = p0
    x2, y2 = p1
    right, bottom = w - 1, h - 1

    def code(x, y, with_y=True):
        c = int(x < 0) + int(x > right) * 2
        return c + (int(y < 0) * 4 + int(y > bottom) * 8 if with_y else 0)

    c1, c2 = code(x1, y1), code(x2, y2)
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += int((a - y1) * (x2 - x1) / (y2 - y1))
            y1 = a
            c1 = code(x1, y1, False)
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += int((a - y2) * (x2 - x1) / (y2 - y1))
            y2 = a
            c2 = code(x2, y2, False)
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += int((a - x1) * (y2 - y1) / (x2 - x1))
                x1 = a
                c1 = 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += int((a - x2) * (y2 - y1) / (x2 - x1))
                x2 = a
                c2 = 0
    return (x1, y1), (x2, y2), (c1 | c2) == 0


def _outside(p: tuple[int, int], w: int, h: int) -> bool:
    return not (0 <= p[0] < w and 0 <= p[1] < h)


def _line_pixels(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected digital lines between integer end points (n, 2) -> pixel (ys, xs), all lines concatenated.

    Each line is walked from its left end (the first point when both share x) along its major axis.
    """
    if not len(starts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    swap = ends[:, 0] < starts[:, 0]
    a = np.where(swap[:, None], ends, starts)  # (n, 2) left end
    b = np.where(swap[:, None], starts, ends)
    dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]  # dx >= 0
    sy = np.where(dy < 0, -1, 1)
    ady = np.abs(dy)
    steep = ady > dx
    dmaj, dmin = np.where(steep, ady, dx), np.where(steep, dx, ady)
    counts = dmaj + 1
    line = np.repeat(np.arange(len(a)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # step along the major axis
    dmaj_l, dmin_l = dmaj[line], dmin[line]
    num = 2 * k * dmin_l - dmaj_l
    den = 2 * np.maximum(dmaj_l, 1)
    m = np.where(dmaj_l > 0, -((-num) // den), 0)  # ceil(num / den); minor offset
    st = steep[line]
    xs = a[line, 0] + np.where(st, m, k)
    ys = a[line, 1] + sy[line] * np.where(st, k, m)
    return ys, xs


def fill_polygon(shape: tuple[int, int], polygon: np.ndarray, value: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """Fill one polygon the way ``cv2.fillPoly(img, [int32 vertices], value)`` does.

    Args:
        shape: (h, w) of the image.
        polygon: (k, 2) vertices x, y in pixels (floats are truncated toward zero).
        value: the fill value; out: an image (h, w) to draw into (a new uint8 zero image when None).
    Returns: (h, w) the image.
    """
    h, w = shape
    img = np.zeros((h, w), np.uint8) if out is None else out
    v = _trunc_vertices(polygon)
    n = len(v)
    if n == 0:
        return img
    p0s = np.roll(v, 1, axis=0)  # previous vertex of each edge (edge i runs v[i-1] -> v[i])
    p1s = v
    # per edge: clipped end points for the outline and the start/slope of the scanline edge
    inside = (p0s[:, 0] >= 0) & (p0s[:, 0] < w) & (p0s[:, 1] >= 0) & (p0s[:, 1] < h) & (p1s[:, 0] >= 0) & (
        p1s[:, 0] < w) & (p1s[:, 1] >= 0) & (p1s[:, 1] < h)
    c0, c1 = p0s.copy(), p1s.copy()  # clipped end points (the outline's and the fixed-point edge's)
    draw = np.ones(n, bool)
    for i in np.nonzero(~inside)[0]:
        q0, q1, ok = _clip_segment((int(p0s[i, 0]), int(p0s[i, 1])), (int(p1s[i, 0]), int(p1s[i, 1])), w, h)
        draw[i] = ok
        c0[i], c1[i] = q0, q1
    # outline: the line drawer clips by itself and draws nothing when the segment misses the image
    ys, xs = _line_pixels(c0[draw], c1[draw])
    ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    img[ys[ok], xs[ok]] = value

    # scanline edges (horizontal ones skipped)
    y0o, y1o = p0s[:, 1], p1s[:, 1]
    e = y0o != y1o
    if e.sum() < 2:
        return img
    # the edge's fixed-point reference points: clipped x always; clipped y only when the clipped segment is not
    # horizontal (otherwise the original y)
    use_cy = (~inside) & (c0[:, 1] != c1[:, 1])
    ry0 = np.where(use_cy, c0[:, 1], y0o)
    ry1 = np.where(use_cy, c1[:, 1], y1o)
    rx0, rx1 = c0[:, 0] << FIX, c1[:, 0] << FIX
    e_idx = np.nonzero(e)[0]
    num = rx1[e_idx] - rx0[e_idx]
    den = ry1[e_idx] - ry0[e_idx]
    dxs = np.sign(num) * np.sign(den) * (np.abs(num) // np.abs(den))  # C division: truncation toward zero
    down = y0o[e_idx] < y1o[e_idx]
    top = np.where(down, y0o[e_idx], y1o[e_idx])
    bot = np.where(down, y1o[e_idx], y0o[e_idx])
    x_top = np.where(down, rx0[e_idx] + (y0o[e_idx] - ry0[e_idx]) * dxs, rx1[e_idx] + (y1o[e_idx] - ry1[e_idx]) * dxs)
    # rows y0 <= y < y1 of every edge, the visible ones only
    lo = np.maximum(top, 0)
    hi = np.minimum(bot, h)
    cnt = np.maximum(hi - lo, 0)
    if not cnt.sum():
        return img
    edge = np.repeat(np.arange(len(e_idx)), cnt)
    yy = np.repeat(lo, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    xx = x_top[edge] + (yy - top[edge]) * dxs[edge]
    order = np.lexsort((xx, yy))
    yy, xx = yy[order], xx[order]
    # every visible row holds an even number of crossings (each row of a closed polygon does)
    left, right, row = xx[0::2], xx[1::2], yy[0::2]
    x1 = (left + (ONE - 1)) >> FIX
    x2 = right >> FIX
    vis = (x1 < w) & (x2 >= 0)
    x1, x2, row = np.clip(x1[vis], 0, None), np.clip(x2[vis], None, w - 1), row[vis]
    span = x1 <= x2
    x1, x2, row = x1[span], x2[span], row[span]
    if len(row):
        diff = np.zeros((h, w + 1), np.int32)
        np.add.at(diff, (row, x1), 1)
        np.add.at(diff, (row, x2 + 1), -1)
        img[np.cumsum(diff[:, :w], axis=1) > 0] = value
    return img


# ------------------------------------------------------------------------------------------------ shrinking
def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps of one axis: (i0 (dst,), i1 (dst,), weights (dst, 2) int) in RESIZE_BITS fixed point."""
    scale = 1.0 / (dst / src)  # OpenCV keeps the inverse scale and inverts it
    f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)  # computed in double, stored as float
    i0 = np.floor(f).astype(np.int64)
    f = f - i0.astype(np.float32)
    low = i0 < 0
    f[low], i0[low] = 0, 0
    high = i0 >= src - 1
    f[high], i0[high] = 0, src - 1
    i1 = np.minimum(i0 + 1, src - 1)
    one = 1 << RESIZE_BITS
    w1 = np.round(f.astype(np.float64) * one).astype(np.int64)  # saturate_cast rounds to nearest
    w0 = np.round((1 - f).astype(np.float64) * one).astype(np.int64)
    return i0, i1, np.stack((w0, w1), 1)


def shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 -> (nh, nw) uint8 as ``cv2.resize(mask, (nw, nh))`` (default bilinear) computes it."""
    h, w = mask.shape
    nh, nw = size
    if (nh, nw) == (h, w):
        return mask.copy()
    m = mask.astype(np.int64)
    if h == 2 * nh and w == 2 * nw:  # OpenCV switches an exact 2x bilinear shrink to the box mean
        s = m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2]
        return ((s + 2) >> 2).astype(np.uint8)
    yi0, yi1, wy = _linear_taps(h, nh)
    xi0, xi1, wx = _linear_taps(w, nw)
    rows = m[:, xi0] * wx[:, 0] + m[:, xi1] * wx[:, 1]  # (h, nw) horizontal pass
    # vertical pass as OpenCV's vector kernel computes it: each term pre-shifted by 4 and kept to its high 16 bits
    t0 = ((rows[yi0] >> 4) * wy[:, :1]) >> 16
    t1 = ((rows[yi1] >> 4) * wy[:, 1:]) >> 16
    return np.clip((t0 + t1 + 2) >> 2, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ trainer polygons
RESAMPLE_POINTS = 1000  # the trainer resamples every polygon of an image to this many points ...


def resample_count(lengths) -> int:
    """... or to one more than its longest polygon when that has more than RESAMPLE_POINTS vertices."""
    longest = max(lengths, default=0)
    return longest + 1 if longest > RESAMPLE_POINTS else RESAMPLE_POINTS


def resample_polygon(poly: np.ndarray, n: int) -> np.ndarray:
    """(k, 2) polygon -> (n, 2) float32 as the trainer resamples it (a polygon of exactly n points is kept as is).

    The polygon is closed (first vertex repeated) and walked by vertex index t in [0, k]: for k + 1 < n the
    n - k - 1 evenly spaced t in [0, k] plus every integer t (each original vertex, placed before an equal
    sample), otherwise n evenly spaced t; x and y are interpolated linearly in t (float64), stored as float32.
    """
    p = np.asarray(poly, dtype=np.float32).reshape(-1, 2)
    if len(p) == n:
        return p
    closed = np.concatenate((p, p[:1]), 0)
    m = len(closed)
    vertex_t = np.arange(m)
    if m < n:
        t = np.linspace(0, m - 1, n - m)
        t = np.insert(t, np.searchsorted(t, vertex_t), vertex_t)
    else:
        t = np.linspace(0, m - 1, n)
    xs = np.interp(t, vertex_t, closed[:, 0])
    ys = np.interp(t, vertex_t, closed[:, 1])
    return np.stack((xs, ys), 1).astype(np.float32)


def trainer_polygons(segments, size_wh: tuple[int, int], ratio: tuple[float, float] = (1.0, 1.0),
                     pad: tuple[float, float] = (0, 0)) -> np.ndarray:
    """An image's normalised polygons -> (n_obj, n, 2) float32 pixel polygons as the trainer's masks see them.

    segments: the image's polygons (k_i, 2) normalised to the loaded image; size_wh: that image's (w, h) after
    the loader's resize; ratio / pad: the letterbox's scale (w, h) and left / top padding. Each polygon is
    resampled (:func:`resample_polygon`, count from :func:`resample_count`), then, in float32 and in this order,
    multiplied by (w, h), by the ratio, and shifted by the padding (the trainer's label updates, no augmentation).
    """
    segs = [np.asarray(s, np.float32).reshape(-1, 2) for s in segments]
    n = resample_count(len(s) for s in segs)
    out = np.stack([resample_polygon(s, n) for s in segs]) if segs else np.zeros((0, n, 2), np.float32)
    f32 = np.float32  # the trainer's factors are Python numbers: float32 arithmetic on the float32 polygons
    for axis, (size, r, p) in enumerate(zip(size_wh, ratio, pad)):
        out[..., axis] *= f32(size)
        out[..., axis] *= f32(r)
        out[..., axis] += f32(p)
    return out


# ------------------------------------------------------------------------------------------------ GT masks
def polygon_mask(imgsz: tuple[int, int], polygon: np.ndarray, ratio: int = 4) -> np.ndarray:
    """One polygon (k, 2) px at image size (h, w) -> (h // ratio, w // ratio) uint8 0/1 mask.

    When ``ratio`` divides both sides, only the polygon's window is filled and shrunk: the smallest run of whole
    ratio x ratio blocks around its (integer) vertices, extended to the image edge on any side a vertex lies
    beyond. Every rule above is unchanged by an integer shift, clipping happens at the same edges, and each
    output pixel reads only its own block, so the result is the same as filling the whole image (tested).
    """
    h, w = imgsz
    nh, nw = h // ratio, w // ratio
    if h % ratio or w % ratio:
        return shrink_mask(fill_polygon((h, w), polygon), (nh, nw))
    v = _trunc_vertices(polygon)
    out = np.zeros((nh, nw), np.uint8)
    if not len(v):
        return out
    lo, hi = v.min(0), v.max(0)  # (x, y) each
    x0 = 0 if lo[0] < 0 else min(int(lo[0]) // ratio * ratio, w)
    y0 = 0 if lo[1] < 0 else min(int(lo[1]) // ratio * ratio, h)
    x1 = w if hi[0] >= w else min((int(hi[0]) // ratio + 1) * ratio, w)
    y1 = h if hi[1] >= h else min((int(hi[1]) // ratio + 1) * ratio, h)
    if x1 <= x0 or y1 <= y0:
        return out
    sub = fill_polygon((y1 - y0, x1 - x0), v - np.array([x0, y0]))  # integer vertices: no further truncation
    out[y0 // ratio : y1 // ratio, x0 // ratio : x1 // ratio] = shrink_mask(sub, ((y1 - y0) // ratio, (x1 - x0) // ratio))
    return out


def polygon_masks(imgsz: tuple[int, int], polygons, ratio: int = 4) -> np.ndarray:
    """Polygons (n of (k_i, 2) px) -> (n, h // ratio, w // ratio) uint8 0/1 masks (``overlap_mask=False``)."""
    h, w = imgsz
    out = np.zeros((len(polygons), h // ratio, w // ratio), np.uint8)
    for i, p in enumerate(polygons):
        out[i] = polygon_mask(imgsz, p, ratio)
    return out


def overlap_order(areas: np.ndarray) -> np.ndarray:
    """Objects' draw order for the index image: by area, largest first; empty masks first (see module doc)."""
    key = -np.asarray(areas, dtype=np.uint64)  # unsigned negation: 0 stays 0, the smallest key
    return np.argsort(key)


def polygon_masks_overlap(imgsz: tuple[int, int], polygons, ratio: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Polygons -> (index image (h // ratio, w // ratio), order (n,)) as with ``overlap_mask=True``.

    ``order[i]`` is the input polygon drawn as value i + 1 (the trainer reorders its labels the same way).
    The image is uint8, int32 beyond 255 objects; 0 is background.
    """
    h, w = imgsz
    masks = polygon_masks(imgsz, polygons, ratio)
    order = overlap_order(masks.reshape(len(polygons), -1).sum(1, dtype=np.uint64))
    dtype = np.int32 if len(polygons) > 255 else np.uint8
    index = np.zeros((h // ratio, w // ratio), dtype)
    for i, j in enumerate(order):
        np.maximum(index, masks[j].astype(dtype) * dtype(i + 1), out=index)
    return index, order


def index_to_masks(index: np.ndarray, n: int) -> np.ndarray:
    """Index image (H, W) -> (n, H, W) bool: mask of object i is the pixels holding i + 1."""
    return index[None] == np.arange(1, n + 1, dtype=np.int64)[:, None, None]


def batch_gt_masks(polygons: list, imgsz: tuple[int, int], ratio: int = 4,
                   overlap: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """GT masks of a batch as the loss and the seg assigner read them.

    polygons: per image, its objects' pixel polygons (each (k, 2), e.g. from :func:`trainer_polygons`).
    Returns (masks (b, M, h // ratio, w // ratio) bool, orders): M the most objects in an image; ``orders[i]``
    (n_i,) int64 the object behind each slot of image i. With ``overlap`` the trainer reorders an image's objects
    by mask area (largest first, see :func:`polygon_masks_overlap`) and mask i is the index image's value i + 1
    (an object loses the pixels a smaller one covers); the caller must put its labels (classes, boxes) in the
    same order. Without ``overlap`` the order is the label order and masks may overlap.
    """
    h, w = imgsz
    m = max((len(p) for p in polygons), default=0)
    out = np.zeros((len(polygons), m, h // ratio, w // ratio), bool)
    orders = []
    for i, polys in enumerate(polygons):
        n = len(polys)
        if overlap and n:
            index, order = polygon_masks_overlap(imgsz, polys, ratio)
            out[i, :n] = index_to_masks(index, n)
        else:
            order = np.arange(n, dtype=np.int64)
            if n:
                out[i, :n] = polygon_masks(imgsz, polys, ratio).astype(bool)
        orders.append(order.astype(np.int64))
    return out, orders
