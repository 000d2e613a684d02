"""Generate golden fixtures from the reference trainer (NOT run by CI; needs ultralytics installed).

    ../shared/oracles/make-oracle-venv.sh /tmp/oracle
    YOLO_VERBOSE=False YOLO_OFFLINE=1 /tmp/oracle/bin/python scripts/make_golden.py --profile ultralytics
    # classic = ultralytics 8.3 (no small-GT enlargement, no topk2):
    /tmp/oracle/bin/pip install --no-deps --target /tmp/oracle83 ultralytics==8.3.200
    YOLO_VERBOSE=False YOLO_OFFLINE=1 PYTHONPATH=/tmp/oracle83 /tmp/oracle/bin/python scripts/make_golden.py --profile classic

Each case is generated from its own seed with numpy only (no yolotal code), run through ultralytics'
v8DetectionLoss (whose assigner call is recorded) and its TaskAlignedAssigner intermediates, and written to
tests/fixtures/golden/<profile>/<case>.npz, its inputs to tests/fixtures/golden/inputs/<case>.npz:

    inputs:     labels (n, 6) float32 batch_idx cls cx cy w h (normalised);
                level0.. (b, 4*reg_max+nc, h, w) float32 head maps
    config      JSON string: imgsz, strides, nc, reg_max, topk, topk2, profile, ultralytics version
    mask_in_gts, overlaps, align_metric, mask_pos_topk   (b, M, A) reference intermediates
    target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx   reference assigner outputs
    gt_bboxes, gt_labels, mask_gt                         padded GT tensors as the reference builds them
    loss        (3,) box, cls, dfl gain-weighted, not multiplied by batch size
"""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"


def walkthrough_labels() -> np.ndarray:
    return np.array(
        [
            [0, 1.0, 0.612, 0.334, 0.666, 0.378],
            [0, 0.0, 0.553, 0.054, 0.426, 0.109],
            [1, 1.0, 0.457, 0.324, 0.747, 0.359],
            [2, 2.0, 0.875, 0.484, 0.25, 0.315],
            [2, 1.0, 0.45, 0.36, 0.72, 0.411],
            [2, 0.0, 0.27, 0.064, 0.46, 0.12],
            [3, 2.0, 0.348, 0.521, 0.151, 0.237],
        ],
        dtype=np.float32,
    )


def random_labels(rng, batch, nc, per_image, imgsz, kind="mixed") -> np.ndarray:
    """Boxes in pixels drawn by kind, converted to normalised xywh kept inside [0, 1]."""
    h, w = imgsz
    rows = []
    for b in range(batch):
        n = per_image[b] if isinstance(per_image, (list, tuple)) else int(rng.integers(0, per_image + 1))
        for _ in range(n):
            k = kind if kind != "mixed" else rng.choice(["tiny", "small", "medium", "large", "edge", "huge"])
            if k == "tiny":
                bw, bh = rng.uniform(1, 10, 2)
            elif k == "small":
                bw, bh = rng.uniform(8, 40, 2)
            elif k == "medium":
                bw, bh = rng.uniform(40, 160, 2)
            elif k == "large":
                bw, bh = rng.uniform(160, min(h, w) * 0.9, 2)
            elif k == "huge":
                bw, bh = w * rng.uniform(0.85, 1.0), h * rng.uniform(0.85, 1.0)
            else:  # edge: touching the image border
                bw, bh = rng.uniform(20, 200, 2)
            bw, bh = min(bw, w), min(bh, h)
            if k == "edge":
                cx = bw / 2 if rng.random() < 0.5 else w - bw / 2
                cy = rng.uniform(bh / 2, h - bh / 2)
            else:
                cx, cy = rng.uniform(bw / 2, w - bw / 2), rng.uniform(bh / 2, h - bh / 2)
            rows.append([b, int(rng.integers(0, nc)), cx / w, cy / h, bw / w, bh / h])
    return np.array(rows, dtype=np.float32).reshape(-1, 6).clip(0, None)


