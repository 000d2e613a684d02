"""The yolotal command line. Parses arguments, runs the pipeline, hands the trace to a renderer.

torch is imported inside the commands only, so ``yolotal --help`` stays fast.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from .errors import InputError

if TYPE_CHECKING:
    from rich.console import Console

    from .pipeline import Trace

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: rich's help renderer alone costs ~90 ms of start-up
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    help="Inspect YOLOv8/YOLO11/YOLO26 training (detect, segment, pose, OBB, end-to-end heads): anchors → DFL "
    "decode → label assignment (task-aligned and its task variants; SimOTA, ATSS and YOLOv5 side by side) → loss, "
    "with numbers that match the trainer of each ultralytics release to float32.",
)

# ------------------------------------------------------------------------------------------------ shared options
LabelsArg = Annotated[
    Optional[Path],
    typer.Argument(help="YOLO label file (cls cx cy w h), a directory of them, a batch file (batch_idx cls cx cy w h), or a dataset YAML (its train split, or --split)."),
]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (see configs/default.yaml).")]
HeadsOpt = Annotated[Optional[Path], typer.Option("--heads", help="Head outputs: .npz (level0, level1, ...) or .pt.")]
ExportOpt = Annotated[Optional[Path], typer.Option("--export", help="Write every stage tensor to PATH.npz or PATH.json.")]
FullOpt = Annotated[bool, typer.Option("--full", help="Print big tensors and tables in full.")]
ProfileOpt = Annotated[Optional[str], typer.Option("--profile", help="tal: auto (the checkpoint's ultralytics release, else the newest), ultralytics (8.4.128+), v8.4.0, classic (8.0.52-8.3), v8.0.35, v8.0.0, latest, or a release such as 8.3.202; simota: yolox or yolox-0.3.")]
AssignerOpt = Annotated[Optional[str], typer.Option("--assigner", help="tal (default), tal-o2o, simota, atss, yolov5; task families: obb, obb-o2o, pose, pose26, pose26-o2o, seg, seg26, seg26-o2o (a --model picks its task's family).")]
TopkOpt = Annotated[Optional[int], typer.Option("--topk", help="Candidates kept per GT.")]
Topk2Opt = Annotated[Optional[int], typer.Option("--topk2", help="Second filter after conflicts (8.4 profiles).")]
AlphaOpt = Annotated[Optional[float], typer.Option("--alpha", help="Exponent of the class score in t.")]
BetaOpt = Annotated[Optional[float], typer.Option("--beta", help="Exponent of the CIoU in t.")]
NcOpt = Annotated[Optional[int], typer.Option("--nc", help="Number of classes.")]
RegMaxOpt = Annotated[Optional[int], typer.Option("--reg-max", help="DFL bins per side.")]
ImgszOpt = Annotated[Optional[List[str]], typer.Option("--imgsz", help="Input size in px: one value, or h,w (e.g. 720,1280; or repeat: --imgsz 720 --imgsz 1280).")]
StridesOpt = Annotated[Optional[str], typer.Option("--strides", help="Comma-separated strides, e.g. 8,16,32.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of the synthetic heads, and of a --model YAML's weights (default 0).")]
KindOpt = Annotated[Optional[str], typer.Option("--synthetic", help="Synthetic heads: randn or trained.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch", help="Images in a synthetic batch; scan --model: images per forward pass (default 16).")]
ImageOpt = Annotated[Optional[List[int]], typer.Option("--image", "-i", help="Image(s) of the batch to show (default: all).")]
PngOpt = Annotated[Optional[Path], typer.Option("--png", help="Also draw the assignment: one panel per level, to OUT.png.")]
ImageFileOpt = Annotated[Optional[List[Path]], typer.Option("--image-file", help="Picture of each image (repeat, batch order); default with --png: found next to the labels (images/ <-> labels/).")]
LogOpt = Annotated[Optional[Path], typer.Option("--log", help="Also write the output as plain text to FILE.")]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Your model: an ultralytics checkpoint (best.pt / last.pt) or model YAML (yolo11n.yaml; seeded weights). Its predictions on each label file's image become the heads. Needs yolotal[ultralytics]; a checkpoint is a pickle: load only files you trust.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="Where --model runs: cpu (default), cuda or cuda:N.")]
ImagesDirOpt = Annotated[Optional[Path], typer.Option("--images", help="Directory holding the label files' images (same stem); default: ultralytics' labels/ <-> images/ pairing, then beside the label file.")]
SaveHeadsOpt = Annotated[Optional[Path], typer.Option("--save-heads", help="With --model: write its heads, the input images and letterboxes to OUT.npz; --heads OUT.npz replays the run without the model.")]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="With a dataset YAML as LABELS: the split to read (train, val, test; default train).")]
SingleClsOpt = Annotated[Optional[bool], typer.Option("--single-cls", help="Every label's class becomes 0, as ultralytics' single_cls (config single_cls).", show_default=False)]
BudgetOpt = Annotated[Optional[int], typer.Option("--budget-mb", help="Memory for the dense (b, M, A) display tensors; above it: pairs and summaries (default 512).")]

# options of every command that runs the assignment, in help order: name -> (annotation, config key)
RUN_OPTIONS = {
    "assigner": (AssignerOpt, "name"), "profile": (ProfileOpt, "profile"), "topk": (TopkOpt, "topk"), "topk2": (Topk2Opt, "topk2"),
    "alpha": (AlphaOpt, "alpha"), "beta": (BetaOpt, "beta"), "seed": (SeedOpt, "seed"),
    "synthetic": (KindOpt, "kind"), "batch": (BatchOpt, "batch"), "nc": (NcOpt, "nc"),
    "reg_max": (RegMaxOpt, "reg_max"), "imgsz": (ImgszOpt, "imgsz"), "strides": (StridesOpt, "strides"),
    "budget_mb": (BudgetOpt, "dense_budget_mb"), "single_cls": (SingleClsOpt, "single_cls"),
    # where the heads and pictures come from (not config keys: _trace takes them out)
    "model": (ModelOpt, "model"), "device": (DeviceOpt, "device"), "images": (ImagesDirOpt, "images_dir"),
    "save_heads": (SaveHeadsOpt, "save_heads"), "split": (SplitOpt, "split"),
}
SOURCE_KEYS = ("model", "device", "images_dir", "save_heads", "split")


def run_options(*names: str):
    """Give a command the RUN_OPTIONS (all, or those named), after its own parameters; it receives them as
    ``run: dict`` of config overrides (None = not given). Typer reads the signature this builds."""
    chosen = {n: RUN_OPTIONS[n] for n in (names or RUN_OPTIONS)}

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "run"]
        extra = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=ann)
                 for n, (ann, _) in chosen.items()]

        @functools.wraps(fn)
        def wrapper(**kw):
            run = {key: kw.pop(n) for n, (_, key) in chosen.items()}
            return fn(**kw, run=run)

        wrapper.__signature__ = sig.replace(parameters=own + extra)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
        return wrapper

    return decorate


def _width(stream) -> "int | None":
    """COLUMNS when set (also when piped), else the terminal's width, else 100 (piped output)."""
    cols = os.environ.get("COLUMNS", "").strip()
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    return None if stream.isatty() else 100


