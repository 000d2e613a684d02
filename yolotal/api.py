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


def run_config(config: "str | Path | None", base: "Config | None" = None, _source: str = "command line",
               **over: Any) -> "Config":
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
    return with_overrides(cfg, _source, **over)


def check_images_dir(images_dir: "Path | None") -> None:
    if images_dir is not None and not Path(images_dir).is_dir():
        raise InputError("--images: directory not found", str(images_dir))


def build_trace(labels: "str | Path | None", config: "str | Path | None" = None, heads: "str | Path | None" = None,
                with_loss: bool = True, pictures: "list[Path] | None" = None, extra_heads: "dict | None" = None,
                v8_heads: bool = False, model: "str | Path | None" = None, device: str | None = None,
                images_dir: "str | Path | None" = None, save_heads: "str | Path | None" = None,
                split: str | None = None, both_branches: bool = False, _source: str = "command line",
                **over: Any) -> "Trace":
    """Gather every input of one run and run the pipeline.

    labels: a label file, a directory of them, a batch file or a dataset YAML (None: no labels, e.g. anchors).
    heads: a heads file in the layout of the chosen assigner family (YOLOv8 DFL for tal/atss, YOLOX for simota,
    YOLOv5 for yolov5), or a ``--save-heads`` file; extra_heads: {layout: file} of heads in a family's own layout
    besides YOLOv8 heads (compare's --yolox-heads: {"yolox": path}), read by the family of that layout;
    v8_heads: ``heads`` is YOLOv8-layout whatever the family (compare).
    pictures: explicit image files in batch order; else each label file's image is looked up (one geometry rule
    for every command). model: run the user's model on those images for the heads. over: config overrides.
    both_branches: with a model, return the :class:`Gathered` inputs before the forward pass instead (the
    end-to-end loss runs both branches from one forward).
    """
    from .assigners import registry
    from .inputs.heads import read_saved_run
    from .inputs.labels import load_labels, no_labels
    from .prepare import (check_model_config, check_replay_matches, find_geometry, model_base, saved_base,
                          saved_letterboxes)

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
    cfg = run_config(config, base, _source, **over)
    notes: list[str] = []
    if lm is not None:
        check_model_config(cfg, lm)
        if lm.kind == "checkpoint":
            cfg = _trainer_profile(cfg, lm.trainer_version, lm.path, notes)
    elif saved and str(saved.get("model_kind", "")) == "checkpoint":
        cfg = _trainer_profile(cfg, str(saved.get("trainer_version", "")) or None, str(heads), notes)
    fam = registry.get(cfg.assigner.name)
    cfg = fam.setup(cfg, labels, lm, saved)  # what the family needs before heads and labels (pose: kpt_shape)
    # --heads is in the layout of the chosen family: YOLOv8 (DFL) for tal/atss, its own (YOLOX, YOLOv5) otherwise;
    # the v8 decode stage then runs on synthetic heads of the same seed
    own_layout = fam.heads_layout != "v8" and not v8_heads
    if lm is not None and not fam.from_model:
        raise InputError(f"--model gives YOLOv8/YOLO11 (DFL) heads; the {fam.name} assigner needs its own heads "
                         "(--heads in its layout, or synthetic ones)")
    h = fam.load_heads(heads, cfg) if heads is not None and not own_layout else None
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
    kpt = cfg.keypoints.shape or (lm.kpt_shape if lm is not None else None)
    try:
        lab = (load_labels(labels, cfg.num_classes, split, limit, task=fam.task, kpt_shape=kpt,
                           single_cls=cfg.single_cls) if labels is not None else no_labels())
    except InputError as e:
        if "class id must be" in e.message and (lm is not None or h is not None) and over.get("nc") is None:
            whence = f"the model {lm.path}" if lm is not None else f"the heads file {heads}"
            raise InputError(f"{e.message} (nc {cfg.num_classes} comes from {whence})", e.source, e.line) from None
        raise
    if saved and "image_files" in saved and lab.files:
        check_replay_matches(heads, saved, lab)
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
    g = Gathered(cfg, lab, h, own, geo_pics, geo_boxes, notes, lm, with_loss)
    if lm is None:
        return g.run()
    if not lab.n_images or labels is None:
        raise InputError("--model needs LABELS whose images it can run on")
    from .inputs.pictures import model_input

    g.images = model_input(geo_pics, geo_boxes, cfg.imgsz)
    g.cfg = replace(cfg, nc=lm.nc)
    g.save_heads = save_heads
    if both_branches:
        return g
    branch = fam.model_branch if lm.end2end else "one2many"
    g.heads = fam.model_heads(lm, g.images, lm.describe(cfg.imgsz, branch), branch)
    return g.run()


