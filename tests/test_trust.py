"""Honest failure and edge cases: fuzzed parsers, the dense-size guard, permutation invariance, numerical
corner cases (zero-area, border, on-edge anchors, duplicates, nc=1, reg_max=1, fp16)."""

from __future__ import annotations

import io
import random
import zipfile

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from test_properties import cases
from yolotal import TaskAlignedAssigner
from yolotal.assigners.tal import TALParams, assign
from yolotal.config import config_from_dict, load_config
from yolotal.errors import InputError
from yolotal.inputs.heads import from_levels, load_heads
from yolotal.inputs.labels import labels_from_array, load_labels
from yolotal.pipeline import run

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALID_LABELS = "0 0.5 0.5 0.2 0.3\n2 0.1 0.9 0.05 0.05\n1 0.75 0.25 0.5 0.5\n"
VALID_CONFIG = "imgsz: 320\nstrides: [8, 16, 32]\nnc: 3\nreg_max: 16\nassigner: {profile: classic, topk: 10}\n"


def mutate(text: bytes, data) -> bytes:
    """Random byte edits: replace, insert or delete a few positions."""
    b = bytearray(text)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        c = data.draw(st.sampled_from(list(b" -.e0123456789nanif\n\t,:[]{}x\xff\x00")))
        if op == "replace" and b:
            b[i] = c
        elif op == "insert":
            b.insert(i, c)
        elif b:
            del b[i]
    return bytes(b)


def only_result_or_input_error(fn):
    try:
        return fn()
    except InputError as e:
        assert str(e) and "Traceback" not in str(e) and "\n" not in str(e)  # one line
        return e


# ------------------------------------------------------------------------------------------------ fuzzing
@FUZZ
@given(st.data())
def test_label_parser_fuzz(tmp_path, data):
    raw = data.draw(st.one_of(st.binary(max_size=200), st.just(b"")).map(lambda b: b)
                    | st.builds(lambda: VALID_LABELS.encode()).flatmap(lambda v: st.just(mutate(v, data))))
    p = tmp_path / "fuzz.txt"
    p.write_bytes(raw)
    out = only_result_or_input_error(lambda: load_labels(p, nc=3))
    if isinstance(out, InputError):
        assert out.source == str(p)
    else:  # a result: every value is finite, classes in range, boxes normalised
        assert np.isfinite(out.xywhn).all() and ((out.cls >= 0) & (out.cls < 3)).all()
        assert ((out.xywhn[:, :2] >= 0) & (out.xywhn[:, :2] <= 1)).all() and (out.xywhn[:, 2:] >= 0).all()


@FUZZ
@given(st.data())
def test_config_loader_fuzz(tmp_path, data):
    raw = data.draw(st.one_of(st.binary(max_size=200), st.just(mutate(VALID_CONFIG.encode(), data))))
    p = tmp_path / "fuzz.yaml"
    p.write_bytes(raw)
    out = only_result_or_input_error(lambda: load_config(p))
    if isinstance(out, InputError):
        assert out.source == str(p)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(["imgsz", "strides", "nc", "reg_max", "assigner", "loss", "heads",
                                        "dense_budget_mb", "bogus"]), yaml_values, max_size=4),
       st.dictionaries(st.sampled_from(["profile", "topk", "topk2", "alpha", "beta", "eps", "name"]), yaml_values,
                       max_size=3))
def test_config_values_fuzz(top, assigner):
    if assigner:
        top = {**top, "assigner": assigner}
    out = only_result_or_input_error(lambda: config_from_dict(top, "fuzz.yaml"))
    if not isinstance(out, InputError):
        assert out.assigner.topk >= 1 and all(s > 0 for s in out.strides) and out.reg_max >= 1


