"""Hand-worked ties: which anchor top-k keeps among equal metrics, and which GT wins an anchor on equal overlap.

One level, stride 8, a 32×32 image: anchor centres at 4, 12, 20, 28 px on each axis, flat index = 4·row + col.
Every prediction is given directly in pixels, so metrics can be made exactly equal.
"""

from __future__ import annotations

import torch

from yolotal.assigners.tal import TALParams, assign
from yolotal.assigners.tal_sparse import assign_sparse


def grid():
    ys, xs = torch.meshgrid(torch.arange(4) + 0.5, torch.arange(4) + 0.5, indexing="ij")
    return torch.stack((xs, ys), -1).view(-1, 2) * 8  # (16, 2) px


def both(pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_gt, **kw):
    p = TALParams(num_classes=pd_scores.shape[-1], stride_val=8.0, **kw)
    args = (pd_scores, pd_bboxes, grid(), gt_labels, gt_bboxes, mask_gt)
    return assign(*args, p), assign_sparse(*args, p)


def test_topk2_tie_order_is_torch_topks_on_the_dense_row():
    # GT (6, 2, 26, 14): strictly inside are the centres x in {12, 20}, y in {4, 12}: anchors 1, 2, 5, 6.
    # Every anchor predicts the GT box exactly (CIoU 1) with score 0.5: four equal metrics 0.5^0.5 · 1^6.
    gt = torch.tensor([[[6.0, 2.0, 26.0, 14.0]]])
    boxes = gt.expand(1, 16, 4).clone()
    scores = torch.full((1, 16, 1), 0.5)
    row = torch.zeros(16)
    row[[1, 2, 5, 6]] = 0.5**0.5  # the metric row after conflicts, as the reference hands it to torch.topk
    for k in (1, 2, 3):
        dense, sparse = both(scores, boxes, torch.zeros(1, 1, 1), gt, torch.ones(1, 1, 1), topk=4, topk2=k)
        assert torch.nonzero(dense.mask_pos_topk[0, 0]).flatten().tolist() == [1, 2, 5, 6]
        # which of four equal metrics survive is torch.topk's tie order on the dense (A,) row, and the pair
        # assigner keeps exactly those (on this build: k=1 -> [1], k=3 -> [1, 5, 6])
        want = sorted(torch.topk(row, k).indices.tolist())
        assert torch.nonzero(dense.fg_mask[0]).flatten().tolist() == want, k
        assert torch.nonzero(sparse.fg_mask[0]).flatten().tolist() == want, k
        assert torch.equal(sparse.target_scores, dense.target_scores)


def test_topk2_ranks_by_metric_before_index():
    # the same GT; anchor 6 gets the best score, anchor 5 the second: topk2 = 2 keeps 5 and 6, not 1 and 2
    gt = torch.tensor([[[6.0, 2.0, 26.0, 14.0]]])
    boxes = gt.expand(1, 16, 4).clone()
    scores = torch.full((1, 16, 1), 0.5)
    scores[0, 6, 0], scores[0, 5, 0] = 0.9, 0.7
    dense, sparse = both(scores, boxes, torch.zeros(1, 1, 1), gt, torch.ones(1, 1, 1), topk=4, topk2=2)
    assert torch.nonzero(dense.fg_mask[0]).flatten().tolist() == [5, 6]
    assert torch.nonzero(sparse.fg_mask[0]).flatten().tolist() == [5, 6]


def test_equal_overlap_conflict_goes_to_the_lower_gt_slot():
    # two identical GTs (different classes) claim the same four anchors with the same CIoU: the reference takes
    # the argmax over GTs, i.e. the first maximum, so slot 0 wins every contested anchor and slot 1 gets nothing
    gt = torch.tensor([[[6.0, 2.0, 26.0, 14.0], [6.0, 2.0, 26.0, 14.0]]])
    boxes = gt[:, :1].expand(1, 16, 4).clone()
    scores = torch.full((1, 16, 2), 0.5)
    labels = torch.tensor([[[0.0], [1.0]]])
    dense, sparse = both(scores, boxes, labels, gt, torch.ones(1, 2, 1), topk=4)
    for r in (dense, sparse):
        fg = torch.nonzero(r.fg_mask[0]).flatten().tolist()
        assert fg == [1, 2, 5, 6]
        assert r.target_gt_idx[0, fg].tolist() == [0, 0, 0, 0]
        assert r.target_labels[0, fg].tolist() == [0, 0, 0, 0]
    assert torch.equal(sparse.target_scores, dense.target_scores)


def test_larger_overlap_wins_the_conflict_whatever_the_slot():
    # slot 1 overlaps anchor 6's prediction better than slot 0 does: anchor 6 goes to slot 1
    gt = torch.tensor([[[6.0, 2.0, 26.0, 14.0], [10.0, 6.0, 24.0, 16.0]]])
    boxes = gt[:, :1].expand(1, 16, 4).clone()
    boxes[0, 6] = gt[0, 1]  # anchor 6 (centre 20, 12) predicts GT 1 exactly
    scores = torch.full((1, 16, 2), 0.5)
    dense, sparse = both(scores, boxes, torch.tensor([[[0.0], [1.0]]]), gt, torch.ones(1, 2, 1), topk=4)
    for r in (dense, sparse):
        assert int(r.target_gt_idx[0, 6]) == 1 and bool(r.fg_mask[0, 6])
        assert int(r.target_gt_idx[0, 1]) == 0


def test_topk_tie_order_is_torch_topks_on_the_dense_row():
    # GT (6, 2, 26, 22): candidates 1, 2, 5, 6, 9, 10, all with the same metric; topk k < 6 keeps k of them:
    # which ones is torch.topk's tie order on the reference's dense (A,) metric row, and the pair assigner's too
    gt = torch.tensor([[[6.0, 2.0, 26.0, 22.0]]])
    boxes = gt.expand(1, 16, 4).clone()
    scores = torch.full((1, 16, 1), 0.5)
    row = torch.zeros(16)
    row[[1, 2, 5, 6, 9, 10]] = 0.5**0.5
    for k in (1, 2, 3, 4, 5, 6):
        dense, sparse = both(scores, boxes, torch.zeros(1, 1, 1), gt, torch.ones(1, 1, 1), topk=k)
        want = sorted(torch.topk(row, k).indices.tolist())
        assert torch.nonzero(dense.fg_mask[0]).flatten().tolist() == want, k
        assert torch.nonzero(sparse.fg_mask[0]).flatten().tolist() == want, k
        assert torch.equal(sparse.target_scores, dense.target_scores)
    # a tie that does not straddle the cut changes nothing: anchor 10 best, the other five tied, k = 1
    scores[0, 10, 0] = 0.8
    dense, sparse = both(scores, boxes, torch.zeros(1, 1, 1), gt, torch.ones(1, 1, 1), topk=1)
    assert torch.nonzero(sparse.fg_mask[0]).flatten().tolist() == [10] == torch.nonzero(dense.fg_mask[0]).flatten().tolist()
