"""A dataset YAML as LABELS (assign/loss/walk/decode) and for scan: one reader, ultralytics' keys, typos caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolotal.errors import InputError
from yolotal.inputs.dataset import KNOWN_KEYS, read_dataset
from yolotal.inputs.labels import load_labels


def make(root: Path, extra: str = "") -> Path:
    """images/{train,val} (+ labels): train a (2 GTs), b (no label file); val c (1 GT)."""
    for split, files in {"train": {"a": "2 0.5 0.5 0.4 0.3\n0 0.2 0.2 0.1 0.1\n", "b": None},
                         "val": {"c": "1 0.6 0.4 0.2 0.2\n"}}.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for stem, text in files.items():
            Image.new("RGB", (64, 48), (90, 120, 150)).save(root / "images" / split / f"{stem}.jpg")
            if text is not None:
                (root / "labels" / split / f"{stem}.txt").write_text(text)
    y = root / "data.yaml"
    y.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n  2: bird\n{extra}")
    return y


def test_labels_from_the_train_split_with_names(tmp_path):
    lab = load_labels(make(tmp_path))
    assert lab.images == ("a", "b") and lab.n_images == 2 and lab.names == ("cat", "dog", "bird")
    assert lab.cls.tolist() == [2, 0] and lab.batch_idx.tolist() == [0, 0]  # b has no label file: background
    assert [Path(f).name for f in lab.files] == ["a.txt", "b.txt"]
    assert lab.notes == (f"dataset {tmp_path / 'data.yaml'}: split 'train', 2 image(s); nc 3 (cat, dog, bird)",)
    val = load_labels(tmp_path / "data.yaml", split="val")
    assert val.images == ("c",) and val.cls.tolist() == [1]
    first = load_labels(tmp_path / "data.yaml", limit=1)
    assert first.images == ("a",) and "the first 1 of 2 image(s)" in first.notes[0]


def test_cli_assign_and_loss_take_a_dataset_yaml(cli, tmp_path):
    y = make(tmp_path)
    out = tmp_path / "t.npz"
    code, stdout, err = cli("assign", y, "--synthetic", "trained", "--export", out)
    assert code == 0, err
    assert "split 'train', 2 image(s); nc 3 (cat, dog, bird)" in " ".join(stdout.split())
    z = np.load(out)
    assert z["pred_scores"].shape == (2, 8400, 3)  # nc from the YAML's names
    assert z["mask_gt"][0].sum() == 2 and z["mask_gt"][1].sum() == 0
    code, stdout, err = cli("loss", y, "--split", "val", "--synthetic", "trained")
    assert code == 0 and "split 'val', 1 image(s)" in " ".join(stdout.split())
    code, _, err = cli("walk", y, "--split", "test")
    assert code == 2 and f"{y}: the dataset has no 'test' split (it has: train, val)" in " ".join(err.split())
    code, _, err = cli("decode", y, "--split", "val")
    assert code == 0, err
    code, _, err = cli("assign", tmp_path / "labels" / "train" / "a.txt", "--split", "val")
    assert code == 2 and "--split val: applies to a dataset YAML only" in err


def test_unknown_key_is_an_error_naming_it_and_the_known_ones(cli, tmp_path):
    y = make(tmp_path, "trian: images/train\n")
    with pytest.raises(InputError) as e:
        read_dataset(y)
    assert str(e.value) == f"{y}:8: unknown dataset key 'trian': did you mean 'train'?"
    for cmd in ("assign", "scan"):
        code, _, err = cli(cmd, y)
        assert code == 2 and "unknown dataset key 'trian': did you mean 'train'?" in " ".join(err.split())


def test_ultralytics_keys_are_accepted(tmp_path):
    # keys of the datasets ultralytics ships (coco.yaml's download script, kpt_shape, channels, ...) and the
    # 'validation' spelling it renames to 'val'
    y = make(tmp_path, "download: https://example.com/x.zip\nchannels: 3\nkpt_shape: [17, 3]\nflip_idx: [0]\n"
                       "yaml_file: x.yaml\n")
    ds = read_dataset(y)
    assert set(ds.splits) == {"train", "val"} and ds.nc == 3
    z = tmp_path / "v.yaml"
    z.write_text(f"path: {tmp_path}\ntrain: images/train\nvalidation: images/val\nnc: 3\n")
    ds = read_dataset(z)
    assert set(ds.splits) == {"train", "val"} and ds.names is None and ds.nc == 3


@pytest.mark.parametrize("text,msg", [
    ("train: a\nnames: [x, y]\nnc: 3\n", ":3: 'names' length 2 and 'nc: 3' must match"),
    ("train: a\nnc: two\n", ":2: nc: must be an integer >= 1, got 'two'"),
    ("train: 5\n", ":1: train: expected a string or a list, got 5"),
    ("names: [a]\n", "a dataset YAML needs 'train' and/or 'val'"),
    ("train: a\nnames: {0: person, 45: bowl}\n", ":2: names: a 2-class mapping needs the class ids 0-1, got [0, 45]"),
    ("- train\n", "a dataset YAML is a mapping"),
])
def test_bad_dataset_yaml(tmp_path, text, msg):
    y = tmp_path / "d.yaml"
    y.write_text(text)
    with pytest.raises(InputError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        read_dataset(y)


def test_scan_and_assign_read_the_same_files(tmp_path):
    from yolotal.scanning import find_labels

    y = make(tmp_path)
    ls = find_labels(y, ("train",))
    lab = load_labels(y)
    assert [str(f) for f in ls.files] == list(lab.files)
    assert [p.name for p in ls.images] == ["a.jpg", "b.jpg"]


ROBOFLOW = """download: https://example.com/x.zip
license: CC BY 4.0
roboflow:
  workspace: ws
  project: proj
  version: 3
  license: CC BY 4.0
  url: https://universe.roboflow.com/ws/proj/dataset/3
