"""PNG overlays: pixels at known anchor centres, letterboxing of a real picture, the CLI options."""

from __future__ import annotations

import numpy as np
from PIL import Image

from yolotal.config import config_from_dict
from yolotal.inputs.labels import labels_from_array
from yolotal.inputs.pictures import PAD_VALUE, letterbox_for
from yolotal.pipeline import run
from yolotal.render.png import RED, gt_colour, panel_data, panel_origin, render_png


def trace_of(rows, profile="ultralytics", imgsz=64, kind="trained"):
    cfg = config_from_dict({"imgsz": imgsz, "nc": 3, "assigner": {"profile": profile}, "heads": {"kind": kind}})
    return run(cfg, labels_from_array(np.array(rows, np.float32).reshape(-1, 6), 1))


def pixel(img, trace, level, xy):
    x0, y0 = panel_origin(trace, 0, level)
    return img.getpixel((int(x0 + xy[0]), int(y0 + xy[1])))


def test_positive_dots_and_candidate_rings_at_anchor_centres(tmp_path):
    t = trace_of([[0, 1, 0.5, 0.5, 0.6, 0.6], [0, 2, 0.2, 0.2, 0.1, 0.1]])
    img = Image.open(render_png(t, [0], tmp_path / "a.png")).convert("RGB")
    data = panel_data(t, 0)
    ap = (t["anchor_points"] * t["stride_tensor"]).numpy()
    level_of = {a: lv.index for lv in t.levels for a in range(lv.start, lv.stop)}
    assert data.pos, "the trained heads give positives"
    for a, m, _ in data.pos:  # a filled dot in the GT's colour exactly at the anchor centre
        assert pixel(img, t, level_of[a], ap[a]) == gt_colour(m)
    from collections import Counter

    claims = Counter(a for a, _ in data.cand)
    positives = {a for a, _, _ in data.pos}
    rings = [(a, m) for a, m in data.cand if level_of[a] == 0 and claims[a] == 1 and a not in positives][:5]
    assert rings
    for a, m in rings:  # a ring: hollow at the centre, the GT's colour on the circle
        stride = t.levels[0].stride
        r = max(2.0, stride * 0.3)
        assert pixel(img, t, 0, ap[a]) != gt_colour(m)
        column = [pixel(img, t, 0, (ap[a][0], ap[a][1] - r + dy)) for dy in (-1, 0, 1)]
        assert gt_colour(m) in column


def test_gt_without_positive_is_red_and_enlarged_box_dashed(tmp_path):
    # a 2 px GT in the classic profile has no candidate at all: red, and no dashed box (no enlargement)
    t = trace_of([[0, 0, 0.5, 0.5, 0.03, 0.03], [0, 1, 0.25, 0.25, 0.4, 0.4]], profile="classic")
    assert t["mask_in_gts"][0, 0].sum() == 0
    img = Image.open(render_png(t, [0], tmp_path / "b.png")).convert("RGB")
    x1, y1, x2, y2 = t["gt_bboxes"][0, 0].tolist()
    assert pixel(img, t, 0, (round(x1), round((y1 + y2) / 2))) == RED
    # the ultralytics profile enlarges it to 16 px: dashes on the enlarged box, in the GT's colour
    u = trace_of([[0, 0, 0.5, 0.5, 0.03, 0.03], [0, 1, 0.25, 0.25, 0.4, 0.4]])
    img = Image.open(render_png(u, [0], tmp_path / "c.png")).convert("RGB")
    cx1, cy1, cx2, cy2 = u["cand_bboxes"][0, 0].tolist()
    has_pos = bool((u["fg_mask"][0] & (u["target_gt_idx"][0] == 0)).any())
    colour = gt_colour(0) if has_pos else RED
    top_edge = [pixel(img, u, 0, (x, round(cy1))) for x in range(int(cx1) + 1, int(cx2))]
    assert colour in top_edge and any(p != colour for p in top_edge)  # dashed, not solid


def test_letterboxed_picture(tmp_path, cli):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (100, 50), (10, 200, 30)).save(tmp_path / "images" / "p.png")
    (tmp_path / "labels" / "p.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    lb = letterbox_for(100, 50, (64, 64))
    assert (lb.new_w, lb.new_h, lb.left, lb.top) == (64, 32, 0, 16)
    out, npz = tmp_path / "o.png", tmp_path / "o.npz"
    code, text, err = cli("assign", tmp_path / "labels" / "p.txt", "--imgsz", "64", "--nc", "1", "--png", out,
                          "--export", npz)
    assert code == 0, err
    assert "100×50 px, r = 0.64, resized to 64×32, padded left 0 top 16 px on the 64×64 canvas" in " ".join(text.split())
    assert "1 on their picture" in text
    gt = np.load(npz)["gt_bboxes"][0, 0]
    np.testing.assert_allclose(gt, [16, 24, 48, 40])  # the label, mapped through the letterbox
    img = Image.open(out).convert("RGB")
    from yolotal.render.png import GAP, HEADER

    assert img.getpixel((GAP + 3, HEADER + 3)) == (PAD_VALUE,) * 3  # padding band, off the grid lines
    assert img.getpixel((GAP + 3, HEADER + 20)) == (10, 200, 30)  # the picture


def test_png_cli_errors(cli, tmp_path):
    from pathlib import Path

    labels = Path(__file__).resolve().parents[1] / "samples" / "coco8" / "labels"
    code, _, err = cli("assign", labels, "--png", tmp_path / "x.jpg")
    assert code == 2 and "--png path must end in .png" in err
    code, _, err = cli("assign", labels, "--png", tmp_path / "nope" / "x.png")
    assert code == 2 and "PNG directory does not exist" in err
    code, _, err = cli("assign", labels, "--image-file", tmp_path / "missing.jpg")
    assert code == 2 and "image file not found" in err
    code, out, err = cli("walk", "--png", tmp_path / "w.png")
    assert code == 0 and "4 image(s) × 3 levels; 0 on their picture, 4 on a blank canvas" in " ".join(out.split())
    assert Image.open(tmp_path / "w.png").size[0] == 3 * 640 + 4 * 8


def test_panel_headers_fit_narrow_panels():
    from yolotal.render.png import _fit, _font

    font = _font(13)
    texts = ("tal (ultralytics) · image 0 · landscape · level 0: stride 8, 40x40 anchors", "tal · image 0 · L0 s8 40x40",
             "0 L0 s8")
    assert _fit(font, 2000, texts) == texts[0]
    assert _fit(font, 320, texts) == texts[1] and font.getlength(texts[1]) <= 320
    assert _fit(font, 10, texts) == texts[2]  # nothing fits: the shortest
