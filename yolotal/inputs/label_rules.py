"""One label file read by the rules of ultralytics' dataset check (8.4, ``data/utils.py`` ``verify_image_label``).

The rules, per task (``detect``, ``segment``, ``pose``, ``obb``), as yolotal implements them:

* text: UTF-8 with or without a byte-order mark; blank lines skipped; a row is its whitespace-separated
  tokens; numbers parsed as Python floats, then rounded to float32 (every check below is on float32 values).
* with a ``kpt_shape`` (K, D) and a task other than pose, a row of exactly 5 + K·D tokens keeps its first 5
  (the box of a pose row).
* any row of more than 6 tokens (not pose): the file is a polygon file. Every row is then ``cls x1 y1 x2 y2 ...``;
  its box is the polygon's extent (min and max of the points, then centre = (min + max) / 2 and size =
  max − min, in float32); the polygon is kept as (k, 2). A 5-token row in a polygon file, an odd number of
  coordinates or a row without points makes the file corrupt.
* otherwise every row is ``cls cx cy w h`` (pose: ``cls cx cy w h`` + K·D keypoint values); any other count
  makes the file corrupt.
* values: the checked coordinates (detect, segment, obb: cx cy w h of the box; pose: each keypoint's x and y)
  at most 1.01; every value (class, box, keypoints, visibility) at least −0.01, and w, h at least 0; the
  class an integer (``1.0`` is class 1, ``1.5`` is refused) below nc, unless ``single_cls`` (then any
  class id passes and every class becomes 0). NaN anywhere fails.
* repeated rows are dropped; when there are any, the remaining rows are in sorted order (numerically; a
  polygon file whose rows repeat a box compares class and points as raw float32 bytes).

A failure of any of these makes the whole file corrupt: the trainer skips its image. yolotal refuses on top
(ultralytics trains on these without a word): a polygon of fewer than 3 points (a zero-size box), and an
infinite value in a pose row's box or visibility (ultralytics checks neither for an upper bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("detect", "segment", "pose", "obb")
HI = np.float32(1.01)  # the largest coordinate accepted (float32, as the check compares)
LO = np.float32(-0.01)  # the smallest value accepted
POLYGON_NOTE = "polygon rows read as their bounding boxes, as ultralytics' segments2boxes makes them"
POSE_NOTE = "pose rows read as their boxes (keypoints not used by a {task} task), as ultralytics does"


@dataclass(frozen=True)
class LabelRules:
    """How to read label rows: the task, the class count, the keypoint shape (K, D) and single-class mode."""

    task: str = "detect"
    nc: int | None = None
    kpt_shape: tuple[int, int] | None = None
    single_cls: bool = False

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.kpt_shape is not None:
            object.__setattr__(self, "kpt_shape", (int(self.kpt_shape[0]), int(self.kpt_shape[1])))
        if self.task == "pose" and (self.kpt_shape is None or self.kpt_shape[0] <= 0 or self.kpt_shape[1] not in (2, 3)):
            raise ValueError(f"a pose task needs kpt_shape [K, 2 or 3] with K >= 1, got {self.kpt_shape}")

    @property
    def pose_columns(self) -> int:
        """5 + K·D: the tokens of a pose row (0 without kpt_shape)."""
        k, d = self.kpt_shape or (0, 0)
        return 5 + k * d if k else 0


@dataclass(frozen=True)
class Problem:
    """Why a file (line 0) or one of its rows is not read. ``corrupt``: the trainer skips the image for it;
    else the trainer would train on it and yolotal refuses it (its deliberate exceptions)."""

    line: int
    reason: str
    corrupt: bool = True


@dataclass(frozen=True)
class FileRead:
    """One label file as read.

    rows (n, 5) float32 cls cx cy w h in the trainer's order (class 0 everywhere with single_cls);
    lines (n,) int64 1-based line of each row; segments: per row its polygon (k, 2) float32 in a polygon
    file, else None; keypoints (n, K, 3) float32 for a pose task (x, y, visibility; for D = 2 the visibility
    is 0 where x or y < 0, else 1, as ultralytics adds it), else None; dropped: lines of repeated rows
    dropped; problems: empty when the file is read, else every reason found (line order).
    """

    rows: np.ndarray
    lines: np.ndarray
    segments: tuple[np.ndarray, ...] | None = None
    keypoints: np.ndarray | None = None
    dropped: tuple[int, ...] = ()
    problems: tuple[Problem, ...] = ()
    missing: bool = False
    pose_rows_as_boxes: int = 0  # pose rows whose keypoints were dropped (a non-pose task with kpt_shape)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def corrupt(self) -> bool:
        """The trainer skips this file's image (a problem it checks for)."""
        return any(p.corrupt for p in self.problems)

    @property
    def polygons(self) -> bool:
        return self.segments is not None and len(self.segments) > 0


