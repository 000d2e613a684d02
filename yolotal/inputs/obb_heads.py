"""OBB head outputs: files and synthetic heads with an angle channel.

Channel layout per anchor, level by level: 4*reg_max DFL logits (l, t, r, b), nc class logits, then 1 angle
channel — the order ultralytics' OBB head concatenates them in (box and class outputs first, the angle after
them). The angle channel holds what the head's last convolution outputs: a logit for the YOLOv8/YOLO11 OBB head
(encoding ``sigmoid``: radians = (sigmoid(x) - 1/4) * pi) or the angle itself for YOLO26's (``radians``); see
``core.rotated.angle_from_head``. ``Heads.extra["angle"]`` is that channel, (b, 1, A).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..core.rotated import ANGLE_ENCODINGS, points_in_rboxes, rbox_to_ltrb
from ..errors import InputError
from .heads import (
    TRAINED_BOX_NOISE,
    TRAINED_FALLOFF,
    TRAINED_LOGIT_NOISE,
    TRAINED_PEAK_LOGIT,
    TRAINED_UNFIT,
    Heads,
    _box_muller,
    _check_levels,
    _read_heads_file,
    anchor_uniforms,
    trained_background_logits,
    trained_dfl_logits,
)

TRAINED_ANGLE_NOISE = 0.05  # radians, Gaussian: the partly trained model's angle error
OWNER_CHUNK = 1 << 22  # GT x anchor cells per block when finding each anchor's GT


def from_obb_levels(levels: list[torch.Tensor], reg_max: int, source: str) -> Heads:
    """Per-level (b, 4*reg_max + nc + 1, h, w) maps -> Heads with ``extra["angle"]`` (b, 1, A)."""
    b, c = levels[0].shape[:2]
    flat = torch.cat([x.reshape(b, c, -1) for x in levels], 2).float()  # [b, C, A]
    lead = 4 * reg_max
    boxes, scores, angle = flat.split((lead, c - lead - 1, 1), 1)
    grids = tuple((int(x.shape[2]), int(x.shape[3])) for x in levels)
    return Heads(boxes.contiguous(), scores.contiguous(), grids, source, {"angle": angle.contiguous()})


def obb_heads_to_levels(heads: Heads) -> list[np.ndarray]:
    """The inverse of :func:`from_obb_levels`: per level (b, 4*reg_max + nc + 1, h, w) float32 maps."""
    flat = torch.cat((heads.boxes, heads.scores, heads.extra["angle"]), 1)
    out, start = [], 0
    for h, w in heads.grids:
        out.append(flat[:, :, start : start + h * w].reshape(flat.shape[0], flat.shape[1], h, w).numpy())
        start += h * w
    return out


def load_obb_heads(path: str | Path, reg_max: int, nc: int | None, encoding: str) -> tuple[Heads, str]:
    """Read OBB heads; returns (heads, the angle encoding to decode them with).

    ``.npz`` (arrays level0, level1, ...) or a ``.pt`` list: per level 4*reg_max + nc + 1 channels, the angle
    last, in ``encoding``. A ``.pt`` dict as an 8.4 OBB model returns in training mode (``boxes``, ``scores``,
    ``angle``, ``feats``; an end-to-end model's ``one2many``): its ``angle`` has passed through the head already,
    so it is read as radians whatever ``encoding`` says.
    """
    if encoding not in ANGLE_ENCODINGS:
        raise ValueError(f"angle encoding must be one of {ANGLE_ENCODINGS}")
    p = Path(path)
    src = str(p)
    obj = _read_heads_file(p, src)
    if isinstance(obj, (list, tuple)):
        levels = list(obj)
        _check_levels(levels, src, reg_max, None)
        c = int(levels[0].shape[1])
        want = 4 * reg_max + (nc if nc is not None else 0) + 1
        if (nc is not None and c != want) or c < 4 * reg_max + 2:
            exp = (f"4*reg_max+nc+1 = 4*{reg_max}+{nc}+1 = {want}" if nc is not None
                   else f"more than 4*reg_max+1 = {4 * reg_max + 1}")
            raise InputError(f"OBB head has {c} channels, expected {exp} (box, classes, then the angle)", src)
        return from_obb_levels(levels, reg_max, src), encoding
    if isinstance(obj, dict):
        if "angle" not in obj:
            raise InputError("OBB heads need an 'angle' entry (b, 1, anchors); this looks like a detect head", src)
        from .heads import _from_dict

        base = _from_dict(obj, src, reg_max, nc)
        angle = obj["angle"]
        if not isinstance(angle, torch.Tensor) or tuple(angle.shape) != (base.batch, 1, base.boxes.shape[2]):
            raise InputError(f"'angle' must be (b, 1, anchors) = {(base.batch, 1, base.boxes.shape[2])}", src)
        if not torch.isfinite(angle).all():
            raise InputError("'angle' contains NaN or infinite values", src)
        return Heads(base.boxes, base.scores, base.grids, src, {"angle": angle.float().contiguous()}), "radians"
    raise InputError("expected a list of level tensors or a dict with 'boxes', 'scores', 'angle', 'feats'", src)


# ------------------------------------------------------------------------------------------------- synthetic
def synthetic_obb_randn(batch: int, nc: int, reg_max: int, grids: list[tuple[int, int]], seed: int) -> Heads:
    """``torch.manual_seed(seed)`` then ``torch.randn(batch, 4*reg_max + nc + 1, h, w)`` per level (angle last)."""
    gen = torch.manual_seed(seed)
    levels = [torch.randn(batch, 4 * reg_max + nc + 1, h, w, generator=gen) for h, w in grids]
    return from_obb_levels(levels, reg_max, f"synthetic randn OBB heads (seed {seed})")


def encode_angle(theta: torch.Tensor, encoding: str) -> torch.Tensor:
    """Radians -> the head's angle channel (the inverse of ``angle_from_head``; sigmoid: clipped to (-pi/4, 3pi/4))."""
    if encoding == "radians":
        return theta
    if encoding == "sigmoid":
        q = (theta / math.pi + 0.25).clamp(1e-4, 1 - 1e-4)
        return torch.log(q / (1 - q))
    raise ValueError(f"angle encoding must be one of {ANGLE_ENCODINGS}")


def _anchors_px(grids, strides) -> tuple[torch.Tensor, torch.Tensor]:
    anc, st = [], []
    for (h, w), s in zip(grids, strides):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                                indexing="ij")
        anc.append(torch.stack((xs, ys), -1).view(-1, 2) * float(s))
        st.append(torch.full((h * w,), float(s)))
    return torch.cat(anc), torch.cat(st)


