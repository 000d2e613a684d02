"""Label files read exactly as ultralytics 8.4's verify_image_label reads them, for every task.

The differential test reads the corpus of tests/fixtures/label_corpus.json (generated and recorded by
scripts/make_label_corpus.py from ultralytics' own verify_image_label) under each reading (task, kpt_shape,
single_cls) and asserts, file by file: the same corrupt/accepted verdict, and for an accepted file the same
rows (class and box, in the same order), polygons and keypoints, exactly. yolotal's deliberate refusals (a
polygon of fewer than 3 points, an infinite value in a pose row, a box row in a segment/OBB task) are files
ultralytics' check accepts; they are listed and checked to be nothing else. When ultralytics is importable
the same corpus is also run live through it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from yolotal.errors import InputError
from yolotal.inputs.label_rules import LabelRules, read_label_file, read_label_text
from yolotal.inputs.labels import load_labels

FIXTURE = Path(__file__).parent / "fixtures" / "label_corpus.json"
DOC = json.loads(FIXTURE.read_text())
READINGS = {r["name"]: r for r in DOC["readings"]}
DELIBERATE = ("at least 3 are needed", "is infinite", "a box row in a", "a box row in an")


def _rules(reading: dict) -> LabelRules:
    k = reading["kpt_shape"]
    return LabelRules(reading["task"], DOC["nc"], tuple(k) if k else None, reading["single_cls"])


def _compare(got, want: dict, what: str) -> None:
    """One file's result against ultralytics' (exact: values copied from the label text, float32)."""
    if want["corrupt"]:
        assert got.corrupt, f"{what}: ultralytics skips it ({want['msg']}); yolotal read it"
        return
    assert not got.corrupt, f"{what}: ultralytics reads it; yolotal calls it corrupt: {got.problems}"
    if got.problems:  # a deliberate refusal of a file the trainer would train on
        assert all(any(d in p.reason for d in DELIBERATE) for p in got.problems), (what, got.problems)
        return
    rows = np.asarray(want["rows"], np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(got.rows, rows, err_msg=what)
    segs = want.get("segments")
    if segs:
        assert got.segments is not None and len(got.segments) == len(segs), what
        for a, b in zip(got.segments, segs):
            np.testing.assert_array_equal(a, np.asarray(b, np.float32).reshape(-1, 2), err_msg=what)
    else:
        assert not got.polygons, what
    if "keypoints" in want:
        np.testing.assert_array_equal(got.keypoints, np.asarray(want["keypoints"], np.float32).reshape(
            got.keypoints.shape), err_msg=what)
        assert got.keypoints.shape[0] == rows.shape[0]


def _files(tmp_path: Path) -> list[tuple[str, Path]]:
    out = []
    for f in DOC["files"]:
        p = tmp_path / f"{f['name'].replace('/', '_')}.txt"
        p.write_bytes(base64.b64decode(f["data"]))
        out.append((f["name"], p))
    return out


def test_corpus_is_large_and_covers_every_verdict():
    assert DOC["ultralytics"] == "8.4.190" and len(DOC["files"]) >= 200
    for name in READINGS:
        verdicts = [f["verdicts"][name]["corrupt"] for f in DOC["files"]]
        assert 10 <= sum(verdicts) <= len(verdicts) - 10, name  # both verdicts well represented
    names = {f["name"] for f in DOC["files"]}
    assert {"bom", "tri", "poly_with_box_row", "pose23", "cx_1.0100001", "cx_-0.01", "dup_spelled",
            "class_1.5", "class_1.0", "class_-1", "cols_4", "tabs", "blank_lines", "empty"} <= names


@pytest.mark.parametrize("reading", list(READINGS))
def test_same_verdict_boxes_polygons_and_keypoints_as_ultralytics(reading, tmp_path):
    rules = _rules(READINGS[reading])
    refused = []
    for (name, path), f in zip(_files(tmp_path), DOC["files"]):
        got = read_label_file(path, rules)
        _compare(got, f["verdicts"][reading], f"{reading}/{name}")
        if got.problems and not got.corrupt:
            refused.append(name)
    # the deliberate refusals (each checked above to be one of DELIBERATE, on a file ultralytics reads)
    if reading in ("detect", "detect-single", "segment", "obb"):
        assert "poly_with_one_point_row" in refused
    if reading.startswith("pose23"):
        assert "pose23_box_inf" in refused
    if reading in ("segment", "obb"):
        assert "one_box" in refused


def test_deliberate_refusals_are_exactly_these(tmp_path):
    files = dict(_files(tmp_path))
    det = LabelRules("detect", 3)
    got = read_label_file(files["poly_with_one_point_row"], det)
    assert not got.corrupt and [(p.line, p.reason) for p in got.problems] == [
        (2, "a polygon of 1 point: at least 3 are needed (ultralytics trains on it as a zero-size box)")]
    # a lone 3-column row is no polygon (no row of a polygon file's length): corrupt for both
    assert read_label_file(files["poly_one_point_only"], det).corrupt
    got = read_label_file(files["pose23_box_inf"], LabelRules("pose", 3, (2, 3)))
    assert not got.corrupt and got.problems[0].reason.startswith("box w is infinite")
    got = read_label_file(files["one_box"], LabelRules("segment", 3))
    assert not got.corrupt and "a box row in a segment task" in got.problems[0].reason


try:
    from ultralytics.data.utils import verify_image_label  # noqa: F401
    HAVE_ULTRALYTICS = True
except Exception:  # not installed (the fixture tests above still run)
    HAVE_ULTRALYTICS = False


@pytest.mark.skipif(not HAVE_ULTRALYTICS, reason="ultralytics not importable")
@pytest.mark.parametrize("reading", list(READINGS))
def test_live_against_ultralytics(reading, tmp_path):
    """The same corpus through ultralytics' own verify_image_label, now."""
    from PIL import Image
    from ultralytics.data.utils import verify_image_label

    r = READINGS[reading]
    img = tmp_path / "im.png"
    Image.new("RGB", (16, 16)).save(img)
    nkpt, ndim = r["kpt_shape"] or (0, 0)
    rules = _rules(r)
    for name, path in _files(tmp_path):
        res = verify_image_label((str(img), str(path), "", r["task"] == "pose", DOC["nc"], nkpt, ndim, r["single_cls"]))
        if res[0] is None:
            want = {"corrupt": True, "msg": res[-1]}
        else:
            lb = res[1].copy()
            if r["single_cls"]:
                lb[:, 0] = 0
            want = {"corrupt": False, "rows": lb.tolist(), "segments": [s.tolist() for s in res[3]]}
            if res[4] is not None:
                want["keypoints"] = res[4].tolist()
        _compare(read_label_file(path, rules), want, f"live {reading}/{name}")


