"""Box, decode and loss maths checked against values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from yolotal.core.anchors import cell_of, levels_for, make_anchors
from yolotal.core.boxes import box_iou_pairs, complete_box_iou_pairs, xywh_to_xyxy, xyxy_to_xywh
from yolotal.core.decode import dfl_distances, ltrb_to_xyxy, xyxy_to_ltrb
from yolotal.loss import dfl_loss


def test_anchor_layout():
    lv = levels_for([(2, 3), (1, 2)], (8, 16))
    pts, st = make_anchors(lv)
    assert pts.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5], [0.5, 0.5], [1.5, 0.5]]
    assert st.flatten().tolist() == [8] * 6 + [16] * 2
    level, x, y = cell_of(lv, 7)
    assert (level.index, x, y) == (1, 1, 0)


def test_box_formats_roundtrip():
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert xyxy_to_xywh(b).tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert xywh_to_xyxy(xyxy_to_xywh(b)).tolist() == b.tolist()


def test_iou_and_ciou_by_hand():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 0.0, 3.0, 2.0])
    assert box_iou_pairs(a, b).item() == pytest.approx(2 / 6, rel=1e-6)
    # same aspect ratio (v = 0): CIoU = IoU - rho^2/c^2 = 1/3 - 1/(3^2 + 2^2)
    assert complete_box_iou_pairs(a, b).item() == pytest.approx(1 / 3 - 1 / 13, rel=1e-5)
    assert complete_box_iou_pairs(a, a).item() == pytest.approx(1.0, abs=1e-6)
    # disjoint boxes of different shape: negative
    assert complete_box_iou_pairs(a, torch.tensor([5.0, 5.0, 6.0, 9.0])).item() < 0


def test_dfl_decode_of_a_peaked_distribution():
    logits = torch.full((1, 1, 4 * 8), -1e4)
    for side, d in enumerate((1, 2, 3, 7)):
        logits[0, 0, side * 8 + d] = 0.0
    ltrb = dfl_distances(logits, 8)
    assert ltrb.tolist() == [[[1.0, 2.0, 3.0, 7.0]]]
    box = ltrb_to_xyxy(ltrb, torch.tensor([[4.5, 4.5]]))
    assert box.tolist() == [[[3.5, 2.5, 7.5, 11.5]]]
    assert xyxy_to_ltrb(torch.tensor([[4.5, 4.5]]), box).tolist() == [[[1.0, 2.0, 3.0, 7.0]]]
    assert xyxy_to_ltrb(torch.tensor([[4.5, 4.5]]), box, limit=5)[0, 0].tolist() == pytest.approx([1, 2, 3, 4.99])


def test_dfl_loss_by_hand():
    # uniform logits over 4 bins: -log p = log 4 for every bin, whatever the split
    loss = dfl_loss(torch.zeros(1, 4, 4), torch.tensor([[0.3, 1.0, 2.5, 2.99]]), 4)
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)
    # a target of 1.25 splits 0.75 / 0.25 between bins 1 and 2
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0]] * 4])
    logp = torch.log_softmax(logits[0, 0], 0)
    want = -(0.75 * logp[1] + 0.25 * logp[2])
    assert dfl_loss(logits, torch.full((1, 4), 1.25), 4).item() == pytest.approx(want.item(), rel=1e-6)


def test_dfl_clamped_exactly_at_reg_max_minus_1_01():
    """The DFL target is clamped to [0, reg_max − 1.01] (float32: 14.99 -> 14.9899997711 for reg_max 16): a side at
    exactly that distance is kept, the next float32 above it is clamped, and so is any negative distance."""
    import numpy as np
    import torch

    from yolotal.loss import detection_loss

    reg_max = 16
    edge = np.float32(reg_max - 1 - 0.01)  # 14.99 in float32
    above = np.nextafter(edge, np.float32(100))
    anchor = np.float32(16.5)  # one anchor at (16.5, 16.5) grid units, stride 1 (grid = px)
    sides = []
    for left in (edge, above, np.nextafter(edge, np.float32(0))):
        x1 = np.float32(anchor - left)  # exact: the difference of these float32 values is representable
        assert np.float32(anchor - x1) == left
        sides.append([x1, np.float32(15.0), np.float32(18.0), np.float32(18.0)])  # t = 1.5, r = b = 1.5
    for (x1, y1, x2, y2), want in zip(sides, ([False] * 4, [True, False, False, False], [False] * 4)):
        tb = torch.tensor([[[x1, y1, x2, y2]]], dtype=torch.float32)
        lo = detection_loss(torch.zeros(1, 1, 4 * reg_max), torch.zeros(1, 1, 1), tb.clone(),
                            torch.tensor([[16.5, 16.5]]), torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool), tb,
                            torch.ones(1, 1, 1), (32, 32), reg_max, (7.5, 0.5, 1.5))
        assert lo.dfl_clamped[0, 0].tolist() == want, (x1, want)
        assert float(lo.dfl_target_ltrb[0, 0, 0]) == float(16.5 - x1)
    # a negative distance (the anchor outside the box on that side) is clamped at 0
    tb = torch.tensor([[[17.0, 15.0, 18.0, 18.0]]])
    lo = detection_loss(torch.zeros(1, 1, 4 * reg_max), torch.zeros(1, 1, 1), tb.clone(), torch.tensor([[16.5, 16.5]]),
                        torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool), tb, torch.ones(1, 1, 1), (32, 32), reg_max,
                        (7.5, 0.5, 1.5))
    assert lo.dfl_clamped[0, 0].tolist() == [True, False, False, False]


def test_dfl_loss_clamps_its_target_like_the_reference():
    """ultralytics' bbox2dist clamps distances to [0, reg_max - 1 - 0.01]: with reg_max 16 a side of 20 bins becomes
    14.99 (float32 14.9899998), split 0.01 / 0.99 between bins 14 and 15; a side of -3 becomes 0 (all on bin 0).
    Logits: 0 everywhere but ln 2 at bin 15, so the softmax denominator is 15 + 2 = 17:
    log p(bin 15) = ln 2 - ln 17, log p(any other bin) = -ln 17."""
    logits = torch.zeros(1, 4, 16)
    logits[..., 15] = math.log(2)
    got = dfl_loss(logits, torch.tensor([[20.0, 20.0, -3.0, -3.0]]), 16).item()
    w_right = float(torch.tensor(14.99) - 14)  # 0.9899998 in float32
    side_far = -((1 - w_right) * -math.log(17) + w_right * (math.log(2) - math.log(17)))  # ln 17 - 0.99 ln 2
    side_neg = math.log(17)  # all weight on bin 0
    assert got == pytest.approx((2 * side_far + 2 * side_neg) / 4, rel=1e-6)
