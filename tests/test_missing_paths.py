"""Paths that a mutation could once break without any test noticing (issue 16, "Tests that are missing").

* the pair assigner's zero-metric picks: a GT with fewer than topk candidates of t > 0 fills its top-k with
  anchors of t = 0 (torch.topk's tie order on the dense row); when such a pick makes an anchor multiply claimed,
  a third GT with a larger CIoU there takes it, with weight;
* ``mask_topk`` of padding rows, as the reference's top-k selection leaves them;
* the near-zero-weight threshold (0.01) of render/terminal.py's GTFacts and of the health monitor, pinned by
  a GT whose best target score lies between 0.01 and 0.02 and one below 0.01.
"""

from __future__ import annotations

import pytest
import torch

import yolotal.assigners.tal_sparse as tal_sparse
from yolotal.assigners.tal import TALParams, assign, topk_mask
from yolotal.assigners.tal_sparse import assign_sparse

CENTRES = {a: (((a % 4) + 0.5) * 8, ((a // 4) + 0.5) * 8) for a in range(16)}  # 4 x 4 grid, stride 8, 32 px


def grid():
    return torch.tensor([CENTRES[a] for a in range(16)])  # (16, 2) px


def zero_pick_scene():
    """GT X (class 0, slot 0) covers the image and has one anchor of t > 0 (p = 5): its top-4 adds three anchors
    of t = 0, in torch.topk's tie order on its dense row. One of them, q, is also the only candidate of GT Y
    (class 1, slot 1, a 6 px box around q, picked with t > 0), and lies in GT Z (class 2, slot 2, a 20 px box
    around q) whose prediction at q is Z's box exactly (CIoU 1) but with a score of 1e-6: Z does not pick q.
    Returns the assigner inputs, q and the parameters."""
    p, k = 5, 4
    row = torch.zeros(16)
    row[p] = 0.5
    zero_picks = [a for a in torch.topk(row, k).indices.tolist() if a != p]  # as the reference's row gives them
    inner = [a for a in zero_picks if a in (6, 9, 10)]  # anchors with a full 3 x 3 neighbourhood
    if not inner:
        pytest.skip(f"torch.topk's tie order on this build picks {zero_picks}: no inner anchor")
    q = inner[0]
    cx, cy = CENTRES[q]
    x_box = torch.tensor([0.0, 0.0, 32.0, 32.0])
    y_box = torch.tensor([cx - 3, cy - 3, cx + 3, cy + 3])
    z_box = torch.tensor([cx - 10, cy - 10, cx + 10, cy + 10])
    gt = torch.stack((x_box, y_box, z_box)).unsqueeze(0)  # (1, 3, 4)
    labels = torch.tensor([[[0.0], [1.0], [2.0]]])
    scores = torch.zeros(1, 16, 3)
    boxes = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(1, 16, 1)  # far from every GT
    in_z = [a for a, (x, y) in CENTRES.items() if abs(x - cx) < 10 and abs(y - cy) < 10]
    for i, a in enumerate(x for x in in_z if x not in (p, q)):
        boxes[0, a] = z_box
        scores[0, a, 2] = 0.4 + 0.05 * i  # Z's picks: distinct metrics, all far above its metric at q and p
    boxes[0, p] = x_box
    scores[0, p, 0], scores[0, p, 2] = 0.5, 0.1
    boxes[0, q] = z_box
    scores[0, q, 1], scores[0, q, 2] = 0.5, 1e-6  # X's class scores 0 there: t(X, q) = 0
    params = TALParams(num_classes=3, topk=k, profile="classic", stride_val=8.0)
    return (scores, boxes, grid(), labels, gt, torch.ones(1, 3, 1)), q, params


def test_zero_metric_pick_hands_an_anchor_to_a_third_gt():
    inputs, q, p = zero_pick_scene()
    dense = assign(*inputs, p)
    assert bool(dense.mask_pos_topk[0, 0, q]) and float(dense.align_metric[0, 0, q]) == 0.0  # X's zero pick
    assert bool(dense.mask_pos_topk[0, 1, q]) and float(dense.align_metric[0, 1, q]) > 0  # Y's weighted pick
    assert not dense.mask_pos_topk[0, 2, q]  # Z did not pick q ...
    assert int(dense.target_gt_idx[0, q]) == 2 and float(dense.target_scores[0, q].sum()) > 0  # ... and wins it
    sparse = assign_sparse(*inputs, p)
    assert int(sparse.target_gt_idx[0, q]) == 2 and bool(sparse.fg_mask[0, q])
    assert torch.equal(sparse.target_scores, dense.target_scores)
    assert torch.equal(sparse.target_labels[sparse.fg_mask], dense.target_labels[sparse.fg_mask])


def test_without_the_zero_pick_path_the_target_changes(monkeypatch):
    inputs, q, p = zero_pick_scene()
    dense = assign(*inputs, p)
    monkeypatch.setattr(tal_sparse, "_zero_picks_that_matter", lambda seg, *a, **k: torch.zeros_like(seg, dtype=torch.bool))
    broken = assign_sparse(*inputs, p)
    assert int(broken.target_gt_idx[0, q]) == 1  # only Y claims q: Y keeps it, with Y's class
    assert int(broken.target_labels[0, q]) != int(dense.target_labels[0, q])
    assert not torch.equal(broken.target_scores, dense.target_scores)


@pytest.mark.parametrize("k", [1, 2, 10])
def test_mask_topk_of_padding_rows_is_the_references(k):
    """Padding rows point all k picks at anchor 0; the reference drops an anchor counted more than once, so a
    padding row selects nothing, except at topk 1, where its single pick of anchor 0 stands."""
    g = torch.Generator().manual_seed(0)
    metric = torch.rand(2, 3, 40, generator=g)
    metric[1, 1:] = 0  # image 1: one real GT, two padding rows (metrics 0 there, as the reference builds them)
    mask_gt = torch.tensor([[[1.0], [1.0], [1.0]], [[1.0], [0.0], [0.0]]])
    _, mask = topk_mask(metric, mask_gt, k)
    expect_pad = torch.zeros(40, dtype=torch.bool)
    if k == 1:
        expect_pad[0] = True
    assert torch.equal(mask[1, 1], expect_pad) and torch.equal(mask[1, 2], expect_pad)
    assert int(mask[0].sum()) == 3 * k and int(mask[1, 0].sum()) == k  # real rows: k distinct picks each
    try:
        from ultralytics.utils.tal import TaskAlignedAssigner as Ref
    except ImportError:
        return
    ref = Ref(topk=k, num_classes=1).select_topk_candidates(metric, topk_mask=mask_gt.expand(-1, -1, k).bool())
    assert torch.equal(mask, ref.bool())


# ----------------------------------------------------------------------------- the near-zero-weight threshold
def weight_scene():
    """reg_max-1 heads (distances given directly) on a 224 px image, one class, classic profile. GT A (64 px,
    centred on an anchor) is predicted by 8 px squares centred on the anchors: its best CIoU, at its centre
    anchor, and so its best target score (t / max t · max u), is (8/64)^2 = 0.0156. GT B (48 px, also centred on
    an anchor) by 4.6 px squares: (4.6/48)^2 = 0.0092. beta 1 keeps t = s^0.5 · u far above eps (with beta 6,
    u^6 < 1e-10 and eps = 1e-9 would scale the scores down), so a GT's best target score is its best CIoU."""
    from yolotal.config import config_from_dict
    from yolotal.inputs.heads import from_levels
    from yolotal.inputs.labels import labels_from_array

    import numpy as np

    size, strides = 224, (8, 16, 32)
    a_box, a_side = (100.0, 100.0, 64.0), 8.0  # centre x, y, side; pred square side
    b_box, b_side = (164.0, 164.0, 48.0), 4.6
    levels = []
    for s in strides:
        n = size // s
        x = torch.zeros(1, 4 + 1, n, n)
        x[:, 4] = 2.0  # class logit: s = 0.88 everywhere
        for gy in range(n):
            for gx in range(n):
                px, py = (gx + 0.5) * s, (gy + 0.5) * s
                side = b_side if px > 138 and py > 138 else a_side
                x[0, :4, gy, gx] = side / 2 / s  # a square of that side centred on the anchor
        levels.append(x)
    rows = np.array([[0, 0, c[0] / size, c[1] / size, c[2] / size, c[2] / size] for c in (a_box, b_box)], np.float32)
    cfg = config_from_dict({"imgsz": size, "strides": list(strides), "nc": 1, "reg_max": 1,
                            "assigner": {"profile": "classic", "beta": 1.0}})
    heads = from_levels(levels, 1, "weight_scene")
    return cfg, labels_from_array(rows, heads.batch), heads


def test_near_zero_weight_threshold_between_001_and_002():
    from yolotal.pipeline import run
    from yolotal.render.terminal import NEAR_ZERO, gt_facts

    cfg, labels, heads = weight_scene()
    t = run(cfg, labels, heads)
    facts = gt_facts(t, 0)
    a, b = facts
    assert 0.01 < a.best_weight < 0.02 and a.positives > 0, a.best_weight
    assert 0 < b.best_weight < 0.01 and b.positives > 0, b.best_weight
    assert NEAR_ZERO == 0.01
    assert a.flag == "" and a.zero_weight < a.positives  # its best positive is above the threshold
    assert b.flag == "ONLY NEAR-ZERO-WEIGHT POSITIVES"


def test_health_starved_threshold_between_001_and_002():
    from yolotal.health import STARVED_SCORE, HealthAccumulator
    from yolotal.pipeline import run

    cfg, labels, heads = weight_scene()
    t = run(cfg, labels, heads, with_loss=False)
    anc = t["anchor_points"] * t["stride_tensor"]
    inputs = (t["pred_scores"], t["pred_bboxes"], anc, t["gt_labels"], t["gt_bboxes"], t["mask_gt"])
    outputs = (t["target_labels"], t["target_bboxes"], t["target_scores"], t["fg_mask"], t["target_gt_idx"])
    acc = HealthAccumulator()
    acc.update(inputs, outputs)
    row = acc.epoch_row(1)
    assert STARVED_SCORE == 0.01
    assert row["all/gts"] == 2 and row["all/no_pos"] == 0
    assert row["all/starved"] == 1  # B (best score < 0.01), not A (between 0.01 and 0.02)
