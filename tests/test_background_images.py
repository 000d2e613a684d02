"""Heads with more images than the labels describe: the extra images are background, for every assigner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

GRIDS = ((80, 80), (40, 40), (20, 20))
LABEL = "2 0.5 0.5 0.3 0.4\n7 0.25 0.3 0.1 0.12\n"


def _heads(path, channels: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    np.savez(path, **{f"level{i}": torch.randn(2, channels, h, w, generator=gen).numpy() for i, (h, w) in enumerate(GRIDS)})


# assigner -> heads channels for nc = 80 (YOLOv8: 4*16+80, YOLOX: 5+80, YOLOv5: 3*(5+80))
CHANNELS = {"tal": 144, "tal-o2o": 144, "atss": 144, "simota": 85, "yolov5": 255}


@pytest.mark.parametrize("assigner", list(CHANNELS))
@pytest.mark.parametrize("command", ["assign", "loss"])
def test_extra_images_are_background(cli, write, tmp_path, assigner, command):
    lab = write("one.txt", LABEL)
    heads = tmp_path / "h.npz"
    _heads(heads, CHANNELS[assigner])
    out = tmp_path / "x.npz"
    code, stdout, err = cli(command, lab, "--heads", heads, "--assigner", assigner, "--nc", "80", "--export", out)
    assert code == 0, err
    if command == "assign":
        assert "background image: no labels" in stdout.split("background[1]")[1]
    z = np.load(out)
    assert z["gt_bboxes"].shape[0] == 2 and z["mask_gt"][1].sum() == 0 and z["mask_gt"][0].sum() == 2
    if assigner == "yolov5":
        images = np.concatenate([z[f"v5_l{i}_image"] for i in range(3)])
        assert len(images) and (images == 0).all()  # every target entry is image 0's
        if command == "loss":
            assert np.isfinite(z["v5_loss"]).all()
    else:
        fg = z["fg_mask"]
        assert fg.shape[0] == 2 and fg[0].any() and not fg[1].any()
        if command == "loss" and assigner == "simota":
            assert np.isfinite(z["yolox_loss"]) and z["yolox_loss"] > 0
        elif command == "loss":
            assert z["cls_per_anchor"][1].sum() > 0 and z["box_per_anchor"][1].sum() == 0  # cls BCE only


def test_own_heads_and_v8_heads_disagreeing_on_the_batch(cli, write, tmp_path):
    lab = write("one.txt", LABEL)
    v8, yx = tmp_path / "v8.npz", tmp_path / "yx.npz"
    np.savez(v8, **{f"level{i}": np.zeros((3, 144, h, w), np.float32) for i, (h, w) in enumerate(GRIDS)})
    _heads(yx, 85)
    code, _, err = cli("compare", lab, "--heads", v8, "--yolox-heads", yx, "-a", "tal,simota")
    assert code == 2 and "the YOLOX heads hold 2 images but the YOLOv8 heads 3" in err
