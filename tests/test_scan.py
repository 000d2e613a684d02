"""`yolotal scan`: dataset discovery, tolerant parsing, geometry that agrees with the assigner, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolotal.config import config_from_dict
from yolotal.inputs.labels import load_labels
from yolotal.pipeline import run
from yolotal.scanning import find_labels, geometry, report, scan

ROOT = Path(__file__).resolve().parents[1]
COCO8 = ROOT / "samples" / "coco8" / "labels"


def make_dataset(root: Path) -> Path:
    """images/{train,val} + labels/{train,val}, one image without a label file, a names mapping."""
    for split, files in {"train": {"a": "0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.004 0.004\n", "b": ""},
                         "val": {"c": "2 0.5 0.5 0.9 0.9\n", "d": None}}.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for stem, text in files.items():
            # square pictures: the letterbox is a pure scale, so the normalised boxes are unchanged
            Image.new("RGB", (64, 64)).save(root / "images" / split / f"{stem}.jpg")
            if text is not None:
                (root / "labels" / split / f"{stem}.txt").write_text(text)
    y = root / "data.yaml"
    y.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{0: person, 1: bike, 2: car}}\n")
    return y


def test_dataset_yaml_layout_and_names(tmp_path):
    ls = find_labels(make_dataset(tmp_path))
    assert ls.names == ["person", "bike", "car"] and ls.splits == {"train": 2, "val": 2}
    assert [f.relative_to(tmp_path).as_posix() for f in ls.files] == [
        "labels/train/a.txt", "labels/train/b.txt", "labels/val/c.txt", "labels/val/d.txt"]
    doc = report(scan(tmp_path / "data.yaml", (640, 640), (8, 16, 32), 16))
    assert doc["gts"] == 3 and doc["files"]["background"] == 2  # b.txt is empty, d has no label file
    assert doc["class_counts"] == {"person": 1, "bike": 1, "car": 1}
    assert doc["flag_counts"]["starved_classic"] == 1 and doc["flag_counts"]["tiny"] == 1  # the 2.6 px box
    (bad,) = [x for x in doc["flagged"] if "starved_classic" in x["flags"]]
    assert bad["file"].endswith("labels/train/a.txt") and bad["line"] == 2 and bad["cls"] == 1
    assert bad["smaller_than_strides"] == [8, 16, 32] and bad["candidates_ultralytics"] == [4, 0, 0]


def test_errors_are_collected_without_stopping(tmp_path):
    (tmp_path / "x.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n9 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n")
    (tmp_path / "y.txt").write_bytes(b"\x00\x01binary")
    (tmp_path / "z.txt").write_text("0 0.5 nan 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.3 0.3 0.2 0.2\n")
    (tmp_path / "w.txt").write_text("0 0.5 0.5 0.1 0.1\n2 0.2 0.2 0.1 0.1\n")
    doc = report(scan(tmp_path, (320, 320), (8, 16, 32), 16, nc=3))
    errs = [(Path(e["file"]).name, e["line"], e["reason"]) for e in doc["errors"]]
    assert errs == [
        ("x.txt", 2, "expected 5 columns (cls cx cy w h) or a polygon (cls x1 y1 x2 y2 x3 y3 ...), got 4"),
        ("x.txt", 3, "class id must be an integer in [0, 3), got 9"),
        ("y.txt", 0, "not a text label file (binary data)"),
        ("z.txt", 1, "NaN in the box (cy)"),
        ("z.txt", 2, "box cx=1.5 is above 1.01 (labels must be normalised; ultralytics allows up to 1.01)"),
    ]
    # ultralytics skips a file with any bad line whole (verify_image_label): x, y and z are corrupt, not
    # background, and their good lines are not audited; w is clean
    assert doc["gts"] == 2 and doc["files"]["corrupt"] == 3 and doc["files"]["background"] == 0
    assert doc["files"]["with_errors"] == 3
    assert [Path(w["file"]).name for w in doc["worst_files"]] == ["x.txt", "z.txt", "y.txt"]


@pytest.mark.parametrize("imgsz", [(640, 640), (320, 640), (640, 384)])  # (h, w); hand-worked: test_hand_worked.py
@pytest.mark.parametrize("profile,key", [("classic", "cand_classic"), ("ultralytics", "cand_ultra")])
def test_candidate_counts_agree_with_the_assigner(profile, key, imgsz):
    labels = load_labels(COCO8, 80)
    rows = np.concatenate([labels.cls[:, None].astype(np.float32), labels.xywhn], 1)
    geo = geometry(rows, imgsz, (8, 16, 32), 16)
    t = run(config_from_dict({"imgsz": list(imgsz), "nc": 80, "assigner": {"profile": profile}}), labels,
            with_loss=False)
    for k in range(len(labels)):
        b = int(labels.batch_idx[k])
        m = sum(1 for j in range(k) if labels.batch_idx[j] == b)
        inb = t["mask_in_gts"][b, m]
        per_level = [int(inb[lv.start : lv.stop].sum()) for lv in t.levels]
        assert getattr(geo, key)[k].tolist() == per_level


def test_clamped_flag_matches_the_loss():
    # a 600 px box at reg_max 4: every anchor inside is > 2.99 strides from some side at every level
    rows = np.array([[0, 0.5, 0.5, 0.94, 0.94], [1, 0.3, 0.3, 0.05, 0.05]], np.float32)
    geo = geometry(rows, (640, 640), (8, 16, 32), 4)
    assert geo.clamped.tolist() == [True, False]
    from yolotal.inputs.labels import labels_from_array

    labels = labels_from_array(np.concatenate([np.zeros((2, 1), np.float32), rows], 1), 1)
    t = run(config_from_dict({"imgsz": 640, "nc": 2, "reg_max": 4, "heads": {"kind": "trained"}}), labels)
    fg, tgi, cl = t["fg_mask"][0], t["target_gt_idx"][0], t["dfl_clamped"][0]
    assert fg[tgi == 0].any() and cl[fg & (tgi == 0)].any(-1).all()  # every positive of GT 0 is clamped
    assert not cl[fg & (tgi == 1)].any(-1).all()  # GT 1 has anchors that represent it unclamped


@pytest.mark.parametrize("imgsz", [(640, 640), (320, 640)])  # (h, w)
def test_simulate_matches_the_pipeline(imgsz):
    res = scan(COCO8, imgsz, (8, 16, 32), 16, nc=80, do_simulate=True)
    labels = load_labels(COCO8, 80)
    t = run(config_from_dict({"imgsz": list(imgsz), "nc": 80, "heads": {"kind": "trained"}}), labels, with_loss=False)
    for k in range(len(labels)):
        b = int(labels.batch_idx[k])
        m = sum(1 for j in range(k) if labels.batch_idx[j] == b)
        w = t["fg_mask"][b] & (t["target_gt_idx"][b] == m) & (t["target_scores"][b].sum(-1) > 0)
        assert int(res.positives[k].sum()) == int(w.sum())
    assert res.positives.sum() > 0


def test_workers_give_the_same_report(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(600):  # more than two chunks of 256
        n = int(rng.integers(0, 5))
        text = "".join(f"{rng.integers(0, 3)} {rng.uniform(.2, .8):.4f} {rng.uniform(.2, .8):.4f} "
                       f"{rng.uniform(0, .3):.4f} {rng.uniform(0, .3):.4f}\n" for _ in range(n))
        (tmp_path / f"{i:04d}.txt").write_text(text if i != 77 else text + "oops\n")
    one = report(scan(tmp_path, (640, 640), (8, 16, 32), 16, nc=3, workers=1))
    two = report(scan(tmp_path, (640, 640), (8, 16, 32), 16, nc=3, workers=2))
    assert one == two and one["files"]["total"] == 600 and len(one["errors"]) == 1


def test_cli_scan_report_and_errors(cli, tmp_path):
    y = make_dataset(tmp_path)
    out_json = tmp_path / "r.json"
    code, out, err = cli("scan", y, "--report", out_json, "--simulate")
    assert code == 0, err
    out = " ".join(out.split())  # the console wraps at 100 columns
    assert "4 label files (train 2, val 2) · 3 GTs · 2 background · 0 corrupt (skipped, as ultralytics does) · " \
        "0 duplicate rows dropped" in out
    assert "no candidate (classic)" in out and "positives (simulated)" in out
    assert "labels/train/a.txt:2: class 1 box" in out
    doc = json.loads(out_json.read_text())
    assert doc["flag_counts"]["starved_classic"] == 1 and "positives_simulated" in doc["flagged"][0]
    code, _, err = cli("scan", tmp_path / "nope")
    assert code == 2 and "dataset not found" in err
    code, _, err = cli("scan", y, "--workers", "0")
    assert code == 2 and "--workers must be >= 1" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [a, b\n")
    code, _, err = cli("scan", bad)
    assert code == 2 and f"{bad}:2: broken YAML" in err


def test_tiny_rule_and_non_square_canvas_by_hand():
    """scan's tiny flag: the SHORTER side below the SMALLEST stride, on an imgsz (h 320, w 640) canvas where a
    normalised width is × 640 and a height × 320."""
    from yolotal.scanning import geometry

    rows = np.array([
        [0, 0.5, 0.5, 0.1, 0.02],      # 64 × 6.4 px: shorter side 6.4 < 8 -> tiny (the longer side is not)
        [0, 0.5, 0.5, 0.0125, 0.05],   # 8 × 16 px: 8 is not below 8 -> not tiny
        [0, 0.5, 0.5, 0.011, 0.5],     # 7.04 × 160 px -> tiny
        [0, 0.5, 0.5, 0.04, 0.08],     # 25.6 × 25.6 px: below 32 (the largest stride) but not 8 -> not tiny
    ], np.float32)
    g = geometry(rows, (320, 640), (8, 16, 32), 16)
    assert g.tiny.tolist() == [True, False, True, False]
    np.testing.assert_allclose(g.box_px[0], [288, 156.8, 352, 163.2], atol=1e-4)  # x × 640, y × 320
    np.testing.assert_allclose(g.box_px[3], [307.2, 147.2, 332.8, 172.8], atol=1e-4)
    # box 0 at stride 8: centres 292..348 (8 columns) are inside, but no row centre (…, 156, 164, …) lies strictly
    # between 156.8 and 163.2: no classic candidate; the 8.4 enlargement to 16 px tall (152..168) finds 8 × 2
    assert g.cand_classic[0].tolist() == [0, 0, 0]
    assert g.cand_ultra[0, 0] == 16
