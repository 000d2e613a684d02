"""The Python API: yolotal.inspect() / scan() give what the CLI computes, and raise InputError where it exits 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import yolotal

ROOT = Path(__file__).resolve().parents[1]
COCO8 = ROOT / "samples" / "coco8" / "labels"
SHAPES = ROOT / "samples" / "shapes"


def test_inspect_equals_the_cli_export(cli, tmp_path):
    out = tmp_path / "cli.npz"
    code, _, err = cli("assign", COCO8, "--synthetic", "trained", "--topk", "7", "--export", out)
    assert code == 0, err
    run = yolotal.inspect(COCO8, synthetic="trained", topk=7)
    z = np.load(out)
    assert set(z.files) == set(run.trace.tensors())
    for k in z.files:  # the same process, the same inputs: the same bits
        assert np.array_equal(z[k], run[k].numpy()), k
    assert run.stages["metrics"]["align_metric"] == tuple(z["align_metric"].shape)


def test_run_records_agree_with_the_trace():
    run = yolotal.inspect(COCO8, synthetic="trained")
    recs = run.gts(as_frame=False)
    assert len(recs) == sum(run.trace.n_gts(i) for i in range(run.batch)) == 10
    fg, tgi, ts = run["fg_mask"], run["target_gt_idx"], run["target_scores"].amax(-1)
    for r in recs:
        sel = fg[r.image] & (tgi[r.image] == int(np.nonzero([o == (r.file, r.line) for o in
                                                           run.trace.gt_origin[r.image]])[0][0]))
        assert r.positives == int(sel.sum())
        assert r.score_sum == pytest.approx(float(ts[r.image][sel].sum()), rel=1e-6)
        assert r.weighted == int((ts[r.image][sel] >= 0.01).sum())
        assert (r.flag == "") == (r.weighted > 0)
    tiny = [r for r in recs if r.w < 10]
    assert tiny and tiny[0].flag == "only near-zero-weight positives"  # coco8's 6-px GT
    assert set(run.loss) >= {"loss_box", "loss_cls", "loss_dfl"}


def test_api_errors_are_input_errors_naming_the_call(tmp_path):
    with pytest.raises(yolotal.InputError, match=r"yolotal\.inspect\(\): assigner\.topk: expected an integer >= 1"):
        yolotal.inspect(COCO8, topk=0)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 0.5 0.5 0.1\n")
    with pytest.raises(yolotal.InputError) as e:
        yolotal.inspect(bad)
    assert str(e.value).startswith(f"{bad}:1: ")
    with pytest.raises(yolotal.InputError, match="unknown option 'tpk'"):
        yolotal.inspect(COCO8, tpk=3)


def test_scan_report_object(tmp_path):
    rep = yolotal.scan(SHAPES / "shapes.yaml")
    assert rep.kind == "geometry" and rep.doc["gts"] == 9 and rep.per_class == {"box": 4, "disc": 3, "triangle": 2}
    assert [r["line"] for r in rep.gts(as_frame=False)] == [2] and rep.errors == []
    p = rep.html(tmp_path / "r.html")
    text = p.read_text()
    assert '<section id="gts" data-count="9"' in text and 'src="http' not in text and "href=\"http" not in text
    assert rep.write(tmp_path / "r.json").read_text().startswith("{")
    assert "<table" in rep._repr_html_()