# ----------------------------------------------------------------------------------------------- the rules
def _read(text: str, **kw):
    return read_label_text(text, LabelRules(**{"nc": 3, **kw}))


def test_polygon_rows_become_their_boxes_and_keep_their_points():
    got = _read("1 0.1 0.2 0.5 0.2 0.4 0.6\n")
    np.testing.assert_array_equal(got.segments[0], np.float32([[0.1, 0.2], [0.5, 0.2], [0.4, 0.6]]))
    x0, y0, x1, y1 = np.float32(0.1), np.float32(0.2), np.float32(0.5), np.float32(0.6)
    want = np.array([1, (x0 + x1) / np.float32(2), (y0 + y1) / np.float32(2), x1 - x0, y1 - y0], np.float32)
    np.testing.assert_array_equal(got.rows[0], want)


@pytest.mark.parametrize("text,accepted", [
    ("0 0.5 0.5 1.0 0.2", True), ("0 0.5 0.5 1.01 0.2", True), ("0 0.5 0.5 1.0100001 0.2", False),
    ("0 0.5 0.5 1.02 0.2", False), ("0 -0.01 0.5 0.2 0.2", True), ("0 -0.0100001 0.5 0.2 0.2", False),
    ("0 0.5 0.5 -0.001 0.2", False), ("0 0.5 0.5 0.2 1.5", False), ("0 1.01 1.01 1.01 1.01", True),
    ("1.0 0.5 0.5 0.2 0.2", True), ("1.5 0.5 0.5 0.2 0.2", False), ("-1 0.5 0.5 0.2 0.2", False),
    ("-0 0.5 0.5 0.2 0.2", True), ("3 0.5 0.5 0.2 0.2", False), ("2.0000001 0.5 0.5 0.2 0.2", True),
])
def test_coordinate_and_class_rules(text, accepted):
    assert _read(text + "\n").ok is accepted, text


def test_w_or_h_above_the_rule_is_refused_with_file_and_line(write):
    p = write("wide.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 1.2 0.3\n")
    with pytest.raises(InputError) as e:
        load_labels(p, nc=3)
    assert str(e.value) == (f"{p}:2: box w=1.2 is above 1.01 (labels must be normalised; ultralytics allows up "
                            "to 1.01)")
    p = write("tall.txt", "0 0.5 0.5 0.3 1.0100001\n")
    with pytest.raises(InputError, match=r"tall.txt:1: box h=1.0100001 is above 1.01"):
        load_labels(p, nc=3)
    assert load_labels(write("ok.txt", "0 0.5 0.5 1.01 1.0\n"), nc=3).xywhn.tolist() == [
        [0.5, 0.5, float(np.float32(1.01)), 1.0]]


