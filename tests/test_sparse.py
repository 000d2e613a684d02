"""The candidate-pair assigner (yolotal.TaskAlignedAssigner) against the reference fixtures and the dense version."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_golden import CASES, load_case
from tolerances import SCORE, assert_close_f32
from yolotal import TaskAlignedAssigner, profiles
from yolotal.assigners.tal import TALParams, assign
from yolotal.assigners.tal_sparse import assign_sparse, candidate_pairs, grid_structure
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.pipeline import run




def assigner_inputs(trace):
    anc = trace["anchor_points"] * trace["stride_tensor"]
    return (trace["pred_scores"], trace["pred_bboxes"], anc, trace["gt_labels"], trace["gt_bboxes"], trace["mask_gt"])


def weighted(fg, scores):
    return fg & (scores.sum(-1) > 0)


@pytest.mark.parametrize("profile,name", CASES)
def test_matches_reference_on_every_weighted_positive(profile, name):
    cfg, labels, heads, exp = load_case(profile, name)
    t = run(cfg, labels, heads, with_loss=False)
    a = cfg.assigner
    tal = TaskAlignedAssigner(
        topk=a.topk, num_classes=cfg.num_classes if cfg.nc else heads.nc, alpha=a.alpha, beta=a.beta,
        stride=list(cfg.strides), eps=a.eps, topk2=a.topk2, profile=profile, keep_last=True,
    )
    labels_t, bboxes, scores, fg, gt_idx = tal(*assigner_inputs(t))
    # the soft scores agree everywhere: within the cross-CPU tolerance of the fixture (bit for bit against 8.4 on
    # the machine that recorded it; 8.3 normalises in another order, 1.1e-7 apart there)
    assert_close_f32(scores, exp["target_scores"], SCORE, f"{profile}/{name} target_scores")
    w_ref = torch.from_numpy(exp["fg_mask"]) & torch.from_numpy(exp["target_scores"].sum(-1) > 0)
    w = weighted(fg, scores)
    assert torch.equal(w, w_ref)
    np.testing.assert_array_equal(gt_idx[w].numpy(), exp["target_gt_idx"][w_ref.numpy()])
    np.testing.assert_array_equal(labels_t[w].numpy(), exp["target_labels"][w_ref.numpy()])
    np.testing.assert_array_equal(bboxes[w].numpy(), exp["target_bboxes"][w_ref.numpy()])
    # every positive of ours is a positive of the reference (we only drop zero-weight ones)
    assert not (fg & ~torch.from_numpy(exp["fg_mask"])).any()
    # the candidate pairs are exactly the reference's in-box mask
    if "mask_in_gts" in exp:
        r = tal.last
        n = r.n_pairs - r.n_appended  # v8.0.x: conflict winners that were no candidate come after the candidates
        dense = torch.zeros(exp["mask_in_gts"].shape, dtype=torch.bool)
        dense[r.pair_b[:n], r.pair_m[:n], r.pair_a[:n]] = True
        ref = torch.from_numpy(exp["mask_in_gts"]) & t["mask_gt"].bool()
        assert torch.equal(dense, ref)
        # every positive of ours with t > 0 is a positive of the dense assigner's for the same GT
        assert t["mask_pos"][r.pair_b, r.pair_m, r.pair_a][r.pair_pos & (r.pair_t > 0)].all()
        # the one case made for it: anchor (44, 44) goes to GT 2, which does not contain it
        assert r.n_appended == (1 if profile.startswith("v8.0") and name == "all_gts_winner" else 0)


def test_output_types_match_the_reference_contract():
    cfg, labels, heads, _ = load_case("ultralytics", "coco_like")
    t = run(cfg, labels, heads, with_loss=False)
    out = TaskAlignedAssigner(topk=10, num_classes=heads.nc, alpha=0.5)(*assigner_inputs(t))
    b, a = t["fg_mask"].shape
    assert [tuple(x.shape) for x in out] == [(b, a), (b, a, 4), (b, a, heads.nc), (b, a), (b, a)]
    assert [x.dtype for x in out] == [torch.int64, torch.float32, torch.float32, torch.bool, torch.int64]


def test_no_gts_returns_the_reference_early_exit():
    scores, boxes = torch.rand(2, 84, 3), torch.rand(2, 84, 4)
    out = TaskAlignedAssigner(num_classes=3)(scores, boxes, torch.rand(84, 2), torch.zeros(2, 0, 1),
                                             torch.zeros(2, 0, 4), torch.zeros(2, 0, 1))
    assert (out[0] == 3).all() and out[0].dtype == torch.float32
    assert not out[3].any() and out[2].abs().sum() == 0


def test_constructor_checks():
    with pytest.raises(ValueError, match="profile must be one of"):
        TaskAlignedAssigner(profile="v5")
    with pytest.raises(ValueError, match="topk2 must be between 1 and topk"):
        TaskAlignedAssigner(topk=5, topk2=6)
    with pytest.raises(ValueError, match="only in the ultralytics profile"):
        TaskAlignedAssigner(topk=5, topk2=1, profile="classic")
    assert TaskAlignedAssigner(stride=[8]).stride_val == 8


def test_grid_structure_recognises_levels_and_rejects_other_layouts():
    levels = levels_for([(8, 10), (4, 5), (2, 3)], (8, 16, 32))
    pts, strides = make_anchors(levels)
    grid = grid_structure(pts * strides)
    assert [(g.start, g.w, g.h, g.stride) for g in grid] == [(0, 10, 8, 8.0), (80, 5, 4, 16.0), (100, 3, 2, 32.0)]
    assert grid_structure((pts * strides).flip(0)) is None
    assert grid_structure(pts * strides + 1) is None


def test_fallback_layout_gives_the_same_pairs():
    levels = levels_for([(20, 20), (10, 10)], (8, 16))
    pts, strides = make_anchors(levels)
    anc = pts * strides
    boxes = torch.tensor([[[3.0, 3.0, 60.0, 41.0], [100.0, 7.5, 159.9, 160.0], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True, False]])
    perm = torch.randperm(anc.shape[0], generator=torch.Generator().manual_seed(0))
    s1, k1 = candidate_pairs(anc, boxes, valid)
    s2, k2 = candidate_pairs(anc[perm], boxes, valid)  # not a grid: exact dense test
    got = sorted(zip(s2.tolist(), perm[k2].tolist()))
    assert got == sorted(zip(s1.tolist(), k1.tolist()))
    assert len(got) > 0 and set(s1.tolist()) == {0, 1}


@pytest.mark.parametrize("profile", ["ultralytics", "classic"])
def test_same_as_dense_on_random_trained_heads(profile):
    cfg, labels, heads, _ = load_case(profile, "trained_dense")
    t = run(cfg, labels, heads, with_loss=False)
    inputs = assigner_inputs(t)
    p = TALParams(num_classes=heads.nc, profile=profile, stride_val=float(cfg.stride_val))
    d = assign(*inputs, p)
    out = TaskAlignedAssigner(topk=10, num_classes=heads.nc, alpha=0.5, stride=list(cfg.strides), profile=profile)(*inputs)
    assert torch.equal(out[2], d.target_scores)
    w = weighted(out[3], out[2])
    assert torch.equal(w, weighted(d.fg_mask, d.target_scores))
    assert int(w.sum()) > 50


@st.composite
def crowded_batches(draw):
    """Random GTs (many overlapping, some tiny), predictions scattered near the anchors, random scores; or, for
    exact metric ties, anchors predicting GT boxes exactly with scores on a few levels."""
    seed = draw(st.integers(0, 2**20))
    g = torch.Generator().manual_seed(seed)
    h, w = draw(st.sampled_from([64, 96, 160])), draw(st.sampled_from([64, 128]))
    levels = levels_for([(h // s, w // s) for s in (8, 16, 32)], (8, 16, 32))
    pts, strides = make_anchors(levels)
    anc = pts * strides
    b, m, nc = draw(st.integers(1, 3)), draw(st.integers(0, 14)), draw(st.integers(1, 4))
    wh = torch.rand(b, m, 2, generator=g) * torch.tensor([w, h]) * draw(st.floats(0.03, 1.0))
    c = torch.rand(b, m, 2, generator=g) * torch.tensor([w, h])
    gt = torch.minimum(torch.cat([c - wh / 2, c + wh / 2], -1).clamp(min=0), torch.tensor([w, h, w, h]).float())
    gt = gt * (torch.rand(b, m, 1, generator=g) > 0.2)  # some padding rows
    mask = (gt.sum(-1, keepdim=True) > 0).float()
    labels = torch.randint(0, nc, (b, m, 1), generator=g).float()
    scores = torch.rand(b, anc.shape[0], nc, generator=g) * draw(st.sampled_from([1.0, 1e-3]))
    centre = anc + torch.randn(b, anc.shape[0], 2, generator=g) * 8
    half = torch.rand(b, anc.shape[0], 2, generator=g) * 30 + 0.5
    pd = torch.cat([centre - half, centre + half], -1)
    if m and draw(st.booleans()):  # exact ties: anchors predict a GT's box exactly, scores on a few levels
        pick = torch.randint(0, m, (b, anc.shape[0]), generator=g)
        pd = torch.gather(gt, 1, pick.unsqueeze(-1).expand(-1, -1, 4)).clone()
        scores = (torch.randint(1, 4, scores.shape, generator=g).float() / 4)
    profile = draw(st.sampled_from(profiles.NAMES))
    topk = draw(st.integers(1, 12))
    topk2 = draw(st.one_of(st.none(), st.integers(1, topk))) if profiles.get(profile).topk2 else None
    p = TALParams(num_classes=nc, topk=topk, topk2=topk2, profile=profile, stride_val=16.0, strides=(8.0, 16.0, 32.0),
                  alpha=draw(st.sampled_from([0.5, 1.0])), beta=draw(st.sampled_from([6.0, 2.0])))
    return (scores, pd, anc, labels, gt, mask), p


@settings(max_examples=150, deadline=None)
@given(crowded_batches())
def test_sparse_equals_dense_on_weighted_positives(case):
    inputs, p = case
    d = assign(*inputs, p)
    s = assign_sparse(*inputs, p)
    assert torch.equal(s.target_scores, d.target_scores)  # bit for bit, everywhere
    wd, ws = weighted(d.fg_mask, d.target_scores), weighted(s.fg_mask, s.target_scores)
    assert torch.equal(ws, wd)
    assert torch.equal(s.target_gt_idx[ws], d.target_gt_idx[wd])
    assert torch.equal(s.target_bboxes[ws], d.target_bboxes[wd])
    assert torch.equal(s.pos_align_metrics, d.pos_align_metrics)
    assert torch.equal(s.pos_overlaps, d.pos_overlaps)
    # ours is a subset of the reference's positives (GT included); the extra ones there carry no weight
    assert not (s.fg_mask & ~d.fg_mask).any()
    # (a weightless positive can sit at another GT: on an anchor where every CIoU is 0 the reference takes slot 0)
    assert d.mask_pos[s.pair_b, s.pair_m, s.pair_a][s.pair_pos & (s.pair_t > 0)].all()
    # pair lists: the dense candidate mask (then, v8.0.x only, winners that were no candidate), metrics bit-identical
    n = s.n_pairs - s.n_appended
    dense = torch.zeros_like(d.mask_in_gts)
    dense[s.pair_b[:n], s.pair_m[:n], s.pair_a[:n]] = True
    assert torch.equal(dense, d.mask_in_gts & inputs[5].bool())
    assert torch.equal(s.pair_t, d.align_metric[s.pair_b, s.pair_m, s.pair_a])