def _console(record: bool = False) -> "Console":
    """The main output console; warnings go to a stderr console of the same width (render.terminal.warn)."""
    from rich.console import Console

    from .render.terminal import warnings_to

    warnings_to(Console(stderr=True, highlight=False, width=_width(sys.stderr)))
    return Console(record=record, highlight=False, width=_width(sys.stdout))


def _config(config: Path | None, base=None, **over):
    from .api import run_config

    return run_config(config, base, **over)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"yolotal {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


def _check_images_dir(images_dir: Path | None) -> None:
    from .api import check_images_dir

    check_images_dir(images_dir)


def _trace(labels: Path | None, config: Path | None, heads: Path | None, **kw) -> "Trace":
    from .api import build_trace

    return build_trace(labels, config, heads, **kw)


def check_output(path: Path | None, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Before any work: ``path`` must have one of ``suffixes`` and a writable directory (a probe file is created
    there and removed), else InputError (exit 2) naming the path."""
    if path is None:
        return
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{option} path must end in {' or '.join(suffixes)}", str(path))
    directory = path.parent
    what = {"--png": "PNG", "--export": "export", "--report": "report", "--log": "log", "--html": "HTML"}.get(option, option)
    if not directory.is_dir():
        raise InputError(f"{what} directory does not exist: {directory} ({option})", str(path))
    if path.is_dir():
        raise InputError(f"{option}: is a directory, not a file", str(path))
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{what} directory is not writable: {directory} ({option}: {e.strerror})", str(path)) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option}: file is not writable", str(path))


EXPORT_SUFFIXES = (".npz", ".json")


def _images(trace: "Trace", image: list[int] | None) -> list[int]:
    if not image:
        return list(range(trace.batch))
    for i in image:
        if not 0 <= i < trace.batch:
            raise InputError(f"--image {i}: the batch has images 0..{trace.batch - 1}")
    return list(image)


def _finish(trace: "Trace", con: "Console", export: Path | None) -> None:
    if export is not None:
        from .render.export import export as do_export

        p = do_export(trace, export)
        con.print(f"exported {len(trace.tensors())} tensors to {p}")


def _warnings(trace: "Trace", con: "Console") -> None:
    from .render.terminal import note, warn

    for n in trace.notes:
        note(con, n)
    for w in trace.warnings:
        warn(con, w)


# ------------------------------------------------------------------------------------------------ commands
@app.command()
@run_options("imgsz", "strides")
def anchors(
    config: ConfigOpt = None,
    level: Annotated[Optional[int], typer.Option("--level", help="Print this level's anchor grid.")] = None,
    full: FullOpt = False,
    export: ExportOpt = None,
    run: dict = None,
) -> None:
    """Anchor points per level: stride, grid, count, flat index range, first/last anchor (grid and px)."""
    from .render.terminal import render_anchors

    check_output(export, "--export", EXPORT_SUFFIXES)
    trace = _trace(None, config, None, with_loss=False, **run)
    if level is not None and not 0 <= level < len(trace.levels):
        raise InputError(f"--level {level}: there are levels 0..{len(trace.levels) - 1}")
    con = _console()
    _warnings(trace, con)
    render_anchors(trace, con, level, full)
    _finish(trace, con, export)


@app.command()
@run_options()
def decode(
    labels: LabelsArg = None,
    config: ConfigOpt = None,
    heads: HeadsOpt = None,
    image: Annotated[int, typer.Option("--image", "-i", help="Image of the batch.")] = 0,
    anchor: Annotated[Optional[List[int]], typer.Option("--anchor", "-a", help="Flat anchor index (repeat); default: each GT's best positive.")] = None,
    export: ExportOpt = None,
    run: dict = None,
) -> None:
    """DFL decode of chosen anchors: bin distributions, ltrb distances, decoded box in grid units and px."""
    from .render.terminal import default_anchors, render_decode

    check_output(export, "--export", EXPORT_SUFFIXES)
    check_output(run.get("save_heads"), "--save-heads", (".npz",))
    trace = _trace(labels, config, heads, with_loss=False, **run)
    (image,) = _images(trace, [image])
    n = trace["anchor_points"].shape[0]
    for a in anchor or []:
        if not 0 <= a < n:
            raise InputError(f"--anchor {a}: anchors are 0..{n - 1}")
    con = _console()
    _warnings(trace, con)
    render_decode(trace, con, image, list(anchor) if anchor else default_anchors(trace, image))
    _finish(trace, con, export)


def _assign_like(labels: Path | None, config: Path | None, heads: Path | None, run: dict,
                 png: Path | None = None, image_file: "list[Path] | None" = None,
                 yolox_heads: Path | None = None, v8_heads: bool = False, with_loss: bool = True) -> "Trace":
    """The full pipeline (assignment and, unless with_loss is False, loss) for the commands that need LABELS."""
    if labels is None:
        raise InputError("missing LABELS: give a label file, a directory of label files, or a batch file")
    check_output(png, "--png", (".png",))
    check_output(run.get("save_heads"), "--save-heads", (".npz",))
    return _trace(labels, config, heads, pictures=image_file, v8_heads=v8_heads,
                  extra_heads={"yolox": yolox_heads} if yolox_heads is not None else None,
                  with_loss=with_loss, **run)


def _png(trace: "Trace", images: list[int], png: Path | None, con: "Console") -> None:
    if png is not None:
        from .render.png import render_png

        p = render_png(trace, images, png)
        shown = sum(1 for i in images if i < len(trace.pictures) and trace.pictures[i] is not None)
        con.print(f"PNG written to {p} ({len(images)} image(s) × {len(trace.levels)} levels; "
                  f"{shown} on their picture, {len(images) - shown} on a blank canvas)")


@app.command()
@run_options()
def assign(
    labels: LabelsArg = None,
    config: ConfigOpt = None,
    heads: HeadsOpt = None,
    image: ImageOpt = None,
    full: FullOpt = False,
    export: ExportOpt = None,
    png: PngOpt = None,
    image_file: ImageFileOpt = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML report to OUT.html (per-GT table, charts, the worst GTs drawn).")] = None,
    run: dict = None,
) -> None:
    """Assignment of LABELS stage by stage (TAL by default; --assigner for ATSS, SimOTA, YOLOv5), with GTs that
    get no positives flagged."""
    check_output(export, "--export", EXPORT_SUFFIXES)
    check_output(html, "--html", (".html", ".htm"))
    trace = _assign_like(labels, config, heads, run, png, image_file)
    con = _console()
    _warnings(trace, con)
    images = _images(trace, image)
    trace.family.render_assign(trace, con, images, full)
    _png(trace, images, png, con)
    _finish(trace, con, export)
    if html is not None:
        from .api import Run

        con.print(f"HTML report written to {Run(trace).html(html)}")


@app.command()
@run_options()
def loss(
    labels: LabelsArg = None,
    config: ConfigOpt = None,
    heads: HeadsOpt = None,
    image: ImageOpt = None,
    export: ExportOpt = None,
    epoch: Annotated[Optional[int], typer.Option("--epoch", help="End-to-end models (YOLO26, YOLOv10) with --model: the epoch (0-based) whose branch weights to use; default the checkpoint's own.")] = None,
    run: dict = None,
) -> None:
    """Loss terms (BCE, CIoU, DFL): raw and gain-weighted, per image and per GT; warns on clamped DFL targets.
    With an end-to-end --model: both branches side by side, their weights at the checkpoint's epoch and the total
    the trainer minimises."""
    from .api import E2ERun, inspect_loss

    check_output(export, "--export", EXPORT_SUFFIXES)
    if labels is None:
        raise InputError("missing LABELS: give a label file, a directory of label files, or a batch file")
    check_output(run.get("save_heads"), "--save-heads", (".npz",))
    opts = {k: v for k, v in run.items() if v is not None}
    kw = {"images": opts.pop("images_dir", None), "device": opts.pop("device", None),
          "split": opts.pop("split", None), "save_heads": opts.pop("save_heads", None)}
    model = opts.pop("model", None)
    res = inspect_loss(labels, model=model, epoch=epoch, config=config, heads=heads,
                       **{k: v for k, v in kw.items() if v is not None}, **_api_names(opts))
    con = _console()
    if isinstance(res, E2ERun):
        from .render.e2e import render_e2e

        images = _images(res.one2many.trace, image)
        render_e2e(res, con, images)
        if export is not None:
            for branch, r in (("one2many", res.one2many), ("one2one", res.one2one)):
                p = export.with_name(f"{export.stem}.{branch}{export.suffix}")
                r.export(p)
                con.print(f"exported {len(r.trace.tensors())} tensors of the {branch} branch to {p}")
        return
    trace = res.trace
    _warnings(trace, con)
    trace.family.render_loss(trace, con, _images(trace, image))
    _finish(trace, con, export)


@app.command()
@run_options()
def walk(
    labels: LabelsArg = None,
    config: ConfigOpt = None,
    heads: HeadsOpt = None,
    full: FullOpt = False,
    export: ExportOpt = None,
    log: LogOpt = None,
    png: PngOpt = None,
    image_file: ImageFileOpt = None,
    run: dict = None,
) -> None:
    """The whole pipeline stage by stage. With no LABELS and no --config: the seed walkthrough
    (640 px, 8/4/2 grids, 3 classes, batch 4, seven labels), shipped inside the package."""
    from .render.walk import render_walk

    check_output(export, "--export", EXPORT_SUFFIXES)
    check_output(log, "--log")
    if labels is None and config is None:
        data = Path(__file__).resolve().parent / "data"
        config, labels = data / "walkthrough.yaml", data / "walkthrough_labels.txt"
    trace = _assign_like(labels, config, heads, run, png, image_file)
    con = _console(record=log is not None)
    render_walk(trace, con, full)
    _png(trace, list(range(trace.batch)), png, con)
    _finish(trace, con, export)
    if log is not None:
        from .render.terminal import printed_warnings

        text = con.export_text(styles=False) + "".join(f"warning: {w}\n" for w in printed_warnings())
        try:
            log.write_text(text, encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot write log ({e.strerror})", str(log)) from None
        con.print(f"log written to {log}")


@app.command()
@run_options("profile", "topk", "nc", "reg_max", "imgsz", "strides", "single_cls", "model", "device", "images", "batch",
             "seed")
def scan(
    data: Annotated[Path, typer.Argument(help="Dataset YAML (path, train, val, names) or a directory of label files.")],
    config: ConfigOpt = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write every flagged GT and label error to OUT.json.")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="Also run the full assignment with synthetic partly-trained heads.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Processes parsing label files (with --model: threads decoding images).")] = 1,
    split: Annotated[Optional[str], typer.Option("--split", help="With --model and a dataset YAML: train (default), val or test.")] = None,
    top: Annotated[int, typer.Option("--top", help="With --model: worst GTs and images listed.")] = 20,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML audit to OUT.html (tables, charts, the worst GTs drawn).")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="How label rows are read: detect (default), segment, pose or obb; with --model: the model's task.")] = None,
    run: dict = None,
) -> None:
    """Audit every label file of a dataset: label errors, GTs with no candidate anchor, tiny GTs, GTs whose DFL
    targets are clamped at every level; with --simulate, positives per GT from the full assignment. With --model:
    the dataset's images through your model, and per class and size which GTs get no positive or only
    zero-weight ones (runs under torchrun too)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.text import Text

    from .api import scan as do_scan

    check_output(report, "--report", (".json",))
    check_output(html, "--html", (".html", ".htm"))
    model = run.pop("model", None)
    run.pop("save_heads", None)
    opts = {k: v for k, v in run.items() if v is not None}
    images_dir, device = opts.pop("images_dir", None), opts.pop("device", None)
    if model is None and any(k in opts for k in ("batch", "seed")):
        k = next(k for k in ("batch", "seed") if k in opts)
        raise InputError(f"--{k} applies to scan --model only")
    if model is None and (images_dir is not None or device is not None):
        raise InputError(f"--{'images' if images_dir is not None else 'device'} applies to scan --model only")
    if model is not None and simulate:
        raise InputError("--simulate applies to scan without --model (with a model the assignment is real)")
    rank = int(os.environ.get("RANK", "0") or 0)  # under torchrun only rank 0 shows progress and reports
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=_console_err(), transient=True,
                  disable=rank != 0 or not sys.stderr.isatty()) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, advance: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            bar.advance(tasks[stage], advance)
            if model is not None:
                done = bar.tasks[tasks[stage]].completed
                bar.update(tasks[stage], rate=f"{done / max(time.perf_counter() - t0, 1e-9):.1f} img/s")

        rep = do_scan(data, model=model, config=config, simulate=simulate, workers=workers, split=split, top=top,
                      images=images_dir, device=device, progress=progress, task=task, **_api_names(opts))
    if rep is None:  # another torchrun rank: rank 0 reports
        return
    con = _console()
    rep.show(con)
    doc = rep.doc
    if rep.kind == "model":
        res, meta = rep.result, doc["meta"]
        secs, parts, world = meta["seconds"], res.seconds, meta["processes"]
        skipped = f" ({res.n_done - res.n_run} listed as problems, not run)" if res.n_done > res.n_run else ""
        con.print(f"{res.n_run} images through the model{skipped} in {secs:.2f} s ({res.n_run / max(secs, 1e-9):.1f} "
                  f"images/s, {world} process(es)); "
                  f"decode+letterbox {parts['images']:.2f} s, model forward {parts['forward']:.2f} s, assignment + "
                  f"loss {parts['assign_loss']:.2f} s ({100 * parts['assign_loss'] / max(parts['forward'], 1e-9):.0f}% "
                  "of the forward)")
    else:
        n = rep.result.n_files
        con.print(Text(f"{n} files in {doc['seconds']:.2f} s ({n / max(doc['seconds'], 1e-9):,.0f} files/s)",
                       style="dim"))
    if report is not None:
        p = rep.write(report)
        if rep.kind == "model":
            con.print(f"report: {len(doc['per_gt'])} GTs{' (PARTIAL)' if doc['partial'] else ''} written to {p}")
        else:
            con.print(f"report: {len(doc['flagged'])} flagged GTs and {len(doc['errors'])} label errors written to {p}")
    if html is not None:
        p = rep.html(html)
        con.print(f"HTML report written to {p}")
    if rep.partial:
        raise typer.Exit(130)