def test_single_cls_accepts_any_class_and_makes_it_0(write):
    p = write("s.txt", "7 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1\n")
    with pytest.raises(InputError, match="class id must be an integer in \\[0, 3\\), got 7"):
        load_labels(p, nc=3)
    lab = load_labels(p, nc=3, single_cls=True)
    assert lab.cls.tolist() == [0, 0]
    with pytest.raises(InputError, match="got -1"):  # negative ids are refused even so
        load_labels(write("n.txt", "-1 0.5 0.5 0.2 0.2\n"), nc=3, single_cls=True)


def test_load_labels_polygons_note_once_and_segments_kept(write, tmp_path):
    write("d/a.txt", "1 0.1 0.2 0.5 0.2 0.4 0.6\n")
    write("d/b.txt", "0 0.5 0.5 0.2 0.2\n")
    write("d/c.txt", "2 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n0 0.6 0.6 0.7 0.6 0.7 0.7\n")
    lab = load_labels(tmp_path / "d", nc=3)
    assert lab.task == "detect" and len(lab) == 4 and lab.cls.tolist() == [1, 0, 2, 0]
    assert [None if s is None else s.shape for s in lab.segments] == [(3, 2), None, (4, 2), (3, 2)]
    assert lab.notes == ("3 polygon rows read as their bounding boxes, as ultralytics' segments2boxes makes them",)
    assert [o[1] for o in lab.origin] == [1, 1, 1, 2]


