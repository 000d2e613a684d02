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

from dataclasses import dataclass
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
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    grids: tuple[tuple[int, int], ...]
    source: str

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
                  "reg_max", "nc", "loss_gains", "model", "class_names")


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
    return Heads(boxes.float().contiguous(), scores.float().contiguous(), grids, src)


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
    """Heads of a partly trained model: anchors inside a GT predict a noisy version of it.

    Every anchor whose centre lies inside a GT box (the smallest one when several) gets DFL logits peaked
    near that box's true distances (Gaussian, noise 0.3 grid cells) and a class logit near +1 (sigmoid ~ 0.73) for the GT's
    class; all other class logits sit near -7 (sigmoid ~ 0.001), and other anchors predict small random boxes.
    """
    gen = torch.Generator().manual_seed(seed)
    bins = torch.arange(reg_max, dtype=torch.float32)
    levels = []
    for (h, w), s in zip(grids, strides):
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        pts = torch.stack((xs, ys), -1).view(-1, 2) * s  # [h*w, 2] px
        dist = torch.rand(batch, h * w, 4, generator=gen) * 2 + 0.5  # grid units
        logit = torch.randn(batch, h * w, nc, generator=gen) * 0.5 - 7.0
        for bi in range(batch):
            sel = np.nonzero(batch_idx == bi)[0]
            if sel.size == 0:
                continue
            boxes = torch.from_numpy(xyxy_px[sel]).float()  # [m, 4]
            inside = (pts[None, :, 0] > boxes[:, None, 0]) & (pts[None, :, 0] < boxes[:, None, 2])
            inside &= (pts[None, :, 1] > boxes[:, None, 1]) & (pts[None, :, 1] < boxes[:, None, 3])  # [m, h*w]
            area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None].expand_as(inside)
            area = torch.where(inside, area, torch.full_like(area, float("inf")))
            best = area.argmin(0)  # [h*w]
            hit = inside.any(0)
            gt = boxes[best]  # [h*w, 4]
            true = torch.cat((pts - gt[:, :2], gt[:, 2:] - pts), -1) / s
            noisy = true + torch.randn(h * w, 4, generator=gen) * 0.3
            dist[bi] = torch.where(hit[:, None], noisy, dist[bi])
            c = torch.from_numpy(cls[sel]).long()[best]
            boost = torch.randn(h * w, generator=gen) * 0.8 + 8.0
            logit[bi, torch.nonzero(hit).squeeze(1), c[hit]] += boost[hit]
        d = dist.clamp(0, reg_max - 1).unsqueeze(-1)  # [b, h*w, 4, 1]
        dfl = -((bins - d) ** 2) / (2 * 0.6**2) if reg_max > 1 else d  # [b, h*w, 4, reg_max]
        flat = torch.cat((dfl.reshape(batch, h * w, 4 * reg_max), logit), -1)  # [b, h*w, C]
        levels.append(flat.permute(0, 2, 1).reshape(batch, 4 * reg_max + nc, h, w).contiguous())
    return from_levels(levels, reg_max, f"synthetic partly-trained heads (seed {seed})")
