"""Golden fixtures for the other assigners (NOT run by CI; needs the oracle venv):

    YOLO_VERBOSE=False YOLO_OFFLINE=1 /tmp/oracle/bin/python scripts/make_golden_others.py

* yolov5: yolov5 7.0.14's ComputeLoss.build_targets on label sets drawn like make_golden.py's (anchors in
  grid units as the Detect layer holds them, anchor_t 4.0): per level the indices (image, anchor, gy, gx),
  tbox, anchor sizes and classes, in the reference's order.
* simota (profile yolox-0.3): yolox 0.3.0's YOLOXHead.get_assignments per image on random YOLOX heads
  (reg 4 + obj 1 + cls nc channels per level): fg mask, matched GT per foreground anchor, their classes and
  IoUs.

Writes tests/fixtures/golden/others/<name>.npz. Inputs are generated from seeds with numpy only.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden" / "others"
V5_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def yolov5_case(name, seed, batch, imgsz, per_image, kind, strides=(8, 16, 32)):
    from yolov5.utils.loss import ComputeLoss

    rng = np.random.default_rng(seed)
    labels = mg.random_labels(rng, batch, 5, per_image, imgsz, kind)
    h, w = imgsz
    anchors = torch.tensor(V5_ANCHORS, dtype=torch.float32).view(3, 3, 2) / torch.tensor(strides).view(3, 1, 1)
    stub = types.SimpleNamespace(na=3, nl=3, anchors=anchors, hyp={"anchor_t": 4.0}, device=torch.device("cpu"))
    p = [torch.zeros(batch, 3, h // s, w // s, 10) for s in strides]
    tcls, tbox, indices, anch = ComputeLoss.build_targets(stub, p, torch.from_numpy(labels))
    out = {"labels": labels, "imgsz": np.array(imgsz), "strides": np.array(strides), "anchors": np.array(V5_ANCHORS, np.float32)}
    # YOLOv5's loss on random raw head maps (b, na*(5+nc), h, w), viewed as Detect does in training
    nc = 5
    raw = [rng.normal(0, 1, (batch, 3 * (5 + nc), h // s, w // s)).astype(np.float32) for s in strides]
    pl = [torch.from_numpy(r).view(batch, 3, 5 + nc, h // s, w // s).permute(0, 1, 3, 4, 2).contiguous()
          for r, s in zip(raw, strides)]
    stub.sort_obj_iou, stub.nc, stub.gr, stub.ssi, stub.autobalance = False, nc, 1.0, 0, False
    stub.cp, stub.cn, stub.balance = 1.0, 0.0, [4.0, 1.0, 0.4]
    stub.BCEcls = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0]))
    stub.BCEobj = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0]))
    stub.hyp.update(box=0.05, obj=1.0, cls=0.5)
    stub.build_targets = types.MethodType(ComputeLoss.build_targets, stub)
    total, items = ComputeLoss.__call__(stub, pl, torch.from_numpy(labels))
    out.update({f"level{i}": r for i, r in enumerate(raw)})
    out["loss"] = np.array([float(total), *items.tolist()], np.float32)
    for i in range(3):
        b, a, gj, gi = indices[i]
        out.update({f"l{i}_image": b.numpy(), f"l{i}_anchor": a.numpy(), f"l{i}_gy": gj.numpy(), f"l{i}_gx": gi.numpy(),
                    f"l{i}_tbox": tbox[i].numpy(), f"l{i}_anch": anch[i].numpy(), f"l{i}_cls": tcls[i].numpy()})
    np.savez_compressed(OUT / f"yolov5_{name}.npz", **out)
    print("yolov5", name, [len(x[0]) for x in indices], out["loss"])


def simota_case(name, seed, batch, imgsz, per_image, kind, nc=4, strides=(8, 16, 32)):
    from yolox.models.yolo_head import YOLOXHead

    rng = np.random.default_rng(seed)
    labels = mg.random_labels(rng, batch, nc, per_image, imgsz, kind)
    h, w = imgsz
    levels = [rng.normal(0, 1, (batch, 5 + nc, h // s, w // s)).astype(np.float32) for s in strides]
    for lv in levels:  # raw regressions of a plausible scale: offsets ~0.3 cells, sizes ~4 strides
        lv[:, :2] *= 0.3
        lv[:, 2:4] = lv[:, 2:4] * 0.5 + np.log(4.0)
    # YOLOX's decode (get_output_and_grid), written out
    outs, xs, ys, ss = [], [], [], []
    for lv, s in zip(levels, strides):
        t = torch.from_numpy(lv)
        b, c, hh, ww = t.shape
        yv, xv = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing="ij")
        o = t.permute(0, 2, 3, 1).reshape(b, hh * ww, c).clone()
        grid = torch.stack((xv, yv), 2).view(1, -1, 2).float()
        o[..., :2] = (o[..., :2] + grid) * s
        o[..., 2:4] = torch.exp(o[..., 2:4]) * s
        outs.append(o)
        xs.append(grid[..., 0])
        ys.append(grid[..., 1])
        ss.append(torch.full((1, hh * ww), float(s)))
    outputs = torch.cat(outs, 1)
    x_shifts, y_shifts, expanded = torch.cat(xs, 1), torch.cat(ys, 1), torch.cat(ss, 1)
    head = types.SimpleNamespace(num_classes=nc)
    head.get_in_boxes_info = types.MethodType(YOLOXHead.get_in_boxes_info, head)
    head.dynamic_k_matching = types.MethodType(YOLOXHead.dynamic_k_matching, head)
    res = {"labels": labels, "imgsz": np.array(imgsz), "strides": np.array(strides), "nc": np.array(nc),
           **{f"level{i}": x for i, x in enumerate(levels)}}
    total = outputs.shape[1]
    for bi in range(batch):
        rows = labels[labels[:, 0] == bi]
        fg = np.zeros(total, bool)
        gt_idx = np.zeros(0, np.int64)
        ious = np.zeros(0, np.float32)
        if len(rows):
            gt = torch.from_numpy(rows[:, 2:6] * np.array([w, h, w, h], np.float32))
            cls = torch.from_numpy(rows[:, 1])
            r = YOLOXHead.get_assignments(
                head, bi, len(rows), total, gt, cls, outputs[bi, :, :4], expanded, x_shifts, y_shifts,
                outputs[..., 5:], outputs[..., :4], outputs[..., 4:5], None, None, mode="cpu_free")
            _, fgm, pious, mgi, _ = r
            fg, gt_idx, ious = fgm.numpy(), mgi.numpy(), pious.numpy()
        res.update({f"img{bi}_fg": fg, f"img{bi}_gt": gt_idx, f"img{bi}_iou": ious})
    res["decoded"] = outputs.numpy()
    # YOLOX's loss on the same batch (use_l1 off, as in all but the last no-augmentation epochs)
    real = YOLOXHead(nc, width=0.25)
    most = max(int((labels[:, 0] == bi).sum()) for bi in range(batch)) if len(labels) else 0
    padded = torch.zeros(batch, max(most, 1), 5)
    for bi in range(batch):
        rows = labels[labels[:, 0] == bi]
        if len(rows):
            padded[bi, : len(rows), 0] = torch.from_numpy(rows[:, 1])
            padded[bi, : len(rows), 1:] = torch.from_numpy(rows[:, 2:6] * np.array([w, h, w, h], np.float32))
    hw = [(h // s) * (w // s) for s in strides]
    split = lambda x: list(torch.split(x, hw, 1))  # noqa: E731
    loss, iou, obj, cls, _, _ = real.get_losses(None, split(x_shifts), split(y_shifts), split(expanded), padded, outputs,
                                                None, torch.float32)
    res["loss"] = np.array([float(loss), float(iou), float(obj), float(cls)], np.float32)
    np.savez_compressed(OUT / f"simota_{name}.npz", **res)
    print("simota", name, [int(res[f"img{b}_fg"].sum()) for b in range(batch)])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    yolov5_case("mixed", 21, 3, (320, 320), 8, "mixed")
    yolov5_case("rect_edge", 22, 2, (256, 416), 6, "edge")
    yolov5_case("tiny_huge", 23, 2, (320, 320), [6, 4], "mixed")
    yolov5_case("empty", 24, 2, (256, 256), [0, 0], "mixed")
    simota_case("mixed", 31, 2, (256, 256), [7, 4], "mixed")
    simota_case("crowded", 32, 1, (256, 256), [25], "medium")
    simota_case("tiny", 33, 2, (256, 320), [5, 3], "tiny")


if __name__ == "__main__":
    main()
