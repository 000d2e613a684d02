"""Time and peak memory of yolotal.TaskAlignedAssigner against the dense reference, quiet and under contention.

    python benchmarks/bench_assigner.py                 # all cases x {quiet, busy core} x {1, 2 threads}
    python benchmarks/bench_assigner.py --case dense --repeat 3 --threads 2 --load quiet

"busy core" starts a competing process (a Python busy loop pinned to the last CPU) for the duration of the
cell, like a data-loader worker on a training machine, and stops it (by its pid) afterwards.

The reference is ultralytics' TaskAlignedAssigner when the interpreter can import it (for example the
oracle venv with this repository on PYTHONPATH), otherwise yolotal's own dense implementation, which
builds the same (b, M, A) tensors. Each (implementation, case) runs in its own process, so peak RSS is
that implementation's alone. Inputs are generated from a fixed seed: GT sizes and positions drawn like
COCO's (many small objects), predictions near the anchors, 80 classes, strides 8/16/32, topk 10.
Not a test: it prints a table and the goal ratios, it never fails the build.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {  # name: (batch, imgsz, GTs per image, goal: time ratio, RSS ratio)
    "dense": (4, 1280, 1000, 0.10, 0.35),
    "busy": (8, 640, 300, 0.10, None),
    "typical": (16, 640, 20, 0.50, None),
}
NC, STRIDES, TOPK = 80, (8, 16, 32), 10


def make_inputs(batch: int, imgsz: int, n_gt: int, seed: int = 0):
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
    # COCO-like sizes: sqrt(area) log-normal around 6% of the image, aspect ratio log-normal
    side = np.clip(np.exp(rng.normal(np.log(0.06 * imgsz), 1.0, (batch, n_gt))), 2, imgsz)
    ratio = np.exp(rng.normal(0, 0.5, (batch, n_gt)))
    w, h = np.clip(side * ratio, 1, imgsz), np.clip(side / ratio, 1, imgsz)
    cx, cy = rng.uniform(w / 2, imgsz - w / 2), rng.uniform(h / 2, imgsz - h / 2)
    gt = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1).astype(np.float32)
    gt_bboxes = torch.from_numpy(gt)
    gt_labels = torch.from_numpy(rng.integers(0, NC, (batch, n_gt, 1)).astype(np.float32))
    mask_gt = torch.ones(batch, n_gt, 1)
    pd_scores = torch.from_numpy(rng.uniform(0, 0.3, (batch, a, NC)).astype(np.float32))
    half = torch.from_numpy(np.exp(rng.normal(np.log(0.04 * imgsz), 0.8, (batch, a, 2))).astype(np.float32))
    centre = anc + torch.from_numpy(rng.normal(0, 4, (batch, a, 2)).astype(np.float32))
    pd_bboxes = torch.cat((centre - half, centre + half), -1)
    return pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt


def build(impl: str):
    if impl == "ultralytics":
        from ultralytics.utils.tal import TaskAlignedAssigner as Ref

        return Ref(topk=TOPK, num_classes=NC, alpha=0.5, beta=6.0, stride=list(STRIDES))
    if impl == "dense":
        from yolotal.assigners.tal import TALParams, assign

        p = TALParams(num_classes=NC, topk=TOPK, stride_val=float(STRIDES[1]))

        def run(*x):
            r = assign(*x, p)
            return r.target_labels, r.target_bboxes, r.target_scores, r.fg_mask, r.target_gt_idx

        return run
    from yolotal import TaskAlignedAssigner

    return TaskAlignedAssigner(topk=TOPK, num_classes=NC, alpha=0.5, beta=6.0, stride=list(STRIDES))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(impl: str, case: str, repeat: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    batch, imgsz, n_gt, *_ = CASES[case]
    inputs = make_inputs(batch, imgsz, n_gt)
    fn = build(impl)
    base = rss_mb()
    times = []
    for i in range(repeat + 1):  # the first run warms up and is not counted
        t0 = time.perf_counter()
        out = fn(*inputs)
        dt = time.perf_counter() - t0
        positives = int((out[3] & (out[2].sum(-1) > 0)).sum())  # positives that carry weight
        del out
        if i:
            times.append(dt)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "case": case, "ms": 1000 * statistics.median(times), "peak_mb": peak,
            "base_mb": base, "positives": positives, "anchors": int(inputs[2].shape[0])}


def has_ultralytics() -> bool:
    import importlib.util

    return importlib.util.find_spec("ultralytics") is not None


def start_busy_process():
    """A competing CPU-bound process pinned to the last CPU; returns its Popen (stop it with stop_busy)."""
    cpu = max(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def stop_busy(proc) -> None:
    if proc is not None:
        proc.terminate()
        proc.wait()


def run_worker(impl: str, case: str, repeat: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, case, "--repeat", str(repeat)]
    env = {**os.environ, "BENCH_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (median reported)")
    ap.add_argument("--threads", choices=["1", "2", "all"], default="all", help="torch intra-op threads")
    ap.add_argument("--load", choices=["quiet", "busy", "all"], default="all",
                    help="quiet, or with a competing busy process on one core")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeat)))
        return
    ref = "ultralytics" if has_ultralytics() else "dense"
    cases = list(CASES) if args.case == "all" else [args.case]
    threads = [1, 2] if args.threads == "all" else [int(args.threads)]
    loads = ["quiet", "busy"] if args.load == "all" else [args.load]
    print(f"reference: {ref}; median of {args.repeat} runs after a warm-up; {os.cpu_count()} CPUs; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| case | b × imgsz × GTs | load | threads | reference ms | yolotal ms | time ratio (goal) "
          "| weighted positives ref / yolotal | reference peak RSS MB | yolotal peak RSS MB | RSS ratio (goal) |")
    print("|---|---|---|---:|---:|---:|---|---|---:|---:|---|")
    for case in cases:
        for load in loads:
            for n in threads:
                busy = start_busy_process() if load == "busy" else None
                try:
                    r = run_worker(ref, case, args.repeat, n)
                    y = run_worker("yolotal", case, args.repeat, n)
                finally:
                    stop_busy(busy)
                batch, imgsz, n_gt, goal_t, goal_m = CASES[case]
                tr, mr = y["ms"] / r["ms"], y["peak_mb"] / r["peak_mb"]
                gt_txt = f"{tr:.3f} (≤ {goal_t})" + ("" if tr <= goal_t else " MISSED")
                gm_txt = f"{mr:.2f}" + (f" (≤ {goal_m})" + ("" if mr <= goal_m else " MISSED") if goal_m else "")
                same = "" if r["positives"] == y["positives"] else " DIFFERENT"
                print(f"| {case} | {batch} × {imgsz} × {n_gt} | {'busy core' if busy else 'quiet'} | {n} "
                      f"| {r['ms']:.0f} | {y['ms']:.0f} | {gt_txt} | {r['positives']} / {y['positives']}{same} "
                      f"| {r['peak_mb']:.0f} | {y['peak_mb']:.0f} | {gm_txt} |", flush=True)


if __name__ == "__main__":
    main()
