"""A user's own model as a source of heads (``--model``): an ultralytics checkpoint or model YAML.

This is the one place yolotal imports ``ultralytics`` (the optional extra ``yolotal[ultralytics]``), lazily and
only to build and run the network the user gave: everything after the raw head outputs is yolotal's own code.

* a checkpoint as training saves it (``best.pt`` / ``last.pt``): a dict whose ``ema`` (else ``model``) holds the
  DetectionModel; half-precision weights are computed in float32. Loading a checkpoint unpickles it, which runs
  code from the file (as in ultralytics itself): load only checkpoints you trust.
* a model YAML that ultralytics builds (``yolo11n.yaml``, ``yolov8s.yaml``, a path or a name ultralytics ships),
  with ``nc`` overridable, built with seeded weights.

The model runs as saved (no Conv+BN fusing), with BatchNorm in eval mode (its running statistics: an image's
predictions do not depend on the rest of the batch), under ``torch.no_grad()``. Its raw head outputs (per-level
maps, or 8.4's ``boxes``/``scores``/``feats`` dict; the ``one2many`` branch of end-to-end models) become
:class:`~yolotal.inputs.heads.Heads` through the same reader as a ``--heads`` file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .heads import Heads, heads_from_object

INSTALL_HINT = ("--model needs the ultralytics package in this environment, installed after your torch: "
                "pip install ultralytics (from a clone of yolotal: pip install -e '.[ultralytics]'); if that would "
                "replace your torch, pip install --no-deps ultralytics ultralytics-thop, then its other requirements "
                "(README: Your own model)")
FORWARD_CHUNK = 16
OTHER_BRANCH = {"one2many": " (--assigner tal-o2o shows the one2one branch; yolotal loss shows both)",
                "one2one": " (leave --assigner out for the one2many branch; yolotal loss shows both)"}  # images per forward pass (BatchNorm in eval mode: chunking does not change the outputs)


@dataclass
class LoadedModel:
    """A detection model ready to run, and what yolotal needs to know about it.

    Attributes:
        module: the ultralytics DetectionModel (float32, eval mode, on ``device``).
        path: what the user gave; kind: "checkpoint" or "yaml"; arch: e.g. "yolo11n.yaml".
        nc, reg_max, strides: from its Detect head; names: class id -> name.
        train_imgsz: (h, w) the checkpoint was trained at (its ``train_args``), or None.
        train_gains: {"box", "cls", "dfl"} of its ``train_args`` (the gains its trainer used), or {}.
        end2end: an end-to-end (one-to-one) head; the one2many branch is what TAL assigns on.
        version: the ultralytics version that saved the checkpoint (``ckpt["version"]``), or None.
        epoch: the checkpoint's ``epoch`` (-1 after training ended), None for a model YAML.
        epochs: ``train_args.epochs``, or None. results_epochs: the ``epoch`` column of its ``train_results``.
    """

    module: Any
    path: str
    kind: str
    arch: str
    nc: int
    reg_max: int
    strides: tuple[int, ...]
    names: dict[int, str]
    device: str
    train_imgsz: tuple[int, int] | None = None
    train_gains: dict[str, float] = field(default_factory=dict)
    end2end: bool = False
    half_weights: bool = False
    version: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    results_epochs: list = field(default_factory=list)
    task: str = "detect"
    kpt_shape: tuple[int, int] | None = None
    head_class: str = ""  # the class of its last layer (Detect, Pose, Pose26, ...)

    @property
    def trainer_version(self) -> str | None:
        """The ultralytics release that saved the checkpoint; ``config.with_trainer_version`` turns it into the
        profile."""
        return self.version

    def describe(self, imgsz: tuple[int, int], branch: str = "one2many") -> str:
        what = "checkpoint" if self.kind == "checkpoint" else "model YAML (weights: seeded random init)"
        return (f"heads from the model {self.path} ({what}; {self.arch}, nc {self.nc}, reg_max {self.reg_max}, "
                f"strides {list(self.strides)}, imgsz {imgsz[0]}×{imgsz[1]}, device {self.device}, BatchNorm in eval "
                f"mode (running statistics), float32{' (saved as float16)' if self.half_weights else ''}, "
                f"not fused, no_grad{f', {branch} branch of an end-to-end head' + (OTHER_BRANCH[branch] if self.task == 'detect' else '') if self.end2end else ''})")


def _import_ultralytics():
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the network from inside yolotal
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        from ultralytics.nn import tasks
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise InputError(f"{INSTALL_HINT} (import failed: {missing})") from None
    except Exception as e:  # e.g. a broken torchvision next to it
        raise InputError(f"{INSTALL_HINT}; importing it failed ({e.__class__.__name__}: {str(e)[:120]})") from None
    return tasks


def _check_device(device: str) -> str:
    d = (device or "cpu").strip().lower()
    if d.isdigit():
        d = f"cuda:{d}"
    try:
        dev = torch.device(d)
    except (RuntimeError, ValueError):
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA was asked for but torch sees no CUDA device on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {device!r}")
    return str(dev)


TASK_MODELS = {"detect": "DetectionModel", "segment": "SegmentationModel", "pose": "PoseModel", "obb": "OBBModel"}


def _task_of(tasks, model_or_cfg, src: str) -> str:
    """The model's task (detect, segment, pose, obb); anything else (classify, semantic, ...) is refused."""
    try:
        task = tasks.guess_model_task(model_or_cfg)
    except Exception:
        task = "detect"
    if task not in TASK_MODELS:
        raise InputError(f"this is a {task} model; yolotal inspects the assignment of detect, segment, pose and "
                         "OBB models", src)
    return task


