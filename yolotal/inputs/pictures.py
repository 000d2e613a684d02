"""The images behind label files, and ultralytics' letterbox onto the imgsz canvas.

An image is found next to its label file by ultralytics' layout (``.../labels/x.txt`` <-> ``.../images/x.jpg``)
or in the same directory. When one is used, its labels are mapped through the letterbox the trainer applies
(scale the long side to fit, keep the aspect ratio, pad with grey 114 centred), so that the printed numbers
and the picture describe the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .labels import Labels

# the image formats ultralytics reads (data/utils.py IMG_FORMATS), matched in any letter case
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".mpo", ".dng", ".jp2", ".avif",
                  ".heic", ".heif")
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Original (w0, h0) -> resized (new_w, new_h) at (left, top) on the (w, h) canvas, scale r."""

    w0: int
    h0: int
    new_w: int
    new_h: int
    left: int
    top: int
    r: float = 1.0

    @property
    def identity(self) -> bool:
        return self.left == 0 and self.top == 0 and (self.new_w, self.new_h) == (self.w0, self.h0)

    def describe(self, imgsz: tuple[int, int]) -> str:
        """One line: original size, scale, resized size and padding on the canvas."""
        return (f"{self.w0}×{self.h0} px, r = {self.r:.6g}, resized to {self.new_w}×{self.new_h}, padded left "
                f"{self.left} top {self.top} px on the {imgsz[1]}×{imgsz[0]} canvas")


def letterbox_for(w0: int, h0: int, imgsz: tuple[int, int]) -> Letterbox:
    """ultralytics' validation letterbox (LetterBox(auto=False, scaleup=True, center=True)).

    r = min(h/h0, w/w0); resized to (max(round(w0·r), 1), max(round(h0·r), 1)) (a thin image keeps one pixel
    per side, as ultralytics' LetterBox keeps it); the total padding dw, dh split with left = round(dw/2 − 0.1),
    top = round(dh/2 − 0.1).
    """
    h, w = imgsz
    r = min(h / h0, w / w0)
    new_w, new_h = max(int(round(w0 * r)), 1), max(int(round(h0 * r)), 1)
    dw, dh = (w - new_w) / 2, (h - new_h) / 2
    return Letterbox(w0, h0, new_w, new_h, int(round(dw - 0.1)), int(round(dh - 0.1)), r)


def _with_image_suffix(stem_path: Path) -> Path | None:
    """stem_path with the first image suffix (any letter case) that exists, else None."""
    directory = stem_path.parent
    if not directory.is_dir():
        return None
    want = stem_path.name
    found = {}
    try:
        for q in directory.iterdir():
            if q.stem == want and q.suffix.lower() in IMAGE_SUFFIXES and q.is_file():
                found[q.suffix.lower()] = q
    except OSError:
        return None
    for suf in IMAGE_SUFFIXES:
        if suf in found:
            return found[suf]
    return None


def image_candidates(label_file: str | Path, images_dir: str | Path | None = None) -> list[Path]:
    """Where the image of a label file is looked for (without suffix), in order.

    With ``images_dir``: ``images_dir/<stem>`` only. Else ultralytics' pairing: the last ``labels``
    component of the path replaced by ``images`` (``…/labels/train/x.txt`` -> ``…/images/train/x``), then
    ``x`` beside the label file.
    """
    p = Path(label_file)
    if images_dir is not None:
        return [Path(images_dir) / p.stem]
    parts = list(p.parts)
    out = []
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "labels":
            out.append(Path(*parts[:i], "images", *parts[i + 1 :]).with_suffix(""))
            break
    out.append(p.with_suffix(""))
    return out


def image_for_label(label_file: str | Path, images_dir: str | Path | None = None) -> Path | None:
    """The image of a label file (see :func:`image_candidates`), or None when there is none."""
    for c in image_candidates(label_file, images_dir):
        q = _with_image_suffix(c)
        if q is not None:
            return q
    return None


def _why(e: Exception) -> str:
    """The exception's class in brackets. A decoder plugin that failed to import while handling PIL's own error
    (ultralytics, once loaded, retries unidentified images with a HEIF plugin) is passed over for that error."""
    while isinstance(e, ImportError) and e.__context__ is not None:
        e = e.__context__
    return "" if isinstance(e, ImportError) else f" ({e.__class__.__name__})"


def image_size(path: str | Path) -> tuple[int, int]:
    """(w, h) of an image file as decoded upright (EXIF orientation applied), reading its header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                if im.getexif().get(274) in (5, 6, 7, 8):  # rotated by 90°: width and height swap
                    w, h = h, w
            except Exception:  # a damaged EXIF block: ultralytics ignores it too
                pass
            return w, h
    except FileNotFoundError:
        raise InputError("image file not found", str(path)) from None
    except Exception as e:  # PIL raises many types (and ultralytics, when loaded, patches Image.open)
        raise InputError(f"not a readable image{_why(e)}", str(path)) from None


def _decode_rgb(path: str | Path) -> np.ndarray:
    """(h, w, 3) uint8 RGB, upright (EXIF orientation applied), or InputError naming the file."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError("image file not found", str(path)) from None
    except Exception as e:  # PIL raises many types (and ultralytics, when loaded, patches Image.open)
        raise InputError(f"image does not decode{_why(e)}", str(path)) from None


