"""Inputs of one run, gathered: a model or heads file, the config on top of what they set, labels, their images
and letterboxes, then :func:`yolotal.pipeline.run`.

Settings come in layers, later ones winning: ultralytics defaults < what the model (or a ``--save-heads`` file)
says < the config file < command-line options. nc, reg_max and strides are facts of a model: a config or option
that contradicts them is an error, not an override.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .config import Config, LossConfig
from .errors import InputError
from .inputs.labels import Labels


@dataclass
class Geometry:
    """Per image of the labels: its picture (or None) and letterbox (or None = stretched to the canvas)."""

    pictures: list
    letterboxes: list


def model_base(lm) -> Config:
    """What a loaded model sets: its nc, reg_max, strides; its training imgsz (else 640) and loss gains."""
    loss = replace(LossConfig(), **lm.train_gains)
    imgsz = (640, 640)
    if lm.train_imgsz:  # the trainer used max(imgsz), rounded up to a multiple of the largest stride
        smax = max(lm.strides)
        side = -(-max(lm.train_imgsz) // smax) * smax
        imgsz = (side, side)
    from .assigners import registry
    from .config import AssignerConfig

    try:
        name = registry.for_task(lm.task, head_class=lm.head_class)
    except InputError:  # no family of that task: check_model_config says so, naming the model
        name = "tal"
    return Config(imgsz=imgsz, strides=lm.strides, nc=lm.nc, reg_max=lm.reg_max, loss=loss,
                  assigner=AssignerConfig(name=name))


def saved_base(saved: dict) -> Config | None:
    """What a ``--save-heads`` file sets (the settings of the run that wrote it), or None for other heads."""
    if "imgsz" not in saved:
        return None
    kw = {"imgsz": tuple(int(x) for x in saved["imgsz"])}
    if "strides" in saved:
        kw["strides"] = tuple(int(x) for x in saved["strides"])
    if "reg_max" in saved:
        kw["reg_max"] = int(saved["reg_max"])
    if "nc" in saved:
        kw["nc"] = int(saved["nc"])
    if "assigner" in saved:  # a task family's run (pose, seg): replayed by the same family
        from .assigners import registry
        from .config import AssignerConfig

        if str(saved["assigner"]) in registry.names():
            kw["assigner"] = AssignerConfig(name=str(saved["assigner"]))
    if "loss_gains" in saved and len(saved["loss_gains"]) == 3:
        box, cls, dfl = (float(x) for x in saved["loss_gains"])
        kw["loss"] = LossConfig(box, cls, dfl)
    return Config(**kw)


def check_model_config(cfg: Config, lm) -> None:
    """The config must not contradict the model (its task, nc, reg_max, strides); imgsz must be a multiple of its
    largest stride."""
    from .assigners import registry

    fam = registry.get(cfg.assigner.name)
    if fam.task != lm.task:
        mine = [n for n in registry.names() if registry.get(n).task == lm.task]
        if not mine:
            raise InputError(f"this is a{'n' if lm.task[0] in 'aeio' else ''} {lm.task} model; yolotal has no "
                             f"assigner family for the {lm.task} task", lm.path)
        raise InputError(f"this is a{'n' if lm.task[0] in 'aeio' else ''} {lm.task} model but the assigner "
                         f"{fam.name} is for {fam.task}: leave --assigner out (the model's task picks its "
                         f"assigner) or choose one of {', '.join(n for n in registry.names() if registry.get(n).task == lm.task)}",
                         lm.path)
    for key, mine in (("nc", lm.nc), ("reg_max", lm.reg_max), ("strides", tuple(lm.strides))):
        got = getattr(cfg, key)
        if got != mine:
            raise InputError(f"{key} {list(got) if isinstance(got, tuple) else got} (config or option) disagrees with "
                             f"the model's {list(mine) if isinstance(mine, tuple) else mine}", lm.path)
    rounded = [w for w in cfg.warnings if w.startswith("imgsz ") and "multiple" in w]
    if rounded:
        raise InputError(f"{rounded[0].split(';')[0]} of this model: a model runs at a multiple of it (e.g. "
                         f"--imgsz {','.join(map(str, cfg.imgsz))})", lm.path)


def check_replay_matches(path, saved: dict, lab: Labels) -> None:
    """A ``--save-heads`` file replays the images it was saved for: the labels' files must name the same images
    (by stem, in order), else its predictions and letterboxes would be applied to other pictures."""
    saved_stems = [Path(str(f)).stem for f in saved["image_files"] if str(f)]
    stems = [Path(f).stem for f in lab.files if f]
    if saved_stems and stems and stems != saved_stems[: len(stems)]:
        show = lambda xs: ", ".join(xs[:4]) + (" …" if len(xs) > 4 else "")  # noqa: E731
        raise InputError(f"these heads were saved for the images {show(saved_stems)}, but the labels are for "
                         f"{show(stems)}: replay with the label files of the run that saved them", str(path))


def saved_letterboxes(saved: dict, n: int):
    """Letterboxes stored in a ``--save-heads`` file, or None when it has none."""
    if not {"letterbox_scale", "letterbox_pad", "orig_shape"} <= set(saved):
        return None
    from .inputs.pictures import Letterbox

    out = []
    for i in range(min(n, len(saved["letterbox_scale"]))):
        r = float(saved["letterbox_scale"][i])
        h0, w0 = (int(x) for x in saved["orig_shape"][i])
        left, top = (int(x) for x in saved["letterbox_pad"][i])
        if r <= 0 or h0 <= 0 or w0 <= 0:
            out.append(None)  # an image saved without a picture
            continue
        out.append(Letterbox(w0, h0, int(round(w0 * r)), int(round(h0 * r)), left, top, r))
    return out


def find_geometry(lab: Labels, cfg: Config, explicit: list[Path] | None, images_dir: Path | None,
                  required_by: str | None = None) -> Geometry:
    """Each image's picture (explicit, else looked up from its label file) and letterbox from its header.

    required_by: when set (e.g. "--model"), an image that cannot be found is an error naming the label file and
    where it was looked for.
    """
    from .inputs.pictures import image_candidates, image_for_label, image_size, letterbox_for

    n = lab.n_images
    if explicit:
        if len(explicit) > max(n, 1):
            raise InputError(f"--image-file given {len(explicit)} times but the labels describe {n} image(s)")
        pics: list = list(explicit) + [None] * (n - len(explicit))
    else:
        files = list(lab.files) + [None] * (n - len(lab.files))
        pics = [image_for_label(f, images_dir) if f else None for f in files]
    if required_by:
        for i, (pic, name) in enumerate(zip(pics, lab.images)):
            if pic is not None:
                continue
            f = lab.files[i] if i < len(lab.files) else None
            if f is None:
                raise InputError(f"{required_by} needs each image's picture: image {i} ({name}) comes from a batch file; "
                                 "give label files (one per image) or --image-file for each image")
            looked = " or ".join(f"{c}.jpg/.png/…" for c in image_candidates(f, images_dir))
            raise InputError(f"no image for this label file (looked for {looked}; --images DIR to point elsewhere)", f)
    boxes = [None if p is None else letterbox_for(*image_size(p), cfg.imgsz) for p in pics]
    return Geometry(pics, boxes)


def task_arrays(heads, cfg: Config) -> dict:
    """What a task family's replay needs besides boxes and scores: pose heads keep their keypoint (and YOLO26 sigma)
    channels in the levels, kpt_shape, the assigner and the model's RealNVP flow (``flow.*``)."""
    out: dict = {}
    if "kpts" in heads.extra:
        from .inputs.pose_heads import pose_heads_to_levels

        out.update({f"level{i}": x for i, x in enumerate(pose_heads_to_levels(heads))})
        if cfg.keypoints.shape is not None:
            out["kpt_shape"] = np.array(cfg.keypoints.shape, np.int64)
        if cfg.keypoints.oks_sigmas is not None:
            out["kpt_oks_sigmas"] = np.array(cfg.keypoints.oks_sigmas, np.float64)
        if heads.extra.get("flow") is not None:
            from .assigners.pose_family import flow_arrays

            out.update(flow_arrays(heads.extra["flow"]))
            out["flow_source"] = np.array(heads.extra["flow"].source)
    if "angle" in heads.extra:  # OBB: the angle channel last on every level, in radians (as the run read it)
        from .inputs.obb_heads import obb_heads_to_levels

        out.update({f"level{i}": x for i, x in enumerate(obb_heads_to_levels(heads))})
        out["angle_encoding"] = np.array("radians")
    from .assigners import registry

    if registry.get(cfg.assigner.name).task != "detect":
        out["assigner"] = np.array(cfg.assigner.name)
    return out


