"""Shared loading of the OBB golden fixtures (tests/fixtures/obb, made by scripts/make_golden_obb.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from yolotal.assigners.rotated_tal import assign_rotated
from yolotal.assigners.tal import TALParams
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.rotated import decode_obb_heads
from yolotal.inputs.obb_heads import from_obb_levels
from yolotal.loss_obb import obb_loss, obb_targets

OBB = Path(__file__).parent / "fixtures" / "obb"
CASES = sorted(p.stem for p in OBB.glob("*.npz") if p.stem != "quads")


def load(name: str):
    exp = dict(np.load(OBB / f"{name}.npz"))
    meta = json.loads(str(exp.pop("config")))
    return meta, exp


def run_case(name: str):
    """yolotal's pipeline pieces on a fixture's inputs -> (meta, expected, targets, result, loss, decoded px)."""
    meta, exp = load(name)
    strides = meta["strides"]
    levels = [torch.from_numpy(exp[f"level{i}"]) for i in range(len(strides))]
    heads = from_obb_levels(levels, meta["reg_max"], name)
    lv = levels_for(list(heads.grids), strides)
    anc, st = make_anchors(lv)
    grid, px, angle = decode_obb_heads(heads, anc, st, meta["reg_max"], meta["encoding"])
    lab = torch.from_numpy(exp["labels"])
    tg = obb_targets(lab[:, 0], lab[:, 1], lab[:, 2:7], heads.batch, tuple(meta["imgsz"]))
    p = TALParams(num_classes=meta["nc"], topk=meta["topk"], topk2=meta["topk2"], alpha=0.5, beta=6.0,
                  stride_val=float(strides[1] if len(strides) > 1 else strides[0]))
    scores = heads.scores.permute(0, 2, 1).sigmoid()
    res = assign_rotated(scores, px, anc * st, tg.gt_labels, tg.gt_bboxes, tg.mask_gt, p)
    loss = obb_loss(heads.boxes.permute(0, 2, 1), heads.scores.permute(0, 2, 1), grid, anc, st, res.fg_mask,
                    res.target_bboxes, res.target_scores, tuple(meta["imgsz"]), meta["reg_max"])
    return meta, exp, tg, res, loss, px
