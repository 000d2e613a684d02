"""Generate the label-file corpus and record ultralytics' own verdicts on it: tests/fixtures/label_corpus.json.

Run with the oracle venv (ultralytics 8.4.190):

    YOLO_VERBOSE=False YOLO_OFFLINE=1 /work/oracle/bin/python scripts/make_label_corpus.py

Every file is read by ``ultralytics.data.utils.verify_image_label`` under each reading in READINGS (task,
keypoint shape, single_cls), beside a 16×16 PNG. Recorded per file and reading: corrupt or accepted, its
message, and for an accepted file the (n, 5) rows (classes set to 0 under single_cls, as the dataset's
``update_labels`` does afterwards), the polygons and the keypoints. Values are float32 written as the
float64 that holds them exactly. The corpus is deterministic (hand-written edge cases + seeded random files).
"""

from __future__ import annotations

import base64
import json
import random
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "label_corpus.json"
NC = 3
# (name, task, kpt_shape or None, single_cls): how verify_image_label is called for each
READINGS = (
    ("detect", "detect", None, False),
    ("detect-kpt23", "detect", (2, 3), False),
    ("detect-kpt22", "detect", (2, 2), False),
    ("detect-single", "detect", None, True),
    ("segment", "segment", None, False),
    ("pose23", "pose", (2, 3), False),
    ("pose22", "pose", (2, 2), False),
    ("pose23-single", "pose", (2, 3), True),
    ("obb", "obb", None, False),
)

EDGE = ["1.0", "1", "1.01", "1.0100001", "1.01000001", "1.0099999", "1.02", "-0.01", "-0.0100001", "-0.00999",
        "-0.009999999", "0", "-0", "-0.0", "1e-9", "0.5", "0.999", "+0.25", "5e-1", "1_0", "nan", "inf", "-inf"]
CLASSES = ["0", "1", "2", "1.0", "2.00", "1.5", "-1", "-0", "3", "7", "2.0000001", "1.00000001", "1e0", "+1",
           "-0.001", "0x1", "a"]