def write_saved_heads(path: Path, heads, images: np.ndarray, geo: Geometry, cfg: Config, lm) -> Path:
    """``--save-heads``: the heads as ``level0..`` (what ``--heads`` reads) plus the exact input tensor, the image
    paths, letterboxes and the run's settings, so that ``--heads OUT.npz`` replays the run without the model."""
    from .atomic import atomic_write
    from .inputs.heads import heads_to_levels

    b = heads.batch
    arrays = {f"level{i}": x for i, x in enumerate(heads_to_levels(heads))}
    arrays.update(task_arrays(heads, cfg))
    scale = np.zeros(b, np.float64)
    pad = np.zeros((b, 2), np.int64)
    orig = np.zeros((b, 2), np.int64)
    for i, lb in enumerate(geo.letterboxes[:b]):
        if lb is not None:
            scale[i], pad[i], orig[i] = lb.r, (lb.left, lb.top), (lb.h0, lb.w0)
    files = [str(p) if p is not None else "" for p in geo.pictures[:b]] + [""] * (b - len(geo.pictures[:b]))
    arrays.update(
        images=images.astype(np.float32), image_files=np.array(files, dtype=np.str_), letterbox_scale=scale,
        letterbox_pad=pad, orig_shape=orig, imgsz=np.array(cfg.imgsz, np.int64), strides=np.array(cfg.strides, np.int64),
        reg_max=np.array(cfg.reg_max, np.int64), nc=np.array(heads.nc, np.int64),
        loss_gains=np.array([cfg.loss.box, cfg.loss.cls, cfg.loss.dfl], np.float64),
        model=np.array(lm.path if lm is not None else ""), class_names=np.array([lm.names[i] for i in range(lm.nc)]
                                                                               if lm is not None else [], dtype=np.str_),
        # the release that trained the checkpoint ("" for a model YAML): replay's profile auto follows it
        trainer_version=np.array((lm.trainer_version or "") if lm is not None and lm.kind == "checkpoint" else ""),
        model_kind=np.array(lm.kind if lm is not None else ""),
    )
    from .inputs.seg_heads import SEG_KEYS

    for k in SEG_KEYS:  # segmentation heads: mask coefficients, prototypes (semantic logits), as --heads reads them
        if k in heads.extra:
            arrays[k] = heads.extra[k].detach().cpu().numpy().astype(np.float32)
    from .assigners import registry

    if registry.get(cfg.assigner.name).task != "detect":  # a task family's run: replayed by the same family
        arrays["assigner"] = np.array(cfg.assigner.name)
    p = Path(path)
    atomic_write(p, lambda fh: np.savez_compressed(fh, **arrays))
    return p
