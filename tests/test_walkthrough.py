"""The seed walkthrough (seed 001 run.log): yolotal's walkthrough config reproduces its printed tensors
character for character. The expected blocks were cut from the seed text into fixtures/seed001_tensors.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yolotal.config import load_config
from yolotal.inputs.labels import load_labels
from yolotal.pipeline import run
from yolotal.render.terminal import tensor_text

ROOT = Path(__file__).resolve().parents[1]
SEED = json.loads((Path(__file__).parent / "fixtures" / "seed001_tensors.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def trace():
    cfg = load_config(ROOT / "configs" / "walkthrough.yaml")
    return run(cfg, load_labels(ROOT / "samples" / "walkthrough_batch.txt", cfg.nc))


@pytest.mark.parametrize("name", ["anchor_points", "stride_tensor", "gt_bboxes", "gt_labels", "mask_gt"])
def test_seed_tensor_printed_identically(trace, name):
    assert tensor_text(trace[name]) == SEED[name]


def test_seed_in_box_mask_of_image0(trace):
    assert tensor_text(trace["mask_in_gts"][0].float()) == SEED["mask_in_gts_image0"]


def test_packaged_walkthrough_equals_repo_copy():
    pkg = ROOT / "yolotal" / "data"
    assert (pkg / "walkthrough.yaml").read_text() == (ROOT / "configs" / "walkthrough.yaml").read_text()
    assert (pkg / "walkthrough_labels.txt").read_text() == (ROOT / "samples" / "walkthrough_batch.txt").read_text()


def test_walkthrough_shapes_and_counts(trace):
    assert tuple(trace["anchor_points"].shape) == (84, 2)
    assert tuple(trace["pred_scores"].shape) == (4, 84, 3)
    assert tuple(trace["gt_bboxes"].shape) == (4, 3, 4)
    assert [trace.n_gts(i) for i in range(4)] == [2, 1, 3, 1]
    # image 0, GT 0 (178.56, 92.8, 604.8, 334.72): 3 rows x 6 cols at stride 80, 3 cells at 160, 1 at 320
    assert int(trace["mask_in_gts"][0, 0].sum()) == 18 + 3 + 1
