"""Writes samples/seg: two small pictures with polygon labels (ultralytics' segment layout, images/ <-> labels/)
and a dataset YAML, for the seg families' examples and tests. Deterministic; run from the repository root."""

import math
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1] / "samples" / "seg"
NAMES = ["blob", "star", "sliver"]
COLOURS = [(230, 60, 50), (250, 210, 40), (60, 200, 120)]


def star(cx, cy, r_out, r_in, n=5, turn=0.0):
    pts = []
    for k in range(2 * n):
        r = r_out if k % 2 == 0 else r_in
        a = turn + math.pi * k / n - math.pi / 2
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def blob(cx, cy, rx, ry, n=14, wobble=0.18):
    return [(cx + rx * (1 + wobble * math.sin(3 * t)) * math.cos(t), cy + ry * (1 + wobble * math.cos(2 * t)) * math.sin(t))
            for t in (2 * math.pi * k / n for k in range(n))]


# name: (w, h, background, [(class, polygon px)])  -- objects overlap so that overlap_mask reorders them
PICTURES = {
    "street": (320, 240, (70, 110, 150), [
        (0, blob(110, 120, 80, 70)),  # large, partly under the star
        (1, star(150, 110, 60, 25)),
        (2, [(230, 40), (300, 52), (298, 58), (228, 46)]),  # a thin sliver
        (0, blob(260, 180, 35, 30)),
    ]),
    "field": (200, 260, (120, 140, 90), [
        (1, star(100, 90, 70, 30, 6, 0.2)),
        (0, blob(80, 200, 60, 40)),
        (2, [(150, 160), (190, 230), (140, 250)]),
        (0, [(10, 10), (16, 10), (16, 15), (10, 15)]),  # tiny: an empty mask at imgsz / 4 after the letterbox
    ]),
}


def main() -> None:
    (ROOT / "images").mkdir(parents=True, exist_ok=True)
    (ROOT / "labels").mkdir(parents=True, exist_ok=True)
    for name, (w, h, bg, objs) in PICTURES.items():
        im = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(im)
        lines = []
        for c, poly in objs:
            d.polygon(poly, fill=COLOURS[c])
            lines.append(f"{c} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly))
        im.save(ROOT / "images" / f"{name}.png")
        (ROOT / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (ROOT / "seg.yaml").write_text(
        "# two pictures with polygon labels (samples/seg), ultralytics dataset layout\n"
        "train: images\nval: images\nnames:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
    )


if __name__ == "__main__":
    main()
