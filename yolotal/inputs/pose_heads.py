"""Pose-head outputs: read from .npz / .pt files or synthesised; keypoints go to ``Heads.extra``.

``.npz`` pose heads: arrays ``level0, level1, ...`` in stride order, each (b, C, h_i, w_i) with the channels
concatenated the way ultralytics' Pose head concatenates its outputs (boxes, classes, keypoints):

    4*reg_max DFL logits | nc class logits | K*D keypoint channels | 2*K keypoint sigmas (YOLO26 only)

The K*D keypoint channels are keypoint-major (channel ``k*D + d``: x, y[, visibility logit] of keypoint k); the
2*K sigma channels (training-mode ``Pose26`` only) are ``2*k + d``: raw scale of keypoint k along x, y.

``.pt``: the dict an ultralytics 8.4 pose model returns in training mode, ``boxes`` (b, 4*reg_max, A), ``scores``
(b, nc, A), ``kpts`` (b, K*D, A), ``kpts_sigma`` (b, 2K, A) for YOLO26, ``feats`` (for the grid sizes); an
end-to-end model's ``{"one2many": ..., "one2one": ...}`` is read from ``one2many``.

In ``Heads.extra``: ``kpts`` (b, K*D, A) and, for YOLO26, ``kpts_sigma`` (b, 2K, A).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .heads import Heads, _padded, _read_heads_file, from_levels, synthetic_trained, trained_at


def _extra_channels(kpt_shape, with_sigma: bool) -> int:
    k, d = int(kpt_shape[0]), int(kpt_shape[1])
    return k * d + (2 * k if with_sigma else 0)


def pose_heads_from_levels(levels: list[torch.Tensor], reg_max: int, kpt_shape, with_sigma: bool, source: str,
                           nc: int | None = None) -> Heads:
    """Per-level (b, 4*reg_max + nc + K*D [+ 2K], h, w) maps -> Heads with ``extra`` kpts [, kpts_sigma]."""
    k, d = int(kpt_shape[0]), int(kpt_shape[1])
    c = int(levels[0].shape[1])
    extra = _extra_channels(kpt_shape, with_sigma)
    lead = 4 * reg_max
    what = f"4*reg_max + nc + K*D{' + 2K' if with_sigma else ''}"
    if nc is not None and c != lead + nc + extra:
        raise InputError(f"pose head has {c} channels, expected {what} = {lead} + {nc} + {extra} = "
                         f"{lead + nc + extra} (kpt_shape [{k}, {d}])", source)
    if c <= lead + extra:
        raise InputError(f"pose head has {c} channels, expected more than 4*reg_max + K*D"
                         f"{' + 2K' if with_sigma else ''} = {lead + extra} (kpt_shape [{k}, {d}])", source)
    b = levels[0].shape[0]
    kp = torch.cat([x.reshape(b, c, -1)[:, c - extra:] for x in levels], 2).float()  # (b, K*D [+ 2K], A)
    base = from_levels([x[:, : c - extra] for x in levels], reg_max, source)
    ex = {"kpts": kp[:, : k * d].contiguous()}
    if with_sigma:
        ex["kpts_sigma"] = kp[:, k * d:].contiguous()
    return Heads(base.boxes, base.scores, base.grids, source, ex)


def pose_heads_to_levels(heads: Heads) -> list[np.ndarray]:
    """Inverse of :func:`pose_heads_from_levels`: per level (b, C, h, w) float32, channels in the file order."""
    parts = [heads.boxes, heads.scores, heads.extra["kpts"]]
    if "kpts_sigma" in heads.extra:
        parts.append(heads.extra["kpts_sigma"])
    flat = torch.cat(parts, 1)
    out, start = [], 0
    for h, w in heads.grids:
        out.append(flat[:, :, start: start + h * w].reshape(flat.shape[0], flat.shape[1], h, w).numpy())
        start += h * w
    return out


def load_pose_heads(path: str | Path, reg_max: int, nc: int | None, kpt_shape, with_sigma: bool) -> Heads:
    """Read pose heads from a .npz (levels, see the module docstring) or a .pt (8.4 training dict) file."""
    p = Path(path)
    src = str(p)
    obj = _read_heads_file(p, src)
    if isinstance(obj, (list, tuple)):
        levels = list(obj)
        for i, x in enumerate(levels):
            if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
                raise InputError(f"level{i}: expected a float array (b, channels, h, w)", src)
            if x.shape[:2] != levels[0].shape[:2]:
                raise InputError(f"level{i}: batch/channels {tuple(x.shape[:2])} differ from level0's "
                                 f"{tuple(levels[0].shape[:2])}", src)
            if not torch.isfinite(x).all():
                raise InputError(f"level{i}: contains NaN or infinite values", src)
        if not levels:
            raise InputError("no head levels found", src)
        return pose_heads_from_levels(levels, reg_max, kpt_shape, with_sigma, src, nc)
    if isinstance(obj, dict) and {"boxes", "scores", "feats", "kpts"} <= set(obj):
        from .heads import _from_dict

        base = _from_dict(obj, src, reg_max, nc)
        k, d = int(kpt_shape[0]), int(kpt_shape[1])
        ex = {}
        for name, want in (("kpts", k * d), ("kpts_sigma", 2 * k)):
            if name == "kpts_sigma" and not with_sigma:
                continue
            x = obj.get(name)
            if not isinstance(x, torch.Tensor) or x.ndim != 3:
                raise InputError(f"'{name}' missing or not a (b, channels, anchors) tensor", src)
            if x.shape[1] != want or x.shape[2] != base.boxes.shape[2] or x.shape[0] != base.batch:
                raise InputError(f"'{name}' has shape {tuple(x.shape)}, expected ({base.batch}, {want}, "
                                 f"{base.boxes.shape[2]}) for kpt_shape [{k}, {d}]", src)
            if not torch.isfinite(x).all():
                raise InputError(f"'{name}' contains NaN or infinite values", src)
            ex[name] = x.float().contiguous()
        return Heads(base.boxes, base.scores, base.grids, src, ex)
    raise InputError("expected a list of level tensors or a dict with 'boxes', 'scores', 'kpts', 'feats'", src)


# ------------------------------------------------------------------------------------------------- synthetic
def synthetic_pose_randn(batch: int, nc: int, reg_max: int, grids: list[tuple[int, int]], seed: int, kpt_shape,
                         with_sigma: bool) -> Heads:
    """``torch.manual_seed(seed)`` then ``torch.randn(batch, C, h, w)`` per level, C in the .npz channel order."""
    c = 4 * reg_max + nc + _extra_channels(kpt_shape, with_sigma)
    gen = torch.manual_seed(seed)
    levels = [torch.randn(batch, c, h, w, generator=gen) for h, w in grids]
    return pose_heads_from_levels(levels, reg_max, kpt_shape, with_sigma, f"synthetic randn pose heads (seed {seed})", nc)


TRAINED_KPT_NOISE = (0.25, 0.04)  # keypoint noise: 0.25 cells + 4% of sqrt(box area), Gaussian, per coordinate
TRAINED_VIS_LOGIT = 3.0  # visibility logit of a labelled keypoint (-3 for an unlabelled one), ...
TRAINED_VIS_NOISE = 1.0  # ... plus Gaussian noise
TRAINED_SIGMA_LOGIT = -1.0  # raw YOLO26 sigma around this (sigmoid 0.27 cells)
TRAINED_KPT_CHANNEL = 1 << 20  # hash channel offset of the keypoint noise


def _hash_normals(seed: int, image: np.ndarray, anchor: np.ndarray, channel: np.ndarray) -> np.ndarray:
    from .heads import _box_muller, _hash_uniform

    u1 = _hash_uniform(seed, image, anchor, TRAINED_KPT_CHANNEL + 2 * channel)
    u2 = _hash_uniform(seed, image, anchor, TRAINED_KPT_CHANNEL + 2 * channel + 1)
    return _box_muller(u1, u2)


def synthetic_pose_trained(batch: int, nc: int, reg_max: int, grids: list[tuple[int, int]], strides, seed: int,
                           kpt_shape, with_sigma: bool, generation: str, batch_idx: np.ndarray, cls: np.ndarray,
                           xyxy_px: np.ndarray, kpts_px: np.ndarray) -> Heads:
    """A partly trained pose model: boxes and scores of ``inputs.heads.synthetic_trained``; an anchor inside a
    GT box (its owner, the smallest box) predicts the GT's keypoints plus Gaussian noise (0.25 cells + 4% of
    sqrt(area), per coordinate), a visibility logit of +3 (labelled) or -3 (not) plus noise 1, and YOLO26 sigmas
    around -1; other anchors predict raw keypoint channels of noise 0.5. Every number is a hash of (seed, image,
    anchor, channel). kpts_px (n, K, 3): the GT keypoints in px with visibility; generation "v8" or "26" (the
    decode the raw channels must invert).
    """
    base = synthetic_trained(batch, nc, reg_max, grids, strides, seed, batch_idx, cls, xyxy_px)
    k, d = int(kpt_shape[0]), int(kpt_shape[1])
    anc, st = [], []
    for (h, w), s in zip(grids, strides):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                                indexing="ij")
        anc.append(torch.stack((xs, ys), -1).view(-1, 2))
        st.append(torch.full((h * w,), float(s)))
    anc_grid, stride = torch.cat(anc), torch.cat(st)
    n_anc = anc_grid.shape[0]
    gl, gb, valid = _padded(batch, batch_idx, cls, xyxy_px)
    keys = torch.arange(batch * n_anc)
    at = trained_at(keys, anc_grid * stride[:, None], stride, gb, gl, valid, seed, reg_max)
    # padded GT keypoints in the same slots as _padded
    m = gb.shape[1]
    kp = torch.zeros(batch * max(m, 1), k, 3)
    bi = np.asarray(batch_idx, np.int64)
    slot = np.zeros(batch, np.int64)
    for i in range(bi.size):
        kp[bi[i] * m + slot[bi[i]]] = torch.from_numpy(np.asarray(kpts_px[i], np.float32))
        slot[bi[i]] += 1
    img = (keys // n_anc).numpy()
    a = (keys % n_anc).numpy()
    ch = np.arange(k * d + 2 * k)
    noise = torch.from_numpy(_hash_normals(seed, img[:, None], a[:, None], ch[None]))  # (b*A, K*D + 2K)
    raw = noise[:, : k * d].view(-1, k, d) * 0.5
    sig = noise[:, k * d:].view(-1, k, 2) + TRAINED_SIGMA_LOGIT
    own = (at.owner >= 0).nonzero().squeeze(1)
    if own.numel():
        o = at.owner[own]
        g = kp[o]  # (n, K, 3) px
        box = gb.reshape(-1, 4)[o]
        size = ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).clamp(min=0).sqrt()  # (n,)
        s_own = stride[a[own.numpy()]]  # (n,)
        sd = TRAINED_KPT_NOISE[0] + TRAINED_KPT_NOISE[1] * size / s_own  # cells
        target = g[..., :2] / s_own[:, None, None] + noise[own, : k * d].view(-1, k, d)[..., :2] * sd[:, None, None]
        ag = anc_grid[a[own.numpy()]][:, None, :]  # (n, 1, 2)
        raw[own, :, :2] = (target - ag + 0.5) / 2 if generation == "v8" else target - ag
        if d == 3:
            vis = torch.where(g[..., 2] != 0, TRAINED_VIS_LOGIT, -TRAINED_VIS_LOGIT)
            raw[own, :, 2] = vis + TRAINED_VIS_NOISE * noise[own, : k * d].view(-1, k, d)[..., 2]
    boxes, scores = base.boxes, base.scores
    if reg_max == 1:  # synthetic_trained's DFL-free boxes are points and its class logits 8 lower everywhere (no
        # level "fits" reg_max 1); a DFL-free pose model predicts the noisy GT distances, without that penalty
        boxes = at.dist.clamp(min=0).view(batch, n_anc, 4).permute(0, 2, 1).contiguous()
        free = trained_at(keys, anc_grid * stride[:, None], stride, gb, gl, valid, seed, 1 << 30)
        logits = base.scores.permute(0, 2, 1).reshape(batch * n_anc, nc).clone()
        hk = (free.owner >= 0).nonzero().squeeze(1)
        logits[hk, free.owner_cls[hk]] = free.owner_logit[hk]
        scores = logits.view(batch, n_anc, nc).permute(0, 2, 1).contiguous()
    n_a = n_anc
    ex = {"kpts": raw.reshape(batch, n_a, k * d).permute(0, 2, 1).contiguous()}
    if with_sigma:
        ex["kpts_sigma"] = sig.reshape(batch, n_a, 2 * k).permute(0, 2, 1).contiguous()
    return Heads(boxes, scores, base.grids, f"synthetic partly-trained pose heads (seed {seed})", ex)
