"""--model: the user's own ultralytics checkpoint or model YAML as the source of heads, --save-heads and replay.

Needs the optional extra (ultralytics); CI installs it. Models are built offline from the YAMLs ultralytics
ships (yolo11n at 320 px keeps each forward well under a second)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
ultralytics = pytest.importorskip("ultralytics", reason="--model needs the optional extra yolotal[ultralytics]")
import torch  # noqa: E402

from yolotal.inputs.heads import heads_to_levels  # noqa: E402
from yolotal.inputs.model import load_model, model_heads  # noqa: E402
from yolotal.inputs.pictures import image_size, letterbox_for, model_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "samples" / "shapes"
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "model"
from tolerances import HEADS, MODEL_LOSS  # noqa: E402

HEADS_ATOL = HEADS["atol"]  # a model forward on another CPU: float32 sums in another order
LOSS_RTOL = MODEL_LOSS["rtol"]


@pytest.fixture(scope="module")
def golden():
    z = np.load(GOLDEN / "shapes_yolo11n.npz")
    return {k: z[k] for k in z.files}, json.loads((GOLDEN / "shapes_yolo11n.json").read_text())


def test_letterboxed_images_match_ultralytics_preprocessing(golden):
    z, _ = golden
    files = [str(ROOT / f) for f in z["image_files"]]
    boxes = [letterbox_for(*image_size(f), (320, 320)) for f in files]
    assert [(b.left, b.top) for b in boxes] == [tuple(p) for p in z["letterbox_pad"]]
    np.testing.assert_allclose([b.r for b in boxes], z["letterbox_scale"], rtol=1e-12)
    mine = model_input(files, boxes, (320, 320))
    assert mine.shape == z["images"].shape == (4, 3, 320, 320) and mine.dtype == np.float32
    # OpenCV's INTER_LINEAR works in fixed point on uint8; ours rounds a float result: at most 1 grey level apart
    assert np.abs(mine - z["images"]).max() <= 1.0 / 255 + 1e-6
    assert np.abs(mine[1, :, :, :70] * 255 - 114).max() < 1e-4  # portrait: grey padding on the left


def test_model_heads_equal_the_models_own_forward(golden):
    z, _ = golden
    lm = load_model("yolo11n.yaml", nc=3, seed=0)
    assert (lm.nc, lm.reg_max, lm.strides, lm.kind) == (3, 16, (8, 16, 32), "yaml")
    assert not lm.module.training and all(not m.training for m in lm.module.modules())
    h = model_heads(lm, z["images"], "test")
    assert h.grids == ((40, 40), (20, 20), (10, 10))
    for i, lv in enumerate(heads_to_levels(h)):
        np.testing.assert_allclose(lv, z[f"level{i}"], atol=HEADS_ATOL, rtol=0, err_msg=f"level{i}")


def test_loss_on_model_heads_equals_ultralytics_v8_detection_loss(cli, golden, tmp_path):
    _, doc = golden
    out = tmp_path / "l.npz"
    code, text, err = cli("loss", SHAPES / "labels", "--heads", GOLDEN / "shapes_yolo11n.npz", "--export", out)
    assert code == 0, err
    assert "letterboxes as saved in" in " ".join(text.split())
    e = np.load(out)
    want = doc["loss_items"]
    got = {"box_loss": float(e["loss_box"]), "cls_loss": float(e["loss_cls"]), "dfl_loss": float(e["loss_dfl"])}
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=LOSS_RTOL), k


def test_model_run_prints_where_the_heads_came_from_and_replays_exactly(cli, tmp_path):
    saved, a, b = tmp_path / "s.npz", tmp_path / "a.npz", tmp_path / "b.npz"
    code, out, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "--save-heads", saved, "--export", a)
    assert code == 0, err
    text = " ".join(out.split())
    assert "heads from the model yolo11n.yaml" in text and "nc 3" in text and "imgsz 320×320" in text
    assert "device cpu" in text and "BatchNorm in eval mode" in text
    assert "360×640 px, r = 0.5, resized to 180×320, padded left 70 top 0 px" in text
    z = np.load(saved)
    for k in ("level0", "level1", "level2", "images", "image_files", "letterbox_scale", "letterbox_pad", "orig_shape"):
        assert k in z.files, k
    assert z["images"].shape == (4, 3, 320, 320) and z["level0"].shape == (4, 64 + 3, 40, 40)
    assert z["orig_shape"].tolist()[[Path(f).stem for f in z["image_files"]].index("portrait")] == [640, 360]
    # the heads are the model's forward on exactly the saved input tensor
    lm = load_model("yolo11n.yaml", nc=3, seed=0)
    with torch.no_grad():
        _, raw = lm.module(torch.from_numpy(z["images"]))
    flat = torch.cat((raw["boxes"], raw["scores"]), 1)
    np.testing.assert_array_equal(z["level2"], flat[:, :, -100:].reshape(4, 67, 10, 10).numpy())
    # replay without the model: identical numbers
    code, out2, err = cli("assign", SHAPES / "labels", "--heads", saved, "--export", b)
    assert code == 0, err
    za, zb = np.load(a), np.load(b)
    assert set(za.files) == set(zb.files)
    for k in za.files:
        np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


def _checkpoint(path: Path, nc=3, train_args=None, ema=True, seed=1):
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    m = DetectionModel("yolo11n.yaml", nc=nc, verbose=False)
    m.names = {i: f"c{i}" for i in range(nc)}
    ckpt = {"model": m.half(), "train_args": train_args or {}, "epoch": 3}
    if ema:
        torch.manual_seed(seed + 1)
        e = DetectionModel("yolo11n.yaml", nc=nc, verbose=False)
        e.names = m.names
        ckpt["ema"] = e.half()
    torch.save(ckpt, path)
    return ckpt


def test_checkpoint_sets_imgsz_and_gains_from_train_args_and_prefers_ema(cli, tmp_path):
    pt = tmp_path / "best.pt"
    ckpt = _checkpoint(pt, train_args={"imgsz": 256, "box": 5.0, "cls": 1.0, "dfl": 2.0})
    out = tmp_path / "e.npz"
    code, text, err = cli("loss", SHAPES / "labels", "--model", pt, "--export", out)
    assert code == 0, err
    t = " ".join(text.split())
    assert "imgsz 256×256" in t and "(saved as float16)" in t and "checkpoint" in t
    e = np.load(out)
    assert float(e["loss_box"]) == pytest.approx(5.0 * float(e["raw_box"]), rel=1e-6)
    assert float(e["loss_cls"]) == pytest.approx(1.0 * float(e["raw_cls"]), rel=1e-6)
    assert float(e["loss_dfl"]) == pytest.approx(2.0 * float(e["raw_dfl"]), rel=1e-6)
    # a flag still overrides the checkpoint's gains
    code, _, err = cli("loss", SHAPES / "labels", "--model", pt, "--export", out, "-c", _cfg(tmp_path, "loss: {box: 1.0}"))
    assert code == 0, err
    assert float(np.load(out)["loss_box"]) == pytest.approx(float(np.load(out)["raw_box"]), rel=1e-6)
    # the EMA weights are the ones run
    lm = load_model(pt)
    w = next(lm.module.parameters())
    assert torch.equal(w, next(ckpt["ema"].float().parameters()))
    assert lm.names == {0: "c0", 1: "c1", 2: "c2"}


def _cfg(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text + "\n")
    return p


def test_other_tasks_are_refused_by_name(cli):
    code, _, err = cli("assign", SHAPES / "labels", "--model", "yolo11n-cls.yaml")
    assert code == 2 and "this is a classify model; yolotal inspects the assignment of detect, segment, pose and OBB" \
        in err and "yolo11n-cls.yaml" in err


@pytest.mark.parametrize("yaml, task", [("yolo11n-obb.yaml", "obb"), ("yolo11n-pose.yaml", "pose")])
def test_a_task_model_with_a_detect_assigner_is_refused(cli, yaml, task):
    code, _, err = cli("assign", SHAPES / "labels", "--model", yaml, "--assigner", "tal")
    assert code == 2 and f"this is a{'n' if task == 'obb' else ''} {task} model but the assigner tal is for detect" \
        in err and yaml in err


def test_bad_model_inputs(cli, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    code, _, err = cli("assign", SHAPES / "labels", "--model", junk)
    assert code == 2 and "not a readable checkpoint" in err and "junk.pt" in err
    code, _, err = cli("assign", SHAPES / "labels", "--model", tmp_path / "missing.pt")
    assert code == 2 and "model file not found" in err
    pt = tmp_path / "m.pt"
    _checkpoint(pt, nc=2, ema=False)
    code, _, err = cli("assign", SHAPES / "labels", "--model", pt)  # labels use class 2
    assert code == 2 and "class id must be an integer in [0, 2), got 2" in err and "landscape.txt" in err
    code, _, err = cli("assign", SHAPES / "labels", "--model", pt, "--nc", "5")
    assert code == 2 and "--nc 5 disagrees with the model, whose head has nc = 2" in err
    code, _, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "300")
    assert code == 2 and "imgsz [300, 300] is not a multiple of the largest stride 32 of this model" in err
    assert "--imgsz 320,320" in err
    if not torch.cuda.is_available():
        code, _, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--device", "cuda")
        assert code == 2 and "CUDA was asked for but torch sees no CUDA device" in err
    code, _, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--assigner", "simota")
    assert code == 2 and "the simota assigner needs its own heads" in err


def test_missing_or_broken_image_names_both_paths(cli, tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    code, _, err = cli("assign", tmp_path / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "64")
    assert code == 2 and "no image for this label file" in err and "a.txt" in err and str(tmp_path / "images" / "a") in err
    (tmp_path / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken jpeg")
    code, _, err = cli("assign", tmp_path / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "64")
    assert code == 2 and "a.jpg" in err and ("not a readable image" in err or "does not decode" in err)


def test_without_ultralytics_one_line_says_what_to_install(cli, monkeypatch):
    for name in list(sys.modules):
        if name == "ultralytics" or name.startswith("ultralytics."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import ultralytics -> ImportError
    code, out, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml")
    assert code == 2 and "pip install ultralytics (from a clone of yolotal: pip install -e '.[ultralytics]')" in err \
        and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ scan --model
def _scan_doc(cli, tmp_path, *extra, name="r.json"):
    rep = tmp_path / name
    code, out, err = cli("scan", SHAPES / "shapes.yaml", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "--batch", "3", "--report", rep, *extra)
    return code, out, err, (json.loads(rep.read_text()) if rep.exists() else None)


def test_scan_model_agrees_with_assign_model_per_gt(cli, tmp_path):
    code, out, err, doc = _scan_doc(cli, tmp_path)
    assert code == 0, err
    assert doc["images"] == 4 and doc["gts"] == 9 and not doc["partial"] and doc["meta"]["split"] == "train"
    assert set(doc["by_size"]) == {"small", "medium", "large"} and set(doc["by_class"]) == {"box", "disc", "triangle"}
    assert sum(st["gts"] for st in doc["by_size"].values()) == 9
    # the same files through assign --model (one batch of 4; scan used batches of 3 and 1): the same positives
    exp = tmp_path / "a.npz"
    assert cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
               "--export", exp)[0] == 0
    z = np.load(exp)
    pos = z["pos_triples"]
    files = sorted(str(p) for p in (SHAPES / "labels").glob("*.txt"))
    rows = {(Path(r["file"]).name, r["line"]): r for r in doc["per_gt"]}
    for bi, f in enumerate(files):
        lines = [i + 1 for i, ln in enumerate(Path(f).read_text().splitlines()) if ln.strip()]
        for m, ln in enumerate(lines):
            r = rows[(Path(f).name, ln)]
            n = int(((pos[:, 0] == bi) & (pos[:, 1] == m)).sum())
            assert r["positives"] == n, (f, ln)
            anchors = pos[(pos[:, 0] == bi) & (pos[:, 1] == m), 2]
            cls = int(z["gt_labels"][bi, m, 0])
            assert r["score_sum"] == pytest.approx(float(z["target_scores"][bi, anchors, cls].sum()), abs=1e-4)
    # the 4×4 px box of square.txt line 2 is flagged: its positives carry no weight
    tiny = rows[("square.txt", 2)]
    assert tiny["size"] == "small" and tiny["box"][2] - tiny["box"][0] == pytest.approx(6 * 0.625, abs=0.01)  # 6 px × r


def test_scan_model_lists_missing_images_and_goes_on(cli, tmp_path):
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(SHAPES, d)
    (d / "images" / "wide.jpg").unlink()
    (d / "images" / "square.jpg").write_bytes(b"not an image")
    rep = tmp_path / "r.json"
    code, out, err = cli("scan", d / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "--report", rep)
    assert code == 0, err
    doc = json.loads(rep.read_text())
    reasons = {Path(e["file"]).name: e["reason"] for e in doc["errors"]}
    assert doc["images"] == 4 and doc["gts"] == 5  # landscape (3) and portrait (2) were still scanned
    assert reasons["wide.txt"] == "no image found for this label file"
    assert "square.jpg" in reasons["square.txt"] and "does not decode" in reasons["square.txt"]
    assert "2 problem(s)" in out
    # a dataset YAML lists its images: a label file without one is not part of it
    code, out, err = cli("scan", d / "shapes.yaml", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "--report", rep)
    assert code == 0 and json.loads(rep.read_text())["images"] == 3


def test_scan_model_interrupted_writes_a_partial_report(cli, tmp_path, monkeypatch):
    from yolotal import scan_model

    real = scan_model.records_of
    calls = {"n": 0}

    def once_then_interrupt(trace):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(trace)

    monkeypatch.setattr(scan_model, "records_of", once_then_interrupt)
    code, out, err, doc = _scan_doc(cli, tmp_path)
    assert code == 130
    assert doc["partial"] is True and doc["images"] == 3 and doc["gts"] == 8
    assert "PARTIAL" in out


def test_scan_model_under_torchrun_equals_one_process(tmp_path):
    import os
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS="1", YOLOTAL_DIST_BACKEND="gloo", YOLO_OFFLINE="1", YOLO_VERBOSE="False")
    args = ["scan", str(SHAPES / "shapes.yaml"), "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
            "--batch", "1"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    r = subprocess.run([sys.executable, "-m", "yolotal", *args, "--report", str(one)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                        "127.0.0.1", "--master_port", str(port), "-m", "yolotal", *args, "--report", str(two)], env=env,
                       capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["meta"]["processes"] == 2 and a["meta"]["processes"] == 1
    for d in (a, b):
        for k in ("seconds", "processes", "stage_seconds"):
            d["meta"].pop(k)
    assert a == b


def test_checkpoint_saved_by_ultralytics_8_3_runs_under_this_version(cli, tmp_path):
    """A real trainer-format checkpoint of 8.3.200 (model None, half-precision ema, train_args) written by
    scripts/make_legacy_checkpoint.py, with 8.3's own raw outputs on a fixed input."""
    pt = ROOT / "tests" / "fixtures" / "models" / "yolov8_tiny_u83.pt"
    want = np.load(ROOT / "tests" / "fixtures" / "models" / "yolov8_tiny_u83_outputs.npz")
    lm = load_model(pt)
    assert (lm.nc, lm.reg_max, lm.strides, lm.train_imgsz) == (2, 16, (8, 16, 32), (128, 128))
    assert lm.train_gains == {"box": 7.0, "cls": 0.7, "dfl": 1.2} and lm.names == {0: "cat", 1: "dog"}
    assert lm.half_weights and lm.kind == "checkpoint"
    h = model_heads(lm, want["images"], "test")
    for i, lv in enumerate(heads_to_levels(h)):
        np.testing.assert_allclose(lv, want[f"level{i}"], atol=HEADS_ATOL, rtol=0, err_msg=f"level{i}")
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.4 0.3\n")
    from PIL import Image

    Image.new("RGB", (200, 100), (90, 30, 200)).save(tmp_path / "images" / "a.png")
    out = tmp_path / "e.npz"
    code, text, err = cli("loss", tmp_path / "labels", "--model", pt, "--export", out)
    assert code == 0, err
    assert "imgsz 128×128" in " ".join(text.split())
    e = np.load(out)
    assert float(e["loss_cls"]) == pytest.approx(0.7 * float(e["raw_cls"]), rel=1e-6)
    np.testing.assert_allclose(e["gt_bboxes"][0, 0], [38.4, 54.4, 89.6, 73.6], atol=1e-4)  # r 0.64, top 32


