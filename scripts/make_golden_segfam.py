"""Golden fixture of the seg families on samples/seg: ultralytics 8.4.190 builds the batch and computes the loss.

Run with the oracle venv from the repository root (it calls yolotal, in /work/venv, for the heads):

    YOLO_OFFLINE=1 YOLO_VERBOSE=False /work/oracle/bin/python scripts/make_golden_segfam.py

For each family (seg, seg26, seg26-o2o) yolotal's CLI exports its run on the sample (synthetic "trained" heads,
seed 0, imgsz 256, nc 3). The reference then builds the trainer's batch from the same pictures and label files
with its own code (label polygons resampled to 1000 points, ``LetterBox(auto=False, scaleup=True, center=True)``
on the original image, ``Format(return_mask=True, mask_ratio=4, mask_overlap=True)``, ``collate_fn``) and feeds
the exported heads (boxes, scores, mask coefficients, prototypes) to ``v8SegmentationLoss`` / ``SegmentLoss26``
(topk 10, or topk 7 / topk2 1 for the one-to-one branch). Stored per family: the batch's classes / boxes in
the trainer's order, its GT masks, the assigner's fg_mask / target_gt_idx / target_scores and the loss items.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import cv2
import numpy as np
import torch
import ultralytics
from ultralytics.data.augment import Format, LetterBox
from ultralytics.data.dataset import YOLODataset
from ultralytics.utils import loss as uloss
from ultralytics.utils.instance import Instances
from ultralytics.utils.ops import resample_segments, segments2boxes

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "seg"
OUT = ROOT / "tests" / "fixtures" / "golden" / "segfam"
IMGSZ, NC, STRIDES = 256, 3, (8, 16, 32)
FAMILIES = {"seg": ("v8", 10, None), "seg26": ("26", 10, None), "seg26-o2o": ("26", 7, 1)}
CLI_ARGS = ["--nc", str(NC), "--imgsz", str(IMGSZ), "--synthetic", "trained", "--seed", "0"]


def yolotal_export(family: str, path: Path) -> dict:
    cmd = ["/work/venv/bin/python", "-m", "yolotal", "loss", str(SAMPLE / "labels"), "--assigner", family, *CLI_ARGS,
           "--export", str(path)]
    subprocess.run(cmd, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                   stdout=subprocess.DEVNULL)
    return dict(np.load(path))


def reference_batch(overlap: bool = True) -> dict:
    """The trainer's batch of the sample's two images (sorted label files), through ultralytics' own transforms."""
    items = []
    fmt = Format(bbox_format="xywh", normalize=True, return_mask=True, return_keypoint=False, batch_idx=True,
                 mask_ratio=4, mask_overlap=overlap)
    for f in sorted((SAMPLE / "labels").glob("*.txt")):
        img = cv2.imread(str(SAMPLE / "images" / f"{f.stem}.png"))
        rows = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        cls = np.array([[float(r[0])] for r in rows], np.float32)
        segs = [np.array(r[1:], np.float32).reshape(-1, 2) for r in rows]
        boxes = segments2boxes(segs)
        n = max(1000, max(len(s) for s in segs) + 1) if max(len(s) for s in segs) > 1000 else 1000
        segs = np.stack(resample_segments(segs, n=n), axis=0)
        labels = {"img": img, "cls": cls, "instances": Instances(boxes, segs, None, bbox_format="xywh", normalized=True),
                  "ori_shape": img.shape[:2], "resized_shape": img.shape[:2], "im_file": str(f)}
        labels = LetterBox(new_shape=(IMGSZ, IMGSZ), auto=False, scaleup=True, center=True)(labels)
        items.append(fmt(labels))
    return YOLODataset.collate_fn(items)


def model_stub(reg_max: int):
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    m.model = [types.SimpleNamespace(stride=torch.tensor(STRIDES, dtype=torch.float32), nc=NC, reg_max=reg_max)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, overlap_mask=True)
    return m


def reference_loss(kind: str, topk: int, topk2, ex: dict, batch: dict) -> dict:
    reg_max = ex["pred_distri"].shape[-1] // 4
    crit = (uloss.v8SegmentationLoss if kind == "v8" else uloss.SegmentLoss26)(model_stub(reg_max), tal_topk=topk,
                                                                                 tal_topk2=topk2)
    rec = {}
    orig = crit.assigner

    def recording(*args, **kw):
        out = orig(*args, **kw)
        rec["out"] = out
        rec["kw"] = {k: v.clone() for k, v in kw.items()}
        return out

    crit.assigner = recording
    b = ex["pred_distri"].shape[0]
    grids = [(IMGSZ // s, IMGSZ // s) for s in STRIDES]
    preds = {"boxes": torch.from_numpy(ex["pred_distri"]).permute(0, 2, 1).contiguous(),
             "scores": torch.from_numpy(ex["pred_logits"]).permute(0, 2, 1).contiguous(),
             "feats": [torch.zeros(b, 1, h, w) for h, w in grids],
             "mask_coefficient": torch.from_numpy(ex["mask_coef"]).permute(0, 2, 1).contiguous(),
             "proto": torch.from_numpy(ex["protos"])}
    total, items = crit.loss(preds, batch)
    _, _, ts, fg, tgi = rec["out"]
    vals = items.values() if isinstance(items, dict) else items
    out = {"items": np.array([float(v) for v in vals], np.float32), "fg_mask": fg.bool().numpy(),
           "target_gt_idx": tgi.long().numpy(), "target_scores": ts.float().numpy(), "total": float(total.sum()),
           "names": list(items) if isinstance(items, dict) else None}
    if "gt_masks" in rec["kw"]:
        out["assigner_gt_masks"] = np.packbits(rec["kw"]["gt_masks"].bool().numpy().reshape(-1))
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    batch = reference_batch()
    arrays = {"batch_idx": batch["batch_idx"].numpy(), "cls": batch["cls"].numpy(), "bboxes": batch["bboxes"].numpy(),
              "masks": batch["masks"].numpy().astype(np.int32)}
    meta = {"reference": f"ultralytics {ultralytics.__version__}", "imgsz": IMGSZ, "nc": NC, "cli": CLI_ARGS,
            "families": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for fam, (kind, topk, topk2) in FAMILIES.items():
            ex = yolotal_export(fam, Path(tmp) / f"{fam}.npz")
            r = reference_loss(kind, topk, topk2, ex, batch)
            key = fam.replace("-", "_")
            arrays.update({f"{key}_{k}": v for k, v in r.items() if k not in ("names", "total")})
            meta["families"][fam] = {"kind": kind, "topk": topk, "topk2": topk2, "total": r["total"]}
    # the loss item names, in ultralytics' order (its loss_names of the seg trainer)
    meta["loss_names"] = ["box_loss", "seg_loss", "cls_loss", "dfl_loss", "sem_loss"]
    np.savez_compressed(OUT / "sample.npz", meta=np.array(json.dumps(meta)), **arrays)
    print("wrote", OUT / "sample.npz", json.dumps(meta["families"]))


if __name__ == "__main__":
    sys.exit(main())
