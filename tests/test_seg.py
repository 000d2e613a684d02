"""Segmentation: GT masks, the mask-aware TAL (YOLO26-seg) and the seg losses against ultralytics 8.4.190.

Fixtures: tests/fixtures/golden/seg, made by scripts/make_golden_seg.py. Masks and indices are compared
exactly, floats with tests/tolerances.py. A live check against OpenCV runs where cv2 imports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import DECISION_MARGIN, LOSS, MASK_IOU, METRIC, OVERLAP, SCORE, assert_close_f32

from yolotal.assigners import seg_tal, tal
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.decode import dfl_distances, ltrb_to_xyxy
from yolotal.core.masks import (fill_polygon, index_to_masks, overlap_order, polygon_masks, polygon_masks_overlap,
                                resample_count, resample_polygon, shrink_mask, trainer_polygons)
from yolotal.inputs.heads import from_levels
from yolotal.inputs.seg_heads import anchor_owners, check_seg_extra, synthetic_seg_randn, synthetic_seg_trained
from yolotal.errors import InputError
from yolotal.loss_seg import e2e_weights, segmentation_loss

SEG = Path(__file__).parent / "fixtures" / "golden" / "seg"
CASES = sorted(p.stem for p in SEG.glob("*.npz") if p.stem not in ("masks", "trainer_masks")
               and not p.stem.startswith("model_"))
MODEL_CASES = sorted(p.stem for p in SEG.glob("model_*.npz"))


# ------------------------------------------------------------------------------------------------ GT masks
def _corpus():
    z = np.load(SEG / "masks.npz")
    groups = json.loads(str(z["groups"]))
    polys = np.split(z["coords"], np.cumsum(z["counts"])[:-1])
    return z, groups, polys


def test_mask_corpus_matches_reference_pixel_for_pixel():
    z, groups, polys = _corpus()
    group = z["group"]
    bit_at, idx_at, ord_at, checked = 0, 0, 0, 0
    for gi, (h, w, r) in enumerate(groups):
        pg = [p for p, g in zip(polys, group) if g == gi]
        n, mh, mw = len(pg), h // r, w // r
        size = n * mh * mw
        nbytes = (size + 7) // 8
        ref = np.unpackbits(z["masks_bits"][bit_at : bit_at + nbytes])[:size].reshape(n, mh, mw)
        bit_at += nbytes
        mine = polygon_masks((h, w), pg, r)
        assert mine.shape == ref.shape
        np.testing.assert_array_equal(mine, ref, err_msg=f"group {gi} ({h}x{w}, ratio {r})")
        index, order = polygon_masks_overlap((h, w), pg, r)
        ib = mh * mw * index.itemsize
        ref_index = np.frombuffer(z["index_bits"][idx_at : idx_at + ib].tobytes(), index.dtype).reshape(mh, mw)
        idx_at += ib
        np.testing.assert_array_equal(order, z["order"][ord_at : ord_at + n])
        ord_at += n
        np.testing.assert_array_equal(index, ref_index)
        checked += n
    assert checked == len(polys) == 168


def test_trainer_polygons_and_masks_match_reference():
    z = np.load(SEG / "trainer_masks.npz")
    counts = json.loads(str(z["seg_counts"]))
    segs = np.split(z["seg_coords"], np.cumsum([k for c in counts for k in c])[:-1])
    px_at, bit_at, s_at = 0, 0, 0
    for (w, h, rw, rh, pw, ph), lens in zip(z["cases"], counts):
        mine = trainer_polygons(segs[s_at : s_at + len(lens)], (int(w), int(h)), (rw, rh), (int(pw), int(ph)))
        s_at += len(lens)
        n = resample_count(lens)
        assert mine.shape == (len(lens), n, 2)
        np.testing.assert_array_equal(mine.reshape(-1, 2), z["polygons_px"][px_at : px_at + len(lens) * n])
        px_at += len(lens) * n
        size = len(lens) * 160 * 160
        ref = np.unpackbits(z["masks_bits"][bit_at : bit_at + (size + 7) // 8])[:size].reshape(-1, 160, 160)
        bit_at += (size + 7) // 8
        np.testing.assert_array_equal(polygon_masks((640, 640), list(mine), 4), ref)
    assert {k for c in counts for k in c} >= {3, 999, 1000, 1001, 1400}


def test_resample_rules():
    assert resample_count([3, 10]) == 1000 and resample_count([1000]) == 1000 and resample_count([1001, 5]) == 1002
    tri = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    r = resample_polygon(tri, 10)
    assert r.shape == (10, 2) and r.dtype == np.float32
    for v in tri:  # every vertex kept
        assert (np.abs(r - v).sum(1) == 0).any()
    same = np.arange(20, dtype=np.float32).reshape(10, 2)
    assert resample_polygon(same, 10) is not None and np.array_equal(resample_polygon(same, 10), same)


def test_resample_matches_ultralytics_live():
    ops = pytest.importorskip("ultralytics.utils.ops")
    rng = np.random.default_rng(3)
    for k in (3, 17, 998, 999, 1000, 1001, 1300):
        s = rng.uniform(0, 1, (k, 2)).astype(np.float32)
        n = resample_count([k])
        np.testing.assert_array_equal(resample_polygon(s, n), ops.resample_segments([s.copy()], n=n)[0])


def test_corpus_holds_the_edge_cases():
    z, groups, polys = _corpus()
    first = [p for p, g in zip(polys, z["group"]) if g == 0]
    masks = polygon_masks((640, 640), first, 4)
    areas = masks.reshape(len(first), -1).sum(1)
    assert areas[2] == 0  # a polygon wholly outside the image: an empty mask ...
    assert overlap_order(areas)[0] == 2  # ... drawn first in the overlap order (unsigned negated area)
    assert areas[0] == areas[1] > 0  # an area tie
    assert any((p[:, 0] >= 640).any() for p in first)  # vertices on/after the right border (clipped edges)


def test_fill_rules_by_hand():
    # a 4x4 square with integer corners: fillPoly covers both end rows and columns (outline included)
    m = fill_polygon((8, 8), np.array([[1, 1], [4, 1], [4, 4], [1, 4]], np.float32))
    assert m.sum() == 16 and m[1:5, 1:5].all()
    # vertices are truncated toward zero: 1.9 -> 1, -0.5 -> 0
    m2 = fill_polygon((8, 8), np.array([[1.9, 1.9], [4.9, 1.2], [4.2, 4.7], [1.1, 4.99]], np.float32))
    np.testing.assert_array_equal(m, m2)
    # a degenerate (zero-area) polygon still draws its outline
    assert fill_polygon((8, 8), np.array([[0, 0], [5, 5], [0, 0]], np.float32)).sum() == 6


def test_shrink_by_four_is_two_of_the_four_centre_pixels():
    rng = np.random.default_rng(0)
    m = (rng.random((64, 64)) < 0.5).astype(np.uint8)
    out = shrink_mask(m, (16, 16))
    centre = m.reshape(16, 4, 16, 4)[:, 1:3, :, 1:3].sum((1, 3))
    np.testing.assert_array_equal(out, (centre >= 2).astype(np.uint8))


def test_overlap_index_small_objects_on_top():
    big = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float32)
    small = np.array([[20, 20], [60, 20], [60, 60], [20, 60]], np.float32)
    index, order = polygon_masks_overlap((128, 128), [small, big], 4)
    assert order.tolist() == [1, 0]  # largest first
    assert index[10, 10] == 2 and index[2, 2] == 1 and index[31, 31] == 0
    masks = index_to_masks(index, 2)
    assert masks.shape == (2, 32, 32) and not (masks[0] & masks[1]).any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-20, 100), st.floats(-20, 100)), min_size=3, max_size=12))
def test_fill_polygon_matches_opencv_live(pts):
    cv2 = pytest.importorskip("cv2")
    p = np.array(pts, np.float32)
    ref = np.zeros((80, 96), np.uint8)
    cv2.fillPoly(ref, np.asarray([p.reshape(-1)], dtype=np.int32).reshape(1, -1, 2), color=1)
    np.testing.assert_array_equal(fill_polygon((80, 96), p), ref)
    for r in (2, 3, 4):
        np.testing.assert_array_equal(shrink_mask(ref, (80 // r, 96 // r)), cv2.resize(ref, (96 // r, 80 // r)))


def test_masks_match_ultralytics_live():
    pytest.importorskip("cv2")
    du = pytest.importorskip("ultralytics.data.utils")
    rng = np.random.default_rng(7)
    polys = [rng.uniform(-10, 330, (int(rng.integers(3, 20)), 2)).astype(np.float32) for _ in range(30)]
    ref = du.polygons2masks((320, 320), [p.reshape(-1) for p in polys], color=1, downsample_ratio=4)
    np.testing.assert_array_equal(polygon_masks((320, 320), polys, 4), ref)
    idx, order = du.polygons2masks_overlap((320, 320), [p.reshape(-1) for p in polys], downsample_ratio=4)
    mi, mo = polygon_masks_overlap((320, 320), polys, 4)
    np.testing.assert_array_equal(mi, idx)
    np.testing.assert_array_equal(mo, order)


# ------------------------------------------------------------------------------------------------ golden batches
def load_case(name):
    z = dict(np.load(SEG / f"{name}.npz"))
    cfg = json.loads(str(z.pop("config")))
    return cfg, z


def gt_masks_of_case(cfg, z) -> torch.Tensor:
    """(b, M, H, W) bool GT masks rasterised by yolotal from the case's polygons (in the trainer's order)."""
    h, w = cfg["imgsz"]
    polys = np.split(z["poly_coords"], np.cumsum(z["poly_counts"])[:-1])
    bi = z["labels"][:, 0].astype(int)
    b, m = z["mask_gt"].shape[:2]
    out = torch.zeros(b, m, h // 4, w // 4, dtype=torch.bool)
    for i in range(b):
        pi = [p for p, j in zip(polys, bi) if j == i]
        masks = polygon_masks((h, w), pi, 4)
        if cfg["overlap"]:  # the index image the trainer keeps, drawn in the (already sorted) label order
            index = np.zeros((h // 4, w // 4), np.int32)
            for k, mk in enumerate(masks):
                np.maximum(index, mk.astype(np.int32) * (k + 1), out=index)
            np.testing.assert_array_equal(index, z["batch_masks"][i])
            masks = index_to_masks(index, len(pi))
        else:
            np.testing.assert_array_equal(masks, z["batch_masks"][bi == i])
        out[i, : len(pi)] = torch.from_numpy(masks.astype(bool))
    return out


def decoded(cfg, z):
    h, w = cfg["imgsz"]
    levels = [torch.from_numpy(z[f"level{i}"]) for i in range(len(cfg["strides"]))]
    heads = from_levels(levels, cfg["reg_max"], "golden")
    lv = levels_for(list(heads.grids), cfg["strides"])
    anc, stride = make_anchors(lv)
    pred_dist = heads.boxes.permute(0, 2, 1).contiguous()
    logits = heads.scores.permute(0, 2, 1).contiguous()
    pred_grid = ltrb_to_xyxy(dfl_distances(pred_dist, cfg["reg_max"]), anc)
    return heads, anc, stride, pred_dist, logits, pred_grid


def run_case(cfg, z, gt_masks):
    heads, anc, stride, pred_dist, logits, pred_grid = decoded(cfg, z)
    p = tal.TALParams(num_classes=cfg["nc"], topk=cfg["topk"], topk2=cfg["topk2"], stride_val=float(cfg["strides"][1]))
    gl, gb, mg = (torch.from_numpy(z[k]) for k in ("gt_labels", "gt_bboxes", "mask_gt"))
    coef = torch.from_numpy(z["mask_coef"]).permute(0, 2, 1).contiguous()
    protos = torch.from_numpy(z["protos"])
    h, w = cfg["imgsz"]
    args = (logits.sigmoid(), pred_grid * stride, anc * stride, gl, gb, mg)
    if cfg["kind"] == "26":
        res = seg_tal.assign(*args, coef, protos, gt_masks, (h // 4) / h, p)
        a = res.tal
    else:
        res, a = None, tal.assign(*args, p)
    sem = torch.from_numpy(z["semantic"]) if cfg["semantic"] else None
    loss = segmentation_loss(pred_dist, logits, pred_grid, anc, stride, a.fg_mask, a.target_gt_idx, a.target_bboxes,
                             a.target_scores, coef, protos, gt_masks, (h, w), cfg["reg_max"], (7.5, 0.5, 1.5),
                             semantic=sem, gt_cls=gl[..., 0], valid=mg[..., 0].bool())
    return res, a, loss


def test_seg_fixture_set_is_complete():
    kinds = [load_case(c)[0]["kind"] for c in CASES]
    assert len(CASES) == 8 and kinds.count("26") == 6 and kinds.count("v8") == 2


@pytest.mark.parametrize("name", CASES)
def test_seg_matches_reference(name):
    cfg, z = load_case(name)
    check_against_reference(cfg, z)


LIVE_SPECS = {  # other seeds than the fixtures': (seed, loss, batch, imgsz, nc, nm, per_image, heads, overlap, topk, topk2, sem)
    "v8_live": (901, "v8", 2, (256, 256), 3, 8, [6, 2], "near", True, 10, None, False),
    "y26_live": (902, "26", 2, (256, 320), 4, 8, [9, 4], "near", False, 10, None, True),
    "y26_live_reg1": (903, "26", 1, (256, 256), 2, 8, [7], "near1", True, 7, 1, True),
}


@pytest.mark.parametrize("name", sorted(LIVE_SPECS))
def test_seg_matches_reference_live(name):
    pytest.importorskip("ultralytics")
    pytest.importorskip("cv2")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import make_golden_seg

    cfg, z = make_golden_seg.compute_case(LIVE_SPECS[name])
    check_against_reference(json.loads(json.dumps(cfg)), z)


def check_against_reference(cfg, z):
    gt_masks = gt_masks_of_case(cfg, z)
    if "gt_masks_bits" in z:  # the masks SegmentLoss26 hands its assigner
        shape = tuple(z["gt_masks_shape"])
        ref = np.unpackbits(z["gt_masks_bits"])[: int(np.prod(shape))].reshape(shape).astype(bool)
        np.testing.assert_array_equal(gt_masks.numpy(), ref)
        assert float(z["mask_scale"].reshape(-1)[0]) == (cfg["imgsz"][0] // 4) / cfg["imgsz"][0]
    res, a, loss = run_case(cfg, z, gt_masks)
    np.testing.assert_array_equal(a.mask_in_gts.numpy(), z["mask_in_gts"])
    cand = a.mask_in_gts & torch.from_numpy(z["mask_gt"]).bool()
    if res is not None:
        assert_close_f32(res.box_overlaps[cand], z["cand_box_iou"], OVERLAP, "box CIoU")
        ref_miou = 2 * z["cand_overlap"].astype(np.float64) - z["cand_box_iou"]  # reference mask IoU per candidate
        mine = torch.zeros(cand.shape)
        mine[res.pair_image, res.pair_gt, res.pair_anchor] = res.pair_mask_iou
        np.testing.assert_allclose(mine[cand].numpy(), ref_miou, err_msg="mask IoU", **MASK_IOU)
    assert_close_f32(a.overlaps[cand], z["cand_overlap"], OVERLAP, "overlaps")
    assert_close_f32(a.align_metric[cand], z["cand_align"], METRIC, "align_metric")
    np.testing.assert_array_equal(a.mask_pos_topk.numpy(), z["mask_pos_topk"])
    np.testing.assert_array_equal(a.fg_mask.numpy(), z["fg_mask"])
    np.testing.assert_array_equal(a.target_gt_idx.numpy(), z["target_gt_idx"])
    np.testing.assert_array_equal(a.target_labels.numpy(), z["target_labels"])
    np.testing.assert_array_equal(a.target_bboxes.numpy(), z["target_bboxes"])
    assert_close_f32(a.target_scores, z["target_scores"], SCORE, "target_scores")
    items = loss.items(cfg["reg_max"])
    assert list(items) == cfg["loss_names"]
    assert_close_f32(np.array(list(items.values()), np.float32), z["loss_items"], LOSS, "loss items")
    assert loss.has_semantic == cfg["semantic"] and (items["sem_loss"] > 0) == cfg["semantic"]


@pytest.mark.parametrize("name", [c for c in CASES if "26" in c])
def test_seg_fixture_decisions_are_not_near_ties(name):
    """The k-th / (k+1)-th metric of every GT's top-k and its 3·topk mask-pair cut are apart by DECISION_MARGIN."""
    cfg, z = load_case(name)
    res, a, _ = run_case(cfg, z, gt_masks_of_case(cfg, z))
    valid = torch.from_numpy(z["mask_gt"])[..., 0].bool()
    for metric, k in ((a.align_metric, cfg["topk"]), (res.box_metric, res.mask_k)):
        top = metric.topk(k + 1, dim=-1).values[valid]  # (G, k+1)
        kth, nxt = top[:, k - 1], top[:, k]
        live = nxt > 1e-8  # both above the background / eps floor
        gap = (kth - nxt)[live] / kth[live]
        assert gap.numel() == 0 or float(gap.min()) > DECISION_MARGIN or bool(((kth - nxt)[live] == 0).all())


