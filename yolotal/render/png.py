"""PNG overlays of the assignment: one panel per level for each image, read from the trace only.

Each panel is the imgsz canvas (the letterboxed picture, or white) with the level's stride grid drawn
faintly; each GT box in its own colour with "index:class"; its positive anchors as filled dots at their
centres (radius by target score, relative to the GT's best); its candidates that did not become its
positives as rings; under the ultralytics profile the enlarged candidate box of a small GT dashed; a GT
without any positive in red with a label saying so. A legend runs along the bottom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import profiles as _profiles
from ..atomic import atomic_write
from ..errors import InputError
from ..pipeline import Trace

RED = (220, 20, 20)
WHITE = (255, 255, 255)
GRID = (200, 200, 200)
TEXT = (20, 20, 20)
# distinct, none of them red (red means "no positive")
PALETTE = [(31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207), (140, 86, 75),
           (188, 189, 34), (227, 119, 194), (0, 90, 50), (90, 60, 160), (0, 130, 200), (160, 120, 0)]
HEADER, FOOTER, GAP = 22, 46, 8


def gt_colour(j: int) -> tuple[int, int, int]:
    return PALETTE[j % len(PALETTE)]


@dataclass
class PanelData:
    """What one image shows: positives (anchor, GT, relative score), candidates (anchor, GT), GT facts."""

    pos: list[tuple[int, int, float]]
    cand: list[tuple[int, int]]
    boxes: np.ndarray  # (n, 4) px
    cand_boxes: np.ndarray  # (n, 4) px
    classes: list[int]
    has_pos: list[bool]
    masks: np.ndarray | None = None  # (n, H, W) bool GT masks (segment runs), drawn filled under the boxes
    pred_masks: np.ndarray | None = None  # (n, H, W) bool union of each GT's positives' predicted masks (outlined)
    polys: np.ndarray | None = None  # (n, 4, 2) px corners of rotated GTs (OBB), drawn instead of the boxes
    cand_polys: np.ndarray | None = None  # (n, 4, 2) px corners of their candidate boxes


def panel_data(trace: Trace, image: int) -> PanelData:
    """Positives and candidates of any assigner, from the trace's (image, GT, anchor) triples."""
    n = trace.n_gts(image)
    pos_t = trace["pos_triples"]
    pos_t = pos_t[(pos_t[:, 0] == image) & (pos_t[:, 1] < n)]
    if "target_scores" in trace:
        score = trace["target_scores"][image].amax(-1)
        vals = score[pos_t[:, 2]] if len(pos_t) else torch.zeros(0)
    else:  # assigners without soft scores (yolov5, simota): every positive full size
        vals = torch.ones(len(pos_t))
    best = torch.zeros(max(n, 1))
    if len(pos_t):
        best = best.scatter_reduce(0, pos_t[:, 1], vals, "amax")
    pos = [(a, m, float(v / best[m]) if best[m] > 0 else 0.0) for (_, m, a), v in zip(pos_t.tolist(), vals.tolist())]
    cand_t = trace["cand_triples"]
    cand_t = cand_t[(cand_t[:, 0] == image) & (cand_t[:, 1] < n)]
    owned = {(a, m) for a, m, _ in pos}
    cand = [(a, m) for _, m, a in cand_t.tolist() if (a, m) not in owned]
    has = [False] * n
    for _, m, _ in pos:
        has[m] = True
    boxes = trace["gt_bboxes"][image, :n].numpy()
    cand_boxes = trace["cand_bboxes"][image, :n].numpy() if "cand_bboxes" in trace else boxes
    masks = pred = None
    if "gt_masks" in trace:  # segment runs: GT masks and the predicted masks of each GT's positives
        from ..assigners.seg_family import predicted_masks_of

        masks = trace["gt_masks"][image, :n].numpy()
        pred = np.zeros((n, *trace["protos"].shape[-2:]), bool)
        pos_t = trace["pos_triples"]
        for j in range(n):
            anchors = pos_t[(pos_t[:, 0] == image) & (pos_t[:, 1] == j), 2]
            if len(anchors):
                pred[j] = predicted_masks_of(trace, image, anchors).any(0).numpy()
    polys = cand_polys = None
    if "gt_corners" in trace:  # rotated GTs: their corners, and those of their candidate boxes
        from ..core.rotated import xywhr_to_corners

        polys = trace["gt_corners"][image, :n].numpy()
        cand_polys = xywhr_to_corners(trace["cand_rboxes"][image, :n]).numpy() if "cand_rboxes" in trace else polys
    return PanelData(pos, cand, boxes, cand_boxes, [int(c) for c in trace["gt_labels"][image, :n, 0].tolist()], has,
                     masks=masks, pred_masks=pred, polys=polys, cand_polys=cand_polys)


