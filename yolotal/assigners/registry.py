"""The assigner families, by name: one module each, one line each here.

A family (the detection TAL, its one-to-one variant, ATSS, SimOTA, YOLOv5, and the task families) is a
subclass of :class:`Family` in its own module under ``yolotal/assigners/``, registered with ``@register``. It
says what it reads (its heads layout, whether a YOLOv8/YOLO11 model can feed it, its task), how it assigns
(named stages recorded into the Trace), how its loss is computed, and which renderer hooks show it. The pipeline
and the CLI look a family up here and never branch on its name.

Adding a family: write ``yolotal/assigners/<module>.py`` with a registered :class:`Family` subclass, and add one
line to ``MODULES``. Modules are imported on first use, so ``import yolotal`` and ``yolotal --help`` stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..config import Config
    from ..pipeline import RunInputs, Trace

# name -> module under yolotal/assigners/ that registers it (imported on first use). One line per family.
MODULES = {
    "tal": "tal_family",
    "tal-o2o": "tal_family",
    "simota": "simota_family",
    "atss": "atss_family",
    "yolov5": "yolov5_family",
    "obb": "obb_family", "obb-o2o": "obb_family",
    "pose": "pose_family", "pose26": "pose_family", "pose26-o2o": "pose_family",
    "seg": "seg_family", "seg26": "seg_family", "seg26-o2o": "seg_family",
}

_FAMILIES: dict[str, "Family"] = {}
TASKS = ("detect", "segment", "pose", "obb")


class Family:
    """One assigner family. Class attributes declare it; methods are its stages, loss and render hooks.

    Declarations:
        name: the config's ``assigner.name``.
        task: detect, obb, segment or pose: which label rows and heads it reads.
        profiles / default_profile / default_topk: the config's choices for it (topk: what its ``topk`` means).
        heads_layout: the layout of a ``--heads`` file for it: ``v8`` (DFL boxes + class logits), or its own
            (``yolox``, ``yolov5``); with its own layout the v8 decode stage runs on synthetic heads.
        from_model: a YOLOv8/YOLO11/YOLO26 model's heads can feed it (``--model``).
        model_branch: which branch of an end-to-end model it reads (one2many or one2one).
        task_aligned: it is a task-aligned assigner (has topk2, alpha, beta, the TAL profiles and their
            renderers' candidate/metric/top-k/conflict tables).
        pairs_fallback: over the dense budget it can assign on candidate pairs instead of refusing.
        loss_name: the loss its targets feed, for the export's meta.
    """

    name: str = ""
    task: str = "detect"
    profiles: tuple[str, ...] = ()
    default_profile: str = ""
    default_topk: int = 10
    default_topk2: int | None = None
    heads_layout: str = "v8"
    heads_title: str = "YOLOv8"  # how messages name heads of its layout
    from_model: bool = True
    model_branch: str = "one2many"
    task_aligned: bool = False
    pairs_fallback: bool = False
    loss_name: str = "yolov8"
    has_candidates: bool = True  # it has a candidate set per GT (YOLOv5's static matching has none)
    head_classes: tuple[str, ...] = ()  # the model head classes it is the default family of (empty: any of its task)

    def default_topks(self, profile: str) -> tuple[int, int | None]:
        """(topk, topk2) when the config gives none, under ``profile``. A one-to-one branch's come from the
        release's end-to-end loss: 8.4 and later (E2ELoss) topk 7, topk2 1; 8.2.38-8.3 (E2EDetectLoss, YOLOv10)
        topk 1, no topk2."""
        if self.model_branch == "one2one":
            from ..e2e import rule_for

            rule = rule_for(profile)
            return rule.o2o_topk, rule.o2o_topk2
        return self.default_topk, self.default_topk2

    # ---------------------------------------------------------------- inputs
    def setup(self, cfg: "Config", labels: Any, model: Any, saved: dict | None) -> "Config":
        """The config with what the family needs settled before heads and labels are read (pose: kpt_shape from
        the model, the dataset YAML ``labels`` or a ``--save-heads`` file ``saved``). Default: unchanged."""
        return cfg

    def load_heads(self, path: Any, cfg: "Config"):
        """Its main heads from a ``--heads`` file (YOLOv8 DFL layout, plus its task channels)."""
        from ..inputs.heads import load_heads

        return load_heads(path, cfg.reg_max, cfg.nc)

    def make_heads(self, cfg: "Config", labels, heads, batch: int | None):
        """The given heads, or synthetic ones of the configured kind (``batch`` images, default: the labels')."""
        from ..pipeline import make_heads

        return make_heads(cfg, labels, heads, batch)

    def model_heads(self, lm, images, source: str, branch: str):
        """Heads from the user's model on the letterboxed images (its ``branch`` of an end-to-end head)."""
        from ..inputs.model import model_heads

        return model_heads(lm, images, source, branch)

    def read_heads(self, path: Any, cfg: "Config") -> Any:
        """Its own heads from a ``--heads`` file (families whose ``heads_layout`` is not v8), else None."""
        return None

    def own_batch(self, own: Any) -> int | None:
        """How many images its own heads hold (None: no own heads)."""
        return None

    def nc_of(self, own: Any) -> int | None:
        """Classes its own heads carry."""
        return None

    # ---------------------------------------------------------------- stages
    def assign(self, trace: "Trace", cfg: "Config", inputs: "RunInputs") -> None:  # pragma: no cover - abstract
        """Record its assignment stages into ``trace`` (ending in a ``targets`` stage)."""
        raise NotImplementedError

    def loss(self, trace: "Trace", cfg: "Config", inputs: "RunInputs") -> None:
        """Record its loss stage (``loss``) from the targets already in ``trace``."""

    def positives(self, trace: "Trace"):
        """(positives, candidates) as (image, GT slot, anchor) triples: Tensor[P, 3], Tensor[C, 3] int64."""
        import torch

        fg, tgi = trace["fg_mask"], trace["target_gt_idx"]
        bi, ai = torch.nonzero(fg, as_tuple=True)
        pos = torch.stack((bi, tgi[bi, ai], ai), 1)
        return pos, self.candidates(trace)

    def end_to_end(self, trace: "Trace", gathered: Any, epoch: int | None) -> None:
        """``loss --model`` on an end-to-end model (task families): add the other branch's loss and the branch
        weights at ``epoch`` (default: the checkpoint's) to ``trace``. Default: refuse --epoch, add nothing."""
        if epoch is not None:
            from ..errors import InputError

            raise InputError(f"--epoch: the {self.name} assigner does not show both branches of an end-to-end model")

    def both_branches(self, trace: "Trace", gathered: Any, epoch: int | None, other_name: str, title: str) -> None:
        """The shared end-to-end view of a task family (YOLO26 obb / seg / pose, whose loss records ``loss_items``):
        run ``other_name`` (the family of the other branch) on the same images, and record stage ``e2e``: both
        branches' items, the weights at ``epoch`` (default: the checkpoint's), the weighted sum and the logged
        items (the one2one branch's, as E2ELoss logs them)."""
        from dataclasses import replace

        import torch

        from ..config import finalize
        from ..e2e import PROGRESSIVE, branch_weights, schedule_epoch

        lm = gathered.model
        e_saved, e_total, how = schedule_epoch(lm, epoch)
        other = get(other_name)
        a = trace.config.assigner
        cfg_o = finalize(replace(trace.config, assigner=replace(a, name=other.name, topk=None, topk2=None)))
        save, gathered.save_heads = gathered.save_heads, None
        try:
            heads = other.model_heads(lm, gathered.images, lm.describe(cfg_o.imgsz, other.model_branch),
                                      other.model_branch)
            t_o = gathered.run(cfg_o, heads)
        finally:
            gathered.save_heads = save
        m_items, o_items = ((trace["loss_items"], t_o["loss_items"]) if self.model_branch == "one2many"
                            else (t_o["loss_items"], trace["loss_items"]))
        w_m, w_o = branch_weights(e_saved, e_total, PROGRESSIVE)
        trace.notes.append(f"end-to-end: {how}; branch weights one2many {w_m:.4g}, one2one {w_o:.4g} (the other "
                           f"branch: {other.name}, topk {cfg_o.assigner.topk}"
                           + (f", topk2 {cfg_o.assigner.topk2}" if cfg_o.assigner.topk2 else "") + ")")
        mi, oi = m_items.double(), o_items.double()
        trace.add("e2e", f"End-to-end {title}: both branches (E2ELoss)", e2e_o2m_items=mi, e2e_o2o_items=oi,
                  e2e_weights=torch.tensor([w_m, w_o], dtype=torch.float64), e2e_weighted=mi * w_m + oi * w_o,
                  e2e_logged=oi.clone(), e2e_epoch=torch.tensor([e_saved, e_total]))

    def candidates(self, trace: "Trace"):
        import torch

        return torch.zeros(0, 3, dtype=torch.int64)

    def params(self, cfg: "Config") -> dict:
        """Its hyper-parameters as the export's meta writes them."""
        return {"topk": cfg.assigner.topk}

    def loss_meta(self, cfg: "Config") -> dict:
        lo = cfg.loss
        return {"name": self.loss_name, "gains": {"box": lo.box, "cls": lo.cls, "dfl": lo.dfl}}

    # ---------------------------------------------------------------- render hooks (read the trace only)
    def render_assign(self, trace: "Trace", con: "Console", images: list[int], full: bool) -> None:
        from ..render.others import render_assign_other

        render_assign_other(trace, con, images, full)

    def render_image(self, trace: "Trace", con: "Console", image: int, rows: int, full: bool) -> None:
        """Its own per-image tables for ``assign`` (families without the task-aligned renderer)."""

    def render_loss(self, trace: "Trace", con: "Console", images: list[int]) -> None:
        from ..render.terminal import render_loss

        render_loss(trace, con, images)

    def render_walk(self, trace: "Trace", con: "Console", full: bool) -> None:
        """Walk steps 6 onwards (assignment and loss)."""
        from ..render.walk import walk_other

        walk_other(trace, con, full)

    def legend(self, cfg: "Config") -> str:
        """What the PNG legend names this run by."""
        return cfg.assigner.name


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: make a family findable by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _FAMILIES[cls.name] = cls()
    return cls


def names() -> tuple[str, ...]:
    """Every registered family name, in registry order."""
    return tuple(MODULES)


def get(name: str) -> Family:
    """The family called ``name`` (its module imported on first use). KeyError for an unknown name."""
    if name not in _FAMILIES:
        if name not in MODULES:
            raise KeyError(name)
        importlib.import_module(f"{__package__}.{MODULES[name]}")
    return _FAMILIES[name]


def resolve(word: str) -> tuple[str, str | None]:
    """A family name, or a profile that only one family has (``yolox-0.3``) -> (family name, profile or None).
    KeyError when it is neither."""
    if word in MODULES:
        return word, None
    owners = [n for n in MODULES if word in get(n).profiles]
    if len(owners) == 1:
        return owners[0], word
    raise KeyError(word)


def for_task(task: str, end2end_branch: str = "one2many", head_class: str = "") -> str:
    """The first registered family of ``task`` reading ``end2end_branch`` (its default family); with
    ``head_class`` (a model's head, e.g. Pose26), the first whose ``head_classes`` name it or are empty."""
    for name in MODULES:
        fam = get(name)
        if fam.task == task and fam.model_branch == end2end_branch and (
                not head_class or not fam.head_classes or head_class in fam.head_classes):
            return name
    from ..errors import InputError

    raise InputError(f"no assigner family for the {task} task is registered")
