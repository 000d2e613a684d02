"""Pose pieces worked by hand: visibility, sigmas, decode, OKS, the level gate and its fallback, the pose losses,
RLE under an identity flow, pose heads files and synthetic pose heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from yolotal.assigners.pose_tal import assign_pose, gate_reason, level_gate
from yolotal.assigners.tal import TALParams
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.keypoints import (coco_sigmas, decode_keypoints, keypoint_visibility, oks_pairs, select_sigmas,
                                    split_kpts)
from yolotal.errors import InputError
from yolotal.inputs.pose_heads import (load_pose_heads, pose_heads_from_levels, pose_heads_to_levels,
                                       synthetic_pose_randn, synthetic_pose_trained)
from yolotal.loss import detection_loss
from yolotal.loss_pose import Flow, flow_log_prob, pose_loss, rle_terms

P = TALParams(num_classes=1, topk=10)


def anchors(imgsz, strides=(8, 16, 32)):
    grids = [(imgsz[0] // s, imgsz[1] // s) for s in strides]
    ap, st_ = make_anchors(levels_for(grids, strides))
    return ap * st_, st_.view(-1)


# ------------------------------------------------------------------------------------------- keypoints
def test_visibility_ndim2_negative_coordinate_is_invisible():
    k = np.array([[[0.5, 0.5], [-0.005, 0.3], [0.2, -0.001], [0.0, 0.0]]], np.float32)
    out = keypoint_visibility(k, 2)
    assert out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0, :, 2], [1, 0, 0, 1])  # 0 is a coordinate, not "invisible"
    np.testing.assert_array_equal(out[..., :2], k)


def test_visibility_ndim3_kept_and_shape_checked():
    k = np.array([[[0.5, 0.5, 2], [0.1, 0.1, 0], [0.2, 0.2, 1]]], np.float32)
    np.testing.assert_array_equal(keypoint_visibility(k, 3), k)
    with pytest.raises(ValueError, match="ndim 2"):
        keypoint_visibility(k, 2)


def test_sigmas_selection():
    s, why = select_sigmas([17, 3])
    assert torch.equal(s, coco_sigmas()) and "COCO" in why
    assert abs(float(s[0]) - 0.026) < 1e-8 and abs(float(s[-1]) - 0.089) < 1e-8
    s2, why2 = select_sigmas((17, 2))  # only [17, 3] gets COCO's
    assert torch.allclose(s2, torch.full((17,), 1 / 17)) and "uniform" in why2
    s3, _ = select_sigmas((4, 3), [0.5, 0.3, 0.3, 0.8])
    assert s3.tolist() == pytest.approx([0.5, 0.3, 0.3, 0.8])
    with pytest.raises(ValueError, match="4 positive values"):
        select_sigmas((4, 3), [0.5, 0.3, 0.3])
    with pytest.raises(ValueError, match="4 positive values"):
        select_sigmas((4, 3), [0.5, 0.3, 0.0, 1.0])


def test_split_is_keypoint_major():
    raw = torch.arange(2 * 3 * 5, dtype=torch.float32).view(1, 6, 5)  # K=2, D=3, A=5
    s = split_kpts(raw, (2, 3))
    assert s.shape == (1, 5, 2, 3)
    assert s[0, 4, 1, 2] == raw[0, 1 * 3 + 2, 4]
    with pytest.raises(ValueError, match="K\\*D"):
        split_kpts(raw, (3, 3))


def test_decode_by_generation():
    raw = torch.tensor([0.5, 0.25, 1.7]).view(1, 1, 1, 3)
    anc = torch.tensor([[3.5, 2.5]])
    v8 = decode_keypoints(raw, anc, "v8")[0, 0, 0]
    y26 = decode_keypoints(raw, anc, "26")[0, 0, 0]
    assert v8.tolist() == pytest.approx([2 * 0.5 + 3.0, 2 * 0.25 + 2.0, 1.7])  # 2*raw + anchor - 0.5
    assert y26.tolist() == pytest.approx([4.0, 2.75, 1.7])  # raw + anchor; visibility stays a logit


def test_oks_by_hand():
    gt = torch.tensor([[[10.0, 10.0, 2.0], [20.0, 20.0, 1.0], [5.0, 5.0, 0.0]]])  # third: not labelled
    pred = torch.tensor([[[10.0, 10.0], [23.0, 24.0], [100.0, 100.0]]])
    sig = torch.tensor([0.1, 0.2, 0.3])
    area = torch.tensor([[400.0]])
    oks, sim, vis = oks_pairs(pred, gt, area, sig, 1e-9)
    s2 = math.exp(-25.0 / ((2 * 0.2) ** 2 * 400.0 * 2))
    assert float(sim[0, 0]) == pytest.approx(1.0) and float(sim[0, 1]) == pytest.approx(s2, rel=1e-6)
    assert float(oks[0]) == pytest.approx((1.0 + s2) / 2, rel=1e-6)  # mean over the 2 visible only
    none = gt.clone()
    none[..., 2] = 0
    assert float(oks_pairs(pred, none, area, sig, 1e-9)[0][0]) == 0.0


# ----------------------------------------------------------------------------------------------- level gate
def test_gate_closes_p5_for_a_58px_gt():
    anc, strides = anchors((320, 320))
    gt = torch.tensor([[[100.0, 100.0, 160.0, 156.0]]])
    mg = torch.ones(1, 1, 1)
    _, g = level_gate(anc, strides, gt, mg, P)
    assert g.level_strides.tolist() == [8.0, 16.0, 32.0]
    assert float(g.size[0, 0]) == pytest.approx(math.sqrt(60 * 56))
    assert g.level_open[0, 0].tolist() == [True, True, False]
    assert g.too_small[0, 0].tolist() == [False, False, True]
    p5 = g.anchor_level == 2
    assert int((g.mask_in_box[0, 0] & p5).sum()) == 4  # P5 centres 112, 144 in x and y
    assert int((g.mask_in_gts[0, 0] & p5).sum()) == 0
    assert not bool(g.fallback[0, 0])
    assert gate_reason(g, 0, 0, 2).startswith("closed: sqrt(area) 58.0 < 64 = 2·stride 32")
    assert gate_reason(g, 0, 0, 0) == "open: 58.0 >= 16, 58.0 <= 96"


def test_gate_edges_stay_open():
    anc, strides = anchors((448, 448))
    gt = torch.tensor([[[20.0, 200.0, 30.0, 212.0], [0.0, 0.0, 400.0, 400.0]]])
    _, g = level_gate(anc, strides, gt, torch.ones(1, 2, 1), P)
    assert g.level_open[0, 0].tolist() == [True, False, False]  # 11 px: finest level has no lower bound
    assert g.level_open[0, 1].tolist() == [False, False, True]  # 400 px > 12*32: coarsest has no upper bound
    assert gate_reason(g, 0, 0, 0) == "open: finest level: no lower bound, 11.0 <= 96"
    assert gate_reason(g, 0, 1, 2) == "open: 400.0 >= 64, coarsest level: no upper bound"
    assert gate_reason(g, 0, 1, 1) == "closed: sqrt(area) 400.0 > 192 = 12·stride 16"


def test_gate_fallback_for_a_thin_tall_gt():
    anc, strides = anchors((1344, 256))
    gt = torch.tensor([[[50.0, 2.0, 78.0, 1342.0]]])  # sqrt 193.7 > 192: P3, P4 closed; no P5 centre inside
    _, g = level_gate(anc, strides, gt, torch.ones(1, 1, 1), P)
    assert g.level_open[0, 0].tolist() == [False, False, True]
    assert not g.mask_gated.any() and bool(g.fallback[0, 0])
    assert torch.equal(g.mask_in_gts, g.mask_in_box)


def test_padding_gt_has_no_gate():
    anc, strides = anchors((256, 256))
    gt = torch.tensor([[[10.0, 10.0, 60.0, 60.0], [0, 0, 0, 0]]])
    mg = torch.tensor([[[1.0], [0.0]]])
    _, g = level_gate(anc, strides, gt, mg, P)
    assert not g.level_open[0, 1].any() and not g.mask_in_gts[0, 1].any() and not g.fallback[0, 1]
    assert not g.no_candidates.any()


def test_gt_without_visible_keypoints_uses_ciou():
    anc, strides = anchors((256, 256))
    a = anc.shape[0]
    torch.manual_seed(0)
    gt = torch.tensor([[[40.0, 40.0, 120.0, 130.0], [150.0, 20.0, 230.0, 100.0]]])
    gk = torch.zeros(1, 2, 3, 3)
    gk[0, 0] = torch.tensor([[60.0, 60, 2], [80, 90, 2], [100, 120, 1]])  # GT 1: no labelled keypoint
    pd_b = (gt[0, torch.randint(0, 2, (a,))] + torch.randn(a, 4) * 6)[None]
    pd_k = torch.rand(1, a, 3, 2) * 256
    pd_s = torch.rand(1, a, 1)
    r = assign_pose(pd_s, pd_b, anc, torch.zeros(1, 2, 1), gt, torch.ones(1, 2, 1), strides, pd_k, gk,
                    torch.full((3,), 1 / 3), P)
    c = r.gate.mask_in_gts[0, 1]
    assert not bool(r.oks.uses_oks[0, 1]) and bool(r.oks.uses_oks[0, 0])
    torch.testing.assert_close(r.tal.overlaps[0, 1][c], r.oks.ciou[0, 1][c])
    torch.testing.assert_close(r.tal.overlaps[0, 0][r.gate.mask_in_gts[0, 0]], r.oks.oks[0, 0][r.gate.mask_in_gts[0, 0]])
    assert r.oks.n_visible[0].tolist() == [3, 0]
    assert float(r.oks.oks_area[0, 0]) == pytest.approx(80 * 90 * 0.53)


# -------------------------------------------------------------------------------------------------- losses
def _one_positive(k_vis, pred_xy, vis_logit):
    """One image, one anchor at grid (0.5, 0.5) stride 8, one GT box 0..16 px, K=2 keypoints."""
    b, a = 1, 1
    anchor_points, stride = torch.tensor([[0.5, 0.5]]), torch.tensor([[8.0]])
    tb = torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    fg = torch.tensor([[True]])
    ts = torch.tensor([[[0.8]]])
    det = detection_loss(torch.zeros(b, a, 4), torch.zeros(b, a, 1), torch.tensor([[[0.0, 0.0, 2.0, 2.0]]]),
                         anchor_points, stride, fg, tb, ts, (16, 16), 1, (7.5, 0.5, 1.5))
    gk = torch.tensor([[[[8.0, 8.0, k_vis[0]], [4.0, 12.0, k_vis[1]]]]])
    grid = torch.cat([torch.tensor(pred_xy).view(1, 1, 2, 2), torch.tensor(vis_logit).view(1, 1, 2, 1)], -1)
    return det, grid, fg, torch.zeros(1, 1, dtype=torch.long), gk, tb, stride


def test_pose_and_kobj_terms_by_hand():
    det, grid, fg, tgi, gk, tb, stride = _one_positive([2.0, 0.0], [[1.5, 1.0], [0.0, 0.0]], [2.0, -1.0])
    sig = torch.tensor([0.5, 0.25])
    r = pose_loss(det, grid, fg, tgi, gk, tb, stride, sig, 3, reg_max=1)
    # GT kp 0 at (1, 1) grid units, prediction (1.5, 1): d² = 0.25; area = 2 * 2 = 4 grid units²
    e0 = 0.25 / ((2 * 0.5) ** 2 * (4 + 1e-9) * 2)
    factor = 2 / (1 + 1e-9)
    assert float(r.raw_pose) == pytest.approx(factor * (1 - math.exp(-e0)) / 2, rel=1e-6)  # mean over P*K = 2
    bce = lambda x, t: math.log1p(math.exp(-x)) if t else math.log1p(math.exp(x))  # noqa: E731
    assert float(r.raw_kobj) == pytest.approx((bce(2.0, 1) + bce(-1.0, 0)) / 2, rel=1e-6)
    assert float(r.loss_pose) == pytest.approx(12 * float(r.raw_pose))
    assert r.names == ("box_loss", "pose_loss", "kobj_loss", "cls_loss", "l1_loss")
    assert r.kpt_visible.tolist() == [[True, False]]
    assert float(r.pose_per_gt[0, 0]) == pytest.approx(float(r.raw_pose)) and int(r.n_pos_per_gt[0, 0]) == 1


def _identity_flow():
    z = lambda *s: torch.zeros(*s)  # noqa: E731
    mlp = (z(64, 2), z(64), z(64, 64), z(64), z(2, 64), z(2))
    return Flow(torch.tensor([[0.0, 1.0], [1.0, 0.0]] * 3), (mlp,) * 6, (mlp,) * 6, "identity")


def test_rle_under_an_identity_flow():
    x = torch.tensor([[0.3, -1.2], [2.0, 0.0]])
    lp = flow_log_prob(x, _identity_flow())
    expect = -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)
    torch.testing.assert_close(lp, expect)
    pred = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0]]])  # (P=1, K=2, x y sx sy), σ̂ = 0.5
    gt = torch.tensor([[[1.5, 0.5, 1.0], [0.0, 0.0, 0.0]]])
    total, st_ = rle_terms(pred, gt, gt[..., 2] != 0, torch.tensor([1.2, 1.0]), _identity_flow())
    err = torch.tensor([-1.0, 1.0])  # (pred - gt) / 0.5
    logphi = float(-0.5 * (err**2).sum() - math.log(2 * math.pi))
    per = sum(math.log(0.5) - logphi + math.log(1.0) + abs(float(e)) for e in err)
    assert float(total) == pytest.approx(1.2 * per / 1, rel=1e-6)
    assert st_.kpt.tolist() == [0] and float(st_.term[0]) == pytest.approx(float(total))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_per_anchor_parts_sum_to_totals(seed):
    g = torch.Generator().manual_seed(seed)
    b, a, k, m = 2, 30, 3, 3
    anchor_points = torch.rand(a, 2, generator=g) * 8
    stride = torch.full((a, 1), 8.0)
    fg = torch.rand(b, a, generator=g) < 0.3
    tgi = torch.randint(0, m, (b, a), generator=g)
    tb = torch.rand(b, a, 4, generator=g) * 30
    tb[..., 2:] += tb[..., :2] + 4
    ts = torch.rand(b, a, 1, generator=g) * fg[..., None]
    det = detection_loss(torch.rand(b, a, 4, generator=g), torch.randn(b, a, 1, generator=g),
                         torch.rand(b, a, 4, generator=g), anchor_points, stride, fg, tb, ts, (64, 64), 1, (7.5, .5, 1.5))
    gk = torch.rand(b, m, k, 3, generator=g) * 60
    gk[..., 2] = (torch.rand(b, m, k, generator=g) < 0.6).float()
    grid = torch.randn(b, a, k, 5, generator=g) * 2
    from yolotal.loss_pose import init_flow

    r = pose_loss(det, grid, fg, tgi, gk, tb, stride, torch.full((k,), 0.3), 3, flow=init_flow(seed),
                  rle_weights=torch.ones(k))
    torch.testing.assert_close(r.pose_per_anchor.sum(), r.raw_pose, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(r.kobj_per_anchor.sum(), r.raw_kobj, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(r.pose_per_gt.sum(), r.raw_pose, rtol=1e-5, atol=1e-7)
    if r.rle is not None:
        torch.testing.assert_close(r.rle_per_anchor.sum().clamp(min=0), r.raw_rle, rtol=1e-5, atol=1e-5)
    assert int(r.n_pos_per_gt.sum()) == int(fg.sum())
    assert not r.pose_per_anchor[~fg].any()


# --------------------------------------------------------------------------------------------------- heads
def test_npz_roundtrip_and_channel_errors(tmp_path):
    grids = [(8, 8), (4, 4), (2, 2)]
    h = synthetic_pose_randn(2, 3, 16, grids, 5, (17, 3), True)
    assert h.extra["kpts"].shape == (2, 51, 84) and h.extra["kpts_sigma"].shape == (2, 34, 84)
    levels = pose_heads_to_levels(h)
    assert levels[0].shape == (2, 64 + 3 + 51 + 34, 8, 8)
    f = tmp_path / "pose.npz"
    np.savez(f, **{f"level{i}": x for i, x in enumerate(levels)})
    back = load_pose_heads(f, 16, 3, (17, 3), True)
    for key in ("kpts", "kpts_sigma"):
        assert torch.equal(back.extra[key], h.extra[key])
    assert torch.equal(back.scores, h.scores) and torch.equal(back.boxes, h.boxes)
    with pytest.raises(InputError, match=r"pose head has 152 channels, expected 4\*reg_max \+ nc \+ K\*D = 64 \+ 3 "
                                         r"\+ 51 = 118 \(kpt_shape \[17, 3\]\)"):
        load_pose_heads(f, 16, 3, (17, 3), False)


def test_pt_dict_with_kpts(tmp_path):
    grids = [(4, 4), (2, 2)]
    h = synthetic_pose_randn(1, 2, 1, grids, 1, (5, 2), True)
    feats = [torch.zeros(1, 8, *g) for g in grids]
    f = tmp_path / "o.pt"
    torch.save({"one2many": {"boxes": h.boxes, "scores": h.scores, "feats": feats, "kpts": h.extra["kpts"],
                             "kpts_sigma": h.extra["kpts_sigma"]}, "one2one": {}}, f)
    back = load_pose_heads(f, 1, 2, (5, 2), True)
    assert torch.equal(back.extra["kpts_sigma"], h.extra["kpts_sigma"])
    with pytest.raises(InputError, match=r"'kpts' has shape \(1, 10, 20\), expected \(1, 15, 20\)"):
        load_pose_heads(f, 1, 2, (5, 3), False)


@pytest.mark.parametrize("generation,reg_max", [("26", 1), ("v8", 16)])
def test_trained_pose_heads_predict_the_gt_keypoints(generation, reg_max):
    grids, strides = [(32, 32), (16, 16), (8, 8)], (8, 16, 32)
    xyxy = np.array([[40.0, 60.0, 140.0, 220.0]], np.float32)
    kp = np.array([[[60.0, 80.0, 2.0], [120.0, 200.0, 0.0], [90.0, 150.0, 1.0]]], np.float32)
    args = (1, 1, reg_max, grids, strides, 7, (3, 3), generation == "26", generation, np.array([0]), np.array([0]),
            xyxy, kp)
    h = synthetic_pose_trained(*args)
    assert torch.equal(h.extra["kpts"], synthetic_pose_trained(*args).extra["kpts"])  # deterministic
    ap, st_ = make_anchors(levels_for(grids, strides))
    dec = decode_keypoints(split_kpts(h.extra["kpts"], (3, 3)), ap, generation)  # (1, A, 3, 3)
    px = dec[0, :, :, :2] * st_[:, None]
    inside = ((ap * st_)[:, 0] > 40) & ((ap * st_)[:, 0] < 140) & ((ap * st_)[:, 1] > 60) & ((ap * st_)[:, 1] < 220)
    err = (px[inside] - torch.from_numpy(kp[0, :, :2])).norm(dim=-1)  # (n, 3)
    assert float(err.median()) < 12.0  # a few px: 0.25 cells + 4% of sqrt(area) per coordinate
    vis = dec[0, inside, :, 2]
    assert float((vis[:, 0] > 0).float().mean()) > 0.9 and float((vis[:, 1] < 0).float().mean()) > 0.9
    if generation == "26":
        assert h.extra["kpts_sigma"].shape == (1, 6, 32 * 32 + 16 * 16 + 64)
        assert float(h.boxes[0, :, inside].min()) >= 0  # reg_max 1: the noisy GT distances


def test_readme_pose_example_output(capsys):
    """notes/README-pose.md shows this script's output; its gate rows hold."""
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "pose_readme_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "| 32 | [64, 384] | closed: sqrt(area) 58.0 < 64 = 2·stride 32 | 4 | 0 | 0 |" in out
    assert "| 8 | [16, 96] | open: 58.0 >= 16, 58.0 <= 96 | 42 | 42 | 10 |" in out
    assert "fallback: False" in out
    assert out.count("| dropped |") == 4
    readme = (Path(__file__).parents[1] / "notes" / "README-pose.md").read_text()
    for line in out.splitlines():
        if line.startswith("| 32 |") or line.startswith("| 2033 |"):
            assert line in readme


