"""The pose families from the CLI (pose: YOLOv8/YOLO11-pose; pose26 / pose26-o2o: YOLO26-pose) on samples/pose:
their numbers against ultralytics' v8PoseLoss / PoseLoss26 (fixtures by scripts/make_golden_pose_family.py, and live
when ultralytics is installed), the gate/OKS view, --model with the yolo11n/yolo26n pose YAMLs, --save-heads replay,
--png, scan --task pose, and bad input (exit 2, one line naming the file)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from tolerances import LOSS, SCORE, assert_close_f32

from conftest import ROOT

DATA = ROOT / "samples" / "pose" / "data.yaml"
LABELS = ROOT / "samples" / "pose" / "labels"
FIX = ROOT / "tests" / "fixtures" / "pose_family"
CASES = sorted(p.stem for p in FIX.glob("*.npz"))


def fixture(name: str):
    z = dict(np.load(FIX / f"{name}.npz"))
    return json.loads(str(z.pop("config"))), z


def has_ultralytics() -> bool:
    try:
        import ultralytics  # noqa: F401
    except Exception:
        return False
    return True


needs_ultralytics = pytest.mark.skipif(not has_ultralytics(), reason="ultralytics not installed")


def printed_terms(out: str) -> dict[str, float]:
    """The loss table's weighted column: term name -> value as printed."""
    got = {}
    for line in out.splitlines():
        m = re.match(r"[│|]?\s*(box|pose|kobj|cls|dfl|l1|rle)_loss\s*[│|].*?[│|]\s*([-\d.e+]+)\s*[│|]\s*([-\d.e+]+)\s*"
                     r"[│|]\s*([-\d.e+]+)\s*[│|]\s*([-\d.e+]+)", line)
        if m:
            got[f"{m.group(1)}_loss"] = float(m.group(4))
    return got


# ------------------------------------------------------------------------------------------- parity, fixtures
def test_fixture_set():
    assert len(CASES) == 5
    assert {fixture(c)[0]["assigner"] for c in CASES} == {"pose", "pose26", "pose26-o2o"}


@pytest.mark.parametrize("name", CASES)
def test_cli_loss_matches_ultralytics(cli, tmp_path, monkeypatch, name):
    """The CLI's export and printed terms equal ultralytics' loss on the same heads; the assigner's targets exact."""
    meta, z = fixture(name)
    monkeypatch.setenv("COLUMNS", "120")
    out_npz = tmp_path / "run.npz"
    code, out, err = cli("loss", DATA, "--assigner", meta["assigner"], "--synthetic", meta["synthetic"], "--seed",
                         meta["seed"], "--export", out_npz)
    assert code == 0, err
    e = np.load(out_npz)
    assert_close_f32(torch.from_numpy(e["loss_items"]), z["loss_items"], LOSS, f"loss items {meta['names']}")
    np.testing.assert_array_equal(e["fg_mask"], z["fg_mask"])
    fg = z["fg_mask"]
    np.testing.assert_array_equal(e["target_gt_idx"][fg], z["target_gt_idx"][fg])
    assert_close_f32(torch.from_numpy(e["target_scores"]), z["target_scores"], SCORE, "target_scores")
    shown = printed_terms(out)
    assert list(shown) == meta["names"]
    for n, v in zip(meta["names"], z["loss_items"]):
        assert shown[n] == pytest.approx(float(v), rel=1e-5, abs=1e-6), n
    # per-GT contributions add up to the raw terms
    for part, raw in (("pose_per_gt", "raw_pose"), ("kobj_per_gt", "raw_kobj"), ("rle_per_gt", "raw_rle")):
        if raw == "raw_rle" and float(e["raw_rle"]) == 0:
            continue
        assert float(e[part].sum()) == pytest.approx(float(e[raw]), rel=1e-5)


def test_cli_numbers_equal_the_pure_module(tmp_path):
    """The family's stages are run_pose's on the same inputs (masks exact, floats identical)."""
    import yolotal
    from yolotal.assigners.tal import TALParams
    from yolotal.core.keypoints import select_sigmas
    from yolotal.pose import run_pose

    r = yolotal.inspect(DATA, assigner="pose26", synthetic="trained")
    t = r.trace
    cfg = t.config
    raw = t["kpts_raw"]
    b, a, k, d = raw.shape
    kpts = raw.reshape(b, a, k * d).permute(0, 2, 1)
    sig = t["kpts_sigma_raw"].reshape(b, a, 2 * k).permute(0, 2, 1)
    sigmas, _ = select_sigmas((k, d))
    p = TALParams(num_classes=1, topk=10, topk2=None, alpha=0.5, beta=6.0, profile="ultralytics", stride_val=16.0)
    ref = run_pose("26", (k, d), kpts, sig, t["pred_distri"], t["pred_logits"], t["pred_bboxes_grid"],
                   t["anchor_points"], t["stride_tensor"], t["gt_labels"], t["gt_bboxes"], t["mask_gt"], t["gt_kpts"],
                   sigmas, p, cfg.imgsz, cfg.reg_max, with_loss=False)
    g = ref.assignment.gate
    for mine, theirs in ((t["mask_in_gts"], g.mask_in_gts), (t["level_open"], g.level_open),
                         (t["gate_fallback"], g.fallback), (t["mask_pos"], ref.tal.mask_pos),
                         (t["overlaps"], ref.tal.overlaps), (t["align_metric"], ref.tal.align_metric)):
        assert torch.equal(mine, theirs)


