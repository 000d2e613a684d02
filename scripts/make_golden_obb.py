"""Golden OBB fixtures from the reference trainer (NOT run by CI; needs ultralytics 8.4.190 and OpenCV).

    cd <worktree> && YOLO_VERBOSE=False YOLO_OFFLINE=1 PYTHONPATH=$PWD \
        /work/oracle/bin/python scripts/make_golden_obb.py

Writes
* tests/fixtures/obb/quads.npz: the corner corpus (>= 200 quadrilaterals: rectangles, squares, thin boxes, angles
  near 0 / 45 / 90 degrees, perturbed (general) quadrilaterals, corners in any order, pixel-scaled as in
  training) and ultralytics' ``xyxyxyxy2xywhr`` of each (float32, as training gets them).
* tests/fixtures/obb/<case>.npz: one assignment + loss per case. Inputs: ``labels`` (n, 7) batch_idx, cls,
  cx, cy, w, h (normalised), angle — the reference's own conversion of the case's corners, normalised as its
  Format transform does — and ``level0..`` head maps (b, 4*reg_max + nc + 1, h, w), the angle channel last, in
  the case's encoding. yolotal's synthetic OBB heads make the maps (their values are stored, so the fixture does
  not depend on them). Recorded from ``v8OBBLoss.loss`` (its assigner call is captured) and from the
  ``RotatedTaskAlignedAssigner`` stages: gt_labels, gt_bboxes, mask_gt, pd_scores, pd_bboxes, mask_in_gts,
  overlaps, align_metric, mask_pos_topk, target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx,
  loss (4,) box, cls, dfl, angle (gain-weighted, not multiplied by the batch size).
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import torch

import ultralytics
from ultralytics.utils import loss as uloss
from ultralytics.utils.ops import xyxyxyxy2xywhr
from ultralytics.utils.tal import RotatedTaskAlignedAssigner

from yolotal.inputs.obb_heads import obb_heads_to_levels, synthetic_obb_randn, synthetic_obb_trained

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "obb"


def corners_of(cx, cy, w, h, a) -> np.ndarray:
    """(4, 2) float64 corners of a rotated rectangle."""
    c, s = math.cos(a), math.sin(a)
    u, v = np.array([w / 2 * c, w / 2 * s]), np.array([-h / 2 * s, h / 2 * c])
    ctr = np.array([cx, cy])
    return np.stack((ctr + u + v, ctr + u - v, ctr - u - v, ctr - u + v))


def _valid(q) -> bool:
    """No repeated corner and no three corners on one line (yolotal refuses those)."""
    from yolotal.core.rotated import validate_quads
    from yolotal.errors import InputError

    try:
        validate_quads(np.asarray(q, np.float32)[None], "corpus")
        return True
    except InputError:
        return False


def shuffled(rng, q):
    r = rng.random()
    if r < 0.4:
        return q[rng.permutation(4)]
    if r < 0.7:
        return np.roll(q, int(rng.integers(4)), 0)
    return q[::-1].copy()


def quad_corpus(rng, n_per_kind=40) -> tuple[np.ndarray, list[str]]:
    quads, kinds = [], []
    kinds_all = ("rect", "square", "square_axis", "thin", "near_axis", "near_diag", "general", "integer", "random",
                 "tiny_integer")
    for kind in kinds_all:
        for _ in range(n_per_kind):
            cx, cy = rng.uniform(20, 1000, 2)
            a = rng.uniform(-math.pi, math.pi)
            if kind == "rect":
                w, h = rng.uniform(2, 400, 2)
            elif kind == "square":
                w = h = rng.uniform(2, 200)
            elif kind == "square_axis":
                w = h = float(rng.integers(2, 200))
                cx, cy = float(rng.integers(20, 1000)), float(rng.integers(20, 1000))
                a = rng.choice([0.0, math.pi / 2, math.pi, -math.pi / 2])
            elif kind == "thin":
                w, h = rng.uniform(40, 600), rng.uniform(0.5, 4)
            elif kind == "near_axis":
                w, h = rng.uniform(2, 400, 2)
                a = rng.choice([0.0, math.pi / 2, math.pi, -math.pi / 2]) + rng.choice([0.0, 1e-5, -1e-5, 1e-3, -1e-3])
            elif kind == "near_diag":
                w, h = rng.uniform(2, 400, 2)
                a = rng.choice([math.pi / 4, -math.pi / 4, 3 * math.pi / 4]) + rng.choice([1e-3, -1e-3, 1e-2, -1e-2])
            elif kind == "general":
                w, h = rng.uniform(10, 300, 2)
            else:  # integer corners, as hand-made DOTA labels often are; random / tiny ones drawn below
                w, h = rng.uniform(4, 300, 2)
            q = corners_of(cx, cy, w, h, a)
            if kind == "random":  # any four points, convex or not
                q = rng.uniform(0, 200, (4, 2)) + np.array([cx, cy]) / 2
            if kind == "tiny_integer":  # a few pixels, where most quadrilaterals have two minimum rectangles
                q = np.round(np.array([cx, cy]) + rng.uniform(-4, 4, (4, 2)))
                while not _valid(q):
                    q = np.round(np.array([cx, cy]) + rng.uniform(-4, 4, (4, 2)))
            if kind == "general":
                q = q + rng.normal(0, 0.08 * min(w, h), q.shape)
            if kind == "integer":
                q = np.round(q)
            if not _valid(q):
                continue
            quads.append(shuffled(rng, q))
            kinds.append(kind)
    return np.asarray(quads, np.float32), kinds


def write_corpus():
    rng = np.random.default_rng(170)
    quads, kinds = quad_corpus(rng)
    ref = xyxyxyxy2xywhr(torch.from_numpy(quads)).numpy()
    import cv2

    raw = np.array([[*r[0], *r[1], r[2]] for r in (cv2.minAreaRect(q) for q in quads)], np.float32)
    np.savez_compressed(OUT / "quads.npz", quads=quads, kinds=np.array(kinds), xywhr=ref, min_area_rect=raw,
                        config=json.dumps({"ultralytics": ultralytics.__version__, "opencv": cv2.__version__}))
    print(f"quads.npz: {len(quads)} quadrilaterals")


# ------------------------------------------------------------------------------------------------ cases
CASES = {
    # name: seed, batch, imgsz, strides, nc, reg_max, GTs per image, kind, heads, encoding, topk, topk2
    "randn_dfl": (1, 2, (320, 320), (8, 16, 32), 4, 16, [7, 5], "mixed", "randn", "sigmoid", 10, None),
    "trained_dfl": (2, 2, (384, 384), (8, 16, 32), 5, 16, [20, 12], "mixed", "trained", "sigmoid", 10, None),
    "tiny_rotated": (3, 2, (320, 320), (8, 16, 32), 3, 16, [25, 18], "tiny", "trained", "sigmoid", 10, None),
    "crowded": (4, 1, (320, 320), (8, 16, 32), 3, 16, [70], "crowd", "trained", "sigmoid", 10, None),
    "yolo26_l1": (5, 2, (320, 320), (8, 16, 32), 4, 1, [12, 9], "mixed", "trained", "radians", 10, None),
    "yolo26_one2one": (6, 2, (320, 320), (8, 16, 32), 4, 1, [12, 9], "mixed", "trained", "radians", 7, 1),
    "randn_rect_reg8": (7, 2, (256, 384), (8, 16, 32), 3, 8, [6, 8], "mixed", "randn", "sigmoid", 10, None),
    "trained_seed11": (11, 3, (320, 320), (8, 16, 32), 6, 16, [15, 0, 22], "mixed", "trained", "sigmoid", 10, None),
    "axis_and_diag": (9, 1, (256, 256), (8, 16, 32), 2, 16, [14], "axis", "trained", "sigmoid", 10, None),
    "no_labels": (8, 2, (256, 256), (8, 16, 32), 3, 16, [0, 0], "mixed", "randn", "sigmoid", 10, None),
}


def random_gts(rng, n, imgsz, kind):
    """n rotated GTs as pixel corners (n, 4, 2) float32."""
    h, w = imgsz
    out = []
    for _ in range(n):
        k = kind if kind not in ("mixed",) else rng.choice(["tiny", "small", "medium", "large", "thin"])
        a = rng.uniform(-math.pi, math.pi)
        if k == "tiny":
            bw, bh = rng.uniform(1, 14, 2)
        elif k == "small":
            bw, bh = rng.uniform(10, 40, 2)
        elif k == "medium" or k == "crowd":
            bw, bh = rng.uniform(25, 90, 2)
        elif k == "large":
            bw, bh = rng.uniform(80, min(h, w) * 0.7, 2)
        elif k == "thin":
            bw, bh = rng.uniform(40, 160), rng.uniform(3, 9)
        else:  # axis: axis-aligned or diagonal boxes on the stride grid
            bw, bh = float(rng.integers(2, 12) * 8), float(rng.integers(1, 8) * 8)
            a = float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4]))
        r = math.hypot(bw, bh) / 2
        if k == "crowd":
            cx, cy = rng.uniform(w * 0.3, w * 0.7), rng.uniform(h * 0.3, h * 0.7)
        elif k == "axis":
            cx, cy = float(rng.integers(4, w // 8 - 4) * 8), float(rng.integers(4, h // 8 - 4) * 8)
        else:
            cx, cy = rng.uniform(min(r, w / 2), max(w - r, w / 2)), rng.uniform(min(r, h / 2), max(h - r, h / 2))
        q = corners_of(cx, cy, bw, bh, a)
        if k in ("medium", "large") and rng.random() < 0.5:
            q = q + rng.normal(0, 0.02 * min(bw, bh), q.shape)
        out.append(shuffled(rng, q))
    return np.asarray(out, np.float32).reshape(-1, 4, 2)


def make_labels(rng, spec):
    seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads, enc, topk, topk2 = spec
    h, w = imgsz
    rows = []
    for b, n in enumerate(per_image):
        corners = random_gts(rng, n, imgsz, kind)
        if not n:
            continue
        xywhr = xyxyxyxy2xywhr(torch.from_numpy(corners))  # (n, 5) px, float32: Format's conversion
        xywhr[:, [0, 2]] /= w  # ... and its normalisation
        xywhr[:, [1, 3]] /= h
        cls = rng.integers(0, nc, n).astype(np.float32)
        rows.append(np.concatenate((np.full((n, 1), b, np.float32), cls[:, None], xywhr.numpy()), 1))
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 7), np.float32)


def model_stub(strides, nc, reg_max):
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    m.model = [types.SimpleNamespace(stride=torch.tensor(strides, dtype=torch.float32), nc=nc, reg_max=reg_max)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, angle=1.0)
    return m


def head_angle(raw: torch.Tensor, enc: str) -> torch.Tensor:
    """What the reference's OBB / OBB26 head hands the loss."""
    return (raw.sigmoid() - 0.25) * math.pi if enc == "sigmoid" else raw