def _valid_npz() -> bytes:
    g = torch.Generator().manual_seed(0)
    buf = io.BytesIO()
    np.savez(buf, **{f"level{i}": torch.randn(1, 67, 8 // 2**i, 8 // 2**i, generator=g).numpy() for i in range(3)})
    return buf.getvalue()


def _valid_pt() -> bytes:
    g = torch.Generator().manual_seed(0)
    buf = io.BytesIO()
    torch.save([torch.randn(1, 67, 8 // 2**i, 8 // 2**i, generator=g) for i in range(3)], buf)
    return buf.getvalue()


@FUZZ
@given(st.data())
def test_heads_loader_fuzz(tmp_path, data):
    kind = data.draw(st.sampled_from(["bytes", "mutated", "mutated_pt", "arrays"]))
    p = tmp_path / data.draw(st.sampled_from(["h.npz", "h.pt"]))
    if kind == "bytes":
        p.write_bytes(data.draw(st.binary(max_size=300)))
    elif kind == "mutated":
        p = p.with_suffix(".npz")
        p.write_bytes(mutate(_valid_npz(), data))
    elif kind == "mutated_pt":
        p = p.with_suffix(".pt")
        p.write_bytes(mutate(_valid_pt(), data))
    else:  # well-formed files with hostile contents: shapes, dtypes, NaN/inf, missing levels
        p = p.with_suffix(".npz")
        arrays = {}
        for i in range(data.draw(st.integers(0, 3))):
            shape = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=5))
            dtype = data.draw(st.sampled_from([np.float32, np.float16, np.int32, np.bool_, np.float64]))
            a = np.zeros(shape, dtype)
            if a.size and dtype in (np.float32, np.float64, np.float16):
                a.flat[0] = data.draw(st.sampled_from([np.nan, np.inf, 1.0]))
            arrays[data.draw(st.sampled_from([f"level{i}", "x", f"level{i + 1}"]))] = a
        with zipfile.ZipFile(p, "w") if not arrays else open(p, "wb") as f:
            if arrays:
                np.savez(f, **arrays)
    out = only_result_or_input_error(lambda: load_heads(p, 16, 3))
    if isinstance(out, InputError):
        assert out.source == str(p)
    else:
        assert torch.isfinite(out.boxes).all() and out.scores.shape[1] == 3


def test_cli_gives_exit_2_for_fuzzed_inputs(cli, write):
    """One end-to-end check of the contract: bad input -> exit 2, one line naming the file."""
    bad = write("bad.txt", b"\xff\xfe\x00garbage")
    code, out, err = cli("assign", bad)
    assert code == 2 and "Traceback" not in err and str(bad) in err and len(err.strip().splitlines()) == 1
    cfg = write("bad.yaml", "assigner: {topk: [1, 2}\n")
    code, _, err = cli("assign", write("ok.txt", VALID_LABELS), "--config", cfg)
    assert code == 2 and f"{cfg}:1" in err and "broken YAML" in err


# ------------------------------------------------------------------------------------------------ size guard
def crowd_labels(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, h = np.exp(rng.normal(np.log(0.05), 0.8, (2, n))).clip(0.003, 1)
    cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
    return np.stack([np.zeros(n), rng.integers(0, 5, n), cx, cy, w, h], 1).astype(np.float32)


def test_size_guard_assigns_on_pairs_with_the_same_targets_and_loss():
    rows = crowd_labels(300)
    cfg = config_from_dict({"imgsz": 640, "nc": 5, "heads": {"kind": "trained"}})
    labels = labels_from_array(rows, 1)
    dense = run(cfg, labels)
    small = run(config_from_dict({"dense_budget_mb": 10}, base=cfg), labels)
    assert not dense.summarised
    assert "(1, 300, 8400) assignment tensors would take about 77 MB, over the 10 MB budget" in small.summarised
    assert "mask_in_gts" not in small and "overlaps" not in small and "pair_t" in small
    assert torch.equal(small["target_scores"], dense["target_scores"])
    w = dense["fg_mask"] & (dense["target_scores"].sum(-1) > 0)
    assert torch.equal(small["target_gt_idx"][w], dense["target_gt_idx"][w])
    for k in ("loss_box", "loss_cls", "loss_dfl"):
        assert torch.allclose(small[k], dense[k], rtol=1e-6, atol=0), k


def test_size_guard_default_budget_trips_on_1000_gts_at_1280(cli, write):
    rows = crowd_labels(1000, seed=1)
    p = write("crowd.txt", "".join(f"{int(r[1])} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f} {r[5]:.6f}\n" for r in rows))
    out_npz = p.parent / "crowd.npz"
    code, out, err = cli("assign", p, "--imgsz", "1280", "--nc", "5", "--synthetic", "trained", "--export", out_npz)
    assert code == 0, err
    from yolotal.pipeline import DENSE_BYTES_PER_CELL

    anchors = (1280 // 8) ** 2 + (1280 // 16) ** 2 + (1280 // 32) ** 2  # 25600 + 6400 + 1600
    need = 1 * 1000 * anchors * DENSE_BYTES_PER_CELL / 2**20  # b × M × A cells, bytes per cell
    assert anchors == 33600 and 512 < need
    flat = " ".join(out.split())  # notes wrap at the console's width
    assert f"(1, 1000, {anchors}) assignment tensors would take about {need:,.0f} MB, over the 512 MB budget" in flat
    assert "1000 GTs," in flat and "the table shows 40 of them, flagged first" in flat
    assert "Per-GT summary" in out and "candidates by t = s^" not in out and "claimed by several GTs" not in out
    assert len(out.splitlines()) < 200  # summarised, not printed in full
    z = np.load(out_npz)
    assert "pair_a" in z.files and "mask_in_gts" not in z.files
    assert z["pair_a"].shape == z["pair_t"].shape and z["target_scores"].shape == (1, 33600, 5)


def test_full_never_prints_giant_tensors():
    from yolotal.render.terminal import PRINT_LIMIT, tensor_text

    big = torch.zeros(PRINT_LIMIT + 1)
    text = tensor_text(big, full=True)
    assert "not printed in full" in text and len(text) < 300
    assert tensor_text(torch.zeros(1500), full=True).count("0.") == 1500


# ------------------------------------------------------------------------------------------------ invariants
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 2**30).map(random.Random))
def test_reordering_gts_permutes_target_gt_idx_only(case, rnd):
    """Up to exact ties (duplicate GTs, equal CIoU) and the last bit of s^alpha * u^beta: torch's vectorised pow
    can round differently when a pair moves between a SIMD block and a loop tail, and reordering GTs moves
    pairs. The reference trainer has the same property."""
    cfg, labels, heads = case
    keys = [(int(labels.batch_idx[k]), tuple(labels.xywhn[k])) for k in range(len(labels))]
    assume(len(set(keys)) == len(keys))  # exact duplicates tie on purpose (the lower slot wins)
    order = list(range(len(labels)))
    rnd.shuffle(order)
    order = sorted(order, key=lambda i: labels.batch_idx[i])  # shuffle within each image
    rows = np.concatenate([labels.batch_idx[order, None], labels.cls[order, None], labels.xywhn[order]], 1)
    perm = labels_from_array(rows.astype(np.float32), heads.batch)
    a, b = run(cfg, labels, heads), run(cfg, perm, heads)
    w_a = a["fg_mask"] & (a["target_scores"].sum(-1) > 0)
    w_b = b["fg_mask"] & (b["target_scores"].sum(-1) > 0)
    assert torch.equal(w_a, w_b)
    assert torch.allclose(a["target_scores"], b["target_scores"], rtol=1e-6, atol=1e-7)
    for i in range(heads.batch):
        old = [k for k in range(len(labels)) if labels.batch_idx[k] == i]
        new_to_old = torch.tensor([old.index(k) for k in order if labels.batch_idx[k] == i], dtype=torch.int64)
        if new_to_old.numel():  # slot j of the permuted image holds old slot new_to_old[j]
            assert torch.equal(new_to_old[b["target_gt_idx"][i][w_b[i]]], a["target_gt_idx"][i][w_a[i]])
    for k in ("loss_box", "loss_cls", "loss_dfl"):
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------ edge cases
def one_image(rows, nc=2, reg_max=16, imgsz=64, profile="ultralytics", seed=0, dtype=torch.float32):
    cfg = config_from_dict({"imgsz": imgsz, "nc": nc, "reg_max": reg_max, "assigner": {"profile": profile}})
    g = torch.Generator().manual_seed(seed)
    levels = [torch.randn(1, 4 * reg_max + nc, imgsz // s, imgsz // s, generator=g).to(dtype) for s in (8, 16, 32)]
    return run(cfg, labels_from_array(np.array(rows, np.float32).reshape(-1, 6), 1), from_levels(levels, reg_max, "t"))


def finite_losses(t):
    return all(torch.isfinite(t[k]) for k in ("loss_box", "loss_cls", "loss_dfl"))


@pytest.mark.parametrize("profile", ["ultralytics", "classic"])
def test_zero_area_boxes_are_finite_and_never_positive_under_classic(profile):
    t = one_image([[0, 0, 0.5, 0.5, 0.0, 0.25], [0, 1, 0.3, 0.3, 0.2, 0.0], [0, 0, 0.7, 0.7, 0.2, 0.2]], profile=profile)
    assert finite_losses(t)
    cand = t["mask_in_gts"][0, :2].sum(-1)
    if profile == "classic":
        assert cand.tolist() == [0, 0]  # a zero-width box contains no anchor centre strictly inside
    else:
        assert (cand > 0).all()  # enlarged to stride_val about its centre
    assert torch.isfinite(t["overlaps"]).all() and torch.isfinite(t["target_scores"]).all()


def test_boxes_crossing_the_border_keep_their_pixels():
    # cx 0.05, w 0.3: x1 = -16 px at 64 px; the reference does not clip and neither does yolotal
    t = one_image([[0, 0, 0.05, 0.5, 0.3, 0.3]])
    assert t["gt_bboxes"][0, 0, 0].item() == pytest.approx(-6.4, abs=1e-4)
    assert finite_losses(t)


def test_anchor_centre_exactly_on_a_box_edge_is_not_a_candidate():
    # stride-8 centres at 4, 12, 20, ... px; a box from 4 to 20 px (cx 12, w 16) at 64 px, classic profile
    t = one_image([[0, 0, 12 / 64, 12 / 64, 16 / 64, 16 / 64]], profile="classic")
    lv0 = t["mask_in_gts"][0, 0, :64].reshape(8, 8)
    assert lv0.nonzero().tolist() == [[1, 1]]  # only the centre at (12, 12); (4, .) and (20, .) lie on edges


def test_identical_duplicate_gts_split_nothing_and_the_first_wins():
    row = [0, 1, 0.5, 0.5, 0.4, 0.4]
    t = one_image([row, row], seed=3)
    assert finite_losses(t)
    mp = t["mask_pos"][0]
    assert not (mp[0] & mp[1]).any()  # an anchor never has two GTs
    contested = t["mask_multi"][0]
    assert (t["target_gt_idx"][0][contested & t["fg_mask"][0]] == 0).all()  # equal CIoU: the lower slot wins


def test_nc_1_and_reg_max_1():
    t = one_image([[0, 0, 0.5, 0.5, 0.5, 0.5]], nc=1, reg_max=1)
    assert finite_losses(t) and t["target_scores"].shape[-1] == 1
    assert t["loss_box"] > 0 and t["loss_dfl"] > 0  # ultralytics' L1 term stands in for DFL when reg_max = 1


def test_fp16_heads_are_read_as_float32(tmp_path):
    g = torch.Generator().manual_seed(0)
    levels = [torch.randn(1, 67, 8 // 2**i, 8 // 2**i, generator=g) for i in range(3)]
    np.savez(tmp_path / "h16.npz", **{f"level{i}": x.half().numpy() for i, x in enumerate(levels)})
    h = load_heads(tmp_path / "h16.npz", 16, 3)
    assert h.boxes.dtype == torch.float32
    assert torch.equal(h.boxes, from_levels([x.half() for x in levels], 16, "x").boxes)
    with np.errstate(over="ignore"):
        np.savez(tmp_path / "inf.npz", level0=np.full((1, 67, 8, 8), 70000, np.float32).astype(np.float16))
    with pytest.raises(InputError, match="NaN or infinite"):
        load_heads(tmp_path / "inf.npz", 16, 3)  # 70000 overflows float16


def test_fp16_assigner_inputs():
    rows = crowd_labels(20)
    t = run(config_from_dict({"imgsz": 128, "nc": 5, "heads": {"kind": "trained"}}), labels_from_array(rows, 1))
    half = [t["pred_scores"].half(), t["pred_bboxes"].half(), (t["anchor_points"] * t["stride_tensor"]).half(),
            t["gt_labels"].half(), t["gt_bboxes"].half(), t["mask_gt"].half()]
    tal = TaskAlignedAssigner(topk=10, num_classes=5, alpha=0.5, keep_last=True)
    out = tal(*half)
    assert out[2].dtype == torch.float16 and torch.isfinite(out[2]).all() and int(out[3].sum()) > 0
    # the dense rule divides by (largest t of the GT + eps); eps = 1e-9 underflows in float16, so a GT slot
    # without positives gives 0/0 and the max over GTs spreads NaN to every anchor (ultralytics 8.4 does this
    # too). The pair assigner divides only for GTs with positives and stays finite:
    d16 = assign(*half, TALParams(num_classes=5))
    assert torch.isnan(d16.target_scores).all()
    assert ((out[2] >= 0) & (out[2] <= 1)).all()
    # float16 rounds t (u^6 of a CIoU of 0.1 is subnormal), so the picks are float16's own; they stay sane:
    r = tal.last
    assert (torch.bincount(r.pair_m[r.pair_topk], minlength=20) <= 10).all()  # top-k per GT
    assert torch.equal(out[3][0], torch.zeros_like(out[3][0]).index_fill_(0, r.pair_a[r.pair_pos], True))


def test_yaml_with_nan_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"assigner": {"alpha": float("nan")}}))
    with pytest.raises(InputError, match="assigner.alpha: expected a number >= 0, got nan"):
        load_config(p)


def test_export_is_atomic(tmp_path, monkeypatch):
    from yolotal.render import export as ex

    t = one_image([[0, 0, 0.5, 0.5, 0.5, 0.5]])
    target = tmp_path / "t.npz"
    target.write_bytes(b"previous run")

    def half_written(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(ex.np, "savez_compressed", half_written)
    with pytest.raises(OSError, match="disk full"):
        ex.export(t, target)
    assert target.read_bytes() == b"previous run"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]  # and no temporary file is left
    monkeypatch.undo()
    ex.export(t, target)
    assert "target_scores" in np.load(target).files