def _trainer_profile(cfg: "Config", version: str | None, source: str, notes: list[str]) -> "Config":
    """Profile ``auto`` made concrete from the release that trained a checkpoint: one note line, and a warning
    (in the config's warnings) for a missing or unknown version."""
    from .config import with_trainer_version

    cfg, note, warning = with_trainer_version(cfg, version, source)
    notes.append(note)
    if warning:
        cfg = replace(cfg, warnings=tuple(cfg.warnings) + (warning,))
    return cfg


class Gathered:
    """Every input of a run, gathered (config, labels, pictures and letterboxes, heads), ready for the pipeline."""

    def __init__(self, cfg, labels, heads, own, pictures, letterboxes, notes, model, with_loss):
        self.cfg, self.labels, self.heads, self.own = cfg, labels, heads, own
        self.pictures, self.letterboxes, self.notes, self.model = pictures, letterboxes, notes, model
        self.with_loss, self.images, self.save_heads = with_loss, None, None

    def run(self, cfg: "Config | None" = None, heads=None) -> "Trace":
        """The pipeline on these inputs (``cfg`` / ``heads``: another assigner or branch on the same inputs)."""
        from .pipeline import run

        cfg = cfg or self.cfg
        heads = heads if heads is not None else self.heads
        notes = list(self.notes)
        if self.model is not None:
            notes.append(heads.source)
            if self.save_heads is not None:
                from .prepare import Geometry, write_saved_heads

                p = write_saved_heads(self.save_heads, heads, self.images, Geometry(self.pictures, self.letterboxes),
                                      cfg, self.model)
                notes.append(f"heads, input images and letterboxes saved to {p} (replay: --heads {p})")
        return run(cfg, self.labels, heads, with_loss=self.with_loss, pictures=self.pictures,
                   letterboxes=self.letterboxes, own_heads=self.own, notes=notes)


# ------------------------------------------------------------------------------------------------ public API
def inspect(labels: "str | Path | None" = None, *, model: "str | Path | None" = None,
            heads: "str | Path | None" = None, config: "str | Path | None" = None,
            images: "str | Path | None" = None, image_files: "list | None" = None, loss: bool = True,
            device: str | None = None, split: str | None = None, save_heads: "str | Path | None" = None,
            **overrides: Any) -> "Run":
    """Run anchors -> decode -> assignment -> loss on ``labels`` and return the :class:`Run`.

    labels: a YOLO label file, a directory of them, a batch file (``batch_idx cls cx cy w h``) or a dataset YAML
        (its train split, or ``split=``).
    model: an ultralytics checkpoint or model YAML whose predictions on each label file's image are the heads
        (needs the ``ultralytics`` extra). heads: a saved heads file (.npz / .pt) instead. Neither: synthetic
        heads (``synthetic="randn"|"trained"``, ``seed=``).
    config: a YAML config. images: the directory holding the label files' images; image_files: explicit
        pictures in batch order.
    overrides: the CLI's options by name: assigner ("tal", "tal-o2o", "simota", "atss", "yolov5"), profile,
        topk, topk2, alpha, beta, nc, reg_max, imgsz (640 or "720,1280"), strides, seed, synthetic, batch,
        budget_mb. Layering as the CLI: ultralytics defaults < model / heads file < config < overrides.
    Raises :class:`yolotal.InputError` (file and line) for everything the CLI exits 2 on.

    >>> run = yolotal.inspect("samples/coco8/labels", synthetic="trained")
    >>> run["align_metric"].shape            # (b, M, A)
    >>> [g for g in run.gts() if g.flag]     # GTs without a (weighted) positive
    """
    over = _overrides(overrides)
    trace = build_trace(labels, config, heads, with_loss=loss, pictures=image_files, model=model, device=device,
                        images_dir=images, save_heads=save_heads, split=split, _source="yolotal.inspect()", **over)
    return Run(trace)


