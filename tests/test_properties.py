"""Invariants of the assignment and loss over random batches (hypothesis)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolotal.config import config_from_dict
from yolotal.inputs.heads import from_levels
from yolotal.inputs.labels import labels_from_array
from yolotal.pipeline import run

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw):
    b = draw(st.integers(1, 3))
    h, w = draw(st.sampled_from([64, 96, 128])), draw(st.sampled_from([64, 128]))
    nc = draw(st.integers(1, 4))
    reg_max = draw(st.sampled_from([1, 4, 16]))
    profile = draw(st.sampled_from(["ultralytics", "classic"]))
    topk = draw(st.integers(1, 10))
    topk2 = draw(st.one_of(st.none(), st.integers(1, topk))) if profile == "ultralytics" else None
    rows = []
    for bi in range(b):
        for _ in range(draw(st.integers(0, 6))):
            bw, bh = draw(st.floats(0.0, 1.0)), draw(st.floats(0.0, 1.0))
            cx = draw(st.floats(bw / 2, 1 - bw / 2)) if bw < 1 else 0.5
            cy = draw(st.floats(bh / 2, 1 - bh / 2)) if bh < 1 else 0.5
            rows.append([bi, draw(st.integers(0, nc - 1)), cx, cy, bw, bh])
    seed = draw(st.integers(0, 2**16))
    cfg = config_from_dict({"imgsz": [h, w], "nc": nc, "reg_max": reg_max,
                            "assigner": {"profile": profile, "topk": topk, "topk2": topk2}})
    g = torch.Generator().manual_seed(seed)
    levels = [torch.randn(b, 4 * reg_max + nc, h // s, w // s, generator=g) * 2 for s in (8, 16, 32)]
    heads = from_levels(levels, reg_max, "hypothesis")
    return cfg, labels_from_array(np.array(rows, np.float32).reshape(-1, 6), b), heads


@SETTINGS
@given(cases())
def test_assignment_invariants(case):
    cfg, labels, heads = case
    t = run(cfg, labels, heads)
    mp, fg = t["mask_pos"], t["fg_mask"]
    assert (mp.sum(1) <= 1).all()  # an anchor has at most one GT
    assert torch.equal(fg, mp.any(1))
    k = cfg.assigner.topk2 or cfg.assigner.topk
    own = mp & t["mask_pos_topk"]
    assert (own.sum(2) <= k).all()  # no GT keeps more than topk (topk2) of its own picks
    # ... but, as in the reference, it can win anchors it did not pick, where several other GTs collided
    assert not (mp & ~t["mask_pos_topk"] & ~t["mask_multi"].unsqueeze(1)).any()
    assert (mp & ~t["mask_gt"].bool()).sum() == 0  # padding rows never own anchors
    ts = t["target_scores"]
    assert (ts >= 0).all() and (ts <= 1).all()
    assert (ts.sum(-1)[~fg] == 0).all()  # background anchors have no target
    # positives that carry weight have their anchor centre inside the GT's candidate box
    ap = t["anchor_points"] * t["stride_tensor"]
    bi, mi, ai = (mp & (t["align_metric"] > 0)).nonzero(as_tuple=True)
    cb = t["cand_bboxes"][bi, mi]
    assert ((ap[ai] > cb[:, :2]) & (ap[ai] < cb[:, 2:])).all()
    # each GT's largest soft score equals its best CIoU among its positives
    ns = t["norm_align_metric"]
    for b, m in zip(*torch.nonzero(t["pos_align_metrics"] > 1e-4, as_tuple=True)):
        own = mp[b, m] & (t["target_gt_idx"][b] == m)
        if own.any():
            assert torch.isclose(ns[b][own].max(), t["pos_overlaps"][b, m], rtol=1e-4)
    # losses are finite, background images add only classification loss
    for name in ("loss_box", "loss_cls", "loss_dfl"):
        assert torch.isfinite(t[name])
    for b in range(t.batch):
        if t.n_gts(b) == 0:
            assert not fg[b].any() and t["box_per_anchor"][b].sum() == 0 and t["dfl_per_anchor"][b].sum() == 0


@SETTINGS
@given(cases())
def test_adding_an_empty_image_changes_no_other_image(case):
    cfg, labels, heads = case
    base = run(cfg, labels, heads)
    extra = torch.randn(1, *heads.boxes.shape[1:]), torch.randn(1, *heads.scores.shape[1:])
    bigger = type(heads)(torch.cat((heads.boxes, extra[0])), torch.cat((heads.scores, extra[1])), heads.grids, "x")
    more = run(cfg, labels, bigger)
    b = heads.batch
    # exact for the geometry; up to the last bit for values through sigmoid/pow, which torch vectorises with
    # a rounding that depends on an element's position in the batch tensor (the reference behaves the same)
    for name in ("mask_in_gts", "overlaps", "target_bboxes"):
        assert torch.equal(more[name][:b], base[name]), name
    for name in ("align_metric", "target_scores"):
        assert torch.allclose(more[name][:b], base[name], rtol=1e-6, atol=1e-9), name
    w_base = base["fg_mask"] & (base["target_scores"].sum(-1) > 1e-6)
    w_more = more["fg_mask"][:b] & (more["target_scores"][:b].sum(-1) > 1e-6)
    assert torch.equal(w_more, w_base)
    assert torch.equal(more["target_gt_idx"][:b][w_base], base["target_gt_idx"][w_base])
    assert not more["fg_mask"][b].any()
