"""``yolotal.TaskAlignedAssigner``: a drop-in for ultralytics' assigner that works on candidate pairs only.

    from yolotal import TaskAlignedAssigner
    assigner = TaskAlignedAssigner(topk=10, num_classes=80, alpha=0.5, beta=6.0, stride=[8, 16, 32])

(in an ultralytics training run, ``yolotal.ultralytics.use_yolotal_assigner()`` makes every loss the trainer
builds use it). 
Same constructor keywords as ultralytics 8.4 (plus ``profile``), called with the same six tensors, returning
the same five tensors in the same order, dtypes and shapes; float16 / bfloat16 inputs are computed in float32
and the soft scores returned in the caller's dtype. See ``assigners.tal_sparse`` for how it differs
from the dense original (only in positives that carry no weight).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from . import profiles
from .assigners.tal import TALParams
from .assigners.tal_sparse import SparseTAL, assign_sparse

PROFILES = profiles.NAMES


class TaskAlignedAssigner(nn.Module):
    """Task-aligned assigner (TOOD / YOLOv8) with memory and time bounded by the candidate pairs.

    Args:
        topk: picks per GT (ultralytics' constructor default 13; its trainers pass 10).
        num_classes: number of classes.
        alpha, beta: exponents of the alignment metric ``s^alpha * u^beta``.
        stride: strides of the levels; the second (or only) one is the small-GT enlargement size.
        eps: added to each GT's largest metric before normalising the soft scores.
        topk2: positives kept per GT after conflict resolution (None: topk).
        profile: a ``yolotal.profiles`` name or alias: ``ultralytics`` (8.4.128 on: enlarge small GTs, topk2),
            ``v8.4.0``, ``classic`` (8.0.52-8.3: neither), ``v8.0.35``, ``v8.0.0``, or a release number such as
            ``8.3.202``; ``auto`` = the newest.
        keep_last: keep the candidate pairs of the last call in ``last`` for inspection (off by default:
            in a training loop they would hold tens of MiB between steps). See also ``keeping_last()``.
    """

    def __init__(
        self,
        topk: int = 13,
        num_classes: int = 80,
        alpha: float = 1.0,
        beta: float = 6.0,
        stride: list | None = None,
        eps: float = 1e-9,
        topk2: int | None = None,
        profile: str = "ultralytics",
        keep_last: bool = False,
    ):
        super().__init__()
        try:
            profile = profiles.resolve_profile(profile)
        except ValueError:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, an alias ({', '.join(profiles.ALIASES)}), "
                             f"a release such as 8.3.202, or auto; got {profile!r}") from None
        if profile == profiles.AUTO:
            profile = profiles.NEWEST
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if topk2 is not None and not 1 <= topk2 <= topk:
            raise ValueError(f"topk2 must be between 1 and topk ({topk}), got {topk2}")
        if topk2 is not None and topk2 != topk and not profiles.get(profile).topk2:
            raise ValueError(f"topk2 exists only in the ultralytics profile and v8.4.0 (ultralytics 8.4), not in {profile}")
        self.topk = topk
        self.topk2 = topk2 or topk
        self.num_classes = num_classes
        self.alpha = alpha
        self.beta = beta
        self.stride = list(stride) if stride is not None else [8, 16, 32]
        self.stride_val = self.stride[1] if len(self.stride) > 1 else self.stride[0]
        self.eps = eps
        self.profile = profile
        self.keep_last = keep_last
        self.last: SparseTAL | None = None  # the pairs of the last call, only when keep_last is on

    @contextmanager
    def keeping_last(self):
        """``with assigner.keeping_last(): ...`` keeps ``last`` for the calls inside; afterwards it is kept until
        the next call (which clears it unless ``keep_last``)."""
        before = self.keep_last
        self.keep_last = True
        try:
            yield self
        finally:
            self.keep_last = before

    @property
    def params(self) -> TALParams:
        return TALParams(
            num_classes=self.num_classes, topk=self.topk, topk2=self.topk2, alpha=self.alpha, beta=self.beta,
            eps=self.eps, profile=self.profile, stride_val=float(self.stride_val),
            strides=tuple(float(x) for x in self.stride),
        )

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        """Assign anchors to GTs.

        Args:
            pd_scores: (b, A, nc) class probabilities.  pd_bboxes: (b, A, 4) predicted boxes, px xyxy.
            anc_points: (A, 2) anchor centres, px.  gt_labels: (b, M, 1).  gt_bboxes: (b, M, 4) px xyxy.
            mask_gt: (b, M, 1) 1 for real GTs.
        Returns:
            target_labels (b, A) int64, target_bboxes (b, A, 4), target_scores (b, A, nc), fg_mask (b, A) bool,
            target_gt_idx (b, A) int64.
        """
        self.last = None
        if gt_bboxes.shape[1] == 0:  # the reference's early return, dtypes included
            return (
                torch.full_like(pd_scores[..., 0], self.num_classes),
                torch.zeros_like(pd_bboxes),
                torch.zeros_like(pd_scores),
                torch.zeros_like(pd_scores[..., 0], dtype=torch.bool),
                torch.zeros_like(pd_scores[..., 0]),
            )
        r = self._assign_pairs(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, self.params)
        if self.keep_last:
            self.last = r
        return r.target_labels, r.target_bboxes.to(gt_bboxes.dtype), r.target_scores, r.fg_mask, r.target_gt_idx

    @staticmethod
    def _assign_pairs(*args):
        """The pair assignment this assigner runs (detection: ``assign_sparse``)."""
        return assign_sparse(*args)


class RotatedTaskAlignedAssigner(TaskAlignedAssigner):
    """The rotated (OBB) task-aligned assigner on candidate pairs: a drop-in for ultralytics'
    ``RotatedTaskAlignedAssigner``, with the same constructor keywords, the same six inputs (boxes px xywhr
    (b, ·, 5)) and the same five outputs (target_bboxes (b, A, 5)). See ``assigners.rotated_tal_sparse``."""

    @staticmethod
    def _assign_pairs(*args):
        from .assigners.rotated_tal_sparse import assign_rotated_sparse

        return assign_rotated_sparse(*args)
