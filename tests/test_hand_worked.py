"""Hand-worked cases that pin rules no fixture reaches: exact ties in the pair assigner (top-k under topk2, the
conflict winner) and scan's tiny-GT rule and h/w handling on a non-square imgsz. Every expected value is
derived in the comments from the rule, not read back from yolotal."""

from __future__ import annotations

import numpy as np
import torch

from yolotal.assigners.tal import TALParams, assign
from yolotal.assigners.tal_sparse import assign_sparse
from yolotal.scanning import geometry, report, scan

# one level, stride 8, an 8 × 8 grid (a 64 px image): anchor i = 8 * row + col at ((col + .5) * 8, (row + .5) * 8)
_ROW, _COL = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
ANCHORS = torch.stack([(_COL.reshape(-1) + 0.5) * 8, (_ROW.reshape(-1) + 0.5) * 8], 1).float()  # (64, 2)
BOX = [4.0, 4.0, 36.0, 36.0]
# centres strictly inside 4 < c < 36: 12, 20, 28 (col/row 1..3; 4 is on the edge, not inside) -> 9 candidates
CANDIDATES = [9, 10, 11, 17, 18, 19, 25, 26, 27]


def tied_inputs(n_gts: int):
    """Every prediction is the GT box itself (CIoU exactly 1) with class score 0.5: every candidate of every GT
    has t = 0.5^0.5 * 1^6, an exact tie."""
    gt = torch.tensor([[BOX] * n_gts])  # (1, M, 4)
    scores = torch.full((1, 64, 1), 0.5)
    pred = torch.tensor(BOX).expand(1, 64, 4).clone()
    return scores, pred, ANCHORS, torch.zeros(1, n_gts, 1), gt, torch.ones(1, n_gts, 1)


def test_pair_assigner_topk2_on_exact_ties_keeps_what_the_reference_keeps():
    p = TALParams(num_classes=1, topk=10, topk2=3, profile="ultralytics", stride_val=8.0)  # 32 px sides: not enlarged
    s = assign_sparse(*tied_inputs(1), p)
    d = assign(*tied_inputs(1), p)
    # topk 10 >= 9 candidates: all 9 picked; topk2 3 among 9 equal t: the reference keeps what torch.topk returns
    # over its (A,) row of t at the 9 surviving positives, 0 elsewhere -- and so does the pair assigner
    assert s.pair_topk.nonzero().squeeze(1).tolist() == list(range(9))
    row = torch.zeros(64)
    row[CANDIDATES] = 0.5**0.5
    want = sorted(torch.topk(row, 3).indices.tolist())
    assert s.fg_mask[0].nonzero().squeeze(1).tolist() == want == d.fg_mask[0].nonzero().squeeze(1).tolist()
    assert torch.equal(s.target_scores[0, want, 0], torch.ones(3))  # t / max t * max u = 1
    assert torch.equal(s.target_scores, d.target_scores)


def test_pair_assigner_topk_keeps_every_candidate_when_there_are_fewer_than_topk():
    s = assign_sparse(*tied_inputs(1), TALParams(num_classes=1, topk=10, profile="classic"))
    assert s.fg_mask[0].nonzero().squeeze(1).tolist() == CANDIDATES


def test_conflict_on_equal_overlap_goes_to_the_lowest_gt_index_in_both_assigners():
    """Two identical GTs claim the same 9 anchors with CIoU exactly 1 each: the reference resolves a claimed
    anchor with overlaps.argmax over GTs, which returns the first maximum, GT slot 0. Slot 1 ends empty."""
    for profile in ("classic", "ultralytics"):
        p = TALParams(num_classes=1, topk=10, profile=profile, stride_val=8.0)
        s = assign_sparse(*tied_inputs(2), p)
        d = assign(*tied_inputs(2), p)
        for r in (s, d):
            assert r.fg_mask[0].nonzero().squeeze(1).tolist() == CANDIDATES
            assert r.target_gt_idx[0, CANDIDATES].tolist() == [0] * 9
            assert r.pos_align_metrics[0, 1].item() == 0.0  # GT 1 kept no positive
        assert s.multi[0].nonzero().squeeze(1).tolist() == CANDIDATES == d.mask_multi[0].nonzero().squeeze(1).tolist()
    # three copies: still slot 0, not the last or a middle one
    s = assign_sparse(*tied_inputs(3), TALParams(num_classes=1, topk=10, profile="classic"))
    assert s.target_gt_idx[0, CANDIDATES].tolist() == [0] * 9


