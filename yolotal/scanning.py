"""Dataset audit: every label file of a dataset, every GT's geometric fate, without stopping at a problem.

Per file, the lines are read by the trainer's rules (:mod:`yolotal.inputs.label_rules`, the reader every command
uses: polygon rows as their boxes, pose rows' boxes, the 1.01 / -0.01 rule, ...); a bad line becomes an error
record (file, line, reason), and as in ultralytics' ``verify_image_label`` a file with one makes its image
corrupt (left out of the audit); repeated rows are dropped as there. A file listed by several splits is
audited once. Each file's image size is read from its header and its labels are
letterboxed onto the ``imgsz`` canvas like every other command does (without an image: the normalised boxes
scaled to the canvas). Per GT, on that canvas:

* candidates per level under both profiles: anchor centres strictly inside the box (``classic``) or inside
  the box enlarged to ``stride_val`` (``ultralytics``) -- the same arithmetic as the assigner. A GT with
  no classic candidate can never be a positive under ultralytics 8.0-8.3.
* tiny: a side shorter than the smallest stride.
* clamped: at every level where some anchor centre lies inside the box, even the best-placed one (nearest
  the box centre) is farther than ``reg_max - 1.01`` strides from a side, so every DFL target of the GT is
  clamped (ultralytics issue #11634's silent failure).

Parsing is per file (parallel with ``workers``); the geometry runs vectorised over all GTs at once.
``simulate`` adds the full assignment with synthetic partly-trained heads, on candidate pairs.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InputError
from .inputs.dataset import LabelSet, find_labels  # noqa: F401  (find_labels: part of scan's interface)
from .inputs.label_rules import FileRead, LabelRules, ReadNotes, read_label_file

SIZE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, math.inf)  # sqrt(w*h) px bins of the size histogram
CHUNK = 256  # files per worker task


@dataclass
class Parsed:
    """Rows of a group of files. rows (n, 5) float32 cls cx cy w h; file (n,) and line (n,) int."""

    rows: np.ndarray
    file: np.ndarray
    line: np.ndarray
    errors: list[tuple[int, int, str]]  # (file index, line, reason)
    empty: np.ndarray  # (files,) bool: file holds no labels (missing or empty: a background image)
    corrupt: np.ndarray | None = None  # (files,) bool: skipped whole (the trainer's reason, or a yolotal refusal)
    duplicates: list[tuple[int, list[int]]] = field(default_factory=list)  # (file index, lines dropped)
    image_wh: np.ndarray | None = None  # (files, 2) int: each file's image size from its header, 0 = no image
    refused: np.ndarray | None = None  # (files,) bool: skipped by yolotal although the trainer reads it
    polygons: int = 0  # polygon rows read as their boxes
    pose_rows: int = 0  # pose rows read as their boxes
    fill: np.ndarray | None = None  # (n,) float32 polygon area / box area of each row (task segment only)
    corners: np.ndarray | None = None  # (n, 4, 2) float32 normalised OBB corners of the rows (task obb only)
    kpt_visible: np.ndarray | None = None  # (n,) int: a pose row's keypoints with visibility > 0 (pose task only)


# ------------------------------------------------------------------------------------------------ parsing
def _parse_file(path: str, rules: LabelRules | int | None) -> FileRead:
    """One label file by the trainer's rules (:func:`yolotal.inputs.label_rules.read_label_file`; an int or None:
    a detection task with that nc). A missing file is background; nothing raises."""
    if not isinstance(rules, LabelRules):
        rules = LabelRules(nc=rules)
    return read_label_file(path, rules)


def _image_wh(path: str | None) -> tuple[int, int, str]:
    """(w, h) of a label file's image from its header, (0, 0) without one; a reason when ultralytics' check_image
    would call it corrupt (unreadable, or a side under 10 px)."""
    if path is None:
        return 0, 0, ""
    from .inputs.pictures import image_size

    try:
        w, h = image_size(path)
    except InputError as e:
        return 0, 0, f"image {path}: {e.message}"
    small = too_small(path, w, h)
    return (0, 0, small) if small else (w, h, "")


def too_small(path: str, w: int, h: int) -> str:
    """Why ultralytics' check_image rejects an image of w × h px (a side under 10 px), or ""."""
    return f"image {path}: size {w}×{h} is under 10 px (ultralytics rejects it)" if min(w, h) < 10 else ""


