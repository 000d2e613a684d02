"""Parity with the reference trainer, for every profile: fixtures made by scripts/make_golden.py and
scripts/make_golden_profiles.py from a real release of each profile's range: ultralytics 8.4.190 (profile
ultralytics), 8.4.127 (v8.4.0), 8.3.200 (classic), 8.0.51 (v8.0.35) and 8.0.6 (v8.0.0). CI compares against
the stored fixtures only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tolerances import DECISION_MARGIN, LOSS, METRIC, OVERLAP, SCORE, assert_close_f32

from yolotal import profiles
from yolotal.config import config_from_dict
from yolotal.inputs.heads import from_levels
from yolotal.inputs.labels import labels_from_array
from yolotal.pipeline import run

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
CASES = sorted((p.parent.name, p.stem) for p in GOLDEN.glob("*/*.npz") if p.parent.name in profiles.NAMES)
PROFILE_CASES = ("tiny_p2", "tiny_p3", "tiny_o2o", "tiny_reg_max1", "crowded_all", "all_gts_winner")




def load_case(profile: str, name: str):
    exp = dict(np.load(GOLDEN / profile / f"{name}.npz"))
    inp = dict(np.load(GOLDEN / "inputs" / f"{name}.npz"))
    meta = json.loads(str(exp.pop("config")))
    cfg = config_from_dict(
        {
            "imgsz": meta["imgsz"], "strides": meta["strides"], "nc": meta["nc"], "reg_max": meta["reg_max"],
            "assigner": {"profile": profile, "topk": meta["topk"], "topk2": meta["topk2"]},
        }
    )
    levels = [torch.from_numpy(inp[f"level{i}"]) for i in range(len(meta["strides"]))]
    heads = from_levels(levels, meta["reg_max"], "golden")
    labels = labels_from_array(inp["labels"], heads.batch)
    return cfg, labels, heads, exp


def test_fixture_set_is_complete():
    counts = {p: len([c for c in CASES if c[0] == p]) for p in profiles.NAMES}
    # 13 + 6 profile cases with topk2 (8.4), 12 + 5 without (no topk2 before 8.4)
    assert counts == {"ultralytics": 19, "v8.4.0": 19, "classic": 17, "v8.0.35": 17, "v8.0.0": 17}
    for profile, name in CASES:  # each recorded by a release of its profile's range
        meta = json.loads(str(np.load(GOLDEN / profile / f"{name}.npz")["config"]))
        assert profiles.profile_for_version(meta["reference"].split()[-1])[0] == profile, (profile, name)


@pytest.mark.parametrize("profile,name", CASES)
def test_matches_reference(profile, name):
    cfg, labels, heads, exp = load_case(profile, name)
    t = run(cfg, labels, heads)
    # padded ground truth
    np.testing.assert_array_equal(t["gt_bboxes"].numpy(), exp["gt_bboxes"])
    np.testing.assert_array_equal(t["gt_labels"].numpy(), exp["gt_labels"])
    np.testing.assert_array_equal(t["mask_gt"].numpy(), exp["mask_gt"])
    # intermediates
    if "mask_in_gts" in exp:
        np.testing.assert_array_equal(t["mask_in_gts"].numpy(), exp["mask_in_gts"])
        assert_close_f32(t["overlaps"], exp["overlaps"], OVERLAP, "overlaps")
        assert_close_f32(t["align_metric"], exp["align_metric"], METRIC, "align_metric")
        np.testing.assert_array_equal(t["mask_pos_topk"].numpy(), exp["mask_pos_topk"])
    # assigner outputs
    np.testing.assert_array_equal(t["fg_mask"].numpy(), exp["fg_mask"])
    np.testing.assert_array_equal(t["target_gt_idx"].numpy(), exp["target_gt_idx"])
    np.testing.assert_array_equal(t["target_labels"].numpy(), exp["target_labels"])
    np.testing.assert_array_equal(t["target_bboxes"].numpy(), exp["target_bboxes"])
    assert_close_f32(t["target_scores"], exp["target_scores"], SCORE, "target_scores")
    # losses (gain-weighted, not multiplied by batch size)
    got = np.array([t["loss_box"].item(), t["loss_cls"].item(), t["loss_dfl"].item()], dtype=np.float32)
    assert_close_f32(got, exp["loss"], LOSS, "loss")


def test_reference_can_give_a_gt_more_than_topk_positives():
    """ultralytics resolves a collision by the largest CIoU among *all* GTs, so a GT can win anchors it never
    picked: in the crowded case one GT ends with 16 positives at topk 10. yolotal reproduces it."""
    cfg, labels, heads, exp = load_case("ultralytics", "crowded_conflicts")
    t = run(cfg, labels, heads)
    per_gt = np.bincount(exp["target_gt_idx"][0][exp["fg_mask"][0]])
    assert per_gt.max() == 16 > cfg.assigner.topk
    won = t["mask_pos"] & ~t["mask_pos_topk"]
    assert int(won.sum()) > 0 and t["mask_multi"][0][won[0].any(0)].all()


def _gap(sorted_desc: np.ndarray, k: int, what: str) -> None:
    """The k-th and the next value of a descending row: equal only as exact zeros, else DECISION_MARGIN apart."""
    if k >= sorted_desc.size:
        return
    a, b = float(sorted_desc[k - 1]), float(sorted_desc[k])
    if a == b:
        assert a == 0, f"{what}: exact tie of {a} at the cut"
    else:
        assert (a - b) / a >= DECISION_MARGIN, f"{what}: {a} vs {b} is a near-tie"


@pytest.mark.parametrize("profile,name", [c for c in CASES if "mask_in_gts" in np.load(GOLDEN / c[0] / f"{c[1]}.npz")])
def test_fixture_decisions_are_not_near_ties(profile, name):
    """The exact mask comparisons above are CPU-independent only if no decision in a fixture rests on values
    closer than the floats can differ between CPUs (tolerances.py). Checked on the fixture's own values."""
    _, _, _, exp = load_case(profile, name)
    meta = json.loads(str(np.load(GOLDEN / profile / f"{name}.npz")["config"]))
    am, ov, mpt, mg = exp["align_metric"], exp["overlaps"], exp["mask_pos_topk"], exp["mask_gt"][..., 0] > 0
    b, m, _ = am.shape
    am = am * exp["mask_in_gts"]  # the top-k runs over candidates (8.0.0-8.0.51 record t at every anchor)
    for i in range(b):
        for j in range(m):
            if mg[i, j]:  # top-k cut of each real GT
                _gap(np.sort(am[i, j])[::-1], meta["topk"], f"{name} image {i} GT {j} top-k")
        multi = mpt[i].sum(0) > 1
        for a in np.nonzero(multi)[0]:  # the winner of a contested anchor: best CIoU vs the next
            _gap(np.sort(ov[i, :, a])[::-1], 1, f"{name} image {i} anchor {a} conflict")
        if meta["topk2"] and meta["topk2"] != meta["topk"]:
            after = mpt[i].copy()
            after[:, multi] = False
            after[ov[i].argmax(0)[multi], np.nonzero(multi)[0]] = True
            for j in range(m):
                if mg[i, j]:
                    _gap(np.sort(am[i, j] * after[j])[::-1], meta["topk2"], f"{name} image {i} GT {j} topk2")