def _hand() -> list[tuple[str, bytes]]:
    """Hand-written cases: each rule on its own."""
    c = []

    def add(name: str, text: str | bytes):
        c.append((name, text if isinstance(text, bytes) else text.encode()))

    add("empty", "")
    add("blank_lines", "\n\n  \n\t\n")
    add("one_box", "0 0.5 0.5 0.2 0.2\n")
    add("two_boxes_no_newline", "0 0.5 0.5 0.2 0.2\n1 0.25 0.75 0.1 0.3")
    add("tabs", "0\t0.5\t0.5\t0.2\t0.2\n")
    add("crlf", "0 0.5 0.5 0.2 0.2\r\n1 0.3 0.3 0.1 0.1\r\n")
    add("lone_cr", "0 0.5 0.5 0.2 0.2\r1 0.3 0.3 0.1 0.1\r")
    add("bom", b"\xef\xbb\xbf0 0.5 0.5 0.2 0.2\n")
    add("bom_polygon", b"\xef\xbb\xbf1 0.1 0.1 0.4 0.1 0.4 0.5\n")
    add("double_bom", b"\xef\xbb\xbf\xef\xbb\xbf0 0.5 0.5 0.2 0.2\n")
    add("latin1", b"0 0.5 0.5 0.2 0.2 \xe9\n")
    add("nul_bytes", b"0 0.5 0.5 0.2\x00 0.2\n")
    add("nbsp_separator", "0\u00a00.5 0.5 0.2 0.2\n")
    add("formfeed_line", "0 0.5 0.5 0.2 0.2\x0c1 0.3 0.3 0.1 0.1\n")
    add("leading_blank_then_rows", "\n\n0 0.5 0.5 0.2 0.2\n\n1 0.3 0.3 0.1 0.1\n\n")
    add("trailing_spaces", "0 0.5 0.5 0.2 0.2   \n")
    for v in EDGE:
        add(f"cx_{v}", f"0 {v} 0.5 0.2 0.2\n")
        add(f"w_{v}", f"0 0.5 0.5 {v} 0.2\n")
    for k in CLASSES:
        add(f"class_{k}", f"{k} 0.5 0.5 0.2 0.2\n")
    add("neg_small_with_neg_w", "0 -0.005 0.5 -0.001 0.2\n")
    add("neg_small_then_neg_h_other_row", "0 -0.005 0.5 0.1 0.2\n1 0.5 0.5 0.1 -0.0\n")
    add("cols_3", "0 0.5 0.5\n")
    add("cols_4", "0 0.5 0.5 0.2\n")
    add("cols_6", "0 0.5 0.5 0.2 0.2 0.1\n")
    add("cols_6_all", "0 0 0.5 0.5 0.2 0.2\n1 0 0.5 0.5 0.2 0.2\n")
    add("cols_1", "0\n")
    add("ragged_5_4", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    add("ragged_5_6", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2 0.3\n")
    add("bad_token", "0 0.5 abc 0.2 0.2\n")
    add("comma_decimal", "0 0,5 0.5 0.2 0.2\n")
    # polygons
    add("tri", "1 0.1 0.1 0.4 0.1 0.4 0.5\n")
    add("quad", "0 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5\n")
    add("poly6", "2 0.1 0.1 0.3 0.05 0.5 0.1 0.5 0.4 0.3 0.45 0.1 0.4\n")
    add("poly_one_point_only", "0 0.5 0.5\n")
    add("poly_with_one_point_row", "0 0.1 0.1 0.4 0.1 0.4 0.5\n1 0.5 0.5\n")
    add("poly_with_box_row", "0 0.1 0.1 0.4 0.1 0.4 0.5\n1 0.5 0.5 0.2 0.2\n")
    add("poly_with_6col_row", "0 0.1 0.1 0.4 0.1 0.4 0.5\n1 0.5 0.5 0.2 0.2 0.1\n")
    add("poly_odd_coords", "0 0.1 0.1 0.4 0.1 0.4 0.5 0.7\n")
    add("poly_with_class_only_row", "0 0.1 0.1 0.4 0.1 0.4 0.5\n1\n")
    add("poly_outside_but_box_inside", "0 0.9 0.1 1.05 0.1 1.0 0.2\n")
    add("poly_negative_but_centre_ok", "0 -0.5 0.1 0.5 0.1 0.4 0.5\n")
    add("poly_negative_centre", "0 -0.5 0.1 0.4 0.1 0.4 0.5\n")
    add("poly_point_1.0100001", "0 0.1 0.1 1.0100001 0.1 0.5 0.5\n")
    add("poly_big", "0 0.0 0.0 1.01 0.0 1.01 1.01 0.0 1.01\n")
    add("poly_nan", "0 0.1 nan 0.4 0.1 0.4 0.5\n")
    add("poly_inf", "0 0.1 0.1 inf 0.1 0.4 0.5\n")
    add("poly_dup_exact", "0 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.1 0.1 0.4 0.1 0.4 0.5\n1 0.2 0.2 0.3 0.2 0.3 0.3\n")
    add("poly_same_box_other_points", "0 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.1 0.1 0.4 0.5 0.1 0.5 0.4 0.1\n")
    add("poly_same_box_other_points_and_dup",
        "0 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.1 0.1 0.4 0.5 0.1 0.5 0.4 0.1\n0 0.1 0.1 0.4 0.1 0.4 0.5\n")
    add("poly_neg_zero_points", "0 0.0 0.1 0.4 0.1 0.4 0.5\n0 -0.0 0.1 0.4 0.1 0.4 0.5\n0 0.0 0.1 0.4 0.1 0.4 0.5\n")
    add("poly_dup_other_class", "0 0.1 0.1 0.4 0.1 0.4 0.5\n1 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.1 0.1 0.4 0.1 0.4 0.5\n")
    add("poly_class_1.5", "1.5 0.1 0.1 0.4 0.1 0.4 0.5\n")
    add("poly_class_3", "3 0.1 0.1 0.4 0.1 0.4 0.5\n")
    # duplicates of boxes
    add("dup_exact", "5 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n5 0.5 0.5 0.2 0.2\n")
    add("dup_spelled", "2 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n2 0.50 0.5 0.2 0.20\n1 0.3 0.3 0.1 0.1\n0 0.7 0.7 0.1 0.1\n")
    add("dup_neg_zero", "0 0 0.5 0.2 0.2\n0 -0 0.5 0.2 0.2\n")
    add("dup_float32_equal", "0 0.5 0.5 0.2 0.2\n0 0.50000001 0.5 0.2 0.2\n")
    add("dup_class_1.0", "1 0.5 0.5 0.2 0.2\n1.0 0.5 0.5 0.2 0.2\n")
    add("no_dup_sorted_input", "1 0.3 0.3 0.1 0.1\n0 0.5 0.5 0.2 0.2\n")
    # pose rows (kpt 2x3: 11 tokens, 2x2: 9 tokens)
    add("pose23", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n")
    add("pose23_invisible_zero", "0 0.5 0.5 0.2 0.2 0 0 0 0.55 0.55 2\n")
    add("pose23_kpt_above", "0 0.5 0.5 0.2 0.2 1.02 0.45 2 0.55 0.55 1\n")
    add("pose23_kpt_1.01", "0 0.5 0.5 0.2 0.2 1.01 0.45 2 0.55 0.55 1\n")
    add("pose23_kpt_negative", "0 0.5 0.5 0.2 0.2 -0.5 0.45 2 0.55 0.55 1\n")
    add("pose23_vis_negative", "0 0.5 0.5 0.2 0.2 0.45 0.45 -1 0.55 0.55 1\n")
    add("pose23_vis_large", "0 0.5 0.5 0.2 0.2 0.45 0.45 7 0.55 0.55 1\n")
    add("pose23_box_large", "0 1.5 0.5 3 0.2 0.45 0.45 2 0.55 0.55 1\n")
    add("pose23_box_inf", "0 0.5 0.5 inf 0.2 0.45 0.45 2 0.55 0.55 1\n")
    add("pose23_box_negative_w", "0 0.5 0.5 -0.2 0.2 0.45 0.45 2 0.55 0.55 1\n")
    add("pose23_kpt_garbage", "0 0.5 0.5 0.2 0.2 x y z 0.55 0.55 1\n")
    add("pose23_box_1.02", "0 0.5 0.5 1.02 0.2 0.45 0.45 2 0.55 0.55 1\n")
    add("pose23_dup", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n")
    add("pose23_same_box_other_kpts", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n0 0.5 0.5 0.2 0.2 0.4 0.4 2 0.5 0.5 1\n")
    add("pose23_with_box_row", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n1 0.3 0.3 0.1 0.1\n")
    add("pose23_with_polygon_row", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n1 0.1 0.1 0.4 0.1 0.4 0.5\n")
    add("pose22", "0 0.5 0.5 0.2 0.2 0.45 0.45 0.55 0.55\n")
    add("pose22_negative_kpt", "0 0.5 0.5 0.2 0.2 -0.005 0.45 0.55 0.55\n")
    add("pose22_class_1.5", "1.5 0.5 0.5 0.2 0.2 0.45 0.45 0.55 0.55\n")
    add("pose22_class_3", "3 0.5 0.5 0.2 0.2 0.45 0.45 0.55 0.55\n")
    add("pose22_and_quad", "0 0.5 0.5 0.2 0.2 0.45 0.45 0.55 0.55\n1 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5\n")
    add("pose23_and_tri", "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 1\n1 0.1 0.1 0.4 0.1 0.4 0.5\n")
    return c


def _num(rng: random.Random, lo: float = 0.0, hi: float = 1.0) -> str:
    r = rng.random()
    if r < 0.12:
        return rng.choice(EDGE)
    v = rng.uniform(lo, hi)
    return rng.choice(("{:.6f}", "{:.3f}", "{:g}", "{:.9f}", "{:.2e}")).format(v)


def _row(rng: random.Random) -> str:
    kind = rng.choices(("box", "poly", "pose23", "pose22", "bad", "short"), (5, 3, 2, 1, 1, 1))[0]
    cls = rng.choice(CLASSES) if rng.random() < 0.15 else str(rng.randrange(NC))
    if kind == "box":
        vals = [_num(rng, 0.05, 0.95), _num(rng, 0.05, 0.95), _num(rng, 0, 0.5), _num(rng, 0, 0.5)]
    elif kind == "poly":
        k = rng.choice((3, 3, 4, 4, 5, 8, 1))
        vals = [_num(rng, -0.02, 1.02) if rng.random() < 0.2 else f"{rng.uniform(0.05, 0.95):.5f}" for _ in range(2 * k)]
    elif kind in ("pose23", "pose22"):
        d = 3 if kind == "pose23" else 2
        vals = [f"{rng.uniform(0.2, 0.8):.4f}", f"{rng.uniform(0.2, 0.8):.4f}", f"{rng.uniform(0, 0.3):.4f}",
                f"{rng.uniform(0, 0.3):.4f}"]
        for _ in range(2):
            vals += [_num(rng), _num(rng)] + ([rng.choice(("0", "1", "2", "2.0", "-1"))] if d == 3 else [])
    elif kind == "bad":
        vals = [_num(rng), rng.choice(("abc", "0,5", "--1", "")), _num(rng), _num(rng)]
    else:
        vals = [_num(rng) for _ in range(rng.choice((0, 1, 2, 3, 5)))]
    sep = rng.choice((" ", " ", " ", "\t", "  "))
    return sep.join([cls, *[v for v in vals if v != ""]])


def _random(n: int, seed: int = 16) -> list[tuple[str, bytes]]:
    """Random files: a few rows each, mostly one kind (so many files are valid), repeats and blank lines mixed in."""
    rng = random.Random(seed)
    out = []
    for j in range(n):
        rows = []
        first = _row(rng)
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.5 and rows:
                rows.append(rng.choice(rows) if rng.random() < 0.3 else first)
            elif r < 0.6:
                rows.append("")
            else:
                rows.append(_row(rng) if rng.random() < 0.3 else _similar(rng, first))
        text = rng.choice(("\n", "\r\n")).join([first] + rows) + rng.choice(("", "\n"))
        data = text.encode()
        if rng.random() < 0.1:
            data = b"\xef\xbb\xbf" + data
        out.append((f"random_{j:03d}", data))
    return out


def _similar(rng: random.Random, row: str) -> str:
    """A row of the same shape as ``row`` with fresh values (same column count)."""
    n = len(row.split())
    cls = str(rng.randrange(NC))
    if n == 5:
        return " ".join([cls] + [f"{rng.uniform(0.05, 0.5):.4f}" for _ in range(4)])
    return " ".join([cls] + [f"{rng.uniform(0.05, 0.95):.4f}" for _ in range(n - 1)])


def _random_pose(n: int, seed: int = 17) -> list[tuple[str, bytes]]:
    """Files of pose rows only (kpt 2×3 or 2×2), a few values at the edges, some repeated rows."""
    rng = random.Random(seed)
    out = []
    for j in range(n):
        d = rng.choice((2, 3))
        rows = []
        for _ in range(rng.randint(1, 4)):
            vals = [str(rng.randrange(NC)) if rng.random() > 0.05 else rng.choice(CLASSES)]
            vals += [f"{rng.uniform(0.2, 0.8):.5f}" for _ in range(2)] + [f"{rng.uniform(0, 0.4):.5f}" for _ in range(2)]
            for _ in range(2):
                vals += [_num(rng) if rng.random() < 0.1 else f"{rng.uniform(0, 1):.4f}" for _ in range(2)]
                if d == 3:
                    vals.append(rng.choice(("0", "1", "2", "2.0", "0.5")))
            rows.append(" ".join(vals))
            if rng.random() < 0.15:
                rows.append(rows[-1])
        out.append((f"pose{d}_random_{j:03d}", ("\n".join(rows) + "\n").encode()))
    return out


def corpus() -> list[tuple[str, bytes]]:
    return _hand() + _random(160) + _random_pose(60)


def _f(a) -> list:
    import numpy as np

    return np.asarray(a, np.float32).astype(np.float64).tolist()


def record() -> dict:
    import numpy as np
    from PIL import Image

    import ultralytics
    from ultralytics.data.utils import verify_image_label

    files = corpus()
    out = {"ultralytics": ultralytics.__version__, "nc": NC,
           "readings": [{"name": n, "task": t, "kpt_shape": k, "single_cls": s} for n, t, k, s in READINGS],
           "files": []}
    with tempfile.TemporaryDirectory() as d:
        img = Path(d) / "im.png"
        Image.new("RGB", (16, 16), (114, 114, 114)).save(img)
        for name, data in files:
            lb_file = Path(d) / "lb.txt"
            lb_file.write_bytes(data)
            rec = {"name": name, "data": base64.b64encode(data).decode(), "verdicts": {}}
            for rname, task, kpt, single in READINGS:
                nkpt, ndim = kpt or (0, 0)
                res = verify_image_label((str(img), str(lb_file), "", task == "pose", NC, nkpt, ndim, single))
                if res[0] is None:
                    rec["verdicts"][rname] = {"corrupt": True, "msg": res[-1].split("ignoring corrupt image/label: ")[-1]}
                    continue
                lb, segments, kp = res[1], res[3], res[4]
                lb = lb.copy()
                if single:  # the dataset's update_labels, right after this check
                    lb[:, 0] = 0
                v = {"corrupt": False, "rows": _f(lb), "dup_msg": res[-1]}
                if segments:
                    v["segments"] = [_f(s) for s in segments]
                if kp is not None:
                    v["keypoints"] = _f(kp)
                rec["verdicts"][rname] = v
            out["files"].append(rec)
    return out


def main() -> None:
    doc = record()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    n = len(doc["files"])
    bad = {r["name"]: sum(f["verdicts"][r["name"]]["corrupt"] for f in doc["files"]) for r in doc["readings"]}
    print(f"{OUT}: {n} files; corrupt per reading: {bad}", file=sys.stderr)


if __name__ == "__main__":
    main()
