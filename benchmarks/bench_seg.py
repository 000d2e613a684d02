"""Time and peak memory of yolotal's mask-aware assignment (YOLO26-seg) against ultralytics' SegTaskAlignedAssigner.

    python benchmarks/bench_seg.py                      # 8 images at 640, 100 GTs each, 32 prototypes
    python benchmarks/bench_seg.py --repeat 3 --threads 2 --reference-python /work/oracle/bin/python

The parent draws the inputs once from a fixed seed (GT polygons of COCO-like sizes rasterised to 160 x 160
GT masks, predictions near the anchors, random mask coefficients and prototypes, 80 classes, topk 10) into a
temporary .npz; each implementation then runs in its own process, so peak RSS is that implementation's alone.
Reported per implementation: the best wall time of ``--repeat`` calls, the process's peak RSS, and the peak
RSS increase over the process's RSS just before the first call (the assignment's own working memory). The two
results' positives and GT indices are compared. Not a test: it prints a table and never fails the build.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NC, STRIDES, TOPK, NM = 80, (8, 16, 32), 10, 32
ROOT = Path(__file__).resolve().parents[1]


def make_inputs(path: str, batch: int, imgsz: int, n_gt: int, seed: int = 0) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from yolotal.core.masks import polygon_masks

    rng = np.random.default_rng(seed)
    pts = []
    for s in STRIDES:
        n = imgsz // s
        ys, xs = np.meshgrid(np.arange(n, dtype=np.float32) + 0.5, np.arange(n, dtype=np.float32) + 0.5, indexing="ij")
        pts.append(np.stack((xs.ravel(), ys.ravel()), 1) * s)
    anc = np.concatenate(pts).astype(np.float32)
    a = len(anc)
    mh = imgsz // 4
    gt = np.zeros((batch, n_gt, 4), np.float32)
    masks = np.zeros((batch, n_gt, mh, mh), bool)
    for i in range(batch):
        polys = []
        for g in range(n_gt):
            side = float(np.clip(np.exp(rng.normal(np.log(0.08 * imgsz), 0.9)), 4, imgsz * 0.9))
            c = rng.uniform(side / 2, imgsz - side / 2, 2)
            k = int(rng.integers(6, 20))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = rng.uniform(0.5, 1.0, k) * side / 2
            p = np.stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)], 1).clip(0, imgsz)
            polys.append(p)
            gt[i, g] = [*p.min(0), *p.max(0)]
        masks[i] = polygon_masks((imgsz, imgsz), polys, 4).astype(bool)
    labels = rng.integers(0, NC, (batch, n_gt, 1)).astype(np.float32)
    scores = rng.uniform(0, 0.3, (batch, a, NC)).astype(np.float32)
    half = np.exp(rng.normal(np.log(0.05 * imgsz), 0.8, (batch, a, 2))).astype(np.float32)
    centre = anc + rng.normal(0, 4, (batch, a, 2)).astype(np.float32)
    boxes = np.concatenate((centre - half, centre + half), -1)
    coef = rng.normal(0, 1, (batch, a, NM)).astype(np.float32)
    proto = rng.normal(0, 1, (batch, NM, mh, mh)).astype(np.float32)
    np.savez(path, anc=anc, gt_bboxes=gt, gt_labels=labels, gt_masks=masks, pd_scores=scores, pd_bboxes=boxes,
             pd_coef=coef, proto=proto, mask_scale=np.float32(mh / imgsz))


def _rss_now_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(impl: str, inputs: str, out: str, repeat: int, threads: int) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    z = {k: torch.from_numpy(v) for k, v in np.load(inputs).items()}
    b, m = z["gt_bboxes"].shape[:2]
    mask_gt = torch.ones(b, m, 1)
    scale = float(z["mask_scale"])
    if impl == "yolotal":
        sys.path.insert(0, str(ROOT))
        from yolotal.assigners import seg_tal, tal

        p = tal.TALParams(num_classes=NC, topk=TOPK, stride_val=float(STRIDES[1]))

        def call():
            r = seg_tal.assign(z["pd_scores"], z["pd_bboxes"], z["anc"], z["gt_labels"], z["gt_bboxes"], mask_gt,
                               z["pd_coef"], z["proto"], z["gt_masks"], scale, p)
            return r.tal.fg_mask, r.tal.target_gt_idx
    else:
        from ultralytics.utils.tal import SegTaskAlignedAssigner

        asg = SegTaskAlignedAssigner(topk=TOPK, num_classes=NC, alpha=0.5, beta=6.0, stride=list(STRIDES))

        def call():
            out_ = asg(z["pd_scores"], z["pd_bboxes"], z["anc"], z["gt_labels"], z["gt_bboxes"], mask_gt,
                       pd_coef=z["pd_coef"], mask_scale=torch.full((b, 1), scale), proto=z["proto"],
                       gt_masks=z["gt_masks"])
            return out_[3], out_[4]

    before = _rss_now_kb()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fg, idx = call()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(out, fg=fg.numpy(), idx=idx.numpy())
    print(json.dumps({"impl": impl, "time_s": min(times), "peak_rss_mb": peak / 1024,
                      "rss_increase_mb": (peak - before) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--gts", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference-python", default=sys.executable)
    ap.add_argument("--child", choices=["yolotal", "ultralytics"])
    ap.add_argument("--inputs")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.inputs, args.out, args.repeat, args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "inputs.npz")
        make_inputs(inp, args.batch, args.imgsz, args.gts)
        env = {**os.environ, "YOLO_VERBOSE": "False", "YOLO_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        rows = {}
        for impl, py in (("yolotal", sys.executable), ("ultralytics", args.reference_python)):
            out = os.path.join(tmp, f"{impl}.npz")
            cmd = [py, __file__, "--child", impl, "--inputs", inp, "--out", out, "--repeat", str(args.repeat),
                   "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode:
                print(f"{impl}: failed\n{res.stderr[-2000:]}")
                return
            rows[impl] = json.loads(res.stdout.strip().splitlines()[-1])
        import numpy as np

        y, u = np.load(os.path.join(tmp, "yolotal.npz")), np.load(os.path.join(tmp, "ultralytics.npz"))
        same = bool((y["fg"] == u["fg"]).all() and (y["idx"][y["fg"]] == u["idx"][u["fg"]]).all())
    print(f"{args.batch} images at {args.imgsz}, {args.gts} GTs each, nm {NM}, topk {TOPK}, {args.threads} thread(s), "
          f"best of {args.repeat}")
    print(f"{'':12s} {'time s':>8s} {'peak RSS MB':>12s} {'RSS increase MB':>16s}")
    for impl, r in rows.items():
        print(f"{impl:12s} {r['time_s']:8.2f} {r['peak_rss_mb']:12.0f} {r['rss_increase_mb']:16.0f}")
    ry, ru = rows["yolotal"], rows["ultralytics"]
    print(f"ratio yolotal/ultralytics: time {ry['time_s'] / ru['time_s']:.2f} (goal <= 0.5), peak RSS "
          f"{ry['peak_rss_mb'] / ru['peak_rss_mb']:.2f}, RSS increase "
          f"{ry['rss_increase_mb'] / max(ru['rss_increase_mb'], 1e-9):.2f} (goal <= 0.5)")
    print(f"same positives and GT indices: {same}")


if __name__ == "__main__":
    main()
