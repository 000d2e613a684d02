"""Detection-head outputs: loaded from .npz / .pt files, or synthesised.

Accepted files:
* ``.npz`` with arrays ``level0, level1, ...``, each (b, 4*reg_max + nc, h_i, w_i), in stride order;
* ``.pt`` holding a list/tuple of such tensors (what a Detect head returns in training mode up to 8.3);
* ``.pt`` holding the dict an ultralytics 8.4 model returns in training mode: ``boxes`` (b, 4*reg_max, A)
  DFL logits, ``scores`` (b, nc, A) class logits and ``feats`` (the neck features; only their grid sizes
  are used). An end-to-end model's ``{"one2many": {...}, "one2one": {...}}`` is read from ``one2many``.

Channel layout per anchor: 4*reg_max DFL logits (l, t, r, b sides, reg_max bins each), then nc class logits.
YOLOX heads (``layout="yolox"``, for SimOTA): 4 box regressions (x, y, log w, log h), 1 objectness logit, then
nc class logits — YOLOX's raw output order; ``Heads.boxes`` then holds the 5 leading channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError


@dataclass(frozen=True)
class Heads:
    """Raw head outputs, flattened over levels like ultralytics does.

    Attributes:
        boxes: Tensor[b, 4*reg_max, A] float32 DFL logits.
        scores: Tensor[b, nc, A] float32 class logits.
        grids: (h, w) of each level, stride order.
        source: where they came from (a path or "synthetic ...").
        extra: task-specific outputs by name, e.g. ``angle`` Tensor[b, 1, A] (OBB), ``mask_coef``
            Tensor[b, nm, A] and ``protos`` Tensor[b, nm, h, w] (segment), ``kpts`` Tensor[b, K*D, A] (pose);
            empty for detection.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    grids: tuple[tuple[int, int], ...]
    source: str
    extra: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def nc(self) -> int:
        return int(self.scores.shape[1])


def from_levels(levels: list[torch.Tensor], reg_max: int, source: str, lead: int | None = None) -> Heads:
    """Split per-level Tensor[b, lead+nc, h, w] maps (lead = 4*reg_max by default) into flattened boxes/scores."""
    b, c = levels[0].shape[:2]
    lead = 4 * reg_max if lead is None else lead
    flat = torch.cat([x.reshape(b, c, -1) for x in levels], 2).float()  # [b, C, A]
    boxes, scores = flat.split((lead, c - lead), 1)
    return Heads(boxes.contiguous(), scores.contiguous(), tuple((int(x.shape[2]), int(x.shape[3])) for x in levels), source)


def _check_levels(levels: list, path: str, reg_max: int, nc: int | None, layout: str = "v8") -> None:
    if not levels:
        raise InputError("no head levels found", path)
    for i, x in enumerate(levels):
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            want = {"yolox": "5+nc", "yolov5": "na*(5+nc)"}.get(layout, "4*reg_max+nc")
            raise InputError(f"level{i}: expected an array (b, {want}, h, w), got {shape}", path)
        if not x.is_floating_point():
            raise InputError(f"level{i}: expected floating-point values, got {x.dtype}", path)
        if x.shape[:2] != levels[0].shape[:2]:
            raise InputError(
                f"level{i}: batch/channels {tuple(x.shape[:2])} differ from level0's {tuple(levels[0].shape[:2])}", path
            )
        if not torch.isfinite(x).all():
            raise InputError(f"level{i}: contains NaN or infinite values", path)
    if layout != "yolov5":  # yolov5 checks its channels itself (they depend on the anchors per level)
        _check_channels(int(levels[0].shape[1]), path, reg_max, nc, layout)