def test_compare_runs_the_model_once_per_branch_and_names_what_it_skips(cli, tmp_path, monkeypatch):
    from yolotal.inputs import model as model_mod

    calls = []
    real = model_mod.raw_outputs

    def counting(lm, images, branch="one2many"):
        calls.append(branch)
        return real(lm, images, branch)

    monkeypatch.setattr(model_mod, "raw_outputs", counting)
    code, out, err = cli("compare", SHAPES / "labels", "--model", "yolo26n.yaml", "--nc", "3", "--imgsz", "320",
                         "-a", "tal,atss,simota,tal-o2o,yolov5", "-i", "2")
    assert code == 0, err
    assert calls == ["one2many", "one2one"]  # tal and atss share one forward; tal-o2o reads the one2one branch
    text = " ".join(out.split())
    assert "simota, yolov5 skipped: SimOTA and YOLOv5 need heads of their own layout" in text
    assert "assigners: tal (ultralytics), atss (yolov6), tal-o2o (ultralytics)" in text


def test_end_to_end_model_one2one_branch_for_tal_o2o(cli, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    m = DetectionModel("yolo26n.yaml", nc=3, verbose=False)
    with torch.no_grad():  # at init the one2one branch is a copy of one2many: make them differ, as training does
        for prm in m.model[-1].one2one_cv3.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    pt = tmp_path / "e2e.pt"
    torch.save({"model": m, "train_args": {"imgsz": 320}}, pt)
    a, b, s = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "s.npz"
    code, out, err = cli("assign", SHAPES / "labels", "--model", pt, "--assigner", "tal-o2o", "--export", a,
                         "--save-heads", s)
    assert code == 0, err
    assert "one2one branch of an end-to-end head" in " ".join(out.split())
    assert cli("assign", SHAPES / "labels", "--model", pt, "--export", b)[0] == 0
    za, zb = np.load(a), np.load(b)
    m.eval()
    with torch.no_grad():
        _, raw = m(torch.from_numpy(np.load(s)["images"]))
    assert torch.equal(torch.from_numpy(za["pred_logits"]), raw["one2one"]["scores"].permute(0, 2, 1))
    assert torch.equal(torch.from_numpy(zb["pred_logits"]), raw["one2many"]["scores"].permute(0, 2, 1))
    assert (load_model(pt).end2end, load_model(pt).reg_max) == (True, 1)


def test_scan_model_skips_corrupt_files_whole_and_drops_duplicates(cli, tmp_path):
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(SHAPES, d)
    land = (d / "labels" / "landscape.txt").read_text().splitlines()
    (d / "labels" / "landscape.txt").write_text("\n".join(land + [land[0]]) + "\n")  # line 4 repeats line 1
    (d / "labels" / "portrait.txt").write_text((d / "labels" / "portrait.txt").read_text() + "7 0.5 0.5 2 0.1\n")
    rep = tmp_path / "r.json"
    code, out, err = cli("scan", d / "shapes.yaml", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "--report", rep)
    assert code == 0, err
    doc = json.loads(rep.read_text())
    files = {Path(r["file"]).name for r in doc["per_gt"]}
    assert "portrait.txt" not in files and doc["gts"] == 3 + 3 + 1  # landscape (deduplicated), square, wide
    reasons = [(Path(e["file"]).name, e["line"], e["reason"]) for e in doc["errors"]]
    assert ("landscape.txt", 4, "1 duplicate row(s) dropped (line(s) 4)") in reasons
    assert any(f == "portrait.txt" and ln == 3 for f, ln, _ in reasons)
    assert ("portrait.txt", None, "corrupt: skipped whole, as the trainer does") in reasons


def test_review_findings_model_inputs(cli, tmp_path):
    # a model YAML takes a dataset YAML's classes (3 here), not its own 80
    code, out, err = cli("assign", SHAPES / "shapes.yaml", "--model", "yolo11n.yaml", "--imgsz", "320")
    assert code == 0, err
    assert "nc 3, reg_max 16" in " ".join(out.split())
    # a directory of label files runs through the model one batch at a time: the first --batch files
    out_npz = tmp_path / "b.npz"
    code, out, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "--batch", "2", "--export", out_npz)
    assert code == 0, err
    assert np.load(out_npz)["pred_scores"].shape[0] == 2
    assert "the first 2 of 4 label files" in " ".join((out + err).split())
    # a broken model YAML: one line
    bad = tmp_path / "bad.yaml"
    bad.write_text("garbage: [\n")
    code, _, err = cli("assign", SHAPES / "labels", "--model", bad)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "bad.yaml" in err


