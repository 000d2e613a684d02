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
``yolotal.TaskAlignedAssigner`` with the hyper-parameters ultralytics chose for it, and the OBB loss's rotated
assigner ``yolotal.assigner.RotatedTaskAlignedAssigner`` (candidate pairs, rotated). ultralytics is imported
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
        self._more: list[tuple[str, object, object]] = []  # further names replaced by this patch (name, was, now)
        self.calls = 0
        self.built = 0
        self.active = True

    def restore(self) -> None:
        """Undo the patch. Losses already built keep the assigner they were given."""
        with _LOCK:
            if not self.active:
                return
            for name, _, now in ((self._name, self._original, self.replacement), *self._more):
                if getattr(self._module, name) is not now:
                    raise RuntimeError(
                        f"ultralytics.utils.loss.{name} was replaced again after this patch; "
                        "restore the later patch first"
                    )
            setattr(self._module, self._name, self._original)
            for name, was, _ in self._more:
                setattr(self._module, name, was)
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
    """Make every ultralytics detection loss built from now on use ``yolotal.TaskAlignedAssigner`` (and every
    OBB loss ``yolotal.assigner.RotatedTaskAlignedAssigner``).

    Replaces the names ``TaskAlignedAssigner`` and ``RotatedTaskAlignedAssigner`` in ``ultralytics.utils.loss``
    (the module whose loss classes construct them) by subclasses of yolotal's assigners that take ultralytics'
    constructor keywords (``topk, num_classes, alpha, beta, stride, eps, topk2``), so the trainer's losses get
    the same hyper-parameters. Call it before ``model.train()`` (the trainer builds its losses lazily, at the
    first batch). Returns a handle: ``restore()`` it, or use it as a context manager. Calls nest; restore in
    reverse order.

    Args:
        profile: ``auto`` (the default): the rules of the installed ultralytics release; or a
            ``yolotal.profiles`` name, alias or release number (``ultralytics``, ``v8.4.0``, ``classic``, ...).
            ``handle.profile`` says which one is used.
        keep_last: keep each assigner's last candidate pairs (``assigner.last``), for inspection only.
    """
    loss = _loss_module()
    from . import profiles
    from .assigner import RotatedTaskAlignedAssigner, TaskAlignedAssigner

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

        if hasattr(loss, "RotatedTaskAlignedAssigner"):  # the OBB loss builds this one by name

            class UltralyticsRotatedTaskAlignedAssigner(RotatedTaskAlignedAssigner):
                """yolotal's rotated pair assigner with ultralytics' constructor and call signature."""

                def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, stride=None, eps=1e-9, topk2=None):
                    super().__init__(topk=topk, num_classes=num_classes, alpha=alpha, beta=beta, stride=stride,
                                     eps=eps, topk2=topk2, profile=profile, keep_last=keep_last)
                    handle.built += 1

                def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra):
                    if extra:
                        raise TypeError(f"yolotal's rotated assigner takes no extra inputs ({', '.join(extra)})")
                    handle.calls += 1
                    return super().forward(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt)

            handle._more.append(("RotatedTaskAlignedAssigner", loss.RotatedTaskAlignedAssigner,
                                 UltralyticsRotatedTaskAlignedAssigner))
            loss.RotatedTaskAlignedAssigner = UltralyticsRotatedTaskAlignedAssigner
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
    ``<save_dir>/assign_health.csv`` beside ultralytics' results.csv. For an end-to-end model (YOLO26, YOLOv10)
    it watches both branches: the one-to-many branch's columns as for any model, the one-to-one branch's under
    ``o2o/`` (``o2o/all/no_pos``, ...). Only the process of rank 0 (or a single process) writes.
    """

    def __init__(self, filename: str | None = None):
        from .health import CSV_NAME, HealthAccumulator

        self.filename = filename or CSV_NAME
        self.acc = HealthAccumulator()
        self.acc_o2o = None  # the one-to-one branch's counts (end-to-end models)
        self.path = None
        self._hooks: list = []

    def _assigners(self, trainer) -> dict:
        """{"one2many": assigner, "one2one": assigner} of the training loss (one2one for end-to-end models)."""
        from ultralytics.utils.torch_utils import unwrap_model

        model = unwrap_model(trainer.model)
        if getattr(model, "criterion", None) is None:
            model.criterion = model.init_criterion()  # what model.loss() would build at the first batch
        crit = model.criterion
        out = {}
        for branch in ("one2many", "one2one"):
            c = getattr(crit, branch, crit if branch == "one2many" else None)
            c = getattr(c, "vp_criterion", c)
            a = getattr(c, "assigner", None)
            if a is not None:
                out[branch] = a
        return out

    def _assigner(self, trainer):
        """The one-to-many (or only) branch's assigner."""
        return self._assigners(trainer).get("one2many")

    def on_train_start(self, trainer) -> None:
        import os

        if int(os.environ.get("RANK", -1)) > 0:
            return
        from pathlib import Path

        self.path = Path(trainer.save_dir) / self.filename
        names = getattr(trainer, "data", None) or {}
        self.acc.names = dict(names.get("names", {})) if isinstance(names, dict) else {}
        assigners = self._assigners(trainer)
        if "one2many" in assigners:
            self._hooks.append(assigners["one2many"].register_forward_hook(self._observe, with_kwargs=True))
        if "one2one" in assigners and assigners["one2one"] is not assigners.get("one2many"):
            from .health import HealthAccumulator

            self.acc_o2o = HealthAccumulator(names=self.acc.names)
            self._hooks.append(assigners["one2one"].register_forward_hook(self._observe_o2o, with_kwargs=True))

    def _observe(self, module, args, kwargs, output) -> None:
        # only the training loss's assigners are hooked: the EMA model's (validation) builds its own
        self.acc.update(tuple(args) + tuple(kwargs.values()), output)

    def _observe_o2o(self, module, args, kwargs, output) -> None:
        self.acc_o2o.update(tuple(args) + tuple(kwargs.values()), output)

    def on_train_epoch_end(self, trainer) -> None:
        if self.path is None:
            return
        from .health import append_row

        row = self.acc.epoch_row(trainer.epoch + 1)
        if self.acc_o2o is not None:
            o2o = self.acc_o2o.epoch_row(trainer.epoch + 1)
            row.update({f"o2o/{k}": v for k, v in o2o.items() if k not in ("epoch", "batches")})
        append_row(self.path, row)

    def on_train_end(self, trainer) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

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
