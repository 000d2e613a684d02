"""Keypoints: visibility, decode of the raw pose-head channels, OKS sigmas and the OKS of keypoint pairs.

Notation: b images, A anchors, K keypoints, D = 2 (x, y) or 3 (x, y, visibility) values per keypoint, P pairs.

Raw head channels (``Heads.extra``):
* ``kpts``       Tensor[b, K*D, A]: keypoint-major, channel ``k*D + d`` is value d (x, y[, visibility logit]) of
                 keypoint k — the order in which the pose head's last 1x1 convolution writes them;
* ``kpts_sigma`` Tensor[b, 2*K, A] (YOLO26 ``Pose26`` only, training mode): channel ``2*k + d`` is the raw
                 (pre-sigmoid) scale of keypoint k along x (d = 0) or y (d = 1), used by the RLE loss.

Decode, in grid units of the anchor's level (anchor centres ``(i + 0.5, j + 0.5)``):
* YOLOv8 / YOLO11 (``Pose``):  ``xy = 2 * raw + anchor - 0.5``;
* YOLO26 (``Pose26``):         ``xy = raw + anchor``.
The visibility channel stays a logit (the losses take it as one); pixels are grid units times the stride.
"""

from __future__ import annotations

import numpy as np
import torch

# COCO's per-keypoint OKS sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
COCO_OKS_SIGMAS = (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89,
                   0.89)
COCO_SIGMA_SCALE = 10.0  # the sigmas above are tenths of the values used (0.026, 0.025, ...)
# YOLO26's per-keypoint RLE weights for the 17 COCO keypoints (elbows/knees 1.2, wrists/ankles 1.5)
COCO_RLE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)
OKS_AREA_FACTOR = 0.53  # the pose assigner's (and validator's) OKS scale: box area times this
OKS_LOSS_EPS = 1e-9  # added to the area in the keypoint loss


def coco_sigmas() -> torch.Tensor:
    """Tensor[17] float32 COCO OKS sigmas (0.026 ... 0.089): the float32 tenths divided by 10 in float32, as the
    trainer's constant is computed (five of them differ by one ulp from a float64 division rounded once)."""
    return torch.from_numpy(np.array(COCO_OKS_SIGMAS, np.float32) / np.float32(COCO_SIGMA_SCALE))


def select_sigmas(kpt_shape: tuple[int, int] | list[int], custom=None) -> tuple[torch.Tensor, str]:
    """The OKS sigmas (Tensor[K] float32) the trainer uses, and where they come from.

    A dataset's ``kpt_oks_sigmas`` (K positive numbers) win; else COCO's sigmas when ``kpt_shape`` is exactly
    [17, 3] (a [17, 2] dataset gets the uniform ones); else 1/K for every keypoint. Raises ValueError for a
    custom list of the wrong length or with a value <= 0 (as the trainer does).
    """
    k = int(kpt_shape[0])
    if custom is not None:
        s = torch.as_tensor(custom, dtype=torch.float32).flatten()
        if len(s) != k or not bool((s > 0).all()):
            raise ValueError(f"'kpt_oks_sigmas' must be {k} positive values, got {s.tolist()}")
        return s, "kpt_oks_sigmas of the dataset"
    if [int(x) for x in kpt_shape] == [17, 3]:
        return coco_sigmas(), "COCO keypoint sigmas (kpt_shape [17, 3])"
    return torch.ones(k) / k, f"uniform 1/K = 1/{k} (kpt_shape {list(kpt_shape)})"


def rle_weights(kpt_shape: tuple[int, int] | list[int]) -> torch.Tensor:
    """Tensor[K] per-keypoint RLE weights: YOLO26's COCO weights for kpt_shape [17, 3], else ones."""
    if [int(x) for x in kpt_shape] == [17, 3]:
        return torch.tensor(COCO_RLE_WEIGHTS, dtype=torch.float32)
    return torch.ones(int(kpt_shape[0]))


def keypoint_visibility(kpts: np.ndarray, ndim: int) -> np.ndarray:
    """Keypoints as a label row gives them (n, K, ndim) -> (n, K, 3) float32 with the visibility the trainer uses.

    ndim 3: the third value as written (0 = not labelled; anything else counts as visible in the losses, > 0 in
    the pose assigner). ndim 2: 1.0, or 0.0 where x or y is negative. The dataset checker rejects label values
    below -0.01, so a keypoint marked invisible by a negative coordinate must lie in [-0.01, 0).
    """
    k = np.asarray(kpts, dtype=np.float32)
    if k.ndim != 3 or k.shape[-1] != ndim or ndim not in (2, 3):
        raise ValueError(f"keypoints of shape {k.shape} do not match ndim {ndim}")
    if ndim == 3:
        return k.copy()
    vis = np.where((k[..., 0] < 0) | (k[..., 1] < 0), 0.0, 1.0).astype(np.float32)
    return np.concatenate([k, vis[..., None]], -1)