def test_seg_result_keeps_sparse_mask_ious_only():
    cfg, z = load_case("y26_crowded_near")
    res, a, _ = run_case(cfg, z, gt_masks_of_case(cfg, z))
    per_gt = torch.bincount(res.pair_image * 1000 + res.pair_gt)
    assert int(per_gt.max()) <= res.mask_k == 30  # at most 3·topk pairs per GT got a mask IoU
    assert all(v.ndim == 1 for v in (res.pair_mask_iou, res.pair_inter, res.pair_union))
    assert ((res.pair_inter <= res.pair_union) & (res.pair_union >= 0)).all()
    anchors, ious = res.mask_iou_of(0, 0)
    assert anchors.numel() == ious.numel() > 0
    assert ((res.pair_mask_iou >= 0) & (res.pair_mask_iou <= 1)).all()
    # most final positives had their mask IoU computed; a conflict can hand an anchor to a GT that ranked it
    # outside its 3·topk box-metric pairs (overlap = box IoU / 2 there)
    pos = a.mask_pos[res.pair_image, res.pair_gt, res.pair_anchor]
    assert 0.9 * int(a.mask_pos.sum()) < int(pos.sum()) <= int(a.mask_pos.sum())


def test_chunking_does_not_change_the_result():
    cfg, z = load_case("y26_overlap_near")
    gm = gt_masks_of_case(cfg, z)
    heads, anc, stride, pred_dist, logits, pred_grid = decoded(cfg, z)
    p = tal.TALParams(num_classes=cfg["nc"], topk=cfg["topk"])
    gl, gb, mg = (torch.from_numpy(z[k]) for k in ("gt_labels", "gt_bboxes", "mask_gt"))
    coef = torch.from_numpy(z["mask_coef"]).permute(0, 2, 1).contiguous()
    args = (logits.sigmoid(), pred_grid * stride, anc * stride, gl, gb, mg, coef, torch.from_numpy(z["protos"]), gm, 0.25, p)
    r1 = seg_tal.assign(*args)
    r2 = seg_tal.assign(*args, chunk_pixels=1)  # one anchor per chunk
    assert torch.equal(r1.pair_inter, r2.pair_inter) and torch.equal(r1.tal.mask_pos, r2.tal.mask_pos)


