"""HTML reports without a browser: self-contained markup, gallery crops drawn where the anchors are, the rows the
per-GT table embeds, matplotlib charts (scan and health), atomic writes. The page in a real browser:
test_html_browser.py."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolotal.config import config_from_dict
from yolotal.errors import InputError
from yolotal.inputs.labels import labels_from_array
from yolotal.pipeline import run
from yolotal.render.gallery import (BOX_BAD, BOX_OK, BOX_UNKNOWN, GalleryItem, anchor_centres_in, crop_window,
                                    gallery_from_scan, gallery_from_trace, gt_crop, level_colour)
from yolotal.render.html import (health_html, scan_gt_rows, scan_html, write_geometry_scan_html, write_run_html,
                                 write_scan_html)
from yolotal.render.run_rows import run_doc, trace_rows
from yolotal.scanning import report, scan

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "samples" / "shapes" / "shapes.yaml"


def trace_of(rows, name="tal", imgsz=128, n_images=2):
    cfg = config_from_dict({"imgsz": imgsz, "nc": 3, "assigner": {"name": name}, "heads": {"kind": "trained"}})
    return run(cfg, labels_from_array(np.array(rows, np.float32).reshape(-1, 6), n_images), with_loss=True)


ROWS = [[0, 1, .5, .5, .6, .6], [0, 2, .2, .2, .1, .1], [0, 0, .8, .8, .03, .03], [1, 1, .3, .6, .2, .3]]


def gt_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="gt-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def assert_self_contained(text: str) -> None:
    """No reference that a browser would fetch: every src/href is a data: URI or an in-page anchor, no CSS url()
    or @import, no script src; and the CSP forbids every other source."""
    assert "default-src 'none'" in text
    for attr, val in re.findall(r'\b(src|href|xlink:href|action|poster)\s*=\s*"([^"]*)"', text):
        assert val.startswith(("data:", "#")), (attr, val[:80])
    assert "@import" not in text and not re.search(r"url\((?!#)", text)
    assert "<link" not in text and "<iframe" not in text


# ------------------------------------------------------------------------------------------------ the pages
@pytest.fixture(scope="module")
def shapes():
    return scan(SHAPES, (640, 640), (8, 16, 32), 16)


def test_geometry_scan_page(shapes, tmp_path):
    p = write_geometry_scan_html(shapes, tmp_path / "scan.html")
    text = p.read_text()
    assert_self_contained(text)
    for sid in ("overview", "alerts", "classes", "sizes", "levels", "gallery", "gts"):
        assert f'<section id="{sid}"' in text
    doc = report(shapes)
    assert f'<section id="gts" data-count="{doc["gts"]}"' in text
    assert f'data-alert="tiny" data-count="{doc["flag_counts"]["tiny"]}"' in text
    assert 'data-alert="corrupt" data-count="0"' in text
    assert text.count("<svg") == 3  # classes, sizes, levels: matplotlib's inline SVG
    assert text.count('<img src="data:image/png;base64,') == len(gallery_from_scan(shapes)) == 1
    data = gt_data(text)
    assert len(data["rows"]) == doc["gts"] == 9  # train and val are one folder: each file counted once
    labels = [c["label"] for c in data["columns"]]
    row0 = dict(zip(labels, data["rows"][0]))
    first = scan_gt_rows(shapes)[0]
    assert data["files"][row0["file"]] == first["file"] and row0["line"] == first["line"]
    assert row0["cand. classic"] == int(shapes.geo.cand_classic[0].sum())
    tiny = [r for r in data["rows"] if "tiny" in r[labels.index("flags")]]
    assert len(tiny) == 1


def test_scan_rows_match_the_geometry(shapes):
    rows = scan_gt_rows(shapes)
    assert len(rows) == len(shapes.parsed.rows)
    flags = shapes.flags()
    for i, r in enumerate(rows):
        assert r["box"] == pytest.approx(shapes.geo.box_px[i].tolist(), abs=0.005)
        assert r["candidates_ultralytics"] == int(shapes.geo.cand_ultra[i].sum())
        assert set(r["flags"]) == {k for k, v in flags.items() if v[i]}
    assert {r["name"] for r in rows} == {"box", "disc", "triangle"}


def test_report_without_rows_shows_the_flagged_gts(shapes):
    doc = report(shapes)
    data = gt_data(scan_html(doc))
    assert len(data["rows"]) == len(doc["flagged"]) == 1
    assert [c["label"] for c in data["columns"]][-1] == "flags"


def model_doc(n: int = 40, seed: int = 0) -> dict:
    """A scan --model document shaped as summarise() makes it (meta added as the CLI adds it)."""
    from yolotal.scan_model import GTRecord, ModelScan, summarise

    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        x, y = rng.uniform(0, 500, 2).tolist()
        w, h = rng.uniform(2, 200, 2).tolist()
        pos = int(rng.integers(0, 11))
        weighted = int(rng.integers(0, pos + 1))
        s = float(rng.uniform(0, 3)) if weighted else 0.0
        lv = [pos, 0, 0]
        flags = () if weighted else (("no positive",) if not pos else ("zero-weight positives",))
        recs.append(GTRecord(f"data/labels/img{i // 4:05d}.txt", i % 4 + 1, int(rng.integers(0, 5)),
                             (x, y, x + w, y + h), w * h, pos + 3, pos, weighted, s, s / max(pos, 1),
                             float("nan") if not pos else 0.5, float("nan") if not pos else 0.7, tuple(lv), flags))
    res = ModelScan(batches={0: (recs, [], [{"file": "data/labels/bad.txt", "line": 3, "reason": "not a number"}])},
                    n_done=n // 4 + 1, n_run=n // 4)
    doc = summarise(res, ["car", "person", "dog", "cat", "bus"])
    doc["meta"] = {"dataset": "data.yaml", "split": "train", "model": "best.pt", "arch": "yolo11n", "nc": 5,
                   "imgsz": [640, 640], "device": "cpu", "assigner": "tal", "profile": "ultralytics", "topk": 10}
    return doc


def test_model_scan_page():
    doc = model_doc()
    text = scan_html(doc)
    assert_self_contained(text)
    no_pos = sum(r["positives"] == 0 for r in doc["per_gt"])
    zero_w = sum(r["positives"] > 0 and r["weighted_positives"] == 0 for r in doc["per_gt"])
    assert f'data-alert="no_positive" data-count="{no_pos}"' in text
    assert f'data-alert="zero_weight" data-count="{zero_w}"' in text
    assert 'data-alert="corrupt" data-count="1"' in text and "data/labels/bad.txt:3: not a number" in text
    assert f'<section id="classes" data-count="{len(doc["by_class"])}"' in text
    assert text.count("<svg") == 4  # starved and quality charts, per class and per size
    data = gt_data(text)
    assert len(data["rows"]) == 40 and len(data["files"]) == 10  # file names stored once
    labels = [c["label"] for c in data["columns"]]
    nan_row = next(r for r, d in zip(data["rows"], doc["per_gt"]) if d["mean_iou"] is None)
    assert nan_row[labels.index("mean IoU")] is None  # strict JSON: NaN becomes null


def test_hostile_names_cannot_break_out_of_the_page():
    doc = model_doc(4)
    evil = "</script><script>alert(1)</script><!--"
    for r in doc["per_gt"]:
        r["file"] = evil
    doc["meta"]["dataset"] = "<b>x</b>"
    text = scan_html(doc)
    assert text.count("<script>alert(1)") == 0 and "&lt;b&gt;x&lt;/b&gt;" in text
    assert gt_data(text)["files"] == [evil]  # the JSON block holds the name intact


def test_run_page_for_every_assigner(tmp_path):
    for name in ("tal", "atss", "simota", "yolov5"):
        t = trace_of(ROWS, name)
        p = write_run_html(t, tmp_path / f"{name}.html", gallery=3)
        text = p.read_text()
        assert_self_contained(text)
        assert text.count('<img src="data:image/png;base64,') == 3
        assert len(gt_data(text)["rows"]) == 4
        if name in ("simota", "yolov5"):
            assert "gives no soft target scores" in text


def test_run_rows_are_the_scan_model_rows():
    from yolotal.scan_model import _row, records_of

    t = trace_of(ROWS)
    recs, _ = records_of(t)
    assert trace_rows(t) == [_row(r, None) for r in recs]
    doc = run_doc(t)
    assert doc["gts"] == 4 and doc["loss_mean"]["box"] == pytest.approx(float(t["loss_box"]), rel=1e-4)
    pos = t["pos_triples"]
    assert sum(r["positives"] for r in doc["per_gt"]) == len(pos)
    # yolov5 / simota: positives weigh 1 each
    y = trace_of(ROWS, "yolov5")
    rows = trace_rows(y)
    assert [r["score_sum"] for r in rows] == [float(r["positives"]) for r in rows]


# ------------------------------------------------------------------------------------------------ gallery crops
def test_crop_window_stays_on_the_canvas():
    assert crop_window((0, 0, 4, 4), (640, 640)) == (0, 0, 48)
    assert crop_window((630, 630, 640, 640), (640, 640)) == (592, 592, 48)
    x0, y0, side = crop_window((100, 100, 200, 150), (640, 640))
    assert side == 220 and x0 <= 100 and x0 + side >= 200 and y0 <= 100 and y0 + side >= 150
    assert crop_window((0, 0, 640, 640), (640, 640))[2] == 640


def test_crop_draws_box_candidates_and_positives_where_they_are():
    canvas = np.full((64, 64, 3), 114, np.uint8)
    box = (10.0, 12.0, 34.0, 36.0)
    cand = np.array([[20.0, 20.0, 8], [28.0, 28.0, 8]])
    pos = np.array([[20.0, 20.0, 8]])
    png = gt_crop(canvas, box, cand, pos, strides=(8, 16, 32), out=192, min_side=48)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    x0, y0, side = crop_window(box, (64, 64), 48)
    k = 192 / side

    def at(x, y):
        return img.getpixel((int(round((x - x0) * k)), int(round((y - y0) * k))))

    assert img.size == (192, 192)
    assert at(20, 20) == level_colour(8, (8, 16, 32))  # a filled dot at the positive's centre
    assert at(28, 28) == (114, 114, 114)  # a ring: hollow at the centre
    assert at(10, 24) == BOX_OK  # the GT's left edge, green: it has a positive
    none = Image.open(io.BytesIO(gt_crop(canvas, box, cand, None))).convert("RGB")
    assert BOX_BAD in {c for _, c in none.getcolors(1 << 16)}
    unknown = Image.open(io.BytesIO(gt_crop(canvas, box, cand, None, known=False))).convert("RGB")
    assert BOX_UNKNOWN in {c for _, c in unknown.getcolors(1 << 16)}


def test_crop_of_an_image_file_is_its_letterboxed_picture():
    from yolotal.inputs.pictures import image_size, letterbox_for, load_letterboxed
    from yolotal.render.gallery import crop_of_image

    pic = ROOT / "samples" / "shapes" / "images" / "landscape.jpg"  # 640x480: padded 80 px top and bottom at 640
    lb = letterbox_for(*image_size(pic), (640, 640))
    box = (300.0, 2.0, 340.0, 30.0)  # in the top padding band and the picture below it
    png = crop_of_image(pic, lb, (640, 640), box, min_side=96, out=96)  # 1:1: pixels are the canvas's
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    x0, y0, side = crop_window(box, (640, 640), 96)
    canvas = load_letterboxed(pic, lb, (640, 640))
    assert side == 96 and lb.top == 80
    assert (img[70, 5] == canvas[y0 + 70, x0 + 5]).all() and (img[5, 5] == 114).all()  # padding grey


def test_anchor_centres_in_box_count_like_the_scan(shapes):
    for i in range(len(shapes.parsed.rows)):
        pts = anchor_centres_in(shapes.geo.box_px[i], (640, 640), (8, 16, 32))
        per_level = [int((pts[:, 2] == s).sum()) for s in (8, 16, 32)]
        assert per_level == shapes.geo.cand_classic[i].tolist()


def test_gallery_from_scan_picks_the_flagged_on_the_letterboxed_picture(shapes):
    items = gallery_from_scan(shapes, 10)
    assert [it.title for it in items] == ["square.txt:2"]  # the tiny GT (listed by train and val, counted once)
    it = items[0]
    assert it.flags == ("tiny",) and it.numbers["class"] == "box" and it.numbers["candidates classic"] == 1
    img = Image.open(io.BytesIO(it.png))
    assert img.size == (192, 192) and len(img.convert("RGB").getcolors(1 << 16)) > 20  # a real picture behind


def test_gallery_from_trace_draws_the_runs_anchors():
    t = trace_of(ROWS)
    items = gallery_from_trace(t, 2)
    from yolotal.render.run_rows import trace_records, worst_key

    worst = sorted(trace_records(t), key=worst_key)[:2]
    assert [it.title for it in items] == [f"<array>:{r.line}" for r in worst]
    assert items[0].numbers["positives"] == worst[0].positives
    picked = gallery_from_trace(t, select=[("<array>", 4), ("<array>", 1), ("nowhere", 9)])
    assert [it.title for it in picked] == ["<array>:4", "<array>:1"]
    assert all(isinstance(it, GalleryItem) and it.png.startswith(b"\x89PNG") for it in picked)


# ------------------------------------------------------------------------------------------------ charts / health
def health_rows(n: int = 6) -> list[dict]:
    rows = []
    for e in range(1, n + 1):
        r = {"epoch": e, "batches": 10}
        for g, gts in (("all", 300), ("small", 100), ("medium", 100), ("large", 100)):
            r.update({f"{g}/gts": gts, f"{g}/no_pos": gts // (2 * e), f"{g}/starved": gts // (4 * e),
                      f"{g}/pos_per_gt": 5 + 0.3 * e, f"{g}/score": 0.1 + 0.05 * e, f"{g}/iou": 0.3 + 0.04 * e})
        rows.append(r)
    return rows


def test_health_png_with_matplotlib(tmp_path):
    from yolotal.render.health import PANELS, draw_health_png, health_figure

    fig = health_figure(health_rows(), "assignment health · run")
    axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in axes] == [p[0] for p in PANELS]  # titles keep their spaces
    for ax in axes:
        assert ax.get_xlabel() == "epoch"
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 6]
        assert all(float(t).is_integer() for t in ticks)  # epochs: whole numbers
        y = ax.get_yticks()
        step = y[1] - y[0]
        mant = step / 10 ** np.floor(np.log10(step))
        assert min(abs(mant - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6  # nice steps, not 5.1 or 0.097
    legend = [t.get_text() for ax in fig.axes for lg in [ax.get_legend()] if lg for t in lg.get_texts()]
    assert legend == ["all GTs", "small (area < 32² px)", "medium (< 96² px)", "large"]
    p = draw_health_png(health_rows(), tmp_path / "h.png", "x")
    im = Image.open(p)
    assert im.size[0] >= 1200 and len(im.convert("RGB").getcolors(1 << 20)) > 50
    assert not list(tmp_path.glob(".*tmp"))


def test_health_page_has_the_same_panels(tmp_path):
    from yolotal.render.health import PANELS
    from yolotal.render.html import write_health_html

    text = write_health_html(health_rows(), tmp_path / "h.html").read_text()
    assert_self_contained(text)
    assert text.count("<svg") == len(PANELS)
    for name, _, _ in PANELS:
        assert f">{name.replace('<', '&lt;')}</text>" in text  # SVG text kept as text, spaces and all
    assert '<section id="epochs" data-count="6"' in text
    assert health_html([]).count("<svg") == len(PANELS)  # no rows: empty panels, no crash


def test_charts_are_inline_svg_without_references():
    from yolotal.render.charts import bar_chart, svg

    s = svg(bar_chart(["a", "b"], {"x": [1, 2], "y": [None, 3]}, "title with  spaces"))
    assert s.startswith("<svg") and 'class="chart"' in s and "viewBox" in s
    assert "title with  spaces" in s or "title with&#160; spaces" in s or "title with spaces" in s
    assert not re.search(r'(href|src)="(?!#)', s)
    assert svg(bar_chart(["a"], {"x": [1]}, "t")) == svg(bar_chart(["a"], {"x": [1]}, "t"))  # deterministic


# ------------------------------------------------------------------------------------------------ writing
def test_written_atomically_and_refused_where_it_cannot_go(tmp_path):
    doc = model_doc(4)
    target = tmp_path / "r.html"
    target.write_text("old")
    write_scan_html(doc, target)
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind
    with pytest.raises(InputError, match="does not exist"):
        write_scan_html(doc, tmp_path / "missing" / "r.html")
    (tmp_path / "d.html").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        write_scan_html(doc, tmp_path / "d.html")


# ------------------------------------------------------------------------------------------------ scan --model gallery
def test_collector_keeps_the_worst_over_batches():
    from yolotal.render.gallery import GalleryCollector

    traces = [trace_of(ROWS), trace_of([[0, 0, .5, .5, .02, .02], [1, 2, .4, .4, .3, .3]])]
    col = GalleryCollector(3)
    for k, t in enumerate(traces):
        col.add(k, t)
    from yolotal.render.run_rows import trace_records, worst_key

    keyed = sorted(((*worst_key(r), k, i), r.line) for k, t in enumerate(traces) for i, r in enumerate(trace_records(t)))
    assert [it.title for it in col.items] == [f"<array>:{line}" for _, line in keyed[:3]]
    merged = GalleryCollector(3)
    merged.add(0, traces[0])
    other = GalleryCollector(3)
    other.add(1, traces[1])
    assert [it.title for it in merged.merge([other]).items] == [it.title for it in col.items]


def test_scan_model_gallery_shows_the_reports_worst_gts(tmp_path):
    pytest.importorskip("ultralytics", reason="--model needs the optional extra yolotal[ultralytics]")
    from yolotal.config import load_config, with_overrides
    from yolotal.inputs.model import load_model
    from yolotal.prepare import model_base
    from yolotal.render.gallery import GalleryCollector
    from yolotal.scanning import find_labels
    from yolotal.scan_model import run_scan, summarise

    lm = load_model("yolo11n.yaml", nc=3, seed=0)
    cfg = with_overrides(load_config(None, model_base(lm)), imgsz=[320, 320])
    ls = find_labels(SHAPES, ("train",))
    items = [(str(f), str(i)) for f, i in zip(ls.files, ls.images)]
    col = GalleryCollector(6, list(ls.names))
    res = run_scan(items, cfg, lm, 2, 1, on_trace=col.add)
    doc = summarise(res, list(ls.names))
    worst = [f"{Path(r['file']).name}:{r['line']}" for r in doc["worst_gts"]]
    assert worst and [it.title for it in col.items][: len(worst)] == worst
    text = write_scan_html(doc, tmp_path / "m.html", gallery=col.items).read_text()
    assert text.count('<img src="data:image/png;base64,') == 6
    first = col.items[0]
    assert first.numbers["Σ target score"] == doc["worst_gts"][0]["score_sum"]
