"""ultralytics' v8PoseLoss / PoseLoss26 on a --save-heads file of a pose run (tests only; needs ultralytics)."""

from __future__ import annotations

import os
import types

import numpy as np
import torch


def reference_items(run, heads_npz, gen: str, topk: int = 10, topk2: int | None = None):
    """(names, items (n,) float32): the reference loss on the saved levels (and RealNVP flow) and the run's
    letterboxed labels, the criterion built on a stub model as the trainer builds it."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from ultralytics.nn.modules.head import RealNVP
    from ultralytics.utils import loss as uloss

    z = np.load(heads_npz)
    cfg = run.config
    k, d = cfg.keypoints.shape
    levels = [torch.from_numpy(z[f"level{i}"]) for i in range(len(cfg.strides))]
    b, c = levels[0].shape[:2]
    flat = torch.cat([x.view(b, c, -1) for x in levels], 2)
    lead, nc = 4 * cfg.reg_max, run["pred_scores"].shape[-1]
    preds = {"boxes": flat[:, :lead], "scores": flat[:, lead:lead + nc], "feats": levels,
             "kpts": flat[:, lead + nc:lead + nc + k * d]}
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    head = types.SimpleNamespace(stride=torch.tensor(cfg.strides, dtype=torch.float32), nc=nc, reg_max=cfg.reg_max,
                                 kpt_shape=[k, d])
    if gen == "26":
        preds["kpts_sigma"] = flat[:, lead + nc + k * d:]
        flow = RealNVP()
        flow.load_state_dict({kk[5:]: torch.from_numpy(z[kk]) for kk in z.files if kk.startswith("flow.")},
                             strict=False)  # loc / cov of its prior are the defaults
        head.flow_model = flow
    m.model = [head]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, pose=12.0, kobj=1.0, rle=1.0)
    crit = (uloss.PoseLoss26 if gen == "26" else uloss.v8PoseLoss)(m, tal_topk=topk, tal_topk2=topk2)
    lab = run.trace.labels
    bd = {"batch_idx": torch.from_numpy(lab.batch_idx).float(), "cls": torch.from_numpy(lab.cls).float()[:, None],
          "bboxes": torch.from_numpy(lab.xywhn), "keypoints": torch.from_numpy(lab.keypoints)}
    _, items = crit(preds, bd)
    return list(items), np.array([float(v) for v in items.values()], np.float32)


def _preds(run, heads_npz, gen):
    z = np.load(heads_npz)
    cfg = run.config
    k, d = cfg.keypoints.shape
    levels = [torch.from_numpy(z[f"level{i}"]) for i in range(len(cfg.strides))]
    b, c = levels[0].shape[:2]
    flat = torch.cat([x.view(b, c, -1) for x in levels], 2)
    lead, nc = 4 * cfg.reg_max, run["pred_scores"].shape[-1]
    preds = {"boxes": flat[:, :lead], "scores": flat[:, lead:lead + nc], "feats": levels,
             "kpts": flat[:, lead + nc:lead + nc + k * d]}
    if gen == "26":
        preds["kpts_sigma"] = flat[:, lead + nc + k * d:]
    return preds, z


def reference_e2e(run, o2m_npz, o2o_npz, epochs: int = 100):
    """ultralytics' E2ELoss(PoseLoss26) at epoch 0 of ``epochs`` on both branches' saved heads:
    (weighted items = total / batch, logged items)."""
    from ultralytics.nn.modules.head import RealNVP
    from ultralytics.utils import loss as uloss

    cfg = run.config
    k, d = cfg.keypoints.shape
    pm, z = _preds(run, o2m_npz, "26")
    po, _ = _preds(run, o2o_npz, "26")
    flow = RealNVP()
    flow.load_state_dict({kk[5:]: torch.from_numpy(z[kk]) for kk in z.files if kk.startswith("flow.")}, strict=False)
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    nc = run["pred_scores"].shape[-1]
    m.model = [types.SimpleNamespace(stride=torch.tensor(cfg.strides, dtype=torch.float32), nc=nc,
                                     reg_max=cfg.reg_max, kpt_shape=[k, d], flow_model=flow)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, pose=12.0, kobj=1.0, rle=1.0, epochs=epochs)
    e2e = uloss.E2ELoss(m, uloss.PoseLoss26)
    lab = run.trace.labels
    bd = {"batch_idx": torch.from_numpy(lab.batch_idx).float(), "cls": torch.from_numpy(lab.cls).float()[:, None],
          "bboxes": torch.from_numpy(lab.xywhn), "keypoints": torch.from_numpy(lab.keypoints)}
    tot, items = e2e({"one2many": pm, "one2one": po}, bd)
    return (tot / run.batch).detach().numpy().astype(np.float32), np.array([float(v) for v in items.values()],
                                                                            np.float32)
