"""YAML config -> typed, validated :class:`Config` with ultralytics 8.4 training defaults.

Every key is optional. Unknown keys and wrong types raise :class:`InputError` naming the key, e.g.
``configs/x.yaml: assigner.topk: expected an integer >= 1, got 'ten'``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import profiles as _profiles
from .errors import InputError

PROFILES = _profiles.NAMES  # of the task-aligned assigners (see yolotal.profiles; aliases and auto resolve to these)


def _family(name: str):
    """The registered assigner family (its profiles, default profile and topk live in its module)."""
    from .assigners import registry

    return registry.get(name)


def _assigner_names() -> tuple[str, ...]:
    from .assigners import registry

    return registry.names()
YOLOV5_ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
HEAD_KINDS = ("randn", "trained")


@dataclass(frozen=True)
class AssignerConfig:
    """Assigner hyper-parameters (ultralytics v8DetectionLoss values for TAL).

    name: tal (one-to-many TAL), tal-o2o (YOLO26's one-to-one head: topk 7, topk2 1), simota (YOLOX),
    atss (YOLOv6 / mmyolo BatchATSSAssigner), yolov5 (static anchor matching). profile and topk default
    by name (each family declares its own: yolotal/assigners/registry.py); topk is ATSS's candidates per level and SimOTA's IoUs summed for dynamic k.
    """

    name: str = "tal"
    profile: str | None = None  # tal: see yolotal.profiles (None/auto: newest, or the checkpoint's); simota: yolox...
    topk: int | None = None
    topk2: int | None = None  # None = topk (no second filter); 8.4 profiles only (tal-o2o: 1)
    alpha: float = 0.5
    beta: float = 6.0
    eps: float = 1e-9
    anchors: tuple[tuple[float, ...], ...] = YOLOV5_ANCHORS  # yolov5: w,h pairs in px per level
    anchor_t: float = 4.0  # yolov5: largest allowed w/h ratio between GT and anchor
    profile_auto: bool = False  # set by finalize (not a config key): the TAL profile was not chosen by name

    @property
    def is_tal(self) -> bool:
        """A task-aligned assigner (topk2, alpha, beta, the TAL profiles), as its family declares."""
        return _family(self.name).task_aligned


@dataclass(frozen=True)
class LossConfig:
    """Loss gains: ultralytics' hyp.box / hyp.cls / hyp.dfl (tal, tal-o2o, atss), and YOLOv5's hyp.box / obj / cls
    for the yolov5 assigner's loss (hyp.scratch-low.yaml values)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    v5_box: float = 0.05
    v5_obj: float = 1.0
    v5_cls: float = 0.5


@dataclass(frozen=True)
class HeadsConfig:
    """Synthetic detection-head outputs, used when no ``--heads`` file is given.

    kind: ``randn`` draws every level with ``torch.randn`` after ``torch.manual_seed(seed)`` (like the seed
    walkthrough); ``trained`` builds heads whose boxes and scores sit near the labels (a partly trained model).
    batch: images in the batch; None = as many as the labels describe.
    """

    seed: int = 0
    kind: str = "randn"
    batch: int | None = None


@dataclass(frozen=True)
class KeypointConfig:
    """Pose runs: the dataset's (or model's) keypoints. Not a config-file key: set from the model, the dataset YAML
    or a ``--save-heads`` file.

    shape: kpt_shape (K, D), None outside pose runs; oks_sigmas: the dataset YAML's kpt_oks_sigmas (None: the
    trainer's default, COCO's for [17, 3], else 1/K); flip_idx: its flip_idx; source: where shape came from.
    """

    shape: tuple[int, int] | None = None
    oks_sigmas: tuple[float, ...] | None = None
    flip_idx: tuple[int, ...] | None = None
    source: str = ""


@dataclass(frozen=True)
class Config:
    imgsz: tuple[int, int] = (640, 640)  # (h, w) pixels
    strides: tuple[int, ...] = (8, 16, 32)
    nc: int | None = None  # None = 80, or inferred from a heads file's channels
    reg_max: int = 16
    assigner: AssignerConfig = field(default_factory=AssignerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    dense_budget_mb: int = 512  # above this, the (b, M, A) display tensors are not built (see pipeline.run)
    single_cls: bool = False  # every label's class becomes 0 (ultralytics' single_cls; any class id accepted)
    overlap_mask: bool = True  # segment runs: one index image per picture, smaller masks on top (ultralytics' overlap_mask)
    keypoints: KeypointConfig = field(default_factory=KeypointConfig)  # pose runs only
    warnings: tuple[str, ...] = ()  # things the user should see (e.g. imgsz rounded up)

    @property
    def num_classes(self) -> int:
        return 80 if self.nc is None else self.nc

    @property
    def loss_profile(self) -> str:
        """Which ultralytics loss variant applies (L1 term for reg_max 1): the TAL profile, else 8.4's."""
        return self.assigner.profile if self.assigner.is_tal else "ultralytics"

    @property
    def stride_val(self) -> float:
        """ultralytics 8.4: the size small GT sides are enlarged to for candidate selection (strides[1])."""
        return float(self.strides[1] if len(self.strides) > 1 else self.strides[0])

    @property
    def enlargement(self) -> tuple[float, float] | None:
        """(GT sides below this, are enlarged to this) px under the TAL profile, or None (no enlargement)."""
        if not self.assigner.is_tal:
            return None
        return _profiles.enlargement(self.assigner.profile, self.strides)

    @property
    def grids(self) -> list[tuple[int, int]]:
        """(h, w) of each level's grid."""
        return [(self.imgsz[0] // s, self.imgsz[1] // s) for s in self.strides]


# ----------------------------------------------------------------------------------------------- validation
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(float(v))


def _need(cond: bool, key: str, expected: str, value: Any, src: str | None) -> None:
    if not cond:
        raise InputError(f"{key}: expected {expected}, got {value!r}", src)


def _check_keys(d: Any, allowed: set[str], prefix: str, src: str | None) -> dict:
    if d is None:
        return {}
    _need(isinstance(d, dict), prefix.rstrip(".") or "config", "a mapping", d, src)
    for k in d:
        if k not in allowed:
            known = ", ".join(sorted(allowed))
            raise InputError(f"unknown key '{prefix}{k}' (known: {known})", src)
    return d


def _pos_int(d: dict, key: str, full: str, src: str | None, minimum: int = 1) -> int:
    v = d[key]
    _need(_is_int(v) and v >= minimum, full, f"an integer >= {minimum}", v, src)
    return int(v)


def _num(d: dict, key: str, full: str, src: str | None, positive: bool = False) -> float:
    v = d[key]
    ok = _is_num(v) and (float(v) > 0 if positive else float(v) >= 0)
    _need(ok, full, "a positive number" if positive else "a number >= 0", v, src)
    return float(v)


def config_from_dict(raw: Any, src: str | None = None, base: Config | None = None) -> Config:
    """Validate a parsed YAML mapping on top of ``base`` (defaults when None)."""
    cfg = base or Config()
    top = _check_keys(
        raw, {"imgsz", "strides", "nc", "reg_max", "assigner", "loss", "heads", "dense_budget_mb", "single_cls",
              "overlap_mask"}, "", src
    )
    kw: dict[str, Any] = {}
    if "imgsz" in top:
        v = top["imgsz"]
        if _is_int(v):
            v = [v, v]
        _need(
            isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v),
            "imgsz", "an integer or [h, w] of positive integers", top["imgsz"], src,
        )
        kw["imgsz"] = (int(v[0]), int(v[1]))
    if "strides" in top:
        v = top["strides"]
        _need(
            isinstance(v, (list, tuple)) and len(v) >= 1 and all(_is_int(x) and x > 0 for x in v)
            and list(v) == sorted(set(v)),
            "strides", "a non-empty increasing list of positive integers", v, src,
        )
        kw["strides"] = tuple(int(x) for x in v)
    if "nc" in top:
        kw["nc"] = None if top["nc"] is None else _pos_int(top, "nc", "nc", src)
    if "reg_max" in top:
        kw["reg_max"] = _pos_int(top, "reg_max", "reg_max", src)
    if "dense_budget_mb" in top:
        kw["dense_budget_mb"] = _pos_int(top, "dense_budget_mb", "dense_budget_mb", src)
    if "single_cls" in top:
        _need(isinstance(top["single_cls"], bool), "single_cls", "true or false", top["single_cls"], src)
        kw["single_cls"] = top["single_cls"]
    if "overlap_mask" in top:
        _need(isinstance(top["overlap_mask"], bool), "overlap_mask", "true or false", top["overlap_mask"], src)
        kw["overlap_mask"] = top["overlap_mask"]
    if "assigner" in top:
        a = _check_keys(top["assigner"], {f.name for f in fields(AssignerConfig)} - {"profile_auto"}, "assigner.", src)
        akw: dict[str, Any] = {}
        if "name" in a:
            names = _assigner_names()
            _need(isinstance(a["name"], str) and a["name"] in names, "assigner.name", " or ".join(names), a["name"], src)
            akw["name"] = a["name"]
            if a["name"] != cfg.assigner.name:  # another assigner: its own default profile and topk
                akw.update(profile=None, topk=None, topk2=None)
        if "profile" in a:
            _need(a["profile"] is None or isinstance(a["profile"], str), "assigner.profile",
                  "a string (quote a release number: '8.3')", a["profile"], src)
            akw["profile"] = a["profile"]
            akw["profile_auto"] = False
        if "topk" in a:
            akw["topk"] = None if a["topk"] is None else _pos_int(a, "topk", "assigner.topk", src)
        if "topk2" in a:
            akw["topk2"] = None if a["topk2"] is None else _pos_int(a, "topk2", "assigner.topk2", src)
        if "anchor_t" in a:
            akw["anchor_t"] = _num(a, "anchor_t", "assigner.anchor_t", src, positive=True)
        if "anchors" in a:
            v = a["anchors"]
            ok = isinstance(v, (list, tuple)) and len(v) >= 1 and all(
                isinstance(r, (list, tuple)) and len(r) >= 2 and len(r) % 2 == 0 and all(_is_num(x) and x > 0 for x in r)
                for r in v)
            _need(ok, "assigner.anchors", "one list of w,h pixel pairs per level, e.g. [[10,13, 16,30, 33,23], ...]",
                  v, src)
            akw["anchors"] = tuple(tuple(float(x) for x in r) for r in v)
        for k in ("alpha", "beta"):
            if k in a:
                akw[k] = _num(a, k, f"assigner.{k}", src)
        if "eps" in a:
            akw["eps"] = _num(a, "eps", "assigner.eps", src, positive=True)
        kw["assigner"] = replace(cfg.assigner, **akw)
    if "loss" in top:
        lo = _check_keys(top["loss"], {f.name for f in fields(LossConfig)}, "loss.", src)
        kw["loss"] = replace(cfg.loss, **{k: _num(lo, k, f"loss.{k}", src) for k in lo})
    if "heads" in top:
        h = _check_keys(top["heads"], {"seed", "kind", "batch"}, "heads.", src)
        hkw: dict[str, Any] = {}
        if "seed" in h:
            hkw["seed"] = _pos_int(h, "seed", "heads.seed", src, minimum=0)
        if "kind" in h:
            _need(h["kind"] in HEAD_KINDS, "heads.kind", " or ".join(HEAD_KINDS), h["kind"], src)
            hkw["kind"] = h["kind"]
        if "batch" in h:
            hkw["batch"] = None if h["batch"] is None else _pos_int(h, "batch", "heads.batch", src)
        kw["heads"] = replace(cfg.heads, **hkw)
    return finalize(replace(cfg, **kw), src)


def finalize(cfg: Config, src: str | None = None) -> Config:
    """Cross-field checks, and ultralytics' rounding of imgsz up to a multiple of the largest stride."""
    a = cfg.assigner
    fam = _family(a.name)
    profiles, default_profile = fam.profiles, fam.default_profile
    if fam.task_aligned:
        try:
            name = _profiles.resolve_profile(a.profile)
        except ValueError:
            raise InputError(
                f"assigner.profile: the {a.name} assigner has profiles {', '.join(profiles)} (aliases "
                f"{', '.join(f'{k} = {v}' for k, v in _profiles.ALIASES.items())}, a release such as 8.3.202, or "
                f"auto), got {a.profile!r}", src) from None
        if name != _profiles.AUTO and name not in profiles:
            raise InputError(f"assigner.profile: the {a.name} assigner has profiles {', '.join(profiles)}, got "
                             f"{a.profile!r}", src)
        if isinstance(a.profile, str) and name not in (_profiles.AUTO, a.profile.strip()) \
                and a.profile.strip() not in _profiles.ALIASES:  # a release number: say which profile, and warn
            _, _, release_warning = _profiles.profile_for_version(a.profile.strip().lstrip("v"))
            if release_warning and release_warning not in cfg.warnings:
                cfg = replace(cfg, warnings=tuple(cfg.warnings) + (f"--profile {a.profile}: {release_warning}",))
        a = replace(a, profile=default_profile, profile_auto=True) if name == _profiles.AUTO else replace(a, profile=name)
    elif a.profile is None:
        a = replace(a, profile=default_profile, profile_auto=False)
    elif a.profile not in profiles:
        raise InputError(f"assigner.profile: the {a.name} assigner has profiles {' or '.join(profiles)}, got {a.profile!r}",
                         src)
    if a.topk is None:
        topk, topk2 = fam.default_topks(a.profile)
        a = replace(a, topk=topk, topk2=topk2 if a.topk2 is None else a.topk2)
    if fam.heads_layout == "yolov5" and len(a.anchors) != len(cfg.strides):
        raise InputError(f"assigner.anchors: {len(a.anchors)} levels of anchors for {len(cfg.strides)} strides", src)
    if a.topk2 is not None and not a.is_tal:
        raise InputError(f"assigner.topk2: only the task-aligned assigners have topk2, not {a.name}", src)
    cfg = replace(cfg, assigner=a)
    if a.topk2 is not None and not _profiles.get(a.profile).topk2:
        with_topk2 = [p.name for p in _profiles.PROFILES if p.topk2]
        raise InputError(f"assigner.topk2: only the {' and '.join(with_topk2)} profiles (ultralytics 8.4) have "
                         f"topk2; {a.profile} has none", src)
    if a.topk2 is not None and a.topk2 > a.topk:
        raise InputError(f"assigner.topk2: must be <= assigner.topk ({a.topk}), got {a.topk2}", src)
    smax = max(cfg.strides)
    rounded = tuple(int(math.ceil(x / smax) * smax) for x in cfg.imgsz)
    warnings = list(cfg.warnings)
    if rounded != cfg.imgsz:
        msg = (
            f"imgsz {list(cfg.imgsz)} is not a multiple of the largest stride {smax}; "
            f"rounded up to {list(rounded)} as ultralytics does"
        )
        if msg not in warnings:
            warnings.append(msg)
    return replace(cfg, imgsz=rounded, warnings=tuple(warnings))


def with_trainer_version(cfg: Config, version: str | None, source: str | None = None) -> tuple[Config, str, str | None]:
    """The ``auto`` profile made concrete from the ultralytics release that trained a checkpoint.

    ``version``: ``ckpt["version"]`` (None when the checkpoint has none); ``source``: the checkpoint file, named in
    the warning. When the profile was chosen by name (config or --profile) it is kept and the note says so.
    Topk / topk2 left at their defaults follow the new profile (tal-o2o: 7 / 1 in 8.4, 1 / none before).
    Returns (config, one note line, a warning or None).
    """
    name, note, warning = _profiles.profile_for_version(version)
    if warning and source:
        warning = f"{source}: {warning}"
    a = cfg.assigner
    if not a.is_tal:
        return cfg, note.split(" → ")[0] + f" (the {a.name} assigner has no ultralytics profile)", None
    if not a.profile_auto:
        return cfg, f"{note.split(' → ')[0]}; profile {a.profile} as chosen (auto would be {name})", None
    old = _family(a.name).default_topks(a.profile)
    topk, topk2 = (None, None) if (a.topk, a.topk2) == old else (a.topk, a.topk2)
    new = replace(cfg, assigner=replace(a, profile=name, topk=topk, topk2=topk2, profile_auto=True))
    return finalize(new), note, warning


def load_config(path: str | Path | None, base: Config | None = None) -> Config:
    """Read a YAML config file (None = defaults) on top of ``base`` (e.g. what a model or a saved run sets)."""
    if path is None:
        return finalize(base or Config())
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config file ({e.__class__.__name__})", str(p)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise InputError(f"broken YAML: {problem}", str(p), line) from None
    return config_from_dict(raw, str(p), base=base)


def with_overrides(cfg: Config, _source: str = "command line", **overrides: Any) -> Config:
    """Apply CLI options (None = not given) on top of a config, re-validating them; errors name ``_source``."""
    raw: dict[str, Any] = {}
    assigner = {k: overrides.pop(k) for k in ("name", "profile", "topk", "topk2", "alpha", "beta") if k in overrides}
    heads = {k: overrides.pop(k) for k in ("seed", "kind", "batch") if k in overrides}
    for k, v in overrides.items():
        if v is not None:
            raw[k] = v
    if any(v is not None for v in assigner.values()):
        raw["assigner"] = {k: v for k, v in assigner.items() if v is not None}
    if any(v is not None for v in heads.values()):
        raw["heads"] = {k: v for k, v in heads.items() if v is not None}
    if not raw:
        return cfg
    return config_from_dict(raw, _source, base=cfg)