_OPTION_KEYS = {"assigner": "name", "synthetic": "kind", "budget_mb": "dense_budget_mb"}
_ALLOWED = ("name", "profile", "topk", "topk2", "alpha", "beta", "seed", "kind", "batch", "nc", "reg_max", "imgsz",
            "strides", "dense_budget_mb", "single_cls")


def _overrides(overrides: dict) -> dict:
    """The CLI's option names -> config override keys; an unknown name is an InputError naming the known ones."""
    out = {}
    for k, v in overrides.items():
        key = _OPTION_KEYS.get(k, k)
        if key not in _ALLOWED:
            known = ", ".join(sorted(set(_ALLOWED) - set(_OPTION_KEYS.values()) | set(_OPTION_KEYS)))
            raise InputError(f"unknown option {k!r} (known: {known})")
        out[key] = v
    return out


class Run:
    """One inspected run: the named stages and tensors of the Trace, per-GT records, the loss, and renderers.

    ``run["overlaps"]`` finds a tensor in any stage; ``run.stages`` maps stage name -> {tensor name: shape};
    ``run.trace`` is the :class:`yolotal.pipeline.Trace` itself. In Jupyter it shows its per-GT summary and its
    assignment picture.
    """

    def __init__(self, trace: "Trace"):
        self.trace = trace

    # -------------------------------------------------------------- tensors
    def __getitem__(self, key: str):
        return self.trace[key]

    def __contains__(self, key: str) -> bool:
        return key in self.trace

    @property
    def stages(self) -> dict:
        """Stage name -> {tensor name: shape}, in pipeline order."""
        return {name: {k: tuple(v.shape) for k, v in st.tensors.items()} for name, st in self.trace.stages.items()}

    @property
    def config(self):
        return self.trace.config

    @property
    def batch(self) -> int:
        return self.trace.batch

    @property
    def notes(self) -> list[str]:
        return list(self.trace.notes)

    @property
    def warnings(self) -> list[str]:
        return list(self.trace.warnings)

    # -------------------------------------------------------------- records
    def gts(self, as_frame: bool | None = None):
        """One record per real GT (:class:`yolotal.records.GTRecord`), flagged GTs first within each image.

        as_frame: True -> a pandas DataFrame (needs pandas); None -> a DataFrame when pandas is installed, else
        the list; False -> the list.
        """
        from .records import gt_records

        recs = gt_records(self.trace)
        if as_frame is False:
            return recs
        try:
            import pandas as pd
        except ImportError:
            if as_frame:
                raise InputError("as_frame=True needs pandas (pip install pandas)") from None
            return recs
        from dataclasses import asdict

        return pd.DataFrame([asdict(r) for r in recs])

    @property
    def loss(self) -> dict[str, float]:
        """The loss terms as the trainer logs them (gain-weighted), plus the raw ones; {} without a loss stage."""
        if "loss" not in self.trace.stages:
            return {}
        return {k: float(v) for k, v in self.trace.stages["loss"].tensors.items() if v.numel() == 1}

    # -------------------------------------------------------------- renderers
    def show(self, what: str = "assign", console=None, images: "list[int] | None" = None, full: bool = False) -> None:
        """Print the terminal rendering: ``assign`` (default), ``loss``, ``walk``, ``decode`` or ``anchors``."""
        from rich.console import Console

        from .render.terminal import render_anchors, render_decode, default_anchors, note, warn

        con = console or Console(highlight=False)
        fam, trace = self.trace.family, self.trace
        images = list(range(trace.batch)) if images is None else images
        if what == "walk":
            from .render.walk import render_walk

            render_walk(trace, con, full)
            return
        for n in trace.notes:
            note(con, n)
        for w in trace.warnings:
            warn(con, w)
        if what == "assign":
            fam.render_assign(trace, con, images, full)
        elif what == "loss":
            if "loss" not in trace.stages:
                raise InputError("this run has no loss stage (inspect(..., loss=True))")
            fam.render_loss(trace, con, images)
        elif what == "decode":
            render_decode(trace, con, images[0], default_anchors(trace, images[0]))
        elif what == "anchors":
            render_anchors(trace, con, None, full)
        else:
            raise InputError(f"show: expected assign, loss, walk, decode or anchors, got {what!r}")

    def png(self, path: "str | Path", images: "list[int] | None" = None) -> Path:
        """Draw the assignment (one panel per level and image) to a PNG file."""
        from .render.png import render_png

        return render_png(self.trace, list(range(self.batch)) if images is None else images, path)

    def export(self, path: "str | Path") -> Path:
        """Write every stage tensor to .npz or .json (the CLI's --export)."""
        from .render.export import export

        return export(self.trace, path)

    def html(self, path: "str | Path", gallery: int = 24) -> Path:
        """A self-contained HTML report of this run: per class / size tables and charts, the ``gallery`` worst
        GTs drawn on their letterboxed pictures, every GT's row (sortable, filterable)."""
        from .render.html import write_run_html

        return write_run_html(self.trace, path, gallery=gallery, names=list(self.trace.labels.names) or None)

    def _png_bytes(self, images: "list[int] | None" = None) -> bytes:
        import io

        from .render.png import render_png_image

        buf = io.BytesIO()
        render_png_image(self.trace, list(range(min(self.batch, 4))) if images is None else images).save(buf, "PNG")
        return buf.getvalue()

    def _repr_html_(self) -> str:
        import base64

        from .render.notebook import run_summary_html

        img = base64.b64encode(self._png_bytes()).decode()
        return run_summary_html(self) + f'<img alt="assignment" style="max-width:100%" src="data:image/png;base64,{img}">'

    def __repr__(self) -> str:
        t = self.trace
        a = t.config.assigner
        n = sum(t.n_gts(i) for i in range(t.batch))
        loss = ", ".join(f"{k} {v:.4g}" for k, v in list(self.loss.items())[:3])
        return (f"<yolotal.Run {a.name} ({a.profile}) · {t.batch} image(s) · {n} GTs · imgsz {list(t.config.imgsz)}"
                f"{' · ' + loss if loss else ''}>")