def _parse_chunk(args: tuple[list[str], int, LabelRules, list[str | None]]) -> Parsed:
    paths, first, rules, images = args
    rows, files, lines, errors, dups = [], [], [], [], []
    corners: list[np.ndarray] = []
    empty = np.zeros(len(paths), bool)
    corrupt = np.zeros(len(paths), bool)
    refused = np.zeros(len(paths), bool)
    wh = np.zeros((len(paths), 2), np.int64)
    said = ReadNotes()
    fills: list[np.ndarray] = []
    vis: list[np.ndarray] = []
    for k, path in enumerate(paths):
        w, h, bad = _image_wh(images[k])
        wh[k] = w, h
        got = _parse_file(path, rules)
        er = [(p.line, p.reason) for p in got.problems]
        if bad:
            er = [(0, bad)] + er
        if er:  # ultralytics' verify_image_label: one bad row makes the whole image corrupt (skipped)
            errors += [(first + k, line, why) for line, why in er]
            corrupt[k] = True
            refused[k] = not bad and not got.corrupt
            continue
        said.add(got, rules)
        rows.append(got.rows)
        if rules.task == "segment":
            fills.append(polygon_fill(got.segments, got.rows))
        if rules.task == "obb":
            corners += [np.asarray(q, np.float32).reshape(4, 2) for q in (got.segments or ())]
        files += [first + k] * len(got.rows)
        lines.append(got.lines)
        if rules.task == "pose":
            kp = got.keypoints if got.keypoints is not None else np.zeros((len(got.rows), 1, 3), np.float32)
            vis.append((kp[..., 2] > 0).sum(1).astype(np.int64))
        empty[k] = not len(got.rows)
        if got.dropped:
            dups.append((first + k, list(got.dropped)))
    return Parsed(np.concatenate(rows) if rows else np.zeros((0, 5), np.float32), np.array(files, np.int64),
                  np.concatenate(lines) if lines else np.zeros(0, np.int64), errors, empty, corrupt, dups,
                  image_wh=wh, refused=refused, polygons=said.polygons, pose_rows=said.pose_rows,
                  fill=(np.concatenate(fills) if fills else np.zeros(0, np.float32)) if rules.task == "segment" else None,
                  corners=np.stack(corners) if corners else np.zeros((0, 4, 2), np.float32)
                  if rules.task == "obb" else None,
                  kpt_visible=(np.concatenate(vis) if vis else np.zeros(0, np.int64)) if rules.task == "pose" else None)


def polygon_fill(segments, rows: np.ndarray) -> np.ndarray:
    """(n,) float32: each polygon's area (shoelace, absolute) over its box's area, both in normalised units (the
    ratio is the same on the letterboxed canvas: both scale alike). 0 for a row without a polygon or box area."""
    out = np.zeros(len(rows), np.float32)
    for i, seg in enumerate(segments or ()):
        p = np.asarray(seg, np.float64).reshape(-1, 2)
        box = float(rows[i, 3]) * float(rows[i, 4])
        if len(p) >= 3 and box > 0:
            x, y = p[:, 0], p[:, 1]
            out[i] = abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2 / box
    return out


def parse_all(files: list[Path], nc: int | None | LabelRules, workers: int = 1,
              progress: Callable[[int], None] | None = None, images: list[str | None] | None = None) -> Parsed:
    """Parse every file (and read the header of its image, where given) by the trainer's rules (``nc``: a
    detection task with that class count, or the LabelRules); ``workers`` > 1 spreads chunks of files over
    processes."""
    rules = nc if isinstance(nc, LabelRules) else LabelRules(nc=nc)
    images = list(images) if images is not None else [None] * len(files)
    chunks = [([str(f) for f in files[i : i + CHUNK]], i, rules, images[i : i + CHUNK])
              for i in range(0, len(files), CHUNK)]
    parts: list[Parsed] = []
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for part, ch in zip(ex.map(_parse_chunk, chunks), chunks):
                parts.append(part)
                if progress:
                    progress(len(ch[0]))
    else:
        for ch in chunks:
            parts.append(_parse_chunk(ch))
            if progress:
                progress(len(ch[0]))
    if not parts:
        return Parsed(np.zeros((0, 5), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), [], np.zeros(0, bool),
                      np.zeros(0, bool), image_wh=np.zeros((0, 2), np.int64), refused=np.zeros(0, bool))
    return Parsed(
        np.concatenate([p.rows for p in parts]), np.concatenate([p.file for p in parts]),
        np.concatenate([p.line for p in parts]), [e for p in parts for e in p.errors],
        np.concatenate([p.empty for p in parts]), np.concatenate([p.corrupt for p in parts]),
        [d for p in parts for d in p.duplicates], image_wh=np.concatenate([p.image_wh for p in parts]),
        refused=np.concatenate([p.refused for p in parts]), polygons=sum(p.polygons for p in parts),
        pose_rows=sum(p.pose_rows for p in parts),
        fill=np.concatenate([p.fill for p in parts]) if parts[0].fill is not None else None,
        corners=np.concatenate([p.corners for p in parts]) if parts[0].corners is not None else None,
        kpt_visible=np.concatenate([p.kpt_visible for p in parts]) if parts[0].kpt_visible is not None else None,
    )


