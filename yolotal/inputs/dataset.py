"""ultralytics dataset YAMLs (``path``, ``train``, ``val``, ``test``, ``names``, ``nc``, ...): their splits' images
and label files, and their class names. Read the way ultralytics' ``check_det_dataset`` and dataset loader read
them: keys it does not read (a Roboflow export's ``roboflow:`` block, ``license``, ...) are accepted as there,
except a near-miss of a key it reads (``trian:``, ``vall:``, ``nmes:``), which is an error with "did you mean".

A split is an image directory (searched recursively), a ``.txt`` file listing image paths, or a list of
either; each image's label file is found by ultralytics' rule (the last ``images`` path component becomes
``labels``, the suffix ``.txt``). An image without a label file is a background image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .pictures import IMAGE_SUFFIXES

SPLITS = ("train", "val", "test", "minival")
# every top-level key ultralytics 8.4 reads from a dataset YAML (data/utils.py check_det_dataset and
# DATASET_KEY_TYPES, the datasets shipped in cfg/datasets, the dataset classes); another key is ignored as
# there, unless it is one edit (or one swap of neighbours) away from one of these: then it is a typo
KNOWN_KEYS = (
    "path", "train", "val", "test", "minival", "validation", "names", "nc", "download", "yaml_file", "channels",
    "kpt_shape", "kpt_names", "flip_idx", "kpt_oks_sigmas", "masks_dir", "bg_class_idx", "label_mapping", "map",
    "depth_scale", "max_depth",
)


@dataclass
class Dataset:
    """A dataset YAML, resolved: root directory, class names, and each split's entries (absolute paths)."""

    source: str
    root: Path
    names: list[str] | None
    nc: int | None
    splits: dict[str, list[Path]] = field(default_factory=dict)
    kpt_shape: tuple[int, int] | None = None  # keypoints per pose row (K, D)
    flip_idx: list[int] | None = None  # keypoint order of a left-right flip
    kpt_oks_sigmas: list[float] | None = None  # per-keypoint OKS sigmas (pose metrics)
    extra: dict = field(default_factory=dict)  # keys ultralytics does not read (kept, not used)


@dataclass
class LabelSet:
    """Label files of a dataset (one per image), the image of each where known, and its class names."""

    files: list[Path]  # label files (a missing file for an image is listed too: background)
    names: list[str] | None
    source: str
    splits: dict[str, int] = field(default_factory=dict)  # split -> number of its files
    images: list[Path | None] = field(default_factory=list)  # per file: its image (dataset YAML), else None
    file_splits: list[tuple[str, ...]] = field(default_factory=list)  # per file: the splits listing it
    kpt_shape: tuple[int, int] | None = None  # a dataset YAML's kpt_shape

    @property
    def shared(self) -> int:
        """Files listed by more than one split (each is read and counted once)."""
        return sum(len(s) > 1 for s in self.file_splits)


def is_dataset_yaml(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".yaml", ".yml") and Path(path).is_file()