def test_gt_keypoints_from_labels():
    from yolotal.inputs.labels import Labels
    from yolotal.pose import gt_keypoints

    kp = np.array([[[0.5, 0.25], [-0.005, 0.5]], [[0.1, 0.2], [0.3, 0.4]]], np.float32)
    lab = Labels(np.array([1, 0]), np.array([0, 0]), np.full((2, 4), 0.2, np.float32), (("a.txt", 1), ("b.txt", 1)),
                 ("a", "b"), task="pose", keypoints=kp)
    g = gt_keypoints(lab, 2, (100, 200), (2, 2))
    assert g.shape == (2, 1, 2, 3)
    assert g[1, 0].flatten().tolist() == pytest.approx([100.0, 25.0, 1.0, -1.0, 50.0, 0.0])  # x by width 200, y by 100
    with pytest.raises(InputError, match=r"do not match kpt_shape \[2, 3\]") as e:
        gt_keypoints(lab, 2, (100, 200), (2, 3))
    assert str(e.value).startswith("a.txt:1: keypoints of shape (2, 2, 2)")


def test_empty_batch_and_no_positives():
    anc, strides = anchors((64, 64))
    a = anc.shape[0]
    r = assign_pose(torch.rand(2, a, 3), torch.rand(2, a, 4) * 64, anc, torch.zeros(2, 0, 1), torch.zeros(2, 0, 4),
                    torch.zeros(2, 0, 1), strides, torch.rand(2, a, 5, 2), torch.zeros(2, 0, 5, 3), torch.ones(5) / 5, P)
    assert not r.tal.fg_mask.any() and r.tal.target_labels.eq(3).all()  # the reference's empty-batch labels: nc
    assert r.gate.level_open.shape == (2, 0, 3) and r.oks.pair_kpt_sim.shape == (0, 5)
    ap = anc / strides[:, None]
    det = detection_loss(torch.zeros(2, a, 4), torch.zeros(2, a, 3), torch.zeros(2, a, 4), ap, strides[:, None],
                         r.tal.fg_mask, r.tal.target_bboxes, r.tal.target_scores, (64, 64), 1, (7.5, 0.5, 1.5))
    from yolotal.loss_pose import init_flow

    lo = pose_loss(det, torch.zeros(2, a, 5, 5), r.tal.fg_mask, r.tal.target_gt_idx, torch.zeros(2, 0, 5, 3),
                   r.tal.target_bboxes, strides[:, None], torch.ones(5) / 5, 3, flow=init_flow(0), reg_max=1)
    assert lo.items.tolist()[1:3] == [0.0, 0.0] and float(lo.loss_rle) == 0.0 and lo.rle is None
    assert len(lo.names) == 6 and lo.pose_per_gt.shape == (2, 0)