def _mask_layer(data: PanelData, size: tuple[int, int], colours: list):
    """RGBA layer (w, h) = size: each GT mask filled translucent in its colour, the predicted masks of its
    positives outlined (both scaled from their own resolution by nearest neighbour)."""
    from PIL import Image

    w, h = size
    layer = np.zeros((h, w, 4), np.uint8)
    for j, c in enumerate(colours):
        for m, alpha, outline in ((data.masks[j], 80, False), (data.pred_masks[j], 230, True)):
            if not m.any():
                continue
            ys = (np.arange(h) * m.shape[0] // h)
            xs = (np.arange(w) * m.shape[1] // w)
            big = m[ys][:, xs]
            if outline:  # pixels of the mask with a neighbour outside it
                pad = np.pad(big, 1)
                inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
                big = big & ~inner
            layer[big] = (*c, alpha)
    return Image.fromarray(layer, "RGBA")



def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _dashed_rect(draw, box, colour, dash: int = 4) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    for (ax, ay, bx, by) in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(int(length // (2 * dash)), 1)
        for k in range(steps):
            t0, t1 = (2 * k * dash) / max(length, 1e-9), ((2 * k + 1) * dash) / max(length, 1e-9)
            t1 = min(t1, 1.0)
            draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                      fill=colour, width=1)


def _dashed_poly(draw, pts, colour, dash: int = 4) -> None:
    n = len(pts)
    for k in range(n):
        (ax, ay), (bx, by) = (float(v) for v in pts[k]), (float(v) for v in pts[(k + 1) % n])
        length = max(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5, 1e-9)
        for s in range(max(int(length // (2 * dash)), 1)):
            t0, t1 = 2 * s * dash / length, min((2 * s + 1) * dash / length, 1.0)
            draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                      fill=colour, width=1)


def render_panel(trace: Trace, image: int, level: int, data: PanelData, background: np.ndarray | None):
    """One level of one image: a PIL image of size imgsz."""
    from PIL import Image, ImageDraw

    h, w = trace.config.imgsz
    lv = trace.levels[level]
    s = lv.stride
    base = Image.fromarray(background) if background is not None else Image.new("RGB", (w, h), WHITE)
    grid = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    g = ImageDraw.Draw(grid)
    for x in range(0, w + 1, s):
        g.line([(x, 0), (x, h)], fill=GRID + (90,), width=1)
    for y in range(0, h + 1, s):
        g.line([(0, y), (w, y)], fill=GRID + (90,), width=1)
    img = Image.alpha_composite(base.convert("RGBA"), grid)
    colours = [gt_colour(j) if data.has_pos[j] else RED for j in range(len(data.boxes))]
    if data.masks is not None:
        img = Image.alpha_composite(img, _mask_layer(data, (w, h), colours))
    img = img.convert("RGB")
    d = ImageDraw.Draw(img)
    font = _font(11)
    ap = (trace["anchor_points"] * trace["stride_tensor"]).numpy()
    r_max = max(2.0, s * 0.42)
    enlarge = trace.config.enlargement is not None
    for j, box in enumerate(data.boxes):  # boxes first: dots and rings at anchor centres stay visible on top
        if data.polys is not None:  # a rotated GT: its polygon, its floored candidate box dashed
            if enlarge and not np.allclose(data.cand_polys[j], data.polys[j]):
                _dashed_poly(d, data.cand_polys[j], colours[j])
            d.line([tuple(map(float, p)) for p in data.polys[j]] + [tuple(map(float, data.polys[j][0]))],
                   fill=colours[j], width=2)
            continue
        if enlarge and not np.allclose(data.cand_boxes[j], box):
            _dashed_rect(d, data.cand_boxes[j], colours[j])
        d.rectangle([float(v) for v in box], outline=colours[j], width=2)
    for a, m in data.cand:
        if lv.start <= a < lv.stop:
            x, y = ap[a]
            r = max(2.0, s * 0.3)
            d.ellipse([x - r, y - r, x + r, y + r], outline=gt_colour(m), width=1)
    for a, m, rel in data.pos:
        if lv.start <= a < lv.stop:
            x, y = ap[a]
            r = max(1.5, r_max * (0.45 + 0.55 * rel))
            d.ellipse([x - r, y - r, x + r, y + r], fill=gt_colour(m))
    if "gt_kpts" in trace:  # pose: each GT's keypoints and skeleton in its colour
        draw_keypoints(d, trace["gt_kpts"][image, : len(data.boxes)].numpy(), colours, 3.0)
    for j, box in enumerate(data.boxes):  # labels last
        label = f"{j}:{data.classes[j]}" + ("" if data.has_pos[j] else " no positives")
        tx, ty = float(box[0]) + 2, max(float(box[1]) - 13, 0)
        d.rectangle(d.textbbox((tx, ty), label, font=font), fill=WHITE)
        d.text((tx, ty), label, fill=colours[j], font=font)
    return img


ENLARGING = tuple(p.name for p in _profiles.PROFILES if p.enlarge)



# COCO's 17-keypoint skeleton (0-based keypoint pairs), drawn when K == 17
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                 (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


def draw_keypoints(d, kpts: np.ndarray, colours: list, r: float) -> None:
    """GT keypoints (n, K, 3) px with visibility: labelled ones (v != 0) as dots, those marked occluded (v == 1 of a
    [K, 3] dataset) as rings; unlabelled (v == 0) not drawn; the COCO skeleton between labelled ones when K == 17."""
    for j, kp in enumerate(kpts):
        c = colours[j]
        vis = kp[:, 2] != 0
        if len(kp) == 17:
            for a, b in COCO_SKELETON:
                if vis[a] and vis[b]:
                    d.line([(float(kp[a, 0]), float(kp[a, 1])), (float(kp[b, 0]), float(kp[b, 1]))], fill=c, width=2)
        for x, y, v in kp.tolist():
            if v == 0:
                continue
            box = [x - r, y - r, x + r, y + r]
            if v == 1:
                d.ellipse(box, outline=c, fill=WHITE, width=2)
            else:
                d.ellipse(box, fill=c, outline=WHITE)


def _legend(width: int, profile: str, keypoints: bool = False, masks: bool = False):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, FOOTER), WHITE)
    d = ImageDraw.Draw(img)
    font = _font(12)
    x, y = 10, 8
    items = [("dot", "positive (size: target score / the GT's best)"), ("ring", "candidate, not its positive"),
             ("box", "GT box, index:class")]
    if profile in ENLARGING:
        items.append(("dash", "enlarged candidate box (small sides)"))
    if profile == "yolov5":
        items[1] = ("ring", "(yolov5 has no candidates: anchor boxes are matched by shape)")
    items.append(("red", "GT with no positive"))
    if masks:
        items += [("fill", "GT mask"), ("outline", "predicted mask of its positives")]
    if keypoints:
        items.append(("kpt", "GT keypoint: dot labelled, white ring v=1 (occluded), none v=0; COCO skeleton"))
    for kind, text in items:
        c = PALETTE[0]
        if kind == "dot":
            d.ellipse([x, y + 2, x + 10, y + 12], fill=c)
        elif kind == "ring":
            d.ellipse([x, y + 2, x + 10, y + 12], outline=c, width=1)
        elif kind == "box":
            d.rectangle([x, y + 1, x + 12, y + 13], outline=c, width=2)
        elif kind == "dash":
            _dashed_rect(d, (x, y + 1, x + 12, y + 13), c, dash=2)
        elif kind == "fill":
            d.rectangle([x, y + 1, x + 12, y + 13], fill=tuple(int(255 - (255 - v) * 0.35) for v in c))
        elif kind == "outline":
            d.rectangle([x, y + 1, x + 12, y + 13], outline=c, width=1)
        elif kind == "kpt":
            d.line([(x, y + 10), (x + 12, y + 4)], fill=c, width=2)
            d.ellipse([x - 3, y + 7, x + 3, y + 13], fill=c)
            d.ellipse([x + 9, y + 1, x + 15, y + 7], outline=c, fill=WHITE, width=2)
        else:
            d.rectangle([x, y + 1, x + 12, y + 13], outline=RED, width=2)
        d.text((x + 18, y), text, fill=TEXT, font=font)
        x += 30 + int(d.textlength(text, font=font))
        if x > width - 200:
            x, y = 10, y + 20
    return img


def render_png(trace: Trace, images: list[int], path: str | Path) -> Path:
    """Rows of level panels, one row per image, with headers and a legend; written atomically."""
    return render_png_rows([(trace, i) for i in images], path)


def render_png_rows(rows: list[tuple[Trace, int]], path: str | Path) -> Path:
    """One row of level panels per (trace, image): several images, or several assigners on one image."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError("--png path must end in .png", str(p))
    if not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise InputError("PNG directory does not exist", str(p.parent))
    out = render_rows_image(rows)
    atomic_write(p, lambda fh: out.save(fh, format="PNG"))
    return p


def render_png_image(trace: Trace, images: list[int]):
    """The picture ``render_png`` writes, as a PIL image (notebooks, HTML)."""
    return render_rows_image([(trace, i) for i in images])


def render_rows_image(rows: list[tuple[Trace, int]]):
    """PIL image: one row of level panels per (trace, image), headers and a legend."""
    from PIL import Image, ImageDraw

    from ..inputs.pictures import load_letterboxed

    first = rows[0][0]
    h, w = first.config.imgsz
    n_lv = len(first.levels)
    width = n_lv * w + (n_lv + 1) * GAP
    row_h = HEADER + h + GAP
    out = Image.new("RGB", (width, len(rows) * row_h + FOOTER + GAP), WHITE)
    d = ImageDraw.Draw(out)
    font = _font(13)
    for r, (trace, i) in enumerate(rows):
        pic = trace.pictures[i] if i < len(trace.pictures) else None
        bg = load_letterboxed(pic[0], pic[1], (h, w)) if pic is not None else None
        data = panel_data(trace, i)
        y0 = r * row_h
        for lvi, lv in enumerate(trace.levels):
            x0 = GAP + lvi * (w + GAP)
            d.text((x0, y0 + 4), _fit(font, w, (
                f"{trace.config.assigner.name} ({trace.config.assigner.profile}) · image {i} · {trace.labels.images[i]} "
                f"· level {lvi}: stride {lv.stride}, {lv.h}x{lv.w} anchors",
                f"{trace.config.assigner.name} · image {i} · L{lvi} s{lv.stride} {lv.h}x{lv.w}",
                f"{i} L{lvi} s{lv.stride}")), fill=TEXT, font=font)
            out.paste(render_panel(trace, i, lvi, data, bg), (x0, y0 + HEADER))
    out.paste(_legend(width, first.family.legend(first.config), "gt_kpts" in first, "gt_masks" in first), (0, len(rows) * row_h + GAP // 2))
    return out


def _fit(font, width: int, texts: tuple[str, ...]) -> str:
    """The first of the texts (longest first) that fits the panel's width, so headers never run into each other."""
    for t in texts:
        if font.getlength(t) <= width:
            return t
    return texts[-1]


def panel_origin(trace: Trace, row: int, level: int) -> tuple[int, int]:
    """Top-left pixel of a panel in the PNG (for tests and tools that read the picture back)."""
    h, w = trace.config.imgsz
    return GAP + level * (w + GAP), row * (HEADER + h + GAP) + HEADER