def scan(data: "str | Path", *, model: "str | Path | None" = None, config: "str | Path | None" = None,
         simulate: bool = False, workers: int = 1, split: str | None = None, top: int = 20,
         images: "str | Path | None" = None, device: str | None = None, progress=None, task: str | None = None,
         **overrides: Any) -> "ScanReport | None":
    """Audit a dataset (a dataset YAML or a directory of label files) and return its :class:`ScanReport`.

    Without a model: every label file's geometry (label errors, tiny GTs, GTs with no candidate anchor under each
    profile, DFL targets clamped at every level; ``simulate=True``: positives per GT from the full assignment on
    synthetic partly-trained heads). With ``model`` (checkpoint or model YAML): the images of one split (``split``,
    default train) through the model, batch by batch, and per class / size bucket which GTs get no positive or
    only zero-weight ones. overrides: as :func:`inspect` (profile, topk, nc, reg_max, imgsz, strides, single_cls;
    with a model also batch, seed). progress(stage, advance, total) is called as work is done. task: how label
    rows are read (detect, segment, pose, obb); with a model, the model's task.
    Under torchrun (``scan`` with a model) ranks other than 0 return None.
    """
    import os
    import time

    over = _overrides(overrides)
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    from .assigners.registry import TASKS

    if task is not None and task not in TASKS:
        raise InputError(f"--task: expected {', '.join(TASKS)}, got {task!r}")
    if model is not None:
        if task is not None:
            raise InputError("--task: with --model the model's task applies")
        return _scan_model(Path(data), config, workers, split, top, images, device, Path(model), progress, over)
    for k, v in (("device", device), ("images", images), ("batch", over.pop("batch", None)),
                 ("seed", over.pop("seed", None))):
        if v is not None:
            raise InputError(f"--{k} applies to scan --model only")
    if int(os.environ.get("RANK", "0") or 0) != 0:  # under torchrun only scan --model shares the work out
        return None
    from .scanning import report as make_report
    from .scanning import scan as do_scan

    cfg = run_config(config, **over)
    t0 = time.perf_counter()
    res = do_scan(data, cfg.imgsz, cfg.strides, cfg.reg_max, cfg.nc, workers, simulate, cfg.assigner.profile,
                  cfg.assigner.topk, progress, task=task or "detect", single_cls=cfg.single_cls)
    doc = make_report(res, top)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    rep = ScanReport(doc, "geometry", list(cfg.warnings), res)
    rep.top = top
    return rep