def split_kpts(raw: torch.Tensor, kpt_shape: tuple[int, int] | list[int]) -> torch.Tensor:
    """Tensor[b, K*D, A] raw channels -> Tensor[b, A, K, D] (channel k*D + d -> [.., k, d])."""
    b, c, a = raw.shape
    k, d = int(kpt_shape[0]), int(kpt_shape[1])
    if c != k * d:
        raise ValueError(f"{c} keypoint channels, expected K*D = {k}*{d} = {k * d}")
    return raw.permute(0, 2, 1).reshape(b, a, k, d)


def split_sigma(raw: torch.Tensor, k: int) -> torch.Tensor:
    """Tensor[b, 2*K, A] raw YOLO26 scales -> Tensor[b, A, K, 2] (sx, sy per keypoint)."""
    b, c, a = raw.shape
    if c != 2 * k:
        raise ValueError(f"{c} keypoint-sigma channels, expected 2*K = {2 * k}")
    return raw.permute(0, 2, 1).reshape(b, a, k, 2)


def decode_keypoints(kpts: torch.Tensor, anchor_points: torch.Tensor, generation: str) -> torch.Tensor:
    """Tensor[b, A, K, C] raw (x, y, then any further channels) -> same shape with x, y in grid units.

    anchor_points: Tensor[A, 2] grid units. generation "v8" (YOLOv8/YOLO11 Pose: 2*raw + anchor - 0.5) or
    "26" (YOLO26 Pose26: raw + anchor). Channels after x, y (visibility logit, RLE scales) are kept raw.
    """
    y = kpts.clone()
    anc = anchor_points[None, :, None, :]  # (1, A, 1, 2)
    if generation == "v8":
        y[..., :2] = y[..., :2] * 2.0 + (anc - 0.5)
    elif generation == "26":
        y[..., :2] = y[..., :2] + anc
    else:
        raise ValueError(f"unknown pose generation {generation!r} (v8 or 26)")
    return y


def keypoints_px(kpts_grid: torch.Tensor, stride_tensor: torch.Tensor) -> torch.Tensor:
    """Tensor[b, A, K, C] decoded keypoints -> Tensor[b, A, K, 2] x, y in pixels (stride_tensor (A, 1))."""
    return kpts_grid[..., :2] * stride_tensor[:, None]


def oks_pairs(
    pred_xy: torch.Tensor, gt_kpts: torch.Tensor, area: torch.Tensor, sigmas: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OKS of P (prediction, GT) pairs, as the pose assigner computes it.

    pred_xy (Tensor[P, K, 2]) px; gt_kpts (Tensor[P, K, 3]) px x, y, visibility; area (Tensor[P, 1]) the OKS
    scale in px² (box area times 0.53 in the assigner); sigmas (Tensor[K]); eps added to the area.
    Per keypoint ``sim = exp(-d² / ((2σ)² · (area + eps) · 2))``; OKS = mean of sim over the visible (v > 0)
    keypoints (0 when none).

    Returns (oks Tensor[P], sim Tensor[P, K] for every keypoint, visible Tensor[P, K] bool).
    """
    vis = gt_kpts[..., 2] > 0  # (P, K)
    d = (pred_xy.float() - gt_kpts[..., :2]).pow(2).sum(-1)  # (P, K)
    sim = (-d / ((2 * sigmas).pow(2) * (area + eps) * 2)).exp()  # (P, K)
    oks = (sim * vis).sum(-1) / vis.sum(-1).clamp(min=1)  # (P,)
    return oks, sim, vis


def oks_matrix(gt_kpts: torch.Tensor, pred_kpts: torch.Tensor, area: torch.Tensor, sigmas: torch.Tensor,
               eps: float = 1e-7) -> torch.Tensor:
    """OKS of every GT with every prediction, the validator's form: Tensor[N, K, 3] GTs, Tensor[M, K, >=2]
    predictions, area Tensor[N] (box area × 0.53) -> Tensor[N, M]. Visible: v != 0; the mean divides by
    (number visible + eps), not by at least 1 as the assigner does."""
    d = (gt_kpts[:, None, :, 0] - pred_kpts[..., 0]).pow(2) + (gt_kpts[:, None, :, 1] - pred_kpts[..., 1]).pow(2)
    vis = gt_kpts[..., 2] != 0  # (N, K)
    e = d / ((2 * sigmas).pow(2) * (area[:, None, None] + eps) * 2)  # (N, M, K)
    return ((-e).exp() * vis[:, None]).sum(-1) / (vis.sum(-1)[:, None] + eps)
