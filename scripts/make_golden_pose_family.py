"""Record tests/fixtures/pose_family/*.npz: ultralytics 8.4's v8PoseLoss / PoseLoss26 on the heads yolotal's pose
families run on for samples/pose/data.yaml (synthetic heads, letterboxed labels), so the CLI's numbers can be
checked without ultralytics installed.

Run with an environment that has both yolotal's dependencies and ultralytics (e.g. /work/venv):
    YOLO_OFFLINE=1 YOLO_VERBOSE=False PYTHONPATH=. python scripts/make_golden_pose_family.py

Each file: loss_items (the trainer's log, in order), fg_mask, target_gt_idx, target_scores (the reference
assigner's outputs), and config (JSON: assigner, heads kind, seed, names).
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ultralytics.nn.modules.head import RealNVP  # noqa: E402
from ultralytics.utils import loss as uloss  # noqa: E402

import yolotal  # noqa: E402
from yolotal.assigners.pose_family import flow_arrays  # noqa: E402
from yolotal.inputs.pose_heads import pose_heads_to_levels  # noqa: E402
from yolotal.loss_pose import init_flow  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "pose_family"
DATA = ROOT / "samples" / "pose" / "data.yaml"
CASES = {  # name: (assigner, synthetic kind, seed)
    "pose_trained": ("pose", "trained", 0),
    "pose_randn": ("pose", "randn", 3),
    "pose26_trained": ("pose26", "trained", 0),
    "pose26_randn": ("pose26", "randn", 3),
    "pose26o2o_trained": ("pose26-o2o", "trained", 0),
}


def reference(run, gen: str):
    """ultralytics' loss on the run's heads and letterboxed labels; (items, assigner outputs)."""
    cfg = run.config
    k, d = cfg.keypoints.shape
    heads_levels = [torch.from_numpy(x) for x in pose_heads_to_levels(_heads(run))]
    b, c = heads_levels[0].shape[:2]
    flat = torch.cat([x.view(b, c, -1) for x in heads_levels], 2)
    lead, nc = 4 * cfg.reg_max, run["pred_scores"].shape[-1]
    preds = {"boxes": flat[:, :lead], "scores": flat[:, lead:lead + nc], "feats": heads_levels,
             "kpts": flat[:, lead + nc:lead + nc + k * d]}
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    head = types.SimpleNamespace(stride=torch.tensor(cfg.strides, dtype=torch.float32), nc=nc, reg_max=cfg.reg_max,
                                 kpt_shape=[k, d])
    if gen == "26":
        preds["kpts_sigma"] = flat[:, lead + nc + k * d:]
        flow = RealNVP()
        arrays = flow_arrays(init_flow(cfg.heads.seed))
        flow.load_state_dict({key[5:]: torch.from_numpy(v) for key, v in arrays.items()}, strict=False)
        head.flow_model = flow
    m.model = [head]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, pose=12.0, kobj=1.0, rle=1.0)
    a = cfg.assigner
    crit = (uloss.PoseLoss26 if gen == "26" else uloss.v8PoseLoss)(m, tal_topk=a.topk, tal_topk2=a.topk2)
    rec = {}
    orig = crit.assigner

    def recording(*args, **kw):
        out = orig(*args, **kw)
        rec["out"] = tuple(o.clone() for o in out)
        return out

    crit.assigner = recording
    lab = run.trace.labels
    bd = {"batch_idx": torch.from_numpy(lab.batch_idx).float(), "cls": torch.from_numpy(lab.cls).float()[:, None],
          "bboxes": torch.from_numpy(lab.xywhn), "keypoints": torch.from_numpy(lab.keypoints)}
    _, items = crit(preds, bd)
    _, _, target_scores, fg_mask, target_gt_idx = rec["out"]
    return list(items), np.array([float(v) for v in items.values()], np.float32), fg_mask, target_gt_idx, target_scores


def _heads(run):
    """The heads the run's decode stage read, rebuilt from the trace (boxes, scores, kpts[, kpts_sigma])."""
    from yolotal.inputs.heads import Heads

    t = run.trace
    ex = {"kpts": t["kpts_raw"].flatten(2).permute(0, 2, 1).contiguous()}
    if "kpts_sigma_raw" in t:
        ex["kpts_sigma"] = t["kpts_sigma_raw"].flatten(2).permute(0, 2, 1).contiguous()
    return Heads(t["pred_distri"].permute(0, 2, 1).contiguous(), t["pred_logits"].permute(0, 2, 1).contiguous(),
                 tuple((lv.h, lv.w) for lv in t.levels), t.heads_source, ex)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (assigner, kind, seed) in CASES.items():
        run = yolotal.inspect(str(DATA), assigner=assigner, synthetic=kind, seed=seed)
        gen = "26" if assigner.startswith("pose26") else "v8"
        names, items, fg, tgi, ts = reference(run, gen)
        meta = {"assigner": assigner, "synthetic": kind, "seed": seed, "names": names}
        np.savez_compressed(OUT / f"{name}.npz", config=json.dumps(meta), loss_items=items, fg_mask=fg.numpy(),
                            target_gt_idx=tgi.numpy(), target_scores=ts.numpy())
        mine = run["loss_items"].numpy()
        print(f"{name}: {int(fg.sum())} positives, ultralytics {dict(zip(names, items.round(5)))}, max |diff| "
              f"{np.abs(mine - items).max():.3g}")


if __name__ == "__main__":
    main()