def test_per_gt_seg_sums_to_the_total():
    cfg, z = load_case("v8_separate_near")
    res, a, loss = run_case(cfg, z, gt_masks_of_case(cfg, z))
    per_gt = loss.seg_per_gt(a.target_gt_idx, a.fg_mask, a.mask_pos.shape[1])
    assert_close_f32(per_gt.sum(), loss.raw_seg, LOSS)
    assert (per_gt[~torch.from_numpy(z["mask_gt"])[..., 0].bool()] == 0).all()


def test_e2e_total_of_both_branches():
    """YOLO26's E2ELoss: 0.8 x one-to-many + 0.2 x one-to-one (each the sum of its items x batch size)."""
    (c1, z1), (c2, z2) = load_case("y26_reg1_o2m_near"), load_case("y26_reg1_o2o_near")
    l1 = run_case(c1, z1, gt_masks_of_case(c1, z1))[2]
    l2 = run_case(c2, z2, gt_masks_of_case(c2, z2))[2]
    w1, w2 = e2e_weights(0)
    got = w1 * l1.total(2) + w2 * l2.total(2)
    want = w1 * 2 * z1["loss_items"].astype(np.float64).sum() + w2 * 2 * z2["loss_items"].astype(np.float64).sum()
    assert_close_f32(got, np.float32(want), LOSS)
    assert l2.n_fg < l1.n_fg  # topk 7 / topk2 1: one positive per GT at most
    assert int(l2.n_fg) <= int(z2["mask_gt"].sum())


