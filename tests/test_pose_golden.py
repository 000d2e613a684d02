"""Pose parity with ultralytics 8.4.190: fixtures made by scripts/make_golden_pose.py (v8PoseLoss, PoseLoss26 and
its PoseTaskAlignedAssigner). Masks, indices and gates exact; floats within tests/tolerances.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import DECISION_MARGIN, FLOW_INIT, LOSS, METRIC, OVERLAP, PIXELS, SCORE, assert_close_f32

from yolotal.assigners.pose_tal import assign_pose
from yolotal.assigners.tal import TALParams
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.decode import dfl_distances, ltrb_to_xyxy
from yolotal.core.keypoints import keypoint_visibility, rle_weights, select_sigmas
from yolotal.inputs.labels import Labels
from yolotal.inputs.pose_heads import pose_heads_from_levels
from yolotal.loss_pose import flow_from_state_dict, init_flow
from yolotal.pipeline import pad_targets
from yolotal.pose import pad_keypoints, run_pose

POSE = Path(__file__).parent / "fixtures" / "golden" / "pose"
CASES = sorted(p.stem for p in POSE.glob("*.npz"))


def load(name: str):
    z = dict(np.load(POSE / f"{name}.npz"))
    meta = json.loads(str(z.pop("config")))
    return meta, z


def run_case(name: str, topk: tuple | None = None):
    meta, z = load(name)
    if topk is not None:
        meta = {**meta, "topk": topk[0], "topk2": topk[1]}
    strides, imgsz, reg_max, nc = meta["strides"], tuple(meta["imgsz"]), meta["reg_max"], meta["nc"]
    kpt_shape = tuple(meta["kpt_shape"])
    gen = meta["loss"]
    levels = [torch.from_numpy(z[f"level{i}"].astype(np.float32)) for i in range(len(strides))]
    heads = pose_heads_from_levels(levels, reg_max, kpt_shape, gen == "26", "golden", nc)
    lab = z["labels"]
    b = heads.batch
    labels = Labels(lab[:, 0].astype(np.int64), lab[:, 1].astype(np.int64), lab[:, 2:6],
                    tuple(("golden", i + 1) for i in range(len(lab))), tuple(str(i) for i in range(b)))
    gt_labels, gt_bboxes, mask_gt = pad_targets(labels, b, imgsz)
    gt_kpts = pad_keypoints(z["keypoints"], labels.batch_idx, b, imgsz)
    lv = levels_for(list(heads.grids), strides)
    anchor_points, stride_tensor = make_anchors(lv)
    pred_distri = heads.boxes.permute(0, 2, 1).contiguous()
    pred_logits = heads.scores.permute(0, 2, 1).contiguous()
    pred_bboxes_grid = ltrb_to_xyxy(dfl_distances(pred_distri, reg_max), anchor_points)
    sigmas, _ = select_sigmas(kpt_shape, meta["sigmas"])
    flow = None
    if gen == "26":
        flow = flow_from_state_dict({k[5:]: torch.from_numpy(v) for k, v in z.items() if k.startswith("flow.")})
    params = TALParams(num_classes=nc, topk=meta["topk"], topk2=meta["topk2"], alpha=0.5, beta=6.0,
                       profile="ultralytics", stride_val=float(strides[1]))
    r = run_pose(gen, kpt_shape, heads.extra["kpts"], heads.extra.get("kpts_sigma"), pred_distri, pred_logits,
                 pred_bboxes_grid, anchor_points, stride_tensor, gt_labels, gt_bboxes, mask_gt, gt_kpts, sigmas, params,
                 imgsz, reg_max, flow=flow, rle_weights=rle_weights(kpt_shape))
    return meta, z, r, (gt_labels, gt_bboxes, mask_gt)


def test_fixture_set():
    assert len(CASES) == 6
    kinds = {load(c)[0]["loss"] for c in CASES}
    assert kinds == {"v8", "26"}


@pytest.mark.parametrize("name", CASES)
def test_pose_matches_reference(name):
    meta, z, r, (gt_labels, gt_bboxes, mask_gt) = run_case(name)
    np.testing.assert_array_equal(gt_bboxes.numpy(), z["gt_bboxes"])
    np.testing.assert_array_equal(gt_labels.numpy(), z["gt_labels"])
    np.testing.assert_array_equal(mask_gt.numpy(), z["mask_gt"])
    t = r.tal
    assert_close_f32(r.kpts_grid[t.fg_mask], z["kpts_decoded_fg"], PIXELS, "decoded keypoints")
    if meta["loss"] == "26":
        np.testing.assert_array_equal(r.gt_kpts.numpy(), z["gt_kpts"])
        g = r.assignment.gate
        np.testing.assert_array_equal(g.mask_in_box.numpy(), z["mask_in_box"])
        np.testing.assert_array_equal(g.mask_in_gts.numpy(), z["mask_in_gts"])
    else:
        np.testing.assert_array_equal((t.mask_in_gts & mask_gt.bool()).numpy(), z["mask_in_gts"])
    assert_close_f32(t.overlaps, z["overlaps"], OVERLAP, "overlaps (OKS for YOLO26, else CIoU)")
    assert_close_f32(t.align_metric, z["align_metric"], METRIC, "align_metric")
    np.testing.assert_array_equal(t.mask_pos_topk.numpy(), z["mask_pos_topk"])
    np.testing.assert_array_equal(t.mask_pos.numpy(), z["mask_pos"])
    np.testing.assert_array_equal(t.fg_mask.numpy(), z["fg_mask"])
    np.testing.assert_array_equal(t.target_gt_idx.numpy(), z["target_gt_idx"])
    np.testing.assert_array_equal(t.target_labels.numpy(), z["target_labels"])
    np.testing.assert_array_equal(t.target_bboxes.numpy(), z["target_bboxes"])
    assert_close_f32(t.target_scores, z["target_scores"], SCORE, "target_scores")
    assert list(r.loss.names) == meta["names"]
    assert_close_f32(r.loss.items, z["loss"], LOSS, f"loss items {meta['names']}")


@pytest.mark.parametrize("name", CASES)
def test_label_visibility_as_the_dataset(name):
    meta, z = load(name)
    np.testing.assert_array_equal(keypoint_visibility(z["kpts_label"], meta["kpt_shape"][1]), z["keypoints"])


@pytest.mark.parametrize("name", [c for c in CASES if load(c)[0]["loss"] == "26"])
def test_untrained_flow_is_the_reference_init(name):
    """init_flow(seed) draws the same weights as RealNVP() after torch.manual_seed(seed) (bit-identical with the
    same kernels; plain kernels round uniform_ differently in the last bit)."""
    meta, z = load(name)
    f = init_flow(meta["seed"])
    ref = flow_from_state_dict({k[5:]: torch.from_numpy(v) for k, v in z.items() if k.startswith("flow.")})
    torch.testing.assert_close(f.masks, ref.masks, rtol=0, atol=0)
    for mine, theirs in zip(f.s + f.t, ref.s + ref.t):
        for x, y in zip(mine, theirs):
            assert_close_f32(x, y, FLOW_INIT, "flow weights")


@pytest.mark.parametrize("name", [c for c in CASES if "e2e_weighted" in np.load(POSE / f"{c}.npz")])
def test_end_to_end_branches(name):
    """E2ELoss(PoseLoss26) at epoch 0: 0.8 * one2many (topk 10) + 0.2 * one2one (topk 7, topk2 1), logging
    one2one's items."""
    from yolotal.loss_pose import E2EPoseLoss, e2e_branch_weights

    _, z, o2m, _ = run_case(name)
    _, _, o2o, _ = run_case(name, (7, 1))
    w = e2e_branch_weights(0, 100)
    assert w == (pytest.approx(0.8), pytest.approx(0.2))
    e = E2EPoseLoss(o2m.loss, o2o.loss, *w)
    assert_close_f32(e.weighted, z["e2e_weighted"], LOSS, "e2e weighted")
    assert_close_f32(e.logged, z["e2e_logged"], LOSS, "e2e logged")
    assert e2e_branch_weights(99, 100) == (pytest.approx(0.1), pytest.approx(0.9))


