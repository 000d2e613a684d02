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
    assert str(e.value) == f"{y}:8: unknown dataset key 'trian' (known: {', '.join(KNOWN_KEYS)})"
    for cmd in ("assign", "scan"):
        code, _, err = cli(cmd, y)
        assert code == 2 and "unknown dataset key 'trian' (known: path, train, val, test, minival" in " ".join(err.split())


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
    from yolotal.scan import find_labels

    y = make(tmp_path)
    ls = find_labels(y, ("train",))
    lab = load_labels(y)
    assert [str(f) for f in ls.files] == list(lab.files)
    assert [p.name for p in ls.images] == ["a.jpg", "b.jpg"]