def _api_names(opts: dict) -> dict:
    """RUN_OPTIONS config keys -> yolotal.inspect / yolotal.scan keyword names."""
    back = {"name": "assigner", "kind": "synthetic", "dense_budget_mb": "budget_mb"}
    return {back.get(k, k): v for k, v in opts.items()}


def _console_err() -> "Console":
    from rich.console import Console

    return Console(stderr=True, width=_width(sys.stderr))


def _warnings_cfg(cfg, con: "Console") -> None:
    from .render.terminal import warn

    for w in cfg.warnings:
        warn(con, w)


@app.command()
@run_options("seed", "synthetic", "batch", "nc", "reg_max", "imgsz", "strides", "budget_mb", "model", "device", "images")
def compare(
    labels: LabelsArg = None,
    assigners: Annotated[str, typer.Option("--assigners", "-a", help="Comma-separated: tal, tal-o2o, simota, atss, yolov5 (yolox-0.3 = simota with that profile).")] = "tal,simota,atss,yolov5",
    config: ConfigOpt = None,
    heads: Annotated[Optional[Path], typer.Option("--heads", help="YOLOv8/11 heads (.npz/.pt) for every assigner that reads predictions.")] = None,
    yolox_heads: Annotated[Optional[Path], typer.Option("--yolox-heads", help="YOLOX-layout heads (5+nc channels) for simota; default: the same predictions as --heads / synthetic.")] = None,
    image: ImageOpt = None,
    png: PngOpt = None,
    image_file: ImageFileOpt = None,
    run: dict = None,
) -> None:
    """Run several assigners on the same labels and predictions: per GT, positives per assigner and level, and
    the anchor cells they disagree on."""
    from .render.others import render_compare

    check_output(png, "--png", (".png",))
    names = [x.strip() for x in assigners.split(",") if x.strip()]
    if not names:
        raise InputError("--assigners: give at least one assigner")
    from .assigners import registry

    specs = {}
    for n in names:
        try:
            specs[n] = registry.resolve(n)
        except KeyError:
            raise InputError(f"--assigners: unknown assigner {n!r} (known: {', '.join(registry.names())}, or a "
                             "profile such as yolox-0.3)") from None
    skipped = []
    if run.get("model") is not None:
        skipped = [n for n in names if not registry.get(specs[n][0]).from_model]
        names = [n for n in names if n not in skipped]
        if not names:
            raise InputError("--model gives YOLOv8/YOLO11 (DFL) heads: compare tal, tal-o2o and atss on them")
    runs = {}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="yolotal-") as tmp:
        for n in names:
            name, profile = specs[n]
            if n in runs:
                raise InputError(f"--assigners: {n} given twice")
            opts = dict(run, name=name, profile=profile)
            saved = Path(tmp) / f"model_heads_{registry.get(name).model_branch}.npz"
            h_path = heads
            if run.get("model") is not None and saved.exists():  # the model ran already: replay its heads
                opts.update(model=None, device=None, save_heads=None)
                h_path = saved
            elif run.get("model") is not None:
                opts["save_heads"] = saved
            runs[n] = _assign_like(labels, config, h_path, opts, png, image_file, yolox_heads, v8_heads=True,
                                   with_loss=False)
    first = runs[names[0]]
    first.notes = [n for n in first.notes if not n.startswith("heads, input images and letterboxes saved to")]
    con = _console()
    _warnings(first, con)
    if skipped:
        con.print(f"{', '.join(skipped)} skipped: SimOTA and YOLOv5 need heads of their own layout (objectness, "
                  "anchors), which a YOLOv8/YOLO11 model does not give")
    con.print(f"assigners: {', '.join(f'{k} ({t.config.assigner.profile})' for k, t in runs.items())} · heads: "
              f"{first.heads_source}")
    images = _images(first, image)
    render_compare(runs, con, images)
    if png is not None:
        from .render.png import render_png_rows

        p = render_png_rows([(t, i) for i in images for t in runs.values()], png)
        con.print(f"PNG written to {p} ({len(images)} image(s) × {len(runs)} assigners × {len(first.levels)} levels)")