# ------------------------------------------------------------------------------------------------ scan
IMGSZ = (320, 640)  # (h, w): a normalised x scales by 640, a normalised y by 320


def test_scan_geometry_on_a_non_square_imgsz_by_hand():
    rows = np.array([
        [0, 0.5, 0.5, 0.1, 0.1],  # 64 px wide, 32 px tall: [288, 144, 352, 176]
        [1, 0.25, 0.75, 0.05, 0.2],  # 32 px wide, 64 px tall: [144, 208, 176, 272]
    ], np.float32)
    geo = geometry(rows, IMGSZ, (8, 16, 32), 16)
    np.testing.assert_array_equal(geo.box_px, [[288, 144, 352, 176], [144, 208, 176, 272]])
    # grid: stride 8 -> 80 cols × 40 rows, 16 -> 40 × 20, 32 -> 20 × 10. Centres (i + .5) s strictly inside:
    # GT 0, s 8: x in (36, 44) cells -> i = 36..43 (8), y in (18, 22) -> 18..21 (4): 32
    #       s 16: x (18, 22) -> 4, y (9, 11) -> 9, 10 (2): 8;  s 32: x (9, 11) -> 2, y (4.5, 5.5) -> none: 0
    # GT 1, s 8: x (18, 22) -> 4, y (26, 34) -> 8: 32;  s 16: x (9, 11) -> 2, y (13, 17) -> 4: 8
    #       s 32: x (4.5, 5.5) -> none: 0
    assert geo.cand_classic.tolist() == [[32, 8, 0], [32, 8, 0]]
    assert geo.cand_ultra.tolist() == [[32, 8, 0], [32, 8, 0]]  # no side < stride_val 16: nothing enlarged
    # at the bottom-right corner: cx 0.95 is x 608 (not 304): [592, 296, 624, 312]; grid 80 wide, so
    # s 8: x (74, 78) -> 74..77 (4) and y (37, 39) -> 37, 38 (2): 8 — a 40-column grid would hold none
    geo = geometry(np.array([[0, 0.95, 0.95, 0.05, 0.05]], np.float32), IMGSZ, (8, 16, 32), 16)
    np.testing.assert_array_equal(geo.box_px, [[592, 296, 624, 312]])
    # s 16: x (37, 39) -> 37, 38 (2) but y (18.5, 19.5) holds no centre i + .5: 0;  s 32: y (9.25, 9.75): 0
    assert geo.cand_classic[0].tolist() == [8, 0, 0]


def test_scan_tiny_is_the_shorter_side_under_the_smallest_stride(tmp_path):
    # on IMGSZ (h 320, w 640): w px = 640 * wn, h px = 320 * hn
    (tmp_path / "a.txt").write_text(
        "0 0.5 0.5 0.009375 0.125\n"  # 6 × 40 px: shorter side 6 < 8 -> tiny (the longer side 40 is not)
        "0 0.3 0.3 0.015625 0.0625\n"  # 10 × 20 px: 10 >= 8 -> not tiny (10 < 32, the largest stride, would be)
        "0 0.7 0.7 0.0125 0.025\n"  # 8 × 8 px: not tiny (not strictly shorter than 8)
    )
    res = scan(tmp_path, IMGSZ, (8, 16, 32), 16, nc=1)
    np.testing.assert_allclose(res.geo.box_px[:, 2] - res.geo.box_px[:, 0], [6, 10, 8], rtol=1e-5)
    np.testing.assert_allclose(res.geo.box_px[:, 3] - res.geo.box_px[:, 1], [40, 20, 8], rtol=1e-5)
    assert res.geo.tiny.tolist() == [True, False, False]
    doc = report(res)
    assert doc["flag_counts"]["tiny"] == 1
    (tiny,) = [x for x in doc["flagged"] if "tiny" in x["flags"]]
    assert tiny["line"] == 1 and tiny["smaller_than_strides"] == [8, 16, 32]  # its shorter side, 6 px (not 40)