def letterbox_array(rgb: np.ndarray, box: Letterbox, imgsz: tuple[int, int]) -> np.ndarray:
    """(h0, w0, 3) uint8 -> (h, w, 3) uint8: resized bilinearly (half-pixel centres, no antialiasing, like
    OpenCV's INTER_LINEAR) into the letterbox, on a grey-114 canvas."""
    import torch

    if (rgb.shape[1], rgb.shape[0]) != (box.w0, box.h0):
        raise ValueError(f"image is {rgb.shape[1]}×{rgb.shape[0]}, letterbox expects {box.w0}×{box.h0}")
    if (box.new_w, box.new_h) == (box.w0, box.h0):
        resized = rgb
    else:
        x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float()  # [1, 3, h0, w0]
        y = torch.nn.functional.interpolate(x, size=(box.new_h, box.new_w), mode="bilinear", align_corners=False)
        resized = y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    canvas = np.full((imgsz[0], imgsz[1], 3), PAD_VALUE, np.uint8)
    canvas[box.top : box.top + box.new_h, box.left : box.left + box.new_w] = resized
    return canvas


def load_letterboxed(path: str | Path, box: Letterbox, imgsz: tuple[int, int]) -> np.ndarray:
    """The image resized into the letterbox on a grey canvas: (h, w, 3) uint8."""
    return letterbox_array(_decode_rgb(path), box, imgsz)


def model_image(rgb: np.ndarray, box: Letterbox, imgsz: tuple[int, int]) -> np.ndarray:
    """What a model sees of one decoded image: letterboxed, RGB, float32 in [0, 1], (3, h, w)."""
    return letterbox_array(rgb, box, imgsz).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)


def model_input(paths: list[str | Path], boxes: list[Letterbox], imgsz: tuple[int, int]) -> np.ndarray:
    """The tensor a model sees: letterboxed images, RGB, float32 in [0, 1], (b, 3, h, w)."""
    out = np.empty((len(paths), 3, imgsz[0], imgsz[1]), np.float32)
    for i, (p, box) in enumerate(zip(paths, boxes)):
        out[i] = model_image(_decode_rgb(p), box, imgsz)
    return out


def apply_letterbox(labels: Labels, boxes: list[Letterbox | None], imgsz: tuple[int, int]) -> Labels:
    """Map each image's normalised labels through its letterbox (None = the image fills the canvas).

    In pixels of the canvas: x = xn·w0·r + left, y = yn·h0·r + top, w = wn·w0·r, h = hn·h0·r (the labels
    scaled by r and shifted by the padding); returned normalised by the canvas size, like the input.
    """
    h, w = imgsz
    xywhn = labels.xywhn.astype(np.float64)
    out = xywhn.copy()
    for i, lb in enumerate(boxes):
        if lb is None:
            continue
        sel = labels.batch_idx == i
        sx, sy = lb.w0 * lb.r, lb.h0 * lb.r
        out[sel, 0] = (xywhn[sel, 0] * sx + lb.left) / w
        out[sel, 1] = (xywhn[sel, 1] * sy + lb.top) / h
        out[sel, 2] = xywhn[sel, 2] * sx / w
        out[sel, 3] = xywhn[sel, 3] * sy / h
    segments = labels.segments
    if segments:  # polygons / OBB corners: every point through the same map
        segments = list(segments)
        for k, seg in enumerate(segments):
            lb = boxes[int(labels.batch_idx[k])] if int(labels.batch_idx[k]) < len(boxes) else None
            if seg is None or lb is None:
                continue
            pts = seg.astype(np.float64)
            segments[k] = np.stack(((pts[:, 0] * lb.w0 * lb.r + lb.left) / w,
                                    (pts[:, 1] * lb.h0 * lb.r + lb.top) / h), 1).astype(np.float32)
        segments = tuple(segments)
    kpts = labels.keypoints
    if kpts is not None and len(kpts):  # keypoint x, y through the map; visibility kept
        kpts = kpts.copy()
        for i, lb in enumerate(boxes):
            if lb is None:
                continue
            sel = labels.batch_idx == i
            kpts[sel, :, 0] = ((kpts[sel, :, 0].astype(np.float64) * lb.w0 * lb.r + lb.left) / w).astype(np.float32)
            kpts[sel, :, 1] = ((kpts[sel, :, 1].astype(np.float64) * lb.h0 * lb.r + lb.top) / h).astype(np.float32)
    return replace(labels, xywhn=out.astype(np.float32), segments=segments, keypoints=kpts)