def test_e2e_weights():
    assert e2e_weights(0) == pytest.approx((0.8, 0.2))
    assert e2e_weights(99, 100) == pytest.approx((0.1, 0.9))


# ------------------------------------------------------------------------------------------------ synthetic heads
def _toy():
    levels = [torch.zeros(1, 64 + 2, 40, 40), torch.zeros(1, 66, 20, 20), torch.zeros(1, 66, 10, 10)]
    heads = from_levels(levels, 16, "toy")
    lv = levels_for(list(heads.grids), (8, 16, 32))
    anc, stride = make_anchors(lv)
    poly = np.array([[60, 60], [250, 80], [200, 260], [70, 220]], np.float32)
    gm = torch.from_numpy(polygon_masks((320, 320), [poly], 4).astype(bool))[None]  # (1, 1, 80, 80)
    gb = torch.tensor([[[60.0, 60.0, 250.0, 260.0]]])
    return heads, anc * stride, gm, gb


def test_synthetic_seg_heads_shapes_and_seed():
    heads, anc, gm, gb = _toy()
    a = synthetic_seg_randn(heads, (80, 80), seed=3)
    b = synthetic_seg_randn(heads, (80, 80), seed=3)
    assert a["mask_coef"].shape == (1, 32, 2100) and a["protos"].shape == (1, 32, 80, 80)
    assert torch.equal(a["protos"], b["protos"])
    checked = check_seg_extra(a, heads, (80, 80), "x.npz")
    assert set(checked) == {"mask_coef", "protos"}


