from __future__ import annotations

import numpy as np
import pytest
import torch

from yolotal.errors import InputError
from yolotal.inputs.heads import check_grids, load_heads, synthetic_randn, synthetic_trained
from yolotal.inputs.labels import load_labels, with_batch


# ------------------------------------------------------------------------------------------------ labels
def test_single_image_file(write):
    p = write("img.txt", "0 0.5 0.5 0.2 0.4\n\n3 0.1 0.2 0.05 0.05\n")
    lab = load_labels(p, nc=5)
    assert lab.n_images == 1 and len(lab) == 2
    assert lab.batch_idx.tolist() == [0, 0] and lab.cls.tolist() == [0, 3]
    assert lab.xywhn.dtype == np.float32 and lab.xywhn[1].tolist() == pytest.approx([0.1, 0.2, 0.05, 0.05])
    assert lab.origin == ((str(p), 1), (str(p), 3))


def test_directory_sorted_by_name_with_background(write, tmp_path):
    write("d/b.txt", "1 0.5 0.5 0.1 0.1\n")
    write("d/a.txt", "")
    write("d/c.txt", "0 0.5 0.5 0.3 0.3\n2 0.2 0.2 0.1 0.1\n")
    write("d/notes.md", "ignored")
    lab = load_labels(tmp_path / "d", nc=3)
    assert lab.images == ("a", "b", "c")
    assert lab.batch_idx.tolist() == [1, 2, 2] and lab.cls.tolist() == [1, 0, 2]


def test_batch_file(write):
    lab = load_labels(write("batch.txt", "0 1.0 0.5 0.5 0.1 0.1\n2 0 0.5 0.5 0.2 0.2\n"), nc=3)
    assert lab.n_images == 3 and lab.batch_idx.tolist() == [0, 2] and lab.cls.tolist() == [1, 0]


def test_empty_file_is_background(write):
    lab = load_labels(write("e.txt", "\n"), nc=3)
    assert lab.n_images == 1 and len(lab) == 0 and lab.xywhn.shape == (0, 4)


@pytest.mark.parametrize(
    "text,line,msg",
    [
        ("0 0.5 0.5 0.1\n", 1, "expected 5 columns (cls cx cy w h) or a polygon"),
        ("0 0.5 0.5 0.1 0.1\n0 1 0.5 0.5 0.1 0.1\n", 2, "expected 5 columns (cls cx cy w h) or a polygon (cls x1 y1 "
                                                       "x2 y2 x3 y3 ...), got 6"),
        ("0 0.5 abc 0.1 0.1\n", 1, "not a number: 'abc'"),
        ("0 0.5 nan 0.1 0.1\n", 1, "NaN in the box (cy)"),
        ("0 0.5 0.5 inf 0.1\n", 1, "box w=inf is above 1.01"),
        ("\n7 0.5 0.5 0.1 0.1\n", 2, "class id must be an integer in [0, 3), got 7"),
        ("1.5 0.5 0.5 0.1 0.1\n", 1, "class id must be an integer in [0, 3), got 1.5"),
        ("-1 0.5 0.5 0.1 0.1\n", 1, "class id must be an integer"),
        ("0 0.5 0.5 -0.1 0.1\n", 1, "negative box size w=-0.1"),
        ("0 1.2 0.5 0.1 0.1\n", 1, "box cx=1.2 is above 1.01"),
        ("0 0.5 0.5 1.0100001 0.1\n", 1, "box w=1.0100001 is above 1.01"),
        ("0 0.5 0.5 0.1 1.02\n", 1, "box h=1.02 is above 1.01"),
        ("0 -0.0100001 0.5 0.1 0.1\n", 1, "box cx=-0.0100001 is below -0.01"),
        ("0.5 0 0.5 0.5 0.1 0.1\n", 1, "batch index must be an integer >= 0"),
    ],
)
def test_bad_label_lines_name_file_and_line(write, text, line, msg):
    p = write("l.txt", text)
    with pytest.raises(InputError) as e:
        load_labels(p, nc=3)
    assert e.value.source == str(p) and e.value.line == line
    assert msg in str(e.value)


def test_binary_and_missing_label_files(write, tmp_path):
    with pytest.raises(InputError, match="binary data"):
        load_labels(write("bin.txt", b"\x00\x01\x02"), nc=3)
    with pytest.raises(InputError, match="not UTF-8"):
        load_labels(write("latin.txt", b"0 0.5 0.5 0.1 0.1 \xff\n"), nc=3)
    with pytest.raises(InputError, match="label file not found"):
        load_labels(tmp_path / "missing.txt", nc=3)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no \\*.txt label files"):
        load_labels(tmp_path / "empty_dir", nc=3)


def test_with_batch_pads_and_refuses(write):
    lab = load_labels(write("b.txt", "0 0 0.5 0.5 0.1 0.1\n3 0 0.5 0.5 0.1 0.1\n"), nc=1)
    assert with_batch(lab, 6).images[4:] == ("background[4]", "background[5]")
    with pytest.raises(InputError) as e:
        with_batch(lab, 2)
    assert e.value.line == 2 and "batch index 3 but the heads hold only 2 images" in str(e.value)