def _check_channels(c: int, path: str, reg_max: int, nc: int | None, layout: str = "v8") -> None:
    if layout == "yolox":
        lead, what = 5, "5+nc (YOLOX: 4 box, 1 objectness, nc classes)"
        want = f"{what} = 5+{nc} = {5 + nc}" if nc is not None else f"more than 5 ({what})"
    else:
        lead = 4 * reg_max
        want = f"4*reg_max+nc = 4*{reg_max}+{nc} = {4 * reg_max + nc}" if nc is not None else f"more than 4*reg_max = {4 * reg_max}"
    if (nc is not None and c != lead + nc) or c <= lead:
        raise InputError(f"head has {c} channels, expected {want}", path)


def _read_heads_file(p: Path, src: str):
    """The levels of a .npz file (a list), or whatever a .pt file holds (one2many unwrapped)."""
    if not p.is_file():
        raise InputError("heads file not found", src)
    if p.suffix == ".npz":
        return _read_npz_levels(p, src)
    if p.suffix == ".pt":
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a corrupt or unsafe file
            raise InputError(f"corrupt or unreadable .pt file ({e.__class__.__name__})", src) from None
        return obj["one2many"] if isinstance(obj, dict) and "one2many" in obj else obj
    raise InputError("heads file must be .npz or .pt", src)


def load_v5_heads(path: str | Path, nc: int | None, na: int) -> list[torch.Tensor]:
    """YOLOv5 heads: per level (b, na*(5+nc), h, w) raw Detect outputs (.npz level0.. or a .pt list), returned
    as Detect's training view (b, na, h, w, 5+nc)."""
    p = Path(path)
    src = str(p)
    levels = _read_heads_file(p, src)
    if not isinstance(levels, (list, tuple)):
        raise InputError("YOLOv5 heads: expected a list of level tensors (b, na*(5+nc), h, w)", src)
    levels = list(levels)
    _check_levels(levels, src, 1, None, "yolov5")
    c = int(levels[0].shape[1])
    if c % na or c // na <= 5 or (nc is not None and c != na * (5 + nc)):
        want = f"na*(5+nc) = {na}*(5+{nc}) = {na * (5 + nc)}" if nc is not None else f"a multiple of na = {na}, above {5 * na}"
        raise InputError(f"head has {c} channels, expected {want} (YOLOv5: per anchor box x, y, w, h, objectness, classes)",
                         src)
    return [x.float().view(x.shape[0], na, c // na, x.shape[2], x.shape[3]).permute(0, 1, 3, 4, 2).contiguous()
            for x in levels]


def _read_npz_levels(p: Path, src: str) -> list[torch.Tensor]:
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # fh closes even if np.load fails
            keys = sorted((k for k in z.files if k.startswith("level")), key=lambda k: int(k[5:] or -1))
            if not keys or keys != [f"level{i}" for i in range(len(keys))]:
                raise InputError(f"expected arrays level0, level1, ...; found {sorted(z.files)}", src)
            return [torch.from_numpy(np.ascontiguousarray(z[k])) for k in keys]
    except InputError:
        raise
    except Exception as e:  # numpy raises many types for a damaged archive or header (fuzzing found
        # zipfile.BadZipFile, ValueError, EOFError, KeyError, SyntaxError, tokenize.TokenError, zlib.error)
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise InputError(f"corrupt .npz file ({e.__class__.__name__}{': ' + detail if detail else ''})", src) from None


def load_heads(path: str | Path, reg_max: int, nc: int | None, layout: str = "v8") -> Heads:
    """Read a .npz or .pt heads file; validates shapes, channels and values (grids are checked later).

    layout "v8" (DFL) or "yolox" (for SimOTA; .npz or a .pt list of levels only).
    """
    p = Path(path)
    src = str(p)
    return heads_from_object(_read_heads_file(p, src), src, reg_max, nc, layout)


def heads_from_object(obj, src: str, reg_max: int, nc: int | None, layout: str = "v8") -> Heads:
    """Heads from what a file (or a model's forward) holds: a list of level maps or 8.4's boxes/scores/feats dict."""
    if isinstance(obj, (list, tuple)):
        levels = list(obj)
        _check_levels(levels, src, reg_max, nc, layout)
        return from_levels(levels, reg_max, src, 5 if layout == "yolox" else None)
    if layout == "yolox":
        raise InputError("YOLOX heads: expected a list of level tensors (b, 5+nc, h, w)", src)
    if isinstance(obj, dict) and {"boxes", "scores", "feats"} <= set(obj):
        return _from_dict(obj, src, reg_max, nc)
    raise InputError("expected a list of level tensors or a dict with 'boxes', 'scores', 'feats'", src)


def heads_to_levels(heads: Heads) -> list[np.ndarray]:
    """The inverse of :func:`from_levels`: per level (b, C, h, w) float32 maps, C = boxes then scores channels."""
    flat = torch.cat((heads.boxes, heads.scores), 1)  # [b, C, A]
    out, start = [], 0
    for h, w in heads.grids:
        out.append(flat[:, :, start : start + h * w].reshape(flat.shape[0], flat.shape[1], h, w).numpy())
        start += h * w
    return out


# arrays a --save-heads file holds besides level0.. (see README "Your own model")
SAVED_RUN_KEYS = ("images", "image_files", "letterbox_scale", "letterbox_pad", "orig_shape", "imgsz", "strides",
                  "reg_max", "nc", "loss_gains", "model", "class_names", "trainer_version", "model_kind",
                  "kpt_shape", "kpt_oks_sigmas", "assigner")


def read_saved_run(path: str | Path) -> dict[str, np.ndarray]:
    """The run settings a ``--save-heads`` .npz carries (empty for other heads files); ``images`` is not read."""
    p = Path(path)
    if p.suffix != ".npz" or not p.is_file():
        return {}
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in SAVED_RUN_KEYS if k in z.files and k != "images"}
    except Exception as e:
        raise InputError(f"corrupt .npz file ({e.__class__.__name__})", str(p)) from None