def test_trained_seg_heads_predict_masks_near_the_gt():
    heads, anc, gm, gb = _toy()
    owners = anchor_owners(anc, gb, torch.ones(1, 1, dtype=torch.bool))
    ex = synthetic_seg_trained(heads, gm, owners, seed=1)
    inside = (owners[0] == 0).nonzero().squeeze(1)
    pm = seg_tal.predicted_masks(ex["mask_coef"][0, :, inside].T, ex["protos"][0], gb[0].expand(len(inside), 4) / 4)
    inter = (pm & gm[0, 0]).flatten(1).sum(1).float()
    union = (pm | gm[0, 0]).flatten(1).sum(1).float()
    assert float((inter / union).mean()) > 0.9


def test_seg_extra_errors_name_the_problem():
    heads, *_ = _toy()
    with pytest.raises(InputError, match="missing \\['protos'\\]"):
        check_seg_extra({"mask_coef": torch.zeros(1, 32, 2100)}, heads, (80, 80), "h.npz")
    with pytest.raises(InputError, match="'mask_coef' has shape \\(1, 32, 99\\)"):
        check_seg_extra({"mask_coef": torch.zeros(1, 32, 99), "protos": torch.zeros(1, 32, 80, 80)}, heads, None, "h.npz")
    with pytest.raises(InputError, match="'protos' are \\(40, 40\\) pixels"):
        check_seg_extra({"mask_coef": torch.zeros(1, 32, 2100), "protos": torch.zeros(1, 32, 40, 40)}, heads, (80, 80), "h")