def test_fixtures_hold_the_gate_cases():
    """A YOLO26 GT whose P5 candidates were gated away, one with only P5 open, one without visible keypoints,
    and a fallback GT."""
    _, _, r, _ = run_case("pose26_coco")
    g = r.assignment.gate
    p5 = int(torch.nonzero(g.level_strides == 32)[0])
    lost_p5 = (g.mask_in_box & ~g.mask_in_gts)[..., g.anchor_level == p5].any(-1)  # (b, M)
    assert bool((lost_p5 & g.too_small[..., p5]).any())
    assert bool((g.level_open.sum(-1) == 1).any())
    assert bool((~r.assignment.oks.uses_oks & g.mask_in_box.any(-1)).any())
    _, _, r2, _ = run_case("pose26_fallback_k5d2")
    g2 = r2.assignment.gate
    assert int(g2.fallback.sum()) == 1
    i, j = (int(x) for x in g2.fallback.nonzero()[0])
    assert torch.equal(g2.mask_in_gts[i, j], g2.mask_in_box[i, j]) and not g2.mask_gated[i, j].any()
    assert bool(r2.tal.mask_pos[i, j].any())  # and it still gets positives


def _gap(row: np.ndarray, k: int, what: str) -> None:
    if k >= row.size:
        return
    a, b = float(row[k - 1]), float(row[k])
    if a == b:
        assert a == 0, f"{what}: exact tie of {a} at the cut"
    else:
        assert (a - b) / a >= DECISION_MARGIN, f"{what}: {a} vs {b} is a near-tie"


