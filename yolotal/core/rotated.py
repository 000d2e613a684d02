"""Rotated-box geometry: one small function per idea, shapes documented.

Format ``xywhr``: (cx, cy, w, h, angle) with the angle in radians, counter-clockwise from the x axis in image
coordinates (x right, y down), the box's ``w`` side along (cos a, sin a). Units are whatever the caller uses
(pixels or grid cells). Quadrilaterals are Tensor[N, 4, 2] corner lists (x, y), in any order.

Training labels (``quads_to_xywhr``) follow the convention ultralytics 8.4 gives its OBB targets: the minimum-area
rectangle around the four corners, then ``w`` is the longer side and the angle is the direction of that side,
taken modulo pi into [-pi/4, 3pi/4). A square has no longer side; there the reference keeps OpenCV's choice of
side (the one whose direction modulo pi lies in [pi/2, pi), reported as an angle in [-pi/2, 0)) and maps that
angle into [-pi/4, 3pi/4) — so an axis-aligned square gets angle pi/2. Computed here without OpenCV.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError

PROBIOU_EPS = 1e-7  # the eps of the reference's ProbIoU (in the Bhattacharyya terms and the Hellinger root)
PROBIOU_FLOOR_LOSS = 0.01  # added to w^2/12 and h^2/12 in the box loss's ProbIoU (not in the assigner's)
SQUARE_RTOL = 1e-6  # sides equal to this relative difference count as a square (the reference's tie rule)
AMBIGUOUS_MARGIN = 1e-5  # relative area margin under which two minimum-area rectangles tie at float32 precision
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
    """(N, 4, 2) or (N, 8) corners (tensor or array) -> float32 (N, P, 2), as the reference rounds them."""
    arr = quads.detach().cpu().numpy() if isinstance(quads, torch.Tensor) else np.asarray(quads)
    arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr.reshape(arr.shape[0], -1, 2)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(f"corners must be (N, P, 2) or (N, 2P), got {tuple(arr.shape)}")
    return arr


def min_area_rects(points, with_margin: bool = False):
    """Minimum-area enclosing rectangle of each point set: (N, P, 2) -> float64 (N, 5) cx, cy, side_u, side_v, dir.

    With ``with_margin`` also (N,) the relative area margin of the runner-up rectangle in another orientation:
    below ~1e-5 the two are equal at float32 precision and the reference (OpenCV, float32) may take either.

    ``dir`` is the direction (radians, in (-pi, pi]) of the side measuring ``side_u``. The rectangle of least
    area has a side on a convex-hull edge (Freeman & Shapira 1975); every hull edge is a segment between two of
    the points, so trying the direction of every pair of points finds it without building the hull (a pair
    that is not a hull edge only gives a larger rectangle). Computed in float64 from the float32 corners.
    """
    p = _as_f32_array(points).astype(np.float64)  # (N, P, 2)
    n, k, _ = p.shape
    if n == 0:
        return np.zeros((0, 5))
    i, j = np.triu_indices(k, 1)
    d = p[:, j] - p[:, i]  # (N, K, 2) pair directions
    length = np.hypot(d[..., 0], d[..., 1])  # (N, K)
    ok = length > 0
    u = d / np.where(ok, length, 1.0)[..., None]  # (N, K, 2) unit
    v = np.stack((-u[..., 1], u[..., 0]), -1)
    pu = np.einsum("npc,nkc->nkp", p, u)  # (N, K, P) projections on u
    pv = np.einsum("npc,nkc->nkp", p, v)
    lo_u, hi_u, lo_v, hi_v = pu.min(-1), pu.max(-1), pv.min(-1), pv.max(-1)
    area = np.where(ok, (hi_u - lo_u) * (hi_v - lo_v), np.inf)
    best = area.argmin(1)  # (N,) first pair of the smallest area
    r = np.arange(n)
    ub, vb = u[r, best], v[r, best]  # (N, 2)
    mu = (lo_u[r, best] + hi_u[r, best]) / 2
    mv = (lo_v[r, best] + hi_v[r, best]) / 2
    centre = ub * mu[:, None] + vb * mv[:, None]
    side_u, side_v = hi_u[r, best] - lo_u[r, best], hi_v[r, best] - lo_v[r, best]
    direction = np.arctan2(ub[:, 1], ub[:, 0])
    out = np.stack((centre[:, 0], centre[:, 1], side_u, side_v, direction), -1)
    if not with_margin:
        return out
    # the next-smallest area of a rectangle in another orientation (not parallel to the best one's sides)
    ang = np.arctan2(u[..., 1], u[..., 0])  # (N, K)
    diff = np.abs(_wrap(ang - direction[:, None], -math.pi / 4, math.pi / 2))
    other = np.where(diff > 1e-4, area, np.inf).min(1)
    best_area = area[r, best]
    return out, (other - best_area) / np.maximum(best_area, 1e-300)


def _wrap(a: np.ndarray, lo: float, period: float) -> np.ndarray:
    """Angles into [lo, lo + period)."""
    out = np.mod(a - lo, period) + lo
    return np.where(out >= lo + period, out - period, out)


def min_area_rect_margin(quads) -> np.ndarray:
    """(N, 4, 2) corners -> (N,) relative area margin between the minimum-area rectangle and the best rectangle in
    another orientation (inf when none). Quadrilaterals with a margin under AMBIGUOUS_MARGIN have two rectangles
    of equal area at float32 precision; which one the reference returns depends on its rounding."""
    return min_area_rects(quads, with_margin=True)[1]


def quads_to_xywhr(quads, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Corners (N, 4, 2) or (N, 8), any order -> Tensor[N, 5] xywhr, the training target convention.

    ``w`` is the longer side of the minimum-area rectangle, the angle its direction modulo pi in [-pi/4, 3pi/4);
    squares (sides equal to SQUARE_RTOL) take the side whose direction modulo pi/2 is d in [0, pi/2) and the
    angle d - pi/2 when d >= pi/4, else d + pi/2 (the reference's rule for a square: OpenCV's angle in
    [-pi/2, 0), then mapped into [-pi/4, 3pi/4)). Units are the corners' (pixels in training).
    """
    r = min_area_rects(quads)
    if not len(r):
        return torch.zeros(0, 5, dtype=dtype)
    cx, cy, su, sv, d = r.T
    long_is_u = su >= sv
    w, h = np.maximum(su, sv), np.minimum(su, sv)
    long_dir = np.where(long_is_u, d, d + math.pi / 2)
    angle = _wrap(long_dir, -math.pi / 4, math.pi)
    square = (w - h) <= SQUARE_RTOL * w
    d90 = _wrap(d, 0.0, math.pi / 2)  # either side of a square: the same direction modulo pi/2
    sq_angle = np.where(d90 >= math.pi / 4, d90 - math.pi / 2, d90 + math.pi / 2)
    angle = np.where(square, sq_angle, angle)
    return torch.from_numpy(np.stack((cx, cy, w, h, angle), -1)).to(dtype)


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
