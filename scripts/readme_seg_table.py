"""Print the README's YOLO26-seg example: one GT's candidates with box IoU, mask IoU, their mean, t and result.

    PYTHONPATH=. python scripts/readme_seg_table.py [case] [image] [gt]

Reads a golden case (tests/fixtures/golden/seg/<case>.npz, recorded from ultralytics 8.4.190), rasterises its
GT masks with yolotal.core.masks, runs yolotal.assigners.seg_tal and prints a markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from yolotal.assigners import seg_tal, tal
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.decode import dfl_distances, ltrb_to_xyxy
from yolotal.core.masks import index_to_masks, polygon_masks
from yolotal.inputs.heads import from_levels

SEG = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden" / "seg"


def main(case: str = "y26_overlap_near", image: int = 0, gt: int = 0, rows: int = 14) -> None:
    z = dict(np.load(SEG / f"{case}.npz"))
    cfg = json.loads(str(z.pop("config")))
    h, w = cfg["imgsz"]
    levels = [torch.from_numpy(z[f"level{i}"]) for i in range(3)]
    heads = from_levels(levels, cfg["reg_max"], case)
    lv = levels_for(list(heads.grids), cfg["strides"])
    anc, stride = make_anchors(lv)
    pred = ltrb_to_xyxy(dfl_distances(heads.boxes.permute(0, 2, 1).contiguous(), cfg["reg_max"]), anc) * stride
    polys = np.split(z["poly_coords"], np.cumsum(z["poly_counts"])[:-1])
    bi = z["labels"][:, 0].astype(int)
    b, m = z["mask_gt"].shape[:2]
    gm = torch.zeros(b, m, h // 4, w // 4, dtype=torch.bool)
    for i in range(b):
        pi = [p for p, j in zip(polys, bi) if j == i]
        masks = polygon_masks((h, w), pi, 4)
        if cfg["overlap"]:
            index = np.zeros((h // 4, w // 4), np.int32)
            for k, mk in enumerate(masks):
                np.maximum(index, mk.astype(np.int32) * (k + 1), out=index)
            masks = index_to_masks(index, len(pi))
        gm[i, : len(pi)] = torch.from_numpy(masks.astype(bool))
    p = tal.TALParams(num_classes=cfg["nc"], topk=cfg["topk"], topk2=cfg["topk2"])
    coef = torch.from_numpy(z["mask_coef"]).permute(0, 2, 1).contiguous()
    r = seg_tal.assign(heads.scores.permute(0, 2, 1).sigmoid(), pred, anc * stride, torch.from_numpy(z["gt_labels"]),
                       torch.from_numpy(z["gt_bboxes"]), torch.from_numpy(z["mask_gt"]), coef,
                       torch.from_numpy(z["protos"]), gm, (h // 4) / h, p)
    c = r.candidates_of(image, gt)
    box = z["gt_bboxes"][image, gt]
    print(f"case {case}, image {image}, GT {gt}: class {int(z['gt_labels'][image, gt, 0])}, box "
          f"({box[0]:.0f}, {box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}) px, GT mask {int(r.gt_area[image, gt])} px "
          f"at {h // 4}x{w // 4}; {c.anchors.numel()} candidates, {int(c.has_mask_iou.sum())} with a mask IoU "
          f"(3·topk = {r.mask_k} best box metrics), topk {cfg['topk']}")
    order = torch.argsort(c.align_metric, descending=True)
    print()
    print("| anchor | level | cell (x, y) | score s | box CIoU u | mask IoU | (u + mask IoU)/2 | t = s^0.5·ov^6 | top-k | result |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|:---:|---|")
    with_m = [j for j in order.tolist() if bool(c.has_mask_iou[j])]
    without = [j for j in order.tolist() if not bool(c.has_mask_iou[j])]
    shown = sorted(set(order.tolist()[:rows]) | set(without[:3]), key=lambda j: -float(c.align_metric[j]))
    for j in shown:
        an = int(c.anchors[j])
        lvl = next(x for x in lv if x.start <= an < x.start + x.count)
        cell = an - lvl.start
        miou = f"{float(c.mask_iou[j]):.3f}" if bool(c.has_mask_iou[j]) else "—"
        res = "positive" if bool(c.positive[j]) else (f"lost to GT {int(c.lost_to[j])}" if int(c.lost_to[j]) >= 0 else "")
        print(f"| {an} | P{lvl.index + 3} (/{lvl.stride}) | ({cell % lvl.w}, {cell // lvl.w}) | {float(c.score[j]):.3f} | "
              f"{float(c.box_iou[j]):.3f} | {miou} | {float(c.overlap[j]):.3f} | {float(c.align_metric[j]):.2e} | "
              f"{'✓' if bool(c.topk[j]) else ''} | {res} |")
    if len(shown) < c.anchors.numel():
        print(f"\n({c.anchors.numel() - len(shown)} more candidates not shown: {len(with_m) - sum(1 for j in shown if j in with_m)} "
              f"with a mask IoU, {len(without) - sum(1 for j in shown if j in without)} without)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*(args[:1] + [int(x) for x in args[1:4]]))
