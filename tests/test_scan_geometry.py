"""scan follows the one geometry rule: a label file whose image is found is letterboxed like ultralytics'
validation (size from the header), exactly as `yolotal assign` maps it; without an image, the square stretch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from yolotal.scanning import report, scan

# boxes chosen to sit near the thresholds once letterboxed: a 12 px-wide box at 1280 px wide becomes 6 px on a
# 640 canvas (no classic candidate), the same normalised box on a square canvas has 7.5 px
LABELS = {
    "wide": ("0 0.5 0.5 0.0094 0.03\n1 0.2 0.3 0.05 0.08\n2 0.61 0.41 0.3 0.2\n", (1280, 720)),
    "tall": ("0 0.5 0.5 0.03 0.011\n1 0.8 0.1 0.2 0.1\n", (480, 1000)),
    "small": ("2 0.3 0.7 0.25 0.25\n0 0.52 0.47 0.04 0.02\n", (200, 150)),
    "nopic": ("0 0.5 0.5 0.0094 0.03\n", None),
}


def make(root):
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for stem, (text, size) in LABELS.items():
        (root / "labels" / f"{stem}.txt").write_text(text)
        if size:
            Image.new("RGB", size, (10, 200, 30)).save(root / "images" / f"{stem}.png")
    return root / "labels"


@pytest.mark.parametrize("profile", ["classic", "ultralytics"])
def test_scan_no_candidate_counts_agree_with_assign(cli, tmp_path, profile):
    labels = make(tmp_path)
    res = scan(labels, (640, 640), (8, 16, 32), 16, nc=3)
    key = "cand_classic" if profile == "classic" else "cand_ultra"
    cand = getattr(res.geo, key)
    files = [p.stem for p in res.labels.files]
    assert files == ["nopic", "small", "tall", "wide"]
    for fi, stem in enumerate(files):
        out = tmp_path / f"{stem}.npz"
        code, stdout, err = cli("assign", labels / f"{stem}.txt", "--nc", "3", "--profile", profile, "--export", out)
        assert code == 0, err
        z = np.load(out)
        rows = np.nonzero(res.parsed.file == fi)[0]
        assert len(rows) == int(z["mask_gt"].sum())
        for m, g in enumerate(rows):  # candidates per level of each GT: the same in both
            per_level = [int(z["mask_in_gts"][0, m, a:b].sum()) for a, b in ((0, 6400), (6400, 8000), (8000, 8400))]
            assert cand[g].tolist() == per_level, (stem, m)
            np.testing.assert_allclose(res.geo.box_px[g], z["gt_bboxes"][0, m], rtol=0, atol=1e-4)
    starved = res.flags()["starved_classic" if profile == "classic" else "starved_ultralytics"]
    if profile == "classic":  # the 12 px-wide box: 6 px when letterboxed from 1280 px, 7.5 px stretched
        assert starved[res.parsed.file == files.index("wide")].tolist() == [True, False, False]
        assert res.geo.box_px[res.parsed.file == files.index("wide")][0, 2:].tolist() != [324.0, 329.6]


def test_scan_letterbox_numbers_and_report(tmp_path):
    labels = make(tmp_path)
    res = scan(labels, (640, 640), (8, 16, 32), 16, nc=3)
    assert res.parsed.image_wh.tolist() == [[0, 0], [200, 150], [480, 1000], [1280, 720]]
    # wide: r = 0.5, 640×360, padded top round(140 - 0.1) = 140; GT 0 centre (0.5·1280·0.5, 0.5·720·0.5 + 140)
    g = np.nonzero(res.parsed.file == 3)[0][0]
    x1, y1, x2, y2 = res.geo.box_px[g]
    assert (x1 + x2) / 2 == pytest.approx(320) and (y1 + y2) / 2 == pytest.approx(180 + 140)
    assert x2 - x1 == pytest.approx(0.0094 * 640, rel=1e-5) and y2 - y1 == pytest.approx(0.03 * 360, rel=1e-5)
    # nopic: stretched to the square canvas
    g = np.nonzero(res.parsed.file == 0)[0][0]
    assert res.geo.box_px[g, 3] - res.geo.box_px[g, 1] == pytest.approx(0.03 * 640, rel=1e-5)
    doc = report(res)
    assert doc["geometry"] == {"letterboxed": 3, "no_image": 1}


def test_scan_unreadable_or_tiny_image_is_corrupt(tmp_path):
    labels = make(tmp_path)
    (tmp_path / "images" / "small.png").write_bytes(b"not a png")
    Image.new("RGB", (9, 40)).save(tmp_path / "images" / "tall.png")
    doc = report(scan(labels, (640, 640), (8, 16, 32), 16, nc=3))
    errs = [(e["file"].rsplit("/", 1)[-1], e["line"], e["reason"]) for e in doc["errors"]]
    assert errs == [
        ("small.txt", 0, f"image {tmp_path / 'images' / 'small.png'}: not a readable image (UnidentifiedImageError)"),
        ("tall.txt", 0, f"image {tmp_path / 'images' / 'tall.png'}: size 9×40 is under 10 px (ultralytics rejects it)"),
    ]
    assert doc["files"]["corrupt"] == 2 and doc["gts"] == 4
    assert doc["geometry"] == {"letterboxed": 1, "no_image": 1}  # corrupt files are in neither count


def test_cli_scan_prints_the_geometry(cli, tmp_path):
    code, out, err = cli("scan", make(tmp_path))
    assert code == 0, err
    flat = " ".join(out.split())
    assert "3 files letterboxed onto the canvas like ultralytics' validation" in flat
    assert "1 files: no image found: labels taken as a 640×640 image" in flat


def test_simulate_in_worker_processes_gives_the_same_positives(tmp_path, monkeypatch):
    import yolotal.scanning as scan_mod

    rng = np.random.default_rng(3)
    for i in range(100):
        n = int(rng.integers(0, 6))
        (tmp_path / f"{i:03d}.txt").write_text("".join(
            f"{rng.integers(0, 4)} {rng.uniform(.2, .8):.4f} {rng.uniform(.2, .8):.4f} {rng.uniform(.01, .4):.4f} "
            f"{rng.uniform(.01, .4):.4f}\n" for _ in range(n)))
    monkeypatch.setattr(scan_mod, "SIMULATE_BATCH", 8)  # ranges of 32 files: four worker tasks
    one = scan(tmp_path, (320, 320), (8, 16, 32), 16, nc=4, do_simulate=True)
    two = scan(tmp_path, (320, 320), (8, 16, 32), 16, nc=4, do_simulate=True, workers=2)
    assert one.positives.sum() > 0 and np.array_equal(one.positives, two.positives)
