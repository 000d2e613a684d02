"""Box geometry in the style of torchvision.ops.boxes: one small function per idea, shapes documented.

Formats: ``xyxy`` = (x1, y1, x2, y2) corners; ``xywh`` = (cx, cy, w, h). Units are whatever the caller uses
(pixels or grid cells); the functions never mix them.
"""

from __future__ import annotations

import math

import torch

_CIOU_EPS = 1e-7  # the eps ultralytics' bbox_iou uses; it enters heights, the union and the enclosing diagonal


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Tensor[..., 4] centre/size -> Tensor[..., 4] corners."""
    xy, half = boxes[..., :2], boxes[..., 2:] / 2
    return torch.cat((xy - half, xy + half), -1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """Tensor[..., 4] corners -> Tensor[..., 4] centre/size."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1)


def _inter_union(b1: torch.Tensor, b2: torch.Tensor, eps: float) -> tuple[torch.Tensor, ...]:
    """Element-wise intersection and union of Tensor[..., 4] xyxy pairs (heights padded by eps).

    Returns (inter, union, w1, h1, w2, h2), each Tensor[...].
    """
    w1, h1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1] + eps
    w2, h2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1] + eps
    iw = (torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0])).clamp(min=0)
    ih = (torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1])).clamp(min=0)
    inter = iw * ih
    union = w1 * h1 + w2 * h2 - inter + eps
    return inter, union, w1, h1, w2, h2


def box_iou_pairs(b1: torch.Tensor, b2: torch.Tensor, eps: float = _CIOU_EPS) -> torch.Tensor:
    """Plain IoU of matching pairs: Tensor[..., 4] xyxy, Tensor[..., 4] xyxy -> Tensor[...]."""
    inter, union, *_ = _inter_union(b1, b2, eps)
    return inter / union


def _diou_terms(b1: torch.Tensor, b2: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared centre distance rho^2 and squared enclosing-box diagonal c^2 of pairs, each Tensor[...]."""
    cw = torch.maximum(b1[..., 2], b2[..., 2]) - torch.minimum(b1[..., 0], b2[..., 0])  # enclosing width
    ch = torch.maximum(b1[..., 3], b2[..., 3]) - torch.minimum(b1[..., 1], b2[..., 1])  # enclosing height
    c2 = cw.pow(2) + ch.pow(2) + eps
    dx = b2[..., 0] + b2[..., 2] - b1[..., 0] - b1[..., 2]  # 2 * centre distance in x
    dy = b2[..., 1] + b2[..., 3] - b1[..., 1] - b1[..., 3]
    rho2 = (dx.pow(2) + dy.pow(2)) / 4
    return rho2, c2


def complete_box_iou_pairs(b1: torch.Tensor, b2: torch.Tensor, eps: float = _CIOU_EPS) -> torch.Tensor:
    """CIoU (Zheng et al. 2020) of matching pairs: Tensor[..., 4] xyxy, Tensor[..., 4] xyxy -> Tensor[...].

    CIoU = IoU - rho^2 / c^2 - a * v, with v the aspect-ratio consistency term and a = v / (1 - IoU + v);
    ``a`` carries no gradient, as in the reference trainer. Range (-1.5, 1].
    """
    inter, union, w1, h1, w2, h2 = _inter_union(b1, b2, eps)
    iou = inter / union
    rho2, c2 = _diou_terms(b1, b2, eps)
    v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        a = v / (1 - iou + v + eps)
    return iou - (rho2 / c2 + v * a)