@pytest.mark.parametrize("name", CASES)
def test_pose_fixture_decisions_are_not_near_ties(name):
    """Top-k cuts, conflict winners and the level gate's comparisons are far from their thresholds."""
    meta, z = load(name)
    am, ov, mpt, mg = z["align_metric"], z["overlaps"], z["mask_pos_topk"], z["mask_gt"][..., 0] > 0
    b, m, _ = am.shape
    for i in range(b):
        for j in range(m):
            if mg[i, j]:
                _gap(np.sort(am[i, j])[::-1], meta["topk"], f"{name} image {i} GT {j} top-k")
        multi = mpt[i].sum(0) > 1
        for a in np.nonzero(multi)[0]:
            _gap(np.sort(ov[i, :, a])[::-1], 1, f"{name} image {i} anchor {a} conflict")
    gb = z["gt_bboxes"]
    size = np.sqrt(np.clip((gb[..., 2] - gb[..., 0]) * (gb[..., 3] - gb[..., 1]), 0, None))[mg]
    for s in meta["strides"]:
        for bound in (2 * s, 12 * s):
            assert (np.abs(size - bound) / bound > 1e-3).all(), f"{name}: a GT size within 0.1% of {bound}"


# ----------------------------------------------------------------- live comparisons (when ultralytics is importable)
def _ultralytics():
    return pytest.importorskip("ultralytics.utils.tal")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), topk=st.sampled_from([(10, None), (7, 1), (13, None)]))
