"""Writes samples/shapes: four small pictures of plain shapes in ultralytics' layout (images/ <-> labels/) and a
dataset YAML, for `--model` examples and tests. Deterministic; run from the repository root."""

from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1] / "samples" / "shapes"
NAMES = ["box", "disc", "triangle"]
# name: (w, h, background, [(class, x1, y1, x2, y2) in px])
PICTURES = {
    "landscape": (640, 480, (70, 110, 150), [(0, 60, 80, 300, 400), (1, 400, 120, 560, 280), (2, 500, 380, 512, 392)]),
    "portrait": (360, 640, (120, 140, 90), [(1, 40, 40, 320, 320), (0, 150, 420, 210, 600)]),
    "square": (512, 512, (200, 190, 170), [(2, 100, 100, 400, 420), (0, 20, 470, 26, 476), (1, 440, 30, 490, 80)]),
    "wide": (800, 450, (40, 40, 60), [(0, 10, 10, 790, 440)]),
}
COLOURS = [(230, 60, 50), (250, 210, 40), (60, 200, 120)]


def main() -> None:
    (ROOT / "images").mkdir(parents=True, exist_ok=True)
    (ROOT / "labels").mkdir(parents=True, exist_ok=True)
    for name, (w, h, bg, objs) in PICTURES.items():
        im = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(im)
        lines = []
        for c, x1, y1, x2, y2 in objs:
            if c == 0:
                d.rectangle([x1, y1, x2 - 1, y2 - 1], fill=COLOURS[c])
            elif c == 1:
                d.ellipse([x1, y1, x2 - 1, y2 - 1], fill=COLOURS[c])
            else:
                d.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=COLOURS[c])
            lines.append(f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        im.save(ROOT / "images" / f"{name}.jpg", quality=90)
        (ROOT / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (ROOT / "shapes.yaml").write_text(
        "# four pictures of plain shapes (samples/shapes), ultralytics dataset layout\n"
        "train: images\nval: images\nnames:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
    )


if __name__ == "__main__":
    main()
