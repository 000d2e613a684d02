"""Profiles by ultralytics release (yolotal.profiles): the version table, names and aliases, ``auto``, each
profile's enlargement rule and third loss term, and that the golden fixtures of different profiles differ
where the rules do (so the parity tests in test_golden.py pin each rule)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from yolotal import profiles
from yolotal.assigners.tal import TALParams, candidate_boxes
from yolotal.config import Config, config_from_dict, finalize, with_overrides, with_trainer_version
from yolotal.errors import InputError

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


@pytest.mark.parametrize("version,name", [
    ("8.0.0", "v8.0.0"), ("8.0.6", "v8.0.0"), ("8.0.35", "v8.0.35"), ("8.0.51", "v8.0.35"), ("8.0.52", "classic"),
    ("8.1.0", "classic"), ("8.2.103", "classic"), ("8.3.202", "classic"), ("8.3.253", "classic"),
    ("8.4.0", "v8.4.0"), ("8.4.103", "v8.4.0"), ("8.4.127", "v8.4.0"), ("8.4.128", "ultralytics"),
    ("8.4.190", "ultralytics"), ("v8.3.0", "classic"), ("8.4.5.dev0", "v8.4.0"),
])
def test_each_release_has_its_profile(version, name):
    got, note, warning = profiles.profile_for_version(version)
    assert got == name and warning is None
    assert note.startswith(f"trained by ultralytics {version} → profile {name}: ")


def test_the_issue_example_note():
    assert profiles.profile_for_version("8.3.202")[1].startswith(
        "trained by ultralytics 8.3.202 → profile classic: no small-GT enlargement")


@pytest.mark.parametrize("version", ["8.4.191", "8.5.0", "9.0.0"])
def test_a_newer_release_gets_the_newest_profile_and_a_warning(version):
    name, note, warning = profiles.profile_for_version(version)
    assert name == profiles.NEWEST == "ultralytics"
    assert warning and f"ultralytics {version} is newer than the newest release yolotal knows (8.4.190)" in warning


@pytest.mark.parametrize("version", [None, "", "unknown", "abc.def"])
def test_no_or_unreadable_version_gets_the_newest_profile_and_a_warning(version):
    name, note, warning = profiles.profile_for_version(version)
    assert name == "ultralytics" and warning and "assuming the newest rules" in warning
    assert "→ profile ultralytics (the newest)" in note


def test_a_pre_yolov8_package_gets_the_oldest_profile_with_a_warning():
    name, _, warning = profiles.profile_for_version("0.0.44")
    assert name == "v8.0.0" and "predates YOLOv8" in warning


def test_profile_ranges_tile_the_releases():
    ps = profiles.PROFILES
    assert [p.name for p in ps] == ["v8.0.0", "v8.0.35", "classic", "v8.4.0", "ultralytics"]
    for a, b in zip(ps, ps[1:]):
        assert a.last < b.first
    assert ps[-1].last is None and ps[0].first == (8, 0, 0)
    assert [r["releases"] for r in profiles.table()] == [
        "8.0.0-8.0.6", "8.0.35-8.0.51", "8.0.52-8.3.253", "8.4.0-8.4.127", "8.4.128 and later"]


@pytest.mark.parametrize("given,name", [
    ("ultralytics", "ultralytics"), ("classic", "classic"), ("v8.4.0", "v8.4.0"), ("latest", "ultralytics"),
    ("v8.4.128", "ultralytics"), ("v8.0.52", "classic"), ("8.3.202", "classic"), ("8.4.100", "v8.4.0"),
    ("v8.0.40", "v8.0.35"), ("auto", "auto"), (None, "auto"),
])
def test_names_aliases_and_releases_resolve(given, name):
    assert profiles.resolve_profile(given) == name


@pytest.mark.parametrize("bad", ["v5", "8.3.x", "classic2", "8"])
def test_unknown_names_are_refused_with_the_list(bad):
    with pytest.raises(ValueError, match="unknown profile .* \\(profiles: v8.0.0, v8.0.35, classic, v8.4.0, ultralytics"):
        profiles.resolve_profile(bad)


@pytest.mark.parametrize("strides,rules", [
    ((8, 16, 32), {"ultralytics": (16.0, 16.0), "v8.4.0": (8.0, 16.0), "classic": None, "v8.0.35": None}),
    ((4, 8, 16, 32), {"ultralytics": (8.0, 8.0), "v8.4.0": (4.0, 8.0), "classic": None, "v8.0.0": None}),
    ((16, 32), {"ultralytics": (32.0, 32.0), "v8.4.0": (16.0, 32.0)}),
    ((8,), {"ultralytics": (8.0, 8.0), "v8.4.0": (8.0, 8.0)}),
])
def test_enlargement_rule_of_each_profile(strides, rules):
    for name, rule in rules.items():
        assert profiles.enlargement(name, strides) == rule
        cfg = config_from_dict({"strides": list(strides), "assigner": {"profile": name}})
        assert cfg.enlargement == rule


def test_candidate_boxes_per_profile():
    """A 6 px and a 12 px side on P3 strides: 8.4.0 enlarges only the 6 px one (< stride[0] = 8) to 16; from
    8.4.128 both sides below 16 become 16; classic keeps the box. P2 strides: 8.4.0 enlarges nothing (< 4),
    8.4.128 both (< 8, to 8)."""
    gt = torch.tensor([[[100.0, 100.0, 106.0, 112.0]]])  # w 6, h 12
    m = torch.ones(1, 1, 1)

    def cand(profile, strides):
        p = TALParams(num_classes=1, profile=profile, stride_val=float(strides[1]), strides=tuple(map(float, strides)))
        return candidate_boxes(gt, m, p)[0, 0].tolist()

    assert cand("classic", (8, 16, 32)) == [100.0, 100.0, 106.0, 112.0]
    assert cand("v8.4.0", (8, 16, 32)) == [95.0, 100.0, 111.0, 112.0]
    assert cand("ultralytics", (8, 16, 32)) == [95.0, 98.0, 111.0, 114.0]
    assert cand("v8.4.0", (4, 8, 16, 32)) == [100.0, 100.0, 106.0, 112.0]
    assert cand("ultralytics", (4, 8, 16, 32)) == [99.0, 100.0, 107.0, 112.0]
    with pytest.raises(ValueError, match="v8.4.0: TALParams.strides"):  # the first stride is not in stride_val
        candidate_boxes(gt, m, TALParams(num_classes=1, profile="v8.4.0", stride_val=16.0))


def test_third_term_name_as_each_release_logs_it():
    assert profiles.third_term_name("ultralytics", 16) == "dfl_loss"
    assert profiles.third_term_name("ultralytics", 1) == "l1_loss"
    assert profiles.third_term_name("v8.4.0", 1, "8.4.103") == "dfl_loss"
    assert profiles.third_term_name("v8.4.0", 1, "8.4.104") == "l1_loss"
    assert profiles.third_term_name("classic", 1) == "dfl_loss"
    assert not profiles.has_third_term("classic", 1) and profiles.has_third_term("v8.4.0", 1)
    # and as the recorded releases named it (their loss items: a dict from 8.4.104 on)
    seen = 0
    for path in GOLDEN.glob("*/*.npz"):
        if path.parent.name not in profiles.NAMES:
            continue
        meta = json.loads(str(np.load(path)["config"]))
        if "loss_names" in meta:
            version = meta["reference"].split()[-1]
            assert meta["loss_names"][2] == profiles.third_term_name(path.parent.name, meta["reg_max"], version), path
            seen += meta["reg_max"] == 1
    assert seen >= 8


# ------------------------------------------------------------------------------------------------- config
def test_config_accepts_names_aliases_releases_and_auto():
    assert config_from_dict({"assigner": {"profile": "latest"}}).assigner.profile == "ultralytics"
    assert config_from_dict({"assigner": {"profile": "8.3.202"}}).assigner.profile == "classic"
    c = config_from_dict({"assigner": {"profile": "auto"}})
    assert c.assigner.profile == "ultralytics" and c.assigner.profile_auto
    assert Config().assigner.profile is None and finalize(Config()).assigner.profile_auto
    assert not config_from_dict({"assigner": {"profile": "ultralytics"}}).assigner.profile_auto
    with pytest.raises(InputError, match="unknown key 'assigner.profile_auto'"):
        config_from_dict({"assigner": {"profile_auto": True}})
    assert with_overrides(finalize(Config()), profile="classic").assigner.profile == "classic"
    assert with_overrides(finalize(Config()), profile="v8.4.128").assigner.profile == "ultralytics"


def test_topk2_belongs_to_the_84_profiles():
    assert config_from_dict({"assigner": {"profile": "v8.4.0", "topk2": 3}}).assigner.topk2 == 3
    for old in ("classic", "v8.0.35", "8.0.5"):
        with pytest.raises(InputError, match="only the v8.4.0 and ultralytics profiles"):
            config_from_dict({"assigner": {"profile": old, "topk2": 3}})


def test_one_to_one_branch_defaults_follow_the_profile():
    """8.4's E2ELoss: topk 7, topk2 1; before, YOLOv10's E2EDetectLoss: topk 1 and no topk2."""
    a = config_from_dict({"assigner": {"name": "tal-o2o"}}).assigner
    assert (a.profile, a.topk, a.topk2) == ("ultralytics", 7, 1)
    a = config_from_dict({"assigner": {"name": "tal-o2o", "profile": "classic"}}).assigner
    assert (a.topk, a.topk2) == (1, None)


def test_auto_follows_the_checkpoint_version():
    base = finalize(Config())
    cfg, note, warning = with_trainer_version(base, "8.3.202", "old.pt")
    assert cfg.assigner.profile == "classic" and warning is None
    assert note == ("trained by ultralytics 8.3.202 → profile classic: no small-GT enlargement, no topk2, "
                    "no third loss term when reg_max = 1")
    cfg, note, warning = with_trainer_version(base, "8.4.50", "mid.pt")
    assert cfg.assigner.profile == "v8.4.0" and cfg.enlargement == (8.0, 16.0)
    cfg, note, warning = with_trainer_version(base, None, "hand.pt")
    assert cfg.assigner.profile == "ultralytics" and warning.startswith("hand.pt: no ultralytics version")
    cfg, _, warning = with_trainer_version(base, "8.6.0", "new.pt")
    assert cfg.assigner.profile == "ultralytics" and "new.pt: ultralytics 8.6.0 is newer" in warning
    # a profile chosen by name stays, and the note says what auto would have been
    chosen = config_from_dict({"assigner": {"profile": "ultralytics"}})
    cfg, note, warning = with_trainer_version(chosen, "8.3.202", "old.pt")
    assert cfg.assigner.profile == "ultralytics" and "as chosen (auto would be classic)" in note
    # tal-o2o defaults move with the profile; values set by hand stay
    o2o = config_from_dict({"assigner": {"name": "tal-o2o"}})
    a = with_trainer_version(o2o, "8.3.100")[0].assigner
    assert (a.profile, a.topk, a.topk2) == ("classic", 1, None)
    mine = config_from_dict({"assigner": {"name": "tal", "topk": 13}})
    a = with_trainer_version(mine, "8.4.10")[0].assigner
    assert (a.profile, a.topk, a.topk2) == ("v8.4.0", 13, None)


def test_default_yaml_documents_auto():
    from yolotal.config import load_config

    c = load_config(Path(__file__).parents[1] / "configs" / "default.yaml")
    assert c.assigner.profile == "ultralytics" and c.assigner.profile_auto


# ------------------------------------------------------------------------------- fixtures pin each rule
def fixture(profile, name):
    return np.load(GOLDEN / profile / f"{name}.npz")


def test_fixtures_differ_where_the_rules_do():
    fg = {p: int(fixture(p, "tiny_p3")["fg_mask"].sum()) for p in profiles.NAMES}
    # P3 strides, 5-15 px GTs: classic-like (no enlargement) < 8.4.0 (< 8 px -> 16) < 8.4.128 (< 16 px -> 16)
    assert fg["classic"] == fg["v8.0.35"] == fg["v8.0.0"] < fg["v8.4.0"] < fg["ultralytics"]
    # P2 strides: 8.4.0 enlarges sides < 4 px (none here) like classic; 8.4.128 sides < 8 px to 8
    p2 = {p: fixture(p, "tiny_p2")["fg_mask"] for p in ("classic", "v8.4.0", "ultralytics")}
    assert np.array_equal(p2["classic"], p2["v8.4.0"]) and not np.array_equal(p2["v8.4.0"], p2["ultralytics"])
    # the all-GT conflict rule of 8.0.0-8.0.51: anchor (44, 44) goes to GT 2, which does not contain it
    for p in profiles.NAMES:
        winner = int(fixture(p, "all_gts_winner")["target_gt_idx"][0, 65])
        assert winner == (2 if p.startswith("v8.0") else 1), p
    # reg_max 1: an L1 third term from 8.4.0 on, none before; 8.0.0-8.0.6 divide by the raw score sum
    l1 = {p: float(fixture(p, "tiny_reg_max1")["loss"][2]) for p in profiles.NAMES}
    assert l1["classic"] == l1["v8.0.35"] == 0 and l1["v8.4.0"] > 0 and l1["ultralytics"] > 0
    assert np.isinf(fixture("v8.0.0", "no_labels")["loss"][1]) and np.isfinite(fixture("classic", "no_labels")["loss"][1])


@pytest.mark.parametrize("fixture_profile,run_profile", [("v8.4.0", "ultralytics"), ("ultralytics", "v8.4.0"),
                                                         ("classic", "v8.4.0"), ("v8.0.35", "classic")])
def test_another_profile_does_not_reproduce_a_fixture(fixture_profile, run_profile):
    """The parity tests could not tell the rules apart if every profile matched every fixture."""
    from dataclasses import replace

    from test_golden import load_case
    from yolotal.pipeline import run

    name = "all_gts_winner" if fixture_profile.startswith("v8.0") else "tiny_p3"
    cfg, labels, heads, exp = load_case(fixture_profile, name)
    own = run(cfg, labels, heads)
    assert np.array_equal(own["fg_mask"].numpy(), exp["fg_mask"])
    other = run(finalize(replace(cfg, assigner=replace(cfg.assigner, profile=run_profile))), labels, heads)
    assert not (np.array_equal(other["fg_mask"].numpy(), exp["fg_mask"])
                and np.array_equal(other["target_gt_idx"].numpy(), exp["target_gt_idx"]))


# ------------------------------------------------------------------------------- the one-call patch
def test_one_call_patch_with_p2_strides_enlarges_to_8_px():
    """use_yolotal_assigner() on a P2 model (strides 4-32): the assigner the loss builds enlarges GT sides
    below 8 px to 8 px (the installed 8.4.190's rule), and its targets and loss are ultralytics' own."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    pytest.importorskip("ultralytics")
    import types

    import ultralytics
    from ultralytics.utils import loss as uloss

    import yolotal.ultralytics as yu
    from yolotal import TaskAlignedAssigner

    if profiles.profile_for_version(ultralytics.__version__)[0] != "ultralytics":
        pytest.skip(f"installed ultralytics {ultralytics.__version__} is not of the newest profile")
    strides, nc, reg_max = (4, 8, 16, 32), 3, 16
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    m.model = [types.SimpleNamespace(stride=torch.tensor(strides, dtype=torch.float32), nc=nc, reg_max=reg_max)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    inp = np.load(GOLDEN / "inputs" / "tiny_p2.npz")
    levels = [torch.from_numpy(inp[f"level{i}"]) for i in range(4)]
    lab = torch.from_numpy(inp["labels"])
    batch = {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6]}
    b, c = levels[0].shape[:2]
    flat = torch.cat([x.view(b, c, -1) for x in levels], 2)
    preds = {"boxes": flat[:, : 4 * reg_max], "scores": flat[:, 4 * reg_max :], "feats": levels}

    ref = uloss.v8DetectionLoss(m, tal_topk=10)
    with yu.use_yolotal_assigner() as handle:
        ours = uloss.v8DetectionLoss(m, tal_topk=10)
    assert handle.profile == "ultralytics" and isinstance(ours.assigner, TaskAlignedAssigner)
    assert ours.assigner.stride == [4.0, 8.0, 16.0, 32.0] and ours.assigner.stride_val == 8.0
    assert ours.assigner.params.enlargement == (8.0, 8.0)
    got, want = ours(preds, batch), ref(preds, batch)
    for k in want[1]:
        torch.testing.assert_close(got[1][k], want[1][k], rtol=2e-5, atol=1e-7)
    # and the GTs under 8 px really were enlarged: the fixture recorded by 8.4.190 has more positives than 8.4.127's
    assert int(fixture("ultralytics", "tiny_p2")["fg_mask"].sum()) > int(fixture("v8.4.0", "tiny_p2")["fg_mask"].sum())
    assert handle.calls == 1


def test_patch_profile_names(monkeypatch):
    pytest.importorskip("ultralytics")
    import yolotal.ultralytics as yu

    with yu.use_yolotal_assigner(profile="8.3.202") as h:
        assert h.profile == "classic"
    with yu.use_yolotal_assigner(profile="v8.4.0") as h:
        assert h.profile == "v8.4.0"
    with pytest.raises(ValueError, match="unknown profile 'v5'"):
        yu.use_yolotal_assigner(profile="v5")


def test_tal_params_without_strides_apply_the_newest_rule_from_stride_val():
    """Callers that only know stride_val (the size) still get the 8.4.128 rule, whose threshold is that size."""
    assert TALParams(num_classes=1, stride_val=16.0).enlargement == (16.0, 16.0)
    assert TALParams(num_classes=1, stride_val=8.0, profile="latest").enlargement == (8.0, 8.0)
    assert TALParams(num_classes=1, stride_val=16.0, profile="classic").enlargement is None
    cfg = config_from_dict({"strides": [4, 8, 16, 32], "assigner": {"profile": "v8.4.0"}})
    p = TALParams.from_config(cfg, 3)
    assert (p.strides, p.stride_val, p.enlargement, p.num_classes) == ((4.0, 8.0, 16.0, 32.0), 8.0, (4.0, 8.0), 3)


def test_auto_on_real_checkpoints(tmp_path):
    """A checkpoint saved by ultralytics 8.3.200 (tests/fixtures/models, made by scripts/make_legacy_checkpoint.py)
    selects classic; the same checkpoint with its version removed (hand-saved) the newest profile, with a warning
    naming the file; a model YAML has no trainer version (auto = newest, no note needed)."""
    pytest.importorskip("ultralytics")
    from yolotal.inputs.model import load_model

    path = Path(__file__).parent / "fixtures" / "models" / "yolov8_tiny_u83.pt"
    lm = load_model(path)
    assert lm.trainer_version == "8.3.200"
    cfg, note, warning = with_trainer_version(finalize(Config()), lm.trainer_version, lm.path)
    assert cfg.assigner.profile == "classic" and warning is None
    assert note.startswith("trained by ultralytics 8.3.200 → profile classic: no small-GT enlargement")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    del ckpt["version"]
    hand = tmp_path / "hand.pt"
    torch.save(ckpt, hand)
    lm = load_model(hand)
    assert lm.trainer_version is None
    cfg, note, warning = with_trainer_version(finalize(Config()), lm.trainer_version, lm.path)
    assert cfg.assigner.profile == "ultralytics" and warning.startswith(f"{hand}: no ultralytics version")
    assert load_model("yolov8n.yaml", nc=2).trainer_version is None
    # checkpoints saved by 8.4 releases (scripts/make_version_checkpoint.py): each its own profile
    for version, profile, rule in (("8.4.127", "v8.4.0", (8.0, 16.0)), ("8.4.190", "ultralytics", (16.0, 16.0))):
        lm = load_model(path.parent / f"yolov8_tiny_u{version}.pt")
        cfg, note, warning = with_trainer_version(finalize(Config()), lm.trainer_version, lm.path)
        assert (lm.trainer_version, cfg.assigner.profile, cfg.enlargement, warning) == (version, profile, rule, None)
        assert note.startswith(f"trained by ultralytics {version} → profile {profile}: ")


def test_an_unquoted_release_in_yaml_is_refused_with_a_hint():
    with pytest.raises(InputError, match="assigner.profile: expected a string \\(quote a release number: '8.3'\\), got 8.3"):
        config_from_dict({"assigner": {"profile": 8.3}}, "x.yaml")


def test_a_release_number_newer_than_known_or_before_yolov8_warns():
    from yolotal.config import Config, with_overrides

    cfg = with_overrides(Config(), profile="9.0.0")
    assert cfg.assigner.profile == "ultralytics"
    assert any(w.startswith("--profile 9.0.0: ultralytics 9.0.0 is newer than the newest release") for w in cfg.warnings)
    assert with_overrides(Config(), profile="7.0").assigner.profile == "v8.0.0"
    assert any("predates YOLOv8" in w for w in with_overrides(Config(), profile="7.0").warnings)
    assert not with_overrides(Config(), profile="8.3.202").warnings  # a known release: no warning
