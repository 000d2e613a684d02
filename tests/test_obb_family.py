"""The OBB families (obb, obb-o2o) from the CLI on samples/obb, against ultralytics 8.4.190.

Fixtures: tests/fixtures/obb_family (scripts/make_golden_obb_family.py): the sample's train split at imgsz 320
with three sets of heads, and what v8OBBLoss made of them (targets, loss items). Live checks with
yolo11n-obb.yaml / yolo26n-obb.yaml run when ultralytics imports.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tolerances import LOSS, MODEL_LOSS, PROBIOU, ROTATED_DECISION_MARGIN, SCORE, assert_close_f32

from yolotal.assigners.rotated_tal import assign_rotated, gt_candidates
from yolotal.assigners.tal import TALParams
from yolotal.core.anchors import levels_for, make_anchors
from yolotal.core.rotated import decode_obb_heads
from yolotal.inputs.obb_heads import from_obb_levels

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "samples" / "obb" / "dota8-mini.yaml"
FIX = ROOT / "tests" / "fixtures" / "obb_family"
CASES = {"sample_obb": "obb", "sample_obb_o2o": "obb-o2o", "sample_obb_randn": "obb"}
TRAIN = ROOT / "samples" / "obb" / "dota8-mini" / "labels" / "train"


def load(name):
    z = dict(np.load(FIX / f"{name}.npz"))
    return json.loads(str(z.pop("config"))), z


def run_cli(cli, *args):
    code, out, err = cli(*map(str, args))
    assert code == 0, err
    return out, err


def case_args(name, assigner, meta):
    return ["--assigner", assigner, "--imgsz", "320", "--heads", FIX / f"{name}.npz", "--reg-max", meta["reg_max"]]


# ------------------------------------------------------------------------------------------------ golden
@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_targets_and_loss_match_reference(cli, tmp_path, name):
    """loss --export on the sample: GT boxes bit for bit, positives and their GTs exactly, scores and the four
    terms within the tolerances; the printed terms are the exported ones."""
    meta, ref = load(name)
    out, err = run_cli(cli, "loss", DATA, *case_args(name, CASES[name], meta), "--export", tmp_path / "e.npz")
    e = np.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(e["gt_rboxes"], ref["ref_gt_bboxes"])
    np.testing.assert_array_equal(e["gt_labels"], ref["ref_gt_labels"])
    np.testing.assert_array_equal(e["mask_gt"], ref["ref_mask_gt"])
    fg = ref["ref_fg_mask"]
    np.testing.assert_array_equal(e["fg_mask"], fg)
    np.testing.assert_array_equal(e["target_gt_idx"][fg], ref["ref_target_gt_idx"][fg])
    np.testing.assert_array_equal(e["target_labels"][fg], ref["ref_target_labels"][fg])
    np.testing.assert_array_equal(e["target_rboxes"][fg], ref["ref_target_bboxes"][fg])
    assert_close_f32(e["target_scores"], ref["ref_target_scores"], SCORE, "target_scores")
    mine = np.array([e[k] for k in ("loss_box", "loss_cls", "loss_dfl", "loss_angle")])
    assert_close_f32(mine, ref["ref_loss"], LOSS, "box, cls, dfl, angle")
    third = "dfl" if meta["reg_max"] > 1 else "l1"
    for term, key in (("box", "loss_box"), ("cls", "loss_cls"), (third, "loss_dfl"), ("angle", "loss_angle")):
        assert re.search(rf"\n\W*{term}\W.*\s{re.escape(f'{float(e[key]):.6g}')}\s", out), term
    # the row under 2 px is dropped with its file and line, as the trainer drops it
    assert f"{TRAIN / 'P0001.txt'}:6: OBB GT of image 0 is 6.00×1.40 px" in err.replace(str(ROOT) + "/", "") or \
        "P0001.txt:6: OBB GT of image 0 is 6.00×1.40 px" in err
    assert int(e["mask_gt"].sum()) == 10  # 11 rows, one dropped


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_decisions_are_not_near_ties(cli, tmp_path, name):
    """Top-k cuts, conflicts and topk2 cuts of the sample fixtures are clear of the tolerance (exact mask
    comparisons then hold on other CPUs)."""
    meta, _ = load(name)
    run_cli(cli, "assign", DATA, *case_args(name, CASES[name], meta), "--export", tmp_path / "e.npz")
    e = np.load(tmp_path / "e.npz")
    am, ov, mpt, mg = e["align_metric"], e["overlaps"], e["mask_pos_topk"], e["mask_gt"][..., 0] > 0

    def gap(desc, k, what, margin=ROTATED_DECISION_MARGIN):
        if k >= desc.size:
            return
        a, b = float(desc[k - 1]), float(desc[k])
        assert (a == b == 0) or (a != b and (a - b) / a >= margin), f"{what}: {a} vs {b}"

    for i in range(am.shape[0]):
        for j in range(am.shape[1]):
            if mg[i, j]:
                gap(np.sort(am[i, j])[::-1], meta["topk"], f"image {i} GT {j} top-k")
        multi = mpt[i].sum(0) > 1
        for a in np.nonzero(multi)[0]:
            gap(np.sort(ov[i, :, a])[::-1], 1, f"image {i} anchor {a} conflict", 4 * PROBIOU["rtol"])
        if meta["topk2"]:
            for j in range(am.shape[1]):
                if mg[i, j]:
                    gap(np.sort(am[i, j] * e["mask_pos_topk"][i, j])[::-1], meta["topk2"], f"image {i} GT {j} topk2")


def pure_run(name):
    """The pure modules on the fixture's heads and the reference's own padded targets."""
    meta, ref = load(name)
    heads = from_obb_levels([torch.from_numpy(ref[f"level{i}"]) for i in range(3)], meta["reg_max"], name)
    levels = levels_for(list(heads.grids), meta["strides"])
    anc, st = make_anchors(levels)
    _, px, _ = decode_obb_heads(heads, anc, st, meta["reg_max"], meta["encoding"])
    p = TALParams(num_classes=meta["nc"], topk=meta["topk"], topk2=meta["topk2"], alpha=0.5, beta=6.0,
                  stride_val=16.0)
    res = assign_rotated(heads.scores.permute(0, 2, 1).sigmoid(), px, anc * st, torch.from_numpy(ref["ref_gt_labels"]),
                         torch.from_numpy(ref["ref_gt_bboxes"]), torch.from_numpy(ref["ref_mask_gt"]), p)
    return meta, res, levels


def test_assign_view_shows_each_gts_candidates(cli):
    """The assign view lists, per GT, the pure module's gt_candidates rows (s, ProbIoU, t, result), the rotated box
    in degrees, and a per-GT summary; --full shows every candidate."""
    name = "sample_obb"
    meta, res, levels = pure_run(name)
    out, _ = run_cli(cli, "assign", DATA, *case_args(name, "obb", meta), "--full")
    block = out.split("image 1 · P0002")[0]
    g = res.cand_bboxes  # noqa: F841  (candidate boxes: shown for floored GTs)
    for j in range(5):
        rows = gt_candidates(res, 0, j, levels)
        assert f"GT {j}: {len(rows)} candidates, best t first" in block
        for r in rows:
            pat = (rf"\n\s+{r['anchor']}\s+{r['stride']}\s+{r['cell'][0]},{r['cell'][1]}\s+{r['s']:.3g}\s+"
                   rf"{r['u']:.4f}\s+{r['t']:.3g}\s+{re.escape(r['result'])}")
            assert re.search(pat, block), (j, r)
    # GT 3: a 9×4 px vehicle at 60°, its candidate box floored to 16×16
    assert "class 10 · (200.0,220.0) 9.00×4.00 px 60.0° · candidate box 16.0×16.0 px (sides floored)" in out
    assert "Per-GT summary · image 0 (P0001)" in out and "Per-GT summary · image 1 (P0002)" in out


def test_summary_flags_gts_without_candidates(cli):
    """Under the classic profile (no floor) the tiny vehicles hold no anchor centre: flagged with a reason."""
    out, _ = run_cli(cli, "assign", DATA, "--assigner", "obb", "--profile", "classic", "--imgsz", "320",
                     "--synthetic", "trained")
    assert re.search(r"✗ GT 3 \(.*P0001.txt:4\): no candidates — the rotated box 9.00×4.00 px at 60.0° contains no "
                     r"anchor centre", out.replace("\n", " "))
    assert "NO CANDIDATES" in out


def test_loss_per_image_and_per_gt_add_up(cli, tmp_path):
    name = "sample_obb"
    meta, _ = load(name)
    out, _ = run_cli(cli, "loss", DATA, *case_args(name, "obb", meta), "--export", tmp_path / "e.npz")
    e = np.load(tmp_path / "e.npz")
    fg, tgi = e["fg_mask"], e["target_gt_idx"]
    for k in ("box", "dfl", "angle", "cls"):
        assert_close_f32(e[f"{k}_per_anchor"].sum(), e[f"raw_{k}"], LOSS, k)
    assert "Per GT · image 0" in out and "Per GT · image 1" in out
    # image 0's GT 0 row: positives, Σ weight, mean ProbIoU (the loss's, variance floor 0.01)
    sel = fg[0] & (tgi[0] == 0)
    row = (rf"\n\s+0\s+0\s+{int(sel.sum())}\s+{e['target_scores'][0][sel].sum():.4f}\s+"
           rf"{e['loss_probiou'][0][sel].mean():.4f}\s+{e['box_per_anchor'][0][sel].sum():.4g}\s+"
           rf"{e['dfl_per_anchor'][0][sel].sum():.4g}\s+{e['angle_per_anchor'][0][sel].sum():.4g}")
    assert re.search(row, out), row


def test_walk_shows_the_stages_in_order(cli):
    name = "sample_obb_o2o"
    meta, _ = load(name)
    out, _ = run_cli(cli, "walk", DATA, *case_args(name, "obb-o2o", meta))
    steps = ["1. Predictions", "2. Anchor points", "3. Decode", "4. Labels", "5. Assigner inputs",
             "6a. Rotated GTs", "6b. Rotated decode", "6c. Candidates", "6d. Metric", "6e. Top-k and conflicts",
             "7. Targets", "8. Loss (v8OBBLoss: ProbIoU box term, L1, BCE, angle)"]
    pos = [out.find(s) for s in steps]
    assert all(p >= 0 for p in pos), [s for s, p in zip(steps, pos) if p < 0]
    assert pos == sorted(pos)
    assert "topk2 1 keeps that many per GT" in out


def test_export_json_meta_and_task_tensors(cli, tmp_path):
    name = "sample_obb"
    meta, _ = load(name)
    run_cli(cli, "loss", DATA, *case_args(name, "obb", meta), "--export", tmp_path / "e.json")
    doc = json.loads((tmp_path / "e.json").read_text())
    t = doc["tensors"]
    for k, shape in (("gt_rboxes", [2, 5, 5]), ("gt_corners", [2, 5, 4, 2]), ("pred_angle", [2, 2100, 1]),
                     ("pred_rboxes", [2, 2100, 5]), ("cand_rboxes", [2, 5, 5]), ("target_rboxes", [2, 2100, 5]),
                     ("angle_per_anchor", [2, 2100]), ("loss_angle", [])):
        assert t[k]["shape"] == shape, k
    m = doc["meta"]
    assert m["assigner"] == "obb" and m["params"]["topk"] == 10 and m["params"]["stride_val"] == 16.0
    assert m["loss"]["name"] == "v8obb" and m["loss"]["gains"] == {"box": 7.5, "cls": 0.5, "dfl": 1.5, "angle": 1.0}


def test_png_draws_rotated_gts(cli, tmp_path):
    from PIL import Image

    from yolotal import inspect
    from yolotal.render.png import panel_data

    out, _ = run_cli(cli, "assign", DATA, "--assigner", "obb", "--imgsz", "320", "--synthetic", "trained", "--png",
                     tmp_path / "a.png")
    assert "PNG written" in out and Image.open(tmp_path / "a.png").size[0] > 900
    run = inspect(DATA, assigner="obb", imgsz=320, synthetic="trained")
    d = panel_data(run.trace, 0)
    np.testing.assert_array_equal(d.polys, run["gt_corners"][0, :5].numpy())
    assert d.cand_polys.shape == (5, 4, 2) and not np.allclose(d.cand_polys[3], d.polys[3])  # GT 3 floored


def test_synthetic_heads_are_seeded(tmp_path):
    from yolotal import inspect

    a = inspect(DATA, assigner="obb-o2o", imgsz=320, seed=5, reg_max=1)
    b = inspect(DATA, assigner="obb-o2o", imgsz=320, seed=5, reg_max=1)
    c = inspect(DATA, assigner="obb-o2o", imgsz=320, seed=6, reg_max=1)
    assert torch.equal(a["pred_angle"], b["pred_angle"]) and not torch.equal(a["pred_angle"], c["pred_angle"])
    assert a.loss == b.loss and set(a.loss) >= {"loss_box", "loss_cls", "loss_dfl", "loss_angle"}
    # obb-o2o (YOLO26) reads its angle channel as radians: a randn channel is the angle itself
    torch.manual_seed(5)
    first = torch.randn(2, 4 + 15 + 1, 40, 40)[:, -1].reshape(2, -1)
    assert torch.equal(a["pred_angle"][:, :1600, 0], first)


# ------------------------------------------------------------------------------------------------ scan
def test_scan_task_obb(cli, tmp_path):
    """Rotated audit: tiny by the shorter side, dropped under 2 px, candidates counted by the assigner's own
    in-box test (equal to assign's candidate counts under both profiles)."""
    from yolotal import inspect

    out, _ = run_cli(cli, "scan", DATA, "--task", "obb", "--imgsz", "320", "--report", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["gts"] == 14 and doc["flag_counts"]["dropped_under_2px"] == 1
    assert doc["flag_counts"]["tiny"] == 5 and doc["flag_counts"]["starved_classic"] == 4
    assert doc["obb"]["per_class"]["small vehicle"] == {"gts": 5, "tiny": 5, "no_candidate_ultralytics": 0,
                                                       "no_candidate_classic": 4, "dropped_under_2px": 1}
    assert "Rotated GTs per class" in out and "Rotated GTs per size" in out
    flagged = {(Path(x["file"]).name, x["line"]): x for x in doc["flagged"]}
    assert flagged[("P0001.txt", 4)]["rbox_px"] == [200.0, 220.0, 9.0, 4.0, 60.0]
    for profile, key in (("ultralytics", "candidates_ultralytics"), ("classic", "candidates_classic")):
        run = inspect(DATA, assigner="obb", imgsz=320, profile=profile, loss=False)
        counts = run["mask_in_gts"].sum(-1)  # (b, M)
        for i, stem in enumerate(("P0001", "P0002")):
            for j, (f, ln) in enumerate(run.trace.gt_origin[i]):
                if (f"{stem}.txt", ln) in flagged:
                    assert sum(flagged[(f"{stem}.txt", ln)][key]) == int(counts[i, j]), (stem, ln, profile)


# ------------------------------------------------------------------------------------------------ bad input
def test_heads_without_the_angle_channel_exit_2(cli, tmp_path):
    levels = {f"level{i}": np.zeros((2, 4 * 16 + 15, 320 // s, 320 // s), np.float32) for i, s in enumerate((8, 16, 32))}
    np.savez(tmp_path / "det.npz", **levels)
    code, _, err = cli("assign", DATA, "--assigner", "obb", "--imgsz", "320", "--nc", "15", "--heads",
                       tmp_path / "det.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'det.npz'}: OBB head has 79 channels, expected 4*reg_max+nc+1 = 4*16+15+1 = 80" in err
    # without --nc the channels alone cannot tell; the dataset's 15 names can
    code, _, err = cli("assign", DATA, "--assigner", "obb", "--imgsz", "320", "--heads", tmp_path / "det.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'det.npz'}: the heads carry 14 classes but the dataset names 15" in err
    torch.save({"boxes": torch.zeros(2, 64, 2100), "scores": torch.zeros(2, 15, 2100),
                "feats": [torch.zeros(2, 1, 320 // s, 320 // s) for s in (8, 16, 32)]}, tmp_path / "det.pt")
    code, _, err = cli("assign", DATA, "--assigner", "obb", "--imgsz", "320", "--heads", tmp_path / "det.pt")
    assert code == 2 and "det.pt: OBB heads need an 'angle' entry" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, msg", [
    ("0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n1 0.5 0.5 0.2 0.2\n", ":2: a 5-column box row in a file of polygon rows"),
    ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.1 0.3\n", ":1: OBB corners 1, 2 and 3 lie on one line"),
    ("0 0.5 0.5 0.2 0.2\n", ":1:"),
])
def test_wrong_label_rows_exit_2(cli, write, text, msg):
    p = write("lab.txt", text)
    code, _, err = cli("assign", p, "--assigner", "obb", "--nc", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{p}{msg}" in err, err


def test_batch_file_rows_have_no_corners(cli, write):
    p = write("batch.txt", "0 0 0.5 0.5 0.2 0.2\n")
    code, _, err = cli("assign", p, "--assigner", "obb", "--nc", "2")
    assert code == 2 and err.startswith(f"error: {p}:1: ") and len(err.strip().splitlines()) == 1
    # labels read as boxes (no corners) never reach the family silently
    from yolotal.assigners.obb_family import label_rboxes
    from yolotal.errors import InputError
    from yolotal.inputs.labels import load_labels

    lab = load_labels(write("box.txt", "0 0.5 0.5 0.2 0.2\n"), 2)
    with pytest.raises(InputError, match="box.txt:1: OBB rows need four corners"):
        label_rboxes(lab, (320, 320))


# ------------------------------------------------------------------------------------------------ --model
def _reference():
    pytest.importorskip("ultralytics")
    spec = importlib.util.spec_from_file_location("mk", ROOT / "scripts" / "make_golden_obb_family.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    return mk


def reference_loss(mk, levels, reg_max, topk, topk2):
    """ultralytics' v8OBBLoss on saved heads (angle channel in radians) and the sample's labels."""
    from ultralytics.utils import loss as uloss

    lab = mk.letterboxed_labels()
    xywhr = mk.reference_targets(lab)
    b = levels[0].shape[0]
    flat = torch.cat([torch.from_numpy(x).reshape(b, x.shape[1], -1) for x in levels], 2)
    boxes, scores, angle = flat.split((4 * reg_max, 15, 1), 1)
    preds = {"boxes": boxes, "scores": scores, "angle": angle,
             "feats": [torch.zeros(b, 1, x.shape[2], x.shape[3]) for x in levels]}
    batch = {"batch_idx": torch.from_numpy(lab.batch_idx.astype(np.float32)),
             "cls": torch.from_numpy(lab.cls.astype(np.float32)).view(-1, 1), "bboxes": xywhr}
    crit = uloss.v8OBBLoss(mk.model_stub(reg_max), tal_topk=topk, tal_topk2=topk2)
    seen = {}
    orig = crit.assigner.forward

    def spy(*a):
        seen["out"] = orig(*a)
        return seen["out"]

    crit.assigner.forward = spy
    _, items = crit.loss(preds, batch)
    return np.array([float(items[k]) for k in crit.loss_names]), seen["out"][3].numpy()


@pytest.mark.parametrize("model, assigner, topk, topk2", [
    ("yolo11n-obb.yaml", None, 10, None),
    ("yolo26n-obb.yaml", "obb", 10, None),
    ("yolo26n-obb.yaml", "obb-o2o", 7, 1),
])
def test_model_heads_match_reference_and_replay(cli, tmp_path, model, assigner, topk, topk2):
    """--model (the task picks the obb family; YOLO26: its one2many branch, or one2one with obb-o2o): the loss
    equals v8OBBLoss on the same heads; --save-heads replays to an identical export."""
    mk = _reference()
    extra = ["--assigner", assigner] if assigner else []
    out, _ = run_cli(cli, "loss", DATA, "--model", model, "--imgsz", "320", *extra, "--save-heads",
                     tmp_path / "h.npz", "--export", tmp_path / "a.npz")
    a = np.load(tmp_path / "a.npz")
    saved = np.load(tmp_path / "h.npz")
    assert str(saved["assigner"]) == (assigner or "obb") and str(saved["angle_encoding"]) == "radians"
    reg_max = int(saved["reg_max"])
    assert reg_max == (1 if "26" in model else 16)
    levels = [saved[f"level{i}"] for i in range(3)]
    ref_loss, ref_fg = reference_loss(mk, levels, reg_max, topk, topk2)
    np.testing.assert_array_equal(a["fg_mask"], ref_fg)
    mine = np.array([a[k] for k in ("loss_box", "loss_cls", "loss_dfl", "loss_angle")])
    assert_close_f32(mine, ref_loss, MODEL_LOSS, "loss terms")
    assert ("one2one branch" if assigner == "obb-o2o" else "one2many branch" if "26" in model
            else "heads from the model") in out
    # replay: the saved file names its assigner family, so no --assigner is needed
    run_cli(cli, "loss", DATA, "--heads", tmp_path / "h.npz", *extra, "--export", tmp_path / "b.npz")
    b = np.load(tmp_path / "b.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_task_model_with_detect_assigner_exit_2(cli):
    pytest.importorskip("ultralytics")
    code, _, err = cli("assign", DATA, "--model", "yolo11n-obb.yaml", "--assigner", "tal", "--imgsz", "320")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "yolo11n-obb.yaml: this is an obb model but the assigner tal is for detect" in err


@pytest.mark.parametrize("epoch", [0, 61])
def test_yolo26_obb_both_branches_match_e2eloss(cli, epoch):
    """loss --model yolo26n-obb.yaml: the obb branch, plus the e2e stage (the obb-o2o branch's items, the weights
    at the epoch, the weighted and logged items), against ultralytics' E2ELoss(v8OBBLoss) on the same input."""
    import types

    from yolotal.api import inspect_loss
    from yolotal.inputs.pictures import model_input

    mk = _reference()
    from ultralytics.nn.tasks import OBBModel
    from ultralytics.utils.loss import E2ELoss, v8OBBLoss

    run = inspect_loss(DATA, model="yolo26n-obb.yaml", imgsz=320, epoch=epoch)
    t = run.trace
    assert t.config.assigner.name == "obb" and "e2e" in t.stages
    torch.manual_seed(0)
    model = OBBModel("yolo26n-obb.yaml", nc=15, verbose=False).eval()
    model.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, angle=1.0, epochs=100)
    crit = E2ELoss(model, v8OBBLoss)
    crit.updates = epoch - 1
    crit.update()
    lab = t.labels
    images = model_input([p[0] for p in t.pictures], [p[1] for p in t.pictures], (320, 320))
    batch = {"batch_idx": torch.from_numpy(lab.batch_idx).float(), "cls": torch.from_numpy(lab.cls).float()[:, None],
             "bboxes": mk.reference_targets(lab)}
    with torch.no_grad():
        preds = model.forward(torch.from_numpy(images))
        total, items = crit(preds, batch)
        o2m = crit.one2many.loss(crit.one2many.parse_output(preds)["one2many"], batch)
        o2o = crit.one2one.loss(crit.one2one.parse_output(preds)["one2one"], batch)
    np.testing.assert_allclose(t["e2e_weights"].numpy(), [crit.o2m, crit.o2o], rtol=1e-12)
    np.testing.assert_allclose(t["e2e_o2m_items"].numpy(), [float(v) for v in o2m[1].values()], **MODEL_LOSS)
    np.testing.assert_allclose(t["e2e_o2o_items"].numpy(), [float(v) for v in o2o[1].values()], **MODEL_LOSS)
    np.testing.assert_allclose(float(t["e2e_weighted"].sum()) * t.batch, float(total.sum()), **MODEL_LOSS)
    assert list(items) == ["box_loss", "cls_loss", "l1_loss", "angle_loss"]
    np.testing.assert_allclose(t["e2e_logged"].numpy(), [float(v) for v in items.values()], **MODEL_LOSS)
    code, out, err = cli("loss", DATA, "--model", "yolo26n-obb.yaml", "--imgsz", "320", "--epoch", str(epoch))
    assert code == 0, err
    flat = re.sub(r"\s+", " ", out)
    assert f"End-to-end (E2ELoss) at epoch {epoch} of 100" in flat
    assert "other branch: obb-o2o, topk 7, topk2 1" in flat


def test_angles_shown_in_degrees(cli):
    out, _ = run_cli(cli, "assign", DATA, "--assigner", "obb", "--imgsz", "320", "--image", "1")
    assert "(87.5,87.5) 87.5×45.0 px 45.0°" in out  # the 256 px tennis court, ×1.25 on the canvas
    assert math.isclose(math.degrees(math.pi / 4), 45.0)


def test_over_the_budget_assigns_on_pairs_with_the_same_targets(cli, tmp_path):
    """A scene whose dense (b, M, A) tensors exceed --budget-mb is assigned on candidate pairs: same targets and
    loss as the dense run; assign and walk say so and still show every GT's summary."""
    common = ["--assigner", "obb", "--imgsz", "640", "--synthetic", "trained"]
    run_cli(cli, "loss", DATA, *common, "--export", tmp_path / "dense.npz")
    out, _ = run_cli(cli, "loss", DATA, *common, "--budget-mb", "1", "--export", tmp_path / "pairs.npz")
    d, p = np.load(tmp_path / "dense.npz"), np.load(tmp_path / "pairs.npz")
    assert "mask_in_gts" in d.files and "mask_in_gts" not in p.files and "pair_t" in p.files
    for k in ("fg_mask", "target_gt_idx", "target_labels", "target_rboxes"):
        np.testing.assert_array_equal(p[k], d[k], err_msg=k)
    for k in ("target_scores", "loss_box", "loss_cls", "loss_dfl", "loss_angle"):
        assert_close_f32(p[k], d[k], SCORE if k == "target_scores" else LOSS, k)
    out, _ = run_cli(cli, "assign", DATA, *common, "--budget-mb", "1")
    assert "assigned on candidate pairs instead" in out and "Per-GT summary · image 1 (P0002)" in out
    out, _ = run_cli(cli, "walk", DATA, *common, "--budget-mb", "1")
    assert "6c–6e. Assignment on candidate pairs" in out and "8. Loss" in out


def test_scan_with_an_obb_model(cli, tmp_path):
    """scan --model with an OBB model reads the corners and assigns with the obb family."""
    pytest.importorskip("ultralytics")
    out, _ = run_cli(cli, "scan", DATA, "--model", "yolo11n-obb.yaml", "--imgsz", "320", "--report",
                     tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["images"] == 2 and doc["gts"] == 10 and "2 images through the model" in out  # 11 rows, 1 dropped
    worst = {(Path(g["file"]).name, g["line"]) for g in doc["worst_gts"]}
    assert ("P0001.txt", 4) in worst  # a tiny vehicle: only zero-weight positives
