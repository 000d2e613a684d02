"""Write samples/pose/: a pose dataset YAML (kpt_shape [17, 3], COCO flip_idx), two label files and two small
generated pictures (stick figures drawn where the labels put them). Deterministic: run it again for the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "samples" / "pose"
# a standing person in box-normalised coordinates: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles
TEMPLATE = np.array([
    (0.50, 0.08), (0.45, 0.06), (0.55, 0.06), (0.40, 0.08), (0.60, 0.08), (0.30, 0.22), (0.70, 0.22),
    (0.22, 0.40), (0.78, 0.40), (0.18, 0.56), (0.82, 0.56), (0.38, 0.56), (0.62, 0.56), (0.36, 0.76),
    (0.64, 0.76), (0.35, 0.95), (0.65, 0.95)], np.float64)
SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
# per image: (width, height, background grey), people as (cx, cy, w, h normalised, visibility per keypoint)
IMAGES = {
    "street": (320, 240, 200, [
        (0.25, 0.55, 0.08, 0.15, [2] * 17),  # sqrt(area) 61 px at 640: P5 gated away (< 2·32)
        (0.60, 0.50, 0.40, 0.80, [2] * 13 + [1, 1, 0, 0]),  # 313 px: only P5 open; ankles not labelled
        (0.88, 0.30, 0.06, 0.10, [0] * 17),  # no visible keypoint: the assigner falls back to CIoU
    ]),
    "pair": (256, 320, 170, [
        (0.35, 0.50, 0.30, 0.60, [2] * 17),
        (0.55, 0.55, 0.28, 0.50, [2] * 5 + [1] * 6 + [2] * 6),  # overlaps the first: conflicts
    ]),
}


def main() -> None:
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    (OUT / "labels").mkdir(parents=True, exist_ok=True)
    for name, (w, h, grey, people) in IMAGES.items():
        img = Image.new("RGB", (w, h), (grey, grey, grey))
        d = ImageDraw.Draw(img)
        rows = []
        for cx, cy, bw, bh, vis in people:
            pts = np.stack((cx - bw / 2 + TEMPLATE[:, 0] * bw, cy - bh / 2 + TEMPLATE[:, 1] * bh), 1)
            v = np.array(vis, np.float64)
            pts = np.where(v[:, None] > 0, pts, 0.0)  # unlabelled keypoints are written as 0 0 0
            for a, b in SKELETON:
                if v[a] > 0 and v[b] > 0:
                    d.line([(pts[a, 0] * w, pts[a, 1] * h), (pts[b, 0] * w, pts[b, 1] * h)], fill=(40, 40, 90), width=2)
            vals = [f"{x:.6f}" for x in (cx, cy, bw, bh)]
            for (x, y), vv in zip(pts, v):
                vals += [f"{x:.6f}", f"{y:.6f}", f"{int(vv)}"]
            rows.append("0 " + " ".join(vals))
        img.save(OUT / "images" / f"{name}.png")
        (OUT / "labels" / f"{name}.txt").write_text("\n".join(rows) + "\n")
    flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    (OUT / "data.yaml").write_text(
        "# a tiny pose dataset (scripts/make_pose_sample.py): two pictures, five people\n"
        "train: images\nval: images\n"
        f"kpt_shape: [17, 3]\nflip_idx: {flip}\nnames:\n  0: person\n")


if __name__ == "__main__":
    main()