def test_replaying_heads_on_other_labels_is_refused(cli, tmp_path):
    import shutil

    saved = tmp_path / "s.npz"
    code, _, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                       "--save-heads", saved)
    assert code == 0, err
    other = tmp_path / "labels"
    other.mkdir()
    for i, f in enumerate(sorted((SHAPES / "labels").glob("*.txt"))):
        shutil.copy(f, other / f"img{i}.txt")
    code, _, err = cli("assign", other, "--heads", saved)
    assert code == 2 and "these heads were saved for the images landscape, portrait, square, wide" in err


def test_compare_does_not_point_at_its_temporary_replay_file(cli):
    code, out, err = cli("compare", SHAPES / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "320",
                         "-a", "tal,atss", "-i", "0")
    assert code == 0, err and "saved to" not in out
    assert "saved to" not in out + err


@pytest.mark.parametrize("train_imgsz, want", [(250, "256×256"), ([192, 320], "320×320"), (640, "640×640")])
def test_checkpoint_imgsz_as_the_trainer_used_it(cli, tmp_path, train_imgsz, want):
    pt = tmp_path / "m.pt"
    _checkpoint(pt, train_args={"imgsz": train_imgsz}, ema=False)
    code, out, err = cli("assign", SHAPES / "labels" / "square.txt", "--model", pt)
    assert code == 0, err
    assert f"imgsz {want}" in " ".join(out.split())