def near_label_heads(rng, labels, batch, nc, reg_max, imgsz, strides, noise=0.4) -> list[np.ndarray]:
    """Head maps whose anchors inside a label predict a noisy version of it (a partly trained model)."""
    h, w = imgsz
    levels = []
    for s in strides:
        gh, gw = h // s, w // s
        x = rng.normal(0, 1, (batch, 4 * reg_max + nc, gh, gw)).astype(np.float32)
        x[:, 4 * reg_max :] -= 3.0
        for row in labels:
            b, c = int(row[0]), int(row[1])
            x1, y1 = (row[2] - row[4] / 2) * w, (row[3] - row[5] / 2) * h
            x2, y2 = (row[2] + row[4] / 2) * w, (row[3] + row[5] / 2) * h
            for gy in range(gh):
                for gx in range(gw):
                    px, py = (gx + 0.5) * s, (gy + 0.5) * s
                    if not (x1 < px < x2 and y1 < py < y2):
                        continue
                    d = np.array([px - x1, py - y1, x2 - px, y2 - py]) / s + rng.normal(0, noise, 4)
                    if reg_max > 1:
                        bins = np.arange(reg_max)
                        for side in range(4):
                            x[b, side * reg_max : (side + 1) * reg_max, gy, gx] = -((bins - d[side]) ** 2) / 0.7
                    else:
                        x[b, :4, gy, gx] = d
                    x[b, 4 * reg_max + c, gy, gx] += 4.0 + rng.normal(0, 1.0)
        levels.append(x)
    return levels


CASES = {
    # name: (seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads, topk, topk2)
    "walkthrough": (0, 4, (640, 640), (80, 160, 320), 3, 16, None, None, "randn", 10, None),
    "coco_like": (1, 1, (480, 480), (8, 16, 32), 80, 16, 12, "mixed", "randn", 10, None),
    "trained_dense": (2, 2, (320, 320), (8, 16, 32), 6, 16, [25, 14], "mixed", "near", 10, None),
    "rect_reg8": (3, 3, (256, 416), (8, 16, 32), 5, 8, 6, "mixed", "near", 10, None),
    "tiny_boxes": (4, 2, (320, 320), (8, 16, 32), 3, 16, 10, "tiny", "near", 10, None),
    "huge_edge": (5, 2, (448, 448), (8, 16, 32), 2, 16, [3, 4], "huge", "near", 10, None),
    "edge_touch": (6, 2, (320, 480), (8, 16, 32), 4, 16, 8, "edge", "near", 13, None),
    "with_empty": (7, 4, (256, 256), (8, 16, 32), 3, 16, [5, 0, 3, 0], "mixed", "near", 10, None),
    "no_labels": (8, 2, (256, 256), (8, 16, 32), 3, 16, [0, 0], "mixed", "randn", 10, None),
    "topk2_one2one": (9, 2, (320, 320), (8, 16, 32), 4, 16, [9, 6], "mixed", "near", 7, 1),
    "reg_max1": (10, 2, (320, 320), (8, 16, 32), 3, 1, [6, 4], "mixed", "near", 10, None),
    "crowded_conflicts": (11, 1, (256, 256), (8, 16, 32), 2, 16, [40], "medium", "near", 10, None),
    "two_levels": (12, 2, (256, 256), (16, 32), 3, 16, [6, 5], "mixed", "near", 10, None),
}


