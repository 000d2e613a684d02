"""End-to-end models (YOLO26): both branches and the loss the trainer minimises, against ultralytics' own E2ELoss.

The live tests build yolo26n (nc 3, seed 0) with ultralytics, run it on the letterboxed shapes pictures and compare
yolotal's total, branch weights and both branches' items with ultralytics' E2ELoss at two epochs of the schedule.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

import numpy as np
from tolerances import LOSS
from yolotal.e2e import PROGRESSIVE, SUMMED, branch_weights, checkpoint_epoch, rule_for

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "samples" / "shapes"


def test_progressive_weights_by_hand():
    # E2ELoss: o2m = max(1 - e / max(E - 1, 1), 0) * 0.7 + 0.1; o2o = 1 - o2m
    assert branch_weights(0, 100) == pytest.approx((0.8, 0.2))
    assert branch_weights(99, 100) == pytest.approx((0.1, 0.9))
    assert branch_weights(33, 100) == pytest.approx((0.8 - 0.7 * 33 / 99, 0.2 + 0.7 * 33 / 99))
    assert branch_weights(0, 1) == pytest.approx((0.8, 0.2))  # a one-epoch run never decays
    assert branch_weights(5, 3) == pytest.approx((0.1, 0.9))  # past the end: clamped at the final weight
    assert branch_weights(7, 10, SUMMED) == (1.0, 1.0)


def test_rules_by_release():
    assert rule_for("classic") is SUMMED and SUMMED.o2o_topk == 1 and SUMMED.o2o_topk2 is None
    assert rule_for("ultralytics") is PROGRESSIVE and (PROGRESSIVE.o2o_topk, PROGRESSIVE.o2o_topk2) == (7, 1)


def test_checkpoint_epoch():
    assert checkpoint_epoch(12, 50)[:2] == (12, 50)
    assert checkpoint_epoch(-1, 50)[:2] == (49, 50)  # a finished run: its last epoch
    assert checkpoint_epoch(-1, 50, [1, 2, 3, 30])[:2] == (29, 50)  # stopped early after 30 epochs
    e, n, how = checkpoint_epoch(None, None)
    assert (e, n) == (0, 100) and "default" in how


def _reference(model, images, trace, epoch: int, epochs: int):
    """ultralytics' E2ELoss on the same model input and letterboxed labels."""
    from ultralytics.utils.loss import E2ELoss

    model.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, epochs=epochs)
    crit = E2ELoss(model)
    crit.updates = epoch - 1
    crit.update()  # as the trainer resumes: the weights of `epoch`
    lab = trace.labels
    batch = {"batch_idx": torch.from_numpy(lab.batch_idx).float(), "cls": torch.from_numpy(lab.cls).float()[:, None],
             "bboxes": torch.from_numpy(lab.xywhn).float()}
    with torch.no_grad():
        preds = model.forward(torch.from_numpy(images))
        total, items = crit(preds, batch)
        o2m = crit.one2many.loss(crit.one2many.parse_output(preds)["one2many"], batch)
        o2o = crit.one2one.loss(crit.one2one.parse_output(preds)["one2one"], batch)
    return crit, float(total.sum()), items, o2m, o2o


@pytest.mark.parametrize("epoch", [0, 37])
def test_e2e_loss_matches_ultralytics(epoch):
    pytest.importorskip("ultralytics", reason="needs the ultralytics extra (see README Tests)")
    import yolotal
    from ultralytics.nn.tasks import DetectionModel

    e2e = yolotal.inspect_e2e(SHAPES / "shapes.yaml", model="yolo26n.yaml", imgsz=320, epoch=epoch)
    assert e2e.one2many.config.assigner.name == "tal" and e2e.one2one.config.assigner.name == "tal-o2o"
    assert (e2e.one2one.config.assigner.topk, e2e.one2one.config.assigner.topk2) == (7, 1)
    torch.manual_seed(0)
    model = DetectionModel("yolo26n.yaml", nc=3, verbose=False).eval()
    crit, total, items, o2m, o2o = _reference(model, e2e.images, e2e.one2many.trace, epoch, 100)
    assert e2e.weights == pytest.approx((crit.o2m, crit.o2o), rel=1e-12)
    np.testing.assert_allclose(e2e.total, total, **LOSS)
    np.testing.assert_allclose(e2e.branch_total(e2e.one2many), float(o2m[0].sum()), **LOSS)
    np.testing.assert_allclose(e2e.branch_total(e2e.one2one), float(o2o[0].sum()), **LOSS)
    assert list(e2e.logged) == list(items)  # box_loss, cls_loss, l1_loss: the names the trainer logs
    for k, v in items.items():
        np.testing.assert_allclose(e2e.logged[k], float(v), **LOSS, err_msg=k)


def test_cli_loss_shows_both_branches_and_refuses_bad_epochs(cli):
    pytest.importorskip("ultralytics", reason="needs the ultralytics extra (see README Tests)")
    code, out, err = cli("loss", SHAPES / "shapes.yaml", "--model", "yolo26n.yaml", "--imgsz", "320", "--epoch", "99")
    assert code == 0, err
    assert "one2many" in out and "one2one" in out and "o2o = 1 − o2m = 0.9" in out
    assert "the trainer logs the one2one branch's items: box_loss" in out and "l1_loss" in out
    code, _, err = cli("loss", SHAPES / "shapes.yaml", "--model", "yolo26n.yaml", "--imgsz", "320", "--epoch", "100")
    assert code == 2 and "--epoch 100: the schedule has epochs 0..99" in err
    code, _, err = cli("loss", SHAPES / "shapes.yaml", "--model", "yolo11n.yaml", "--imgsz", "320", "--epoch", "3")
    assert code == 2 and "no end-to-end (one-to-one) head" in err
    code, _, err = cli("loss", SHAPES / "shapes.yaml", "--epoch", "3")
    assert code == 2 and "--epoch applies to an end-to-end model" in err
