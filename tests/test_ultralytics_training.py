"""yolotal.ultralytics.use_yolotal_assigner inside a real ultralytics 8.4 training run (CPU, tiny dataset)."""

from __future__ import annotations

import os

os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("YOLO_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("ultralytics", reason="the training integration needs ultralytics (extra 'ultralytics')")
from PIL import Image  # noqa: E402

import yolotal.ultralytics as yu  # noqa: E402
from yolotal import TaskAlignedAssigner  # noqa: E402


def make_dataset(root: Path, n: int = 4, size: int = 64, seed: int = 0) -> Path:
    """n flat-coloured size x size images with three boxes each (two classes), YOLO labels, a dataset YAML."""
    rng = np.random.default_rng(seed)
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(n):
        img = np.full((size, size, 3), 114, np.uint8)
        lines = []
        for _ in range(3):
            w, h = rng.uniform(0.1, 0.6, 2)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            c = int(rng.integers(0, 2))
            x0, y0, x1, y1 = (int(v * size) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            img[y0:y1, x0:x1] = (200, 40, 40) if c == 0 else (40, 40, 200)
            lines.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        Image.fromarray(img).save(root / "images" / "train" / f"im{i}.png")
        (root / "labels" / "train" / f"im{i}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/train\nnames:\n  0: red\n  1: blue\n")
    return data


@pytest.fixture
def reference_calls(monkeypatch):
    """Counts calls of ultralytics' own TaskAlignedAssigner."""
    from ultralytics.utils import tal

    calls = []
    forward = tal.TaskAlignedAssigner.forward

    def counted(self, *a, **k):
        calls.append(type(self).__name__)
        return forward(self, *a, **k)

    monkeypatch.setattr(tal.TaskAlignedAssigner, "forward", counted)
    yield calls
    torch.use_deterministic_algorithms(False)


def train_once(data: Path, project: Path, name: str) -> dict:
    from ultralytics import YOLO

    rec = {"batches": [], "val": None, "weights": None}
    model = YOLO("yolo11n.yaml")
    model.add_callback("on_train_batch_end", lambda tr: rec["batches"].append(
        torch.stack([v.clone() for v in tr.loss_items.values()])))
    model.add_callback("on_fit_epoch_end", lambda tr: rec.update(  # summed validation loss, unrounded
        val=torch.stack([v.clone() for v in tr.validator.loss.values()]), metrics=dict(tr.metrics)))
    model.add_callback("on_train_epoch_end", lambda tr: rec.update(
        weights={k: v.detach().clone() for k, v in tr.model.state_dict().items()},
        ema={k: v.detach().clone() for k, v in tr.ema.ema.state_dict().items()}))
    model.train(data=str(data), epochs=1, imgsz=64, batch=2, workers=0, device="cpu", plots=False, seed=0,
                deterministic=True, project=str(project), name=name, exist_ok=True, amp=False, verbose=False)
    return rec


def test_one_call_puts_yolotal_in_every_loss_and_training_is_unchanged(tmp_path, reference_calls):
    data = make_dataset(tmp_path / "ds")
    ref = train_once(data, tmp_path / "runs", "ref")
    n_ref = len(reference_calls)
    assert n_ref == 3  # 2 training batches + 1 validation batch (the EMA model's own loss)
    with yu.use_yolotal_assigner() as handle:
        got = train_once(data, tmp_path / "runs", "yolotal")
    assert len(reference_calls) == n_ref  # ultralytics' assigner was not called once
    assert handle.calls == n_ref and handle.built == 2  # training loss + EMA validation loss, every call
    assert not handle.active
    from ultralytics.utils import loss, tal

    assert loss.TaskAlignedAssigner is tal.TaskAlignedAssigner  # restored
    # same losses per batch, same validation losses, same final weights: bit for bit
    assert len(got["batches"]) == len(ref["batches"]) == 2
    for a, b in zip(got["batches"], ref["batches"]):
        assert torch.equal(a, b)
    assert torch.equal(got["val"], ref["val"]) and bool((ref["val"] > 0).all())
    assert got["metrics"] == ref["metrics"]
    assert got["weights"].keys() == ref["weights"].keys()
    for k, v in ref["weights"].items():
        assert torch.equal(got["weights"][k], v), k
    for k, v in ref["ema"].items():
        assert torch.equal(got["ema"][k], v), k


def test_every_loss_kind_gets_the_same_hyper_parameters():
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import loss

    with yu.use_yolotal_assigner() as handle:
        e2e = DetectionModel("yolo26n.yaml", nc=3, verbose=False)
        e2e.args = {"box": 7.5, "cls": 0.5, "dfl": 1.5, "epochs": 1}
        crit = e2e.init_criterion()
        plain = DetectionModel("yolo11n.yaml", nc=3, verbose=False)
        plain.args = e2e.args
        crit2 = plain.init_criterion()
    assert isinstance(crit, loss.E2ELoss)
    o2m, o2o, one = crit.one2many.assigner, crit.one2one.assigner, crit2.assigner
    for a in (o2m, o2o, one):
        assert isinstance(a, TaskAlignedAssigner) and a.profile == "ultralytics" and not a.keep_last
        assert (a.num_classes, a.alpha, a.beta, a.stride, a.eps) == (3, 0.5, 6.0, [8.0, 16.0, 32.0], 1e-9)
    assert (o2m.topk, o2m.topk2, o2o.topk, o2o.topk2, one.topk, one.topk2) == (10, 10, 7, 1, 10, 10)
    assert handle.built == 3 and not isinstance(loss.v8DetectionLoss(plain).assigner, TaskAlignedAssigner)


def test_patches_nest_and_restore_in_order():
    from ultralytics.utils import loss

    original = loss.TaskAlignedAssigner
    a = yu.use_yolotal_assigner()
    b = yu.use_yolotal_assigner(profile="classic")
    with pytest.raises(RuntimeError, match="restore the later patch first"):
        a.restore()
    assert loss.TaskAlignedAssigner is b.replacement
    yu.restore()
    assert loss.TaskAlignedAssigner is original and not a.active and not b.active


def test_monitor_writes_one_row_per_epoch_with_either_assigner(tmp_path):
    from ultralytics import YOLO

    from yolotal.health import read_rows

    data = make_dataset(tmp_path / "ds")
    no_aug = dict(mosaic=0.0, scale=0.0, translate=0.0, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, erasing=0.0)
    csvs = {}
    for name in ("ultralytics", "yolotal"):
        patch = yu.use_yolotal_assigner() if name == "yolotal" else None
        try:
            model = YOLO("yolo11n.yaml")
            mon = yu.monitor(model)
            model.train(data=str(data), epochs=2, imgsz=64, batch=2, workers=0, device="cpu", plots=False, seed=0,
                        deterministic=True, project=str(tmp_path / "runs"), name=name, exist_ok=True, amp=False,
                        verbose=False, val=False, **no_aug)
        finally:
            if patch:
                patch.restore()
            torch.use_deterministic_algorithms(False)
        assert mon.path == tmp_path / "runs" / name / "assign_health.csv"
        assert (mon.path.parent / "results.csv").exists()  # beside ultralytics' own
        csvs[name] = read_rows(mon.path)
    rows = csvs["ultralytics"]
    assert [r["epoch"] for r in rows] == [1, 2] and [r["batches"] for r in rows] == [2, 2]
    assert all(r["all/gts"] == 12 for r in rows)  # 4 images x 3 boxes, no augmentation drops any
    assert all(r["class red/gts"] + r["class blue/gts"] == 12 for r in rows)
    assert sum(r[f"{b}/gts"] for b in ("small", "medium", "large") for r in rows[:1]) == 12
    assert rows[0]["all/positives"] > 0
    # same seed, same training: the same counts whichever assigner ran
    assert csvs["yolotal"] == rows


def test_monitor_on_an_end_to_end_model_records_both_branches(tmp_path, cli):
    """YOLO26: the one-to-many branch's columns as for any model, the one-to-one branch's under o2o/, each
    equal to a count over the hooked branch's own assigner calls."""
    from ultralytics import YOLO

    from yolotal.health import HealthAccumulator, read_rows

    data = make_dataset(tmp_path / "ds")
    no_aug = dict(mosaic=0.0, scale=0.0, translate=0.0, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, erasing=0.0)
    model = YOLO("yolo26n.yaml")
    mon = yu.monitor(model)
    seen = {"one2many": HealthAccumulator(), "one2one": HealthAccumulator()}

    def spy(trainer):  # an independent accumulator per branch, fed by hooks of our own on the same assigners
        for branch, a in mon._assigners(trainer).items():
            a.register_forward_hook(lambda m, args, kw, out, b=branch: seen[b].update(tuple(args) + tuple(kw.values()),
                                                                                      out), with_kwargs=True)

    model.add_callback("on_train_start", spy)
    try:
        model.train(data=str(data), epochs=1, imgsz=64, batch=2, workers=0, device="cpu", plots=False, seed=0,
                    project=str(tmp_path / "runs"), name="e2e", exist_ok=True, amp=False, verbose=False, val=False,
                    **no_aug)
    finally:
        torch.use_deterministic_algorithms(False)
    (row,) = read_rows(mon.path)
    m, o = seen["one2many"].epoch_row(1), seen["one2one"].epoch_row(1)
    assert row["all/gts"] == m["all/gts"] == 12 and row["o2o/all/gts"] == o["all/gts"] == 12
    assert row["all/positives"] == m["all/positives"] and row["o2o/all/positives"] == o["all/positives"]
    assert row["o2o/all/no_pos"] == o["all/no_pos"] and row["o2o/all/starved"] == o["all/starved"]
    assert row["o2o/all/positives"] <= 12 < row["all/positives"]  # topk2 1: at most one positive per GT
    code, out, _ = cli("health", mon.path.parent)
    assert code == 0 and "One-to-one branch (end-to-end model) per epoch" in out
