"""One geometry rule for every command: a label file's image is looked up and its labels are letterboxed the way
ultralytics' validation does; without an image, labels are stretched to the imgsz canvas (and the output says so)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolotal.inputs.pictures import image_for_label, image_size, letterbox_for

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "samples" / "shapes"


@pytest.mark.parametrize("w0, h0, imgsz, want", [
    # landscape 640×480 -> 320: r = 0.5, 320×240, total padding dh = 80 -> top round(40 - 0.1) = 40
    (640, 480, (320, 320), (320, 240, 0, 40, 0.5)),
    # portrait 360×640 -> 320: r = 0.5, 180×320, dw = 140 -> left 70
    (360, 640, (320, 320), (180, 320, 70, 0, 0.5)),
    # square 512 -> 320: r = 0.625, fills the canvas
    (512, 512, (320, 320), (320, 320, 0, 0, 0.625)),
    # odd padding: 100×51 -> 64: r = 0.64, 64×round(32.64) = 64×33, dh = 31 -> top round(15.5 - 0.1) = 15
    (100, 51, (64, 64), (64, 33, 0, 15, 0.64)),
    # upscaling: 200×100 -> 640: r = 3.2, 640×320, dh = 320 -> top 160
    (200, 100, (640, 640), (640, 320, 0, 160, 3.2)),
    # non-square canvas (h 320, w 640): 640×480 -> r = min(320/480, 640/640) = 2/3, 427×320, dw = 213 -> left 106
    (640, 480, (320, 640), (427, 320, 106, 0, 2 / 3)),
])
def test_letterbox_hand_worked(w0, h0, imgsz, want):
    lb = letterbox_for(w0, h0, imgsz)
    assert (lb.new_w, lb.new_h, lb.left, lb.top) == want[:4]
    assert lb.r == pytest.approx(want[4], rel=1e-12)


def test_labels_are_scaled_by_r_and_shifted_by_the_padding(cli, tmp_path):
    npz = tmp_path / "a.npz"
    code, out, err = cli("assign", SHAPES / "labels", "--nc", "3", "--imgsz", "320", "--export", npz)
    assert code == 0, err
    gt = np.load(npz)["gt_bboxes"]
    files = sorted(p.stem for p in (SHAPES / "labels").glob("*.txt"))
    land, port = files.index("landscape"), files.index("portrait")
    # landscape (640×480, r 0.5, top 40): box 60..300 × 80..400 px -> 30..150 × 80..240
    np.testing.assert_allclose(gt[land, 0], [30, 80, 150, 240], atol=1e-4)
    # portrait (360×640, r 0.5, left 70): disc 40..320 × 40..320 px -> 90..230 × 20..160
    np.testing.assert_allclose(gt[port, 0], [90, 20, 230, 160], atol=1e-4)
    text = " ".join(out.split())
    assert "image 0 (" in text and "640×480 px, r = 0.5, resized to 320×240, padded left 0 top 40 px on the 320×320 canvas" in text
    assert "360×640 px, r = 0.5, resized to 180×320, padded left 70 top 0 px" in text


def test_same_numbers_with_and_without_png(cli, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert cli("assign", SHAPES / "labels", "--synthetic", "trained", "--nc", "3", "--export", a)[0] == 0
    assert cli("assign", SHAPES / "labels", "--synthetic", "trained", "--nc", "3", "--export", b,
               "--png", tmp_path / "x.png")[0] == 0
    za, zb = np.load(a), np.load(b)
    assert set(za.files) == set(zb.files)
    for k in za.files:
        np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


def test_no_image_found_is_said_once(cli):
    code, out, err = cli("assign", ROOT / "samples" / "coco8" / "labels", "--synthetic", "trained")
    assert code == 0, err
    text = out + err
    assert text.count("no image found") == 1
    assert "no image found: labels taken as a 640×640 image" in " ".join(text.split())


def test_images_dir_and_pairing(tmp_path):
    (tmp_path / "data" / "labels" / "train").mkdir(parents=True)
    (tmp_path / "data" / "images" / "train").mkdir(parents=True)
    lab = tmp_path / "data" / "labels" / "train" / "x.txt"
    lab.write_text("0 0.5 0.5 0.2 0.2\n")
    assert image_for_label(lab) is None
    Image.new("RGB", (30, 20)).save(tmp_path / "data" / "images" / "train" / "x.PNG")
    assert image_for_label(lab) == tmp_path / "data" / "images" / "train" / "x.PNG"  # any letter case
    other = tmp_path / "pics"
    other.mkdir()
    Image.new("RGB", (40, 10)).save(other / "x.webp")
    assert image_for_label(lab, other) == other / "x.webp"
    assert image_size(other / "x.webp") == (40, 10)


def test_exif_rotation_swaps_the_size(tmp_path):
    im = Image.new("RGB", (60, 20))
    exif = im.getexif()
    exif[274] = 6  # rotated 90° clockwise: shown 20 wide, 60 tall
    im.save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == (20, 60)


def test_images_option_errors(cli, tmp_path):
    code, _, err = cli("assign", SHAPES / "labels", "--images", tmp_path / "nope")
    assert code == 2 and "--images: directory not found" in err