def _from_dict(obj: dict, src: str, reg_max: int, nc: int | None) -> Heads:
    boxes, scores, feats = obj["boxes"], obj["scores"], obj["feats"]
    for name, x in (("boxes", boxes), ("scores", scores)):
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
            raise InputError(f"'{name}' must be a float tensor (b, channels, anchors)", src)
        if not torch.isfinite(x).all():
            raise InputError(f"'{name}' contains NaN or infinite values", src)
    if not isinstance(feats, (list, tuple)) or not all(isinstance(f, torch.Tensor) and f.ndim == 4 for f in feats):
        raise InputError("'feats' must be a list of (b, c, h, w) tensors", src)
    if boxes.shape[1] != 4 * reg_max:
        raise InputError(f"'boxes' has {boxes.shape[1]} channels, expected 4*reg_max = {4 * reg_max}", src)
    if nc is not None and scores.shape[1] != nc:
        raise InputError(f"'scores' has {scores.shape[1]} channels, expected nc = {nc}", src)
    grids = tuple((int(f.shape[2]), int(f.shape[3])) for f in feats)
    a = sum(h * w for h, w in grids)
    if boxes.shape[2] != a or scores.shape[2] != a or boxes.shape[0] != scores.shape[0]:
        raise InputError(
            f"'boxes' {tuple(boxes.shape)} / 'scores' {tuple(scores.shape)} do not match the {a} anchors of 'feats'", src
        )
    extra = {}
    for key, x in obj.items():  # the task heads' outputs (8.4 names): angle, kpts, kpts_sigma, mask_coefficient, proto
        if key in ("boxes", "scores", "feats") or not isinstance(x, torch.Tensor):
            continue
        name = EXTRA_NAMES.get(key, key)
        if not torch.isfinite(x).all():
            raise InputError(f"'{key}' contains NaN or infinite values", src)
        if name != "protos" and (x.ndim != 3 or x.shape[0] != boxes.shape[0] or x.shape[2] != a):
            raise InputError(f"'{key}' {tuple(x.shape)} is not (b, channels, {a} anchors)", src)
        extra[name] = x.float().contiguous()
    return Heads(boxes.float().contiguous(), scores.float().contiguous(), grids, src, extra)


