"""``yolotal scan DATA --model PATH``: the dataset audit with a real model's predictions.

Images go through the model in batches (decoded and letterboxed in ``workers`` threads); each batch then runs
the ordinary pipeline (:func:`yolotal.pipeline.run`: assignment and loss) and every real GT gets one record:
positives (final, as ``mask_pos``), positives that carry weight (target score >= 0.01), the sum of its target
scores, the IoU of its positives' predicted boxes, and flags. Records are aggregated per class and per size
bucket (small < 32², medium < 96², large; letterboxed px).

Under ``torchrun`` (torch.distributed initialised from the environment), rank r takes batches r, r + world, ...
(the same batches a one-process run makes, so every number is the same) and rank 0 merges the records in batch
order and writes the report.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InputError

ZERO_WEIGHT = 0.01  # a positive whose target score is below this teaches (almost) nothing
SIZE_BUCKETS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, math.inf))


@dataclass
class GTRecord:
    file: str
    line: int
    cls: int
    box: tuple[float, float, float, float]  # letterboxed px xyxy
    area: float
    candidates: int
    positives: int
    weighted: int
    score_sum: float
    max_score: float
    iou_mean: float  # mean IoU of its positives' predicted boxes with it (nan without positives)
    iou_max: float
    levels: tuple[int, ...]  # positives per level
    flags: tuple[str, ...]

    @property
    def size(self) -> str:
        return next(name for name, lo, hi in SIZE_BUCKETS if lo <= self.area < hi)


@dataclass
class ModelScan:
    """Results per batch index: (GT records, per-image summaries, errors); merged in batch order."""

    batches: dict[int, tuple[list[GTRecord], list[dict], list[dict]]] = field(default_factory=dict)
    n_done: int = 0  # label files handled (run through the model, or listed as a problem)
    n_run: int = 0  # images that went through the model
    partial: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: {"images": 0.0, "forward": 0.0, "assign_loss": 0.0})
    losses: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # batch -> (box, cls, dfl) weighted

    def _cat(self, i: int) -> list:
        return [x for k in sorted(self.batches) for x in self.batches[k][i]]

    @property
    def records(self) -> list[GTRecord]:
        return self._cat(0)

    @property
    def images(self) -> list[dict]:
        return self._cat(1)

    @property
    def errors(self) -> list[dict]:
        return self._cat(2)


def _flags(r: dict) -> tuple[str, ...]:
    out = []
    if r["candidates"] == 0:
        out.append("no candidate")
    if r["positives"] == 0:
        out.append("no positive")
    elif r["weighted"] == 0:
        out.append("zero-weight positives")
    return tuple(out)


def records_of(trace) -> tuple[list[GTRecord], list[dict]]:
    """Per real GT of a trace: its record; per image: a summary."""
    import torch

    from .core.boxes import box_iou_pairs

    pos, cand = trace["pos_triples"], trace["cand_triples"]
    ts, pb, gb = trace["target_scores"], trace["pred_bboxes"], trace["gt_bboxes"]
    gl = trace["gt_labels"]
    level_of = torch.zeros(trace["anchor_points"].shape[0], dtype=torch.int64)
    for lv in trace.levels:
        level_of[lv.start : lv.stop] = lv.index
    b_i, m_i, a_i = pos.unbind(1) if len(pos) else (torch.zeros(0, dtype=torch.int64),) * 3
    score = ts[b_i, a_i, gl[b_i, m_i, 0].long()] if len(pos) else torch.zeros(0)
    iou = box_iou_pairs(pb[b_i, a_i], gb[b_i, m_i]) if len(pos) else torch.zeros(0)
    key = (b_i * gb.shape[1] + m_i).tolist()
    per: dict[int, list[int]] = {}
    for j, k in enumerate(key):
        per.setdefault(k, []).append(j)
    ncand: dict[int, int] = {}
    for k in (cand[:, 0] * gb.shape[1] + cand[:, 1]).tolist() if len(cand) else []:
        ncand[k] = ncand.get(k, 0) + 1
    records, images = [], []
    score_l, iou_l, lvl_l = score.tolist(), iou.tolist(), level_of[a_i].tolist() if len(pos) else []
    n_levels = len(trace.levels)
    for bi in range(trace.batch):
        starved = 0
        for mi, (f, ln) in enumerate(trace.gt_origin[bi]):
            k = bi * gb.shape[1] + mi
            js = per.get(k, [])
            s = [score_l[j] for j in js]
            u = [iou_l[j] for j in js]
            lv = [0] * n_levels
            for j in js:
                lv[lvl_l[j]] += 1
            box = tuple(float(v) for v in gb[bi, mi].tolist())
            r = dict(candidates=ncand.get(k, 0), positives=len(js), weighted=sum(x >= ZERO_WEIGHT for x in s))
            flags = _flags(r)
            starved += bool(flags)
            records.append(GTRecord(
                f, ln, int(gl[bi, mi, 0]), box, max(box[2] - box[0], 0) * max(box[3] - box[1], 0), r["candidates"],
                r["positives"], r["weighted"], float(sum(s)), max(s, default=0.0),
                float(np.mean(u)) if u else float("nan"), max(u, default=float("nan")), tuple(lv), flags))
        images.append({"image": trace.labels.images[bi], "gts": len(trace.gt_origin[bi]), "starved": starved})
    return records, images


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def run_scan(items: list[tuple[str, str | None]], cfg, lm, batch: int, workers: int,
             progress: Callable[[int], None] | None = None, rank: int = 0, world: int = 1,
             on_trace: Callable | None = None, rules=None) -> ModelScan:
    """Scan (label file, image or None) items with the model: this rank's batches (k % world == rank).
    ``on_trace(k, trace, records)`` sees each batch's trace and GT records before they are dropped (e.g. a gallery
    of the worst GTs).

    A missing or unreadable image, or a label file with bad lines, is recorded and the scan goes on (bad lines
    are skipped); Ctrl-C stops at a batch boundary with ``partial`` set.
    """
    from .inputs.label_rules import LabelRules
    from .inputs.labels import Labels
    from .inputs.model import model_heads
    from .inputs.pictures import _decode_rgb, letterbox_for, model_image
    from .pipeline import run
    from .scanning import _parse_file, too_small

    from .assigners import registry

    fam = registry.get(cfg.assigner.name)
    out = ModelScan()
    batches = _batches(len(items), batch)
    rules = rules if rules is not None else LabelRules(nc=cfg.nc)  # the label rules (task, kpt_shape, single_cls)

    def prepare(idx: int):
        label, image = items[idx]
        got = _parse_file(label, rules)
        errors = [{"file": label, "line": p.line or None, "reason": p.reason} for p in got.problems]
        if image is None:
            return None, errors + [{"file": label, "line": None, "reason": "no image found for this label file"}]
        if got.problems:  # as ultralytics' verify_image_label: one bad row makes the whole image corrupt (skipped)
            why = ("corrupt: skipped whole, as the trainer does" if got.corrupt else
                   "refused: skipped whole (the trainer would train on it)")
            return None, errors + [{"file": label, "line": None, "reason": why}]
        rows, lines = got.rows.tolist(), got.lines.tolist()
        if got.dropped:  # the trainer drops repeated rows (np.unique) and keeps its sorted order
            errors.append({"file": label, "line": got.dropped[0], "reason": f"{len(got.dropped)} duplicate row(s) "
                           f"dropped (line(s) {', '.join(str(ln) for ln in got.dropped[:10])})"})
        try:
            rgb = _decode_rgb(image)
        except InputError as e:
            return None, errors + [{"file": label, "line": None, "reason": str(e)}]
        small = too_small(image, rgb.shape[1], rgb.shape[0])  # as the geometry-only scan rejects it
        if small:
            return None, errors + [{"file": label, "line": None, "reason": small}]
        lb = letterbox_for(rgb.shape[1], rgb.shape[0], cfg.imgsz)
        arr = model_image(rgb, lb, cfg.imgsz)
        segs = list(got.segments) if got.segments is not None else [None] * len(rows)  # polygons / OBB corners
        return (label, image, rows, lines, lb, arr, segs), errors

    import time

    clock = time.perf_counter
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            for k in range(rank, len(batches), world):
                t0 = clock()
                prepared = list(pool.map(prepare, batches[k]))
                ok = [p for p, _ in prepared if p is not None]
                errors = [e for _, errs in prepared for e in errs]
                recs, ims = [], []
                if ok:
                    rows, bidx, origin, segs = [], [], [], []
                    for bi, (label, _, r, lines, _, _, sg) in enumerate(ok):
                        rows += r
                        bidx += [bi] * len(r)
                        origin += [(label, ln) for ln in lines]
                        segs += sg
                    arr = np.asarray(rows, np.float32).reshape(-1, 5)
                    labels = Labels(np.asarray(bidx, np.int64), arr[:, 0].astype(np.int64), arr[:, 1:5].copy(),
                                    tuple(origin), tuple(Path(p[0]).stem for p in ok), tuple(p[0] for p in ok),
                                    task=rules.task,
                                    segments=tuple(segs) if any(x is not None for x in segs) else ())
                    images = np.stack([p[5] for p in ok])
                    t1 = clock()
                    if fam.task == "detect":
                        heads = model_heads(lm, images, lm.describe(cfg.imgsz))
                    else:  # a task family reads its own outputs of the model
                        heads = fam.model_heads(lm, images, lm.describe(cfg.imgsz), "one2many")
                    t2 = clock()
                    trace = run(cfg, labels, heads, with_loss=True, pictures=[p[1] for p in ok],
                                letterboxes=[p[4] for p in ok])
                    recs, ims = records_of(trace)
                    out.losses[k] = tuple(float(trace[n]) for n in ("loss_box", "loss_cls", "loss_dfl"))
                    t3 = clock()
                    out.seconds["images"] += t1 - t0
                    out.seconds["forward"] += t2 - t1
                    out.seconds["assign_loss"] += t3 - t2
                    if on_trace is not None:  # outside the timed stages
                        on_trace(k, trace, recs)
                    for im, p in zip(ims, ok):
                        lb = p[4]
                        im.update(file=p[0], picture=str(p[1]), orig_wh=[lb.w0, lb.h0], r=lb.r, pad=[lb.left, lb.top])
                out.batches[k] = (recs, ims, errors)
                out.n_done += len(batches[k])
                out.n_run += len(ok)
                if progress:
                    progress(len(batches[k]))
        except KeyboardInterrupt:
            out.partial = True
    return out


def merge(parts: list[ModelScan]) -> ModelScan:
    """Merge per-rank results: batches in index order, as a one-process run orders them."""
    merged = ModelScan()
    for res in parts:
        merged.batches.update(res.batches)
        merged.losses.update(res.losses)
        for key, v in res.seconds.items():
            merged.seconds[key] += v
        merged.n_done += res.n_done
        merged.n_run += res.n_run
        merged.partial |= res.partial
    return merged


def summarise(res: ModelScan, names: list[str] | None, top: int = 20) -> dict:
    """The report: per class and per size bucket, the worst GTs and images, every GT's row."""
    recs = res.records

    def stats(sel: list[GTRecord]) -> dict:
        n = len(sel)
        pos = sum(r.positives for r in sel)
        scores = [r.score_sum for r in sel]
        ious = [r.iou_mean * r.positives for r in sel if r.positives]
        return {  # None where there is nothing to average (no GT, or no positive)
            "gts": n,
            "no_positive_pct": round(100.0 * sum(r.positives == 0 for r in sel) / n, 2) if n else None,
            "zero_weight_pct": round(100.0 * sum(r.positives > 0 and r.weighted == 0 for r in sel) / n, 2) if n else None,
            "positives_per_gt": round(pos / n, 3) if n else None,
            "mean_target_score": round(sum(scores) / pos, 4) if pos else None,
            "mean_iou": round(sum(ious) / pos, 4) if pos else None,
        }

    classes = sorted({r.cls for r in recs})
    by_class = {(names[c] if names and c < len(names) else str(c)): stats([r for r in recs if r.cls == c])
                for c in classes}
    by_size = {name: stats([r for r in recs if r.size == name]) for name, _, _ in SIZE_BUCKETS}
    order = sorted(range(len(recs)), key=lambda i: (recs[i].positives > 0, recs[i].weighted > 0, recs[i].score_sum, i))
    worst = [_row(recs[i], names) for i in order[:top] if recs[i].flags or recs[i].score_sum < 1.0]
    worst_images = sorted(res.images, key=lambda d: (-d["starved"], -d["gts"], d["file"]))[:top]
    worst_images = [d for d in worst_images if d["starved"]]
    losses = [res.losses[k] for k in sorted(res.losses)]
    return {
        "partial": res.partial,
        "images": res.n_done,
        "images_run": res.n_run,
        "loss_mean": {name: round(float(np.mean([x[i] for x in losses])), 5) if losses else None
                      for i, name in enumerate(("box", "cls", "dfl"))},
        "gts": len(recs),
        "all": stats(recs),
        "by_class": by_class,
        "by_size": by_size,
        "worst_gts": worst,
        "worst_images": worst_images,
        "errors": res.errors,
        "per_gt": [_row(r, names) for r in recs],
        # every image run: its file, picture, original size, letterbox scale r and padding, GTs, starved GTs
        "per_image": list(res.images),
    }


def _row(r: GTRecord, names) -> dict:
    return {
        "file": r.file, "line": r.line, "class": r.cls,
        "name": names[r.cls] if names and r.cls < len(names) else str(r.cls),
        "box": [round(v, 2) for v in r.box], "size": r.size, "candidates": r.candidates, "positives": r.positives,
        "weighted_positives": r.weighted, "score_sum": round(r.score_sum, 5), "max_score": round(r.max_score, 5),
        "mean_iou": None if math.isnan(r.iou_mean) else round(r.iou_mean, 4),
        "max_iou": None if math.isnan(r.iou_max) else round(r.iou_max, 4),
        "positives_per_level": list(r.levels), "flags": list(r.flags),
    }


def distributed() -> tuple[int, int]:
    """(rank, world) when launched by torchrun (initialises the process group once), else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        import torch

        backend = os.environ.get("YOLOTAL_DIST_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend not in ("gloo", "nccl"):
            raise InputError(f"YOLOTAL_DIST_BACKEND: expected gloo or nccl, got {backend!r}")
        if backend == "nccl" and not torch.cuda.is_available():
            raise InputError("YOLOTAL_DIST_BACKEND=nccl needs CUDA devices; use gloo on the CPU")
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()