def rotated_owner(anc_px: torch.Tensor, rboxes: torch.Tensor) -> torch.Tensor:
    """(A, 2) anchors px, (n, 5) GT xywhr px -> (A,) index of the smallest-area GT holding the anchor, -1 for none
    (ties: the lower index). Computed in blocks of GTs."""
    a = anc_px.shape[0]
    n = rboxes.shape[0]
    best_area = torch.full((a,), float("inf"))
    owner = torch.full((a,), -1, dtype=torch.int64)
    if n == 0:
        return owner
    area = rboxes[:, 2] * rboxes[:, 3]
    step = max(1, OWNER_CHUNK // max(a, 1))
    for s in range(0, n, step):
        inside = points_in_rboxes(anc_px, rboxes[s : s + step])  # (k, A)
        ar = torch.where(inside, area[s : s + step, None], torch.tensor(float("inf")))
        v, i = ar.min(0)  # first (lowest) index among equal areas
        better = v < best_area
        best_area = torch.where(better, v, best_area)
        owner = torch.where(better, i + s, owner)
    return owner


def synthetic_obb_trained(batch: int, nc: int, reg_max: int, grids: list[tuple[int, int]], strides, seed: int,
                          batch_idx: np.ndarray, cls: np.ndarray, xywhr_px: np.ndarray,
                          encoding: str = "sigmoid") -> Heads:
    """Heads of a partly trained OBB model, deterministic per seed (the rotated analogue of
    ``heads.synthetic_trained``).

    An anchor whose centre is inside a GT's rotated box (the smallest when several) is that GT's: it predicts
    the GT's distances (along the GT's axes) plus noise (0.3 cells + 6% of the side, per side), the GT's angle
    plus Gaussian noise of 0.05 rad, and a GT-class logit of 0.5 at the centre falling as 16·d² towards the
    edges (d: the larger offset along the box axes over half the side plus half a stride), 8 lower where reg_max
    cannot span the distances, plus noise 0.7. Other anchors predict small boxes (0.5-2.5 cells per side) at a
    random angle in [-pi/4, 3pi/4); their class logits are background (about -12).
    batch_idx (n,), cls (n,), xywhr_px (n, 5): the GTs; encoding: the angle channel's (see module doc).
    """
    anc_px, stride = _anchors_px(grids, strides)
    n_anc = anc_px.shape[0]
    bi_all = np.asarray(batch_idx, np.int64)
    boxes_all = torch.as_tensor(np.asarray(xywhr_px, np.float32)).reshape(-1, 5)
    cls_all = torch.as_tensor(np.asarray(cls, np.int64)).reshape(-1)
    dist = torch.empty(batch, n_anc, 4)
    theta = torch.empty(batch, n_anc)
    keys = torch.arange(batch * n_anc)
    logits = trained_background_logits(keys[:, None], torch.arange(nc)[None], n_anc, seed,
                                       np.arange(batch)).view(batch, n_anc, nc)
    for i in range(batch):
        u = torch.from_numpy(anchor_uniforms(seed, np.full(n_anc, i), np.arange(n_anc)))  # (A, 12)
        dist[i] = u[:, :4] * 2 + 0.5
        theta[i] = (u[:, 4] - 0.25) * math.pi
        rows = np.nonzero(bi_all == i)[0]
        if not len(rows):
            continue
        gts = boxes_all[rows]
        owner = rotated_owner(anc_px, gts)
        hk = (owner >= 0).nonzero().squeeze(1)
        if not hk.numel():
            continue
        box = gts[owner[hk]]  # (k, 5)
        sk = stride[hk, None]
        true = rbox_to_ltrb(box, anc_px[hk]) / sk  # (k, 4) grid units
        wh = box[:, 2:4] / sk
        sigma = TRAINED_BOX_NOISE[0] + TRAINED_BOX_NOISE[1] * torch.cat((wh, wh), 1)
        uk = u[hk].numpy()
        noise = torch.from_numpy(_box_muller(uk[:, 0:8:2], uk[:, 1:8:2]))
        dist[i, hk] = true + noise * sigma
        half = torch.stack((box[:, 2], box[:, 3]), 1).clamp(min=1e-6) / 2
        off = (true[:, 2:] - true[:, :2]).abs() / 2 * sk  # |offset from the centre| along the box axes, px
        d = (off / (half + sk / 2)).amax(1)
        unfit = (true.amax(1) > reg_max - 1).float() if reg_max > 1 else torch.zeros(len(hk))
        eps = torch.from_numpy(_box_muller(uk[:, 8], uk[:, 9]))
        lg = TRAINED_PEAK_LOGIT - TRAINED_FALLOFF * d**2 - TRAINED_UNFIT * unfit + TRAINED_LOGIT_NOISE * eps
        logits[i, hk, cls_all[rows][owner[hk]]] = lg
        theta[i, hk] = box[:, 4] + TRAINED_ANGLE_NOISE * torch.from_numpy(_box_muller(uk[:, 10], uk[:, 11]))
    boxes = trained_dfl_logits(dist, reg_max).view(batch, n_anc, 4 * reg_max).permute(0, 2, 1).contiguous()
    if reg_max == 1:  # no distribution: the distances are the channels (kept, not clamped to 0)
        boxes = dist.clamp(min=0).permute(0, 2, 1).contiguous()
    angle = encode_angle(theta, encoding).unsqueeze(1).contiguous()  # (b, 1, A)
    return Heads(boxes, logits.permute(0, 2, 1).contiguous(), tuple((int(h), int(w)) for h, w in grids),
                 f"synthetic partly-trained OBB heads (seed {seed})", {"angle": angle})
