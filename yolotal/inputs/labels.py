"""YOLO-format labels: one file per image, a directory of them, or a six-column batch file.

* image file:   ``cls cx cy w h`` per line, normalised to [0, 1]; an empty file is a background image.
* directory:    every ``*.txt`` inside, sorted by name; batch index = position in that order.
* batch file:   ``batch_idx cls cx cy w h`` per line, as in the seed walkthrough (``labels`` tensor).

* dataset YAML: an ultralytics dataset's split (``train`` by default), one image per label file; an image
  without a label file is a background image.

Values are parsed to float32 like ultralytics' dataset loader does, which also drops a file's duplicate rows
(``np.unique``, keeping its sorted order): so does this reader, with a warning naming the file and lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Labels:
    """All labels of one batch.

    Attributes:
        batch_idx: (n,) int64 image index of each label.
        cls: (n,) int64 class id.
        xywhn: (n, 4) float32 normalised centre x, centre y, width, height.
        origin: n (file, line) pairs, where each label came from.
        images: names of the images (one per batch position), e.g. label file stems.
        files: the label file of each image, where there is one per image (empty for a batch file).
        names: class names (from a dataset YAML), else empty.
        warnings: what the reader changed (duplicate rows dropped), one line each.
        notes: how the labels were found (a dataset YAML's split), one line each.
        task: detect, segment, pose or obb: how the rows were read.
        segments: per label, its polygon (k, 2) float32 normalised (segment rows, OBB corners (4, 2)), or None
            where the row had none; empty tuple when no row had one.
        keypoints: (n, K, D) float32 normalised keypoints (D = 2 or 3, visibility last), pose only; else None.
    """

    batch_idx: np.ndarray
    cls: np.ndarray
    xywhn: np.ndarray
    origin: tuple[tuple[str, int], ...]
    images: tuple[str, ...]
    files: tuple[str | None, ...] = ()
    names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    task: str = "detect"
    segments: tuple = ()
    keypoints: np.ndarray | None = None

    @property
    def n_images(self) -> int:
        return len(self.images)

    def __len__(self) -> int:
        return int(self.cls.shape[0])


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("label file not found", str(path)) from None
    except IsADirectoryError:
        raise InputError("expected a label file, found a directory", str(path)) from None
    except OSError as e:
        raise InputError(f"cannot read label file ({e.strerror or e.__class__.__name__})", str(path)) from None
    if b"\x00" in data:
        raise InputError("not a text label file (binary data)", str(path))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not a text label file (not UTF-8)", str(path)) from None


def _parse_rows(path: Path, text: str, nc: int | None) -> tuple[list[list[float]], list[int], int | None]:
    """Return the numeric rows, their 1-based line numbers and their common column count (5 or 6)."""
    rows, lines, ncols = [], [], None
    for i, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) not in (5, 6):
            raise InputError(
                f"expected 5 columns (cls cx cy w h) or 6 (batch_idx cls cx cy w h), got {len(parts)}", str(path), i
            )
        if ncols is None:
            ncols = len(parts)
        elif len(parts) != ncols:
            raise InputError(f"expected {ncols} columns like the lines above, got {len(parts)}", str(path), i)
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not is_float(p))
            raise InputError(f"not a number: {bad!r}", str(path), i) from None
        problem = row_problem(*vals[-5:], nc)
        if problem:
            raise InputError(problem, str(path), i)
        if ncols == 6 and (vals[0] < 0 or vals[0] != int(vals[0])):
            raise InputError(f"batch index must be an integer >= 0, got {parts[0]}", str(path), i)
        rows.append(vals)
        lines.append(i)
    return rows, lines, ncols


def duplicate_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ultralytics' duplicate check on one file's (n, 5) float32 rows: (kept, dropped) indices, kept in the
    order ``np.unique(rows, axis=0, return_index=True)`` leaves them (sorted rows) when there are duplicates,
    else 0..n-1 unchanged; dropped: the later copies, in line order."""
    n = len(rows)
    if n < 2:
        return np.arange(n), np.zeros(0, np.int64)
    _, keep = np.unique(np.asarray(rows, np.float32), axis=0, return_index=True)
    if len(keep) == n:
        return np.arange(n), np.zeros(0, np.int64)
    return keep, np.setdiff1d(np.arange(n), keep)


def _dedupe(path: Path, rows: list[list[float]], lines: list[int]) -> tuple[list[list[float]], list[int], list[str]]:
    """Drop a 5-column file's duplicate rows as ultralytics does; a warning names the file and lines."""
    keep, dropped = duplicate_rows(np.array(rows, np.float32).reshape(-1, 5))
    if not dropped.size:
        return rows, lines, []
    shown = ", ".join(str(lines[i]) for i in dropped[:10]) + (" …" if dropped.size > 10 else "")
    why = (f"{path}: {dropped.size} duplicate label row(s) dropped (line(s) {shown}), as ultralytics does; "
           "the remaining rows are in its sorted order")
    return [rows[i] for i in keep], [lines[i] for i in keep], [why]


def is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def row_problem(c: float, cx: float, cy: float, w: float, h: float, nc: int | None) -> str:
    """Why a ``cls cx cy w h`` row is invalid, or "" (the checks every reader of labels applies)."""
    if not all(math.isfinite(v) for v in (c, cx, cy, w, h)):
        return "NaN or infinite value"
    if c != int(c) or c < 0 or (nc is not None and c >= nc):
        return f"class id must be an integer in {f'[0, {nc})' if nc is not None else '>= 0'}, got {c:g}"
    if w < 0 or h < 0:
        return f"negative box size w={w:g} h={h:g}"
    for name, x in (("cx", cx), ("cy", cy), ("w", w), ("h", h)):
        if not 0.0 <= x <= 1.0:
            return f"{name}={x:g} is outside [0, 1] (labels must be normalised)"
    return ""


def _assemble(rows: list[list[float]], origin: list[tuple[str, int]], images: list[str]) -> Labels:
    if rows:
        a = np.array(rows, dtype=np.float64)
        return Labels(
            batch_idx=a[:, 0].astype(np.int64),
            cls=a[:, 1].astype(np.int64),
            xywhn=a[:, 2:6].astype(np.float32),
            origin=tuple(origin),
            images=tuple(images),
        )
    return Labels(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32), (), tuple(images)
    )