@app.command()
def health(
    run_dir: Annotated[Path, typer.Argument(help="An ultralytics run directory (runs/detect/train) holding assign_health.csv, or the CSV itself.")],
    png: Annotated[Optional[Path], typer.Option("--png", help="Where to draw the curves (default: RUN_DIR/assign_health.png).")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write the curves as a self-contained HTML page to OUT.html.")] = None,
) -> None:
    """Assignment health recorded during training by yolotal.ultralytics.monitor(): per epoch, GTs without a
    positive or with only near-zero-weight positives, positives per GT, score and IoU, per size bucket."""
    from .health import CSV_NAME, read_rows
    from .render.health import draw_health_png, render_health

    check_output(html, "--html", (".html", ".htm"))
    path = run_dir / CSV_NAME if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise InputError(f"{path}: no such file (record it with yolotal.ultralytics.monitor(model) during training)")
    try:
        rows = read_rows(path)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: cannot read it as a CSV ({e})") from None
    if not rows or "all/gts" not in rows[0]:
        raise InputError(f"{path}: no epoch rows with assignment counts")
    con = _console()
    render_health(rows, con, str(path))
    out = draw_health_png(rows, png or path.with_suffix(".png"), title=f"assignment health · {path.parent.name}")
    con.print(f"PNG written to {out}")
    if html is not None:
        from .render.html import write_health_html

        con.print(f"HTML written to {write_health_html(rows, html, title=f'assignment health · {path.parent.name}')}")


def main() -> None:
    """Console entry point: exit 2 with one line for bad input, never a traceback.

    Usage errors are reported by Typer itself (exit 2 as well).
    """
    try:
        app()
    except InputError as e:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        sys.exit(2)
    finally:  # the renderers' warnings go back to their own console (library use after a command in-process)
        terminal = sys.modules.get("yolotal.render.terminal")
        if terminal is not None:
            terminal.warnings_to(None)