def _scan_model(data: Path, config, workers: int, split: str | None, top: int, images_dir, device,
                model: Path, progress, over: dict, gallery_size: int = 24) -> "ScanReport | None":
    """scan with a model: batches of images through it, assignment per batch, a report per class and size."""
    import time

    from .inputs.dataset import is_dataset_yaml, read_dataset
    from .inputs.model import load_model
    from .inputs.pictures import image_for_label
    from .prepare import check_model_config, model_base
    from .scanning import find_labels
    from .scan_model import distributed, merge, run_scan, summarise

    batch = over.pop("batch", None) or 16
    images_dir = Path(images_dir) if images_dir is not None else None
    check_images_dir(images_dir)
    nc = over.get("nc")
    if is_dataset_yaml(data):  # one split of a dataset YAML, train by default: what the trainer assigns on
        chosen = split or "train"
        ls = find_labels(data, (chosen,))
        if nc is None and model.suffix.lower() in (".yaml", ".yml"):
            nc = read_dataset(data).nc  # a model built from a YAML takes the dataset's classes, as training does
    elif split is not None:
        raise InputError("--split needs a dataset YAML (DATA is a directory of label files)", str(data))
    else:
        chosen, ls = "all", find_labels(data)
    files = ls.files
    pictures = [img if img is not None else image_for_label(f, images_dir) for f, img in
                zip(files, ls.images or [None] * len(files))]
    lm = load_model(model, nc, over.pop("seed", None) or 0, device or "cpu")
    cfg = run_config(config, model_base(lm), **over)
    check_model_config(cfg, lm)
    if lm.task == "pose":
        raise InputError("scan --model does not run pose models yet (assign/loss --model do); scan --task pose "
                         "audits the labels' keypoints", lm.path)
    notes: list[str] = []
    if lm.kind == "checkpoint":
        cfg = _trainer_profile(cfg, lm.trainer_version, lm.path, notes)
    from .render.gallery import GalleryCollector

    items = [(str(f), str(p) if p is not None else None) for f, p in zip(files, pictures)]
    names = [lm.names[i] for i in range(lm.nc)]
    if ls.names and len(ls.names) == lm.nc and names == [str(i) for i in range(lm.nc)]:
        names = list(ls.names)  # a model built from a YAML has no names: the dataset's
    gallery = GalleryCollector(gallery_size, names)
    rank, world = distributed()
    t0 = time.perf_counter()
    step = (lambda k: progress("model + assignment", k, len(items))) if progress else None
    from .inputs.label_rules import LabelRules

    rules = LabelRules(task=lm.task, nc=cfg.nc, kpt_shape=lm.kpt_shape or getattr(ls, "kpt_shape", None),
                       single_cls=cfg.single_cls)
    res = run_scan(items, cfg, lm, batch, workers, step, rank, world, on_trace=gallery.add if gallery_size else None,
                   rules=rules)
    if world > 1:
        import torch.distributed as dist

        parts = [None] * world if rank == 0 else None
        dist.gather_object((res, gallery), parts, dst=0)
        if rank != 0:
            dist.destroy_process_group()
            return None
        res = merge([p[0] for p in parts])
        gallery = parts[0][1].merge([p[1] for p in parts[1:]])
        dist.destroy_process_group()
    doc = summarise(res, names, top)
    a = cfg.assigner
    doc["meta"] = {"dataset": str(data), "split": chosen, "model": lm.path, "arch": lm.arch, "nc": lm.nc,
                   "imgsz": list(cfg.imgsz), "device": lm.device, "assigner": a.name, "profile": a.profile,
                   "topk": a.topk, "alpha": a.alpha, "beta": a.beta, "batch": batch, "processes": world,
                   "seconds": round(time.perf_counter() - t0, 3), "strides": list(cfg.strides),
                   "stage_seconds": {k: round(v, 3) for k, v in res.seconds.items()}}
    rep = ScanReport(doc, "model", list(cfg.warnings), res)
    rep.notes = notes
    rep.gallery = list(gallery.items) if gallery_size else []
    return rep