def test_mixed_polygon_and_box_rows_are_corrupt(write):
    p = write("m.txt", "0 0.1 0.2 0.5 0.2 0.4 0.6\n1 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InputError) as e:
        load_labels(p, nc=3)
    assert e.value.line == 2 and "a 5-column box row in a file of polygon rows (line 1)" in e.value.message


def test_fewer_than_3_points_is_an_error_naming_the_line(write):
    p = write("p.txt", "0 0.1 0.2 0.5 0.2 0.4 0.6\n1 0.5 0.5\n")
    with pytest.raises(InputError) as e:
        load_labels(p, nc=3)
    assert str(e.value) == (f"{p}:2: a polygon of 1 point: at least 3 are needed (ultralytics trains on it as a "
                            "zero-size box)")


def test_pose_rows_keep_box_and_keypoints(write):
    p = write("k.txt", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 0\n")
    lab = load_labels(p, nc=1, task="pose", kpt_shape=(2, 3))
    assert lab.task == "pose" and lab.keypoints.shape == (1, 2, 3)
    np.testing.assert_array_equal(lab.keypoints[0], np.float32([[0.45, 0.45, 2], [0.55, 0.55, 0]]))
    np.testing.assert_array_equal(lab.xywhn, np.float32([[0.5, 0.5, 0.2, 0.2]]))
    det = load_labels(p, nc=1, kpt_shape=(2, 3))  # a box task: the box kept, the keypoints dropped
    assert det.keypoints is None and det.xywhn.tolist() == lab.xywhn.tolist()
    assert det.notes == ("1 pose rows read as their boxes (keypoints not used by a detect task), as ultralytics does",)
    with pytest.raises(InputError, match="polygon's box cx=1.1 is above 1.01"):
        load_labels(p, nc=1)  # without kpt_shape an 11-column row is a 5-point polygon (x up to 2): corrupt
    two = load_labels(write("k2.txt", "0 0.5 0.5 0.2 0.2 0.45 0.45 -0.005 0.55\n"), nc=1, task="pose",
                      kpt_shape=(2, 2))
    np.testing.assert_array_equal(two.keypoints[0], np.float32([[0.45, 0.45, 1], [-0.005, 0.55, 0]]))
    with pytest.raises(InputError, match="a pose task needs kpt_shape"):
        load_labels(p, nc=1, task="pose")


def test_bom_blank_lines_tabs_and_crlf(write):
    p = write("b.txt", b"\xef\xbb\xbf\r\n0\t0.5 0.5 0.2 0.2\r\n\r\n1 0.25 0.25 0.1 0.1")
    lab = load_labels(p, nc=3)
    assert lab.cls.tolist() == [0, 1] and [o[1] for o in lab.origin] == [2, 4]


def test_duplicate_polygons_compared_with_their_points(write):
    p = write("d.txt", "0 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.1 0.1 0.4 0.5 0.1 0.5 0.4 0.1\n")
    lab = load_labels(p, nc=3)  # the same box, other points: both kept, in file order
    assert len(lab) == 2 and lab.warnings == () and [o[1] for o in lab.origin] == [1, 2]
    p = write("e.txt", "0 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.1 0.1 0.4 0.5 0.1 0.5 0.4 0.1\n0 0.1 0.1 0.4 0.1 0.4 0.5\n")
    lab = load_labels(p, nc=3)
    assert len(lab) == 2 and "1 duplicate label row(s) dropped (line(s) 3)" in lab.warnings[0]


def test_single_cls_config_key():
    from yolotal.config import config_from_dict

    assert config_from_dict({"single_cls": True}).single_cls is True
    assert config_from_dict({}).single_cls is False
    with pytest.raises(InputError, match="single_cls: expected true or false, got 1"):
        config_from_dict({"single_cls": 1})


def test_scan_reads_by_the_same_rules(tmp_path, cli):
    from yolotal.scanning import report, scan

    (tmp_path / "poly.txt").write_text("0 0.1 0.2 0.5 0.2 0.4 0.6\n1 0.55 0.55 0.9 0.6 0.7 0.95\n")
    (tmp_path / "edge.txt").write_bytes(b"\xef\xbb\xbf1 0.5 0.5 1.01 0.3\n1 0.5 0.5 1.01 0.3\n")
    (tmp_path / "one_point.txt").write_text("0 0.1 0.2 0.5 0.2 0.4 0.6\n1 0.5 0.5\n")
    (tmp_path / "mixed.txt").write_text("0 0.1 0.2 0.5 0.2 0.4 0.6\n1 0.5 0.5 0.2 0.2\n")
    (tmp_path / "wide.txt").write_text("0 0.5 0.5 1.0100001 0.3\n")
    doc = report(scan(tmp_path, (640, 640), (8, 16, 32), 16, nc=2))
    f = doc["files"]
    assert (f["total"], f["corrupt"], f["refused"], f["duplicate_rows_dropped"], doc["gts"]) == (5, 2, 1, 1, 3)
    assert doc["notes"] == ["2 polygon rows read as their bounding boxes, as ultralytics' segments2boxes makes them"]
    assert [(Path(e["file"]).name, e["line"]) for e in doc["errors"]] == [("mixed.txt", 2), ("one_point.txt", 2),
                                                                          ("wide.txt", 1)]
    code, out, err = cli("scan", tmp_path)
    flat = " ".join(out.split())
    assert code == 0 and "3 label errors in 2 corrupt and 1 refused files" in flat
    assert "one_point.txt:2: a polygon of 1 point: at least 3 are needed" in flat


TOKENS = ["0", "1", "2", "3", "1.0", "1.5", "-1", "-0", "0.5", "0.25", "0.999", "1.01", "1.0100001", "-0.01",
          "-0.0100001", "1e-3", "nan", "inf", "x", "0.1", "0.9", "0.33333334", "2"]


@pytest.mark.skipif(not HAVE_ULTRALYTICS, reason="ultralytics not importable")
def test_random_files_against_ultralytics_live(tmp_path):
    """Property: any text of rows of interesting tokens reads as ultralytics reads it (verdict, rows, polygons,
    keypoints), under detect, detect with kpt_shape, pose and single_cls."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from PIL import Image
    from ultralytics.data.utils import verify_image_label

    img = tmp_path / "im.png"
    Image.new("RGB", (16, 16)).save(img)
    lb = tmp_path / "lb.txt"
    row = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=11).map(" ".join)
    reading = st.sampled_from([("detect", None, False), ("detect", (2, 2), False), ("pose", (2, 2), False),
                               ("pose", (1, 3), True), ("detect", None, True)])

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(row, min_size=0, max_size=4), reading)
    def check(rows, r):
        task, kpt, single = r
        text = "\n".join(rows)
        lb.write_text(text)
        nkpt, ndim = kpt or (0, 0)
        res = verify_image_label((str(img), str(lb), "", task == "pose", 3, nkpt, ndim, single))
        if res[0] is None:
            want = {"corrupt": True, "msg": res[-1]}
        else:
            rows_ = res[1].copy()
            if single:
                rows_[:, 0] = 0
            want = {"corrupt": False, "rows": rows_.tolist(), "segments": [s.tolist() for s in res[3]]}
            if res[4] is not None:
                want["keypoints"] = res[4].tolist()
        _compare(read_label_text(text, LabelRules(task, 3, kpt, single)), want, f"{r} {text!r}")

    check()