def _detect_head(module, src: str):
    head = module.model[-1] if hasattr(module, "model") and len(module.model) else None
    if head is None or not all(hasattr(head, a) for a in ("nc", "reg_max", "stride")):
        kind = type(head).__name__ if head is not None else type(module).__name__
        raise InputError(f"the model's last layer is {kind}, not a YOLOv8/YOLO11-style Detect head (nc, reg_max, "
                         "stride)", src)
    return head


def _names(module, nc: int) -> dict[int, str]:
    names = getattr(module, "names", None)
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or len(names) != nc:
        return {i: str(i) for i in range(nc)}
    return {int(k): str(v) for k, v in names.items()}


def _train_args(ckpt: dict) -> tuple[tuple[int, int] | None, dict[str, float]]:
    args = ckpt.get("train_args") or {}
    if not isinstance(args, dict):
        args = getattr(args, "__dict__", {}) or {}
    imgsz = args.get("imgsz")
    if isinstance(imgsz, int) and imgsz > 0:
        imgsz = (imgsz, imgsz)
    elif isinstance(imgsz, (list, tuple)) and len(imgsz) in (1, 2) and all(isinstance(x, int) for x in imgsz):
        imgsz = (int(imgsz[0]), int(imgsz[-1]))
    else:
        imgsz = None
    gains = {k: float(args[k]) for k in ("box", "cls", "dfl")
             if isinstance(args.get(k), (int, float)) and not isinstance(args.get(k), bool)}
    return imgsz, gains