def _empty(rules: LabelRules, **kw) -> FileRead:
    kp = np.zeros((0, rules.kpt_shape[0], 3), np.float32) if rules.task == "pose" else None
    return FileRead(np.zeros((0, 5), np.float32), np.zeros(0, np.int64), keypoints=kp, **kw)


def _number(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _not_numbers(tokens: list[str]) -> str:
    bad = next(t for t in tokens if _number(t) is None)
    return f"not a number: {bad!r}"


def value_problems(vals: np.ndarray, rules: LabelRules, what: str = "box") -> list[str]:
    """The reasons a ``cls cx cy w h`` row (float32 (5,)) fails the value rules (detect, segment, obb), [] if none.
    ``what`` names the box in messages ("box", or "polygon's box")."""
    out = []
    c = vals[0]
    with np.errstate(invalid="ignore"):
        whole = bool(c % 1 == 0)
    if not (c >= LO and whole) or (not rules.single_cls and rules.nc is not None and c >= rules.nc):
        rng = f"[0, {rules.nc})" if rules.nc is not None and not rules.single_cls else ">= 0"
        out.append(f"class id must be an integer {'in ' if '[' in rng else ''}{rng}, got {_g(c)}")
    for name, x in zip(("cx", "cy", "w", "h"), vals[1:5]):
        if math.isnan(x):
            out.append(f"NaN in the {what} ({name})")
        elif x > HI:
            out.append(f"{what} {name}={_g(x)} is above 1.01 (labels must be normalised; ultralytics allows up to 1.01)")
        elif name in ("w", "h") and x < 0:
            out.append(f"negative {what} size {name}={_g(x)}")
        elif x < LO:
            out.append(f"{what} {name}={_g(x)} is below -0.01 (labels must be normalised; ultralytics allows down to "
                       "-0.01)")
    return out


def _values_ok(rows: np.ndarray, rules: LabelRules) -> np.ndarray:
    """(n,) bool: the rows (n, 5) float32 that pass :func:`value_problems` (NaN fails every comparison)."""
    c = rows[:, 0]
    with np.errstate(invalid="ignore"):
        ok = (c >= LO) & (c % 1 == 0) & (rows[:, 1:] <= HI).all(1) & (rows[:, 1:3] >= LO).all(1)
        ok &= (rows[:, 3:5] >= 0).all(1)
        if not rules.single_cls and rules.nc is not None:
            ok &= c < rules.nc
    return ok


def _all_ok(rows: np.ndarray, rules: LabelRules) -> bool:
    """Whether every row (n, 5) float32 passes the value rules: a quick test of the whole file (the common case:
    nothing negative)."""
    c = rows[:, 0]
    with np.errstate(invalid="ignore"):
        if not (rows[:, 1:].max() <= HI and rows.min() >= 0 and not (c % 1).any()):
            return False
    return rules.single_cls or rules.nc is None or bool(c.max() < rules.nc)


def _pose_problems(vals: np.ndarray, rules: LabelRules) -> tuple[list[str], list[str]]:
    """(corrupt reasons, refused reasons) of one pose row, float32 (5 + K·D,)."""
    k, d = rules.kpt_shape
    corrupt, refused = [], []
    c = vals[0]
    if not (c >= LO and c % 1 == 0) or (not rules.single_cls and rules.nc is not None and c >= rules.nc):
        rng = f"in [0, {rules.nc})" if rules.nc is not None and not rules.single_cls else ">= 0"
        corrupt.append(f"class id must be an integer {rng}, got {_g(c)}")
    for name, x in zip(("cx", "cy", "w", "h"), vals[1:5]):
        if math.isnan(x):
            corrupt.append(f"NaN in the box ({name})")
        elif name in ("w", "h") and x < 0:
            corrupt.append(f"negative box size {name}={_g(x)}")
        elif x < LO:
            corrupt.append(f"box {name}={_g(x)} is below -0.01")
        elif math.isinf(x):
            refused.append(f"box {name} is infinite (ultralytics does not check a pose row's box for an upper bound)")
    kp = vals[5:].reshape(k, d)
    for j in range(k):
        for m, name in enumerate(("x", "y", "visibility")[:d]):
            x = kp[j, m]
            if math.isnan(x):
                corrupt.append(f"NaN in keypoint {j} ({name})")
            elif m < 2 and x > HI:
                corrupt.append(f"keypoint {j} {name}={_g(x)} is above 1.01 (labels must be normalised)")
            elif x < LO:
                corrupt.append(f"keypoint {j} {name}={_g(x)} is below -0.01")
            elif math.isinf(x):
                refused.append(f"keypoint {j} {name} is infinite (ultralytics does not check it for an upper bound)")
    return corrupt, refused


def _g(x) -> str:
    """A float32 value as written (shortest digits that read back to it; whole numbers without ".0")."""
    x = np.float32(x)
    return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e15 else str(x)


def polygon_box(points: np.ndarray) -> np.ndarray:
    """(k, 2) float32 points -> (4,) float32 cx cy w h: the extent of the points, min and max per axis, then
    centre (min + max) / 2 and size max − min, in float32 (NaN propagates)."""
    lo, hi = points.min(0), points.max(0)
    two = np.float32(2)
    return np.array([(lo[0] + hi[0]) / two, (lo[1] + hi[1]) / two, hi[0] - lo[0], hi[1] - lo[1]], np.float32)


def _dedupe_order(table: np.ndarray, segments: list[np.ndarray] | None) -> np.ndarray | None:
    """The kept row indices in the trainer's order when rows repeat, else None (file order unchanged).

    table (n, m) float32: equal rows (as numbers) repeat; in a polygon file rows whose box repeats are compared
    again by class and points as raw float32 bytes, and only a repeat there drops a row."""
    n = len(table)
    if n < 2 or len(set(map(tuple, table.tolist()))) == n:
        return None
    _, keep = np.unique(table, axis=0, return_index=True)
    if segments is not None:
        keys = [table[j, 0].tobytes() + segments[j].tobytes() for j in range(n)]
        order = sorted(range(n), key=lambda j: (keys[j], j))
        keep = np.array([j for i, j in enumerate(order) if i == 0 or keys[j] != keys[order[i - 1]]], np.int64)
    return keep if len(keep) < n else None


def read_label_text(text: str, rules: LabelRules) -> FileRead:
    """Read one label file's text (already decoded) by the rules above; never raises for bad content (and never
    warns: NaN, infinities and float32 overflow are values the rules judge)."""
    with np.errstate(all="ignore"):
        return _read_rows(text, rules)


def _read_rows(text: str, rules: LabelRules) -> FileRead:
    items = []
    for i, raw in enumerate(text.splitlines(), 1):
        t = raw.split()
        if t:
            items.append((i, t))
    if not items:
        return _empty(rules)
    pose = rules.task == "pose"
    kcols = rules.pose_columns
    truncated = 0
    if kcols and not pose:
        cut = []
        for i, t in items:
            if len(t) == kcols:
                t = t[:5]
                truncated += 1
            cut.append((i, t))
        items = cut
    polygon_file = not pose and any(len(t) > 6 for _, t in items)
    corrupt: list[Problem] = []
    refused: list[Problem] = []
    lines = np.array([i for i, _ in items], np.int64)
    segments: list[np.ndarray] | None = [] if polygon_file else None
    rows = np.zeros((len(items), 5), np.float32)
    table = rows
    if pose:
        table = np.zeros((len(items), kcols), np.float32)
    first_poly = next((j for j, u in items if len(u) > 6), 0)
    box_rows: list[int] = []
    box_vals: list[list[float]] = []
    for r, (i, t) in enumerate(items):
        if polygon_file:
            if len(t) == 5:
                corrupt.append(Problem(i, f"a 5-column box row in a file of polygon rows (line {first_poly}): "
                                          "ultralytics skips a file that mixes them"))
                segments.append(np.zeros((0, 2), np.float32))
                continue
            if len(t) % 2 == 0:
                corrupt.append(Problem(i, f"a polygon row is cls x1 y1 x2 y2 ...: {len(t) - 1} coordinates is not "
                                          "x, y pairs"))
                segments.append(np.zeros((0, 2), np.float32))
                continue
            if len(t) == 1:
                corrupt.append(Problem(i, "a polygon row without points"))
                segments.append(np.zeros((0, 2), np.float32))
                continue
            vals = [_number(x) for x in t]
            if None in vals:
                corrupt.append(Problem(i, _not_numbers(t)))
                segments.append(np.zeros((0, 2), np.float32))
                continue
            a = np.array(vals, np.float32)
            pts = a[1:].reshape(-1, 2)
            segments.append(pts)
            rows[r, 0] = a[0]
            rows[r, 1:] = polygon_box(pts)
            for why in value_problems(rows[r], rules, "polygon's box"):
                corrupt.append(Problem(i, why))
            if len(pts) < 3:
                refused.append(Problem(i, f"a polygon of {len(pts)} point{'s' if len(pts) > 1 else ''}: at least 3 "
                                          "are needed (ultralytics trains on it as a zero-size box)", corrupt=False))
            continue
        want = kcols if pose else 5
        if len(t) != want:
            if pose:
                k, d = rules.kpt_shape
                corrupt.append(Problem(i, f"expected {want} columns (cls cx cy w h + {k}×{d} keypoint values), "
                                          f"got {len(t)}"))
            else:
                corrupt.append(Problem(i, f"expected 5 columns (cls cx cy w h) or a polygon (cls x1 y1 x2 y2 x3 y3 "
                                          f"...), got {len(t)}"))
            continue
        try:
            vals = list(map(float, t))
        except ValueError:
            corrupt.append(Problem(i, _not_numbers(t)))
            continue
        if pose:
            table[r] = vals
            rows[r] = table[r, :5]
            bad, ref = _pose_problems(table[r], rules)
            corrupt += [Problem(i, why) for why in bad]
            refused += [Problem(i, why, corrupt=False) for why in ref]
        else:
            box_vals.append(vals)
            box_rows.append(r)
    if box_rows:  # the value rules at once, the reasons only for rows that fail them
        arr = np.array(box_vals, np.float32)
        if len(box_rows) == len(rows):
            rows = arr
        else:
            rows[box_rows] = arr
        if not _all_ok(arr, rules):
            for r in np.nonzero(~_values_ok(arr, rules))[0]:
                j = box_rows[r]
                corrupt += [Problem(items[j][0], why) for why in value_problems(rows[j], rules)]
            corrupt.sort(key=lambda p: p.line)
    if not pose:
        table = rows
    if rules.task in ("segment", "obb") and not polygon_file and not corrupt:
        shape = "cls x1 y1 x2 y2 x3 y3 x4 y4" if rules.task == "obb" else "cls x1 y1 x2 y2 x3 y3 ..."
        refused.append(Problem(int(lines[0]), f"a box row in {'an' if rules.task == 'obb' else 'a'} {rules.task} task: its rows are {shape} (ultralytics "
                                              "refuses a dataset whose boxes and polygons do not pair up)",
                               corrupt=False))
    if corrupt or refused:
        return _empty(rules, problems=tuple(sorted(corrupt + refused, key=lambda p: p.line)),
                      pose_rows_as_boxes=truncated)
    keep = _dedupe_order(table, segments)
    dropped: tuple[int, ...] = ()
    if keep is not None:
        dropped = tuple(int(x) for x in np.setdiff1d(lines, lines[keep]))
        rows, table, lines = rows[keep], table[keep], lines[keep]
        if segments is not None:
            segments = [segments[j] for j in keep]
    if rules.single_cls:
        rows = rows.copy()
        rows[:, 0] = 0
    kp = None
    if pose:
        k, d = rules.kpt_shape
        kp = table[:, 5:].reshape(-1, k, d)
        if d == 2:
            vis = np.where((kp[..., 0] < 0) | (kp[..., 1] < 0), 0.0, 1.0).astype(np.float32)
            kp = np.concatenate([kp, vis[..., None]], -1)
        kp = np.ascontiguousarray(kp, np.float32)
    return FileRead(rows, lines, tuple(segments) if segments is not None else None, kp, dropped,
                    pose_rows_as_boxes=truncated)


def decode_label_bytes(data: bytes) -> tuple[str | None, str]:
    """(text, "") or (None, reason): UTF-8 with or without a byte-order mark."""
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        if b"\x00" in data:
            return None, "not a text label file (binary data)"
        return None, "not a text label file (not UTF-8)"


def read_label_file(path: str | Path, rules: LabelRules) -> FileRead:
    """Read one label file (a missing one is a background image, ``missing``); never raises for its content."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _empty(rules, missing=True)
    except OSError as e:
        return _empty(rules, problems=(Problem(0, f"cannot read ({e.strerror or e.__class__.__name__})"),))
    text, why = decode_label_bytes(data)
    if text is None:
        return _empty(rules, problems=(Problem(0, why),))
    got = read_label_text(text, rules)
    if got.corrupt and "\x00" in text:
        return _empty(rules, problems=(Problem(0, "not a text label file (binary data)"),))
    return got


@dataclass
class ReadNotes:
    """What a run's reader says once (not per file): polygon rows read as boxes, pose rows read as boxes."""

    polygons: int = 0
    pose_rows: int = 0

    def add(self, got: FileRead, rules: LabelRules) -> None:
        if got.polygons and rules.task in ("detect", "pose"):
            self.polygons += len(got.segments)
        self.pose_rows += got.pose_rows_as_boxes

    def lines(self, rules: LabelRules) -> tuple[str, ...]:
        out = []
        if self.polygons:
            out.append(f"{self.polygons} {POLYGON_NOTE}")
        if self.pose_rows:
            out.append(f"{self.pose_rows} {POSE_NOTE.format(task=rules.task)}")
        return tuple(out)
