from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

SAMPLES = ROOT / "samples"
CONTRACT = {
    "anchor_points": ("A", 2), "stride_tensor": ("A", 1), "pred_bboxes": ("b", "A", 4), "pred_scores": ("b", "A", "nc"),
    "gt_bboxes": ("b", "M", 4), "gt_labels": ("b", "M", 1), "mask_gt": ("b", "M", 1), "mask_in_gts": ("b", "M", "A"),
    "overlaps": ("b", "M", "A"), "align_metric": ("b", "M", "A"), "mask_pos": ("b", "M", "A"), "fg_mask": ("b", "A"),
    "target_gt_idx": ("b", "A"), "target_labels": ("b", "A"), "target_bboxes": ("b", "A", 4),
    "target_scores": ("b", "A", "nc"), "loss_box": (), "loss_cls": (), "loss_dfl": (),
}


def test_help_does_not_import_torch():
    code = "import sys; import yolotal.cli; print('torch' in sys.modules, 'rich.console' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    code = "import sys, yolotal; a = 'torch' in sys.modules; yolotal.TaskAlignedAssigner; print(a, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]  # the package is light; the assigner brings torch when asked for
    code = "import yolotal; yolotal.nope"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "module 'yolotal' has no attribute 'nope'" in proc.stderr


def test_help_lists_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for c in ("anchors", "decode", "assign", "loss", "walk"):
        assert c in out


def test_walk_default_runs_the_seed_walkthrough(cli, tmp_path):
    log = tmp_path / "run.log"
    code, out, err = cli("walk", "--log", log)
    assert code == 0, err
    assert "strides [80, 160, 320] · nc 3 · reg_max 16 · batch 4 · profile classic" in out
    text = log.read_text()
    assert "\x1b[" not in text  # plain text
    assert " 2.1760e+02, -3.2000e-01,  4.9024e+02,  6.9440e+01" in text
    assert "NO POS" in text  # image 0's GT 1 has only zero-metric candidates with these heads


def test_anchors_table_and_level(cli):
    code, out, _ = cli("anchors", "--level", "2", "--imgsz", "256")
    assert code == 0
    assert "1024–1279" in out and "1280–1343" in out  # 32x32, 16x16, 8x8 -> level 2 starts at 1280
    assert "(0.5,0.5)" in out and "(16,16)" in out and "(7.5,7.5)" in out and "(240,240)" in out  # first anchor of a level: grid and px (s32)
    assert "tensor([[0.5000, 0.5000]" in out


def test_assign_flags_and_export_contract(cli, tmp_path):
    out_npz = tmp_path / "t.npz"
    code, out, err = cli("assign", SAMPLES / "coco8" / "labels", "--synthetic", "trained", "--export", out_npz)
    assert code == 0, err
    assert "Per-GT summary · image 1 (000000000025)" in out
    assert "background image: no labels" in out  # 000000000030 is empty
    z = np.load(out_npz)
    dims = {"A": 8400, "b": 4, "M": 4, "nc": 80}
    for name, shape in CONTRACT.items():
        if name.startswith("loss"):
            continue
        assert z[name].shape == tuple(dims.get(d, d) for d in shape), name
    assert z["mask_pos"].dtype == bool and z["target_gt_idx"].dtype == np.int64
    assert not z["fg_mask"][2].any()  # background image
    # each positive is the only GT of its anchor
    assert (z["mask_pos"].sum(1) <= 1).all()


def test_loss_export_json_and_values(cli, tmp_path):
    """The walkthrough's loss through the CLI equals ultralytics 8.3.200's on the same inputs (classic fixture)."""
    from tolerances import LOSS

    inputs = np.load(ROOT / "tests" / "fixtures" / "golden" / "inputs" / "walkthrough.npz")
    heads = tmp_path / "heads.npz"
    np.savez(heads, **{k: inputs[k] for k in inputs.files if k.startswith("level")})
    batch = tmp_path / "batch.txt"
    batch.write_text("".join(f"{int(r[0])} {int(r[1])} {r[2]:.9g} {r[3]:.9g} {r[4]:.9g} {r[5]:.9g}\n"
                             for r in inputs["labels"].astype(np.float64)))
    out_json = tmp_path / "t.json"
    code, out, err = cli("loss", batch, "-c", ROOT / "configs" / "walkthrough.yaml", "--heads", heads,
                         "--export", out_json)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    t = doc["tensors"]
    for name in CONTRACT:
        assert name in t
    assert t["pred_scores"]["shape"] == [4, 84, 3]
    want = np.load(ROOT / "tests" / "fixtures" / "golden" / "classic" / "walkthrough.npz")["loss"]  # box, cls, dfl
    got = [t["loss_box"]["data"], t["loss_cls"]["data"], t["loss_dfl"]["data"]]
    np.testing.assert_allclose(got, want, **LOSS)
    assert "target_scores_sum" in out and "× batch (4)" in out