def find_images(ls: LabelSet) -> list[str | None]:
    """Each label file's image: the one a dataset YAML listed, else ultralytics' pairing (``labels/`` ->
    ``images/``, then beside the label file; :func:`yolotal.inputs.pictures.image_candidates`), looked up in
    directory listings read once per directory."""
    import os

    from .inputs.pictures import IMAGE_SUFFIXES, image_candidates

    rank = {suf: i for i, suf in enumerate(IMAGE_SUFFIXES)}
    listings: dict[Path, dict[str, tuple[int, str]]] = {}

    def listing(d: Path) -> dict[str, tuple[int, str]]:
        if d not in listings:
            found: dict[str, tuple[int, str]] = {}
            try:
                with os.scandir(d) as it:
                    for e in it:
                        stem, dot, suf = e.name.rpartition(".")
                        r = rank.get("." + suf.lower()) if dot else None
                        if r is not None and stem and (stem not in found or r < found[stem][0]) and e.is_file():
                            found[stem] = (r, e.path)
            except OSError:
                pass
            listings[d] = found
        return listings[d]

    out: list[str | None] = []
    for f, img in zip(ls.files, ls.images or [None] * len(ls.files)):
        if img is not None:
            out.append(str(img))
            continue
        hit = None
        for c in image_candidates(f):
            got = listing(c.parent).get(c.name)
            if got is not None:
                hit = got[1]
                break
        out.append(hit)
    return out


def letterbox_rows(rows: np.ndarray, file: np.ndarray, image_wh: np.ndarray, imgsz: tuple[int, int]) -> np.ndarray:
    """Rows (G, 5) of files with an image mapped through its ultralytics letterbox onto the imgsz canvas, exactly
    as :func:`yolotal.inputs.pictures.apply_letterbox` maps a batch's labels; rows of other files unchanged."""
    from .inputs.pictures import letterbox_for

    n = len(image_wh)
    sx, sy = np.zeros(n), np.zeros(n)
    left, top = np.zeros(n), np.zeros(n)
    has = image_wh[:, 0] > 0
    for i in np.nonzero(has)[0]:
        lb = letterbox_for(int(image_wh[i, 0]), int(image_wh[i, 1]), imgsz)
        sx[i], sy[i], left[i], top[i] = lb.w0 * lb.r, lb.h0 * lb.r, lb.left, lb.top
    h, w = imgsz
    sel = has[file]
    f = file[sel]
    x = rows[sel, 1:5].astype(np.float64)
    out = rows.copy()
    out[sel, 1] = ((x[:, 0] * sx[f] + left[f]) / w).astype(np.float32)
    out[sel, 2] = ((x[:, 1] * sy[f] + top[f]) / h).astype(np.float32)
    out[sel, 3] = (x[:, 2] * sx[f] / w).astype(np.float32)
    out[sel, 4] = (x[:, 3] * sy[f] / h).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------------ geometry
@dataclass
class Geometry:
    """Per-GT facts, each (G,) or (G, L).

    box_px (G, 4) xyxy on the imgsz canvas; cand_classic, cand_ultra (G, L) in-box anchors per level;
    clamped_at (G, L) bool: even the best anchor inside clamps a DFL target; tiny (G,) bool.
    """

    box_px: np.ndarray
    cand_classic: np.ndarray
    cand_ultra: np.ndarray
    clamped_at: np.ndarray
    tiny: np.ndarray
    rboxes: np.ndarray | None = None  # OBB: (G, 5) px cx, cy, w, h, angle rad of the rotated GTs
    dropped: np.ndarray | None = None  # OBB: (G,) bool: a side under 2 px, dropped by the trainer

    @property
    def starved_classic(self) -> np.ndarray:
        return self.cand_classic.sum(1) == 0

    @property
    def starved_ultra(self) -> np.ndarray:
        return self.cand_ultra.sum(1) == 0

    @property
    def clamped(self) -> np.ndarray:
        """Clamped at every level where an anchor centre lies inside the box (and inside at one level at least)."""
        inside = self.cand_classic > 0
        return inside.any(1) & ~(inside & ~self.clamped_at).any(1)


