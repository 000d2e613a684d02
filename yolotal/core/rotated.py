"""Rotated-box geometry: one small function per idea, shapes documented.

Format ``xywhr``: (cx, cy, w, h, angle) with the angle in radians, turning from the x axis towards the y
axis (clockwise on screen: image y points down), the box's ``w`` side along (cos a, sin a). Units are
whatever the caller uses (pixels or grid cells). Quadrilaterals are Tensor[N, 4, 2] corner lists (x, y), in any order.

Training labels (``quads_to_xywhr``) follow ultralytics 8.4's conversion of label corners: OpenCV's
minimum-area rectangle (reproduced here without OpenCV, bit for bit, ties included: ``opencv_min_area_rect``),
then ``w`` the longer side and the angle moved by pi into [-pi/4, 3pi/4). A square keeps the side OpenCV reports
as its width (an axis-aligned square gets angle pi/2).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError

PROBIOU_EPS = 1e-7  # the eps of the reference's ProbIoU (in the Bhattacharyya terms and the Hellinger root)
PROBIOU_FLOOR_LOSS = 0.01  # added to w^2/12 and h^2/12 in the box loss's ProbIoU (not in the assigner's)
COLLINEAR_RTOL = 1e-9  # |cross| below this times the squared extent: three corners on one line


# ----------------------------------------------------------------------------------------------- conversions
def xywhr_to_corners(rboxes: torch.Tensor) -> torch.Tensor:
    """Tensor[..., 5] xywhr -> Tensor[..., 4, 2] corners.

    Corner order: centre + u + v, centre + u - v, centre - u - v, centre - u + v, with u = (w/2)(cos a, sin a)
    and v = (h/2)(-sin a, cos a) — the reference's order, which the in-box test relies on.
    """
    c = rboxes[..., :2]
    w, h, a = rboxes[..., 2:3], rboxes[..., 3:4], rboxes[..., 4:5]
    cos, sin = torch.cos(a), torch.sin(a)
    u = torch.cat((w / 2 * cos, w / 2 * sin), -1)  # [..., 2]
    v = torch.cat((-h / 2 * sin, h / 2 * cos), -1)  # [..., 2]
    return torch.stack((c + u + v, c + u - v, c - u - v, c - u + v), -2)


def regularize_xywhr(rboxes: torch.Tensor) -> torch.Tensor:
    """Tensor[..., 5] -> Tensor[..., 5] with the angle in [0, pi/2): where ``angle mod pi`` >= pi/2 the sides swap."""
    x, y, w, h, a = rboxes.unbind(-1)
    swap = torch.remainder(a, math.pi) >= math.pi / 2
    return torch.stack((x, y, torch.where(swap, h, w), torch.where(swap, w, h), torch.remainder(a, math.pi / 2)), -1)


def _as_f32_array(quads) -> np.ndarray:
    """(N, 4, 2) or (N, 8) corners (tensor or array) -> float32 (N, 4, 2), as the reference rounds them."""
    arr = quads.detach().cpu().numpy() if isinstance(quads, torch.Tensor) else np.asarray(quads)
    arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr.reshape(arr.shape[0], -1, 2)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(f"corners must be (N, 4, 2) or (N, 8), got {tuple(arr.shape)}")
    return arr


# --- the minimum-area rectangle, step by step as OpenCV computes it -------------------------------------------
# The rectangle of least area around a convex polygon has a side on one of its edges; but where two edges give
# rectangles of equal area (common: whenever three corners fix the rectangle, two of its edges give the same
# area), which one comes out depends on the order the edges are visited and on float32 rounding. So this follows
# OpenCV's minAreaRect (BSD/Apache-licensed; convexHull + rotating calipers, opencv-python 5.0) operation by
# operation in float32: the hull's vertex order, the caliper rotation, the area comparison (a later edge of equal
# area wins) and the final angle convention. Measured bit-identical to cv2.minAreaRect on 20,320 quadrilaterals
# (rectangles, squares, perturbed, integer and random corners; benchmarks in tests/test_obb.py).

def _hull_shift_table() -> dict[tuple[int, ...], tuple[int, ...]]:
    """OpenCV's convexHull ends by rotating the hull's index sequence so that it ascends or descends when a
    rotation can make it do so; the rule only looks at the indices, so it is tabulated for every sequence of
    3 or 4 of the indices 0-3."""
    from itertools import permutations

    table = {}
    for n in (3, 4):
        for hull in permutations(range(4), n):
            h = list(hull)
            lo = hi = lt = 0
            for i in range(1, n):
                lt += h[i - 1] < h[i]
                if 1 < lt <= i - 2:
                    break
                lo = i if h[i] < h[lo] else lo
                hi = i if h[i] > h[hi] else hi
            if abs(hi - lo) in (1, n - 1) and (lt <= 1 or lt >= n - 2):
                ascending = (hi + 1) % n == lo
                i0 = lo if ascending else hi
                if i0 > 0:
                    seq = [h[(i0 + i) % n] for i in range(n)]
                    if all((seq[i] < seq[i + 1]) == ascending for i in range(n - 1)):
                        h = seq
            table[hull] = tuple(h)
    return table


_HULL_SHIFT = _hull_shift_table()


def _hull_orders(p: np.ndarray) -> list[tuple[int, ...]]:
    """(N, 4, 2) float32 corners, no three collinear -> per quad the hull's corner indices in OpenCV's order:
    counter-clockwise in (x, y) numbers, from the largest (x, then y, then index) corner, then the index shift."""
    q = p.astype(np.float64)
    n = len(q)
    # a corner strictly inside the triangle of the other three is not on the hull
    inside = np.zeros((n, 4), bool)
    for i in range(4):
        a, b, c = (q[:, j] for j in range(4) if j != i)
        x = q[:, i]
        s1 = (b[:, 0] - a[:, 0]) * (x[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x[:, 0] - a[:, 0])
        s2 = (c[:, 0] - b[:, 0]) * (x[:, 1] - b[:, 1]) - (c[:, 1] - b[:, 1]) * (x[:, 0] - b[:, 0])
        s3 = (a[:, 0] - c[:, 0]) * (x[:, 1] - c[:, 1]) - (a[:, 1] - c[:, 1]) * (x[:, 0] - c[:, 0])
        inside[:, i] = ((s1 > 0) & (s2 > 0) & (s3 > 0)) | ((s1 < 0) & (s2 < 0) & (s3 < 0))
    keep = ~inside
    cen = (q * keep[..., None]).sum(1) / keep.sum(1, keepdims=True)  # (N, 2) centroid of the hull corners
    ang = np.arctan2(q[..., 1] - cen[:, None, 1], q[..., 0] - cen[:, None, 0])  # (N, 4)
    ang = np.where(keep, ang, np.inf)
    ccw = np.argsort(ang, 1, kind="stable")  # hull corners first, counter-clockwise
    # start: the lexicographically largest corner (x, then y, then index)
    lex = np.lexsort((np.broadcast_to(np.arange(4), (n, 4)), p[..., 1], p[..., 0]), axis=-1)[:, -1]
    out = []
    for row, k, s in zip(ccw.tolist(), keep.sum(1).tolist(), lex.tolist()):
        h = row[:k]
        j = h.index(s)
        out.append(_HULL_SHIFT[tuple(h[j:] + h[:j])])
    return out


def _calipers(h: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rotating calipers over hulls (G, n, 2) float32 of equal size n -> (cx, cy, w, h) float32 and the side
    vector (ox, oy) float32 of OpenCV's ``width``, all (G,)."""
    f32 = np.float32
    g, n, _ = h.shape
    r = np.arange(g)
    X, Y = h[..., 0], h[..., 1]
    nxt = np.roll(np.arange(n), -1)
    vx, vy = X[:, nxt] - X, Y[:, nxt] - Y  # float32 differences
    dx64, dy64 = vx.astype(np.float64), vy.astype(np.float64)
    inv = (1.0 / np.sqrt(dx64 * dx64 + dy64 * dy64)).astype(f32)
    left, right = X.argmin(1), X.argmax(1)  # first occurrences, as the strict comparisons give
    top, bottom = Y.argmax(1), Y.argmin(1)
    prev = np.roll(np.arange(n), 1)
    conv = dx64[:, prev] * dy64 - dy64[:, prev] * dx64  # (G, n), in visiting order
    first = (conv != 0).argmax(1)
    base_a = np.where(conv[r, first] > 0, f32(1), f32(-1)).astype(f32)
    base_b = np.zeros(g, f32)
    seq = np.stack((bottom, right, top, left), 1)  # (G, 4)
    minarea = np.full(g, np.finfo(f32).max, f32)
    keep_s3, keep_s0 = np.zeros(g, np.int64), np.zeros(g, np.int64)
    keep_a, keep_b, keep_w, keep_h = (np.zeros(g, f32) for _ in range(4))
    for _ in range(n):
        v = [(vx[r, seq[:, e]], vy[r, seq[:, e]]) for e in range(4)]
        rot = [v[0], (v[1][1], -v[1][0]), (-v[2][0], -v[2][1]), (-v[3][1], v[3][0])]
        main = np.zeros(g, np.int64)
        for e in (1, 2, 3):
            mx = np.choose(main, [rv[0] for rv in rot])
            my = np.choose(main, [rv[1] for rv in rot])
            tx, ty = rot[e][1], -rot[e][0]  # rot[e] turned 90 degrees clockwise
            main = np.where(tx * mx + ty * my < 0, e, main)
        pi = seq[r, main]
        lx, ly = vx[r, pi] * inv[r, pi], vy[r, pi] * inv[r, pi]
        base_a = np.choose(main, [lx, ly, -lx, -ly]).astype(f32)
        base_b = np.choose(main, [ly, -lx, -ly, lx]).astype(f32)
        seq[r, main] = (seq[r, main] + 1) % n
        s0, s1, s2, s3 = seq.T
        width = (X[r, s1] - X[r, s3]) * base_a + (Y[r, s1] - Y[r, s3]) * base_b
        height = -(X[r, s2] - X[r, s0]) * base_b + (Y[r, s2] - Y[r, s0]) * base_a
        area = width * height
        upd = area <= minarea
        minarea = np.where(upd, area, minarea)
        keep_s3, keep_s0 = np.where(upd, s3, keep_s3), np.where(upd, s0, keep_s0)
        keep_a, keep_b = np.where(upd, base_a, keep_a), np.where(upd, base_b, keep_b)
        keep_w, keep_h = np.where(upd, width, keep_w), np.where(upd, height, keep_h)
    a1, b1 = keep_a, keep_b
    a2, b2 = -b1, a1
    c1 = a1 * X[r, keep_s3] + Y[r, keep_s3] * b1
    c2 = a2 * X[r, keep_s0] + Y[r, keep_s0] * b2
    idet = f32(1) / (a1 * b2 - a2 * b1)
    px = (c1 * b2 - c2 * b1) * idet
    py = (a1 * c2 - a2 * c1) * idet
    o1x, o1y = a1 * keep_w, b1 * keep_w
    o2x, o2y = a2 * keep_h, b2 * keep_h
    cx = px + (o1x + o2x) * f32(0.5)
    cy = py + (o1y + o2y) * f32(0.5)
    w = np.sqrt(o1x.astype(np.float64) ** 2 + o1y.astype(np.float64) ** 2).astype(f32)
    hh = np.sqrt(o2x.astype(np.float64) ** 2 + o2y.astype(np.float64) ** 2).astype(f32)
    return cx, cy, w, hh, o1x, o1y


