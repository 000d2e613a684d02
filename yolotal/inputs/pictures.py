"""The images behind label files, and ultralytics' letterbox onto the imgsz canvas.

An image is found next to its label file by ultralytics' layout (``.../labels/x.txt`` <-> ``.../images/x.jpg``)
or in the same directory. When one is used, its labels are mapped through the letterbox the trainer applies
(scale the long side to fit, keep the aspect ratio, pad with grey 114 centred), so that the printed numbers
and the picture describe the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .labels import Labels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Original (w0, h0) -> resized (new_w, new_h) at (left, top) on the (w, h) canvas."""

    w0: int
    h0: int
    new_w: int
    new_h: int
    left: int
    top: int

    @property
    def identity(self) -> bool:
        return self.left == 0 and self.top == 0 and (self.new_w, self.new_h) == (self.w0, self.h0)


def letterbox_for(w0: int, h0: int, imgsz: tuple[int, int]) -> Letterbox:
    """ultralytics LetterBox(auto=False, scaleup=True, center=True) geometry."""
    h, w = imgsz
    r = min(h / h0, w / w0)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = (w - new_w) / 2, (h - new_h) / 2
    return Letterbox(w0, h0, new_w, new_h, int(round(dw - 0.1)), int(round(dh - 0.1)))


def image_for_label(label_file: str | Path) -> Path | None:
    """``labels/x.txt`` -> ``images/x.<ext>`` (the last ``labels`` component), else ``x.<ext>`` beside it."""
    p = Path(label_file)
    parts = list(p.parts)
    candidates = []
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "labels":
            candidates.append(Path(*parts[:i], "images", *parts[i + 1 :]))
            break
    candidates.append(p)
    for c in candidates:
        for suf in IMAGE_SUFFIXES:
            q = c.with_suffix(suf)
            if q.is_file():
                return q
    return None


def image_size(path: str | Path) -> tuple[int, int]:
    """(w, h) of an image file, reading its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise InputError("image file not found", str(path)) from None
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"not a readable image ({e.__class__.__name__})", str(path)) from None


def load_letterboxed(path: str | Path, box: Letterbox, imgsz: tuple[int, int]) -> np.ndarray:
    """The image resized into the letterbox on a grey canvas: (h, w, 3) uint8."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((box.new_w, box.new_h), Image.BILINEAR)
    canvas = np.full((imgsz[0], imgsz[1], 3), PAD_VALUE, np.uint8)
    canvas[box.top : box.top + box.new_h, box.left : box.left + box.new_w] = np.asarray(rgb)
    return canvas


def apply_letterbox(labels: Labels, boxes: list[Letterbox | None], imgsz: tuple[int, int]) -> Labels:
    """Map each image's normalised labels through its letterbox (None = the image fills the canvas)."""
    h, w = imgsz
    xywhn = labels.xywhn.copy()
    for i, lb in enumerate(boxes):
        if lb is None or lb.identity:
            continue
        sel = labels.batch_idx == i
        xywhn[sel, 0] = (labels.xywhn[sel, 0] * lb.new_w + lb.left) / w
        xywhn[sel, 1] = (labels.xywhn[sel, 1] * lb.new_h + lb.top) / h
        xywhn[sel, 2] = labels.xywhn[sel, 2] * lb.new_w / w
        xywhn[sel, 3] = labels.xywhn[sel, 3] * lb.new_h / h
    return Labels(labels.batch_idx, labels.cls, xywhn.astype(np.float32), labels.origin, labels.images, labels.files)
