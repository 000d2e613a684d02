"""Issue 11, items 6, 9, 10, 11, 12: output width, warnings on stderr, one number format, option forms,
output paths checked before any work, per-GT flags and their order, decode's GT, YOLOv5 gains, SimOTA's topk,
the export's meta."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT

SAMPLES = ROOT / "samples"
COCO8 = SAMPLES / "coco8" / "labels"
WALK = ("-c", ROOT / "configs" / "walkthrough.yaml")
WALK_LABELS = SAMPLES / "walkthrough_batch.txt"
# an ellipsis that ends a table cell: followed by spaces, a border or the end of the line
CUT = re.compile(r"…(\s|[│┃]|$)")


# ------------------------------------------------------------------------------------------------ item 6
@pytest.mark.parametrize("args", [
    ("assign", COCO8, "--synthetic", "trained"),
    ("assign", COCO8, "--synthetic", "trained", "--budget-mb", "1"),
    ("assign", COCO8, "--synthetic", "trained", "--assigner", "simota"),
    ("assign", COCO8, "--assigner", "yolov5"),
    ("assign", COCO8, "--synthetic", "trained", "--assigner", "atss"),
    ("loss", COCO8, "--synthetic", "trained"),
    ("loss", COCO8, "--assigner", "simota"),
    ("loss", COCO8, "--assigner", "yolov5"),
    ("walk",),
    ("walk", COCO8, "--assigner", "simota"),
    ("decode", COCO8, "--synthetic", "trained", "-i", "3"),
    ("compare", COCO8, "--synthetic", "trained"),
    ("scan", COCO8, "--simulate"),
    ("anchors", "--imgsz", "1280"),
])
def test_80_columns_nothing_cut(cli, monkeypatch, args):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(*args)
    assert code == 0, err
    lines = out.splitlines()
    # piped output honours COLUMNS; one-line messages naming a file are left for the terminal to wrap
    wide = [x for x in lines if len(x) > 80 and not x.lstrip().startswith(("note:", "✗")) and ".txt:" not in x]
    assert not wide, wide
    cut = [x for x in lines if CUT.search(x)]
    assert not cut, cut
    assert not re.search(r"\d[.,]?\d*e[+-]\d\d", "\n".join(x for x in lines if "(" in x and "px" in x))


def test_80_columns_numbers_whole(cli, monkeypatch, tmp_path):
    """At 80 columns each candidate row still holds its anchor, s and u whole, and the loss tables their values."""
    monkeypatch.setenv("COLUMNS", "80")
    z = tmp_path / "t.npz"
    code, out, err = cli("assign", COCO8, "--synthetic", "trained", "-i", "3", "--export", z)
    assert code == 0, err
    t = np.load(z)
    rows = [x for x in out.splitlines()]
    cand = np.nonzero(t["mask_in_gts"][3, 2])[0]
    order = cand[np.argsort(-t["align_metric"][3, 2, cand], kind="stable")][:13]
    for a in order:
        s, u = t["bbox_scores"][3, 2, a], t["overlaps"][3, 2, a]
        assert any(re.search(rf"\s{a}\s+\d+,\d+\s+{s:.4f}\s+{u:.4f}\s", x) for x in rows), a
    code, out, err = cli("loss", COCO8, "--synthetic", "trained", "--export", z)
    t = np.load(z)
    total = float(t["loss_box"] + t["loss_cls"] + t["loss_dfl"])
    assert f" {total:.6g} " in out and f" {total * 4:.6g} " in out


def test_columns_default_and_invalid(monkeypatch):
    from yolotal.cli import _width

    class Pipe:
        def isatty(self):
            return False

    monkeypatch.delenv("COLUMNS", raising=False)
    assert _width(Pipe()) == 100
    monkeypatch.setenv("COLUMNS", "132")
    assert _width(Pipe()) == 132
    monkeypatch.setenv("COLUMNS", "wide")
    assert _width(Pipe()) == 100


def test_fit_drops_secondary_columns_and_says_so():
    from rich.console import Console
    from rich.table import Table

    from yolotal.render.fmt import fit

    con = Console(width=40, record=True, file=open("/dev/null", "w"))
    tab = Table()
    for c in ("value", "other", "note"):
        tab.add_column(c)
    tab.add_row("123456789.123", "987654321.987", "a b c abcdefghijklmnop d e f g h i j k l m n o p q r")
    con.print(fit(con, tab, ("other",)))
    text = con.export_text()
    assert "123456789.123" in text and "987654321.987" not in text and "…" not in text
    assert "not shown at 40 columns: other" in text


def test_warnings_on_stderr_once(cli, write, tmp_path):
    p = write("big.txt", "0 0.5 0.5 0.99 0.99\n")
    code, out, err = cli("loss", p, "--nc", "1", "--synthetic", "trained", "--imgsz", "1270")
    assert code == 0, err
    assert "warning:" not in out
    assert err.count("warning: imgsz [1270, 1270] is not a multiple of the largest stride 32") == 1
    assert err.count("DFL target side(s) clamped") == 1
    log = tmp_path / "w.log"
    code, out, err = cli("walk", p, "--nc", "1", "--imgsz", "650", "--log", log)
    assert code == 0, err
    assert "warning:" not in out and err.count("warning: imgsz [650, 650]") == 1
    assert log.read_text().count("warning: imgsz [650, 650]") == 1  # the log keeps what the run said


def test_number_format_helpers():
    from yolotal.render.fmt import box, num, point, short, size

    assert num(-0.04) == "0.0" and num(-0.4, 0) == "0" and num(-0.32, 0) == "0" and num(-1.26) == "-1.3"
    assert num(1267.25) == "1267.2" or num(1267.25) == "1267.3"
    assert size(1267.0) == "1267" and size(629.4) == "629" and size(12.8) == "12.8" and size(6.4) == "6.40"
    assert size(99.96) == "100" and size(9.996) == "10.0"
    assert short(636.0) == "636" and short(0.5) == "0.5" and short(-0.0) == "0" and short(12345678.0) == "12345678"
    assert point(torch.tensor([79.5, 636.0])) == "(79.5,636)"
    assert box([-0.01, 3, 1267.04, 5e6]) == "(0.0,3.0,1267.0,5000000.0)"


def test_coordinates_print_one_way(cli, write):
    # the seed walkthrough has a GT at y1 = -0.32 px: no "-0" in its per-GT summary box
    code, out, _ = cli("walk")
    assert code == 0
    assert "(218,0 490,69)" in out and "-0 " not in out and "(-0," not in out
    # a 1267-px box: its size prints as 1267, not 1.27e+03
    p = write("big.txt", "0 0.5 0.5 0.99 0.99\n")
    code, out, _ = cli("assign", p, "--nc", "1", "--imgsz", "1280")
    assert code == 0
    assert "1267×1267" in out and "e+03" not in out


# ------------------------------------------------------------------------------------------------ item 9
def test_version_and_short_help(cli):
    from yolotal import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"yolotal {__version__}"
    code, out, _ = cli("-h")
    assert code == 0 and "Commands" in out and "-h, --help" in out
    for c in ("anchors", "decode", "assign", "loss", "walk", "scan", "compare"):
        code, out, _ = cli(c, "-h")
        assert code == 0 and f"yolotal {c} [OPTIONS]" in out and "-h, --help" in out, c


def test_imgsz_comma_form(cli, write, tmp_path):
    p = write("a.txt", "0 0.5 0.5 0.2 0.3\n")
    cfg = write("c.yaml", "imgsz: [736, 1280]\n")
    outs = []
    for i, opts in enumerate((("--imgsz", "736,1280"), ("--imgsz", "736", "--imgsz", "1280"), ("-c", cfg))):
        e = tmp_path / f"{i}.npz"
        code, out, err = cli("assign", p, "--nc", "1", *opts, "--export", e)
        assert code == 0, err
        assert "imgsz" not in err  # 736 is a multiple of 32: no rounding
        outs.append(np.load(e))
    assert outs[0]["anchor_points"].shape == (92 * 160 + 46 * 80 + 23 * 40, 2)
    np.testing.assert_allclose(outs[0]["gt_bboxes"][0, 0], [512, 257.6, 768, 478.4], rtol=1e-6)  # w 1280, h 736
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0]["gt_bboxes"], o["gt_bboxes"])
    code, out, _ = cli("anchors", "--imgsz", "720,1280")
    assert code == 0 and "imgsz 736×1280" in out
    for bad in ("720,x", "1,2,3", "0", "720,"):
        code, _, err = cli("anchors", "--imgsz", bad)
        assert code == 2 and "--imgsz: expected one size or h,w in px" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ item 10
def _no_work(monkeypatch):
    """Make any real work fail loudly: a path check that runs first wins."""
    import yolotal.pipeline
    import yolotal.scanning

    def boom(*a, **k):
        raise AssertionError("the run started before the output path was checked")

    monkeypatch.setattr(yolotal.pipeline, "run", boom)
    monkeypatch.setattr(yolotal.scanning, "scan", boom)


@pytest.mark.parametrize("args,path,msg", [
    (("assign", COCO8, "--export"), "nope/x.npz", "export directory does not exist"),
    (("loss", COCO8, "--export"), "nope/x.json", "export directory does not exist"),
    (("decode", COCO8, "--export"), "nope/x.npz", "export directory does not exist"),
    (("anchors", "--export"), "nope/x.npz", "export directory does not exist"),
    (("walk", "--export"), "nope/x.npz", "export directory does not exist"),
    (("walk", "--log"), "nope/run.log", "log directory does not exist"),
    (("assign", COCO8, "--png"), "nope/x.png", "PNG directory does not exist"),
    (("compare", COCO8, "--png"), "nope/x.png", "PNG directory does not exist"),
    (("scan", COCO8, "--report"), "nope/r.json", "report directory does not exist"),
    (("assign", COCO8, "--export"), "file.txt/x.npz", "export directory does not exist"),
    (("assign", COCO8, "--export"), "x.csv", "--export path must end in .npz or .json"),
    (("assign", COCO8, "--png"), "x.jpg", "--png path must end in .png"),
    (("compare", COCO8, "--png"), "x.svg", "--png path must end in .png"),
    (("scan", COCO8, "--report"), "r.txt", "--report path must end in .json"),
    (("assign", COCO8, "--export"), "adir.npz", "--export: is a directory, not a file"),
    (("assign", COCO8, "--model", "m.pt", "--save-heads"), "nope/h.npz", "--save-heads directory does not exist"),
    (("decode", COCO8, "--model", "m.pt", "--save-heads"), "h.pt", "--save-heads path must end in .npz"),
])
def test_output_paths_checked_before_any_work(cli, monkeypatch, tmp_path, args, path, msg):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "adir.npz").mkdir()
    _no_work(monkeypatch)
    target = tmp_path / path
    code, out, err = cli(*args, target)
    assert code == 2, err
    assert f"{target}: {msg}" in err and err.strip().count("\n") == 0 and "Traceback" not in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, where no file can be created")
def test_output_directory_not_writable(cli, monkeypatch):
    _no_work(monkeypatch)
    code, _, err = cli("assign", COCO8, "--export", "/proc/yolotal-x.npz")
    assert code == 2 and "/proc/yolotal-x.npz: export directory is not writable: /proc" in err


def test_output_directory_not_writable_chmod(cli, monkeypatch, tmp_path):
    import os

    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        if os.access(d, os.W_OK) and os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        _no_work(monkeypatch)
        code, _, err = cli("loss", COCO8, "--export", d / "x.npz")
        assert code == 2 and "export directory is not writable" in err
    finally:
        d.chmod(0o700)


# ------------------------------------------------------------------------------------------------ item 11
def _summary_rows(out: str, title: str) -> list[int]:
    """GT indices of the rows of the per-GT summary table titled ``title``, in printed order."""
    lines = out.splitlines()
    start = next(k for k, x in enumerate(lines) if x.startswith(title))
    rows = []
    for x in lines[start + 3:]:
        m = re.match(r"\s*(\d+)\s+\d+\s+\(", x)
        if m:
            rows.append(int(m.group(1)))
        elif not x.strip() or x.startswith(("✗", "not shown")):
            break
    return rows


@pytest.mark.parametrize("budget", [None, "1"])
def test_flagged_rows_first(cli, write, budget):
    # GTs 1 and 3 are too small for any anchor centre under the classic profile; 0, 2, 4 are fine
    p = write("mix.txt", "0 0.3 0.3 0.2 0.2\n0 0.5 0.5 0.004 0.004\n0 0.7 0.7 0.2 0.2\n0 0.101 0.9 0.003 0.003\n"
                         "0 0.4 0.7 0.2 0.1\n")
    extra = ("--budget-mb", budget) if budget else ()
    code, out, err = cli("assign", p, "--nc", "1", "--profile", "classic", *extra)
    assert code == 0, err
    if budget:
        assert "assigned on candidate pairs" in out
    assert _summary_rows(out, "Per-GT summary · image 0 (mix) · flagged GTs first") == [1, 3, 0, 2, 4]
    flags = [x for x in out.splitlines() if x.startswith("✗")]
    assert [x.split(" (")[0] for x in flags] == ["✗ GT 1", "✗ GT 3"]


def test_other_assigners_flagged_rows_first(cli):
    # coco8 image 1: ATSS gives its 5.8×6.4-px GT 2 no positive
    code, out, err = cli("assign", COCO8, "--synthetic", "trained", "--assigner", "atss", "-i", "1")
    assert code == 0, err
    assert _summary_rows(out, "Per-GT summary · atss · image 1 (000000000025) · flagged GTs first") == [2, 0, 1]
    assert "warning: GT 2 (" in err and "gets no positive from atss" in err


def test_near_zero_weight_positives_flagged(cli):
    """Image 2 GT 0 of the seed walkthrough: 6 positives, target scores all in (0, 0.01)."""
    from yolotal.config import load_config
    from yolotal.inputs.labels import load_labels
    from yolotal.pipeline import run
    from yolotal.render.terminal import NEAR_ZERO, gt_facts

    cfg = load_config(ROOT / "configs" / "walkthrough.yaml")
    t = run(cfg, load_labels(WALK_LABELS, cfg.num_classes))
    pos = t["mask_pos"][2, 0]
    scores = t["norm_align_metric"][2][pos]
    assert pos.sum() == 6 and bool((scores > 0).all()) and bool((scores < NEAR_ZERO).all())
    f = gt_facts(t, 2)[0]
    assert f.zero_weight == 6 and f.flag == "ONLY NEAR-ZERO-WEIGHT POSITIVES" and f.short_flag == "0-W ONLY"
    assert f.best_weight == pytest.approx(float(scores.max()))
    code, out, _ = cli("assign", WALK_LABELS, *WALK, "-i", "2")
    assert code == 0
    text = " ".join(out.split())
    assert ("✗ GT 0 (samples/walkthrough_batch.txt:4): ONLY NEAR-ZERO-WEIGHT POSITIVES — all 6 of its positives "
            f"have target score < 0.01 (largest {float(scores.max()):.2g};") in text.replace(str(ROOT) + "/", "")
    # a GT whose positives carry weight is not flagged: image 1 GT 0 has 10 positives, one below 0.01
    f1 = gt_facts(t, 1)[0]
    assert f1.positives == 10 and f1.zero_weight == 1 and f1.flag == ""


def test_decode_names_the_gt(cli, tmp_path):
    z = tmp_path / "t.npz"
    code, out, err = cli("decode", COCO8, "--synthetic", "trained", "-i", "3", "--export", z)
    assert code == 0, err
    t = np.load(z)
    text = " ".join(out.split())
    for j, (cls, line) in enumerate(((2, 1), (58, 2), (75, 3))):
        assert f"positive of image 3 GT {j} (class {cls}, {COCO8}/000000000034.txt:{line}) (tal assigner)" in text
    bg = int(np.nonzero(~t["fg_mask"][3])[0][0])
    code, out, _ = cli("decode", COCO8, "--synthetic", "trained", "-i", "3", "--anchor", bg)
    assert "background: no GT of image 3 has this anchor as a positive (tal assigner)" in " ".join(out.split())
    # every assigner: by default each GT's best positive, named (yolov5: a cell may serve a GT through several
    # anchor boxes; it is named once)
    for name in ("tal-o2o", "atss", "simota", "yolov5"):
        code, out, err = cli("decode", COCO8, "--synthetic", "trained", "-i", "3", "--assigner", name)
        assert code == 0, (name, err)
        text = " ".join(out.split())
        for j, (cls, line) in enumerate(((2, 1), (58, 2), (75, 3))):
            assert f"positive of image 3 GT {j} (class {cls}, {COCO8}/000000000034.txt:{line}) ({name} assigner)" \
                in text, (name, j)


# ------------------------------------------------------------------------------------------------ item 12
def _trace(cfg_text: str, tmp_path, labels=COCO8):
    from yolotal.config import load_config
    from yolotal.inputs.labels import load_labels
    from yolotal.pipeline import run

    p = tmp_path / "c.yaml"
    p.write_text(cfg_text)
    cfg = load_config(p)
    return run(cfg, load_labels(labels, cfg.num_classes))


def test_yolov5_gains_settable_and_linear(tmp_path, cli):
    base = _trace("assigner: {name: yolov5}\nheads: {kind: trained}\n", tmp_path)
    new = _trace("assigner: {name: yolov5}\nheads: {kind: trained}\nloss: {v5_box: 0.1, v5_obj: 3.0, v5_cls: 0.25}\n",
                 tmp_path)
    b = base.batch
    assert float(new["v5_lbox"]) == pytest.approx(2 * float(base["v5_lbox"]), rel=1e-6)
    assert float(new["v5_lobj"]) == pytest.approx(3 * float(base["v5_lobj"]), rel=1e-6)
    assert float(new["v5_lcls"]) == pytest.approx(0.5 * float(base["v5_lcls"]), rel=1e-6)
    expected = float(base["v5_loss"]) + b * (float(base["v5_lbox"]) + 2 * float(base["v5_lobj"])
                                             - 0.5 * float(base["v5_lcls"]))
    assert float(new["v5_loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(base["v5_lbox"]) > 0 and float(base["v5_lcls"]) > 0
    cfg = tmp_path / "g.yaml"
    cfg.write_text("loss: {v5_box: 0.1, v5_obj: 3.0, v5_cls: 0.25}\n")
    code, out, err = cli("loss", COCO8, "--assigner", "yolov5", "-c", cfg)
    assert code == 0, err
    assert "gains box 0.1, obj 3, cls 0.25" in " ".join(out.split())
    bad = tmp_path / "b.yaml"
    bad.write_text("loss: {v5_obj: -1}\n")
    code, _, err = cli("loss", COCO8, "--assigner", "yolov5", "-c", bad)
    assert code == 2 and "loss.v5_obj: expected a number >= 0, got -1" in err


def test_simota_topk_honoured(tmp_path):
    for k in (1, 3, 10):
        t = _trace(f"assigner: {{name: simota, topk: {k}}}\nheads: {{kind: trained}}\n", tmp_path)
        for i in range(t.batch):
            if f"simota_ious[{i}]" not in t:
                continue
            ious = t[f"simota_ious[{i}]"]
            top = torch.sort(ious, dim=1, descending=True).values[:, :k]
            assert t[f"simota_topk_ious[{i}]"].shape == (ious.shape[0], min(k, ious.shape[1]))
            want = torch.clamp(top.sum(1).int(), min=1)
            assert torch.equal(t[f"simota_dynamic_k[{i}]"], want), (k, i)
            assert torch.equal(t[f"simota_picked[{i}]"].sum(1), want)
            if k == 1:
                assert bool((want == 1).all())


def test_export_meta_tal_and_yolov5(cli, tmp_path):
    from yolotal import __version__

    out = tmp_path / "t.json"
    code, _, err = cli("loss", COCO8, "--synthetic", "trained", "--topk", "13", "--export", out)
    assert code == 0, err
    meta = json.loads(out.read_text())["meta"]
    assert meta == {
        "yolotal": __version__, "assigner": "tal", "profile": "ultralytics",
        "params": {"topk": 13, "topk2": None, "alpha": 0.5, "beta": 6.0, "eps": 1e-9, "stride_val": 16.0},
        "nc": 80, "reg_max": 16, "strides": [8, 16, 32], "imgsz": [640, 640], "batch": 4,
        "loss": {"name": "yolov8", "gains": {"box": 7.5, "cls": 0.5, "dfl": 1.5}, "computed": True},
        "heads": "synthetic partly-trained heads (seed 0)", "decode_heads": "synthetic partly-trained heads (seed 0)",
        "images": ["000000000009", "000000000025", "000000000030", "000000000034"],
    }
    cfg = tmp_path / "v5.yaml"
    cfg.write_text("loss: {v5_cls: 0.3}\nassigner: {anchor_t: 3.5}\n")
    code, _, err = cli("assign", COCO8, "--assigner", "yolov5", "--nc", "80", "-c", cfg, "--export", out)
    assert code == 0, err
    meta = json.loads(out.read_text())["meta"]
    assert meta["assigner"] == "yolov5" and meta["profile"] == "yolov5" and meta["nc"] == 80
    assert meta["params"] == {"anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119],
                                          [116, 90, 156, 198, 373, 326]], "anchor_t": 3.5}
    assert meta["loss"] == {"name": "yolov5", "gains": {"box": 0.05, "obj": 1.0, "cls": 0.3},
                            "balance": [4.0, 1.0, 0.4], "computed": True}
    assert meta["heads"] == "synthetic randn YOLOv5 heads (seed 0)"
    assert "topk" not in meta["params"] and "alpha" not in json.dumps(meta)


def test_readme_export_names_exist(cli, tmp_path):
    """Every name the README's Export section lists for SimOTA and YOLOv5 is in their export."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Export\n"):text.index("\n## Parity")]
    for name, marker in (("simota", "**SimOTA**"), ("yolov5", "**YOLOv5**")):
        para = section[section.index(marker):].split("\n\n")[0]
        names = re.findall(r"`([a-z0-9_<>\[\]{},]+)`", para)
        assert len(names) >= 5, (name, names)
        out = tmp_path / f"{name}.npz"
        code, _, err = cli("loss", COCO8, "--synthetic", "trained", "--assigner", name, "--export", out)
        assert code == 0, err
        files = set(np.load(out).files)
        for n in names:
            # v5_l<i>_x: every level; v5_l{box,obj,cls}: each of them; simota_x[i]: image 0 (it has GTs)
            if "{" in n:
                head, rest = n.split("{")
                opts, tail = rest.split("}")
                expanded = [head + o + tail for o in opts.split(",")]
            else:
                expanded = [n.replace("<i>", str(i)).replace("[i]", "[0]") for i in range(3)]
            for e in expanded:
                assert e in files, (name, e)


def test_tiny_scores_are_not_printed_as_zero():
    from yolotal.render.fmt import score

    assert score(4e-10) == "4e-10" and score(0.0) == "0.0000" and score(0.51234) == "0.5123"
    assert score(9.99e-5) == "9.99e-05" and score(1e-4) == "0.0001"
