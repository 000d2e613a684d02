import numpy as np, torch
from yolotal.assigners.rotated_tal import assign_rotated, gt_candidates
from yolotal.assigners.tal import TALParams
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.rotated import decode_obb_heads
from yolotal.inputs.obb_heads import from_obb_levels
from yolotal.loss_obb import obb_targets

z = np.load("tests/fixtures/obb/tiny_rotated.npz")          # ultralytics 8.4.190 golden case, seed 3
heads = from_obb_levels([torch.from_numpy(z[f"level{i}"]) for i in range(3)], 16, "tiny_rotated")
levels = levels_for(list(heads.grids), [8, 16, 32])
anc, stride = make_anchors(levels)
_, pred_px, _ = decode_obb_heads(heads, anc, stride, reg_max=16, encoding="sigmoid")
lab = torch.from_numpy(z["labels"])                          # batch_idx, cls, cx, cy, w, h (normalised), angle
tg = obb_targets(lab[:, 0], lab[:, 1], lab[:, 2:7], batch=2, imgsz=(320, 320))
res = assign_rotated(heads.scores.permute(0, 2, 1).sigmoid(), pred_px, anc * stride, tg.gt_labels, tg.gt_bboxes,
                     tg.mask_gt, TALParams(num_classes=3, topk=10, alpha=0.5, beta=6.0, stride_val=16.0))
print(f"{int((~tg.kept).sum())} of {len(lab)} GT rows dropped (a side under 2 px)")
g = tg.gt_bboxes[0, 6]
print("image 0, GT 6: cx %.1f cy %.1f w %.1f h %.1f angle %.3f rad, class %d" % (*g.tolist(), tg.gt_labels[0, 6, 0]))
print("candidate box: %.0f x %.0f (sides under stride_val 16 raised to it)" % tuple(res.cand_bboxes[0, 6, 2:4].tolist()))
print("| anchor | stride | cell (x, y) | s | ProbIoU u | u (ultralytics) | t = s^0.5 u^6 | result |")
print("|---:|---:|---|---:|---:|---:|---:|---|")
for r in gt_candidates(res, 0, 6, levels):
    print(f"| {r['anchor']} | {r['stride']} | {r['cell']} | {r['s']:.3g} | {r['u']:.6f} | {z['overlaps'][0, 6, r['anchor']]:.6f} | {r['t']:.3g} | {r['result']} |")