def make_inputs(spec):
    seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads, topk, topk2 = spec
    rng = np.random.default_rng(seed)
    labels = walkthrough_labels() if per_image is None else random_labels(rng, batch, nc, per_image, imgsz, kind)
    if heads == "randn":
        levels = [rng.normal(0, 1, (batch, 4 * reg_max + nc, imgsz[0] // s, imgsz[1] // s)).astype(np.float32) for s in strides]
    else:
        levels = near_label_heads(rng, labels, batch, nc, reg_max, imgsz, strides)
    return labels, levels


def model_stub(strides, nc, reg_max):
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    m.model = [types.SimpleNamespace(stride=torch.tensor(strides, dtype=torch.float32), nc=nc, reg_max=reg_max)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    return m


def run_case(name, spec, profile):
    import ultralytics
    from ultralytics.utils import loss as uloss

    seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads, topk, topk2 = spec
    labels, levels = make_inputs(spec)
    v84 = ultralytics.__version__.startswith("8.4")
    model = model_stub(strides, nc, reg_max)
    crit = uloss.v8DetectionLoss(model, tal_topk=topk, tal_topk2=topk2) if v84 else uloss.v8DetectionLoss(model, tal_topk=topk)
    rec = {}
    orig = crit.assigner

    def recording(*args, **kw):
        rec["args"] = [a.clone() for a in args]
        out = orig(*args, **kw)
        rec["out"] = out
        return out

    crit.assigner = recording
    t_levels = [torch.from_numpy(x) for x in levels]
    lab = torch.from_numpy(labels)
    batch_d = {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6]}
    if v84:
        b, c = t_levels[0].shape[:2]
        flat = torch.cat([x.view(b, c, -1) for x in t_levels], 2)
        preds = {"boxes": flat[:, : 4 * reg_max], "scores": flat[:, 4 * reg_max :], "feats": t_levels}
        total, items = crit(preds, batch_d)
    else:
        total, items = crit(t_levels, batch_d)
    loss = (total / batch).detach().numpy().astype(np.float32)

    pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt = rec["args"]
    tl, tb, ts, fg, tgi = rec["out"]
    a = orig
    a.bs, a.n_max_boxes = pd_scores.shape[0], gt_bboxes.shape[1]
    extra = {}
    if gt_bboxes.shape[1]:
        if v84:
            mask_in = a.select_candidates_in_gts(anc, gt_bboxes, mask_gt)
        else:
            mask_in = a.select_candidates_in_gts(anc, gt_bboxes)
        mask_pos, align, ov = a.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc, mask_gt)
        extra = dict(mask_in_gts=mask_in.bool().numpy(), overlaps=ov.numpy(), align_metric=align.numpy(),
                     mask_pos_topk=mask_pos.bool().numpy())
    cfg = dict(imgsz=list(imgsz), strides=list(strides), nc=nc, reg_max=reg_max, topk=topk, topk2=topk2,
               profile=profile, reference=f"ultralytics {ultralytics.__version__}")
    for sub in ("inputs", profile):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    inputs = {"labels": labels, **{f"level{i}": x for i, x in enumerate(levels)}}
    np.savez_compressed(OUT / "inputs" / f"{name}.npz", **inputs)
    np.savez_compressed(
        OUT / profile / f"{name}.npz",
        config=np.array(json.dumps(cfg)),
        gt_labels=gt_labels.numpy(), gt_bboxes=gt_bboxes.numpy(), mask_gt=mask_gt.numpy(),
        target_labels=tl.numpy(), target_bboxes=tb.numpy(), target_scores=ts.float().numpy(),
        fg_mask=fg.bool().numpy(), target_gt_idx=tgi.long().numpy(), loss=loss,
        **extra,
    )
    print(f"{profile:12s} {name:18s} b={batch} M={gt_bboxes.shape[1]} fg={int(fg.sum())} loss={loss}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", choices=["ultralytics", "classic"], required=True)
    args = ap.parse_args()
    import ultralytics

    want = "8.4" if args.profile == "ultralytics" else "8.3"
    if not ultralytics.__version__.startswith(want):
        raise SystemExit(f"profile {args.profile} needs ultralytics {want}.x, found {ultralytics.__version__}")
    torch.set_num_threads(1)
    for name, spec in CASES.items():
        if spec[10] is not None and args.profile == "classic":
            continue  # topk2 exists only in 8.4
        run_case(name, spec, args.profile)


if __name__ == "__main__":
    main()