# ultralytics' names of the task outputs -> Heads.extra names
EXTRA_NAMES = {"mask_coefficient": "mask_coef", "proto": "protos"}


def check_grids(heads: Heads, grids: list[tuple[int, int]], imgsz: tuple[int, int], strides) -> None:
    """The heads' grids must be imgsz / stride at every level."""
    if list(heads.grids) != list(grids):
        raise InputError(
            f"head grids {[list(g) for g in heads.grids]} do not match imgsz {list(imgsz)} / strides "
            f"{list(strides)} = {[list(g) for g in grids]}",
            heads.source,
        )


# ------------------------------------------------------------------------------------------------- synthetic
def synthetic_randn(batch: int, nc: int, reg_max: int, grids: list[tuple[int, int]], seed: int) -> Heads:
    """``torch.manual_seed(seed)`` then ``torch.randn(batch, 4*reg_max+nc, h, w)`` per level, like seed 001."""
    gen = torch.manual_seed(seed)
    levels = [torch.randn(batch, 4 * reg_max + nc, h, w, generator=gen) for h, w in grids]
    return from_levels(levels, reg_max, f"synthetic randn heads (seed {seed})")


# A partly trained model, defined anchor by anchor so that any subset of anchors (scan --simulate's candidate
# pairs) gets exactly the values the full heads hold. Every random number is a hash of (seed, image, anchor,
# channel), not a draw from a generator, so it does not depend on which anchors are evaluated or in what order.
TRAINED_BG_LOGIT = -12.0  # background class logit: sigmoid ~ 6e-6, like a converged detector's background
TRAINED_BG_SPREAD = 3.0  # uniform spread of background logits around it
TRAINED_PEAK_LOGIT = 0.5  # GT class logit at the box centre (sigmoid 0.62) ...
TRAINED_FALLOFF = 16.0  # ... falling by this times d^2 towards the edges (d: 0 at the centre, 1 at an edge)
TRAINED_UNFIT = 8.0  # ... and by this much more at a level whose reg_max cannot span the box
TRAINED_LOGIT_NOISE = 0.7  # Gaussian noise of the GT class logit
TRAINED_BOX_NOISE = (0.3, 0.06)  # per side: 0.3 cells + 6% of the box side, Gaussian
TRAINED_DFL_WIDTH = 0.8  # the DFL logits are a Gaussian bump of this width (bins) at the predicted distance
TRAINED_DFL_FLOOR = -50.0  # ... floored here


_MIX = (0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0xABC98388FB8FAC03, 0x8CB92BA72F3D8DD7)


