"""The geometry audit of OBB datasets (``scan --task obb``): rotated GTs as the trainer makes them, the rotated
in-box test of the assigner, per GT and level.

Per GT: its xywhr (corners letterboxed onto the canvas, then ``core.rotated.quads_to_xywhr`` in pixels), whether
the trainer drops it (a side under 2 px), whether it is tiny (the shorter side under the smallest stride), its
candidate anchors per level under both profiles (classic: the rotated box itself; ultralytics: sides under
stride_val raised to it first, centre and angle kept) by the exact test of the assigner
(``assigners.rotated_tal_sparse.rotated_candidate_pairs``), and whether every candidate of a level clamps a DFL
target (the distances along the box's own axes).
"""

from __future__ import annotations

import numpy as np
import torch

GT_BLOCK = 4096  # GTs whose candidate pairs are enumerated at once


def letterbox_corners(corners: np.ndarray, file: np.ndarray, image_wh: np.ndarray, imgsz: tuple[int, int]
                      ) -> np.ndarray:
    """(G, 4, 2) normalised corners of files with an image mapped through its letterbox onto the canvas (as
    ``inputs.pictures.apply_letterbox`` maps a batch's polygons); corners of other files unchanged."""
    from .inputs.pictures import letterbox_for

    out = corners.copy()
    h, w = imgsz
    for i in np.unique(file):
        if image_wh[i, 0] <= 0:
            continue
        lb = letterbox_for(int(image_wh[i, 0]), int(image_wh[i, 1]), imgsz)
        sel = file == i
        pts = corners[sel].astype(np.float64)
        out[sel] = np.stack(((pts[..., 0] * lb.w0 * lb.r + lb.left) / w, (pts[..., 1] * lb.h0 * lb.r + lb.top) / h),
                            -1).astype(np.float32)
    return out


def _valid_rows(quads: np.ndarray, file: np.ndarray, line: np.ndarray, files: list[str]
                ) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """(G,) bool rows with a rectangle to fit, and an error (file index, line, reason) for each other row."""
    from .core.rotated import validate_quads
    from .errors import InputError

    ok = np.ones(len(quads), bool)
    errors = []
    try:
        validate_quads(quads, "")
        return ok, errors
    except InputError:
        pass
    for g in range(len(quads)):
        try:
            validate_quads(quads[g : g + 1], "")
        except InputError as e:
            ok[g] = False
            errors.append((int(file[g]), int(line[g]), e.message if hasattr(e, "message") else str(e)))
    return ok, errors


def rotated_geometry(rows: np.ndarray, corners: np.ndarray, file: np.ndarray, line: np.ndarray,
                     imgsz: tuple[int, int], strides: tuple[int, ...], reg_max: int, files: list[str]):
    """Per-GT facts of rotated GTs -> (``scan.Geometry`` with ``rboxes`` and ``dropped``, errors).

    rows (G, 5) cls and hull (for box_px); corners (G, 4, 2) normalised on the canvas. Degenerate corners (no
    rectangle) are errors (file index, line, reason) and count as starved here."""
    from .assigners.rotated_tal_sparse import rotated_candidate_pairs
    from .core.anchors import levels_for, make_anchors
    from .core.boxes import xywh_to_xyxy
    from .core.rotated import quads_to_xywhr, rbox_to_ltrb
    from .loss_obb import MIN_OBB_SIDE_PX
    from .scanning import Geometry

    h, w = imgsz
    g = len(rows)
    n_lv = len(strides)
    quads = corners.astype(np.float32).copy()
    quads[..., 0] *= np.float32(w)
    quads[..., 1] *= np.float32(h)
    ok, errors = _valid_rows(quads, file, line, files) if g else (np.ones(0, bool), [])
    rb = torch.zeros(g, 5)
    if ok.any():
        rb[torch.from_numpy(ok)] = quads_to_xywhr(quads[ok])
    xywh = torch.from_numpy(rows[:, 1:5].copy()) * torch.tensor([w, h, w, h], dtype=torch.float32)
    box = xywh_to_xyxy(xywh).numpy() if g else np.zeros((0, 4), np.float32)
    levels = levels_for([(h // s, w // s) for s in strides], list(strides))
    anc, st = make_anchors(levels)
    anc_px = anc * st
    level_of = torch.cat([torch.full((lv.stop - lv.start,), k, dtype=torch.int64) for k, lv in enumerate(levels)])
    stride_val = float(strides[1] if len(strides) > 1 else strides[0])
    valid = torch.from_numpy(ok)
    counts = {}
    limit = reg_max - 1 - 0.01
    clamp_all = np.zeros((g, n_lv), bool)
    for profile in ("classic", "ultralytics"):
        cnt = np.zeros((g, n_lv), np.int64)
        for s0 in range(0, g, GT_BLOCK):
            blk = rb[s0 : s0 + GT_BLOCK].clone()
            if profile == "ultralytics":
                wh = blk[:, 2:4]
                blk[:, 2:4] = torch.where(wh < stride_val, torch.tensor(stride_val), wh)
            gid, aid = rotated_candidate_pairs(anc_px, blk[None], valid[s0 : s0 + GT_BLOCK][None])
            lv = level_of[aid]
            flat = np.bincount((gid * n_lv + lv).numpy(), minlength=len(blk) * n_lv).reshape(len(blk), n_lv)
            cnt[s0 : s0 + len(blk)] = flat
            if profile == "classic" and len(gid):  # DFL: the best anchor inside still clamps a side?
                sides = rbox_to_ltrb(rb[s0 + gid], anc_px[aid]) / st[aid]  # (P, 4) grid units
                far = sides.amax(1)
                best = torch.full((len(blk) * n_lv,), float("inf"))
                best.scatter_reduce_(0, gid * n_lv + lv, far, "amin")
                clamp_all[s0 : s0 + len(blk)] = (best.view(len(blk), n_lv) > limit).numpy()
        counts[profile] = cnt
    short = torch.minimum(rb[:, 2], rb[:, 3]).numpy()
    geo = Geometry(box_px=box, cand_classic=counts["classic"], cand_ultra=counts["ultralytics"],
                   clamped_at=clamp_all & (counts["classic"] > 0), tiny=short < min(strides), rboxes=rb.numpy(),
                   dropped=ok & (short < MIN_OBB_SIDE_PX))
    return geo, errors


def by_class_and_size(geo, cls: np.ndarray, names, size_bins) -> dict:
    """OBB flags per class and per size bin (sqrt(w·h) of the rotated box): GTs, tiny, no candidate under each
    profile, dropped under 2 px."""
    side = np.sqrt(np.maximum(geo.rboxes[:, 2] * geo.rboxes[:, 3], 0))
    bins = np.digitize(side, np.array(size_bins[1:-1]), right=False)
    keys = {"gts": np.ones(len(cls), bool), "tiny": geo.tiny, "no_candidate_ultralytics": geo.starved_ultra,
            "no_candidate_classic": geo.starved_classic, "dropped_under_2px": geo.dropped}

    def table(group: np.ndarray, label) -> dict:
        out = {}
        for v in np.unique(group):
            sel = group == v
            out[label(int(v))] = {k: int((m & sel).sum()) for k, m in keys.items()}
        return out

    per_class = table(cls, lambda c: names[c] if names and c < len(names) else str(c))
    per_size = table(bins, lambda b: f"{size_bins[b]}-{size_bins[b + 1]}")
    return {"per_class": per_class, "per_size_px": per_size}