class ScanReport:
    """A dataset audit: ``doc`` is the JSON report (``scan --report``); kind is "geometry" (labels only) or
    "model" (the dataset's images through a model). In Jupyter it shows its summary tables."""

    def __init__(self, doc: dict, kind: str, warnings: list[str], result: Any = None):
        self.doc, self.kind, self.warnings, self.result = doc, kind, warnings, result
        self.top = 20  # worst files / GTs listed
        self.notes: list[str] = []  # how the inputs were read (the checkpoint's profile)
        self.gallery: list = []  # a model scan's crops of its worst GTs (collected as the batches went by)

    @property
    def partial(self) -> bool:
        return bool(self.doc.get("partial"))

    @property
    def per_class(self) -> dict:
        """Class name -> counts (geometry: GTs per class; model: GTs, % without positive, % zero-weight, ...)."""
        return dict(self.doc.get("by_class") or self.doc.get("class_counts") or {})

    @property
    def per_size(self) -> dict:
        """Size bucket -> counts (geometry: GTs per sqrt(area) bin; model: the per-class statistics per bucket)."""
        return dict(self.doc.get("by_size") or self.doc.get("size_histogram_px") or {})

    @property
    def errors(self) -> list[dict]:
        """Label errors (file, line, reason), corrupt files included."""
        return list(self.doc.get("errors") or [])

    def gts(self, as_frame: bool | None = None):
        """Per-GT rows: every flagged GT (geometry scan) or every GT (model scan), as dicts or a DataFrame."""
        rows = list(self.doc.get("per_gt") if self.kind == "model" else self.doc.get("flagged") or [])
        if as_frame is False:
            return rows
        try:
            import pandas as pd
        except ImportError:
            if as_frame:
                raise InputError("as_frame=True needs pandas (pip install pandas)") from None
            return rows
        return pd.DataFrame(rows)

    def write(self, path: "str | Path") -> Path:
        """The JSON report (``scan --report``), written atomically."""
        from .scanning import write_report

        return write_report(self.doc, path)

    def html(self, path: "str | Path", gallery: int = 24) -> Path:
        """A self-contained HTML audit (overview, alerts, per-class / size tables and charts, a gallery of the
        ``gallery`` worst GTs drawn on their letterboxed pictures, every GT's row, sortable and filterable)."""
        from .render.html import write_geometry_scan_html, write_scan_html

        if self.kind == "model":
            return write_scan_html(self.doc, path, gallery=self.gallery[:gallery])
        return write_geometry_scan_html(self.result, path, gallery=gallery, top=self.top)

    def show(self, console=None) -> None:
        """The terminal rendering."""
        from rich.console import Console

        from .render.terminal import warn

        from .render.terminal import note

        con = console or Console(highlight=False)
        for n in self.notes:
            note(con, n)
        for w in self.warnings:
            warn(con, w)
        if self.kind == "model":
            from .render.scan_model import render_model_scan

            render_model_scan(self.doc, con)
        else:
            from .render.scan import render_scan

            render_scan(self.doc, con)

    def _repr_html_(self) -> str:
        from .render.notebook import scan_summary_html

        return scan_summary_html(self)

    def __repr__(self) -> str:
        if self.kind == "model":
            return f"<yolotal.ScanReport model · {self.doc.get('images', 0)} images · {len(self.gts(False))} GTs>"
        return (f"<yolotal.ScanReport · {self.doc['files']['total']} files · {self.doc['gts']} GTs · "
                f"{len(self.doc['flagged'])} flagged · {len(self.errors)} errors>")


