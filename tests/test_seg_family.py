"""The seg families (seg, seg26, seg26-o2o) through the CLI on samples/seg, against ultralytics 8.4.190.

Fixture: tests/fixtures/golden/segfam/sample.npz (scripts/make_golden_segfam.py: ultralytics builds the trainer's
batch from the sample's pictures and polygons with its own LetterBox + Format, and runs v8SegmentationLoss /
SegmentLoss26 on the heads yolotal exported). Live checks against ultralytics run where it imports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tolerances import LOSS, SCORE, assert_close_f32

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "seg"
LABELS = SAMPLE / "labels"
DATA = SAMPLE / "seg.yaml"
FIX = ROOT / "tests" / "fixtures" / "golden" / "segfam" / "sample.npz"
FAMILIES = ("seg", "seg26", "seg26-o2o")


def fixture():
    z = dict(np.load(FIX))
    return json.loads(str(z.pop("meta"))), z


def run_cli(cli, *args):
    code, out, err = cli(*map(str, args))
    assert code == 0, err
    return out, err


def cli_args():
    return fixture()[0]["cli"]


# ------------------------------------------------------------------------------------------------ golden
@pytest.mark.parametrize("fam", FAMILIES)
def test_cli_targets_masks_and_loss_match_reference(cli, tmp_path, fam):
    """GT masks, GT slot order, positives and loss items of `yolotal loss --export` equal ultralytics' on the
    trainer's own batch of the same pictures and polygons."""
    meta, z = fixture()
    out, _ = run_cli(cli, "loss", LABELS, "--assigner", fam, *meta["cli"], "--export", tmp_path / "x.npz")
    x = np.load(tmp_path / "x.npz")
    key = fam.replace("-", "_")
    # GT masks: the trainer's index images (overlap_mask) -> one mask per slot
    b, m = x["gt_labels"].shape[:2]
    ref_masks = z["masks"][:, None] == np.arange(1, m + 1)[None, :, None, None]
    np.testing.assert_array_equal(x["gt_masks"], ref_masks)
    # slots in the trainer's order: classes and boxes of the batch (by mask area, largest first)
    bi = z["batch_idx"].astype(int)
    for i in range(b):
        n = int((bi == i).sum())
        np.testing.assert_array_equal(x["gt_labels"][i, :n, 0], z["cls"][bi == i, 0])
        xywh = z["bboxes"][bi == i] * 256
        ref = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        np.testing.assert_allclose(x["gt_bboxes"][i, :n], ref, atol=1e-3)
    np.testing.assert_array_equal(x["fg_mask"], z[f"{key}_fg_mask"])
    fg = x["fg_mask"]
    np.testing.assert_array_equal(x["target_gt_idx"][fg], z[f"{key}_target_gt_idx"][fg])
    assert_close_f32(torch.from_numpy(x["target_scores"]), z[f"{key}_target_scores"], SCORE, "target_scores")
    mine = np.array([x[k] for k in ("loss_box", "loss_seg", "loss_cls", "loss_dfl", "loss_sem")], np.float32)
    assert_close_f32(mine, z[f"{key}_items"], LOSS, "loss items")
    if f"{key}_assigner_gt_masks" in z:  # the masks SegTaskAlignedAssigner got
        bits = np.unpackbits(z[f"{key}_assigner_gt_masks"])[: x["gt_masks"].size].reshape(x["gt_masks"].shape)
        np.testing.assert_array_equal(x["gt_masks"], bits.astype(bool))
    # the printed logged items are these numbers
    logged = re.search(r"logged: (.*)", out).group(1)
    printed = dict(re.findall(r"(\w+_loss) (\S+)", logged))
    assert list(printed) == meta["loss_names"]
    for k, v in zip(meta["loss_names"], z[f"{key}_items"]):
        assert float(printed[k]) == pytest.approx(float(v), rel=1e-4, abs=1e-6)


def test_fixture_decisions_are_not_near_ties():
    """Each GT's k-th and (k+1)-th alignment metric in the fixture runs are apart (no CPU rounding can flip them)."""
    from yolotal import inspect

    for fam in FAMILIES:
        run = inspect(LABELS, assigner=fam, nc=3, imgsz=256, synthetic="trained", seed=0)
        k = run.config.assigner.topk
        am = run["align_metric"]
        valid = run["mask_gt"][..., 0].bool()
        top = am.topk(k + 1, dim=-1).values[valid]
        kth, nxt = top[:, k - 1], top[:, k]
        live = nxt > 1e-12
        gap = ((kth - nxt) / kth)[live]
        assert gap.numel() == 0 or float(gap.min()) > 1e-4, fam