def run_case(name, spec):
    seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads_kind, enc, topk, topk2 = spec
    rng = np.random.default_rng(seed)
    labels = make_labels(rng, spec)
    grids = [(imgsz[0] // s, imgsz[1] // s) for s in strides]
    if heads_kind == "randn":
        heads = synthetic_obb_randn(batch, nc, reg_max, grids, seed)
    else:
        px = labels[:, 2:7].copy()
        px[:, [0, 2]] *= imgsz[1]
        px[:, [1, 3]] *= imgsz[0]
        heads = synthetic_obb_trained(batch, nc, reg_max, grids, strides, seed, labels[:, 0], labels[:, 1], px, enc)
    levels = obb_heads_to_levels(heads)
    flat = torch.cat([torch.from_numpy(x).reshape(batch, x.shape[1], -1) for x in levels], 2)
    boxes, scores, raw = flat.split((4 * reg_max, nc, 1), 1)
    feats = [torch.zeros(batch, 1, gh, gw) for gh, gw in grids]
    preds = {"boxes": boxes, "scores": scores, "angle": head_angle(raw, enc), "feats": feats}
    batch_d = {
        "batch_idx": torch.from_numpy(labels[:, 0]),
        "cls": torch.from_numpy(labels[:, 1:2]),
        "bboxes": torch.from_numpy(labels[:, 2:7]),
    }
    crit = uloss.v8OBBLoss(model_stub(strides, nc, reg_max), tal_topk=topk, tal_topk2=topk2)
    seen = {}
    orig = crit.assigner.forward

    def spy(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        seen["in"] = [x.clone() for x in (pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt)]
        out = orig(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt)
        seen["out"] = [x.clone() for x in out]
        return out

    crit.assigner.forward = spy
    _, items = crit.loss(preds, batch_d)
    pd_scores, pd_bboxes, anc, gl, gb, mg = seen["in"]
    tl, tb, ts, fg, gi = seen["out"]
    rec = dict(gt_labels=gl.numpy(), gt_bboxes=gb.numpy(), mask_gt=mg.numpy(), pd_scores=pd_scores.numpy(),
               pd_bboxes=pd_bboxes.numpy(), target_labels=tl.numpy(), target_bboxes=tb.numpy(),
               target_scores=ts.numpy(), fg_mask=fg.numpy(), target_gt_idx=gi.numpy(),
               loss=torch.stack([items[k] for k in crit.loss_names]).numpy())
    if gb.shape[1]:  # stage by stage, on a fresh assigner with the same settings
        a = RotatedTaskAlignedAssigner(topk=topk, num_classes=nc, alpha=0.5, beta=6.0, stride=list(strides),
                                       topk2=topk2)
        a.bs, a.n_max_boxes = batch, gb.shape[1]
        rec["mask_in_gts"] = a.select_candidates_in_gts(anc, gb, mg).numpy()
        mask_pos, align, ov = a.get_pos_mask(pd_scores, pd_bboxes, gl, gb, anc, mg)
        rec.update(mask_pos_topk=mask_pos.bool().numpy(), align_metric=align.numpy(), overlaps=ov.numpy())
    cfg = dict(imgsz=list(imgsz), strides=list(strides), nc=nc, reg_max=reg_max, topk=topk, topk2=topk2,
               encoding=enc, heads=heads_kind, seed=seed, ultralytics=ultralytics.__version__,
               loss_names=list(crit.loss_names))
    inputs = {f"level{i}": x for i, x in enumerate(levels)}
    np.savez_compressed(OUT / f"{name}.npz", labels=labels, config=json.dumps(cfg), **inputs, **rec)
    print(f"{name}: {len(labels)} GTs, {int(fg.sum())} positives, loss {rec['loss'].round(5).tolist()}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    write_corpus()
    for name, spec in CASES.items():
        run_case(name, spec)


if __name__ == "__main__":
    main()
