"""The pose task end to end, as pure functions: heads + labels -> decode -> assignment -> loss.

Two generations, as ultralytics 8.4 trains them:

* ``v8`` (YOLOv8-pose, YOLO11-pose: ``v8PoseLoss``): detection TAL on the boxes and scores; keypoints decoded
  ``2·raw + anchor - 0.5``; losses box, pose (OKS-based), kobj, cls, dfl.
* ``26`` (YOLO26-pose: ``PoseLoss26``): the pose TAL (level gate + OKS overlap) with the decoded keypoints
  ``raw + anchor``; the same losses plus RLE when the heads carry ``kpts_sigma`` and a flow is given.

The lead's pipeline builds the anchors, the DFL decode and the padded GTs as for detection; these functions take
them and add the keypoint parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .assigners.pose_tal import LEVEL_RANGE, PoseTALResult, assign_pose
from .assigners.tal import TALParams, TALResult, assign
from .core.keypoints import decode_keypoints, keypoint_visibility, keypoints_px, split_kpts, split_sigma
from .errors import InputError
from .loss import LossResult, detection_loss
from .loss_pose import Flow, PoseGains, PoseLossResult, pose_loss


def pad_keypoints(kpts: np.ndarray, batch_idx: np.ndarray, batch: int, imgsz: tuple[int, int]) -> torch.Tensor:
    """(n, K, 3) normalised keypoints (x, y, visibility) of label rows -> (b, M, K, 3) px, padded with zeros.

    Each image's rows keep their order (slot = rank among the image's rows, like ``pipeline.pad_targets``);
    x is scaled by the width, y by the height, the visibility is kept.
    """
    k = np.asarray(kpts, np.float32)
    bi = np.asarray(batch_idx, np.int64)
    n_k = k.shape[1] if k.ndim == 3 else 0
    counts = np.bincount(bi, minlength=batch) if bi.size else np.zeros(batch, np.int64)
    m = int(counts.max()) if bi.size else 0
    out = torch.zeros(batch, m, n_k, 3)
    slot = np.zeros(batch, np.int64)
    for i in range(bi.size):
        out[bi[i], slot[bi[i]]] = torch.from_numpy(k[i])
        slot[bi[i]] += 1
    h, w = imgsz
    out[..., :2] = out[..., :2] * torch.tensor([w, h], dtype=torch.float32)
    return out


def gt_keypoints(labels, batch: int, imgsz: tuple[int, int], kpt_shape) -> torch.Tensor:
    """``Labels.keypoints`` (n, K, D) normalised -> (b, M, K, 3) px with the trainer's visibility
    (:func:`core.keypoints.keypoint_visibility`), padded like the boxes. InputError when they disagree with
    kpt_shape (naming the first label's file:line)."""
    k, d = int(kpt_shape[0]), int(kpt_shape[1])
    kp = labels.keypoints
    src, line = labels.origin[0] if len(labels) else ("labels", None)
    if kp is None:
        if len(labels):
            raise InputError(f"pose labels without keypoints (kpt_shape [{k}, {d}])", src, line)
        kp = np.zeros((0, k, d), np.float32)
    if kp.ndim != 3 or tuple(kp.shape[1:]) != (k, d) or kp.shape[0] != len(labels):
        raise InputError(f"keypoints of shape {tuple(kp.shape)} do not match kpt_shape [{k}, {d}] of "
                         f"{len(labels)} labels", src, line)
    return pad_keypoints(keypoint_visibility(kp, d), labels.batch_idx, batch, imgsz)


@dataclass(frozen=True)
class PoseRun:
    """One batch of the pose task.

    kpts_raw   (b, A, K, D)   raw keypoint channels; sigma_raw (b, A, K, 2) YOLO26's raw scales or None
    kpts_grid  (b, A, K, C)   decoded (x, y in grid units; visibility logit and σ raw), C = D (+ 2)
    kpts_px    (b, A, K, 2)   predicted keypoints, px
    gt_kpts    (b, M, K, 3)   padded GT keypoints, px
    assignment TALResult (v8) or PoseTALResult (26; its ``.tal`` holds the TAL stages)
    det        detection loss (box, cls, dfl/l1); loss: the pose loss (None when not asked for)
    """

    generation: str
    kpts_raw: torch.Tensor
    sigma_raw: torch.Tensor | None
    kpts_grid: torch.Tensor
    kpts_px: torch.Tensor
    gt_kpts: torch.Tensor
    assignment: TALResult | PoseTALResult
    det: LossResult | None
    loss: PoseLossResult | None

    @property
    def tal(self) -> TALResult:
        return self.assignment.tal if isinstance(self.assignment, PoseTALResult) else self.assignment


def run_pose(
    generation: str,
    kpt_shape: tuple[int, int],
    kpts: torch.Tensor,
    kpts_sigma: torch.Tensor | None,
    pred_distri: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_bboxes_grid: torch.Tensor,
    anchor_points: torch.Tensor,
    stride_tensor: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    mask_gt: torch.Tensor,
    gt_kpts: torch.Tensor,
    sigmas: torch.Tensor,
    params: TALParams,
    imgsz: tuple[int, int],
    reg_max: int,
    gains: PoseGains = PoseGains(),
    flow: Flow | None = None,
    rle_weights: torch.Tensor | None = None,
    with_loss: bool = True,
    level_range: tuple[float, float] = LEVEL_RANGE,
) -> PoseRun:
    """Assignment and loss of one pose batch.

    kpts (b, K*D, A) and kpts_sigma (b, 2K, A) or None: ``Heads.extra["kpts"]`` / ``["kpts_sigma"]``.
    pred_distri (b, A, 4*reg_max), pred_logits (b, A, nc), pred_bboxes_grid (b, A, 4): the detection decode.
    anchor_points (A, 2) grid units, stride_tensor (A, 1); gt_* padded as ``pipeline.pad_targets`` /
    :func:`pad_keypoints` make them. params: the TAL parameters of the branch (topk 10; YOLO26's one2one
    branch topk 7, topk2 1).
    """
    raw = split_kpts(kpts, kpt_shape)  # (b, A, K, D)
    sig = split_sigma(kpts_sigma, int(kpt_shape[0])) if kpts_sigma is not None and generation == "26" else None
    full = raw if sig is None else torch.cat((raw, sig), -1)
    grid = decode_keypoints(full, anchor_points, generation)
    px = keypoints_px(grid, stride_tensor)
    pred_scores = pred_logits.sigmoid()
    pred_bboxes = pred_bboxes_grid * stride_tensor
    anc_px = anchor_points * stride_tensor
    if generation == "26":
        res = assign_pose(pred_scores, pred_bboxes, anc_px, gt_labels, gt_bboxes, mask_gt, stride_tensor.view(-1),
                          px, gt_kpts, sigmas, params, level_range)
        tal = res.tal
    else:
        res = assign(pred_scores, pred_bboxes, anc_px, gt_labels, gt_bboxes, mask_gt, params)
        tal = res
    det = lo = None
    if with_loss:
        det = detection_loss(pred_distri, pred_logits, pred_bboxes_grid, anchor_points, stride_tensor, tal.fg_mask,
                             tal.target_bboxes, tal.target_scores, imgsz, reg_max, (gains.box, gains.cls, gains.dfl))
        lo = pose_loss(det, grid, tal.fg_mask, tal.target_gt_idx, gt_kpts, tal.target_bboxes, stride_tensor, sigmas,
                       int(kpt_shape[1]), gains, flow if generation == "26" else None, rle_weights, reg_max)
    return PoseRun(generation, raw, sig, grid, px, gt_kpts, res, det, lo)