def geometry(rows: np.ndarray, imgsz: tuple[int, int], strides: tuple[int, ...], reg_max: int) -> Geometry:
    """Per-GT candidate counts (both profiles), tiny and clamped flags, vectorised over all GTs."""
    import torch

    from .assigners.tal import TALParams, candidate_boxes
    from .assigners.tal_sparse import GridLevel, _cell_rect
    from .core.boxes import xywh_to_xyxy

    h, w = imgsz
    xywh = torch.from_numpy(rows[:, 1:5].copy()) * torch.tensor([w, h, w, h], dtype=torch.float32)
    box = xywh_to_xyxy(xywh)  # the assigner's pixel boxes: scale, then corners
    stride_val = float(strides[1] if len(strides) > 1 else strides[0])
    # the ultralytics profile's candidate boxes, from the assigner's own function
    enlarged = candidate_boxes(box[None], torch.ones(1, len(box), 1), TALParams(num_classes=1, stride_val=stride_val))[0]
    wh = box[:, 2:] - box[:, :2]
    centre = (box[:, :2] + box[:, 2:]) / 2
    cand_c, cand_u, clamp = [], [], []
    limit = reg_max - 1 - 0.01
    for s in strides:
        lv = GridLevel(0, w // s, h // s, float(s))
        x0, nx, y0, ny = _cell_rect(box, lv)
        cand_c.append((nx * ny).numpy())
        _, nxu, _, nyu = _cell_rect(enlarged, lv)
        cand_u.append((nxu * nyu).numpy())
        # the anchor inside nearest the centre minimises the largest side distance, separably in x and y
        ix = torch.clamp(torch.round(centre[:, 0] / s - 0.5), x0.float(), (x0 + nx - 1).float())
        iy = torch.clamp(torch.round(centre[:, 1] / s - 0.5), y0.float(), (y0 + ny - 1).float())
        ax, ay = (ix + 0.5) * s, (iy + 0.5) * s
        far = torch.maximum(torch.maximum(ax - box[:, 0], box[:, 2] - ax), torch.maximum(ay - box[:, 1], box[:, 3] - ay))
        clamp.append(((far / s > limit) & (nx * ny > 0)).numpy())
    return Geometry(
        box_px=box.numpy(), cand_classic=np.stack(cand_c, 1), cand_ultra=np.stack(cand_u, 1),
        clamped_at=np.stack(clamp, 1), tiny=(wh.min(1).values < min(strides)).numpy(),
    )


SIMULATE_BATCH = 256  # files per assignment batch of --simulate


def simulate(rows: np.ndarray, file: np.ndarray, n_files: int, imgsz: tuple[int, int], strides: tuple[int, ...],
             reg_max: int, nc: int, profile: str, topk: int, seed: int = 0, batch: int = SIMULATE_BATCH,
             progress: Callable[[int], None] | None = None, first: int = 0) -> np.ndarray:
    """Positives per GT and level (G, L) from the full assignment with synthetic partly-trained heads.

    rows (G, 5) cls cx cy w h normalised (already letterboxed onto the canvas), file (G,) file index. The
    heads are evaluated only at the candidate anchors (:func:`yolotal.inputs.heads.trained_at`), with each
    file's index as its image number, so the result is that of ``yolotal assign`` with ``--synthetic trained``
    on the files one by one, whatever the batch size. Files ``first`` .. ``n_files - 1`` are simulated (``file``
    holds global file indices in that range).
    """
    import torch

    from .assigners.tal import IN_BOX_EPS, TALParams, candidate_boxes
    from .assigners.tal_sparse import candidate_pairs, pair_positives
    from .config import Config
    from .core.anchors import levels_for, make_anchors
    from .core.boxes import complete_box_iou_gathered, xywh_to_xyxy
    from .core.decode import ltrb_to_xyxy
    from .inputs.heads import _padded, trained_at, trained_background_logits, trained_distances

    cfg = Config(imgsz=imgsz, strides=strides, nc=nc, reg_max=reg_max)
    levels = levels_for(cfg.grids, strides)
    pts, st = make_anchors(levels)
    anc_px, st1 = pts * st, st[:, 0]
    n_anc = pts.shape[0]
    level_of = np.concatenate([np.full(lv.count, lv.index) for lv in levels])
    p = TALParams(num_classes=nc, topk=topk, profile=profile, stride_val=cfg.stride_val,
                  strides=tuple(float(x) for x in strides))
    h, w = imgsz
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    out = np.zeros((len(rows), len(strides)), np.int64)
    order = np.argsort(file, kind="stable")
    starts = np.arange(first, n_files, batch)
    bounds = np.searchsorted(file[order], np.append(starts, n_files))
    for j, k in enumerate(starts.tolist()):
        sel = order[bounds[j] : bounds[j + 1]]
        done = min(batch, n_files - k)
        if not len(sel):
            if progress:
                progress(done)
            continue
        b_idx = file[sel] - k
        nb = int(b_idx.max()) + 1
        # pixel boxes as the pipeline makes them: scale the normalised xywh, then corners
        xyxy = xywh_to_xyxy(torch.from_numpy(rows[sel, 1:5].copy()) * scale).numpy()
        gl, gb, valid = _padded(nb, b_idx, rows[sel, 0].astype(np.int64), xyxy)
        m = gb.shape[1]
        valid &= gb.sum(2) > 0  # the reference's mask_gt: a box whose corners sum to <= 0 is padding
        seg, key = candidate_pairs(anc_px, candidate_boxes(gb, valid[..., None].float(), p), valid)
        if not seg.numel():
            if progress:
                progress(done)
            continue
        uk, inv = torch.unique(key, return_inverse=True)
        ids = np.arange(k, k + nb)
        # the heads' owners: pairs whose anchor centre is inside the real box (the candidates themselves under the
        # classic profile; under ultralytics' the enlarged boxes' pairs that pass the same in-box test)
        box = gb.reshape(-1, 4)[seg]
        ap = anc_px[key % n_anc]
        inside = ((ap[:, 0] - box[:, 0] > IN_BOX_EPS) & (ap[:, 1] - box[:, 1] > IN_BOX_EPS)
                  & (box[:, 2] - ap[:, 0] > IN_BOX_EPS) & (box[:, 3] - ap[:, 1] > IN_BOX_EPS))
        at = trained_at(uk, anc_px, st1, gb, gl, valid, seed, reg_max, ids, (seg[inside], key[inside]))
        a = uk % n_anc
        ltrb = trained_distances(at.dist, reg_max)  # the DFL decode of the heads' logits, from its table
        pred = ltrb_to_xyxy(ltrb, pts[a]) * st[a]  # (K, 4) px, as the pipeline decodes
        label = gl.reshape(-1)[seg]
        logit = at.owner_logit[inv]
        other = (at.owner_cls[inv] != label).nonzero().squeeze(1)  # the pair's class is background there
        logit[other] = trained_background_logits(key[other], label[other], n_anc, seed, ids)
        u = complete_box_iou_gathered(gb.reshape(-1, 4), seg, pred, inv).clamp_(min=0)
        _, _, pos, _ = pair_positives(seg, key, logit.sigmoid(), u, nb, m, n_anc, p)
        # slot m of image b is the m-th GT of that file in row order: map back to rows
        slot_pos = np.full(nb * max(m, 1), -1, np.int64)  # GT slot -> its position in sel
        rank = np.arange(len(sel)) - np.searchsorted(b_idx, b_idx)  # b_idx is sorted (stable by file)
        slot_pos[b_idx * m + rank] = np.arange(len(sel))
        ps, pk = seg[pos].numpy(), key[pos].numpy()
        n_lv = len(strides)
        local = slot_pos[ps] * n_lv + level_of[pk % n_anc]
        out[sel] += np.bincount(local, minlength=len(sel) * n_lv).reshape(-1, n_lv)
        if progress:
            progress(done)
    return out


def _simulate_part(args: tuple) -> np.ndarray:
    """One worker's share of :func:`simulate_all`: one torch thread per process (threads of several processes
    competing for the cores slow each other down far more than they help)."""
    import torch

    torch.set_num_threads(1)
    rows, file, lo, hi, rest = args
    return simulate(rows, file, hi, *rest, first=lo)


def simulate_all(rows: np.ndarray, file: np.ndarray, n_files: int, imgsz: tuple[int, int], strides: tuple[int, ...],
                 reg_max: int, nc: int, profile: str, topk: int, workers: int = 1,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """:func:`simulate` over all files, in ``workers`` processes when more than one (ranges of 4 batches of
    files each; the result does not depend on how the files are split)."""
    rest = (imgsz, strides, reg_max, nc, profile, topk)
    if workers <= 1 or n_files <= SIMULATE_BATCH:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # measured: on a busy machine, torch's threads cost far more than they gain here
        try:
            return simulate(rows, file, n_files, *rest, progress=progress)
        finally:
            torch.set_num_threads(threads)
    step = 4 * SIMULATE_BATCH
    cuts = np.searchsorted(file, np.arange(0, n_files + step, step))  # file is sorted (parse order)
    tasks = [(rows[cuts[i]:cuts[i + 1]], file[cuts[i]:cuts[i + 1]], lo, min(lo + step, n_files), rest)
             for i, lo in enumerate(range(0, n_files, step))]
    out = []
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for t, part in zip(tasks, ex.map(_simulate_part, tasks)):
            out.append(part)
            if progress:
                progress(t[3] - t[2])
    return np.concatenate(out) if out else np.zeros((0, len(strides)), np.int64)


# ------------------------------------------------------------------------------------------------ report
@dataclass
class ScanResult:
    labels: LabelSet
    imgsz: tuple[int, int]
    strides: tuple[int, ...]
    reg_max: int
    parsed: Parsed
    geo: Geometry
    positives: np.ndarray | None  # (G, L) with --simulate
    notes: tuple[str, ...] = ()  # what the reader says once (polygon rows read as boxes, ...)

    @property
    def n_files(self) -> int:
        return len(self.labels.files)

    def flags(self) -> dict[str, np.ndarray]:
        """Each flag as a (G,) bool array."""
        out = {
            "starved_classic": self.geo.starved_classic,
            "starved_ultralytics": self.geo.starved_ultra,
            "tiny": self.geo.tiny,
            "clamped": self.geo.clamped,
        }
        if self.parsed.fill is not None:  # segment: sparse polygons, masks too small for imgsz / 4
            out.update(seg_flags(self.parsed.fill, self.geo.box_px))
        if self.geo.dropped is not None:
            out["dropped_under_2px"] = self.geo.dropped
        if self.positives is not None:
            out["no_positives_simulated"] = self.positives.sum(1) == 0
        if self.parsed.kpt_visible is not None:
            out["no_visible_keypoints"] = self.parsed.kpt_visible == 0
        return out


SPARSE_FILL = 0.25  # a polygon covering under a quarter of its box: mostly background inside the box
MASK_RATIO = 4  # GT masks at imgsz / 4


def seg_flags(fill: np.ndarray, box_px: np.ndarray) -> dict[str, np.ndarray]:
    """Per GT: ``sparse_polygon`` (polygon area < SPARSE_FILL of its box) and ``mask_under_1px`` (polygon area on
    the canvas under one pixel of the imgsz / 4 GT mask: its mask is likely empty)."""
    area = (box_px[:, 2] - box_px[:, 0]) * (box_px[:, 3] - box_px[:, 1]) * fill
    return {"sparse_polygon": fill < SPARSE_FILL, "mask_under_1px": area < MASK_RATIO ** 2}


def seg_report(res: "ScanResult") -> dict:
    """Polygon area vs box, per class and per size (sqrt of the box area on the canvas)."""
    fill, geo, rows = res.parsed.fill, res.geo, res.parsed.rows
    box_area = (geo.box_px[:, 2] - geo.box_px[:, 0]) * (geo.box_px[:, 3] - geo.box_px[:, 1])
    mask_px = box_area * fill / MASK_RATIO ** 2
    fl = seg_flags(fill, geo.box_px)
    names = res.labels.names

    def stats(sel: np.ndarray) -> dict:
        f = fill[sel]
        return {"gts": int(sel.sum()), "mean_fill": round(float(f.mean()), 4) if len(f) else None,
                "median_fill": round(float(np.median(f)), 4) if len(f) else None,
                "sparse": int(fl["sparse_polygon"][sel].sum()), "mask_under_1px": int(fl["mask_under_1px"][sel].sum()),
                "median_mask_px": round(float(np.median(mask_px[sel])), 1) if len(f) else None}

    cls = rows[:, 0].astype(np.int64)
    side = np.sqrt(np.maximum(box_area, 0))
    by_size = {}
    for i in range(len(SIZE_BINS) - 1):
        sel = (side >= SIZE_BINS[i]) & (side < SIZE_BINS[i + 1])
        if sel.any():
            by_size[f"{SIZE_BINS[i]}-{SIZE_BINS[i + 1]}"] = stats(sel)
    edges = (0, 0.1, SPARSE_FILL, 0.5, 0.75, 1.0001, math.inf)
    hist = np.histogram(fill, bins=np.array(edges))[0] if len(fill) else np.zeros(len(edges) - 1, np.int64)
    return {"fill": "polygon area / box area (shoelace area of the label polygon; the same on the canvas)",
            "mask_ratio": MASK_RATIO, "all": stats(np.ones(len(fill), bool)),
            "fill_histogram": {f"{edges[i]:g}-{edges[i + 1]:g}": int(c) for i, c in enumerate(hist)},
            "by_class": {(names[c] if names and c < len(names) else str(c)): stats(cls == c)
                         for c in np.unique(cls).tolist()},
            "by_size": by_size}


def scan(data: str | Path, imgsz: tuple[int, int], strides: tuple[int, ...], reg_max: int, nc: int | None = None,
         workers: int = 1, do_simulate: bool = False, profile: str = "ultralytics", topk: int = 10,
         progress: Callable[[str, int, int], None] | None = None, *, task: str = "detect",
         kpt_shape: tuple[int, int] | None = None, single_cls: bool = False) -> ScanResult:
    """Audit a dataset. ``progress(stage, advance, total)`` is called as files are done. Label files are read
    by the trainer's rules for ``task`` (``kpt_shape``: given, else a dataset YAML's; ``single_cls``)."""
    ls = find_labels(data)
    if nc is None and ls.names is not None:
        nc = len(ls.names)
    try:
        rules = LabelRules(task, nc, tuple(kpt_shape) if kpt_shape is not None else ls.kpt_shape, single_cls)
    except ValueError as e:
        raise InputError(str(e), str(data)) from None
    n = len(ls.files)
    images = find_images(ls)
    parsed = parse_all(ls.files, rules, max(1, workers), (lambda k: progress("parse", k, n)) if progress else None,
                       images)
    # one geometry rule with the other commands: a file whose image is found is letterboxed onto the canvas
    parsed = replace(parsed, rows=letterbox_rows(parsed.rows, parsed.file, parsed.image_wh, imgsz))
    if task == "obb":  # rotated GTs: their own in-box test, tiny by the shorter side
        from .scan_obb import letterbox_corners, rotated_geometry

        parsed = replace(parsed, corners=letterbox_corners(parsed.corners, parsed.file, parsed.image_wh, imgsz))
        geo, bad = rotated_geometry(parsed.rows, parsed.corners, parsed.file, parsed.line, imgsz, strides, reg_max,
                                    [str(f) for f in ls.files])
        parsed.errors.extend(bad)
    else:
        geo = geometry(parsed.rows, imgsz, strides, reg_max)
    positives = None
    if do_simulate and task != "obb":
        nc = 1 if single_cls else nc
        n_cls = nc if nc is not None else int(parsed.rows[:, 0].max()) + 1 if len(parsed.rows) else 1
        positives = simulate_all(parsed.rows, parsed.file, n, imgsz, strides, reg_max, n_cls, profile, topk,
                                 max(1, workers), (lambda k: progress("simulate", k, n)) if progress else None)
    notes = ReadNotes(parsed.polygons, parsed.pose_rows).lines(rules)
    if do_simulate and task == "obb":
        notes = tuple(notes) + ("--simulate: not available for OBB datasets (the rotated geometry audit only)",)
    return ScanResult(ls, imgsz, strides, reg_max, parsed, geo, positives, notes)


def _shared_by(ls: LabelSet) -> dict[str, int]:
    """Files listed by more than one split, counted per set of splits ("train+val": 7)."""
    out: dict[str, int] = {}
    for sp in ls.file_splits:
        if len(sp) > 1:
            out["+".join(sp)] = out.get("+".join(sp), 0) + 1
    return out


def _short_side(geo: Geometry, i: int) -> float:
    """The GT's shorter side in px (a rotated GT's own, else its box's)."""
    if geo.rboxes is not None:
        return float(min(geo.rboxes[i, 2], geo.rboxes[i, 3]))
    return float(min(geo.box_px[i, 2] - geo.box_px[i, 0], geo.box_px[i, 3] - geo.box_px[i, 1]))


def report(res: ScanResult, top: int = 20) -> dict:
    """Everything the terminal summary shows, plus every flagged GT and every label error (JSON-ready)."""
    rows, geo = res.parsed.rows, res.geo
    flags = res.flags()
    names = res.labels.names
    g = len(rows)
    any_flag = np.zeros(g, bool)
    for k in ("starved_classic", "starved_ultralytics", "clamped", "no_positives_simulated", "mask_under_1px",
              "dropped_under_2px"):
        if k in flags:
            any_flag |= flags[k]
    side = np.sqrt(np.maximum((geo.box_px[:, 2] - geo.box_px[:, 0]) * (geo.box_px[:, 3] - geo.box_px[:, 1]), 0))
    if geo.rboxes is not None:  # rotated GTs: their own sides
        side = np.sqrt(np.maximum(geo.rboxes[:, 2] * geo.rboxes[:, 3], 0))
    size_hist = np.histogram(side, bins=np.array(SIZE_BINS[:-1] + (1e9,)))[0]
    cls = rows[:, 0].astype(np.int64)
    cls_counts = np.bincount(cls) if g else np.zeros(0, np.int64)
    per_file = np.bincount(res.parsed.file[any_flag], minlength=res.n_files) if g else np.zeros(res.n_files, np.int64)
    per_file_errors = np.bincount([e[0] for e in res.parsed.errors], minlength=res.n_files) if res.parsed.errors \
        else np.zeros(res.n_files, np.int64)
    badness = per_file + per_file_errors
    worst = [int(i) for i in np.argsort(-badness, kind="stable")[:top] if badness[i] > 0]
    files = [str(f) for f in res.labels.files]
    flagged = []
    listed = any_flag | flags["tiny"] | flags.get("no_visible_keypoints", np.zeros(g, bool))
    for i in np.nonzero(listed)[0]:
        flagged.append({
            "file": files[res.parsed.file[i]], "line": int(res.parsed.line[i]), "cls": int(cls[i]),
            "box_px": [round(float(v), 2) for v in geo.box_px[i]],
            "flags": [k for k, v in flags.items() if v[i]],
            "smaller_than_strides": [s for s in res.strides if _short_side(geo, i) < s],
            **({"rbox_px": [round(float(v), 2) for v in geo.rboxes[i, :4]] + [round(math.degrees(geo.rboxes[i, 4]), 2)]}
               if geo.rboxes is not None else {}),
            "candidates_classic": geo.cand_classic[i].tolist(), "candidates_ultralytics": geo.cand_ultra[i].tolist(),
            **({"positives_simulated": res.positives[i].tolist()} if res.positives is not None else {}),
        })
    return {
        "dataset": res.labels.source,
        "settings": {"imgsz": list(res.imgsz), "strides": list(res.strides), "reg_max": res.reg_max,
                     "canvas": "a file whose image is found: letterboxed onto imgsz (ultralytics' validation "
                               "letterbox, size from the image header); without an image: normalised boxes × imgsz"},
        "geometry": {"letterboxed": int(((res.parsed.image_wh[:, 0] > 0) & ~res.parsed.corrupt).sum()),
                     "no_image": int(((res.parsed.image_wh[:, 0] == 0) & ~res.parsed.corrupt).sum())},
        "files": {"total": res.n_files, "splits": res.labels.splits,
                  "background": int(res.parsed.empty.sum()) if res.n_files else 0,
                  "corrupt": int((res.parsed.corrupt & ~res.parsed.refused).sum()) if res.n_files else 0,
                  "refused": int(res.parsed.refused.sum()) if res.n_files else 0,
                  "in_several_splits": res.labels.shared,
                  "shared_by": _shared_by(res.labels),
                  "with_errors": int((per_file_errors > 0).sum()),
                  "duplicate_rows_dropped": sum(len(v) for _, v in res.parsed.duplicates)},
        "gts": g,
        "notes": list(res.notes),
        "flag_counts": {k: int(v.sum()) for k, v in flags.items()},
        "size_histogram_px": {f"{SIZE_BINS[i]}-{SIZE_BINS[i + 1]}": int(c) for i, c in enumerate(size_hist)},
        "class_counts": {(names[c] if names and c < len(names) else str(c)): int(n) for c, n in enumerate(cls_counts) if n},
        "candidates_per_level": {
            "classic": geo.cand_classic.sum(0).tolist(), "ultralytics": geo.cand_ultra.sum(0).tolist(),
        },
        **({"positives_per_level_simulated": res.positives.sum(0).tolist()} if res.positives is not None else {}),
        **({"keypoints": keypoint_report(res.parsed.kpt_visible, cls, side, names)}
           if res.parsed.kpt_visible is not None else {}),
        "worst_files": [{"file": files[i], "flagged_gts": int(per_file[i]), "errors": int(per_file_errors[i])}
                        for i in worst],
        "errors": [{"file": files[f], "line": ln, "reason": why} for f, ln, why in res.parsed.errors],
        "duplicates": [{"file": files[f], "lines": lines} for f, lines in res.parsed.duplicates],
        "flagged": flagged,
        **({"segment": seg_report(res)} if res.parsed.fill is not None else {}),
        **({"obb": _obb_tables(geo, cls, names)} if geo.rboxes is not None else {}),
    }


def _obb_tables(geo: Geometry, cls: np.ndarray, names) -> dict:
    from .scan_obb import by_class_and_size

    return by_class_and_size(geo, cls, names, SIZE_BINS)
def keypoint_report(visible: np.ndarray, cls: np.ndarray, side: np.ndarray, names) -> dict:
    """Pose datasets: GTs whose keypoints are all unlabelled (visibility 0: the pose assigner falls back to the box
    CIoU for them and the keypoint losses get nothing from them), overall, per class and per sqrt(area) bin:
    {"gts", "no_visible", "visible_mean", "by_class": {name: [no visible, GTs]}, "by_size": {bin: [..]}}."""
    none = visible == 0
    by_class: dict = {}
    for c in np.unique(cls):
        name = names[c] if names and c < len(names) else str(int(c))
        sel = cls == c
        by_class[name] = [int(none[sel].sum()), int(sel.sum())]
    bins = np.array(SIZE_BINS[:-1] + (1e9,))
    which = np.clip(np.digitize(side, bins) - 1, 0, len(SIZE_BINS) - 2)
    by_size = {}
    for i in range(len(SIZE_BINS) - 1):
        sel = which == i
        if sel.any():
            by_size[f"{SIZE_BINS[i]}-{SIZE_BINS[i + 1]}"] = [int(none[sel].sum()), int(sel.sum())]
    return {"gts": int(len(visible)), "no_visible": int(none.sum()),
            "visible_mean": round(float(visible.mean()), 3) if len(visible) else 0.0,
            "by_class": by_class, "by_size": by_size}


def write_report(doc: dict, path: str | Path) -> Path:
    """Atomic JSON write (temp file + rename)."""
    import json

    from .atomic import atomic_write

    p = Path(path)
    if not p.parent.is_dir():
        raise InputError("report directory does not exist", str(p.parent))
    return atomic_write(p, lambda fh: fh.write(json.dumps(doc, indent=1).encode()))