def test_decode_shows_distribution(cli):
    code, out, _ = cli("decode", SAMPLES / "walkthrough_batch.txt", "-c", ROOT / "configs" / "walkthrough.yaml",
                       "--anchor", "81")
    assert code == 0
    assert "anchor 81 · L2/s320 cell (x=1, y=0)" in out
    assert "softmax over 16 bins" in out and "decoded box xyxy" in out


def test_profiles_differ_for_tiny_objects(cli, write):
    p = write("tiny.txt", "0 0.5 0.5 0.004 0.004\n")  # 2.6 px at 640
    _, classic, _ = cli("assign", p, "--nc", "1", "--profile", "classic")
    _, ultra, _ = cli("assign", p, "--nc", "1", "--profile", "ultralytics")
    assert "NO CAND" in classic and "no anchor centre inside the box" in classic
    assert "contains no anchor centre of any level (finest stride 8); the ultralytics profile enlarges" in classic
    assert "candidate box enlarged" in ultra and "NO CAND" not in ultra


def test_clamped_dfl_warning(cli, write):
    p = write("big.txt", "0 0.5 0.5 0.99 0.99\n")
    code, out, err = cli("loss", p, "--nc", "1", "--synthetic", "trained", "--imgsz", "1280")
    assert code == 0
    assert "DFL target side(s) clamped at reg_max − 1.01 = 14.99 grid units" in err  # warnings go to stderr
    assert "clamped at reg_max" not in out


@pytest.mark.parametrize(
    "args,msg",
    [
        (("assign", "{tmp}/missing.txt"), "missing.txt: label file not found"),
        (("assign", "{bad}"), "bad.txt:2: class id must be an integer in [0, 80), got 99"),
        (("assign", "{ok}", "-c", "{tmp}/nope.yaml"), "nope.yaml: config file not found"),
        (("assign", "{ok}", "--topk", "0"), "command line: assigner.topk: expected an integer >= 1, got 0"),
        (("assign", "{ok}", "--heads", "{heads}", "--nc", "80"), "head has 67 channels, expected 4*reg_max+nc = 4*16+80 = 144"),
        (("assign", "{ok}", "--image", "5"), "--image 5: the batch has images 0..0"),
        (("assign",), "missing LABELS"),
        (("assign", "{ok}", "--export", "{tmp}/x.csv"), "export path must end in .npz or .json"),
        (("anchors", "--strides", "8,x"), "--strides: expected comma-separated integers"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, write, tmp_path, args, msg):
    ok = write("ok.txt", "0 0.5 0.5 0.2 0.2\n")
    bad = write("bad.txt", "0 0.5 0.5 0.2 0.2\n99 0.5 0.5 0.2 0.2\n")
    heads = tmp_path / "h.npz"
    np.savez(heads, **{f"level{i}": np.zeros((1, 67, 640 // s, 640 // s), np.float32) for i, s in enumerate((8, 16, 32))})
    args = [a.format(tmp=tmp_path, ok=ok, bad=bad, heads=heads) for a in args]
    code, out, err = cli(*args)
    assert code == 2
    assert msg in err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not (tmp_path / "x.csv").exists()


def test_unknown_option_is_a_usage_error(cli):
    code, _, err = cli("assign", "--frobnicate")
    assert code == 2 and "No such option" in err


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yolotal", "anchors", "--imgsz", "64"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0 and "L2/s32" in r.stdout



def test_no_candidate_explanation_in_both_profiles(write):
    """The explanation names the box and the finest stride; only classic adds the enlargement hint."""
    from yolotal.config import config_from_dict
    from yolotal.inputs.labels import load_labels
    from yolotal.pipeline import run
    from yolotal.render.terminal import GTFacts, explain

    lab = load_labels(write("one.txt", "0 0.5 0.5 0.1 0.1\n"), 1)
    facts = GTFacts(0, 0, [10.0, 10.0, 12.5, 13.0], ("one.txt", 1), 0, 0, 0, {}, 0.0, 0.0, 0)
    for profile, hint in (("classic", True), ("ultralytics", False)):
        t = run(config_from_dict({"nc": 1, "imgsz": 64, "assigner": {"profile": profile}}), lab)
        text = explain(t, facts)
        assert text.startswith(" — the box is 2.5×3.0 px and contains no anchor centre of any level (finest stride 8)")
        assert ("the ultralytics profile enlarges such boxes" in text) is hint