def _finalize(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64, wrapping)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_uniform(seed: int, image: np.ndarray, anchor: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Uniform floats in (0, 1), a pure function of (seed, image, anchor, channel) (broadcast): splitmix64 of
    (seed, image, anchor), then of that plus the channel."""
    with np.errstate(over="ignore"):
        base = _finalize(np.uint64(seed & 0xFFFFFFFF) * np.uint64(_MIX[0])
                         + np.asarray(image).astype(np.uint64) * np.uint64(_MIX[1])
                         + np.asarray(anchor).astype(np.uint64) * np.uint64(_MIX[2]))
        x = _finalize(base + np.asarray(channel).astype(np.uint64) * np.uint64(_MIX[3]))
    return ((x >> np.uint64(40)).astype(np.float32) + np.float32(0.5)) * np.float32(1 / (1 << 24))


def anchor_uniforms(seed: int, image: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """(K,) image and anchor numbers -> (K, 12) float32 uniforms in (0, 1): three hashes of (seed, image, anchor),
    each cut into four 16-bit numbers (the per-anchor noise of the trained heads, cheap enough for millions of
    candidate anchors)."""
    with np.errstate(over="ignore"):
        base = _finalize(np.uint64(seed & 0xFFFFFFFF) * np.uint64(_MIX[0])
                         + np.asarray(image).astype(np.uint64) * np.uint64(_MIX[1])
                         + np.asarray(anchor).astype(np.uint64) * np.uint64(_MIX[2]))[:, None]
        x = _finalize(base + np.arange(3, dtype=np.uint64)[None] * np.uint64(_MIX[3]))  # (K, 3)
    parts = np.ascontiguousarray(x).astype("<u8", copy=False).view("<u2")  # (K, 12): bits 0-15, 16-31, ... of each
    return (parts.astype(np.float32) + np.float32(0.5)) * np.float32(1 / 65536)


def _box_muller(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    return np.sqrt(np.float32(-2) * np.log(u1)) * np.cos(np.float32(2 * np.pi) * u2)


@dataclass(frozen=True)
class TrainedAt:
    """The partly-trained model at K anchors (flat keys image * A + anchor).

    dist (K, 4) float32 predicted l, t, r, b in grid units (before the DFL encoding); owner (K,) int64 flat GT
    (image * M + slot) whose box holds the anchor, -1 for none; owner_cls (K,) its class (-1); owner_logit (K,)
    float32 the owner's class logit there.
    """

    dist: torch.Tensor
    owner: torch.Tensor
    owner_cls: torch.Tensor
    owner_logit: torch.Tensor


def trained_at(keys: torch.Tensor, anc_px: torch.Tensor, stride: torch.Tensor, gt_bboxes: torch.Tensor,
               gt_cls: torch.Tensor, valid: torch.Tensor, seed: int, reg_max: int,
               image_ids: torch.Tensor | None = None, owner_pairs: tuple | None = None) -> TrainedAt:
    """The partly-trained model at the anchors ``keys`` (K,) of a batch.

    anc_px (A, 2) anchor centres px, stride (A,); gt_bboxes (b, M, 4) px xyxy, gt_cls (b, M), valid (b, M) bool.
    image_ids (b,): the image number each batch position hashes as (default 0..b-1), so a dataset audited in
    batches gets the same heads as one run on the whole list. owner_pairs: the (GT, anchor) pairs with the
    anchor centre inside the GT box (``candidate_pairs`` of the boxes), when the caller has them.

    An anchor whose centre is inside a GT box (the assigner's in-box rule; the smallest box when several) is
    that GT's: it predicts the GT's distances plus noise (0.3 cells + 6% of the box side per side), and the
    GT's class logit is 0.5 at the box centre falling as 16·d² towards the edges (d = the largest offset from
    the box centre over half the side plus half a stride: 0 at the centre, about 1 at an edge), 8 lower at a
    level whose reg_max cannot reach the box's sides, plus noise 0.7. Other anchors predict
    small boxes (0.5-2.5 cells per side); every other class logit is background, about -12.
    """
    from ..assigners.tal_sparse import candidate_pairs

    b, m = valid.shape
    n_anc = anc_px.shape[0]
    ids = np.arange(b) if image_ids is None else np.asarray(image_ids)
    k_np = keys.numpy()
    img_h, anc_h = ids[k_np // n_anc], k_np % n_anc
    # (GT, anchor) with the centre inside the real box
    seg, key = owner_pairs if owner_pairs is not None else candidate_pairs(anc_px, gt_bboxes, valid)
    flat_boxes = gt_bboxes.reshape(-1, 4)
    area = (flat_boxes[:, 2] - flat_boxes[:, 0]) * (flat_boxes[:, 3] - flat_boxes[:, 1])  # (b*M,)
    order = torch.argsort(area, stable=True)  # smallest first; ties: the lower slot
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    best = torch.full((b * n_anc,), b * m, dtype=torch.int64)
    if seg.numel():
        best.scatter_reduce_(0, key, rank[seg], "amin")
    r = best[keys]
    has = r < b * m
    owner = torch.where(has, order[r.clamp(max=max(b * m - 1, 0))] if b * m else r, torch.full_like(r, -1))
    a = keys % n_anc
    pts, s = anc_px[a], stride[a]  # (K, 2), (K,)
    # hashed uniforms per anchor: 0-3 the unowned anchors' distances; for owned ones 0-7 the box noise (four
    # normals) and 8-9 the class-logit noise
    u = torch.from_numpy(anchor_uniforms(seed, img_h, anc_h))  # (K, 12)
    dist = u[:, :4] * 2 + 0.5  # unowned anchors: small random boxes
    logit = torch.zeros(keys.numel())
    cls_o = torch.full_like(owner, -1)
    hk = has.nonzero().squeeze(1)
    if hk.numel():
        o = owner[hk]
        box = flat_boxes[o]  # (k, 4)
        p, sk = pts[hk], s[hk, None]
        true = torch.cat((p - box[:, :2], box[:, 2:] - p), 1) / sk  # (k, 4) grid units
        wh = (box[:, 2:] - box[:, :2]) / sk  # (k, 2) cells
        sigma = TRAINED_BOX_NOISE[0] + TRAINED_BOX_NOISE[1] * torch.cat((wh, wh), 1)
        uk = u[hk].numpy()
        noise = torch.from_numpy(_box_muller(uk[:, 0:8:2], uk[:, 1:8:2]))  # (k, 4)
        dist[hk] = true + noise * sigma
        centre, half = (box[:, :2] + box[:, 2:]) / 2, (box[:, 2:] - box[:, :2]).clamp(min=1e-6) / 2
        d = ((p - centre).abs() / (half + sk / 2)).amax(1)  # 0 at the centre, < 1 inside; half a cell of slack
        unfit = (true.amax(1) > reg_max - 1).float()
        eps = torch.from_numpy(_box_muller(uk[:, 8], uk[:, 9]))
        logit[hk] = TRAINED_PEAK_LOGIT - TRAINED_FALLOFF * d**2 - TRAINED_UNFIT * unfit + TRAINED_LOGIT_NOISE * eps
        cls_o[hk] = gt_cls.reshape(-1)[o].long()
    return TrainedAt(dist, owner, cls_o, logit)


def trained_background_logits(keys: torch.Tensor, classes: torch.Tensor, n_anchors: int, seed: int,
                              image_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Background class logits at (key, class) pairs, broadcast: about -12 (uniform ±1.5)."""
    k = keys.numpy()
    ids = np.arange(int(k.max()) // n_anchors + 1 if k.size else 1) if image_ids is None else np.asarray(image_ids)
    u = _hash_uniform(seed, ids[k // n_anchors], k % n_anchors, 16 + classes.numpy())
    return torch.from_numpy(np.float32(TRAINED_BG_LOGIT) + np.float32(TRAINED_BG_SPREAD) * (u - np.float32(0.5)))


DFL_STEPS = 64  # predicted distances are quantised to 1/64 bin, so their decode is a table lookup (scan)


def _dfl_bump(q: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(...,) quantised distances (units of 1/DFL_STEPS bin) -> (..., reg_max) DFL logits: a Gaussian bump there."""
    x = torch.arange(reg_max, dtype=torch.float32) - (q.to(torch.float32) / DFL_STEPS).unsqueeze(-1)
    # floored at -50 (probability ~1e-22 next to the peak): far bins would otherwise give exp() subnormal
    # intermediates, which make softmax on x86 many times slower and change nothing visible
    return x.square_().mul_(-1 / (2 * TRAINED_DFL_WIDTH**2)).clamp_(min=TRAINED_DFL_FLOOR)


def _dfl_quantised(dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    return torch.round(dist.clamp(0, reg_max - 1) * DFL_STEPS).long()


def trained_dfl_logits(dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4) distances in grid units -> (..., 4 * reg_max) DFL logits peaked there, at the distance clamped to
    [0, reg_max - 1] and rounded to 1/64 bin (reg_max 1: the clamped distances themselves)."""
    if reg_max == 1:
        return dist.clamp(0, 0)
    return _dfl_bump(_dfl_quantised(dist, reg_max), reg_max).flatten(-2)


_DFL_TABLES: dict[int, torch.Tensor] = {}


def trained_distances(dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    """What the DFL decode (``core.decode.dfl_distances``) gives for ``trained_dfl_logits(dist)``: (..., 4) grid
    units, read from a table of the decode of every quantised distance (the same softmax and sum, one row per
    distance), so evaluating millions of anchors costs a lookup each."""
    if reg_max == 1:
        return dist.clamp(0, 0)
    from ..core.decode import dfl_distances

    if reg_max not in _DFL_TABLES:
        q = torch.arange((reg_max - 1) * DFL_STEPS + 1)
        logits = _dfl_bump(q[:, None].expand(-1, 4), reg_max).reshape(1, len(q), 4 * reg_max)
        _DFL_TABLES[reg_max] = dfl_distances(logits, reg_max)[0, :, 0].contiguous()
    return _DFL_TABLES[reg_max][_dfl_quantised(dist, reg_max)]


def synthetic_trained(
    batch: int,
    nc: int,
    reg_max: int,
    grids: list[tuple[int, int]],
    strides,
    seed: int,
    batch_idx: np.ndarray,
    cls: np.ndarray,
    xyxy_px: np.ndarray,
) -> Heads:
    """Heads of a partly trained model (see :func:`trained_at`): losses like a model mid-training.

    batch_idx (n,), cls (n,), xyxy_px (n, 4): the GTs. Deterministic per seed.
    """
    anc, st = [], []
    for (h, w), s in zip(grids, strides):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                                indexing="ij")
        anc.append(torch.stack((xs, ys), -1).view(-1, 2) * float(s))
        st.append(torch.full((h * w,), float(s)))
    anc_px, stride = torch.cat(anc), torch.cat(st)
    n_anc = anc_px.shape[0]
    gl, gb, valid = _padded(batch, batch_idx, cls, xyxy_px)
    keys = torch.arange(batch * n_anc)
    at = trained_at(keys, anc_px, stride, gb, gl, valid, seed, reg_max)
    logits = trained_background_logits(keys[:, None], torch.arange(nc)[None], n_anc, seed, np.arange(batch))
    hk = (at.owner >= 0).nonzero().squeeze(1)
    logits[hk, at.owner_cls[hk]] = at.owner_logit[hk]
    boxes = trained_dfl_logits(at.dist, reg_max).view(batch, n_anc, 4 * reg_max).permute(0, 2, 1).contiguous()
    scores = logits.view(batch, n_anc, nc).permute(0, 2, 1).contiguous()
    return Heads(boxes, scores, tuple((int(h), int(w)) for h, w in grids),
                 f"synthetic partly-trained heads (seed {seed})")


def _padded(batch: int, batch_idx: np.ndarray, cls: np.ndarray, xyxy: np.ndarray):
    """GT rows -> (cls (b, M), boxes (b, M, 4), valid (b, M)), each image's GTs in row order."""
    bi = np.asarray(batch_idx, np.int64)
    counts = np.bincount(bi, minlength=batch) if bi.size else np.zeros(batch, np.int64)
    m = int(counts.max()) if bi.size else 0
    order = np.argsort(bi, kind="stable")
    slot = np.empty_like(bi)
    slot[order] = np.arange(bi.size) - np.repeat(np.cumsum(counts) - counts, counts)
    gl = torch.zeros(batch, m, dtype=torch.int64)
    gb = torch.zeros(batch, m, 4)
    valid = torch.zeros(batch, m, dtype=torch.bool)
    if bi.size:
        gl[bi, slot] = torch.from_numpy(np.asarray(cls, np.int64))
        gb[bi, slot] = torch.from_numpy(np.asarray(xyxy, np.float32))
        valid[bi, slot] = True
    return gl, gb, valid
