"""End-to-end models (YOLO26, YOLOv10): how their two branches are weighted into the loss the trainer minimises.

An end-to-end head has a one-to-many branch (TAL, topk 10) and a one-to-one branch. Which rules apply depends on
the ultralytics release that trains it:

* 8.4 and later (``E2ELoss``): one-to-one TAL with topk 7 and topk2 1; total = o2m·L_o2m + o2o·L_o2o where
  o2m decays linearly from 0.8 (epoch 0) to 0.1 (the last epoch): o2m(e) = max(1 − e / max(E − 1, 1), 0)·0.7 + 0.1,
  o2o = max(1 − o2m, 0) ("ProgLoss"; ``criterion.update()`` runs once at the end of every epoch, so during epoch e
  the weights are those of e). The trainer logs the one-to-one branch's items.
* 8.0–8.3 (``E2EDetectLoss``, YOLOv10): one-to-one TAL with topk 1 (no topk2); total = L_o2m + L_o2o, both weight 1,
  and the logged items are the two branches' items summed.

L_branch is what the branch's v8DetectionLoss returns: (box, cls, dfl-or-l1) gain-weighted, summed, × batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

O2M_START, O2M_FINAL = 0.8, 0.1
DEFAULT_EPOCHS = 100  # ultralytics' default.yaml epochs, for a model that records none


@dataclass(frozen=True)
class E2ERule:
    """How one release weights the branches. weighting: "progressive" (E2ELoss) or "sum" (E2EDetectLoss);
    logged: "one2one" (the trainer logs that branch's items) or "sum" (both branches' items added)."""

    name: str
    o2o_topk: int
    o2o_topk2: int | None
    weighting: str
    logged: str


PROGRESSIVE = E2ERule("E2ELoss", 7, 1, "progressive", "one2one")
SUMMED = E2ERule("E2EDetectLoss", 1, None, "sum", "sum")


def rule_for(profile: str) -> E2ERule:
    """The end-to-end rule of a TAL profile: before 8.4 (no topk2: E2EDetectLoss, from 8.2.38) the branches are
    summed; 8.4 and later (E2ELoss, with topk2) weight them."""
    from .profiles import get

    return PROGRESSIVE if get(profile).topk2 else SUMMED


def branch_weights(epoch: int, epochs: int, rule: E2ERule = PROGRESSIVE) -> tuple[float, float]:
    """(o2m, o2o) weights during ``epoch`` (0-based) of a run of ``epochs`` epochs, computed as the trainer does
    (python floats: the trainer's are python floats too)."""
    if rule.weighting == "sum":
        return 1.0, 1.0
    o2m = max(1 - epoch / max(epochs - 1, 1), 0) * (O2M_START - O2M_FINAL) + O2M_FINAL
    return o2m, max(1.0 - o2m, 0)


def checkpoint_epoch(saved_epoch: int | None, epochs: int | None, results_epochs: list | None = None
                     ) -> tuple[int, int, str]:
    """(epoch, epochs, how it was found) for a checkpoint's ``epoch`` and ``train_args.epochs``.

    A checkpoint written during training holds the epoch it finished (0-based). A final one (``strip_optimizer``)
    holds -1: the run ended, so its last epoch is the last row of ``train_results`` (an early stop ends before
    epochs − 1), else epochs − 1. No epochs recorded (a model YAML, a hand-saved file): ultralytics' default 100.
    """
    e_total = int(epochs) if isinstance(epochs, int) and epochs > 0 else DEFAULT_EPOCHS
    total_note = f"of {e_total}" if isinstance(epochs, int) and epochs > 0 else f"of {e_total} (ultralytics' default)"
    if isinstance(saved_epoch, int) and saved_epoch >= 0:
        return min(saved_epoch, e_total - 1), e_total, f"epoch {saved_epoch} {total_note}, as saved in the checkpoint"
    if saved_epoch == -1:
        if results_epochs:
            last = int(max(results_epochs)) - 1  # results.csv counts epochs from 1
            if 0 <= last < e_total:
                return last, e_total, f"epoch {last} {total_note}: the last epoch of the finished run (its results)"
        return e_total - 1, e_total, f"epoch {e_total - 1} {total_note}: the last epoch of the finished run"
    return 0, e_total, f"epoch 0 {total_note}: no epoch recorded (start of training)"


def schedule_epoch(model, epoch: int | None) -> tuple[int, int, str]:
    """(epoch, epochs, how it was found) of a loaded model's schedule: ``epoch`` when given (0 <= epoch <
    epochs, else an InputError naming the model), else the checkpoint's own (``checkpoint_epoch``)."""
    from .errors import InputError

    e_saved, e_total, how = checkpoint_epoch(model.epoch, model.epochs, model.results_epochs)
    if epoch is None:
        return e_saved, e_total, how
    if not 0 <= epoch < e_total:
        raise InputError(f"--epoch {epoch}: the schedule has epochs 0..{e_total - 1} (train_args.epochs {e_total})",
                         model.path)
    return epoch, e_total, f"epoch {epoch} of {e_total} (--epoch)"