# ------------------------------------------------------------------------------------------------ the views
def test_pose26_assign_shows_gate_oks_and_fits_80_columns(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("assign", DATA, "--assigner", "pose26", "--synthetic", "trained", "-i", "1")
    assert code == 0, err
    body = [ln for ln in out.splitlines() if not ln.startswith("note:")]
    assert max(len(ln) for ln in body) <= 80
    # street GT 0: 51.2×72.0 px at 640 -> sqrt(area) 60.7: P5 closed, P3/P4 open, its four P5 anchors gated away
    flat = " ".join(out.split())  # wrapped lines joined
    assert "√area 60.7 px, OKS area 0.53·w·h = 1953.8 px², 17/17 keypoints visible" in flat
    assert "closed: sqrt(area) 60.7 < 64 =" in out
    assert "4 in-box anchors gated away" in out
    assert "(x): the OKS a gated-away anchor would have had" in flat
    # street GT 1 (313 px): only P5 open; GT 2: no visible keypoint -> u is the CIoU
    assert "closed: sqrt(area) 313.5 > 96 =" in out and "open: 313.5 >= 64, 313.5 <= 384" in out
    assert "0/17 keypoints visible; u = CIoU (no visible keypoint)" in flat
    assert "Keypoints per GT · image 1" in out and "no visible keypoint" in out
    assert "Per-GT summary · image 1 (street)" in out


def test_pose_v8_assign_is_the_detection_view_plus_keypoints(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = cli("assign", DATA, "--synthetic", "trained", "--assigner", "pose")
    assert code == 0, err
    assert "Task-aligned assignment" in out and "Keypoints per GT · image 0" in out
    assert "level gate" not in out
    assert "kpt_shape [17, 3] from the dataset YAML" in out


def test_walk_and_export_meta(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    js = tmp_path / "run.json"
    code, out, err = cli("walk", DATA, "--assigner", "pose26", "--synthetic", "trained", "--export", js)
    assert code == 0, err
    for s in ("6. Keypoints", "6a. Level gate", "6b. Overlap u = OKS", "8. Pose loss", "rle_loss"):
        assert s in out
    doc = json.loads(js.read_text())
    meta = doc["meta"]
    assert meta["assigner"] == "pose26" and meta["params"]["kpt_shape"] == [17, 3]
    assert meta["params"]["level_range"] == [2.0, 12.0] and meta["loss"]["name"] == "PoseLoss26"
    assert meta["loss"]["gains"]["rle"] == 1.0
    t = doc["tensors"]
    assert t["gt_kpts"]["shape"] == [2, 3, 17, 3] and t["level_open"]["shape"] == [2, 3, 3]
    assert t["kpts_px"]["shape"] == [2, 8400, 17, 2] and t["loss_items"]["shape"] == [6]


def test_png_draws_keypoints(cli, tmp_path):
    from PIL import Image

    png = tmp_path / "a.png"
    code, out, err = cli("assign", DATA, "--assigner", "pose", "--synthetic", "trained", "-i", "1", "--png", png)
    assert code == 0, err
    img = np.asarray(Image.open(png).convert("RGB"))
    # GT 1's nose (image 1): (0.6 * 640, (0.5 - 0.4 + 0.08 * 0.8) * 480 + 80) px in the first panel, its colour
    from yolotal.render.png import GAP, HEADER, gt_colour

    x, y = int(round(0.6 * 640)) + GAP, int(round((0.1 + 0.064) * 480 + 80)) + HEADER
    patch = img[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3)
    assert any(tuple(px) == gt_colour(1) for px in patch)


# ------------------------------------------------------------------------------------------------ replay, bad input
def test_save_heads_replay_is_identical_and_needs_no_yaml(cli, tmp_path):
    """--save-heads needs --model; here a --heads replay of a saved synthetic run is emulated by writing the
    pose levels and kpt_shape the same way (prepare.write_saved_heads)."""
    import yolotal
    from yolotal.prepare import Geometry, write_saved_heads

    r = yolotal.inspect(DATA, assigner="pose26", synthetic="trained")
    t = r.trace
    from yolotal.inputs.heads import Heads
    from yolotal.loss_pose import init_flow

    ex = {"kpts": t["kpts_raw"].flatten(2).permute(0, 2, 1).contiguous(),
          "kpts_sigma": t["kpts_sigma_raw"].flatten(2).permute(0, 2, 1).contiguous(), "flow": init_flow(0)}
    heads = Heads(t["pred_distri"].permute(0, 2, 1).contiguous(), t["pred_logits"].permute(0, 2, 1).contiguous(),
                  tuple((lv.h, lv.w) for lv in t.levels), "saved", ex)
    saved = tmp_path / "h.npz"
    lbs = [p[1] for p in t.pictures]
    write_saved_heads(saved, heads, np.zeros((2, 3, 640, 640), np.float32),
                      Geometry([p[0] for p in t.pictures], lbs), t.config, None)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert cli("loss", DATA, "--assigner", "pose26", "--synthetic", "trained", "--export", a)[0] == 0
    code, out, err = cli("loss", LABELS, "--heads", saved, "--export", b)  # no YAML: kpt_shape from the file
    assert code == 0, err
    assert "kpt_shape [17, 3] from the saved heads file" in out
    za, zb = np.load(a), np.load(b)
    assert set(za.files) == set(zb.files)
    for k in za.files:
        np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


def test_pose_run_needs_kpt_shape(cli):
    code, out, err = cli("assign", LABELS / "street.txt", "--assigner", "pose")
    assert code == 2
    assert err.strip().splitlines() == [f"error: {LABELS / 'street.txt'}: a pose run needs kpt_shape (dataset YAML)"]


def test_detect_heads_without_keypoint_channels(cli, tmp_path):
    h = tmp_path / "det.npz"
    np.savez(h, **{f"level{i}": np.zeros((2, 65, 640 // s, 640 // s), np.float32) for i, s in enumerate((8, 16, 32))})
    code, out, err = cli("assign", DATA, "--assigner", "pose", "--heads", h, "--nc", "1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(h) in err and "pose head has 65 channels" in err


def test_wrong_keypoint_rows(cli, tmp_path):
    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    import shutil

    shutil.copy(ROOT / "samples" / "pose" / "images" / "street.png", d / "images" / "x.png")
    (d / "labels" / "x.txt").write_text("0 0.5 0.5 0.2 0.2 " + " ".join(["0.5 0.5"] * 17) + "\n")  # D = 2 rows
    (d / "data.yaml").write_text("train: images\nkpt_shape: [17, 3]\nnames: {0: person}\n")
    code, out, err = cli("assign", d / "data.yaml", "--assigner", "pose")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and f"{d / 'labels' / 'x.txt'}:1" in err


def test_bad_kpt_oks_sigmas(cli, tmp_path):
    y = tmp_path / "data.yaml"
    src = DATA.read_text() + "kpt_oks_sigmas: [0.1, 0.2]\n"
    y.write_text(src.replace("train: images", f"train: {DATA.parent / 'images'}"))
    code, out, err = cli("assign", y, "--assigner", "pose")
    assert code == 2 and "'kpt_oks_sigmas' must be 17 positive values" in err and str(y) in err


# ------------------------------------------------------------------------------------------------ --model
@pytest.fixture(scope="module")
def model_runs(tmp_path_factory):
    if not has_ultralytics():
        pytest.skip("ultralytics not installed")
    import yolotal

    tmp = tmp_path_factory.mktemp("models")
    out = {}
    for model in ("yolo11n-pose.yaml", "yolo26n-pose.yaml"):
        saved = tmp / f"{model}.npz"
        out[model] = (yolotal.inspect(DATA, model=model, save_heads=saved), saved)
    return out


@needs_ultralytics
@pytest.mark.parametrize("model,family,gen", [("yolo11n-pose.yaml", "pose", "v8"), ("yolo26n-pose.yaml", "pose26", "26")])
def test_model_picks_its_family_and_matches_ultralytics(model_runs, model, family, gen):
    from pose_reference import reference_items

    run, saved = model_runs[model]
    assert run.config.assigner.name == family
    assert any(f"kpt_shape [17, 3] from the model's {'Pose26' if gen == '26' else 'Pose'} head" in n for n in run.notes)
    if gen == "26":
        assert "kpts_sigma_raw" in run and any("RLE flow: the RealNVP flow of yolo26n-pose.yaml" in n for n in run.notes)
    names, ref = reference_items(run, saved, gen)
    assert_close_f32(run["loss_items"], ref, LOSS, f"{model} loss items {names}")


@needs_ultralytics
def test_model_replay_and_o2o(model_runs, cli, tmp_path):
    from pose_reference import reference_items

    run, saved = model_runs["yolo26n-pose.yaml"]
    b = tmp_path / "b.npz"
    code, out, err = cli("loss", DATA, "--heads", saved, "--export", b)
    assert code == 0, err
    assert "PoseLoss26" in out
    np.testing.assert_array_equal(np.load(b)["loss_items"], run["loss_items"].numpy())
    import yolotal

    o2o_saved = tmp_path / "o2o.npz"
    o2o = yolotal.inspect(DATA, model="yolo26n-pose.yaml", assigner="pose26-o2o", save_heads=o2o_saved)
    assert (o2o.config.assigner.topk, o2o.config.assigner.topk2) == (7, 1)
    _, ref = reference_items(o2o, o2o_saved, "26", 7, 1)
    assert_close_f32(o2o["loss_items"], ref, LOSS, "one2one branch")

    # loss --model on the end-to-end model: both branches and E2ELoss's weights (epoch 0 of ultralytics' 100)
    from pose_reference import reference_e2e

    from yolotal.api import inspect_loss

    e2e = inspect_loss(DATA, model="yolo26n-pose.yaml")
    assert e2e["e2e_weights"].tolist() == pytest.approx([0.8, 0.2])
    weighted, logged = reference_e2e(e2e, saved, o2o_saved)
    assert_close_f32(e2e["e2e_weighted"], weighted, LOSS, "E2ELoss weighted")
    assert_close_f32(e2e["e2e_logged"], logged, LOSS, "E2ELoss logged (one2one)")
    code, out, err = cli("loss", DATA, "--model", "yolo26n-pose.yaml", "--epoch", "99")
    assert code == 0, err
    assert "End-to-end (E2ELoss) at epoch 99 of 100: weighted = 0.1·one2many + 0.9·one2one" in " ".join(out.split())


@needs_ultralytics
@pytest.mark.parametrize("args,msg", [
    (("--assigner", "tal"), "this is a pose model but the assigner tal is for detect"),
    (("--assigner", "pose26"), "its assigner is pose, not pose26"),
])
def test_model_with_the_wrong_assigner(cli, args, msg):
    code, out, err = cli("assign", DATA, "--model", "yolo11n-pose.yaml", *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and msg in err and "yolo11n-pose.yaml" in err


# ------------------------------------------------------------------------------------------------ scan
def test_scan_pose_counts_gts_without_visible_keypoints(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    rep = tmp_path / "r.json"
    code, out, err = cli("scan", DATA, "--task", "pose", "--report", rep)
    assert code == 0, err
    doc = json.loads(rep.read_text())
    kp = doc["keypoints"]
    assert (kp["gts"], kp["no_visible"]) == (5, 1)
    assert kp["by_class"] == {"person": [1, 5]} and kp["by_size"]["32-64"] == [1, 2]
    assert doc["flag_counts"]["no_visible_keypoints"] == 1
    flagged = [f for f in doc["flagged"] if "no_visible_keypoints" in f["flags"]]
    assert [(f["file"].endswith("street.txt"), f["line"]) for f in flagged] == [(True, 3)]
    assert "Keypoints: 1 of 5 GTs without a visible keypoint (20.00%)" in " ".join(out.split())


def test_pt_training_dict_heads(cli, tmp_path):
    """A .pt holding 8.4's training dict (boxes, scores, kpts, kpts_sigma, feats) is read like the model's output."""
    import yolotal

    r = yolotal.inspect(DATA, assigner="pose26", synthetic="trained")
    t = r.trace
    b = t.batch
    feats = [torch.zeros(b, 1, lv.h, lv.w) for lv in t.levels]
    obj = {"boxes": t["pred_distri"].permute(0, 2, 1).contiguous(), "scores": t["pred_logits"].permute(0, 2, 1).contiguous(),
           "kpts": t["kpts_raw"].flatten(2).permute(0, 2, 1).contiguous(),
           "kpts_sigma": t["kpts_sigma_raw"].flatten(2).permute(0, 2, 1).contiguous(), "feats": feats}
    pt = tmp_path / "h.pt"
    torch.save(obj, pt)
    out = tmp_path / "a.npz"
    code, _, err = cli("loss", DATA, "--assigner", "pose26", "--heads", pt, "--export", out)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(out)["loss_items"], r["loss_items"].numpy())  # flow: init_flow(seed 0)
    del obj["kpts"]
    torch.save(obj, pt)
    code, _, err = cli("loss", DATA, "--assigner", "pose26", "--heads", pt)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(pt) in err and "kpts" in err
