"""Segmentation head outputs: mask coefficients and prototypes (``Heads.extra``), synthetic or from a file.

Keys (in ``Heads.extra`` and in a ``--heads`` .npz next to ``level0, level1, ...``):

* ``mask_coef`` (b, nm, A) float32: each anchor's mask coefficients, levels flattened in stride order like
  ``Heads.boxes`` (ultralytics' ``mask_coefficient``);
* ``protos`` (b, nm, mh, mw) float32: the prototype masks, (imgsz / 4) at the default mask ratio
  (160 x 160 at 640; ultralytics' ``proto``);
* ``semantic`` (b, nc, h, w) float32, optional: the semantic-segmentation logits a YOLO26-seg model returns
  while training (stride 8, 80 x 80 at 640); only the loss's semantic term reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .heads import Heads

SEG_KEYS = ("mask_coef", "protos", "semantic")
DEFAULT_NM = 32
TRAINED_COEF_NOISE = 0.3  # "trained" heads: noise of an owned anchor's coefficients ...
TRAINED_PROTO_NOISE = 0.3  # ... and of the prototypes


def check_seg_extra(extra: dict, heads: Heads, proto_size: tuple[int, int] | None, source: str) -> dict:
    """Validate mask coefficients / prototypes (/ semantic logits) against the heads; returns them as float32.

    proto_size: the (mh, mw) the labels' GT masks have (imgsz // mask ratio), or None to skip that check.
    """
    if "mask_coef" not in extra or "protos" not in extra:
        missing = [k for k in ("mask_coef", "protos") if k not in extra]
        raise InputError(f"segmentation heads need 'mask_coef' and 'protos'; missing {missing}", source)
    coef, protos = torch.as_tensor(extra["mask_coef"]), torch.as_tensor(extra["protos"])
    b, a = heads.batch, int(heads.boxes.shape[2])
    if coef.ndim != 3 or coef.shape[0] != b or coef.shape[2] != a:
        raise InputError(f"'mask_coef' has shape {tuple(coef.shape)}, expected (b, nm, A) = ({b}, nm, {a})", source)
    nm = int(coef.shape[1])
    if protos.ndim != 4 or protos.shape[0] != b or protos.shape[1] != nm:
        raise InputError(f"'protos' has shape {tuple(protos.shape)}, expected (b, nm, mh, mw) = ({b}, {nm}, mh, mw)",
                         source)
    if proto_size is not None and tuple(protos.shape[2:]) != tuple(proto_size):
        raise InputError(f"'protos' are {tuple(protos.shape[2:])} pixels, the GT masks {tuple(proto_size)} "
                         "(imgsz / mask ratio)", source)
    out = {"mask_coef": coef.float().contiguous(), "protos": protos.float().contiguous()}
    for k, v in out.items():
        if not torch.isfinite(v).all():
            raise InputError(f"'{k}' contains NaN or infinite values", source)
    if "semantic" in extra:
        sem = torch.as_tensor(extra["semantic"])
        if sem.ndim != 4 or sem.shape[0] != b or sem.shape[1] != heads.nc:
            raise InputError(f"'semantic' has shape {tuple(sem.shape)}, expected (b, nc, h, w) = ({b}, {heads.nc}, h, w)",
                             source)
        out["semantic"] = sem.float().contiguous()
    return out


def read_seg_extra(path: str | Path) -> dict[str, np.ndarray]:
    """The segmentation arrays (``mask_coef``, ``protos``, ``semantic``) of a heads .npz (those present)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in SEG_KEYS if k in z.files}
    except FileNotFoundError:
        raise InputError("heads file not found", str(p)) from None
    except Exception as e:
        raise InputError(f"corrupt .npz file ({e.__class__.__name__})", str(p)) from None


def synthetic_seg_randn(heads: Heads, proto_size: tuple[int, int], seed: int, nm: int = DEFAULT_NM) -> dict:
    """Untrained seg heads: ``torch.randn`` coefficients (b, nm, A), then prototypes (b, nm, mh, mw), one
    generator seeded with ``seed + 1`` (so they do not repeat the box/class draws of the same seed)."""
    gen = torch.Generator().manual_seed(seed + 1)
    b, a = heads.batch, int(heads.boxes.shape[2])
    coef = torch.randn(b, nm, a, generator=gen)
    protos = torch.randn(b, nm, *proto_size, generator=gen)
    return {"mask_coef": coef, "protos": protos}


