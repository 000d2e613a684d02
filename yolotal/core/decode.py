"""Distribution Focal Loss (DFL) decode: reg_max logits per side -> expected distance -> box."""

from __future__ import annotations

import torch


def dfl_probabilities(pred_dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Tensor[b, A, 4*reg_max] logits -> Tensor[b, A, 4, reg_max] softmax over bins (sides l, t, r, b)."""
    b, a, _ = pred_dist.shape
    return pred_dist.view(b, a, 4, reg_max).softmax(3)


def dfl_distances(pred_dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Expected ltrb distance in grid units: Tensor[b, A, 4*reg_max] -> Tensor[b, A, 4].

    With reg_max == 1 there is no distribution: the four channels are the distances themselves.
    """
    if reg_max == 1:
        return pred_dist
    bins = torch.arange(reg_max, dtype=pred_dist.dtype)
    return dfl_probabilities(pred_dist, reg_max).matmul(bins)


def ltrb_to_xyxy(ltrb: torch.Tensor, anchor_points: torch.Tensor) -> torch.Tensor:
    """Distances Tensor[..., A, 4] from anchors Tensor[A, 2] -> boxes Tensor[..., A, 4] xyxy (same units)."""
    return torch.cat((anchor_points - ltrb[..., :2], anchor_points + ltrb[..., 2:]), -1)


def xyxy_to_ltrb(anchor_points: torch.Tensor, boxes: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """Boxes Tensor[..., A, 4] xyxy -> distances Tensor[..., A, 4] from anchors Tensor[A, 2].

    ``limit`` clamps to [0, limit - 0.01], as the DFL targets are (limit = reg_max - 1).
    """
    d = torch.cat((anchor_points - boxes[..., :2], boxes[..., 2:] - anchor_points), -1)
    return d if limit is None else d.clamp(0, limit - 0.01)