def inspect_e2e(labels: "str | Path", *, model: "str | Path", config: "str | Path | None" = None,
                images: "str | Path | None" = None, image_files: "list | None" = None, epoch: int | None = None,
                device: str | None = None, split: str | None = None, **overrides: Any) -> "E2ERun":
    """Both branches of an end-to-end model (YOLO26, YOLOv10) on ``labels``, from one forward pass, and the
    loss its trainer computes from them (:class:`E2ERun`).

    epoch: the point of the training schedule (0-based) whose branch weights to use; default the checkpoint's
    own epoch (a finished run: its last epoch; a model YAML: epoch 0 of ultralytics' default 100).
    overrides: as :func:`inspect` (profile, topk, alpha, beta, imgsz, ...; ``topk``/``topk2`` apply to the
    one-to-many branch, the one-to-one branch takes the release's own).
    """
    over = _overrides(overrides)
    over.pop("name", None)
    g = build_trace(labels, config, None, with_loss=True, pictures=image_files, model=model, device=device,
                    images_dir=images, split=split, both_branches=True, **over)
    if not g.model.end2end:
        raise InputError("this model has no end-to-end (one-to-one) head: its loss is the one-to-many branch "
                         "alone (yolotal loss --model without --epoch)", g.model.path)
    return _e2e(g, config, over, epoch)


def inspect_loss(labels: "str | Path", *, model: "str | Path | None" = None, epoch: int | None = None,
                 **kw: Any) -> "Run | E2ERun":
    """What ``yolotal loss`` shows: an :class:`E2ERun` (both branches) for an end-to-end model with a task-aligned
    assigner, else a :class:`Run`. ``epoch`` applies to end-to-end models only."""
    if model is None:
        if epoch is not None:
            raise InputError("--epoch applies to an end-to-end model given with --model (YOLO26, YOLOv10)")
        return inspect(labels, **kw)
    from .assigners import registry

    over = _overrides({k: v for k, v in kw.items() if k not in _INSPECT_ARGS})
    args = {k: v for k, v in kw.items() if k in _INSPECT_ARGS}
    if (args.get("save_heads") is not None or args.get("heads") is not None
            or not registry.get(over.get("name") or "tal").task_aligned):
        if epoch is not None:
            raise InputError("--epoch shows both branches of an end-to-end model: not with --save-heads or a "
                             "non-task-aligned assigner")
        return inspect(labels, model=model, **kw)
    g = build_trace(labels, args.get("config"), None, with_loss=args.get("loss", True),
                    pictures=args.get("image_files"), model=model, device=args.get("device"),
                    images_dir=args.get("images"), split=args.get("split"), both_branches=True, **over)
    fam = registry.get(g.cfg.assigner.name)
    if g.model.end2end and fam.task == "detect":
        return _e2e(g, args.get("config"), over, epoch)
    if epoch is not None and not g.model.end2end:
        raise InputError("--epoch: this model has no end-to-end (one-to-one) head, so there is no branch schedule",
                         g.model.path)
    from .inputs.model import model_heads

    lm = g.model
    if fam.task != "detect":  # a task family reads its own outputs of the model (its branch)
        branch = fam.model_branch if lm.end2end else "one2many"
        trace = g.run(heads=fam.model_heads(lm, g.images, lm.describe(g.cfg.imgsz, branch), branch))
        if lm.end2end:
            fam.end_to_end(trace, g, epoch)
        return Run(trace)
    return Run(g.run(heads=model_heads(lm, g.images, lm.describe(g.cfg.imgsz), "one2many")))