def anchor_owners(anc_px: torch.Tensor, gt_bboxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(A, 2) anchor centres px, (b, M, 4) px xyxy, (b, M) bool -> (b, A) int64: the smallest valid GT box
    holding the anchor centre strictly inside (ties: the lower slot), -1 for none."""
    x, y = anc_px[:, 0], anc_px[:, 1]
    g = gt_bboxes[..., None, :]  # (b, M, 1, 4)
    inside = (x > g[..., 0]) & (y > g[..., 1]) & (x < g[..., 2]) & (y < g[..., 3]) & valid[..., None]  # (b, M, A)
    area = ((gt_bboxes[..., 2] - gt_bboxes[..., 0]) * (gt_bboxes[..., 3] - gt_bboxes[..., 1]))[..., None]
    key = torch.where(inside, area, torch.full_like(area, float("inf")))
    if key.shape[1] == 0:
        return torch.full((gt_bboxes.shape[0], anc_px.shape[0]), -1, dtype=torch.int64)
    best = key.argmin(1)  # (b, A) first minimum
    return torch.where(inside.any(1), best, torch.full_like(best, -1))


def synthetic_seg_trained(heads: Heads, gt_masks: torch.Tensor, owners: torch.Tensor, seed: int,
                          nm: int = DEFAULT_NM) -> dict:
    """Seg heads of a partly trained model whose predicted masks are near the GT masks.

    gt_masks (b, M, mh, mw) bool at prototype resolution; owners (b, A) the GT each anchor lies in (-1: none,
    see :func:`anchor_owners`). Prototype 0 is +1 on every GT mask of the image and -1 elsewhere; an owned
    anchor's coefficients are (1, noise...), so its mask (cropped to its box) is the GT mask up to the noise
    of the other 31 prototypes (a few % of pixels flip); unowned anchors get random coefficients.
    """
    gen = torch.Generator().manual_seed(seed + 2)
    b, m, mh, mw = gt_masks.shape
    a = owners.shape[1]
    union = gt_masks.any(1).float() if m else torch.zeros(b, mh, mw)  # (b, mh, mw)
    protos = torch.randn(b, nm, mh, mw, generator=gen) * TRAINED_PROTO_NOISE
    protos[:, 0] += 2 * union - 1
    coef = torch.randn(b, nm, a, generator=gen)
    owned = owners >= 0  # (b, A)
    noise = torch.randn(b, nm, a, generator=gen) * TRAINED_COEF_NOISE
    trained = noise.clone()
    trained[:, 0] = 1.0
    coef = torch.where(owned[:, None, :], trained, coef)
    return {"mask_coef": coef, "protos": protos}


def seg_extra_from_output(preds: dict, branch: str = "one2many") -> dict:
    """The seg arrays of an ultralytics 8.4 -seg model's training-mode output.

    preds: the dict a Segment / Segment26 head returns while training (``mask_coefficient`` (b, nm, A),
    ``proto`` (b, nm, mh, mw) or, for YOLO26-seg, a tuple (protos, semantic logits)); an end-to-end model's
    ``{"one2many": {...}, "one2one": {...}}`` is read from ``branch`` (both branches share the prototypes).
    Returns ``Heads.extra`` entries: mask_coef, protos (and semantic).
    """
    if branch in preds and isinstance(preds[branch], dict):
        preds = preds[branch]
    if "mask_coefficient" not in preds or "proto" not in preds:
        raise InputError("model output has no 'mask_coefficient' / 'proto': not a segmentation model", "model")
    proto = preds["proto"]
    out = {"mask_coef": preds["mask_coefficient"].detach().float()}
    if isinstance(proto, (tuple, list)):
        out["protos"] = proto[0].detach().float()
        if len(proto) > 1 and proto[1] is not None:
            out["semantic"] = proto[1].detach().float()
    else:
        out["protos"] = proto.detach().float()
    return out
