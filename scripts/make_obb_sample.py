"""Write samples/obb: a dota8-like dataset (YAML, 3 label files, 3 small generated pictures), deterministic.

Each GT is a rotated rectangle (cx, cy, w, h in px of its picture, angle in degrees), written as its four
normalised corners ``cls x1 y1 x2 y2 x3 y3 x4 y4`` and painted on the picture.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent / "samples" / "obb"
NAMES = ["plane", "ship", "storage tank", "baseball diamond", "tennis court", "basketball court",
         "ground track field", "harbor", "bridge", "large vehicle", "small vehicle", "helicopter", "roundabout",
         "soccer ball field", "swimming pool"]
COLOURS = {0: (230, 230, 235), 1: (250, 250, 250), 9: (200, 60, 60), 10: (240, 200, 40), 4: (70, 140, 90),
           8: (150, 150, 150)}
# split, stem, picture size (w, h), GTs (cls, cx, cy, w, h, angle deg)
IMAGES = [
    ("train", "P0001", (320, 240), [
        (0, 110, 90, 96, 70, 30), (1, 230, 60, 60, 14, -20), (1, 250, 90, 56, 13, -20),
        (10, 200, 180, 9, 4, 60), (10, 214, 186, 9, 4, 60), (10, 280, 200, 1.4, 6, 10),
    ]),
    ("train", "P0002", (256, 256), [
        (4, 70, 70, 70, 36, 45), (9, 170, 150, 30, 11, 100), (9, 185, 170, 30, 11, 100),
        (8, 128, 220, 200, 12, 5), (10, 40, 200, 6, 3, 135),
    ]),
    ("val", "P0003", (288, 192), [
        (1, 90, 100, 120, 26, 75), (11, 210, 60, 34, 30, 10), (10, 240, 150, 10, 5, 0),
    ]),
]


def corners(cx, cy, w, h, deg):
    a = math.radians(deg)
    ux, uy = w / 2 * math.cos(a), w / 2 * math.sin(a)
    vx, vy = -h / 2 * math.sin(a), h / 2 * math.cos(a)
    return [(cx + ux + vx, cy + uy + vy), (cx + ux - vx, cy + uy - vy), (cx - ux - vx, cy - uy - vy),
            (cx - ux + vx, cy - uy + vy)]


def main() -> None:
    (ROOT / "dota8-mini").mkdir(parents=True, exist_ok=True)
    for split, stem, (w, h), gts in IMAGES:
        img_dir, lab_dir = ROOT / "dota8-mini" / "images" / split, ROOT / "dota8-mini" / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        im = Image.new("RGB", (w, h), (60, 90, 70))
        d = ImageDraw.Draw(im)
        lines = []
        for cls, cx, cy, bw, bh, deg in gts:
            pts = corners(cx, cy, bw, bh, deg)
            d.polygon(pts, fill=COLOURS.get(cls, (180, 180, 220)))
            lines.append(f"{cls} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in pts))
        im.save(img_dir / f"{stem}.png")
        (lab_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(NAMES))
    (ROOT / "dota8-mini.yaml").write_text(
        "# a dota8-like OBB dataset: 2 train and 1 val pictures (scripts/make_obb_sample.py)\n"
        f"path: dota8-mini\ntrain: images/train\nval: images/val\n\nnames:\n{names}\n")


if __name__ == "__main__":
    main()
