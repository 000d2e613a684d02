"""The README's pose example: a YOLO26-pose GT whose P5 candidates the level gate removes.

    PYTHONPATH=. /work/venv/bin/python scripts/pose_readme_example.py > /tmp/pose_example.md

One 320x320 image, two people (COCO 17 keypoints), synthetic partly-trained YOLO26-pose heads (seed 0),
PoseLoss26's one2many branch (topk 10). Prints markdown tables computed by yolotal.
"""

from __future__ import annotations

import numpy as np
import torch

from yolotal.assigners.pose_tal import gt_candidates, gt_levels
from yolotal.assigners.tal import TALParams
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.decode import dfl_distances, ltrb_to_xyxy
from yolotal.core.keypoints import rle_weights, select_sigmas
from yolotal.inputs.labels import Labels
from yolotal.inputs.pose_heads import synthetic_pose_trained
from yolotal.loss_pose import init_flow
from yolotal.pipeline import pad_targets
from yolotal.pose import pad_keypoints, run_pose

# a standing person in box coordinates (0..1): nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles
SKELETON = np.array([[.50, .08], [.46, .06], [.54, .06], [.42, .08], [.58, .08], [.35, .22], [.65, .22], [.28, .38],
                     [.72, .38], [.25, .52], [.75, .52], [.40, .55], [.60, .55], [.40, .75], [.60, .75], [.40, .95],
                     [.60, .95]], np.float32)


def person(x1, y1, x2, y2, imgsz, hidden=()):
    h, w = imgsz
    k = np.concatenate([SKELETON * [x2 - x1, y2 - y1] + [x1, y1], np.full((17, 1), 2.0, np.float32)], 1)
    k[list(hidden), 2] = 0
    k[list(hidden), :2] = 0
    return k / [w, h, 1]


def main():
    imgsz, strides, grids = (320, 320), (8, 16, 32), [(40, 40), (20, 20), (10, 10)]
    boxes = [(100.0, 100.0, 160.0, 156.0), (180.0, 40.0, 290.0, 300.0)]
    kp = np.stack([person(*boxes[0], imgsz, hidden=(3, 4)), person(*boxes[1], imgsz)]).astype(np.float32)
    xywhn = np.array([[(a + c) / 2 / 320, (b + d) / 2 / 320, (c - a) / 320, (d - b) / 320] for a, b, c, d in boxes],
                     np.float32)
    labels = Labels(np.zeros(2, np.int64), np.zeros(2, np.int64), xywhn, (("person.txt", 1), ("person.txt", 2)),
                    ("person",))
    gl, gb, mg = pad_targets(labels, 1, imgsz)
    gk = pad_keypoints(kp, labels.batch_idx, 1, imgsz)
    heads = synthetic_pose_trained(1, 1, 1, grids, strides, 0, (17, 3), True, "26", labels.batch_idx, labels.cls,
                                   gb[0].numpy(), gk[0].numpy())
    ap, st = make_anchors(levels_for(grids, strides))
    pd = heads.boxes.permute(0, 2, 1)
    pl = heads.scores.permute(0, 2, 1)
    sig, why = select_sigmas((17, 3))
    r = run_pose("26", (17, 3), heads.extra["kpts"], heads.extra["kpts_sigma"], pd, pl, ltrb_to_xyxy(
        dfl_distances(pd, 1), ap), ap, st, gl, gb, mg, gk, sig, TALParams(1, 10), imgsz, 1, flow=init_flow(0),
        rle_weights=rle_weights((17, 3)))
    res = r.assignment
    g = 0
    size = float(res.gate.size[0, g])
    print(f"GT 0 (person.txt:1): box {boxes[0]} px, sqrt(area) = {size:.1f} px, OKS area 0.53·w·h = "
          f"{float(res.oks.oks_area[0, g]):.1f} px², {int(res.oks.n_visible[0, g])}/17 keypoints visible, "
          f"sigmas: {why}\n")
    print("| stride | takes sqrt(area) in | gate | in box | candidates | positives |")
    print("|---:|---|---|---:|---:|---:|")
    for row in gt_levels(res, 0, g):
        span = f"[{row['lower']:g}, {row['upper']:g}]"
        print(f"| {row['stride']} | {span} | {row['reason']} | {row['in_box']} | {row['candidates']} | "
              f"{row['positives']} |")
    print(f"\nfallback: {bool(res.gate.fallback[0, g])}\n")
    print("| anchor | stride | cell | gate | s | OKS | t | top-10 | positive |")
    print("|---:|---:|---|---|---:|---:|---:|---|---|")
    rows = gt_candidates(res, ap * st, 0, g, r.kpts_px, gk, gb)
    kept = [x for x in rows if x["kept"]][:12]
    dropped = [x for x in rows if not x["kept"]]
    for x in kept + dropped:
        oks = f"{x['oks']:.3f}" if x["kept"] else f"({x['oks_if_open']:.3f} if open)"
        sc, t = (f"{x['score']:.3f}", f"{x['t']:.3g}") if x["kept"] else ("–", "–")
        print(f"| {x['anchor']} | {x['stride']} | {x['cell']} | {'kept' if x['kept'] else 'dropped'} | "
              f"{sc} | {oks} | {t} | {'yes' if x['picked'] else ''} | "
              f"{'yes' if x['positive'] else ''} |")
    n_kept = sum(x["kept"] for x in rows)
    if n_kept > 12:
        print(f"\n({n_kept - 12} more kept P3/P4 candidates with smaller t not shown)")
    lo = r.loss
    print("\nloss items (YOLO26 one2many branch, gain-weighted, not × batch): " +
          ", ".join(f"{n} {float(v):.4f}" for n, v in zip(lo.names, lo.items)))
    print(f"GT 0: {int(lo.n_pos_per_gt[0, g])} positives, pose {float(lo.pose_per_gt[0, g]):.4f}, kobj "
          f"{float(lo.kobj_per_gt[0, g]):.4f}, rle {float(lo.rle_per_gt[0, g]):.4f} (raw, before gains)")


if __name__ == "__main__":
    torch.set_printoptions(precision=4)
    main()
