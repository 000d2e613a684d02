"""Write the trace's stage tensors to .npz or .json, atomically (temp file + rename).

Contract names (see README "Export"): anchor_points, stride_tensor, pred_bboxes, pred_scores, gt_bboxes,
gt_labels, mask_gt, mask_in_gts, overlaps, align_metric, mask_pos, fg_mask, target_gt_idx, target_labels,
target_bboxes, target_scores, and with the loss loss_box, loss_cls, loss_dfl. Every other stage tensor of
the trace is written too, under its trace name. The .json file also holds ``meta`` (see run_meta): what the run was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import InputError
from ..pipeline import Trace


def trace_arrays(trace: Trace) -> dict[str, np.ndarray]:
    """Every stage tensor as a numpy array (bool masks stay bool, indices int64)."""
    return {k: v.detach().cpu().numpy() for k, v in trace.tensors().items()}


def run_meta(trace: Trace) -> dict:
    """What produced the trace: assigner, its own parameters and its loss's gains, geometry, heads source, version."""
    from .. import __version__

    cfg, a = trace.config, trace.config.assigner
    if a.is_tal:
        params = {"topk": a.topk, "topk2": a.topk2, "alpha": a.alpha, "beta": a.beta, "eps": a.eps}
        if cfg.enlargement is not None:  # GT sides below it (v8.4.0: below enlarge_below) are enlarged to it
            params["stride_val"] = cfg.enlargement[1]
            if cfg.enlargement[0] != cfg.enlargement[1]:
                params["enlarge_below"] = cfg.enlargement[0]
    elif a.name == "atss":
        params = {"topk": a.topk}  # candidates per level
    elif a.name == "simota":
        from ..assigners.simota import PROFILES

        radius, penalty, box_test = PROFILES[a.profile]
        params = {"topk": a.topk, "centre_radius_strides": radius, "penalty": penalty, "in_box_candidates": box_test}
    else:
        params = {"anchors": [list(r) for r in a.anchors], "anchor_t": a.anchor_t}
    lo = cfg.loss
    if a.name == "yolov5":
        loss = {"name": "yolov5", "gains": {"box": lo.v5_box, "obj": lo.v5_obj, "cls": lo.v5_cls},
                "balance": [4.0, 1.0, 0.4] if len(cfg.strides) == 3 else None}
    elif a.name == "simota":
        loss = {"name": "yolox", "gains": {"iou": 5.0, "obj": 1.0, "cls": 1.0}}  # YOLOX's reg_weight 5, fixed
    else:
        loss = {"name": "yolov8", "gains": {"box": lo.box, "cls": lo.cls, "dfl": lo.dfl}}
    loss["computed"] = "loss" in trace.stages
    return {
        "yolotal": __version__, "assigner": a.name, "profile": a.profile, "params": params,
        "nc": int(trace["pred_scores"].shape[-1]), "reg_max": cfg.reg_max, "strides": list(cfg.strides),
        "imgsz": list(cfg.imgsz), "batch": trace.batch, "loss": loss,
        "heads": trace.assigner_heads or trace.heads_source,  # what the assignment and the loss read
        "decode_heads": trace.heads_source,  # the YOLOv8 (DFL) heads of the decode stage
        "images": list(trace.labels.images),
    }


def export(trace: Trace, path: str | Path) -> Path:
    p = Path(path)
    if p.suffix not in (".npz", ".json"):
        raise InputError("export path must end in .npz or .json", str(p))
    arrays = trace_arrays(trace)
    directory = p.parent if str(p.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("export directory does not exist", str(directory))
    def write(fh) -> None:
        if p.suffix == ".npz":
            np.savez_compressed(fh, **arrays)
        else:
            doc = {"meta": run_meta(trace), "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "data": v.tolist()}
                                             for k, v in arrays.items()}}
            fh.write(json.dumps(doc).encode())

    atomic_write(p, write)
    return p
