"""YOLO-format labels: one file per image, a directory of them, or a six-column batch file.

* image file:   ``cls cx cy w h`` per line, normalised; or polygon rows ``cls x1 y1 x2 y2 ...`` (read as their
                boxes, the polygon kept); or pose rows ``cls cx cy w h`` + keypoints (with ``kpt_shape``);
                an empty file is a background image.
* directory:    every ``*.txt`` inside, sorted by name; batch index = position in that order.
* batch file:   ``batch_idx cls cx cy w h`` per line, as in the seed walkthrough (``labels`` tensor).

* dataset YAML: an ultralytics dataset's split (``train`` by default), one image per label file; an image
  without a label file is a background image.

Every file is read by the rules of ultralytics' dataset check for the task (:mod:`yolotal.inputs.label_rules`):
float32 values, coordinates up to 1.01 and down to -0.01, integer-valued class ids, repeated rows dropped
(the rest then in its sorted order, with a warning naming the file and lines). A file the trainer would skip
as corrupt is an InputError naming the file and line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .label_rules import FileRead, LabelRules, ReadNotes, decode_label_bytes, read_label_file, value_problems


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
        keypoints: (n, K, 3) float32 normalised keypoints x, y, visibility, pose only; else None. For a
            kpt_shape (K, 2) the visibility is added as ultralytics adds it: 0 where x or y < 0, else 1.
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
    text, why = decode_label_bytes(data)
    if text is None:
        raise InputError(why, str(path))
    return text


def _raise_first(path: Path, got: FileRead) -> None:
    """InputError for a file's first problem (file-level first, then by line)."""
    if got.problems:
        p = got.problems[0]
        raise InputError(p.reason, str(path), p.line or None)


def _batch_rows(path: Path, text: str, rules: LabelRules) -> tuple[list[list[float]], list[int]] | None:
    """A six-column batch file's rows (``batch_idx cls cx cy w h``) and lines, or None when the text is not one
    (some row has another count): the box rules are those of a label file's rows."""
    items = [(i, raw.split()) for i, raw in enumerate(text.splitlines(), start=1)]
    items = [(i, t) for i, t in items if t]
    if not items or any(len(t) != 6 for _, t in items):
        return None
    rows, lines = [], []
    for i, parts in items:
        try:
            vals = [float(x) for x in parts]
        except ValueError:
            bad = next(x for x in parts if not is_float(x))
            raise InputError(f"not a number: {bad!r}", str(path), i) from None
        if not math.isfinite(vals[0]) or vals[0] < 0 or vals[0] != int(vals[0]):
            raise InputError(f"batch index must be an integer >= 0, got {parts[0]}", str(path), i)
        problems = value_problems(np.array(vals[1:], np.float32), rules)
        if problems:
            raise InputError(problems[0], str(path), i)
        rows.append([vals[0], float(np.float32(vals[1])) if not rules.single_cls else 0.0,
                     *np.array(vals[2:], np.float32).tolist()])
        lines.append(i)
    return rows, lines


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


def duplicate_warning(path: str | Path, dropped: tuple[int, ...]) -> str:
    """The warning for a file's dropped repeated rows (their lines)."""
    shown = ", ".join(str(ln) for ln in dropped[:10]) + (" …" if len(dropped) > 10 else "")
    return (f"{path}: {len(dropped)} duplicate label row(s) dropped (line(s) {shown}), as ultralytics does; "
            "the remaining rows are in its sorted order")


def is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def row_problem(c: float, cx: float, cy: float, w: float, h: float, nc: int | None) -> str:
    """Why a ``cls cx cy w h`` row is refused by ultralytics' rules (:mod:`yolotal.inputs.label_rules`), or ""."""
    why = value_problems(np.array([c, cx, cy, w, h], np.float32), LabelRules(nc=nc))
    return why[0] if why else ""


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