def _key_lines(text: str) -> dict[str, int]:
    """Top-level key -> 1-based line, for messages."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def read_dataset(path: str | Path) -> Dataset:
    """Parse and check a dataset YAML; InputError naming the file (and line) for anything ultralytics rejects,
    and for a key that is a near-miss of a known one ("did you mean")."""
    import yaml

    p = Path(path)
    src = str(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
        raw = yaml.safe_load(text)
    except FileNotFoundError:
        raise InputError("dataset YAML not found", src) from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"broken YAML: {getattr(e, 'problem', None) or 'invalid YAML'}", src,
                         mark.line + 1 if mark is not None else None) from None
    if not isinstance(raw, dict):
        raise InputError("a dataset YAML is a mapping with 'train' and/or 'val' (and 'path', 'names')", src)
    lines = _key_lines(text)
    for k in raw:
        meant = near_miss(str(k))
        if meant:
            raise InputError(f"unknown dataset key {k!r}: did you mean {meant!r}?", src, lines.get(str(k)))
    if "val" not in raw and "validation" in raw:  # ultralytics renames it, with a warning
        raw["val"] = raw.pop("validation")
    if not any(raw.get(k) for k in SPLITS):
        raise InputError("a dataset YAML needs 'train' and/or 'val' (and 'path', 'names')", src)
    for key, types, what in (("path", (str,), "a string"), ("names", (list, dict), "a list or a mapping")) + tuple(
            (k, (str, list), "a string or a list") for k in SPLITS):
        if raw.get(key) is not None and not isinstance(raw[key], types):
            raise InputError(f"{key}: expected {what}, got {raw[key]!r}", src, lines.get(key))
    names = raw.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            ids = None
        if ids != list(range(len(names))):  # ultralytics' check_class_names refuses gaps too
            raise InputError(f"names: a {len(names)}-class mapping needs the class ids 0-{len(names) - 1}, got "
                             f"{sorted(names, key=str)}", src, lines.get("names"))
        names = [str(names[k]) for k in sorted(names, key=int)]
    elif isinstance(names, list):
        names = [str(x) for x in names]
    nc = raw.get("nc")
    if nc is not None:
        try:
            if float(nc) != int(float(nc)) or int(float(nc)) < 1:
                raise ValueError
            nc = int(float(nc))
        except (TypeError, ValueError):
            raise InputError(f"nc: must be an integer >= 1, got {nc!r}", src, lines.get("nc")) from None
    if names is not None and nc is not None and len(names) != nc:
        raise InputError(f"'names' length {len(names)} and 'nc: {nc}' must match", src, lines.get("nc"))
    if names is not None:
        nc = len(names)
    root = _root(raw.get("path"), p)
    splits: dict[str, list[Path]] = {}
    for split in SPLITS:
        entries = raw.get(split)
        if not entries:
            continue
        out = []
        for e in entries if isinstance(entries, list) else [entries]:
            ep = Path(str(e))
            x = ep if ep.is_absolute() else root / ep
            if not x.exists() and str(e).startswith("../"):  # ultralytics' fallback
                x = root / str(e)[3:]
            out.append(x)
        splits[split] = out
    kpt_shape = raw.get("kpt_shape")
    if kpt_shape is not None:
        if (not isinstance(kpt_shape, (list, tuple)) or len(kpt_shape) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in kpt_shape)):
            raise InputError(f"kpt_shape: expected [number of keypoints, 2 or 3], got {kpt_shape!r}", src,
                             lines.get("kpt_shape"))
        kpt_shape = (int(kpt_shape[0]), int(kpt_shape[1]))
    for key in ("flip_idx", "kpt_oks_sigmas"):
        v = raw.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)):
            raise InputError(f"{key}: expected a list of numbers, got {v!r}", src, lines.get(key))
    extra = {k: v for k, v in raw.items() if k not in KNOWN_KEYS}
    return Dataset(src, root, names, nc, splits, kpt_shape, raw.get("flip_idx"),
                   [float(x) for x in raw["kpt_oks_sigmas"]] if raw.get("kpt_oks_sigmas") is not None else None,
                   extra)


def _swap_distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, or swap of neighbours) from a to b (optimal string alignment)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


# words that exports write as keys of their own although one edit from a known key
NOT_TYPOS = ("name", "text")


def near_miss(key: str) -> str | None:
    """The known key that ``key`` is a typo of (one edit or swap away, letter case aside; known keys of 3 or more
    letters), or None."""
    if key in KNOWN_KEYS or key in NOT_TYPOS:
        return None
    low = key.lower()
    for k in KNOWN_KEYS:
        if len(k) >= 3 and (low == k or _swap_distance(low, k) <= 1):
            return k
    return None


def _root(path: str | None, yaml_file: Path) -> Path:
    """The dataset root: ``path`` (absolute; relative: to the working directory, as ultralytics, else to the
    YAML's directory), or the YAML's directory when there is no ``path``."""
    if not path:
        return yaml_file.parent
    r = Path(path)
    if r.is_absolute() or r.exists():
        return r
    return yaml_file.parent / r


def label_for_image(img: Path) -> Path:
    """ultralytics' rule: the last ``images`` path component becomes ``labels``, the suffix ``.txt``."""
    parts = list(img.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def split_images(entry: Path, src: str) -> list[Path]:
    """The images of one split entry: a directory (recursive), or a .txt list of image paths (``./x`` and other
    relative paths taken from the list's directory), sorted like ultralytics; only image suffixes count."""
    if entry.is_file() and entry.suffix == ".txt":
        base = entry.parent
        out = []
        for ln in entry.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            ln = ln.strip()
            if ln:
                q = Path(ln)
                out.append(q if q.is_absolute() else base / q)
        return sorted(q for q in out if q.suffix.lower() in IMAGE_SUFFIXES)
    if not entry.is_dir():
        raise InputError(f"dataset split not found: {entry}", src)
    return sorted(q for q in entry.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())


def dataset_labels(ds: Dataset, splits: tuple[str, ...] | None = None) -> LabelSet:
    """The label files (and images) of the chosen splits (default: all), in split order. A file listed by more
    than one split (train and val the same folder) is listed once, with every split that lists it."""
    files: list[Path] = []
    images: list[Path | None] = []
    where: list[list[str]] = []
    seen: dict[str, int] = {}
    counts: dict[str, int] = {}
    chosen = splits or tuple(s for s in SPLITS if s in ds.splits)
    for split in chosen:
        if split not in ds.splits:
            have = ", ".join(ds.splits) or "none"
            raise InputError(f"the dataset has no {split!r} split (it has: {have})", ds.source)
        found_f: list[Path] = []
        found_i: list[Path | None] = []
        for entry in ds.splits[split]:
            imgs = split_images(entry, ds.source)
            if imgs:
                found_f += [label_for_image(q) for q in imgs]
                found_i += imgs
            else:  # a directory of labels without images
                lab_dir = label_for_image(entry / "x.jpg").parent if entry.name == "images" else entry
                found = sorted(lab_dir.rglob("*.txt")) if lab_dir.is_dir() else []
                found_f += found
                found_i += [None] * len(found)
        n = 0
        for f, im in zip(found_f, found_i):
            key = os.path.normpath(os.path.abspath(f))
            if key in seen:
                if split not in where[seen[key]]:
                    where[seen[key]].append(split)
                    n += 1
                continue
            seen[key] = len(files)
            files.append(f)
            images.append(im)
            where.append([split])
            n += 1
        counts[split] = n
    if not files:
        raise InputError(f"the dataset's {'/'.join(chosen)} split(s) hold no images or label files", ds.source)
    return LabelSet(files, ds.names, ds.source, counts, images, [tuple(w) for w in where], ds.kpt_shape)


def find_labels(data: str | Path, splits: tuple[str, ...] | None = None) -> LabelSet:
    """An ultralytics dataset YAML or a directory of label files (searched recursively)."""
    p = Path(data)
    if p.is_dir():
        files = sorted(p.rglob("*.txt"))
        if not files:
            raise InputError("no *.txt label files under this directory", str(p))
        return LabelSet(files, None, str(p), {"all": len(files)}, [None] * len(files), [("all",)] * len(files))
    if not p.is_file():
        raise InputError("dataset not found (give a dataset YAML or a directory of label files)", str(p))
    return dataset_labels(read_dataset(p), splits)