def load_labels(path: str | Path, nc: int | None = None, split: str | None = None, limit: int | None = None) -> Labels:
    """Read a label file, a directory of label files, a six-column batch file, or a dataset YAML's split
    (``split``, default train; its first ``limit`` images when given)."""
    p = Path(path)
    from .dataset import is_dataset_yaml

    if is_dataset_yaml(p):
        return _load_dataset(p, nc, split or "train", limit)
    if split is not None:
        raise InputError(f"--split {split}: applies to a dataset YAML only", str(p))
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".txt" and f.is_file())
        if not files:
            raise InputError("no *.txt label files in this directory", str(p))
        if limit and len(files) > limit:  # a model runs on a batch: the first ``limit`` files, said in a note
            return replace(_load_files(files[:limit], nc), notes=(
                f"{p}: the first {limit} of {len(files)} label files (--batch N for more; scan --model for all)",))
        return _load_files(files, nc)
    if not p.exists():
        raise InputError("label file not found", str(p))
    r, lines, ncols = _parse_rows(p, _read_text(p), nc)
    if ncols == 6:
        n = int(max(x[0] for x in r)) + 1
        return _assemble(r, [(str(p), ln) for ln in lines], [f"{p.stem}[{i}]" for i in range(n)])
    r, lines, warns = _dedupe(p, r, lines)
    lab = _assemble([[0, *x] for x in r], [(str(p), ln) for ln in lines], [p.stem])
    return replace(lab, files=(str(p),), warnings=tuple(warns))


def _load_files(files: list[Path], nc: int | None, missing_ok: bool = False) -> Labels:
    """One image per label file, in the given order (batch index = position); with missing_ok, a label file
    that does not exist is a background image (a dataset's image without labels)."""
    rows, origin, images, warns = [], [], [], []
    for b, f in enumerate(files):
        if missing_ok and not f.exists():
            images.append(f.stem)
            continue
        r, lines, ncols = _parse_rows(f, _read_text(f), nc)
        if ncols == 6:
            raise InputError("a directory holds one label file per image (5 columns); found 6", str(f), lines[0])
        r, lines, w = _dedupe(f, r, lines)
        warns += w
        rows += [[b, *x] for x in r]
        origin += [(str(f), ln) for ln in lines]
        images.append(f.stem)
    return replace(_assemble(rows, origin, images), files=tuple(str(f) for f in files), warnings=tuple(warns))


def _load_dataset(p: Path, nc: int | None, split: str, limit: int | None) -> Labels:
    from .dataset import dataset_labels, read_dataset

    ds = read_dataset(p)
    ls = dataset_labels(ds, (split,))
    total = len(ls.files)
    files = ls.files[:limit] if limit else ls.files
    lab = _load_files(files, nc if nc is not None else ds.nc, missing_ok=True)
    names = ", ".join(ds.names[:5]) + (", …" if len(ds.names) > 5 else "") if ds.names else ""
    note = (f"dataset {p}: split {split!r}, {'the first ' + str(len(files)) + ' of ' if len(files) < total else ''}"
            f"{total} image(s)" + (f"; nc {ds.nc} ({names})" if ds.nc else ""))
    return replace(lab, names=tuple(ds.names or ()), notes=(note,))


def check_classes(labels: Labels, nc: int) -> None:
    """Raise for the first label whose class id is >= nc."""
    bad = np.nonzero(labels.cls >= nc)[0]
    if bad.size:
        f, ln = labels.origin[int(bad[0])]
        raise InputError(f"class id must be an integer in [0, {nc}), got {int(labels.cls[bad[0]])}", f, ln)


def with_batch(labels: Labels, batch: int) -> Labels:
    """Widen the batch to ``batch`` images (extra ones are background), or fail if labels need more."""
    over = np.nonzero(labels.batch_idx >= batch)[0]
    if over.size:
        f, ln = labels.origin[int(over[0])]
        raise InputError(f"batch index {int(labels.batch_idx[over[0]])} but the heads hold only {batch} images", f, ln)
    if labels.n_images > batch:
        raise InputError(
            f"the labels describe {labels.n_images} images but the heads hold only {batch}",
            labels.origin[0][0] if labels.origin else None,
        )
    extra = tuple(f"background[{i}]" for i in range(labels.n_images, batch))
    files = labels.files + (None,) * len(extra) if labels.files else ()
    return replace(labels, images=labels.images + extra, files=files)


def labels_from_array(rows: np.ndarray, n_images: int, source: str = "<array>") -> Labels:
    """Labels from an (n, 6) array of ``batch_idx cls cx cy w h`` rows (no validation: trusted input)."""
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    origin = [(source, i + 1) for i in range(len(rows))]
    lab = _assemble(rows.astype(np.float64).tolist(), origin, [f"{source}[{i}]" for i in range(n_images)])
    return Labels(lab.batch_idx, lab.cls, rows[:, 2:6].copy(), lab.origin, lab.images)


def no_labels() -> Labels:
    """One background image (for commands that need no labels)."""
    return _assemble([], [], ["background"])
