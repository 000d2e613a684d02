"""Speed of `yolotal scan` on a generated COCO-like dataset: the geometric audit (goal >= 2000 files/s), the
same with every label file's image header read and letterboxed (--images), and --simulate (goal >= 1000 files/s).

    python benchmarks/bench_scan.py [--files 20000] [--workers 1 2] [--images] [--simulate-files 4000]

Writes --files label files to a temporary directory (objects per image and sizes drawn like COCO's: about
7 objects per image, 1% empty files, ~41% small / 34% medium / 25% large boxes); with --images also a JPEG per
label file under images/ (COCO-like sizes, 640 px on the long side, landscape or portrait), then times
yolotal.scanning.scan() on it for each --workers value (in-process, after imports; the first run also warms
the file cache and is not counted), and scan(do_simulate=True) on the first --simulate-files files. Prints
files/s. Not a test: it never fails the build.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(root: Path, n_files: int, seed: int = 0, images: Path | None = None) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    if images is not None:
        from PIL import Image

        images.mkdir(parents=True, exist_ok=True)
        pics = {size: Image.new("RGB", size, (120, 110, 100)) for size in ((640, 480), (480, 640), (640, 427), (500, 375))}
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
        if images is not None:
            list(pics.values())[i % len(pics)].save(images / f"{i:012d}.jpg", quality=50)
        total += k
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--images", action="store_true", help="also write a JPEG per label file (letterboxed scan)")
    ap.add_argument("--simulate-files", type=int, default=4000, help="files timed with --simulate (0: skip)")
    args = ap.parse_args()
    from yolotal.scanning import report, scan

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "labels"
        root.mkdir()
        t0 = time.perf_counter()
        gts = generate(root, args.files, images=Path(tmp) / "images" if args.images else None)
        print(f"generated {args.files} label files with {gts} GTs{' and images' if args.images else ''} in "
              f"{time.perf_counter() - t0:.1f} s")
        scan(root, (640, 640), (8, 16, 32), 16, nc=80)  # warm-up: file cache, torch kernels
        for w in args.workers:
            t0 = time.perf_counter()
            res = scan(root, (640, 640), (8, 16, 32), 16, nc=80, workers=w)
            doc = report(res)
            dt = time.perf_counter() - t0
            fc = doc["flag_counts"]
            print(f"workers {w}: {args.files} files, {doc['gts']} GTs in {dt:.2f} s = {args.files / dt:,.0f} files/s "
                  f"(goal >= 2000) · letterboxed {doc['geometry']['letterboxed']} · starved (classic) "
                  f"{fc['starved_classic']} · tiny {fc['tiny']} · clamped {fc['clamped']}")
        if args.simulate_files:
            sub = Path(tmp) / "sub" / "labels"
            sub.mkdir(parents=True)
            for f in sorted(root.iterdir())[: args.simulate_files]:
                (sub / f.name).symlink_to(f)
            if args.images:
                (sub.parent / "images").symlink_to(Path(tmp) / "images")
            n = min(args.simulate_files, args.files)
            for w in args.workers:
                t0, c0 = time.perf_counter(), time.process_time()
                res = scan(sub, (640, 640), (8, 16, 32), 16, nc=80, do_simulate=True, workers=w)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                pos = res.positives.sum()
                cpu = f"; in-process CPU {dc:.2f} s = {n / dc:,.0f} files/s per core" if w == 1 else ""
                print(f"--simulate --workers {w}: {n} files, {len(res.parsed.rows)} GTs, {pos} positives in "
                      f"{dt:.2f} s wall = {n / dt:,.0f} files/s (goal >= 1000){cpu}")


if __name__ == "__main__":
    main()
