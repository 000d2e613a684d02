from __future__ import annotations

import re

import pytest

from yolotal.config import Config, config_from_dict, load_config, with_overrides
from yolotal.errors import InputError


def test_defaults_are_ultralytics_84_training():
    c = load_config(None)
    assert c.imgsz == (640, 640) and c.strides == (8, 16, 32) and c.reg_max == 16
    a = c.assigner
    assert (a.profile, a.topk, a.topk2, a.alpha, a.beta, a.eps) == ("ultralytics", 10, None, 0.5, 6.0, 1e-9)
    assert (c.loss.box, c.loss.cls, c.loss.dfl) == (7.5, 0.5, 1.5)
    assert c.num_classes == 80 and c.stride_val == 16.0
    assert c.grids == [(80, 80), (40, 40), (20, 20)]


def test_every_repo_config_loads_with_the_values_it_documents():
    from dataclasses import replace
    from pathlib import Path

    configs = Path(__file__).parents[1] / "configs"
    assert sorted(p.name for p in configs.glob("*.yaml")) == ["default.yaml", "walkthrough.yaml", "yolo26-one2one.yaml"]
    # default.yaml writes out the built-in defaults (with nc 80 spelled out)
    assert load_config(configs / "default.yaml") == replace(load_config(None), nc=80)
    w = load_config(configs / "walkthrough.yaml")
    assert (w.imgsz, w.strides, w.nc, w.reg_max, w.assigner.profile, w.heads.kind, w.heads.batch) == (
        (640, 640), (80, 160, 320), 3, 16, "classic", "randn", 4)
    o2o = load_config(configs / "yolo26-one2one.yaml")
    assert (o2o.assigner.topk, o2o.assigner.topk2, o2o.assigner.profile) == (7, 1, "ultralytics")


@pytest.mark.parametrize(
    "raw,msg",
    [
        ({"imgsz": "big"}, "imgsz: expected an integer or [h, w]"),
        ({"strides": [32, 16]}, "strides: expected a non-empty increasing list"),
        ({"nc": 0}, "nc: expected an integer >= 1, got 0"),
        ({"assigner": {"topk": "ten"}}, "assigner.topk: expected an integer >= 1, got 'ten'"),
        ({"assigner": {"profile": "v5"}}, "assigner.profile: the tal assigner has profiles v8.0.0, v8.0.35, classic, v8.4.0, ultralytics (aliases"),
        ({"assigner": {"alpha": float("nan")}}, "assigner.alpha: expected a number >= 0"),
        ({"assigner": {"topkk": 3}}, "unknown key 'assigner.topkk'"),
        ({"lr": 0.01}, "unknown key 'lr'"),
        ({"loss": {"box": True}}, "loss.box: expected a number >= 0, got True"),
        ({"heads": {"kind": "real"}}, "heads.kind: expected randn or trained"),
        ({"assigner": {"profile": "classic", "topk2": 1}}, "assigner.topk2: only the v8.4.0 and ultralytics profiles (ultralytics 8.4) have topk2; classic has none"),
        ({"assigner": {"topk": 5, "topk2": 7}}, "assigner.topk2: must be <= assigner.topk (5)"),
        ([1, 2], "config: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(raw, msg):
    with pytest.raises(InputError) as e:
        config_from_dict(raw, "x.yaml")
    assert msg in str(e.value)
    assert str(e.value).startswith("x.yaml: ")


def test_broken_yaml_names_file_and_line(write):
    p = write("bad.yaml", "imgsz: [640, 640]\nassigner:\n  topk: [1, 2\n")
    with pytest.raises(InputError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}:") and "broken YAML" in str(e.value)
    assert e.value.line is not None


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_imgsz_rounded_up_with_warning():
    c = config_from_dict({"imgsz": [500, 630]})
    assert c.imgsz == (512, 640)
    assert any("rounded up to [512, 640]" in w for w in c.warnings)


def test_cli_overrides_validate_and_apply():
    c = with_overrides(Config(), topk=13, profile="classic", seed=3, imgsz=[320, 320], nc=None)
    assert c.assigner.topk == 13 and c.assigner.profile == "classic" and c.heads.seed == 3 and c.imgsz == (320, 320)
    with pytest.raises(InputError, match="command line: assigner.topk"):
        with_overrides(Config(), topk=0)


def test_assigner_names_bring_their_defaults():
    c = config_from_dict({"assigner": {"name": "tal-o2o"}})
    assert (c.assigner.profile, c.assigner.topk, c.assigner.topk2) == ("ultralytics", 7, 1)
    c = config_from_dict({"assigner": {"name": "simota"}})
    assert (c.assigner.profile, c.assigner.topk, c.assigner.topk2) == ("yolox", 10, None)
    assert config_from_dict({"assigner": {"name": "atss"}}).assigner.topk == 9
    # switching assigner on top of a finished config resets profile and topk, unless given
    base = config_from_dict({"assigner": {"profile": "classic", "topk": 13}})
    c = with_overrides(base, name="simota")
    assert (c.assigner.profile, c.assigner.topk) == ("yolox", 10)
    c = with_overrides(base, name="simota", profile="yolox-0.3", topk=8)
    assert (c.assigner.profile, c.assigner.topk) == ("yolox-0.3", 8)
    assert c.loss_profile == "ultralytics" and base.loss_profile == "classic"


@pytest.mark.parametrize("raw,msg", [
    ({"assigner": {"name": "yolov5", "anchors": [[10, 13, 16]]}}, "assigner.anchors: expected one list of w,h pixel pairs"),
    ({"assigner": {"name": "yolov5", "anchors": [[10, 13], [16, 30]]}}, "assigner.anchors: 2 levels of anchors for 3 strides"),
    ({"assigner": {"name": "atss", "topk2": 1}}, "assigner.topk2: only the task-aligned assigners have topk2, not atss"),
    ({"assigner": {"name": "yolov5", "anchor_t": 0}}, "assigner.anchor_t: expected a positive number, got 0"),
])
def test_bad_assigner_settings(raw, msg):
    with pytest.raises(InputError, match=re.escape(msg)):
        config_from_dict(raw, "x.yaml")