def opencv_min_area_rect(quads) -> np.ndarray:
    """Corners (N, 4, 2) or (N, 8), no repeated corner and no three on a line -> float32 (N, 5) cx, cy, w, h,
    angle in degrees in [-90, 0): what ``cv2.minAreaRect`` (opencv-python 5.0) returns for each, bit for bit."""
    p = _as_f32_array(quads)
    n = len(p)
    out = np.zeros((n, 5), np.float32)
    if not n:
        return out
    orders = _hull_orders(p)
    sizes = np.array([len(o) for o in orders])
    for k in (3, 4):
        idx = np.nonzero(sizes == k)[0]
        if not len(idx):
            continue
        hull = p[idx[:, None], np.array([orders[i] for i in idx])]  # (G, k, 2)
        cx, cy, w, h, ox, oy = _calipers(hull)
        deg = np.array([math.atan2(float(y), float(x)) * 180 / math.pi for x, y in zip(ox, oy)])
        # OpenCV 5 reports the angle in [-90, 0): 90 becomes -90; [0, 90) swaps the sides and subtracts 90
        swap = (deg >= 0) & (deg != 90.0)
        deg = np.where(deg == 90.0, deg - 180, np.where(swap, deg - 90, deg))
        out[idx] = np.stack((cx, cy, np.where(swap, h, w), np.where(swap, w, h), deg.astype(np.float32)), -1)
    return out