# ------------------------------------------------------------------------------------------------ live / edge cases
def random_seg_batch(seed, batch=2, imgsz=320, per_image=(25, 0), nm=16, nc=5):
    """Random GT polygons (an image may have none), predictions near the anchors, random mask heads."""
    rng = np.random.default_rng(seed)
    lv = levels_for([(imgsz // s, imgsz // s) for s in (8, 16, 32)], (8, 16, 32))
    anc, stride = make_anchors(lv)
    anc = anc * stride
    a, m, mh = anc.shape[0], max(per_image), imgsz // 4
    gb = torch.zeros(batch, m, 4)
    gl = torch.zeros(batch, m, 1)
    mg = torch.zeros(batch, m, 1)
    gm = torch.zeros(batch, m, mh, mh, dtype=torch.bool)
    for i, n in enumerate(per_image):
        polys = []
        for g in range(n):
            side = float(rng.uniform(6, imgsz * 0.6))
            c = rng.uniform(side / 2, imgsz - side / 2, 2)
            ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
            p = np.stack([c[0] + side / 2 * np.cos(ang), c[1] + side / 2 * np.sin(ang)], 1).clip(0, imgsz)
            polys.append(p.astype(np.float32))
            gb[i, g] = torch.tensor([*p.min(0), *p.max(0)])
            gl[i, g, 0] = float(rng.integers(0, nc))
            mg[i, g, 0] = 1
        if n:
            gm[i, :n] = torch.from_numpy(polygon_masks((imgsz, imgsz), polys, 4).astype(bool))
    t = lambda *s: torch.from_numpy(rng.normal(0, 1, s).astype(np.float32))  # noqa: E731
    scores = torch.from_numpy(rng.uniform(0, 0.5, (batch, a, nc)).astype(np.float32))
    half = torch.from_numpy(np.exp(rng.normal(np.log(20), 0.7, (batch, a, 2))).astype(np.float32))
    boxes = torch.cat((anc - half, anc + half), -1)
    return dict(pd_scores=scores, pd_bboxes=boxes, anc=anc, gt_labels=gl, gt_bboxes=gb, mask_gt=mg,
                pd_coef=t(batch, a, nm), proto=t(batch, nm, mh, mh), gt_masks=gm, nc=nc)


@pytest.mark.parametrize("seed", [101, 202])
def test_seg_assigner_matches_ultralytics_live(seed):
    ut = pytest.importorskip("ultralytics.utils.tal")
    z = random_seg_batch(seed)
    ref = ut.SegTaskAlignedAssigner(topk=10, num_classes=z["nc"], alpha=0.5, beta=6.0, stride=[8, 16, 32])
    b = z["pd_scores"].shape[0]
    out = ref(z["pd_scores"], z["pd_bboxes"], z["anc"], z["gt_labels"], z["gt_bboxes"], z["mask_gt"],
              pd_coef=z["pd_coef"], mask_scale=torch.full((b, 1), 0.25), proto=z["proto"], gt_masks=z["gt_masks"])
    p = tal.TALParams(num_classes=z["nc"], topk=10)
    r = seg_tal.assign(z["pd_scores"], z["pd_bboxes"], z["anc"], z["gt_labels"], z["gt_bboxes"], z["mask_gt"],
                       z["pd_coef"], z["proto"], z["gt_masks"], 0.25, p)
    np.testing.assert_array_equal(r.tal.fg_mask.numpy(), out[3].numpy())
    np.testing.assert_array_equal(r.tal.target_gt_idx[r.tal.fg_mask].numpy(), out[4][out[3]].numpy())
    assert_close_f32(r.tal.target_scores, out[2], SCORE, "target_scores")
    assert not r.tal.fg_mask[1].any()  # the image without GTs


def test_seg_assigner_without_any_gt():
    z = random_seg_batch(5, per_image=(0, 0))
    p = tal.TALParams(num_classes=z["nc"], topk=10)
    r = seg_tal.assign(z["pd_scores"], z["pd_bboxes"], z["anc"], z["gt_labels"], z["gt_bboxes"], z["mask_gt"],
                       z["pd_coef"], z["proto"], z["gt_masks"], 0.25, p)
    assert r.pair_image.numel() == 0 and not r.tal.fg_mask.any()
    assert (r.tal.target_labels == z["nc"]).all()  # the reference's empty-batch class


def test_candidates_table_of_one_gt():
    z = random_seg_batch(7, per_image=(12, 3))
    p = tal.TALParams(num_classes=z["nc"], topk=10)
    r = seg_tal.assign(z["pd_scores"], z["pd_bboxes"], z["anc"], z["gt_labels"], z["gt_bboxes"], z["mask_gt"],
                       z["pd_coef"], z["proto"], z["gt_masks"], 0.25, p)
    c = r.candidates_of(0, 0)
    k = c.anchors.numel()
    assert k > 0 and all(getattr(c, f).shape == (k,) for f in ("score", "box_iou", "mask_iou", "overlap", "topk"))
    assert int(c.has_mask_iou.sum()) == min(k, r.mask_k)
    assert_close_f32(c.overlap, (c.box_iou + c.mask_iou) / 2, OVERLAP)
    assert (c.mask_iou[~c.has_mask_iou] == 0).all()
    assert int(c.positive.sum()) == int(r.tal.mask_pos[0, 0].sum())
    assert r.candidates_of(1, 5).anchors.numel() == 0  # a padding slot


def test_masks_at_proto_size_by_nearest():
    gm = torch.zeros(1, 2, 8, 8, dtype=torch.bool)
    gm[0, 0, :4, :4] = True
    gm[0, 1, 1, 1] = True  # a single odd pixel: nearest keeps only even rows / columns at 2x
    small = seg_tal.masks_at_proto_size(gm, (4, 4))
    assert small.shape == (1, 2, 4, 4) and small[0, 0, :2, :2].all() and int(small[0, 0].sum()) == 4
    assert not small[0, 1].any()
    assert seg_tal.masks_at_proto_size(gm, (8, 8)) is gm


def test_seg_heads_npz_round_trip(tmp_path):
    heads, *_ = _toy()
    ex = synthetic_seg_randn(heads, (80, 80), seed=0)
    f = tmp_path / "heads.npz"
    np.savez(f, level0=np.zeros((1, 66, 40, 40), np.float32), mask_coef=ex["mask_coef"].numpy(),
             protos=ex["protos"].numpy())
    from yolotal.inputs.seg_heads import read_seg_extra

    got = check_seg_extra(read_seg_extra(f), heads, (80, 80), str(f))
    assert torch.equal(got["protos"], ex["protos"]) and "semantic" not in got
    with pytest.raises(InputError, match="not found"):
        read_seg_extra(tmp_path / "missing.npz")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(-30, 150), st.floats(-30, 110)), min_size=3, max_size=10),
       st.sampled_from([1, 2, 4, 8]))
