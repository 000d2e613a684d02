"""Speed of `yolotal scan DATA --model`: model forward vs assignment + loss, images/s, peak RSS.

    python benchmarks/bench_scan_model.py [--images 64] [--imgsz 640] [--batch 16] [--model yolo11n.yaml]

Writes --images JPEG pictures (640×480, noise and shapes) with COCO-like labels (about 7 objects per image,
80 classes) to a temporary dataset, then runs `yolotal scan labels --model MODEL --nc 80` in a child process
and reads the stage times it reports: decode + letterbox, model forward, assignment + loss (goal: assignment +
loss <= 30% of the forward). Needs the extra yolotal[ultralytics]. Not a test: it never fails the build.
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

import numpy as np


def generate(root: Path, n: int, seed: int = 0) -> int:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    total = 0
    for i in range(n):
        im = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        d = ImageDraw.Draw(im)
        k = int(min(rng.geometric(1 / 7.3), 60))
        side = np.clip(np.exp(rng.normal(np.log(0.075), 1.0, k)), 0.005, 0.9)
        w, h = side * np.exp(rng.normal(0, 0.4, k)), side * np.exp(rng.normal(0, 0.4, k))
        w, h = np.clip(w, 0.004, 0.95), np.clip(h, 0.004, 0.95)
        cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        lines = []
        for j in range(k):
            d.rectangle([(cx[j] - w[j] / 2) * 640, (cy[j] - h[j] / 2) * 480, (cx[j] + w[j] / 2) * 640,
                         (cy[j] + h[j] / 2) * 480], fill=tuple(int(x) for x in rng.integers(0, 255, 3)))
            lines.append(f"{rng.integers(0, 80)} {cx[j]:.6f} {cy[j]:.6f} {w[j]:.6f} {h[j]:.6f}")
        im.save(root / "images" / f"{i:06d}.jpg", quality=85)
        (root / "labels" / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")
        total += k
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="yolo11n.yaml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gts = generate(root, args.images)
        rep = root / "r.json"
        cmd = [sys.executable, "-m", "yolotal", "scan", str(root / "labels"), "--model", args.model, "--nc", "80",
               "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--workers", str(args.workers),
               "--report", str(rep)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, COLUMNS="120"))
        wall = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(r.stderr)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        meta = json.loads(rep.read_text())["meta"]
        st = meta["stage_seconds"]
        print(f"{args.images} images ({gts} GTs), {args.model} at {args.imgsz}, batch {args.batch}, "
              f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
        print(f"decode+letterbox {st['images']:.2f} s · forward {st['forward']:.2f} s · assignment+loss "
              f"{st['assign_loss']:.2f} s = {100 * st['assign_loss'] / st['forward']:.1f}% of the forward (goal <= 30%)")
        print(f"scan loop {meta['seconds']:.2f} s = {args.images / meta['seconds']:.1f} images/s; end to end (with "
              f"start-up) {wall:.2f} s = {args.images / wall:.1f} images/s; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