def quads_to_xywhr(quads, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Corners (N, 4, 2) or (N, 8), any order -> Tensor[N, 5] xywhr, as ultralytics makes its training targets.

    The minimum-area rectangle (:func:`opencv_min_area_rect`), then ``w`` the longer side (on equal float32
    sides OpenCV's choice stays) and the angle in radians moved by pi into [-pi/4, 3pi/4); a swap of the sides
    adds pi/2. Units are the corners' (pixels in training). Validate the corners first (:func:`validate_quads`).
    """
    r = opencv_min_area_rect(quads).astype(np.float64)
    cx, cy, w, h, deg = r.T
    theta = deg / 180 * math.pi
    swap = w < h
    w, h = np.where(swap, h, w), np.where(swap, w, h)
    theta = np.where(swap, theta + math.pi / 2, theta)
    while (theta >= 3 * math.pi / 4).any():
        theta = np.where(theta >= 3 * math.pi / 4, theta - math.pi, theta)
    while (theta < -math.pi / 4).any():
        theta = np.where(theta < -math.pi / 4, theta + math.pi, theta)
    return torch.from_numpy(np.stack((cx, cy, w, h, theta), -1).reshape(-1, 5)).to(dtype)


def validate_quads(quads, origin: str, lines=None) -> None:
    """Refuse quadrilaterals with a repeated corner or three corners on one line (no rectangle to fit).

    quads (N, 4, 2) or (N, 8); origin: the file they come from; lines: the 1-based line of each row (default
    1..N). Raises :class:`yolotal.errors.InputError` naming ``origin`` and the line of the first bad row.
    """
    p = _as_f32_array(quads).astype(np.float64)  # (N, 4, 2)
    if p.shape[1] != 4:
        raise InputError(f"expected 4 corners per row, got {p.shape[1]}", origin)
    if not np.isfinite(p).all():
        bad = int(np.nonzero(~np.isfinite(p).all((1, 2)))[0][0])
        raise InputError("OBB corners are not finite numbers", origin, _line(lines, bad))
    extent = (p.max(1) - p.min(1)).max(-1)  # (N,)
    for a, b in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
        same = (p[:, a] == p[:, b]).all(-1)
        if same.any():
            bad = int(np.nonzero(same)[0][0])
            raise InputError(f"OBB corners {a + 1} and {b + 1} are the same point {tuple(p[bad, a].tolist())}",
                             origin, _line(lines, bad))
    for a, b, c in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)):
        e1, e2 = p[:, b] - p[:, a], p[:, c] - p[:, a]
        cross = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
        flat = cross <= COLLINEAR_RTOL * extent**2
        if flat.any():
            bad = int(np.nonzero(flat)[0][0])
            raise InputError(f"OBB corners {a + 1}, {b + 1} and {c + 1} lie on one line", origin, _line(lines, bad))


def _line(lines, row: int) -> int:
    return int(lines[row]) if lines is not None else row + 1


# ------------------------------------------------------------------------------------------------ distances
def ltrb_to_rbox(dist: torch.Tensor, angle: torch.Tensor, anchor_points: torch.Tensor) -> torch.Tensor:
    """Rotated decode: distances Tensor[..., A, 4] (l, t, r, b along the box's own axes), angle Tensor[..., A, 1]
    and anchors Tensor[A, 2] -> Tensor[..., A, 4] cx, cy, w, h (same units; the angle is not appended)."""
    lt, rb = dist[..., :2], dist[..., 2:]
    cos, sin = torch.cos(angle), torch.sin(angle)
    half = (rb - lt) / 2  # [..., A, 2] centre offset in the box frame
    ox, oy = half[..., :1], half[..., 1:]
    xy = torch.cat((ox * cos - oy * sin, ox * sin + oy * cos), -1) + anchor_points
    return torch.cat((xy, lt + rb), -1)


def rbox_to_ltrb(rboxes: torch.Tensor, anchor_points: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """Rotated encode: boxes Tensor[..., A, 5] xywhr and anchors Tensor[A, 2] -> Tensor[..., A, 4] l, t, r, b.

    The anchor's offset from the centre is rotated into the box frame. ``limit`` clamps to [0, limit - 0.01]
    (the DFL targets: limit = reg_max - 1).
    """
    off = rboxes[..., :2] - anchor_points
    ox, oy = off[..., :1], off[..., 1:]
    a = rboxes[..., 4:5]
    cos, sin = torch.cos(a), torch.sin(a)
    fx = ox * cos + oy * sin
    fy = -ox * sin + oy * cos
    w, h = rboxes[..., 2:3], rboxes[..., 3:4]
    d = torch.cat((w / 2 - fx, h / 2 - fy, w / 2 + fx, h / 2 + fy), -1)
    return d if limit is None else d.clamp(0, limit - 0.01)


# ------------------------------------------------------------------------------------------------- in-box
def points_in_rboxes(points: torch.Tensor, rboxes: torch.Tensor) -> torch.Tensor:
    """Points Tensor[A, 2] inside rotated boxes Tensor[..., M, 5] -> Tensor[..., M, A] bool (edges included).

    With corners a (c+u+v), b (c+u-v), d (c-u+v): p is inside when its projection on ab lies in [0, |ab|^2]
    and its projection on ad in [0, |ad|^2] (computed as the reference does, so that points on an edge decide
    the same way).
    """
    corners = xywhr_to_corners(rboxes)  # [..., M, 4, 2]
    a, b, d = corners[..., 0, :], corners[..., 1, :], corners[..., 3, :]  # [..., M, 2]
    ab, ad = b - a, d - a
    px = points[:, 0] - a[..., 0:1]  # [..., M, A]
    py = points[:, 1] - a[..., 1:2]
    n_ab = (ab * ab).sum(-1, keepdim=True)  # [..., M, 1]
    n_ad = (ad * ad).sum(-1, keepdim=True)
    p_ab = px * ab[..., 0:1] + py * ab[..., 1:2]
    p_ad = px * ad[..., 0:1] + py * ad[..., 1:2]
    return (p_ab >= 0) & (p_ab <= n_ab) & (p_ad >= 0) & (p_ad <= n_ad)


# ------------------------------------------------------------------------------------------------- ProbIoU
def gaussian_cov(rboxes: torch.Tensor, floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensor[..., 5] -> covariance (a, b, c), each Tensor[...]: [[a, c], [c, b]] of the box's uniform density
    (variances w^2/12 and h^2/12, plus ``floor``, rotated by the angle)."""
    vw = rboxes[..., 2].pow(2) / 12 + floor
    vh = rboxes[..., 3].pow(2) / 12 + floor
    ang = rboxes[..., 4]
    cos, sin = ang.cos(), ang.sin()
    c2, s2 = cos.pow(2), sin.pow(2)
    return vw * c2 + vh * s2, vw * s2 + vh * c2, (vw - vh) * cos * sin


def _probiou(x1, y1, cov1, x2, y2, cov2, eps: float) -> torch.Tensor:
    """ProbIoU (Llerena et al. 2021) of two Gaussians given by centres and (a, b, c); broadcasts."""
    a1, b1, c1 = cov1
    a2, b2, c2 = cov2
    sa, sb, sc = a1 + a2, b1 + b2, c1 + c2
    det = sa * sb - sc.pow(2)
    dy, dx = y1 - y2, x1 - x2
    t1 = (sa * dy.pow(2) + sb * dx.pow(2)) / (det + eps) * 0.25
    t2 = (sc * (x2 - x1) * dy) / (det + eps) * 0.5
    d1 = (a1 * b1 - c1.pow(2)).clamp(min=0)
    d2 = (a2 * b2 - c2.pow(2)).clamp(min=0)
    t3 = (det / (4 * (d1 * d2).sqrt() + eps) + eps).log() * 0.5
    bd = (t1 + t2 + t3).clamp(eps, 100.0)  # Bhattacharyya distance
    return 1 - (1.0 - (-bd).exp() + eps).sqrt()  # 1 - Hellinger distance


def probiou_pairs(r1: torch.Tensor, r2: torch.Tensor, eps: float = PROBIOU_EPS, floor: float = 0.0) -> torch.Tensor:
    """Element-wise ProbIoU of Tensor[..., 5] xywhr pairs -> Tensor[...] (in (0, 1], 1 for identical boxes)."""
    return _probiou(r1[..., 0], r1[..., 1], gaussian_cov(r1, floor), r2[..., 0], r2[..., 1], gaussian_cov(r2, floor),
                    eps)


def probiou_matrix(r1: torch.Tensor, r2: torch.Tensor, eps: float = PROBIOU_EPS) -> torch.Tensor:
    """ProbIoU of every pair: Tensor[N, 5] x Tensor[M, 5] -> Tensor[N, M]."""
    c1 = tuple(x[:, None] for x in gaussian_cov(r1))  # [N, 1] each
    c2 = tuple(x[None] for x in gaussian_cov(r2))  # [1, M]
    return _probiou(r1[:, 0:1], r1[:, 1:2], c1, r2[None, :, 0], r2[None, :, 1], c2, eps)


# ------------------------------------------------------------------------------------------- head decoding
ANGLE_ENCODINGS = ("sigmoid", "radians")


def angle_from_head(raw: torch.Tensor, encoding: str) -> torch.Tensor:
    """The angle channel as the head outputs it -> radians.

    ``sigmoid``: the OBB head of YOLOv8/YOLO11 (``(sigmoid(x) - 1/4) * pi``, in (-pi/4, 3pi/4));
    ``radians``: YOLO26's OBB head (the value is the angle itself), and any angle already decoded (e.g. the
    ``angle`` of an 8.4 model's training output dict, which its head has converted).
    """
    if encoding == "sigmoid":
        return (raw.sigmoid() - 0.25) * math.pi
    if encoding == "radians":
        return raw
    raise ValueError(f"angle encoding must be one of {ANGLE_ENCODINGS}, got {encoding!r}")


def decode_rboxes(pred_dist: torch.Tensor, angle: torch.Tensor, anchor_points: torch.Tensor,
                  reg_max: int) -> torch.Tensor:
    """Predicted rotated boxes in grid units, as the OBB loss decodes them.

    pred_dist (b, A, 4*reg_max) DFL logits (or (b, A, 4) distances when reg_max == 1); angle (b, A, 1) radians;
    anchor_points (A, 2) grid units. Returns (b, A, 5) cx, cy, w, h, angle (multiply the first four by the
    anchors' strides for pixels).
    """
    from .decode import dfl_distances

    return torch.cat((ltrb_to_rbox(dfl_distances(pred_dist, reg_max), angle, anchor_points), angle), -1)


def decode_obb_heads(heads, anchor_points: torch.Tensor, stride_tensor: torch.Tensor, reg_max: int,
                     encoding: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heads with ``extra["angle"]`` (b, 1, A) -> (pred_bboxes_grid (b, A, 5), pred_bboxes_px (b, A, 5),
    angle (b, A, 1) radians). anchor_points (A, 2) grid units, stride_tensor (A, 1)."""
    if "angle" not in heads.extra:
        raise InputError("OBB heads need an angle channel (extra['angle'] (b, 1, A))", heads.source)
    angle = angle_from_head(heads.extra["angle"].permute(0, 2, 1), encoding)  # (b, A, 1)
    grid = decode_rboxes(heads.boxes.permute(0, 2, 1), angle, anchor_points, reg_max)
    px = torch.cat((grid[..., :4] * stride_tensor, grid[..., 4:]), -1)
    return grid, px, angle