# ------------------------------------------------------------------------------------------------ heads
GRIDS = [(8, 8), (4, 4), (2, 2)]


def levels(b=2, nc=3, reg_max=16, grids=GRIDS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 4 * reg_max + nc, h, w, generator=g) for h, w in grids]


def test_npz_heads_roundtrip(tmp_path):
    lv = levels()
    np.savez(tmp_path / "h.npz", **{f"level{i}": x.numpy() for i, x in enumerate(lv)})
    h = load_heads(tmp_path / "h.npz", 16, None)
    assert h.batch == 2 and h.nc == 3 and h.grids == tuple(GRIDS)
    assert h.boxes.shape == (2, 64, 84) and h.scores.shape == (2, 3, 84)
    assert torch.equal(h.boxes[:, :, :64], lv[0].view(2, 67, 64)[:, :64])
    assert torch.equal(h.scores[:, :, 80:], lv[2].view(2, 67, 4)[:, 64:])


def test_pt_list_and_ultralytics84_dict(tmp_path):
    lv = levels()
    torch.save(lv, tmp_path / "list.pt")
    a = load_heads(tmp_path / "list.pt", 16, 3)
    flat = torch.cat([x.view(2, 67, -1) for x in lv], 2)
    d = {"boxes": flat[:, :64], "scores": flat[:, 64:], "feats": [torch.zeros(2, 8, h, w) for h, w in GRIDS]}
    torch.save(d, tmp_path / "dict.pt")
    b = load_heads(tmp_path / "dict.pt", 16, 3)
    torch.save({"one2many": d, "one2one": d}, tmp_path / "e2e.pt")
    c = load_heads(tmp_path / "e2e.pt", 16, 3)
    for x in (b, c):
        assert torch.equal(a.boxes, x.boxes) and torch.equal(a.scores, x.scores) and a.grids == x.grids


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda p: np.savez(p, level0=levels(nc=4)[0].numpy()), "head has 68 channels, expected 4*reg_max+nc = 4*16+3 = 67"),
        (lambda p: np.savez(p, feats=np.zeros(3)), "expected arrays level0, level1, ...; found ['feats']"),
        (lambda p: np.savez(p, level0=np.full((1, 67, 2, 2), np.nan, np.float32)), "level0: contains NaN"),
        (lambda p: np.savez(p, level0=np.zeros((67, 2, 2), np.float32)), "level0: expected an array (b, 4*reg_max+nc, h, w)"),
        (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "corrupt .npz file"),
    ],
)
def test_bad_npz_heads(tmp_path, make, msg):
    p = tmp_path / "h.npz"
    make(p)
    with pytest.raises(InputError) as e:
        load_heads(p, 16, 3)
    assert e.value.source == str(p) and msg in str(e.value)


