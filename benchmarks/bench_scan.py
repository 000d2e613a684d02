"""Speed of `yolotal scan`'s geometric audit on a generated COCO-like dataset (goal: >= 2000 files/s).

    python benchmarks/bench_scan.py [--files 20000] [--workers 1 2]

Writes --files label files to a temporary directory (objects per image and sizes drawn like COCO's: about
7 objects per image, 1% empty files, ~41% small / 34% medium / 25% large boxes), then times
yolotal.scan.scan() on it for each --workers value (in-process, after imports; the first run also warms
the file cache and is not counted). Prints files/s. Not a test: it never fails the build.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(root: Path, n_files: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n_files):
        k = 0 if rng.random() < 0.01 else int(min(rng.geometric(1 / 7.3), 60))
        # sqrt(area) as a fraction of the image: log-normal, ~41% below 32/640
        side = np.clip(np.exp(rng.normal(np.log(0.075), 1.0, k)), 0.002, 1.0)
        ratio = np.exp(rng.normal(0, 0.6, k))
        w, h = np.clip(side * ratio, 0.001, 1), np.clip(side / ratio, 0.001, 1)
        cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        cls = rng.integers(0, 80, k)
        lines = "".join(f"{c} {x:.6f} {y:.6f} {a:.6f} {b:.6f}\n" for c, x, y, a, b in zip(cls, cx, cy, w, h))
        (root / f"{i:012d}.txt").write_text(lines)
        total += k
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    from yolotal.scan import report, scan

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        gts = generate(root, args.files)
        print(f"generated {args.files} label files with {gts} GTs in {time.perf_counter() - t0:.1f} s")
        scan(root, (640, 640), (8, 16, 32), 16, nc=80)  # warm-up: file cache, torch kernels
        for w in args.workers:
            t0 = time.perf_counter()
            res = scan(root, (640, 640), (8, 16, 32), 16, nc=80, workers=w)
            doc = report(res)
            dt = time.perf_counter() - t0
            fc = doc["flag_counts"]
            print(f"workers {w}: {args.files} files, {doc['gts']} GTs in {dt:.2f} s = {args.files / dt:,.0f} files/s "
                  f"(goal >= 2000) · starved (classic) {fc['starved_classic']} · tiny {fc['tiny']} · "
                  f"clamped {fc['clamped']}")


if __name__ == "__main__":
    main()