def test_windowed_mask_equals_whole_image_fill(pts, ratio):
    """polygon_mask fills only the polygon's block window; the result equals filling and shrinking the image."""
    p = np.array(pts, np.float32)
    whole = shrink_mask(fill_polygon((96, 128), p), (96 // ratio, 128 // ratio))
    np.testing.assert_array_equal(polygon_masks((96, 128), [p], ratio)[0], whole)


def test_batch_gt_masks_both_ways():
    from yolotal.core.masks import batch_gt_masks

    z, groups, polys = _corpus()
    first = [p for p, g in zip(polys, z["group"]) if g == 0][:12]
    second = [p for p, g in zip(polys, z["group"]) if g == 1][:5]
    masks, orders = batch_gt_masks([first, second, []], (640, 640), 4, overlap=True)
    assert masks.shape == (3, 12, 160, 160) and not masks[2].any() and orders[2].size == 0
    index, order = polygon_masks_overlap((640, 640), first, 4)
    np.testing.assert_array_equal(orders[0], order)
    np.testing.assert_array_equal(masks[0], index_to_masks(index, 12))
    assert (masks[0].sum(0) <= 1).all()  # disjoint
    sep, so = batch_gt_masks([first, second], (640, 640), 4, overlap=False)
    np.testing.assert_array_equal(so[1], np.arange(5))
    np.testing.assert_array_equal(sep[1, :5], polygon_masks((640, 640), second, 4).astype(bool))
    assert not sep[1, 5:].any()


@pytest.mark.parametrize("n,w", [(1, 16), (1, 40), (2, 16), (7, 24), (300, 16), (64, 200)])
def test_window_logits_have_the_full_products_bits(n, w):
    """The mask logits decoded per window are bit-identical to the reference's full-image matrix product."""
    g = torch.Generator().manual_seed(n * 1000 + w)
    proto = torch.randn(2, 32, 40, 40, generator=g)
    coef = torch.randn(n, 32, generator=g)
    img = torch.randint(0, 2, (n,), generator=g)
    flat = torch.randint(0, 1600, (n, w), generator=g)
    proto_px = proto.flatten(2).transpose(1, 2).reshape(-1, 32)
    got = seg_tal.window_logits(proto_px, coef, img * 1600, flat)
    for i in range(2):  # the reference: per image, all its anchors' coefficients times the whole prototypes
        sel = (img == i).nonzero().squeeze(1)
        if not len(sel):
            continue
        rows = torch.cat((coef[sel], torch.ones(1, 32)))  # >= 2 rows: a single row takes another kernel
        full = torch.bmm(rows[None], proto[i].reshape(1, 32, -1))[0, : len(sel)]
        assert torch.equal(got[sel], full.gather(1, flat[sel]))
    assert got.shape == (n, w)


def test_seg_extra_from_model_output():
    from yolotal.inputs.seg_heads import seg_extra_from_output

    coef, protos, sem = torch.zeros(1, 32, 2100), torch.ones(1, 32, 80, 80), torch.zeros(1, 3, 40, 40)
    v8 = seg_extra_from_output({"boxes": None, "mask_coefficient": coef, "proto": protos})
    assert set(v8) == {"mask_coef", "protos"} and v8["protos"].shape == (1, 32, 80, 80)
    e2e = {"one2many": {"mask_coefficient": coef, "proto": (protos, sem)},
           "one2one": {"mask_coefficient": coef + 1, "proto": (protos, sem)}}
    y26 = seg_extra_from_output(e2e)
    assert set(y26) == {"mask_coef", "protos", "semantic"} and float(y26["mask_coef"].max()) == 0
    assert float(seg_extra_from_output(e2e, "one2one")["mask_coef"].max()) == 1
    with pytest.raises(InputError, match="not a segmentation model"):
        seg_extra_from_output({"boxes": coef, "scores": coef})


def _branch_loss(branch: dict, gt_masks, labels, imgsz, nc, topk, topk2, kind):
    """yolotal's seg loss of one head branch of a real model's training output (a dict of tensors)."""
    from yolotal.core.boxes import xywh_to_xyxy
    from yolotal.inputs.heads import heads_from_object
    from yolotal.inputs.seg_heads import seg_extra_from_output

    reg_max = branch["boxes"].shape[1] // 4
    heads = heads_from_object({k: branch[k].detach() for k in ("boxes", "scores")} | {"feats": branch["feats"]},
                              "model", reg_max, nc)
    extra = seg_extra_from_output(branch)
    h, w = imgsz
    lv = levels_for(list(heads.grids), (8, 16, 32))
    anc, stride = make_anchors(lv)
    pred_dist = heads.boxes.permute(0, 2, 1).contiguous()
    logits = heads.scores.permute(0, 2, 1).contiguous()
    pred_grid = ltrb_to_xyxy(dfl_distances(pred_dist, reg_max), anc)
    b, m = gt_masks.shape[:2]
    bi = labels[:, 0].long()
    slot = torch.cat([torch.arange(int((bi == i).sum())) for i in range(b)])
    gb, gl, mg = torch.zeros(b, m, 4), torch.zeros(b, m, 1), torch.zeros(b, m, 1)
    gb[bi, slot] = xywh_to_xyxy(labels[:, 2:6] * torch.tensor([w, h, w, h], dtype=torch.float32))
    gl[bi, slot, 0] = labels[:, 1]
    mg[bi, slot, 0] = 1
    p = tal.TALParams(num_classes=nc, topk=topk, topk2=topk2)
    coef = extra["mask_coef"].permute(0, 2, 1).contiguous()
    args = (logits.sigmoid(), pred_grid * stride, anc * stride, gl, gb, mg)
    a = (seg_tal.assign(*args, coef, extra["protos"], gt_masks, extra["protos"].shape[-2] / h, p).tal
         if kind == "26" else tal.assign(*args, p))
    return segmentation_loss(pred_dist, logits, pred_grid, anc, stride, a.fg_mask, a.target_gt_idx, a.target_bboxes,
                             a.target_scores, coef, extra["protos"], gt_masks, (h, w), reg_max, (7.5, 0.5, 1.5),
                             semantic=extra.get("semantic"), gt_cls=gl[..., 0], valid=mg[..., 0].bool())


@pytest.mark.parametrize("yaml,overlap", [("yolo26n-seg.yaml", True), ("yolo11n-seg.yaml", False)])
def test_real_model_heads_match_the_reference_loss_live(yaml, overlap):
    """A -seg model built from its YAML (untrained weights), its training-mode output and the reference's
    criterion (E2ELoss(SegmentLoss26) for YOLO26, v8SegmentationLoss for YOLO11) against yolotal's branches."""
    pytest.importorskip("cv2")
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import make_golden_seg

    torch.manual_seed(0)
    nc, imgsz = 3, (256, 256)
    model = tasks.SegmentationModel(yaml, nc=nc, verbose=False)
    model.args = get_cfg(DEFAULT_CFG, {"overlap_mask": overlap})
    model.train()
    rng = np.random.default_rng(11)
    polys = [make_golden_seg.polygons_for_image(rng, n, *imgsz) for n in (6, 3)]
    clss = [rng.integers(0, nc, len(p)) for p in polys]
    batch, labels = make_golden_seg.trainer_batch(polys, clss, imgsz, overlap)
    preds = model(torch.rand(2, 3, *imgsz))
    crit = model.init_criterion()
    total, items = crit(preds, batch)
    ordered = [[polys[i][j] for j in (polygon_masks_overlap(imgsz, polys[i], 4)[1] if overlap else range(len(polys[i])))]
               for i in range(2)]
    from yolotal.core.masks import batch_gt_masks

    gm, _ = batch_gt_masks(ordered, imgsz, 4, overlap=False if not overlap else True)
    gm = torch.from_numpy(gm)
    lab = torch.from_numpy(labels)
    if "one2many" in preds:  # YOLO26: end-to-end, two branches
        l1 = _branch_loss(preds["one2many"], gm, lab, imgsz, nc, 10, None, "26")
        l2 = _branch_loss(preds["one2one"], gm, lab, imgsz, nc, 7, 1, "26")
        w1, w2 = e2e_weights(0)
        mine_total, mine_items = w1 * l1.total(2) + w2 * l2.total(2), l2.items(1)
    else:
        l1 = _branch_loss(preds, gm, lab, imgsz, nc, 10, None, "v8")
        mine_total, mine_items = l1.total(2), l1.items(16)
    assert list(mine_items) == list(items)
    assert_close_f32(np.array(list(mine_items.values()), np.float32), np.array([float(v) for v in items.values()],
                     np.float32), LOSS, "items")
    assert_close_f32(mine_total.detach(), total.detach().sum(), LOSS, "total")


def _masks_in_label_order(polys_per_image, imgsz, overlap):
    """(b, M, H, W) bool GT masks of polygons already in the trainer's slot order (index image when overlap)."""
    h, w = imgsz
    m = max(len(p) for p in polys_per_image)
    out = torch.zeros(len(polys_per_image), m, h // 4, w // 4, dtype=torch.bool)
    for i, pi in enumerate(polys_per_image):
        masks = polygon_masks((h, w), pi, 4)
        if overlap:
            index = np.zeros((h // 4, w // 4), np.int32)
            for k, mk in enumerate(masks):
                np.maximum(index, mk.astype(np.int32) * (k + 1), out=index)
            masks = index_to_masks(index, len(pi))
        out[i, : len(pi)] = torch.from_numpy(masks.astype(bool))
    return out


@pytest.mark.parametrize("name", MODEL_CASES)
def test_real_model_heads_fixture(name):
    """Stored heads of real -seg models (YOLO26n-seg end-to-end, YOLO11n-seg) and the reference criterion's loss."""
    z = dict(np.load(SEG / f"{name}.npz"))
    cfg = json.loads(str(z.pop("config")))
    imgsz = tuple(cfg["imgsz"])
    lab = torch.from_numpy(z["labels"])
    polys = np.split(z["poly_coords"], np.cumsum(z["poly_counts"])[:-1])
    bi = z["labels"][:, 0].astype(int)
    per_image = [[p for p, j in zip(polys, bi) if j == i] for i in range(int(bi.max()) + 1)]
    gm = _masks_in_label_order(per_image, imgsz, cfg["overlap"])
    feats = [torch.zeros(len(per_image), 1, int(h), int(w)) for h, w in z["grids"]]

    def branch(bn):
        d = {"boxes": torch.from_numpy(z[f"{bn}_boxes"]), "scores": torch.from_numpy(z[f"{bn}_scores"]), "feats": feats,
             "mask_coefficient": torch.from_numpy(z[f"{bn}_mask_coef"])}
        protos = torch.from_numpy(z[f"{bn}_protos"])
        d["proto"] = (protos, torch.from_numpy(z[f"{bn}_semantic"])) if f"{bn}_semantic" in z else protos
        return d

    if cfg["branches"] == ["one2many", "one2one"]:
        l1 = _branch_loss(branch("one2many"), gm, lab, imgsz, cfg["nc"], 10, None, "26")
        l2 = _branch_loss(branch("one2one"), gm, lab, imgsz, cfg["nc"], 7, 1, "26")
        w1, w2 = e2e_weights(0)
        total, items = w1 * l1.total(2) + w2 * l2.total(2), l2.items(cfg["reg_max"])
        assert l1.has_semantic and cfg["reg_max"] == 1
    else:
        l1 = _branch_loss(branch("main"), gm, lab, imgsz, cfg["nc"], 10, None, "v8")
        total, items = l1.total(2), l1.items(cfg["reg_max"])
    assert list(items) == cfg["loss_names"]
    assert_close_f32(np.array(list(items.values()), np.float32), z["loss_items"], LOSS, "items")
    assert_close_f32(total.detach(), z["loss_total"], LOSS, "total")