def test_pure_module_numbers_equal_the_trace():
    """The CLI's trace is the pure modules' output (seg_tal.assign on the trace's own inputs)."""
    from yolotal import inspect
    from yolotal.assigners import seg_tal
    from yolotal.assigners.tal_family import tal_params

    run = inspect(LABELS, assigner="seg26", nc=3, imgsz=256, synthetic="trained", seed=0)
    t = run.trace
    r = seg_tal.assign(t["pred_scores"], t["pred_bboxes"], t["anchor_points"] * t["stride_tensor"], t["gt_labels"],
                       t["gt_bboxes"], t["mask_gt"], t["mask_coef"], t["protos"], t["gt_masks"], 0.25,
                       tal_params(t.config, 3))
    assert torch.equal(r.tal.fg_mask, t["fg_mask"]) and torch.equal(r.pair_mask_iou, t["pair_mask_iou"])
    assert torch.equal(r.tal.align_metric, t["align_metric"])


# ------------------------------------------------------------------------------------------------ views
def test_assign_view_shows_mask_ious_per_candidate(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out, _ = run_cli(cli, "assign", LABELS, "--assigner", "seg26", *cli_args())
    assert "Mask-aware task-aligned assignment" in out
    assert re.search(r"GT 0: \d+ candidates, 30 with a mask IoU", out)
    assert "box u" in out and "mask" in out and "more candidates not shown" in out
    assert "Per-GT summary · image 0 (field)" in out
    # a candidate without a mask IoU is shown as — and its overlap is half its box CIoU
    from yolotal import inspect
    from yolotal.assigners.seg_family import SegView

    run = inspect(LABELS, assigner="seg26", nc=3, imgsz=256, synthetic="trained", seed=0)
    c = SegView(run.trace).candidates_of(0, 0)
    assert int(c.has_mask_iou.sum()) == 30
    np.testing.assert_allclose(c.overlap[~c.has_mask_iou].numpy(), c.box_iou[~c.has_mask_iou].numpy() / 2, rtol=1e-6)
    for line in out.splitlines():
        assert len(line) <= 80 or line.startswith("note:"), line


def test_v8_assign_view_is_the_detection_tal_plus_masks(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out, _ = run_cli(cli, "assign", LABELS, "--assigner", "seg", *cli_args())
    assert "Task-aligned assignment" in out and "GT masks · image 1 · street" in out
    assert "overlap_mask on" in out


def test_slots_follow_mask_area_and_origins_follow_slots():
    """With overlap_mask the GT slots are by mask area, largest first; gt_order and each slot's file:line follow."""
    from yolotal import inspect

    run = inspect(LABELS, assigner="seg", nc=3, imgsz=256, synthetic="trained", seed=0)
    t = run.trace
    for i in range(2):
        n = t.n_gts(i)
        order = t["gt_order"][i, :n].tolist()
        assert sorted(order) == list(range(n)) and order != list(range(n))  # the sample is reordered
        assert [ln for _, ln in t.gt_origin[i]] == [o + 1 for o in order]  # one row per line in the sample
    cfg = ROOT / "configs" / "default.yaml"
    del cfg


def test_overlap_mask_off_keeps_label_order(tmp_path):
    from yolotal import inspect

    c = tmp_path / "c.yaml"
    c.write_text("overlap_mask: false\n")
    run = inspect(LABELS, config=c, assigner="seg", nc=3, imgsz=256, synthetic="trained", seed=0)
    t = run.trace
    assert t["gt_order"][1, :4].tolist() == [0, 1, 2, 3]
    gm = t["gt_masks"][1, :4]
    assert bool((gm[0] & gm[1]).any())  # street's blob and star overlap: separate masks keep both
    c.write_text("overlap_mask: 3\n")
    from yolotal.errors import InputError

    with pytest.raises(InputError, match="overlap_mask: expected true or false"):
        inspect(LABELS, config=c, assigner="seg", nc=3, imgsz=256)


def test_loss_per_image_and_per_gt_add_up(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out, _ = run_cli(cli, "loss", LABELS, "--assigner", "seg26", *cli_args(), "--export", tmp_path / "x.npz")
    x = np.load(tmp_path / "x.npz")
    assert "Segmentation loss (SegmentLoss26)" in out and "Per GT · image 1" in out
    n_fg = int(x["n_fg"])
    assert n_fg == int(x["fg_mask"].sum())
    np.testing.assert_allclose(x["seg_per_anchor"].sum() / n_fg, x["raw_seg"], rtol=1e-5)
    np.testing.assert_allclose(x["seg_per_gt"].sum(), x["raw_seg"], rtol=1e-5)
    np.testing.assert_allclose(x["loss_seg"], 7.5 * x["raw_seg"], rtol=1e-6)
    for line in out.splitlines():
        assert len(line) <= 80 or line.startswith("note:"), line


def test_walk_shows_the_seg_stages(cli):
    out, _ = run_cli(cli, "walk", LABELS, "--assigner", "seg26", *cli_args())
    steps = ["6a. GT masks", "6b. Candidates", "6c. Mask IoU", "6d. Metric", "6e. Top-k", "7. Targets", "8. Loss"]
    at = [out.index(s) for s in steps]
    assert at == sorted(at)


def test_export_json_meta(cli, tmp_path):
    run_cli(cli, "assign", LABELS, "--assigner", "seg26-o2o", *cli_args(), "--export", tmp_path / "x.json")
    doc = json.loads((tmp_path / "x.json").read_text())
    meta, t = doc["meta"], doc["tensors"]
    assert meta["assigner"] == "seg26-o2o" and meta["params"]["topk"] == 7 and meta["params"]["topk2"] == 1
    assert meta["params"]["overlap_mask"] is True and meta["loss"]["name"] == "SegmentLoss26"
    assert t["gt_masks"]["shape"] == [2, 4, 64, 64] and t["gt_masks"]["dtype"] == "bool"
    for k in ("mask_coef", "protos", "pair_mask_iou", "box_overlaps", "gt_order"):
        assert k in t


def test_png_draws_masks(cli, tmp_path):
    from PIL import Image

    run_cli(cli, "assign", LABELS, "--assigner", "seg26", *cli_args(), "--png", tmp_path / "a.png")
    run_cli(cli, "assign", LABELS, "--assigner", "tal", "--nc", "3", "--imgsz", "256", "--synthetic", "trained",
            "--png", tmp_path / "b.png")
    a, b = np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape == b.shape and (a != b).any()  # the masks (and legend) are drawn


def test_synthetic_seg_heads_are_seeded():
    from yolotal import inspect

    a = inspect(LABELS, assigner="seg26", nc=3, imgsz=256, synthetic="randn", seed=3)
    b = inspect(LABELS, assigner="seg26", nc=3, imgsz=256, synthetic="randn", seed=3)
    c = inspect(LABELS, assigner="seg26", nc=3, imgsz=256, synthetic="randn", seed=4)
    assert torch.equal(a["protos"], b["protos"]) and not torch.equal(a["protos"], c["protos"])
    assert a["mask_coef"].shape == (2, 1344, 32) and a["protos"].shape == (2, 32, 64, 64)


def test_scan_task_segment(cli, tmp_path):
    out, _ = run_cli(cli, "scan", DATA, "--task", "segment", "--imgsz", "256", "--report", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    seg = doc["segment"]
    assert seg["all"]["gts"] == 8 and set(seg["by_class"]) == {"blob", "star", "sliver"}
    assert 0 < seg["all"]["mean_fill"] < 1 and sum(seg["fill_histogram"].values()) == 8
    assert "Polygon fill by class" in out and "sparse_polygon" in doc["flag_counts"]
    out2, _ = run_cli(cli, "scan", DATA, "--imgsz", "256", "--report", tmp_path / "d.json")
    assert "segment" not in json.loads((tmp_path / "d.json").read_text())


def test_polygon_fill_by_hand():
    from yolotal.scanning import polygon_fill

    tri = np.array([[0.1, 0.1], [0.5, 0.1], [0.1, 0.5]], np.float32)
    rows = np.array([[0, 0.3, 0.3, 0.4, 0.4]], np.float32)
    assert polygon_fill([tri], rows)[0] == pytest.approx(0.5, rel=1e-5)


# ------------------------------------------------------------------------------------------------ bad input
def test_heads_without_mask_channels_exit_2(cli, tmp_path):
    h = tmp_path / "h.npz"
    np.savez(h, **{f"level{i}": np.zeros((2, 64 + 3, 256 // s, 256 // s), np.float32)
                   for i, s in enumerate((8, 16, 32))})
    code, _, err = cli("assign", LABELS, "--assigner", "seg26", "--heads", h, "--imgsz", "256")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{h}: segmentation heads need 'mask_coef' and 'protos'" in err


def test_heads_with_wrong_mask_shapes_exit_2(cli, tmp_path):
    h = tmp_path / "h.npz"
    np.savez(h, **{f"level{i}": np.zeros((2, 64 + 3, 256 // s, 256 // s), np.float32)
                   for i, s in enumerate((8, 16, 32))}, mask_coef=np.zeros((2, 32, 100), np.float32),
             protos=np.zeros((2, 32, 64, 64), np.float32))
    code, _, err = cli("assign", LABELS, "--assigner", "seg", "--heads", h, "--imgsz", "256")
    assert code == 2 and "'mask_coef' has shape (2, 32, 100), expected (b, nm, A) = (2, nm, 1344)" in err


def test_box_only_labels_exit_2(cli, write):
    f = write("boxes/a.txt", "0 0.5 0.5 0.2 0.2\n")
    code, _, err = cli("assign", f, "--assigner", "seg26", "--nc", "3", "--imgsz", "256")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{f}:1: a box row in a segment task" in err


def test_polygon_of_two_points_exit_2(cli, write):
    f = write("two/a.txt", "0 0.1 0.1 0.5 0.5\n0 0.1 0.1 0.5 0.1 0.3 0.4\n")
    code, _, err = cli("assign", f, "--assigner", "seg", "--nc", "3", "--imgsz", "256")
    assert code == 2 and str(f) in err


# ------------------------------------------------------------------------------------------------ --model
@pytest.mark.parametrize("model, assigner, family", [
    ("yolo11n-seg.yaml", None, "seg"),
    ("yolo26n-seg.yaml", None, "seg26"),
    ("yolo26n-seg.yaml", "seg26-o2o", "seg26-o2o"),
])
def test_model_heads_default_family_and_replay(cli, tmp_path, model, assigner, family):
    """--model: the head class picks the family (Segment -> seg, Segment26 -> seg26); --save-heads keeps the mask
    coefficients, prototypes and the family, and replays to an identical export."""
    pytest.importorskip("ultralytics")
    extra = ["--assigner", assigner] if assigner else []
    out, _ = run_cli(cli, "loss", DATA, "--model", model, "--imgsz", "256", *extra, "--save-heads",
                     tmp_path / "h.npz", "--export", tmp_path / "a.npz")
    saved = np.load(tmp_path / "h.npz")
    assert str(saved["assigner"]) == family and saved["protos"].shape == (2, 32, 64, 64)
    loss_name = "v8SegmentationLoss" if family == "seg" else "SegmentLoss26"
    assert f"Segmentation loss ({loss_name})" in out
    if "26" in model:
        assert ("one2one branch" if assigner else "one2many branch") in out
    run_cli(cli, "loss", DATA, "--heads", tmp_path / "h.npz", "--export", tmp_path / "b.npz")
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    # one branch each (with --save-heads the end-to-end view of both branches is not built)
    assert "e2e_weighted" not in b.files
    assert sorted(k for k in a.files if not k.startswith("e2e_")) == sorted(b.files)
    for k in b.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("model, assigner, kind, topk, topk2", [
    ("yolo11n-seg.yaml", "seg", "v8", 10, None),
    ("yolo26n-seg.yaml", "seg26", "26", 10, None),
    ("yolo26n-seg.yaml", "seg26-o2o", "26", 7, 1),
])
def test_model_heads_match_the_reference_loss(cli, tmp_path, model, assigner, kind, topk, topk2):
    """A -seg model's heads (its branch) through ultralytics' v8SegmentationLoss / SegmentLoss26 on the trainer's
    batch of the sample: the same positives and loss items."""
    pytest.importorskip("ultralytics")
    pytest.importorskip("cv2")
    import importlib.util

    spec = importlib.util.spec_from_file_location("mk", ROOT / "scripts" / "make_golden_segfam.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    run_cli(cli, "loss", DATA, "--model", model, "--assigner", assigner, "--imgsz", "256", "--export",
            tmp_path / "a.npz")
    ex = dict(np.load(tmp_path / "a.npz"))
    ref = mk.reference_loss(kind, topk, topk2, ex, mk.reference_batch())
    np.testing.assert_array_equal(ex["fg_mask"], ref["fg_mask"])
    mine = np.array([ex[k] for k in ("loss_box", "loss_seg", "loss_cls", "loss_dfl", "loss_sem")], np.float32)
    assert_close_f32(mine, ref["items"], LOSS, "items")


def test_seg_model_with_detect_assigner_exit_2(cli):
    pytest.importorskip("ultralytics")
    code, _, err = cli("assign", DATA, "--model", "yolo11n-seg.yaml", "--assigner", "tal", "--imgsz", "256")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "yolo11n-seg.yaml: this is a segment model but the assigner tal is for detect" in err


def test_detect_model_with_seg_assigner_exit_2(cli):
    pytest.importorskip("ultralytics")
    code, _, err = cli("assign", DATA, "--model", "yolo11n.yaml", "--assigner", "seg", "--imgsz", "256")
    assert code == 2 and "this is a detect model but the assigner seg is for segment" in err


def test_default_family_by_head_class():
    from yolotal.assigners import registry

    assert registry.for_task("segment", head_class="Segment") == "seg"
    assert registry.for_task("segment", head_class="Segment26") == "seg26"
    assert registry.for_task("segment", "one2one", head_class="Segment26") == "seg26-o2o"
    assert registry.for_task("detect", head_class="Detect") == "tal"


def test_end_to_end_branches_match_the_reference(cli, tmp_path):
    """loss --model yolo26n-seg: both branches' items and the E2ELoss weighting (0.8 / 0.2 at epoch 0) equal
    SegmentLoss26 on each branch's heads."""
    pytest.importorskip("ultralytics")
    pytest.importorskip("cv2")
    import importlib.util

    spec = importlib.util.spec_from_file_location("mk", ROOT / "scripts" / "make_golden_segfam.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    out, _ = run_cli(cli, "loss", DATA, "--model", "yolo26n-seg.yaml", "--imgsz", "256", "--export", tmp_path / "m.npz")
    run_cli(cli, "loss", DATA, "--model", "yolo26n-seg.yaml", "--imgsz", "256", "--assigner", "seg26-o2o", "--export",
            tmp_path / "o.npz")
    m, o = dict(np.load(tmp_path / "m.npz")), dict(np.load(tmp_path / "o.npz"))
    batch = mk.reference_batch()
    ref_m = mk.reference_loss("26", 10, None, m, batch)["items"]
    ref_o = mk.reference_loss("26", 7, 1, o, batch)["items"]
    assert_close_f32(m["e2e_o2m_items"], ref_m, LOSS, "one2many items")
    assert_close_f32(m["e2e_o2o_items"], ref_o, LOSS, "one2one items")
    np.testing.assert_allclose(m["e2e_weights"], [0.8, 0.2], rtol=1e-12)
    assert_close_f32(m["e2e_weighted"], 0.8 * ref_m + 0.2 * ref_o, LOSS, "weighted")
    assert "End-to-end (E2ELoss) at epoch 0 of 100" in out
    code, _, err = cli("loss", DATA, "--model", "yolo26n-seg.yaml", "--imgsz", "256", "--epoch", "100")
    assert code == 2 and "--epoch 100: the schedule has epochs 0..99" in err


def test_profiles_of_the_seg_families():
    """seg follows the detection TAL's release profiles (a YOLOv8/YOLO11-seg checkpoint's own with auto); seg26 is
    an 8.4 assigner."""
    from yolotal import inspect
    from yolotal.errors import InputError

    run = inspect(LABELS, assigner="seg", profile="classic", nc=3, imgsz=256, synthetic="trained")
    assert run.config.assigner.profile == "classic" and "cand_bboxes" in run
    with pytest.raises(InputError, match="the seg26 assigner has profiles v8.4.0, ultralytics"):
        inspect(LABELS, assigner="seg26", profile="classic", nc=3, imgsz=256)


def test_seg_over_the_dense_budget_runs_on_pairs(cli):
    """seg (the detection TAL) over --budget-mb assigns on candidate pairs; its views still show masks and loss."""
    args = ["--assigner", "seg", "--nc", "3", "--imgsz", "1280", "--synthetic", "trained", "--budget-mb", "1"]
    out, _ = run_cli(cli, "walk", LABELS, *args)
    assert "6b. Assignment on candidate pairs" in out and "8. Loss (v8SegmentationLoss" in out
    out, _ = run_cli(cli, "assign", LABELS, *args)
    assert "GT masks · image 1 · street" in out
