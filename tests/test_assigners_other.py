"""The other assigners against their originals (fixtures from yolov5 7.0.14 and yolox 0.3.0, made by
scripts/make_golden_others.py) and against hand-derived small cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yolotal.assigners.yolov5 import anchors_tensor, build_targets

OTHERS = Path(__file__).parent / "fixtures" / "golden" / "others"


@pytest.mark.parametrize("name", sorted(p.stem for p in OTHERS.glob("yolov5_*.npz")))
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


@pytest.mark.parametrize("name", sorted(p.stem for p in OTHERS.glob("simota_*.npz")))
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
