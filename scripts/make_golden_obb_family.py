"""Record what ultralytics computes for the OBB family's CLI runs on samples/obb (tests/fixtures/obb_family).

Run with the oracle venv and the worktree on PYTHONPATH:
    PYTHONPATH=$PWD YOLO_VERBOSE=False YOLO_OFFLINE=1 /work/oracle/bin/python scripts/make_golden_obb_family.py

yolotal only gathers the inputs (label corners letterboxed onto the canvas, synthetic heads); the targets are
made by ultralytics' ``xyxyxyxy2xywhr`` and normalised as its ``Format`` step does, and assignment and loss are
``v8OBBLoss.loss`` (its assigner call captured). Each case writes ``<name>.npz``: the heads as ``level0..``
plus ``angle_encoding`` (what ``--heads`` reads), and the reference's targets and loss items.
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import torch

import ultralytics
from ultralytics.utils import loss as uloss
from ultralytics.utils.ops import xyxyxyxy2xywhr

from yolotal.inputs.labels import load_labels
from yolotal.inputs.obb_heads import obb_heads_to_levels, synthetic_obb_randn, synthetic_obb_trained
from yolotal.inputs.pictures import apply_letterbox, image_size, letterbox_for
from yolotal.prepare import find_geometry
from yolotal.config import Config

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "samples" / "obb" / "dota8-mini.yaml"
OUT = ROOT / "tests" / "fixtures" / "obb_family"
IMGSZ = (320, 320)
STRIDES = (8, 16, 32)
NC = 15
# name: (topk, topk2, reg_max, encoding, heads kind, seed)
CASES = {
    "sample_obb": (10, None, 16, "sigmoid", "trained", 0),
    "sample_obb_o2o": (7, 1, 1, "radians", "trained", 1),
    "sample_obb_randn": (10, None, 16, "sigmoid", "randn", 2),
}


def model_stub(reg_max):
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    m.model = [types.SimpleNamespace(stride=torch.tensor(STRIDES, dtype=torch.float32), nc=NC, reg_max=reg_max)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, angle=1.0)
    return m


def letterboxed_labels():
    lab = load_labels(DATA, NC, None, 16, task="obb")
    geo = find_geometry(lab, Config(imgsz=IMGSZ), None, None)
    return apply_letterbox(lab, geo.letterboxes, IMGSZ)


def reference_targets(lab):
    """(n, 5) normalised xywhr, as ultralytics' Format makes them from the canvas-pixel corners."""
    h, w = IMGSZ
    quads = np.stack([np.asarray(s, np.float32) for s in lab.segments]).copy()
    quads[..., 0] *= w
    quads[..., 1] *= h
    r = xyxyxyxy2xywhr(torch.from_numpy(quads))
    r[:, [0, 2]] /= w
    r[:, [1, 3]] /= h
    return r


def run_case(name, spec, lab):
    topk, topk2, reg_max, enc, kind, seed = spec
    batch = lab.n_images
    grids = [(IMGSZ[0] // s, IMGSZ[1] // s) for s in STRIDES]
    xywhr = reference_targets(lab)
    if kind == "randn":
        heads = synthetic_obb_randn(batch, NC, reg_max, grids, seed)
    else:
        px = xywhr.numpy().copy()
        px[:, [0, 2]] *= IMGSZ[1]
        px[:, [1, 3]] *= IMGSZ[0]
        heads = synthetic_obb_trained(batch, NC, reg_max, grids, STRIDES, seed, lab.batch_idx, lab.cls, px, enc)
    levels = obb_heads_to_levels(heads)
    flat = torch.cat([torch.from_numpy(x).reshape(batch, x.shape[1], -1) for x in levels], 2)
    boxes, scores, raw = flat.split((4 * reg_max, NC, 1), 1)
    angle = (raw.sigmoid() - 0.25) * math.pi if enc == "sigmoid" else raw
    feats = [torch.zeros(batch, 1, gh, gw) for gh, gw in grids]
    preds = {"boxes": boxes, "scores": scores, "angle": angle, "feats": feats}
    batch_d = {"batch_idx": torch.from_numpy(lab.batch_idx.astype(np.float32)),
               "cls": torch.from_numpy(lab.cls.astype(np.float32)).view(-1, 1), "bboxes": xywhr}
    crit = uloss.v8OBBLoss(model_stub(reg_max), tal_topk=topk, tal_topk2=topk2)
    seen = {}
    orig = crit.assigner.forward

    def spy(*args):
        seen["in"] = [x.clone() for x in args]
        out = orig(*args)
        seen["out"] = [x.clone() for x in out]
        return out

    crit.assigner.forward = spy
    _, items = crit.loss(preds, batch_d)
    _, _, _, gl, gb, mg = seen["in"]
    tl, tb, ts, fg, gi = seen["out"]
    cfg = dict(imgsz=list(IMGSZ), strides=list(STRIDES), nc=NC, reg_max=reg_max, topk=topk, topk2=topk2, encoding=enc,
               heads=kind, seed=seed, ultralytics=ultralytics.__version__, loss_names=list(crit.loss_names))
    np.savez_compressed(
        OUT / f"{name}.npz", config=json.dumps(cfg), angle_encoding=np.array(enc),
        **{f"level{i}": x for i, x in enumerate(levels)},
        ref_gt_labels=gl.numpy(), ref_gt_bboxes=gb.numpy(), ref_mask_gt=mg.numpy(), ref_target_labels=tl.numpy(),
        ref_target_bboxes=tb.numpy(), ref_target_scores=ts.numpy(), ref_fg_mask=fg.numpy(),
        ref_target_gt_idx=gi.numpy(), ref_loss=torch.stack([items[k] for k in crit.loss_names]).numpy())
    print(f"{name}: {len(lab)} rows, {gb.shape[1]} GT slots, {int(fg.sum())} positives, "
          f"loss {[round(float(items[k]), 6) for k in crit.loss_names]}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    lab = letterboxed_labels()
    for name, spec in CASES.items():
        run_case(name, spec, lab)


if __name__ == "__main__":
    main()
