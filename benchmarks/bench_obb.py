"""Time and peak memory of yolotal's rotated (OBB) assigner against ultralytics' RotatedTaskAlignedAssigner.

    python benchmarks/bench_obb.py                        # both cases, 2 threads
    python benchmarks/bench_obb.py --case typical --repeat 3 --threads 1

Cases (issue 17): 4 images of 1024 px with 1500 rotated GTs each (DOTA-like: many small objects, elongated,
any angle) and a typical batch of 16 x 640 px with 20 GTs. The reference is ultralytics'
RotatedTaskAlignedAssigner when the interpreter can import it (e.g. the oracle venv with this repository on
PYTHONPATH), otherwise yolotal's own dense implementation (``assigners.rotated_tal``, the same (b, M, A)
tensors). Each (implementation, case) runs in its own process, so peak RSS is that implementation's alone
(including the interpreter and torch). Inputs come from a fixed seed. Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {  # name: (batch, imgsz, GTs per image, goal: time ratio, RSS ratio)
    "dota": (4, 1024, 1500, 0.05, 0.2),
    "typical": (16, 640, 20, 0.5, None),
}
NC, STRIDES, TOPK = 15, (8, 16, 32), 10


def make_inputs(batch: int, imgsz: int, n_gt: int, seed: int = 0):
    """Anchors, predictions and DOTA-like rotated GTs (px xywhr)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    pts = []
    for s in STRIDES:
        n = imgsz // s
        ys, xs = np.meshgrid(np.arange(n, dtype=np.float32) + 0.5, np.arange(n, dtype=np.float32) + 0.5, indexing="ij")
        pts.append(np.stack((xs.ravel(), ys.ravel()), 1) * s)
    anc = torch.from_numpy(np.concatenate(pts).astype(np.float32))
    a = anc.shape[0]
    # DOTA-like: sqrt(area) log-normal around 2.5% of the image (vehicles, ships), elongated, any angle
    side = np.clip(np.exp(rng.normal(np.log(0.025 * imgsz), 0.7, (batch, n_gt))), 3, imgsz / 2)
    ratio = np.exp(np.abs(rng.normal(0, 0.6, (batch, n_gt))))
    w, h = side * ratio, side / ratio
    cx, cy = rng.uniform(0, imgsz, (batch, n_gt)), rng.uniform(0, imgsz, (batch, n_gt))
    ang = rng.uniform(-math.pi / 4, 3 * math.pi / 4, (batch, n_gt))
    gt_bboxes = torch.from_numpy(np.stack((cx, cy, w, h, ang), -1).astype(np.float32))
    gt_labels = torch.from_numpy(rng.integers(0, NC, (batch, n_gt, 1)).astype(np.float32))
    mask_gt = torch.ones(batch, n_gt, 1)
    pd_scores = torch.from_numpy(rng.uniform(0, 0.3, (batch, a, NC)).astype(np.float32))
    wh = np.exp(rng.normal(np.log(0.03 * imgsz), 0.8, (batch, a, 2)))
    centre = anc.numpy() + rng.normal(0, 4, (batch, a, 2))
    pang = rng.uniform(-math.pi / 4, 3 * math.pi / 4, (batch, a, 1))
    pd_bboxes = torch.from_numpy(np.concatenate((centre, wh, pang), -1).astype(np.float32))
    return pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt


def build(impl: str):
    if impl == "ultralytics":
        from ultralytics.utils.tal import RotatedTaskAlignedAssigner as Ref

        return Ref(topk=TOPK, num_classes=NC, alpha=0.5, beta=6.0, stride=list(STRIDES))
    if impl == "dense":
        from yolotal.assigners.rotated_tal import assign_rotated
        from yolotal.assigners.tal import TALParams

        p = TALParams(num_classes=NC, topk=TOPK, stride_val=float(STRIDES[1]))

        def run(*x):
            r = assign_rotated(*x, p)
            return r.target_labels, r.target_bboxes, r.target_scores, r.fg_mask, r.target_gt_idx

        return run
    from yolotal.assigner import RotatedTaskAlignedAssigner

    return RotatedTaskAlignedAssigner(topk=TOPK, num_classes=NC, alpha=0.5, beta=6.0, stride=list(STRIDES))


def worker(impl: str, case: str, repeat: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    batch, imgsz, n_gt, *_ = CASES[case]
    inputs = make_inputs(batch, imgsz, n_gt)
    fn = build(impl)
    times = []
    for i in range(repeat + 1):  # the first run warms up and is not counted
        t0 = time.perf_counter()
        out = fn(*inputs)
        dt = time.perf_counter() - t0
        positives = int((out[3] & (out[2].sum(-1) > 0)).sum())  # positives that carry weight
        score_sum = float(out[2].double().sum())
        del out
        if i:
            times.append(dt)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "case": case, "ms": 1000 * statistics.median(times), "peak_mb": peak,
            "positives": positives, "score_sum": score_sum, "anchors": int(inputs[2].shape[0])}


def has_ultralytics() -> bool:
    import importlib.util

    return importlib.util.find_spec("ultralytics") is not None


def run_worker(impl: str, case: str, repeat: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, case, "--repeat", str(repeat)]
    env = {**os.environ, "BENCH_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeat)))
        return
    ref = "ultralytics" if has_ultralytics() else "dense"
    cases = list(CASES) if args.case == "all" else [args.case]
    print(f"reference: {ref}; median of {args.repeat} runs after a warm-up; {args.threads} threads; "
          f"{os.cpu_count()} CPUs; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| case | b × imgsz × GTs | reference ms | yolotal ms | time ratio (goal) "
          "| weighted positives ref / yolotal | sum of target scores ref / yolotal | reference peak RSS MB | yolotal peak RSS MB | RSS ratio (goal) |")
    print("|---|---|---:|---:|---|---|---|---:|---:|---|")
    for case in cases:
        r = run_worker(ref, case, args.repeat, args.threads)
        y = run_worker("yolotal", case, args.repeat, args.threads)
        batch, imgsz, n_gt, goal_t, goal_m = CASES[case]
        tr, mr = y["ms"] / r["ms"], y["peak_mb"] / r["peak_mb"]
        gt_txt = f"{tr:.3f} (≤ {goal_t})" + ("" if tr <= goal_t else " MISSED")
        gm_txt = f"{mr:.2f}" + (f" (≤ {goal_m})" + ("" if mr <= goal_m else " MISSED") if goal_m else "")
        same = "" if r["positives"] == y["positives"] else " DIFFERENT"
        print(f"| {case} | {batch} × {imgsz} × {n_gt} | {r['ms']:.0f} | {y['ms']:.0f} | {gt_txt} "
              f"| {r['positives']} / {y['positives']}{same} | {r['score_sum']:.3f} / {y['score_sum']:.3f} "
              f"| {r['peak_mb']:.0f} | {y['peak_mb']:.0f} | {gm_txt} |", flush=True)


if __name__ == "__main__":
    main()