def test_scan_model_lists_images_under_10_px(cli, tmp_path):
    from PIL import Image

    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    for name, size in (("ok", (64, 48)), ("tiny", (8, 8))):
        Image.new("RGB", size, (90, 90, 90)).save(tmp_path / "images" / f"{name}.png")
        (tmp_path / "labels" / f"{name}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    rep = tmp_path / "r.json"
    code, out, err = cli("scan", tmp_path / "labels", "--model", "yolo11n.yaml", "--nc", "3", "--imgsz", "64",
                         "--report", rep)
    assert code == 0, err
    doc = json.loads(rep.read_text())
    assert doc["gts"] == 1 and doc["images_run"] == 1 and doc["images"] == 2
    assert any("under 10 px" in e["reason"] and e["file"].endswith("tiny.txt") and e["line"] is None
               for e in doc["errors"])
    assert "1 images through the model (1 listed as problems, not run)" in " ".join(out.split())
    assert doc["by_size"]["large"]["gts"] == 0 and doc["by_size"]["large"]["mean_iou"] is None  # empty: null


def test_a_model_ultralytics_cannot_run_is_one_line_naming_the_file(cli, tmp_path, monkeypatch):
    """A checkpoint of a fork (its modules load but fail in forward, e.g. 'AAttn' object has no attribute 'qkv'):
    exit 2 with the file and ultralytics' own error, no traceback."""
    from yolotal.inputs import model as m

    real = m.load_model

    def broken(*a, **k):
        lm = real(*a, **k)

        def forward(x):
            raise AttributeError("'AAttn' object has no attribute 'qkv'")

        lm.module.forward = forward
        return lm

    monkeypatch.setattr(m, "load_model", broken)
    code, out, err = cli("assign", SHAPES / "labels", "--model", "yolo11n.yaml", "--imgsz", "320")
    assert code == 2 and "Traceback" not in err
    assert "yolo11n.yaml: ultralytics could not run this model (AttributeError: 'AAttn' object has no attribute " \
        "'qkv')" in err


def test_scan_model_report_has_every_images_letterbox(cli, tmp_path):
    code, out, err, doc = _scan_doc(cli, tmp_path)
    assert code == 0, err
    per = {Path(d["file"]).stem: d for d in doc["per_image"]}
    assert set(per) == {"landscape", "portrait", "square", "wide"}  # every image, not only the worst
    assert per["landscape"]["orig_wh"] == [640, 480] and per["landscape"]["r"] == 0.5
    assert per["landscape"]["pad"] == [0, 40] and per["wide"]["pad"] == [0, 70]


def test_a_class_id_beyond_the_models_nc_says_where_nc_came_from(cli):
    pt = ROOT / "tests" / "fixtures" / "models" / "yolov8_tiny_u83.pt"  # nc 2; the shapes labels use class 2
    code, _, err = cli("assign", SHAPES / "labels", "--model", pt)
    assert code == 2 and "landscape.txt:3: class id must be an integer in [0, 2), got 2 (nc 2 comes from the model" \
        in err and "yolov8_tiny_u83.pt" in err