def test_pose_assigner_matches_live_reference(seed, topk):
    """Random GTs (some without visible keypoints, some thin), predictions near or far: every stage equal."""
    tal = _ultralytics()
    g = torch.Generator().manual_seed(seed)
    imgsz, strides = (256, 320), (8, 16, 32)
    lv = levels_for([(imgsz[0] // s, imgsz[1] // s) for s in strides], strides)
    ap, stt = make_anchors(lv)
    anc, a = ap * stt, ap.shape[0]
    b, m, k = 2, 5, 4
    wh = torch.rand(b, m, 2, generator=g) * torch.tensor([200.0, 180.0]) + 4
    xy = torch.rand(b, m, 2, generator=g) * (torch.tensor([320.0, 256.0]) - wh)
    gt = torch.cat((xy, xy + wh), -1)
    mask_gt = (torch.rand(b, m, 1, generator=g) < 0.85).float()
    gt = gt * mask_gt
    gk = torch.cat((xy[:, :, None] + torch.rand(b, m, k, 2, generator=g) * wh[:, :, None],
                    (torch.rand(b, m, k, 1, generator=g) < 0.6).float()), -1) * mask_gt[..., None]
    owner = torch.randint(0, m, (b, a), generator=g)
    near = torch.gather(gt, 1, owner[..., None].expand(-1, -1, 4))
    pd_b = near + torch.randn(b, a, 4, generator=g) * 8
    pd_b = torch.cat((pd_b[..., :2], torch.maximum(pd_b[..., 2:], pd_b[..., :2] + 1)), -1)
    pd_k = torch.gather(gk[..., :2], 1, owner[..., None, None].expand(-1, -1, k, 2)) + torch.randn(b, a, k, 2,
                                                                                                   generator=g) * 10
    pd_s = torch.rand(b, a, 3, generator=g)
    gl = torch.randint(0, 3, (b, m, 1), generator=g).float()
    sig = torch.full((k,), 0.25)
    ref = tal.PoseTaskAlignedAssigner(sig, topk=topk[0], num_classes=3, alpha=0.5, beta=6.0, stride=list(strides),
                                      topk2=topk[1])
    out = ref(pd_s, pd_b, anc, gl, gt, mask_gt, stt.view(-1), pd_kpts=pd_k, gt_kpts=gk)
    ref.bs, ref.n_max_boxes, ref.anc_strides = b, m, stt.view(-1)
    in_gts = ref.select_candidates_in_gts(anc, gt, mask_gt)
    _, align, ov = ref.get_pos_mask(pd_s, pd_b, gl, gt, anc, mask_gt, pd_kpts=pd_k, gt_kpts=gk)
    p = TALParams(num_classes=3, topk=topk[0], topk2=topk[1], stride_val=16.0)
    r = assign_pose(pd_s, pd_b, anc, gl, gt, mask_gt, stt, pd_k, gk, sig, p)
    np.testing.assert_array_equal(r.gate.mask_in_gts.numpy(), in_gts.numpy())
    assert_close_f32(r.tal.overlaps, ov, OVERLAP, "overlaps")
    assert_close_f32(r.tal.align_metric, align, METRIC, "align")
    tl, tb, ts, fg, tgi = out
    np.testing.assert_array_equal(r.tal.fg_mask.numpy(), fg.numpy())
    np.testing.assert_array_equal(r.tal.target_gt_idx.numpy(), tgi.numpy())
    np.testing.assert_array_equal(r.tal.target_bboxes.numpy(), tb.numpy())
    assert_close_f32(r.tal.target_scores, ts.float(), SCORE, "target_scores")


def test_oks_matrix_matches_kpt_iou():
    metrics = pytest.importorskip("ultralytics.utils.metrics")
    from yolotal.core.keypoints import oks_matrix

    g = torch.Generator().manual_seed(3)
    gt = torch.cat((torch.rand(5, 17, 2, generator=g) * 100, (torch.rand(5, 17, 1, generator=g) < 0.7).float()), -1)
    pr = torch.rand(7, 17, 3, generator=g) * 100
    area = torch.rand(5, generator=g) * 5000 * 0.53
    sig = select_sigmas((17, 3))[0]
    ref = metrics.kpt_iou(gt, pr, area, metrics.OKS_SIGMA)
    assert torch.equal(sig, torch.from_numpy(metrics.OKS_SIGMA))
    assert_close_f32(oks_matrix(gt, pr, area, sig), ref, OVERLAP, "kpt_iou")
