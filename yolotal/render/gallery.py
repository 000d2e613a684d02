"""Gallery crops for the HTML reports: one GT on the letterboxed picture with its candidates and positives.

A crop is a square window of the imgsz canvas (the picture letterboxed as the trainer sees it, or grey without
one) around the GT, scaled up to a thumbnail and drawn on: the GT box (its colour, red without a positive), the
ultralytics profile's enlarged candidate box dashed, every candidate anchor centre as a ring (levels whose cells
would be under 5 px on the thumbnail left out) and every positive as a filled dot (size by target score),
coloured by level.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

LEVEL_COLOURS = ((31, 119, 180), (255, 127, 14), (148, 103, 189), (23, 190, 207), (140, 86, 75), (227, 119, 194))
BOX_OK, BOX_BAD, BOX_UNKNOWN, GREY = (30, 160, 60), (220, 20, 20), (240, 180, 0), 114


@dataclass(frozen=True)
class GalleryItem:
    """One picture of the gallery: a title, PNG bytes, and the numbers shown beside it (label -> value)."""

    title: str
    png: bytes
    numbers: dict = field(default_factory=dict)
    flags: tuple[str, ...] = ()


def level_colour(stride: float, strides: Sequence[float]) -> tuple[int, int, int]:
    ordered = sorted(set(float(s) for s in strides))
    k = ordered.index(float(stride)) if float(stride) in ordered else 0
    return LEVEL_COLOURS[k % len(LEVEL_COLOURS)]


def crop_window(box: Sequence[float], imgsz: tuple[int, int], min_side: float = 48.0,
                context: float = 0.6) -> tuple[int, int, int]:
    """(x0, y0, side) px of the square view around box (x1, y1, x2, y2): the box's longer side plus ``context`` of
    it on each side, at least ``min_side``, kept on the canvas where it fits."""
    x1, y1, x2, y2 = (float(v) for v in box)
    h, w = imgsz
    side = max(x2 - x1, y2 - y1)
    side = int(math.ceil(min(max(side * (1 + 2 * context), min_side), max(h, w)) - 1e-6))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    x0 = max(min(x0, w - side), 0) if side <= w else (w - side) // 2
    y0 = max(min(y0, h - side), 0) if side <= h else (h - side) // 2
    return x0, y0, side


def canvas_of(picture: str | Path | np.ndarray | None, imgsz: tuple[int, int], letterbox=None) -> np.ndarray:
    """(h, w, 3) uint8: an image path letterboxed onto the canvas (its Letterbox, or ultralytics' for its size), an
    array already on the canvas, or grey 114 without a picture."""
    if isinstance(picture, np.ndarray):
        return picture
    if picture is None:
        return np.full((imgsz[0], imgsz[1], 3), GREY, np.uint8)
    from ..inputs.pictures import image_size, letterbox_for, load_letterboxed

    lb = letterbox if letterbox is not None else letterbox_for(*image_size(picture), imgsz)
    return load_letterboxed(picture, lb, imgsz)


def gt_crop(canvas: np.ndarray, box: Sequence[float], candidates: np.ndarray | None = None,
            positives: np.ndarray | None = None, *, strides: Sequence[float] = (8, 16, 32),
            weights: Sequence[float] | None = None, enlarged: Sequence[float] | None = None, out: int = 192,
            min_side: float = 48.0, known: bool = True) -> bytes:
    """PNG bytes of the crop around one GT.

    canvas (h, w, 3) uint8 letterboxed picture (:func:`canvas_of`); box (4,) px xyxy on it; candidates (K, 3) and
    positives (P, 3) px anchor centres x, y and their stride; weights (P,) each positive's target score relative to
    the GT's best (dot size); enlarged (4,) the candidate box when it differs from the GT box. The box is green
    with a positive, red without, amber when positives are not known (``known=False``: geometry only)."""
    from PIL import Image, ImageDraw

    h, w = canvas.shape[:2]
    x0, y0, side = crop_window(box, (h, w), min_side)
    view = np.full((side, side, 3), GREY, np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    view[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = canvas[sy0:sy1, sx0:sx1]
    scale = out / side
    img = Image.fromarray(view).resize((out, out), Image.NEAREST if scale >= 4 else Image.BILINEAR)
    d = ImageDraw.Draw(img, "RGBA")

    def xy(x: float, y: float) -> tuple[float, float]:
        return (x - x0) * scale, (y - y0) * scale

    cand = np.zeros((0, 3)) if candidates is None else np.asarray(candidates, np.float64).reshape(-1, 3)
    pos = np.zeros((0, 3)) if positives is None else np.asarray(positives, np.float64).reshape(-1, 3)
    n_pos = len(pos)
    colour = (BOX_OK if n_pos else BOX_BAD) if known else BOX_UNKNOWN
    if enlarged is not None and not np.allclose(np.asarray(enlarged, np.float64), np.asarray(box, np.float64)):
        _dashed(d, [*xy(enlarged[0], enlarged[1]), *xy(enlarged[2], enlarged[3])], colour)
    d.rectangle([*xy(box[0], box[1]), *xy(box[2], box[3])], outline=colour, width=2)
    for x, y, s in cand:  # a ring a third of the anchor's cell wide; levels whose cells are under 5 px here are
        if s * scale < 5:  # left out (a carpet of dots says nothing; the count is beside the picture)
            continue
        ring = min(5.0, 0.3 * s * scale)
        px, py = xy(x, y)
        if -ring <= px <= out + ring and -ring <= py <= out + ring:
            d.ellipse([px - ring, py - ring, px + ring, py + ring], outline=level_colour(s, strides) + (220,), width=1)
    wts = [1.0] * n_pos if weights is None else [float(v) for v in weights]
    for (x, y, s), wt in zip(pos, wts):
        px, py = xy(x, y)
        r = max(2.5, min(5.0, 0.3 * s * scale)) * (0.8 + 0.9 * max(0.0, min(1.0, wt)))
        d.ellipse([px - r, py - r, px + r, py + r], fill=level_colour(s, strides), outline=(255, 255, 255), width=1)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def crop_of_image(image: str | Path | None, letterbox, imgsz: tuple[int, int], box: Sequence[float],
                  candidates: np.ndarray | None = None, positives: np.ndarray | None = None,
                  strides: Sequence[float] = (8, 16, 32), **kw) -> bytes:
    """:func:`gt_crop` from an image file: letterboxed onto imgsz by ``letterbox`` (a Letterbox, or None for
    ultralytics' letterbox of its size); None = no picture (grey)."""
    return gt_crop(canvas_of(image, imgsz, letterbox), box, candidates, positives, strides=strides, **kw)


def _dashed(d, rect: list[float], colour, dash: float = 5.0) -> None:
    x1, y1, x2, y2 = rect
    for ax, ay, bx, by in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = max(abs(bx - ax), abs(by - ay), 1e-9)
        t = 0.0
        while t < 1.0:
            t1 = min(t + dash / length, 1.0)
            d.line([(ax + (bx - ax) * t, ay + (by - ay) * t), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                   fill=colour, width=1)
            t += 2 * dash / length


def anchor_centres_in(box: Sequence[float], imgsz: tuple[int, int], strides: Sequence[int]) -> np.ndarray:
    """(K, 3) x, y, stride of the anchor centres strictly inside box (x1, y1, x2, y2) px, every level: the
    in-box test of the assigners' candidate step (centre more than IN_BOX_EPS inside each side)."""
    from ..assigners.tal import IN_BOX_EPS

    h, w = imgsz
    x1, y1, x2, y2 = (float(v) for v in box)
    out = []
    for s in strides:
        xs = (np.arange(w // s) + 0.5) * s
        ys = (np.arange(h // s) + 0.5) * s
        xs = xs[(xs - x1 > IN_BOX_EPS) & (x2 - xs > IN_BOX_EPS)]
        ys = ys[(ys - y1 > IN_BOX_EPS) & (y2 - ys > IN_BOX_EPS)]
        gx, gy = np.meshgrid(xs, ys)
        out.append(np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, float(s))], 1))
    return np.concatenate(out) if out else np.zeros((0, 3))


def gallery_from_trace(trace, n: int = 24, select: Sequence[tuple[str, int]] | None = None,
                       rows: list[dict] | None = None, recs: list | None = None) -> list[GalleryItem]:
    """Crops of the worst ``n`` GTs of an assignment run (or the GTs named by ``select`` as (file, line), in that
    order): its letterboxed picture, candidates (``cand_triples``) and positives (``pos_triples``, dot size by
    target score relative to the GT's best)."""
    import torch

    from ..scan_model import _row
    from .run_rows import names_of, trace_records, worst_key

    recs = trace_records(trace) if recs is None else recs
    rows = [_row(r, names_of(trace)) for r in recs] if rows is None else rows
    where = {}  # (file, line) -> (image, slot)
    for b, origin in enumerate(trace.gt_origin):
        for m, key in enumerate(origin):
            where[tuple(key)] = (b, m)
    if select is not None:
        keys = [tuple(k) for k in select if tuple(k) in where]
    else:
        order = sorted(range(len(recs)), key=lambda i: (worst_key(recs[i]), i))
        keys = [(recs[i].file, recs[i].line) for i in order[:n]]
    by_key = {(r["file"], r["line"]): r for r in rows}
    pts = (trace["anchor_points"] * trace["stride_tensor"]).numpy()
    st = trace["stride_tensor"][:, 0].numpy()
    pos_t, cand_t = trace["pos_triples"], trace["cand_triples"]
    score = trace["target_scores"].amax(-1) if "target_scores" in trace else None
    strides = [float(lv.stride) for lv in trace.levels]
    enlarge = trace.config.assigner.is_tal and trace.config.assigner.profile == "ultralytics" and "cand_bboxes" in trace
    canvases: dict[int, np.ndarray] = {}
    out = []
    for key in keys:
        b, m = where[key]
        if b not in canvases:
            pic = trace.pictures[b] if b < len(trace.pictures) else None
            canvases[b] = canvas_of(pic[0] if pic else None, trace.config.imgsz, pic[1] if pic else None)
        box = trace["gt_bboxes"][b, m].tolist()
        c = cand_t[(cand_t[:, 0] == b) & (cand_t[:, 1] == m), 2] if len(cand_t) else torch.zeros(0, dtype=torch.long)
        p = pos_t[(pos_t[:, 0] == b) & (pos_t[:, 1] == m), 2] if len(pos_t) else torch.zeros(0, dtype=torch.long)
        c, p = c.numpy(), p.numpy()
        wts = None
        if score is not None and len(p):
            s = score[b, p].numpy()
            wts = s / s.max() if s.max() > 0 else np.zeros_like(s)
        png = gt_crop(canvases[b], box, np.c_[pts[c], st[c]], np.c_[pts[p], st[p]], strides=strides, weights=wts,
                      enlarged=trace["cand_bboxes"][b, m].tolist() if enlarge else None)
        r = by_key.get(key, {})
        out.append(GalleryItem(f"{Path(key[0]).name}:{key[1]}", png, _numbers(r, box), tuple(r.get("flags", ()))))
    return out


def _numbers(r: dict, box: Sequence[float]) -> dict:
    out = {"class": r.get("name", r.get("class", "")), "w×h px": f"{box[2] - box[0]:.1f}×{box[3] - box[1]:.1f}"}
    for key, label in (("candidates", "candidates"), ("positives", "positives"),
                       ("weighted_positives", "weighted pos."), ("score_sum", "Σ target score"),
                       ("max_iou", "max IoU")):
        if key in r:
            out[label] = "—" if r[key] is None else r[key]
    return out


def gallery_from_scan(res, n: int = 24, images: Sequence[str | None] | None = None) -> list[GalleryItem]:
    """Crops of the ``n`` worst GTs of a geometry scan (:class:`yolotal.scanning.ScanResult`): no candidate under
    either profile first, then DFL-clamped, then tiny, smallest first. Candidates are the anchor centres inside
    the box (classic) plus, under ultralytics 8.4's rule, inside the box enlarged to stride_val (dashed);
    positives need a model, so none are drawn. ``images``: each label file's image (default: found as scan
    finds them)."""
    import torch

    from ..assigners.tal import TALParams, candidate_boxes
    from ..scanning import find_images

    flags = res.flags()
    g = len(res.parsed.rows)
    if not g:
        return []
    box = res.geo.box_px
    area = np.maximum(box[:, 2] - box[:, 0], 0) * np.maximum(box[:, 3] - box[:, 1], 0)
    order = np.lexsort((np.arange(g), area, ~flags["tiny"], ~flags["clamped"], ~flags["starved_classic"],
                        ~flags["starved_ultralytics"]))
    keep = flags["tiny"] | flags["clamped"] | flags["starved_classic"] | flags["starved_ultralytics"]
    if "no_positives_simulated" in flags:
        keep |= flags["no_positives_simulated"]
    chosen = [int(i) for i in order if keep[i]][:n]
    if not chosen:
        return []
    images = list(images) if images is not None else find_images(res.labels)
    strides = list(res.strides)
    stride_val = float(strides[1] if len(strides) > 1 else strides[0])
    enlarged = candidate_boxes(torch.from_numpy(box[chosen].copy())[None], torch.ones(1, len(chosen), 1),
                               TALParams(num_classes=1, stride_val=stride_val))[0].numpy()
    files = [str(f) for f in res.labels.files]
    canvases: dict[int, np.ndarray] = {}
    out = []
    for k, i in enumerate(chosen):
        fi = int(res.parsed.file[i])
        if fi not in canvases:
            wh = res.parsed.image_wh[fi]
            pic = images[fi] if wh[0] > 0 else None
            from ..inputs.pictures import letterbox_for

            canvases[fi] = canvas_of(pic, res.imgsz, letterbox_for(int(wh[0]), int(wh[1]), res.imgsz) if pic else None)
        cand = anchor_centres_in(enlarged[k], res.imgsz, strides)
        png = gt_crop(canvases[fi], box[i], cand, None, strides=strides, enlarged=enlarged[k], known=False)
        bw, bh = box[i, 2] - box[i, 0], box[i, 3] - box[i, 1]
        cls = int(res.parsed.rows[i, 0])
        names = res.labels.names
        nums = {"class": names[cls] if names and cls < len(names) else str(cls), "w×h px": f"{bw:.1f}×{bh:.1f}",
                "candidates classic": int(res.geo.cand_classic[i].sum()),
                "candidates ultralytics": int(res.geo.cand_ultra[i].sum())}
        if res.positives is not None:
            nums["positives (simulated)"] = int(res.positives[i].sum())
        out.append(GalleryItem(f"{Path(files[fi]).name}:{int(res.parsed.line[i])}", png, nums,
                               tuple(kf for kf, v in flags.items() if v[i])))
    return out


class GalleryCollector:
    """The worst ``n`` GTs' crops over the batches of a ``scan --model`` run, kept while the batches go by (the
    traces are not kept): pass ``collector.add`` as :func:`yolotal.scan_model.run_scan`'s ``on_trace``. Worst is
    the scan --model report's order (no positive, then zero-weight positives, then the smallest target-score sum,
    then batch and GT order), so the gallery shows the report's ``worst_gts``."""

    def __init__(self, n: int = 24, names: list[str] | None = None):
        self.n = n
        self.names = names
        self.kept: list[tuple[tuple, GalleryItem]] = []

    def add(self, batch: int, trace, recs: list | None = None) -> None:
        """One batch's trace (and its GT records, when the caller has them already)."""
        from ..scan_model import _row
        from .run_rows import trace_records, worst_key

        if self.n <= 0:
            return
        recs = trace_records(trace) if recs is None else recs
        rows = [_row(r, self.names) for r in recs]
        keyed = sorted(((*worst_key(rec), batch, i), r) for i, (rec, r) in enumerate(zip(recs, rows)))
        bar = sorted(k for k, _ in self.kept)[self.n - 1] if len(self.kept) >= self.n else None
        pick = [(k, r) for k, r in keyed[: self.n] if bar is None or k < bar]
        if not pick:
            return
        items = gallery_from_trace(trace, select=[(r["file"], r["line"]) for _, r in pick], rows=rows, recs=recs)
        self.kept = sorted(self.kept + [(k, it) for (k, _), it in zip(pick, items)], key=lambda x: x[0])[: self.n]

    def merge(self, others: Sequence["GalleryCollector"]) -> "GalleryCollector":
        """Collectors of several processes (torchrun ranks) as one."""
        for o in others:
            if o is not self:
                self.kept = sorted(self.kept + o.kept, key=lambda x: x[0])[: self.n]
        return self

    @property
    def items(self) -> list[GalleryItem]:
        return [it for _, it in self.kept]
