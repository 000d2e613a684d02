"""The other assigners against their originals (fixtures from yolov5 7.0.14 and yolox 0.3.0, made by
scripts/make_golden_others.py) and against hand-derived small cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tolerances import LOSS, PIXELS, SCORE, assert_close_f32

from yolotal.assigners.yolov5 import anchors_tensor, build_targets

OTHERS = Path(__file__).parent / "fixtures" / "golden" / "others"
# named, not globbed: a missing fixture fails its test instead of silently dropping it
YOLOV5_CASES = ["yolov5_empty", "yolov5_mixed", "yolov5_rect_edge", "yolov5_tiny_huge"]
SIMOTA_CASES = ["simota_crowded", "simota_mixed", "simota_tiny"]


def test_every_fixture_is_named_and_present():
    assert sorted(p.stem for p in OTHERS.glob("*.npz")) == sorted(YOLOV5_CASES + SIMOTA_CASES)


@pytest.mark.parametrize("name", YOLOV5_CASES)
def test_yolov5_matches_build_targets(name):
    z = np.load(OTHERS / f"{name}.npz")
    (h, w), strides = z["imgsz"].tolist(), tuple(z["strides"].tolist())
    levels = build_targets(torch.from_numpy(z["labels"]), [(h // s, w // s) for s in strides], strides,
                           anchors_tensor(tuple(map(tuple, z["anchors"].tolist()))))
    for i, lv in enumerate(levels):
        np.testing.assert_array_equal(lv.image.numpy(), z[f"l{i}_image"])
        np.testing.assert_array_equal(lv.anchor.numpy(), z[f"l{i}_anchor"])
        np.testing.assert_array_equal(lv.gy.numpy(), z[f"l{i}_gy"])
        np.testing.assert_array_equal(lv.gx.numpy(), z[f"l{i}_gx"])
        np.testing.assert_array_equal(lv.tbox.numpy(), z[f"l{i}_tbox"])
        np.testing.assert_array_equal(lv.anchors[lv.anchor].numpy(), z[f"l{i}_anch"])
        np.testing.assert_array_equal(z["labels"][lv.label.numpy(), 1].astype(np.int64), z[f"l{i}_cls"])


def test_yolov5_by_hand():
    # one GT at 320 px: centre (100, 60) px, 40x30 px. P3 (stride 8): grid xy (12.5, 7.5), wh (5, 3.75)
    labels = torch.tensor([[0, 0, 100 / 320, 60 / 320, 40 / 320, 30 / 320]])
    lv = build_targets(labels, [(40, 40), (20, 20), (10, 10)], (8, 16, 32), anchors_tensor(
        ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))))[0]
    # anchors / 8 = (1.25, 1.625), (2, 3.75), (4.125, 2.875); ratios max(r, 1/r) = 4, 2.5, 1.304
    torch.testing.assert_close(lv.ratio[:, 0], torch.tensor([4.0, 2.5, 1.30434787]))
    assert lv.match[:, 0].tolist() == [False, True, True]  # 4.0 is not < 4.0
    # frac (0.5, 0.5): neither x nor y offset is < 0.5 on the low side; on the high side gxi = (27.5, 32.5): 0.5
    assert lv.near.tolist() == [[True, False, False, False, False]] * 2
    assert list(zip(lv.anchor.tolist(), lv.gy.tolist(), lv.gx.tolist())) == [(1, 7, 12), (2, 7, 12)]
    # shift the centre to frac (0.3, 0.7): left and down neighbours join
    labels = torch.tensor([[0, 0, (12.3 * 8) / 320, (7.7 * 8) / 320, 40 / 320, 30 / 320]])
    lv = build_targets(labels, [(40, 40), (20, 20), (10, 10)], (8, 16, 32), anchors_tensor(
        ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))))[0]
    cells = sorted(set(zip(lv.gy.tolist(), lv.gx.tolist())))
    assert cells == [(7, 11), (7, 12), (8, 12)]


def simota_inputs(z, bi):
    from yolotal.core.anchors import levels_for, make_anchors

    (h, w), strides, nc = z["imgsz"].tolist(), tuple(z["strides"].tolist()), int(z["nc"])
    levels = levels_for([(h // s, w // s) for s in strides], strides)
    pts, st = make_anchors(levels)
    out = torch.from_numpy(z["decoded"][bi])
    rows = z["labels"][z["labels"][:, 0] == bi]
    gt = torch.from_numpy(rows[:, 2:6] * np.array([w, h, w, h], np.float32))
    return gt, torch.from_numpy(rows[:, 1]), out[:, :4], out[:, 5:], out[:, 4:5], pts - 0.5, st, nc


@pytest.mark.parametrize("name", SIMOTA_CASES)
def test_simota_matches_yolox_03(name):
    from yolotal.assigners.simota import assign_image

    z = np.load(OTHERS / f"{name}.npz")
    for bi in range(z["labels"][:, 0].max().astype(int) + 1 if len(z["labels"]) else 0):
        gt, cls, pred, cl, ob, cells, st, nc = simota_inputs(z, bi)
        if not len(gt):
            assert not z[f"img{bi}_fg"].any()
            continue
        r = assign_image(gt, cls, pred, cl, ob, cells, st, nc, profile="yolox-0.3")
        np.testing.assert_array_equal(r.fg.numpy(), z[f"img{bi}_fg"])
        np.testing.assert_array_equal(r.matched_gt[r.fg].numpy(), z[f"img{bi}_gt"])
        np.testing.assert_array_equal(r.matched_iou[r.fg].numpy(), z[f"img{bi}_iou"])


def test_simota_yolox_profile_by_hand():
    """Current YOLOX: only anchors within 1.5 strides of the GT centre; the rest of the rules as 0.3."""
    from yolotal.assigners.simota import assign_image, pair_iou_cxcywh
    from yolotal.core.anchors import levels_for, make_anchors

    levels = levels_for([(8, 8), (4, 4), (2, 2)], (8, 16, 32))
    pts, st = make_anchors(levels)
    centre = pts * st
    gt = torch.tensor([[30.0, 30.0, 20.0, 20.0]])
    # predictions: every anchor predicts a 20x20 box at its own centre; class 0 certain-ish
    pred = torch.cat((centre, torch.full((84, 2), 20.0)), 1)
    cls, obj = torch.full((84, 2), -4.0), torch.full((84, 1), 4.0)
    cls[:, 0] = 4.0
    r = assign_image(gt, torch.tensor([0.0]), pred, cls, obj, pts - 0.5, st, 2, profile="yolox")
    d = (centre - gt[:, :2]).abs().max(1).values  # chebyshev distance of anchor centre to GT centre
    expected_cand = d < 1.5 * st[:, 0]
    assert torch.equal(r.candidates, expected_cand)
    ious = pair_iou_cxcywh(gt, pred[expected_cand])
    k = max(1, int(torch.topk(ious, min(10, ious.shape[1])).values.sum()))
    assert int(r.dynamic_k[0]) == k and int(r.fg.sum()) == k
    # the k positives are the k highest-IoU candidates (all class costs are equal here)
    best = torch.nonzero(expected_cand).flatten()[torch.topk(ious[0], k).indices]
    assert set(torch.nonzero(r.fg).flatten().tolist()) == set(best.tolist())
    # 0.3 also admits anchors inside the box: here the box lies within the 2.5-stride square anyway
    r03 = assign_image(gt, torch.tensor([0.0]), pred, cls, obj, pts - 0.5, st, 2, profile="yolox-0.3")
    assert int(r03.candidates.sum()) > int(r.candidates.sum())


def numpy_atss(centres, strides, level_sizes, box, topk=9):
    """ATSS for one GT from the published rule, in numpy (float64)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    d = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)
    half = 2.5 * strides
    pri = np.stack([centres[:, 0] - half, centres[:, 1] - half, centres[:, 0] + half, centres[:, 1] + half], 1)
    iw = np.clip(np.minimum(pri[:, 2], box[2]) - np.maximum(pri[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(pri[:, 3], box[3]) - np.maximum(pri[:, 1], box[1]), 0, None)
    inter = iw * ih
    iou = inter / ((pri[:, 2] - pri[:, 0]) * (pri[:, 3] - pri[:, 1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter)
    cand, start = [], 0
    for size in level_sizes:
        cand += list(start + np.argsort(d[start : start + size], kind="stable")[: min(topk, size)])
        start += size
    thr = iou[cand].mean() + iou[cand].std(ddof=1)
    inside = (centres[:, 0] > box[0]) & (centres[:, 0] < box[2]) & (centres[:, 1] > box[1]) & (centres[:, 1] < box[3])
    pos = sorted(a for a in cand if iou[a] > thr and inside[a])
    return sorted(int(a) for a in cand), thr, pos


@pytest.mark.parametrize("box", [(13.3, 20.9, 61.7, 52.2), (40.1, 3.3, 47.9, 12.6), (2.2, 5.1, 120.4, 97.7)])
def test_atss_by_hand(box):
    from yolotal.assigners.atss import assign
    from yolotal.core.anchors import levels_for, make_anchors

    levels = levels_for([(16, 16), (8, 8), (4, 4)], (8, 16, 32))
    pts, st = make_anchors(levels)
    centres = (pts * st).numpy().astype(np.float64)
    sizes = [lv.count for lv in levels]
    cand, thr, pos = numpy_atss(centres, st.numpy()[:, 0].astype(np.float64), sizes, np.array(box))
    gt = torch.tensor([[box]], dtype=torch.float32)
    r = assign(pts * st, st, sizes, torch.zeros(1, 1, 1), gt, torch.ones(1, 1, 1), torch.zeros(1, 336, 4), 2)
    assert sorted(torch.nonzero(r.is_candidate[0, 0]).flatten().tolist()) == cand
    assert float(r.threshold[0, 0]) == pytest.approx(thr, rel=1e-5)
    assert torch.nonzero(r.mask_pos[0, 0]).flatten().tolist() == pos
    assert torch.nonzero(r.fg_mask[0]).flatten().tolist() == pos


def test_atss_conflict_goes_to_the_larger_prior_iou():
    from yolotal.assigners.atss import assign
    from yolotal.core.anchors import levels_for, make_anchors

    levels = levels_for([(16, 16), (8, 8), (4, 4)], (8, 16, 32))
    pts, st = make_anchors(levels)
    gts = torch.tensor([[[20.5, 20.5, 60.2, 61.1], [18.3, 22.7, 58.9, 57.2]]])
    r = assign(pts * st, st, [lv.count for lv in levels], torch.tensor([[[0.0], [1.0]]]), gts, torch.ones(1, 2, 1),
               torch.zeros(1, 336, 4), 2)
    both = r.is_pos[0, 0] & r.in_gt[0, 0] & r.is_pos[0, 1] & r.in_gt[0, 1]
    assert both.any()
    for a in torch.nonzero(both).flatten().tolist():
        assert int(r.target_gt_idx[0, a]) == int(r.overlaps[0, :, a].argmax())
        assert int(r.mask_pos[0, :, a].sum()) == 1


@pytest.mark.parametrize("name", SIMOTA_CASES)
def test_simota_pipeline_with_a_yolox_heads_file(name, tmp_path):
    """The whole path: a YOLOX heads .npz (raw reg/obj/cls), YOLOX's decode, the per-image assignment."""
    from yolotal.config import config_from_dict
    from yolotal.inputs.heads import load_heads
    from yolotal.inputs.labels import labels_from_array
    from yolotal.pipeline import run

    z = np.load(OTHERS / f"{name}.npz")
    (h, w), nc = z["imgsz"].tolist(), int(z["nc"])
    np.savez(tmp_path / "yolox.npz", **{k: z[k] for k in z.files if k.startswith("level")})
    yh = load_heads(tmp_path / "yolox.npz", 16, nc, layout="yolox")
    batch = z["level0"].shape[0]
    cfg = config_from_dict({"imgsz": [h, w], "nc": nc, "assigner": {"name": "simota", "profile": "yolox-0.3"}})
    t = run(cfg, labels_from_array(z["labels"], batch), own_heads=yh)
    assert_close_f32(t["yolox_pred_cxcywh"], z["decoded"][..., :4], PIXELS, "YOLOX decode")
    for bi in range(batch):
        np.testing.assert_array_equal(t["fg_mask"][bi].numpy(), z[f"img{bi}_fg"])
        np.testing.assert_array_equal(t["target_gt_idx"][bi][t["fg_mask"][bi]].numpy(), z[f"img{bi}_gt"])


SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.parametrize("name,expect", [
    ("atss", "IoU mean"), ("simota", "dynamic k ="), ("yolov5", "max(r,1/r)"), ("tal-o2o", "topk 7, topk2 1"),
])
def test_cli_assign_with_each_assigner(cli, name, expect):
    code, out, err = cli("assign", SAMPLES / "coco8" / "labels", "--synthetic", "trained", "-i", "1", "--assigner", name)
    assert code == 0, err
    out = " ".join(out.split())
    assert expect in out and "Per-GT summary" in out


def test_cli_compare_table_and_png(cli, tmp_path):
    code, out, err = cli("compare", SAMPLES / "coco8" / "labels", "--synthetic", "trained", "-i", "1",
                         "-a", "tal,tal-o2o,yolox-0.3,atss,yolov5", "--png", tmp_path / "c.png")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "assigners: tal (ultralytics), tal-o2o (ultralytics), yolox-0.3 (yolox-0.3), atss (yolov6), yolov5 (yolov5)" in flat
    assert "GT 2 (" in flat and "no positive from atss" in flat  # the 6 px GT: ATSS's threshold drops it
    from PIL import Image

    assert Image.open(tmp_path / "c.png").size == (3 * 640 + 4 * 8, 5 * (22 + 640 + 8) + 46 + 8)


def test_cli_compare_agrees_with_single_runs(cli):
    """compare's counts are the single assigners' positives."""
    from yolotal.config import config_from_dict
    from yolotal.inputs.labels import load_labels
    from yolotal.pipeline import run
    from yolotal.render.others import positives_by_gt

    lab = load_labels(SAMPLES / "coco8" / "labels", 80)
    counts = {}
    for name in ("tal", "atss"):
        t = run(config_from_dict({"imgsz": 640, "nc": 80, "assigner": {"name": name}, "heads": {"kind": "trained"}}), lab)
        counts[name] = [len(x) for x in positives_by_gt(t, 1)]
    code, out, _ = cli("compare", SAMPLES / "coco8" / "labels", "--synthetic", "trained", "-i", "1", "-a", "tal,atss",
                       "--nc", "80")
    import re

    rows = [re.findall(r"(\d+) \(", ln) for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == counts["tal"] and [int(r[1]) for r in rows] == counts["atss"]


def test_cli_refusals(cli):
    code, out, err = cli("loss", SAMPLES / "coco8" / "labels", "--assigner", "yolov5", "--synthetic", "trained")
    assert code == 0 and "total (× batch)" in out and "mean CIoU" in out
    code, out, err = cli("loss", SAMPLES / "coco8" / "labels", "--assigner", "simota", "--synthetic", "trained")
    assert code == 0 and "iou_loss (×5)" in out and "num_fg" in out
    code, _, err = cli("assign", SAMPLES / "coco8" / "labels", "--assigner", "fcos")
    # every registered family is named (task families too, after the detection ones)
    assert code == 2 and "assigner.name: expected tal or tal-o2o or simota or atss or yolov5" in err
    assert "got 'fcos'" in err and " or pose or pose26 or pose26-o2o" in err
    code, _, err = cli("assign", SAMPLES / "coco8" / "labels", "--assigner", "simota", "--profile", "classic")
    assert code == 2 and "the simota assigner has profiles yolox or yolox-0.3, got 'classic'" in err
    code, _, err = cli("compare", SAMPLES / "coco8" / "labels", "-a", "tal,tal")
    assert code == 2 and "tal given twice" in err


def test_walk_with_other_assigners(cli):
    code, out, err = cli("walk", "--assigner", "atss")
    assert code == 0, err
    assert "7. Loss (YOLOv8/11: BCE, CIoU, DFL) on these targets" in " ".join(out.split())
    code, out, err = cli("walk", "--assigner", "yolov5")
    assert code == 0 and "7. Loss (YOLOv5: CIoU, objectness, BCE per anchor box)" in " ".join(out.split())


def test_tal_o2o_is_yolo26s_one_to_one_head():
    """`--assigner tal-o2o` defaults to topk 7, topk2 1: the ultralytics 8.4 fixture recorded with those."""
    from test_golden import load_case

    from yolotal.config import config_from_dict
    from yolotal.pipeline import run

    cfg, labels, heads, exp = load_case("ultralytics", "topk2_one2one")
    o2o = config_from_dict({"imgsz": list(cfg.imgsz), "strides": list(cfg.strides), "nc": cfg.nc,
                            "reg_max": cfg.reg_max, "assigner": {"name": "tal-o2o"}})
    assert (o2o.assigner.topk, o2o.assigner.topk2) == (7, 1)
    t = run(o2o, labels, heads)
    np.testing.assert_array_equal(t["fg_mask"].numpy(), exp["fg_mask"])
    np.testing.assert_array_equal(t["target_gt_idx"].numpy(), exp["target_gt_idx"])
    assert_close_f32(t["target_scores"], exp["target_scores"], SCORE, "tal-o2o target_scores")
    per_gt = np.bincount(exp["target_gt_idx"][0][exp["fg_mask"][0]])
    assert per_gt.max() == 1  # one anchor per GT


@pytest.mark.parametrize("name", SIMOTA_CASES)
def test_yolox_loss_matches_get_losses(name, tmp_path):
    from yolotal.config import config_from_dict
    from yolotal.inputs.heads import load_heads
    from yolotal.inputs.labels import labels_from_array
    from yolotal.pipeline import run

    z = np.load(OTHERS / f"{name}.npz")
    (h, w), nc = z["imgsz"].tolist(), int(z["nc"])
    np.savez(tmp_path / "yolox.npz", **{k: z[k] for k in z.files if k.startswith("level")})
    cfg = config_from_dict({"imgsz": [h, w], "nc": nc, "assigner": {"name": "simota", "profile": "yolox-0.3"}})
    t = run(cfg, labels_from_array(z["labels"], z["level0"].shape[0]),
            own_heads=load_heads(tmp_path / "yolox.npz", 16, nc, layout="yolox"))
    got = [float(t[k]) for k in ("yolox_loss", "yolox_loss_iou", "yolox_loss_obj", "yolox_loss_cls")]
    np.testing.assert_allclose(got, z["loss"], **LOSS)


@pytest.mark.parametrize("name", YOLOV5_CASES)
def test_yolov5_loss_matches_compute_loss(name):
    from yolotal.assigners.yolov5 import yolov5_loss

    z = np.load(OTHERS / f"{name}.npz")
    (h, w), strides = z["imgsz"].tolist(), tuple(z["strides"].tolist())
    levels = build_targets(torch.from_numpy(z["labels"]), [(h // s, w // s) for s in strides], strides,
                           anchors_tensor(tuple(map(tuple, z["anchors"].tolist()))))
    b = z["level0"].shape[0]
    preds = [torch.from_numpy(z[f"level{i}"]).view(b, 3, 10, h // s, w // s).permute(0, 1, 3, 4, 2).contiguous()
             for i, s in enumerate(strides)]
    lo = yolov5_loss(preds, levels, 5)
    got = [float(lo.total), float(lo.lbox), float(lo.lobj), float(lo.lcls)]
    np.testing.assert_allclose(got, z["loss"], **LOSS)


@pytest.mark.parametrize("name", ["yolov5_mixed", "yolov5_rect_edge"])
def test_yolov5_loss_through_the_pipeline_from_a_heads_file(name, tmp_path, cli):
    z = np.load(OTHERS / f"{name}.npz")
    (h, w) = z["imgsz"].tolist()
    np.savez(tmp_path / "v5.npz", **{k: z[k] for k in z.files if k.startswith("level")})
    rows = z["labels"]
    (tmp_path / "batch.txt").write_text("".join(" ".join(f"{v:.9g}" for v in r) + "\n" for r in rows.tolist()))
    code, out, err = cli("loss", tmp_path / "batch.txt", "--assigner", "yolov5", "--heads", tmp_path / "v5.npz",
                         "--imgsz", str(h), "--imgsz", str(w), "--nc", "5", "--export", tmp_path / "o.npz")
    assert code == 0, err
    e = np.load(tmp_path / "o.npz")
    got = [float(e[k]) for k in ("v5_loss", "v5_lbox", "v5_lobj", "v5_lcls")]
    assert_close_f32(got, z["loss"], LOSS, "YOLOv5 loss")


def test_compare_with_a_v8_heads_file(cli, tmp_path):
    """compare reads --heads as YOLOv8 heads for every assigner (SimOTA sees the same predictions)."""
    from yolotal.inputs.heads import synthetic_randn

    h = synthetic_randn(4, 80, 16, [(80, 80), (40, 40), (20, 20)], 5)
    levels, start = [], 0
    for gh, gw in [(80, 80), (40, 40), (20, 20)]:
        n = gh * gw
        levels.append(np.concatenate([h.boxes[:, :, start:start + n], h.scores[:, :, start:start + n]], 1)
                      .reshape(4, -1, gh, gw))
        start += n
    np.savez(tmp_path / "v8.npz", **{f"level{i}": x for i, x in enumerate(levels)})
    code, out, err = cli("compare", SAMPLES / "coco8" / "labels", "--heads", tmp_path / "v8.npz", "-a", "tal,simota,yolov5")
    assert code == 0, err
    assert f"heads: {tmp_path / 'v8.npz'}" in " ".join(out.split()).replace("\n", "")


def test_dense_assigners_refuse_inputs_over_the_budget(cli, tmp_path):
    rows = "".join(f"0 {0.1 + 0.8 * k / 300:.4f} 0.5 0.05 0.05\n" for k in range(300))
    p = tmp_path / "many.txt"
    p.write_text(rows)
    for name in ("atss", "simota"):
        code, _, err = cli("assign", p, "--assigner", name, "--budget-mb", "10")
        assert code == 2 and f"{name} builds dense" in err and "over the 10 MB budget" in err
    code, out, err = cli("assign", p, "--assigner", "tal", "--budget-mb", "10")
    assert code == 0 and "assigned on candidate pairs instead" in " ".join(out.split())


def test_simota_class_cost_blocks_give_the_same_costs(monkeypatch):
    import yolotal.assigners.simota as sm

    z = np.load(OTHERS / "simota_crowded.npz")
    args = simota_inputs(z, 0)
    whole = sm.assign_image(*args, profile="yolox-0.3")
    monkeypatch.setattr(sm, "CLS_COST_BLOCK", 1)  # one GT per block
    blocked = sm.assign_image(*args, profile="yolox-0.3")
    assert torch.equal(whole.cls_cost, blocked.cls_cost) and torch.equal(whole.fg, blocked.fg)
