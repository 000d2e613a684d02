"""The letterbox keeps at least one pixel per side (ultralytics' LetterBox: max(round(w·r), 1)); images under
10 px are rejected by ultralytics' check_image only when a side is below 10 (a 10×10 image is accepted)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from yolotal.inputs.pictures import letterbox_for
from yolotal.scanning import _image_wh, report, scan, too_small


@pytest.mark.parametrize("w0,h0,imgsz,want", [
    (4000, 2, (640, 640), (640, 1, 0, 319)),  # 2·0.16 = 0.32 rounds to 0: kept at 1 px
    (3, 5000, (640, 640), (1, 640, 319, 0)),
    (4000, 4, (640, 640), (640, 1, 0, 319)),  # 0.64 rounds to 1 anyway
    (1000, 1, (320, 640), (640, 1, 0, 159)),
    (640, 480, (640, 640), (640, 480, 0, 80)),
])
def test_letterbox_keeps_one_pixel_per_side(w0, h0, imgsz, want):
    lb = letterbox_for(w0, h0, imgsz)
    assert (lb.new_w, lb.new_h, lb.left, lb.top) == want


def test_letterbox_matches_ultralytics_on_thin_images():
    pytest.importorskip("ultralytics")
    from ultralytics.data.augment import LetterBox

    for w0, h0 in ((4000, 2), (3, 5000), (2000, 1), (1, 1), (10, 10), (641, 3)):
        img = np.zeros((h0, w0, 3), np.uint8)
        out = LetterBox(new_shape=(640, 640), auto=False, scaleup=True, center=True)(image=img)
        lb = letterbox_for(w0, h0, (640, 640))
        nz = np.argwhere(out[..., 0] != 114)  # the resized image: black on the grey canvas
        assert (nz[:, 1].min(), nz[:, 0].min()) == (lb.left, lb.top), (w0, h0)
        assert (nz[:, 1].max() - nz[:, 1].min() + 1, nz[:, 0].max() - nz[:, 0].min() + 1) == (lb.new_w, lb.new_h)


def test_10_px_images_are_accepted_and_9_px_rejected(tmp_path):
    assert too_small("a.png", 10, 10) == "" and too_small("a.png", 10, 9).endswith("under 10 px (ultralytics rejects it)")
    for stem, size in (("ten", (10, 10)), ("nine", (9, 10))):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        Image.new("RGB", size, (40, 40, 40)).save(tmp_path / "images" / f"{stem}.png")
        (tmp_path / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    assert _image_wh(str(tmp_path / "images" / "ten.png")) == (10, 10, "")
    doc = report(scan(tmp_path / "labels", (640, 640), (8, 16, 32), 16, nc=1))
    assert doc["gts"] == 1 and doc["files"]["corrupt"] == 1
    assert [e["reason"] for e in doc["errors"]] == [
        f"image {tmp_path / 'images' / 'nine.png'}: size 9×10 is under 10 px (ultralytics rejects it)"]


def test_10_px_image_matches_ultralytics_check_image(tmp_path):
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import check_image

    for size, ok in (((10, 10), True), ((9, 10), False), ((10, 9), False)):
        p = tmp_path / f"{size[0]}x{size[1]}.png"
        Image.new("RGB", size).save(p)
        try:
            check_image(str(p))
            got = True
        except AssertionError:
            got = False
        assert got is ok and (too_small(str(p), *size) == "") is ok
