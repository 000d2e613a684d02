"""The library: gather a run's inputs and run it. The CLI and notebooks call the same functions.

``yolotal.inspect(labels, model=..., heads=..., config=..., **overrides) -> Run`` is the entry point: the same
layering of settings as the CLI (ultralytics defaults < what a model or a saved heads file says < the config file
< overrides) and the same errors (:class:`yolotal.InputError`, with file and line).

:func:`build_trace` is the gathering itself (labels, their pictures and letterboxes, a model's or a heads file's
predictions, the assigner family's own heads) ending in :func:`yolotal.pipeline.run`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .config import Config
    from .pipeline import Trace


def parse_imgsz(values: "list[str] | list[int] | int | str") -> list[int]:
    """imgsz values -> [h, w]: 640, "640", "720,1280" (h,w, as the config's [720, 1280]) or two values."""
    if isinstance(values, (int, str)):
        values = [values]
    parts = [x.strip() for v in values for x in str(v).split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts) or not 1 <= len(parts) <= 2:
        raise InputError(f"--imgsz: expected one size or h,w in px (e.g. 640 or 720,1280), got "
                         f"{','.join(map(str, values))!r}")
    sizes = [int(p) for p in parts]
    return sizes * (2 // len(sizes))


def run_config(config: "str | Path | None", base: "Config | None" = None, **over: Any) -> "Config":
    """The config file (or defaults) on top of ``base``, then the overrides (None = not given).

    Overrides use the CLI's names: name (assigner), profile, topk, topk2, alpha, beta, seed, kind, batch, nc,
    reg_max, imgsz (640, "720,1280" or [h, w]), strides ("8,16,32" or a list), dense_budget_mb.
    """
    from .config import load_config, with_overrides

    cfg = load_config(config, base)
    strides = over.pop("strides", None)
    if isinstance(strides, str):
        try:
            over["strides"] = [int(s) for s in strides.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"--strides: expected comma-separated integers, got {strides!r}") from None
    elif strides is not None:
        over["strides"] = list(strides)
    imgsz = over.pop("imgsz", None)
    if imgsz:
        over["imgsz"] = parse_imgsz(imgsz)
    return with_overrides(cfg, **over)


def check_images_dir(images_dir: "Path | None") -> None:
    if images_dir is not None and not Path(images_dir).is_dir():
        raise InputError("--images: directory not found", str(images_dir))


def build_trace(labels: "str | Path | None", config: "str | Path | None" = None, heads: "str | Path | None" = None,
                with_loss: bool = True, pictures: "list[Path] | None" = None, extra_heads: "dict | None" = None,
                v8_heads: bool = False, model: "str | Path | None" = None, device: str | None = None,
                images_dir: "str | Path | None" = None, save_heads: "str | Path | None" = None,
                split: str | None = None, **over: Any) -> "Trace":
    """Gather every input of one run and run the pipeline.

    labels: a label file, a directory of them, a batch file or a dataset YAML (None: no labels, e.g. anchors).
    heads: a heads file in the layout of the chosen assigner family (YOLOv8 DFL for tal/atss, YOLOX for simota,
    YOLOv5 for yolov5), or a ``--save-heads`` file; extra_heads: {layout: file} of heads in a family's own layout
    besides YOLOv8 heads (compare's --yolox-heads: {"yolox": path}), read by the family of that layout;
    v8_heads: ``heads`` is YOLOv8-layout whatever the family (compare).
    pictures: explicit image files in batch order; else each label file's image is looked up (one geometry rule
    for every command). model: run the user's model on those images for the heads. over: config overrides.
    """
    from .assigners import registry
    from .inputs.heads import load_heads, read_saved_run
    from .inputs.labels import load_labels, no_labels
    from .pipeline import run
    from .prepare import (check_model_config, check_replay_matches, find_geometry, model_base, saved_base,
                          saved_letterboxes, write_saved_heads)

    labels = Path(labels) if labels is not None else None
    heads = Path(heads) if heads is not None else None
    model = Path(model) if model is not None else None
    save_heads = Path(save_heads) if save_heads is not None else None
    images_dir = Path(images_dir) if images_dir is not None else None
    if model is not None and heads is not None:
        raise InputError("give --model or --heads, not both")
    if save_heads is not None and model is None:
        raise InputError("--save-heads needs --model (it saves the model's heads)")
    if save_heads is not None and save_heads.suffix != ".npz":
        raise InputError("--save-heads path must end in .npz", str(save_heads))
    check_images_dir(images_dir)
    lm = saved = None
    base = None
    dataset_nc = None  # a dataset YAML given as LABELS says how many classes there are
    if labels is not None:
        from .inputs.dataset import is_dataset_yaml, read_dataset

        if is_dataset_yaml(labels):
            dataset_nc = read_dataset(labels).nc
    if model is not None:
        from .inputs.model import load_model

        nc = over.get("nc")
        if nc is None and model.suffix.lower() in (".yaml", ".yml"):
            nc = dataset_nc  # a model built from a YAML takes the dataset's classes, as training does
        lm = load_model(model, nc, over.get("seed") or 0, device or "cpu")
        base = model_base(lm)
    elif device is not None:
        raise InputError("--device applies to --model only")
    elif heads is not None:
        saved = read_saved_run(heads)
        base = saved_base(saved)
    cfg = run_config(config, base, **over)
    if lm is not None:
        check_model_config(cfg, lm)
    fam = registry.get(cfg.assigner.name)
    # --heads is in the layout of the chosen family: YOLOv8 (DFL) for tal/atss, its own (YOLOX, YOLOv5) otherwise;
    # the v8 decode stage then runs on synthetic heads of the same seed
    own_layout = fam.heads_layout != "v8" and not v8_heads
    if lm is not None and not fam.from_model:
        raise InputError(f"--model gives YOLOv8/YOLO11 (DFL) heads; the {fam.name} assigner needs its own heads "
                         "(--heads in its layout, or synthetic ones)")
    h = load_heads(heads, cfg.reg_max, cfg.nc) if heads is not None and not own_layout else None
    if h is not None and cfg.nc is None:
        cfg = replace(cfg, nc=h.nc)
    own = None
    own_path = (extra_heads or {}).get(fam.heads_layout) or (heads if own_layout else None)
    if own_path is not None and fam.heads_layout != "v8":
        own = fam.read_heads(Path(own_path), cfg)
        if cfg.nc is None:
            cfg = replace(cfg, nc=fam.nc_of(own))
    if cfg.nc is None and dataset_nc is not None:
        cfg = replace(cfg, nc=dataset_nc)
    # a dataset YAML's split: as many of its images as the heads hold (default: a batch of 16, as ultralytics)
    limit = (h.batch if h is not None else cfg.heads.batch or 16)
    if labels is not None and labels.is_dir() and lm is None:
        limit = None  # synthetic heads cover every file of a directory; a model runs on one batch of it
    lab = load_labels(labels, cfg.num_classes, split, limit) if labels is not None else no_labels()
    if saved and "image_files" in saved and lab.files:
        check_replay_matches(heads, saved, lab)
    notes: list[str] = []
    stored = saved_letterboxes(saved, lab.n_images) if saved else None
    if stored is not None and not pictures:
        files = [str(x) for x in saved.get("image_files", [])]
        pics = [files[i] if i < len(files) and files[i] and Path(files[i]).is_file() else None
                for i in range(len(stored))]
        geo_pics, geo_boxes = pics, stored
        notes.append(f"letterboxes as saved in {heads} by the run that wrote it")
    elif labels is None:
        geo_pics, geo_boxes = [], []
    else:
        geo = find_geometry(lab, cfg, [Path(p) for p in pictures] if pictures else None, images_dir,
                            "--model" if lm is not None else None)
        geo_pics, geo_boxes = geo.pictures, geo.letterboxes
    if lm is not None:
        from .inputs.model import model_heads
        from .inputs.pictures import model_input
        from .prepare import Geometry

        if not lab.n_images or labels is None:
            raise InputError("--model needs LABELS whose images it can run on")
        images = model_input(geo_pics, geo_boxes, cfg.imgsz)
        branch = fam.model_branch if lm.end2end else "one2many"
        h = model_heads(lm, images, lm.describe(cfg.imgsz, branch), branch)
        cfg = replace(cfg, nc=lm.nc)
        notes.append(h.source)
        if save_heads is not None:
            p = write_saved_heads(save_heads, h, images, Geometry(geo_pics, geo_boxes), cfg, lm)
            notes.append(f"heads, input images and letterboxes saved to {p} (replay: --heads {p})")
    return run(cfg, lab, h, with_loss=with_loss, pictures=geo_pics, letterboxes=geo_boxes, own_heads=own,
               notes=notes)