def load_labels(path: str | Path, nc: int | None = None, split: str | None = None, limit: int | None = None, *,
                task: str = "detect", kpt_shape: tuple[int, int] | None = None, single_cls: bool = False) -> Labels:
    """Read a label file, a directory of label files, a six-column batch file, or a dataset YAML's split
    (``split``, default train; its first ``limit`` images when given), by ultralytics' rules for ``task``
    (:mod:`yolotal.inputs.label_rules`). ``kpt_shape`` (K, D): keypoints per row (a dataset YAML's own when not
    given); ``single_cls``: every class becomes 0. A file the trainer would skip is an InputError naming it
    (and the line)."""
    p = Path(path)
    from .dataset import is_dataset_yaml

    try:
        rules = LabelRules(task, nc, tuple(kpt_shape) if kpt_shape is not None else None, single_cls)
    except ValueError as e:
        if not (is_dataset_yaml(p) and task == "pose" and kpt_shape is None):
            raise InputError(str(e), str(p)) from None
        rules = None  # the dataset YAML's kpt_shape decides
    if is_dataset_yaml(p):
        return _load_dataset(p, nc, split or "train", limit, task, kpt_shape, single_cls)
    if split is not None:
        raise InputError(f"--split {split}: applies to a dataset YAML only", str(p))
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".txt" and f.is_file())
        if not files:
            raise InputError("no *.txt label files in this directory", str(p))
        if limit and len(files) > limit:  # a model runs on a batch: the first ``limit`` files, said in a note
            lab = _load_files(files[:limit], rules)
            return replace(lab, notes=lab.notes + (
                f"{p}: the first {limit} of {len(files)} label files (--batch N for more; scan --model for all)",))
        return _load_files(files, rules)
    if not p.exists():
        raise InputError("label file not found", str(p))
    text = _read_text(p)
    batch = _batch_rows(p, text, rules) if rules.task == "detect" else None
    if batch is not None:
        r, lines = batch
        n = int(max(x[0] for x in r)) + 1
        return replace(_assemble(r, [(str(p), ln) for ln in lines], [f"{p.stem}[{i}]" for i in range(n)]),
                       task=rules.task)
    return _load_files([p], rules)


def _load_files(files: list[Path], rules: LabelRules, missing_ok: bool = False) -> Labels:
    """One image per label file, in the given order (batch index = position); with missing_ok, a label file
    that does not exist is a background image (a dataset's image without labels)."""
    rows, origin, images, warns = [], [], [], []
    segs: list[np.ndarray | None] = []
    kpts: list[np.ndarray] = []
    said = ReadNotes()
    for b, f in enumerate(files):
        got = read_label_file(f, rules)
        if got.missing:
            if not missing_ok:
                _read_text(f)  # the reason, named
            images.append(f.stem)
            continue
        if not got.ok and any(p.line == 0 for p in got.problems):
            _read_text(f)  # unreadable: its own message
        _raise_first(f, got)
        if got.dropped:
            warns.append(duplicate_warning(f, got.dropped))
        said.add(got, rules)
        rows += [[b, *x] for x in got.rows.tolist()]
        origin += [(str(f), int(ln)) for ln in got.lines]
        segs += list(got.segments) if got.segments is not None else [None] * len(got.rows)
        if got.keypoints is not None:
            kpts.append(got.keypoints)
        images.append(f.stem)
    lab = _assemble(rows, origin, images)
    kp = None
    if rules.task == "pose":
        kp = np.concatenate(kpts) if kpts else np.zeros((0, rules.kpt_shape[0], 3), np.float32)
    return replace(lab, files=tuple(str(f) for f in files), warnings=tuple(warns), notes=said.lines(rules),
                   task=rules.task, segments=tuple(segs) if any(s is not None for s in segs) else (), keypoints=kp)


def _load_dataset(p: Path, nc: int | None, split: str, limit: int | None, task: str,
                  kpt_shape: tuple[int, int] | None, single_cls: bool) -> Labels:
    from .dataset import dataset_labels, read_dataset

    ds = read_dataset(p)
    ls = dataset_labels(ds, (split,))
    total = len(ls.files)
    files = ls.files[:limit] if limit else ls.files
    try:
        rules = LabelRules(task, nc if nc is not None else ds.nc,
                           tuple(kpt_shape) if kpt_shape is not None else ds.kpt_shape, single_cls)
    except ValueError as e:
        raise InputError(str(e), str(p)) from None
    lab = _load_files(files, rules, missing_ok=True)
    names = ", ".join(ds.names[:5]) + (", …" if len(ds.names) > 5 else "") if ds.names else ""
    note = (f"dataset {p}: split {split!r}, {'the first ' + str(len(files)) + ' of ' if len(files) < total else ''}"
            f"{total} image(s)" + (f"; nc {ds.nc} ({names})" if ds.nc else ""))
    return replace(lab, names=tuple(ds.names or ()), notes=(note,) + lab.notes)


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