kpt_shape: [17, 3]
flip_idx: [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
kpt_oks_sigmas: [0.026, 0.025]
channels: 3
author: someone
name: my-dataset
"""


def test_export_keys_are_accepted_and_pose_keys_carried(cli, tmp_path):
    y = make(tmp_path, ROBOFLOW)
    ds = read_dataset(y)
    assert ds.kpt_shape == (17, 3) and ds.flip_idx[:3] == [0, 2, 1] and ds.kpt_oks_sigmas == [0.026, 0.025]
    assert set(ds.extra) == {"license", "roboflow", "author", "name"} and ds.nc == 3
    code, _, err = cli("assign", y)
    assert code == 0, err


@pytest.mark.parametrize("typo,meant", [("trian", "train"), ("vall", "val"), ("nmes", "names"), ("Train", "train"),
                                        ("kpt_shpae", "kpt_shape"), ("downlaod", "download")])
def test_near_miss_keys_are_errors_with_did_you_mean(tmp_path, typo, meant):
    y = tmp_path / "d.yaml"
    y.write_text(f"path: {tmp_path}\nval: images/val\n{typo}: x\nnc: 3\n")
    with pytest.raises(InputError) as e:
        read_dataset(y)
    assert str(e.value) == f"{y}:3: unknown dataset key {typo!r}: did you mean {meant!r}?"


def test_a_kpt_shape_that_is_not_two_numbers_is_refused(tmp_path):
    y = make(tmp_path, "kpt_shape: [17]\n")
    with pytest.raises(InputError, match=r":8: kpt_shape: expected \[number of keypoints, 2 or 3\], got \[17\]"):
        read_dataset(y)


def test_pose_dataset_reads_keypoints_with_its_kpt_shape(tmp_path):
    y = make(tmp_path, "kpt_shape: [2, 3]\n")
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.4 0.3 0.4 0.4 2 0.6 0.6 1\n")
    lab = load_labels(y, task="pose")
    assert lab.keypoints.shape == (1, 2, 3) and lab.cls.tolist() == [1]
    box = load_labels(y)  # a detection task on a pose dataset: each pose row's box
    assert box.keypoints is None and box.xywhn.tolist() == lab.xywhn.tolist()


def test_train_and_val_the_same_folder_count_each_file_once(tmp_path):
    from yolotal.scanning import report, scan

    y = make(tmp_path)
    y.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/train\nnc: 3\n")
    from yolotal.inputs.dataset import find_labels

    ls = find_labels(y)
    assert [f.name for f in ls.files] == ["a.txt", "b.txt"] and ls.file_splits == [("train", "val")] * 2
    assert ls.splits == {"train": 2, "val": 2} and ls.shared == 2
    doc = report(scan(y, (640, 640), (8, 16, 32), 16))
    assert doc["files"]["total"] == 2 and doc["gts"] == 2 and doc["files"]["in_several_splits"] == 2
    assert doc["files"]["shared_by"] == {"train+val": 2}


def test_cli_scan_says_which_splits_share_files(cli, tmp_path):
    y = make(tmp_path)
    y.write_text(f"path: {tmp_path}\ntrain: images/train\nval: [images/train, images/val]\nnc: 3\n")
    code, out, err = cli("scan", y)
    flat = " ".join(out.split())
    assert code == 0, err
    assert "3 label files (train 2, val 3) · 3 GTs" in flat  # a, b (both splits) and c (val)
    assert "2 label files are in train and val alike: each is read and counted once" in flat