def test_bad_pt_and_suffix(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt or unreadable .pt file"):
        load_heads(tmp_path / "x.pt", 16, 3)
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(InputError, match="must be .npz or .pt"):
        load_heads(tmp_path / "x.bin", 16, 3)
    with pytest.raises(InputError, match="heads file not found"):
        load_heads(tmp_path / "none.npz", 16, 3)


def test_grid_mismatch_is_reported():
    h = synthetic_randn(1, 3, 16, GRIDS, 0)
    with pytest.raises(InputError, match=r"head grids \[\[8, 8\], \[4, 4\], \[2, 2\]\] do not match imgsz \[320, 320\]"):
        check_grids(h, [(40, 40), (20, 20), (10, 10)], (320, 320), (8, 16, 32))


def test_synthetic_randn_is_seeded_like_the_walkthrough():
    h = synthetic_randn(4, 3, 16, GRIDS, 7)
    torch.manual_seed(7)
    ref = [torch.randn(4, 67, hh, ww) for hh, ww in GRIDS]
    assert torch.equal(h.boxes, torch.cat([x.view(4, 67, -1) for x in ref], 2)[:, :64])


def test_synthetic_trained_predicts_near_the_labels():
    from yolotal.core.decode import dfl_distances
    from yolotal.inputs.heads import TRAINED_BOX_NOISE, _box_muller, anchor_uniforms

    xyxy = np.array([[96.0, 64.0, 224.0, 192.0]], np.float32)
    h = synthetic_trained(1, 2, 16, [(32, 32), (16, 16), (8, 8)], (8, 16, 32), 0, np.array([0]), np.array([1]), xyxy)
    # anchor (232, 136) px on stride 16: cell (14, 8) is outside; cell (10, 8) = (168, 136) px is inside
    a = 1024 + 8 * 16 + 10
    ltrb = dfl_distances(h.boxes.permute(0, 2, 1), 16)[0, a] * 16
    true = np.array([168 - 96, 136 - 64, 224 - 168, 192 - 136], np.float64)  # 72, 72, 56, 56 px
    sigma = (TRAINED_BOX_NOISE[0] + TRAINED_BOX_NOISE[1] * 8) * 16  # px: 0.3 cells + 6% of the 8-cell side
    u = anchor_uniforms(0, np.array([0]), np.array([a]))[0]
    noise = _box_muller(u[0:8:2], u[1:8:2])
    want = np.round((true + noise * sigma) / 16 * 64) / 64 * 16  # predicted distances are rounded to 1/64 cell
    assert ltrb.tolist() == pytest.approx(want.tolist(), abs=0.05)  # and DFL decodes the bump's centre
    cells = torch.tensor([1024 + y * 16 + x for y in range(4, 12) for x in range(6, 14)])  # the box's cells on s16
    s = torch.sigmoid(h.scores[0])
    # the GT's class logit: 0.5 - 16 d^2 + 0.7 noise; d = largest |offset| / (half side + half stride) = 8 / 72
    eps = _box_muller(u[8], u[9])
    assert float(h.scores[0, 1, a]) == pytest.approx(0.5 - 16 * (8 / 72) ** 2 + 0.7 * eps, abs=1e-5)
    assert s[1, cells].median() < 0.05 and s[1, cells].max() < 0.9  # high only near the centre, never certain
    assert s[0, cells].max() < 1e-4 and s[:, 1024:1280].median() < 1e-4  # other classes and the background
    bg = h.scores[0, 0]  # class 0 has no GT: background everywhere
    assert bg.min() >= -13.5 and bg.max() <= -10.5  # background logits: -12 ± 1.5


def test_synthetic_trained_anchor_by_anchor():
    """Any subset of anchors evaluates to the same values as the full heads (scan --simulate relies on it)."""
    from yolotal.core.decode import dfl_distances
    from yolotal.inputs.heads import (_padded, trained_at, trained_background_logits, trained_dfl_logits,
                                      trained_distances)

    grids, strides = [(16, 16), (8, 8), (4, 4)], (8, 16, 32)
    bi = np.array([0, 0, 1])
    cls = np.array([1, 2, 0])
    xyxy = np.array([[10, 20, 90, 70], [40, 30, 60, 50], [0, 0, 128, 100]], np.float32)
    full = synthetic_trained(2, 3, 16, grids, strides, 5, bi, cls, xyxy)
    again = synthetic_trained(2, 3, 16, grids, strides, 5, bi, cls, xyxy)
    assert torch.equal(full.boxes, again.boxes) and torch.equal(full.scores, again.scores)  # deterministic per seed
    other = synthetic_trained(2, 3, 16, grids, strides, 6, bi, cls, xyxy)
    assert not torch.equal(full.scores, other.scores)
    anc = torch.cat([torch.stack(torch.meshgrid(torch.arange(w) + 0.5, torch.arange(h) + 0.5, indexing="xy"), -1)
                     .reshape(-1, 2) * s for (h, w), s in zip(grids, strides)])
    st = torch.cat([torch.full((h * w,), float(s)) for (h, w), s in zip(grids, strides)])
    gl, gb, valid = _padded(2, bi, cls, xyxy)
    keys = torch.tensor([336 + 5, 53, 86, 300, 0])  # any order, both images
    at = trained_at(keys, anc, st, gb, gl, valid, 5, 16)
    n = anc.shape[0]
    dense_ltrb = dfl_distances(full.boxes.permute(0, 2, 1), 16).reshape(-1, 4)[keys]
    assert torch.equal(dfl_distances(trained_dfl_logits(at.dist, 16)[None], 16)[0], dense_ltrb)
    assert torch.equal(trained_distances(at.dist, 16), dense_ltrb)  # scan's table lookup: the same bits
    flat_scores = full.scores.permute(0, 2, 1).reshape(-1, 3)
    for k, o, c, lg in zip(keys.tolist(), at.owner.tolist(), at.owner_cls.tolist(), at.owner_logit.tolist()):
        for c2 in range(3):
            want = lg if o >= 0 and c2 == c else float(trained_background_logits(torch.tensor([k]), torch.tensor([c2]), n, 5)[0])
            assert float(flat_scores[k, c2]) == pytest.approx(want, abs=0)
    # image 1's anchor 5 lies in its GT (flat 1*M + 0); (44, 28) px in GT 0 only; (52, 44) px in both: the smaller wins
    assert at.owner.tolist() == [2, 0, 1, -1, -1]


@pytest.mark.parametrize("reg_max", [4, 16])
def test_trained_distances_table_equals_the_dfl_decode_everywhere(reg_max):
    """scan --simulate reads the decoded distances from a table: bit for bit the pipeline's softmax decode."""
    from yolotal.core.decode import dfl_distances
    from yolotal.inputs.heads import DFL_STEPS, trained_distances, trained_dfl_logits

    dist = torch.cat([torch.rand(5000, 4) * (reg_max + 2) - 1,  # random, and every quantised value once
                      (torch.arange((reg_max - 1) * DFL_STEPS + 1) / DFL_STEPS)[:, None].expand(-1, 4)])
    decoded = dfl_distances(trained_dfl_logits(dist, reg_max)[None], reg_max)[0]
    assert torch.equal(trained_distances(dist, reg_max), decoded)