def _load_checkpoint(tasks, p: Path, src: str):
    """Unpickle a checkpoint with ultralytics' own loader (it maps the module paths of older versions), else
    torch.load; any failure is one line naming the file."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if hasattr(tasks, "torch_safe_load"):
                return tasks.torch_safe_load(str(p))[0]
            return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # not a pickle, a truncated zip, a YOLOv5-repo model, a class that no longer exists ...
        msg = (str(e).strip().splitlines() or [""])[0].replace("ERROR ❌️ ", "").replace(str(p), "the file").strip()
        raise InputError(f"not a readable checkpoint ({e.__class__.__name__}{': ' + msg[:160] if msg else ''})",
                         src) from None


def load_model(path: str | Path, nc: int | None = None, seed: int = 0, device: str = "cpu") -> LoadedModel:
    """Load a checkpoint (``.pt``) or build a model YAML (``.yaml``/``.yml``, a path or a name ultralytics ships)."""
    src = str(path)
    p = Path(path)
    is_yaml = p.suffix.lower() in (".yaml", ".yml")
    if not is_yaml and not p.is_file():
        raise InputError("model file not found", src)
    dev = _check_device(device)
    tasks = _import_ultralytics()
    if is_yaml:
        try:
            cfg = tasks.yaml_model_load(p)
        except Exception as e:
            raise InputError(f"cannot read the model YAML ({e.__class__.__name__}: {' '.join(str(e).split())[:160]})",
                             src) from None
        if not isinstance(cfg, dict) or "head" not in cfg or "backbone" not in cfg:
            raise InputError("not an ultralytics model YAML (needs 'backbone' and 'head')", src)
        task = _task_of(tasks, cfg, src)
        torch.manual_seed(seed)
        try:
            module = getattr(tasks, TASK_MODELS[task])(cfg, nc=nc, verbose=False)
        except Exception as e:
            raise InputError(f"ultralytics could not build this model YAML ({e.__class__.__name__}: "
                             f"{' '.join(str(e).split())[:160]})", src) from None
        kind, arch, train_imgsz, gains, half = "yaml", str(cfg.get("yaml_file", p.name)), None, {}, False
        meta = {}
    else:
        ckpt = _load_checkpoint(tasks, p, src)
        if isinstance(ckpt, dict):
            module = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
            if module is None:
                keys = ", ".join(map(str, list(ckpt)[:8]))
                raise InputError(f"not an ultralytics checkpoint: no model under 'ema' or 'model' (keys: {keys})", src)
        else:
            module, ckpt = ckpt, {}
        if not isinstance(module, torch.nn.Module):
            raise InputError(f"not an ultralytics checkpoint: its model is a {type(module).__name__}", src)
        task = _task_of(tasks, module, src)
        half = any(t.dtype == torch.float16 for t in module.parameters())
        module = module.float()
        yaml = getattr(module, "yaml", None) or {}
        arch = str(yaml.get("yaml_file") or type(module).__name__) if isinstance(yaml, dict) else type(module).__name__
        kind = "checkpoint"
        train_imgsz, gains = _train_args(ckpt)
        meta = _checkpoint_meta(ckpt)
    head = _detect_head(module, src)
    head_nc, reg_max = int(head.nc), int(head.reg_max)
    if nc is not None and nc != head_nc:
        raise InputError(f"--nc {nc} disagrees with the model, whose head has nc = {head_nc}", src)
    strides = tuple(int(round(float(s))) for s in head.stride.flatten().tolist())
    if not strides or any(s <= 0 for s in strides):
        raise InputError("the model's Detect head has no strides (was it built?)", src)
    end2end = bool(getattr(head, "end2end", False)) or getattr(head, "one2one_cv2", None) is not None
    module = module.to(dev).eval()
    for prm in module.parameters():
        prm.requires_grad_(False)
    kpt_shape = tuple(int(x) for x in head.kpt_shape) if getattr(head, "kpt_shape", None) is not None else None
    return LoadedModel(module, src, kind, arch, head_nc, reg_max, strides, _names(module, head_nc), dev, train_imgsz,
                       gains, end2end, half, **meta, task=task, kpt_shape=kpt_shape,
                       head_class=type(head).__name__)


def _checkpoint_meta(ckpt: dict) -> dict:
    """version, epoch, epochs and the results' epoch column of a checkpoint dict (what is there of them)."""
    out: dict = {}
    v = ckpt.get("version")
    if isinstance(v, str) and v.strip():
        out["version"] = v.strip()
    e = ckpt.get("epoch")
    if isinstance(e, int) and not isinstance(e, bool):
        out["epoch"] = e
    args = ckpt.get("train_args") or {}
    if not isinstance(args, dict):
        args = getattr(args, "__dict__", {}) or {}
    n = args.get("epochs")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        out["epochs"] = n
    res = ckpt.get("train_results")
    if isinstance(res, dict) and isinstance(res.get("epoch"), (list, tuple)):
        out["results_epochs"] = [int(x) for x in res["epoch"] if isinstance(x, (int, float))]
    return out


def raw_outputs(lm: LoadedModel, images: np.ndarray, branch: str = "one2many") -> Any:
    """The model's raw head outputs on (b, 3, h, w) float32 images: 8.4's dict (of an end-to-end head: its
    ``branch``, one2many or one2one) or the per-level list of older versions; on the CPU in float32, forward
    passes in chunks."""
    parts = []
    with torch.no_grad():
        for i in range(0, len(images), FORWARD_CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + FORWARD_CHUNK])).to(lm.device)
            try:
                out = lm.module(x)
            except Exception as e:  # a checkpoint of a fork or another release whose modules do not run here
                msg = " ".join(str(e).split())[:200]
                raise InputError(f"ultralytics could not run this model ({e.__class__.__name__}: {msg})",
                                 lm.path) from None
            raw = out[1] if isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[1], (dict, list, tuple)) else out
            if isinstance(raw, dict) and branch is not None and branch in raw:
                raw = raw[branch]
            parts.append(_to_cpu(raw))
    return _concat(parts)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().float().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_cpu(v) for v in obj]
    return obj


def _concat(parts: list):
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, list):
        return [_concat([p[i] for p in parts]) for i in range(len(first))]
    dim = 0
    return torch.cat(parts, dim)


def model_heads(lm: LoadedModel, images: np.ndarray, source: str, branch: str = "one2many") -> Heads:
    """Run the model on the images and read its raw outputs as Heads (validated like a heads file)."""
    raw = raw_outputs(lm, images, branch)
    return heads_from_object(raw, source, lm.reg_max, lm.nc)


def model_heads_branches(lm: LoadedModel, images: np.ndarray, imgsz: tuple[int, int],
                         branches: tuple[str, ...] = ("one2many", "one2one")) -> dict[str, Heads]:
    """Both branches of an end-to-end head from one forward pass: branch -> Heads."""
    raw = raw_outputs(lm, images, None)
    if not isinstance(raw, dict) or not all(b in raw for b in branches):
        raise InputError(f"the model's head did not return the {' and '.join(branches)} branches", lm.path)
    return {b: heads_from_object(raw[b], lm.describe(imgsz, b), lm.reg_max, lm.nc) for b in branches}
