"""Golden fixture for `--model`: ultralytics 8.4 itself builds yolo11n (nc 3, seed 0), letterboxes the
samples/shapes pictures the way its validation does (cv2 INTER_LINEAR, grey 114), runs the model (eval mode,
no_grad) and computes v8DetectionLoss on the result. Written in yolotal's --save-heads layout, so
`yolotal loss samples/shapes/labels --heads tests/fixtures/golden/model/shapes_yolo11n.npz` replays it.

Run with the oracle venv (never by CI):
    YOLO_VERBOSE=False YOLO_OFFLINE=1 /tmp/oracle/bin/python scripts/make_golden_model.py
"""

import json
import types
from pathlib import Path

import cv2
import numpy as np
import torch
import ultralytics
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.loss import v8DetectionLoss

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "samples" / "shapes"
OUT = ROOT / "tests" / "fixtures" / "golden" / "model"
IMGSZ, NC, SEED = 320, 3, 0
GAINS = (7.5, 0.5, 1.5)


def letterbox(path):
    im = cv2.imread(str(path))[:, :, ::-1]  # RGB
    h0, w0 = im.shape[:2]
    r = min(IMGSZ / h0, IMGSZ / w0)
    nw, nh = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = (IMGSZ - nw) / 2, (IMGSZ - nh) / 2
    left, top = int(round(dw - 0.1)), int(round(dh - 0.1))
    canvas = np.full((IMGSZ, IMGSZ, 3), 114, np.uint8)
    resized = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w0, h0) else im
    canvas[top : top + nh, left : left + nw] = resized
    return canvas, r, (left, top), (h0, w0)


def main():
    files = sorted((SHAPES / "labels").glob("*.txt"))
    images, scale, pad, orig, rows = [], [], [], [], []
    for b, f in enumerate(files):
        img = SHAPES / "images" / (f.stem + ".jpg")
        canvas, r, (left, top), (h0, w0) = letterbox(img)
        images.append(canvas.transpose(2, 0, 1).astype(np.float32) / 255.0)
        scale.append(r), pad.append((left, top)), orig.append((h0, w0))
        for line in f.read_text().split("\n"):
            if line.strip():
                c, x, y, w, h = (float(v) for v in line.split())
                rows.append([b, c, (x * w0 * r + left) / IMGSZ, (y * h0 * r + top) / IMGSZ, w * w0 * r / IMGSZ,
                             h * h0 * r / IMGSZ])
    x = torch.from_numpy(np.stack(images))
    torch.manual_seed(SEED)
    model = DetectionModel("yolo11n.yaml", nc=NC, verbose=False).eval()
    with torch.no_grad():
        _, preds = model(x)
    model.args = types.SimpleNamespace(box=GAINS[0], cls=GAINS[1], dfl=GAINS[2])
    crit = v8DetectionLoss(model)
    lab = torch.tensor(rows, dtype=torch.float32)
    total, items = crit(preds, {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6]})
    feats = preds["feats"]
    b = x.shape[0]
    flat = torch.cat((preds["boxes"], preds["scores"]), 1)  # (b, 4*reg_max+nc, A)
    levels, start = {}, 0
    for i, f in enumerate(feats):
        h, w = f.shape[2:]
        levels[f"level{i}"] = flat[:, :, start : start + h * w].reshape(b, -1, h, w).numpy()
        start += h * w
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT / "shapes_yolo11n.npz", **levels, images=x.numpy(),
        image_files=np.array([str((SHAPES / "images" / (f.stem + ".jpg")).relative_to(ROOT)) for f in files]),
        letterbox_scale=np.array(scale), letterbox_pad=np.array(pad, np.int64), orig_shape=np.array(orig, np.int64),
        imgsz=np.array([IMGSZ, IMGSZ]), strides=np.array([8, 16, 32]), reg_max=np.array(16), nc=np.array(NC),
        loss_gains=np.array(GAINS), model=np.array("yolo11n.yaml"), class_names=np.array(["box", "disc", "triangle"]),
    )
    doc = {"reference": f"ultralytics {ultralytics.__version__}", "model": "yolo11n.yaml", "nc": NC, "seed": SEED,
           "imgsz": IMGSZ, "gains": GAINS, "label_files": [str(f.relative_to(ROOT)) for f in files],
           "loss_items": {k: float(v) for k, v in items.items()} if isinstance(items, dict) else [float(v) for v in items], "loss_total": [float(v) for v in total.flatten()]}
    (OUT / "shapes_yolo11n.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(doc)


if __name__ == "__main__":
    main()