_INSPECT_ARGS = ("config", "images", "image_files", "loss", "device", "split", "save_heads", "heads")


def _e2e(g: Gathered, config, over: dict, epoch: int | None) -> "E2ERun":
    from .e2e import branch_weights, rule_for, schedule_epoch
    from .inputs.model import model_heads_branches

    lm = g.model
    e_saved, e_total, how = schedule_epoch(lm, epoch)
    heads = model_heads_branches(lm, g.images, g.cfg.imgsz)
    o2m_over = {k: v for k, v in over.items() if k != "name" and not (k == "profile" and v == "auto")}
    o2o_over = {k: v for k, v in o2m_over.items() if k not in ("topk", "topk2")}
    base = replace(g.cfg, assigner=replace(g.cfg.assigner, name="tal"))
    cfg_m = run_config(config, base, **o2m_over)
    cfg_m = replace(cfg_m, assigner=replace(cfg_m.assigner, name="tal"))
    base_o = replace(cfg_m, assigner=replace(cfg_m.assigner, name="tal-o2o", topk=None, topk2=None))
    from .config import finalize

    cfg_o = run_config(None, finalize(base_o), **o2o_over)
    rule = rule_for(cfg_m.assigner.profile)
    w_m, w_o = branch_weights(e_saved, e_total, rule)
    out = E2ERun(Run(g.run(cfg_m, heads["one2many"])), Run(g.run(cfg_o, heads["one2one"])), w_m, w_o, e_saved,
                 e_total, how, rule)
    out.images = g.images
    return out


class E2ERun:
    """The two branches of an end-to-end model and the loss its trainer minimises.

    one2many, one2one: a :class:`Run` each. weights: (o2m, o2o) at ``epoch``. total: o2m·L_o2m + o2o·L_o2o with
    L = (box + cls + dfl/l1, gain-weighted) × batch, as the trainer's E2ELoss returns it. logged: the items the
    trainer logs (8.4: the one-to-one branch's; 8.0–8.3: both branches' summed).
    """

    def __init__(self, one2many: Run, one2one: Run, w_o2m: float, w_o2o: float, epoch: int, epochs: int,
                 how: str, rule):
        self.one2many, self.one2one = one2many, one2one
        self.weights = (w_o2m, w_o2o)
        self.epoch, self.epochs, self.epoch_note, self.rule = epoch, epochs, how, rule
        self.images = None  # (b, 3, h, w) float32: the model's input (letterboxed pictures)

    @staticmethod
    def branch_total(run: Run) -> float:
        """L of one branch: the sum of its gain-weighted terms × batch size (what v8DetectionLoss returns)."""
        lo = run.loss
        return (lo["loss_box"] + lo["loss_cls"] + lo["loss_dfl"]) * run.batch

    @property
    def total(self) -> float:
        return self.weights[0] * self.branch_total(self.one2many) + self.weights[1] * self.branch_total(self.one2one)

    @property
    def third_term(self) -> str:
        """How the trainer names the third term: dfl_loss, or l1_loss for reg_max 1."""
        return "l1_loss" if self.one2many.config.reg_max == 1 else "dfl_loss"

    @property
    def logged(self) -> dict[str, float]:
        """box_loss, cls_loss, dfl_loss (or l1_loss) as the trainer logs them."""
        names = ("box_loss", "cls_loss", self.third_term)
        keys = ("loss_box", "loss_cls", "loss_dfl")
        if self.rule.logged == "one2one":
            return {n: self.one2one.loss[k] for n, k in zip(names, keys)}
        return {n: self.one2many.loss[k] + self.one2one.loss[k] for n, k in zip(names, keys)}

    def show(self, console=None, images: "list[int] | None" = None) -> None:
        from rich.console import Console

        from .render.e2e import render_e2e

        render_e2e(self, console or Console(highlight=False), images)

    def __repr__(self) -> str:
        return (f"<yolotal.E2ERun epoch {self.epoch}/{self.epochs} · weights o2m {self.weights[0]:.4g} o2o "
                f"{self.weights[1]:.4g} · total {self.total:.5g}>")
