"""Write the trace's stage tensors to .npz or .json, atomically (temp file + rename).

Contract names (see README "Export"): anchor_points, stride_tensor, pred_bboxes, pred_scores, gt_bboxes,
gt_labels, mask_gt, mask_in_gts, overlaps, align_metric, mask_pos, fg_mask, target_gt_idx, target_labels,
target_bboxes, target_scores, and with the loss loss_box, loss_cls, loss_dfl. Every other stage tensor of
the trace is written too, under its trace name.
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
            meta = {
                "config": {"imgsz": list(trace.config.imgsz), "strides": list(trace.config.strides),
                           "reg_max": trace.config.reg_max, "assigner": trace.config.assigner.__dict__},
                "images": list(trace.labels.images),
                "heads": trace.heads_source,
            }
            doc = {"meta": meta, "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "data": v.tolist()}
                                             for k, v in arrays.items()}}
            fh.write(json.dumps(doc).encode())

    atomic_write(p, write)
    return p
