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
        ("0 0.5 0.5 0.1\n", 1, "expected 5 columns (cls cx cy w h) or 6"),
        ("0 0.5 0.5 0.1 0.1\n0 1 0.5 0.5 0.1 0.1\n", 2, "expected 5 columns like the lines above, got 6"),
        ("0 0.5 abc 0.1 0.1\n", 1, "not a number: 'abc'"),
        ("0 0.5 nan 0.1 0.1\n", 1, "NaN or infinite value"),
        ("0 0.5 0.5 inf 0.1\n", 1, "NaN or infinite value"),
        ("\n7 0.5 0.5 0.1 0.1\n", 2, "class id must be an integer in [0, 3), got 7"),
        ("1.5 0.5 0.5 0.1 0.1\n", 1, "class id must be an integer in [0, 3), got 1.5"),
        ("-1 0.5 0.5 0.1 0.1\n", 1, "class id must be an integer"),
        ("0 0.5 0.5 -0.1 0.1\n", 1, "negative box size"),
        ("0 1.2 0.5 0.1 0.1\n", 1, "cx=1.2 is outside [0, 1]"),
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
    xyxy = np.array([[96.0, 64.0, 224.0, 192.0]], np.float32)
    h = synthetic_trained(1, 2, 16, [(32, 32), (16, 16), (8, 8)], (8, 16, 32), 0, np.array([0]), np.array([1]), xyxy)
    from yolotal.core.decode import dfl_distances

    # anchor at the box centre on stride 16: cell (10, 8) -> flat 1024 + 8*16 + 10
    a = 1024 + 8 * 16 + 10
    ltrb = dfl_distances(h.boxes.permute(0, 2, 1), 16)[0, a] * 16
    assert ltrb.tolist() == pytest.approx([72, 72, 56, 56], abs=16)
    inside = slice(1024, 1024 + 256)  # stride-16 level: the box covers cells 6..13 x 4..11
    cells = torch.tensor([1024 + y * 16 + x for y in range(4, 12) for x in range(6, 14)])
    assert torch.sigmoid(h.scores[0, 1, cells]).median() > 0.6  # the GT's class
    assert torch.sigmoid(h.scores[0, 0, cells]).max() < 0.1  # other classes stay low
    assert torch.sigmoid(h.scores[0, 1, inside]).median() < 0.1  # most of the level is outside the box
