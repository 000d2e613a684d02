"""ultralytics dataset YAMLs (``path``, ``train``, ``val``, ``test``, ``names``, ``nc``, ...): their splits' images
and label files, and their class names. Read the way ultralytics' ``check_det_dataset`` and dataset loader read
them, stricter in one way: a key ultralytics does not know (a typo such as ``trian:``) is an error.

A split is an image directory (searched recursively), a ``.txt`` file listing image paths, or a list of
either; each image's label file is found by ultralytics' rule (the last ``images`` path component becomes
``labels``, the suffix ``.txt``). An image without a label file is a background image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .pictures import IMAGE_SUFFIXES

SPLITS = ("train", "val", "test", "minival")
# every top-level key ultralytics 8.4 reads from a dataset YAML (data/utils.py check_det_dataset and
# DATASET_KEY_TYPES, the datasets shipped in cfg/datasets, the dataset classes); anything else is a typo
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


@dataclass
class LabelSet:
    """Label files of a dataset (one per image), the image of each where known, and its class names."""

    files: list[Path]  # label files (a missing file for an image is listed too: background)
    names: list[str] | None
    source: str
    splits: dict[str, int] = field(default_factory=dict)  # split -> number of files
    images: list[Path | None] = field(default_factory=list)  # per file: its image (dataset YAML), else None


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
    and for unknown keys."""
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
        if k not in KNOWN_KEYS:
            raise InputError(f"unknown dataset key {k!r} (known: {', '.join(KNOWN_KEYS)})", src, lines.get(str(k)))
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
    return Dataset(src, root, names, nc, splits)


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
    """The label files (and images) of the chosen splits (default: all), in split order."""
    files: list[Path] = []
    images: list[Path | None] = []
    counts: dict[str, int] = {}
    chosen = splits or tuple(s for s in SPLITS if s in ds.splits)
    for split in chosen:
        if split not in ds.splits:
            have = ", ".join(ds.splits) or "none"
            raise InputError(f"the dataset has no {split!r} split (it has: {have})", ds.source)
        n0 = len(files)
        for entry in ds.splits[split]:
            imgs = split_images(entry, ds.source)
            if imgs:
                files += [label_for_image(q) for q in imgs]
                images += imgs
            else:  # a directory of labels without images
                lab_dir = label_for_image(entry / "x.jpg").parent if entry.name == "images" else entry
                found = sorted(lab_dir.rglob("*.txt")) if lab_dir.is_dir() else []
                files += found
                images += [None] * len(found)
        counts[split] = len(files) - n0
    if not files:
        raise InputError(f"the dataset's {'/'.join(chosen)} split(s) hold no images or label files", ds.source)
    return LabelSet(files, ds.names, ds.source, counts, images)


def find_labels(data: str | Path, splits: tuple[str, ...] | None = None) -> LabelSet:
    """An ultralytics dataset YAML or a directory of label files (searched recursively)."""
    p = Path(data)
    if p.is_dir():
        files = sorted(p.rglob("*.txt"))
        if not files:
            raise InputError("no *.txt label files under this directory", str(p))
        return LabelSet(files, None, str(p), {"all": len(files)}, [None] * len(files))
    if not p.is_file():
        raise InputError("dataset not found (give a dataset YAML or a directory of label files)", str(p))
    return dataset_labels(read_dataset(p), splits)
