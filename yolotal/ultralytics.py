"""yolotal inside an ultralytics training run (optional extra: ``pip install 'yolotal[ultralytics]'``).

    import yolotal.ultralytics as yu
    from ultralytics import YOLO

    with yu.use_yolotal_assigner():          # or: handle = yu.use_yolotal_assigner(); ...; handle.restore()
        model = YOLO("yolo11n.yaml")
        yu.monitor(model)                    # assignment health, one CSV row per epoch
        model.train(data="coco8.yaml", epochs=3)

``use_yolotal_assigner`` swaps the class that ultralytics' detection losses construct, so every loss the
trainer builds while it is active (the training loss, the EMA model's validation loss, both branches of an
end-to-end model's loss, and the OBB/segmentation/pose losses' base construction) gets
``yolotal.TaskAlignedAssigner`` with the hyper-parameters ultralytics chose for it. ultralytics is imported
only when these functions are called; yolotal's own computation never imports it.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_ACTIVE: list["AssignerPatch"] = []  # patches in the order they were applied


def _loss_module():
    try:
        from ultralytics.utils import loss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("yolotal.ultralytics needs ultralytics: pip install 'yolotal[ultralytics]'") from e
    return loss


class AssignerPatch:
    """Handle returned by ``use_yolotal_assigner``: ``restore()`` (or leaving the ``with`` block) puts back the
    class that was there before. ``calls`` counts the assignments made by assigners built under this patch,
    ``built`` the assigners built."""

    def __init__(self, module, name: str, original, replacement):
        self._module, self._name, self._original, self.replacement = module, name, original, replacement
        self.calls = 0
        self.built = 0
        self.active = True

    def restore(self) -> None:
        """Undo the patch. Losses already built keep the assigner they were given."""
        with _LOCK:
            if not self.active:
                return
            if getattr(self._module, self._name) is not self.replacement:
                raise RuntimeError(
                    "ultralytics.utils.loss.TaskAlignedAssigner was replaced again after this patch; "
                    "restore the later patch first"
                )
            setattr(self._module, self._name, self._original)
            self.active = False
            _ACTIVE.remove(self)

    def __enter__(self) -> "AssignerPatch":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def __repr__(self) -> str:
        state = "active" if self.active else "restored"
        return f"<AssignerPatch {state}: {self.built} assigners built, {self.calls} calls>"


def installed_profile() -> tuple[str, str, str | None]:
    """The profile of the installed ultralytics release: (name, note, warning or None), as
    ``yolotal.profiles.profile_for_version(ultralytics.__version__)``."""
    _loss_module()
    import ultralytics

    from .profiles import profile_for_version

    return profile_for_version(getattr(ultralytics, "__version__", None))


def use_yolotal_assigner(*, profile: str = "auto", keep_last: bool = False) -> AssignerPatch:
    """Make every ultralytics detection loss built from now on use ``yolotal.TaskAlignedAssigner``.

    Replaces the name ``TaskAlignedAssigner`` in ``ultralytics.utils.loss`` (the module whose loss classes
    construct it) by a subclass of yolotal's assigner that takes ultralytics' constructor keywords (``topk,
    num_classes, alpha, beta, stride, eps, topk2``), so the trainer's losses get the same hyper-parameters.
    Call it before ``model.train()`` (the trainer builds its losses lazily, at the first batch). Returns a
    handle: ``restore()`` it, or use it as a context manager. Calls nest; restore in reverse order.

    Args:
        profile: ``auto`` (the default): the rules of the installed ultralytics release; or a
            ``yolotal.profiles`` name, alias or release number (``ultralytics``, ``v8.4.0``, ``classic``, ...).
            ``handle.profile`` says which one is used.
        keep_last: keep each assigner's last candidate pairs (``assigner.last``), for inspection only.
    """
    loss = _loss_module()
    from . import profiles
    from .assigner import TaskAlignedAssigner

    resolved = profiles.resolve_profile(profile)  # ValueError for an unknown name, before anything is patched
    if resolved == profiles.AUTO:
        resolved = installed_profile()[0]
    profile = resolved

    with _LOCK:
        original = loss.TaskAlignedAssigner

        class UltralyticsTaskAlignedAssigner(TaskAlignedAssigner):
            """yolotal's pair assigner with ultralytics' constructor and call signature."""

            def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, stride=None, eps=1e-9, topk2=None):
                super().__init__(topk=topk, num_classes=num_classes, alpha=alpha, beta=beta, stride=stride,
                                 eps=eps, topk2=topk2, profile=profile, keep_last=keep_last)
                handle.built += 1

            def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra):
                if extra:  # mask- or keypoint-aware variants are separate ultralytics classes, not patched
                    raise TypeError(f"yolotal's assigner takes no extra inputs ({', '.join(extra)})")
                handle.calls += 1
                return super().forward(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt)

        handle = AssignerPatch(loss, "TaskAlignedAssigner", original, UltralyticsTaskAlignedAssigner)
        handle.profile = profile
        loss.TaskAlignedAssigner = UltralyticsTaskAlignedAssigner
        _ACTIVE.append(handle)
    return handle


def restore() -> None:
    """Undo every ``use_yolotal_assigner`` still active, latest first."""
    while _ACTIVE:
        _ACTIVE[-1].restore()


# ---------------------------------------------------------------------------------------------- health monitor
class HealthMonitor:
    """Callbacks that record the assignment of every training batch and write one CSV row per epoch.

    Registered by ``monitor(model)``. It hooks the training loss's assigner (ultralytics' own or yolotal's:
    a forward hook sees its inputs and outputs, so nothing about the assignment changes), accumulates
    ``yolotal.health.HealthAccumulator`` counts on the device, and at each epoch's end appends a row to
    ``<save_dir>/assign_health.csv`` beside ultralytics' results.csv. For an end-to-end model (YOLO26) it
    watches the one-to-many branch. Only the process of rank 0 (or a single process) writes.
    """

    def __init__(self, filename: str | None = None):
        from .health import CSV_NAME, HealthAccumulator

        self.filename = filename or CSV_NAME
        self.acc = HealthAccumulator()
        self.path = None
        self._hook = None

    def _assigner(self, trainer):
        from ultralytics.utils.torch_utils import unwrap_model

        model = unwrap_model(trainer.model)
        if getattr(model, "criterion", None) is None:
            model.criterion = model.init_criterion()  # what model.loss() would build at the first batch
        crit = model.criterion
        crit = getattr(crit, "one2many", crit)
        crit = getattr(crit, "vp_criterion", crit)
        return getattr(crit, "assigner", None)

    def on_train_start(self, trainer) -> None:
        import os

        if int(os.environ.get("RANK", -1)) > 0:
            return
        from pathlib import Path

        self.path = Path(trainer.save_dir) / self.filename
        names = getattr(trainer, "data", None) or {}
        self.acc.names = dict(names.get("names", {})) if isinstance(names, dict) else {}
        assigner = self._assigner(trainer)
        if assigner is None:
            return
        self._hook = assigner.register_forward_hook(self._observe, with_kwargs=True)

    def _observe(self, module, args, kwargs, output) -> None:
        # only the training loss's assigner is hooked: the EMA model's (validation) builds its own
        self.acc.update(tuple(args) + tuple(kwargs.values()), output)

    def on_train_epoch_end(self, trainer) -> None:
        if self.path is None:
            return
        from .health import append_row

        append_row(self.path, self.acc.epoch_row(trainer.epoch + 1))

    def on_train_end(self, trainer) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def callbacks(self) -> dict:
        return {"on_train_start": self.on_train_start, "on_train_epoch_end": self.on_train_epoch_end,
                "on_train_end": self.on_train_end}


def monitor(model=None, *, filename: str | None = None) -> HealthMonitor:
    """Record assignment health during ``model.train()``: one row per epoch in ``<save_dir>/assign_health.csv``.

    ``model`` is an ultralytics ``YOLO`` (or anything with ``add_callback``); without it, register
    ``monitor().callbacks()`` yourself. Read the result with ``yolotal health RUN_DIR``. Works with
    ultralytics' own assigner and with ``use_yolotal_assigner()``.
    """
    mon = HealthMonitor(filename)
    if model is not None:
        for event, fn in mon.callbacks().items():
            model.add_callback(event, fn)
    return mon
