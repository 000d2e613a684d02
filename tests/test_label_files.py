"""Label files as ultralytics reads them (data/utils.py verify_image_label): duplicate rows dropped, a file with a
bad row corrupt (the image is skipped whole), a missing or empty file background."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolotal.inputs.labels import load_labels
from yolotal.scanning import report, scan

DUPS = "5 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n5 0.50 0.5 0.2 0.20\n1 0.3 0.3 0.1 0.1\n0 0.7 0.7 0.1 0.1\n"


def test_duplicate_rows_are_dropped_in_ultralytics_order(write):
    p = write("d.txt", DUPS)
    lab = load_labels(p, nc=80)
    rows = np.array([[float(v) for v in ln.split()] for ln in DUPS.splitlines()], np.float32)
    _, keep = np.unique(rows, axis=0, return_index=True)  # what verify_image_label does
    assert keep.tolist() == [4, 1, 0]
    np.testing.assert_array_equal(np.concatenate([lab.cls[:, None], lab.xywhn], 1).astype(np.float32), rows[keep])
    assert [ln for _, ln in lab.origin] == [5, 2, 1]  # each GT still names its line
    assert lab.warnings == (f"{p}: 2 duplicate label row(s) dropped (line(s) 3, 4), as ultralytics does; the "
                            "remaining rows are in its sorted order",)
    clean = load_labels(write("c.txt", "5 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n"), nc=80)
    assert clean.cls.tolist() == [5, 1] and clean.warnings == ()  # no duplicates: file order kept


def test_cli_warns_about_duplicates(cli, write, tmp_path):
    write("dir/a.txt", DUPS)
    write("dir/b.txt", "0 0.5 0.5 0.3 0.3\n")
    out_npz = tmp_path / "x.npz"
    code, out, err = cli("assign", tmp_path / "dir", "--export", out_npz)
    assert code == 0, err
    text = " ".join((out + err).split())
    assert "a.txt: 2 duplicate label row(s) dropped (line(s) 3, 4), as ultralytics does" in text
    assert np.load(out_npz)["mask_gt"].sum() == 4  # 3 + 1 GTs


def test_a_bad_row_is_still_an_error_for_the_single_file_commands(cli, write):
    p = write("bad.txt", "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n")
    code, _, err = cli("assign", p)
    assert code == 2 and f"{p}:2: expected 5 columns" in err


def test_scan_counts_corrupt_files_and_duplicates(tmp_path):
    (tmp_path / "all_bad.txt").write_text("0 0.5 0.5 0.1\n0 2 0.5 0.1 0.1\n")  # every line bad
    (tmp_path / "some_bad.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 -0.1 0.1\n")
    (tmp_path / "dups.txt").write_text(DUPS)
    (tmp_path / "empty.txt").write_text("\n")
    doc = report(scan(tmp_path, (640, 640), (8, 16, 32), 16, nc=80))
    f = doc["files"]
    assert f["total"] == 4 and f["corrupt"] == 2 and f["background"] == 1 and f["duplicate_rows_dropped"] == 2
    assert doc["gts"] == 3  # dups.txt's three distinct rows; nothing from the corrupt files
    assert [(Path(d["file"]).name, d["lines"]) for d in doc["duplicates"]] == [("dups.txt", [3, 4])]
    assert [(Path(e["file"]).name, e["line"]) for e in doc["errors"]] == [("all_bad.txt", 1), ("all_bad.txt", 2),
                                                                          ("some_bad.txt", 2)]


def test_cli_scan_says_corrupt_files_are_skipped(cli, tmp_path):
    (tmp_path / "all_bad.txt").write_text("0 0.5 0.5 0.1\n")
    (tmp_path / "dups.txt").write_text(DUPS)
    code, out, err = cli("scan", tmp_path)
    assert code == 0, err
    flat = " ".join(out.split())
    assert "2 label files (all 2) · 3 GTs · 0 background · 1 corrupt (skipped, as ultralytics does) · 2 duplicate rows" in flat
    assert "1 label errors in 1 corrupt files" in flat and "dups.txt: line(s) 3, 4" in flat
