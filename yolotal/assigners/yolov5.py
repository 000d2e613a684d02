"""YOLOv5's static matching (``utils/loss.py`` ``ComputeLoss.build_targets``), with every intermediate kept.

Per level, with anchors in grid units (pixels / stride):

1. ratio test: a GT matches an anchor when ``max(r, 1/r) < anchor_t`` for both r = gt_w / anchor_w and
   gt_h / anchor_h (default anchor_t 4.0). No predictions are involved.
2. neighbour cells: besides the cell holding the GT centre, the nearest neighbour in x (left when the
   centre's fractional x < 0.5, right when > 0.5) and in y is used too, unless it would be off the grid
   (the ``gxy > 1`` tests): 3 cells per matched anchor, away from the borders.
3. targets: (image, anchor, gy, gx) indices, the box relative to that cell (tbox, grid units) and the class.

Entries keep the reference's order (offset-major, then anchor-major, then label order), so they compare
one to one with YOLOv5's lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

OFFSET_NAMES = ("centre", "left", "up", "right", "down")  # the five offsets, in the reference's order
BIAS = 0.5


@dataclass(frozen=True)
class V5Level:
    """One level. k = matched (anchor, GT) pairs, e = final entries.

    anchors   (na, 2)  anchor w, h in grid units
    ratio     (na, n)  max over w and h of max(r, 1/r), r = GT size / anchor size
    match     (na, n)  ratio < anchor_t
    m_anchor, m_label (k,) i64   anchor index and label row of each match (anchor-major)
    gxy       (k, 2)   GT centre in grid units
    near      (k, 5)   bool: centre, left, up, right, down cell used
    image, anchor, gy, gx, label, offset, cls (e,) i64  final entries (offset: index into OFFSET_NAMES)
    tbox      (e, 4)   x, y relative to the cell (in (-0.5, 1.5)), w, h in grid units
    """

    stride: int
    anchors: torch.Tensor
    ratio: torch.Tensor
    match: torch.Tensor
    m_anchor: torch.Tensor
    m_label: torch.Tensor
    gxy: torch.Tensor
    near: torch.Tensor
    image: torch.Tensor
    anchor: torch.Tensor
    gy: torch.Tensor
    gx: torch.Tensor
    label: torch.Tensor
    offset: torch.Tensor
    tbox: torch.Tensor
    cls: torch.Tensor


def build_targets(
    labels: torch.Tensor, grids: list[tuple[int, int]], strides: tuple[int, ...], anchors_px: torch.Tensor,
    anchor_t: float = 4.0,
) -> list[V5Level]:
    """labels (n, 6): image, class, cx, cy, w, h normalised; anchors_px (L, na, 2) -> one V5Level per level."""
    n = labels.shape[0]
    na = anchors_px.shape[1]
    rows = torch.cat((labels.float(), torch.arange(n, dtype=torch.float32)[:, None]), 1)  # + label row
    # (na, n, 8): image, class, x, y, w, h, label row, anchor
    t_all = torch.cat((rows.repeat(na, 1, 1), torch.arange(na, dtype=torch.float32).view(na, 1, 1).expand(na, n, 1)), 2)
    off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * BIAS
    out = []
    for i, ((h, w), s) in enumerate(zip(grids, strides)):
        anchors = anchors_px[i] / s
        gain = torch.ones(8)
        gain[2:6] = torch.tensor([w, h, w, h], dtype=torch.float32)
        t = t_all * gain  # (na, n, 8)
        r = t[..., 4:6] / anchors[:, None]
        ratio = torch.max(r, 1 / r).max(2)[0]  # (na, n)
        match = ratio < anchor_t
        t = t[match]  # (k, 8), anchor-major
        gxy = t[:, 2:4]
        gxi = gain[[2, 3]] - gxy
        j, k = ((gxy % 1 < BIAS) & (gxy > 1)).T
        lf, m = ((gxi % 1 < BIAS) & (gxi > 1)).T
        near = torch.stack((torch.ones_like(j), j, k, lf, m))  # (5, k)
        te = t.repeat((5, 1, 1))[near]
        offsets = (torch.zeros_like(gxy)[None] + off[:, None])[near]
        which = torch.arange(5)[:, None].expand_as(near)[near]
        gij = (te[:, 2:4] - offsets).long()
        gi, gj = gij.T
        out.append(V5Level(
            stride=int(s), anchors=anchors, ratio=ratio, match=match, m_anchor=t[:, 7].long(), m_label=t[:, 6].long(),
            gxy=gxy, near=near.T.contiguous(), image=te[:, 0].long(), anchor=te[:, 7].long(),
            gy=gj.clamp(0, h - 1), gx=gi.clamp(0, w - 1), label=te[:, 6].long(), offset=which,
            tbox=torch.cat((te[:, 2:4] - gij, te[:, 4:6]), 1), cls=te[:, 1].long(),
        ))
    return out


def anchors_tensor(anchors: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """Config anchors (one flat w,h list per level, same count per level) -> (L, na, 2) pixels."""
    return torch.tensor([list(a) for a in anchors], dtype=torch.float32).view(len(anchors), -1, 2)


# ------------------------------------------------------------------------------------------------ loss
BALANCE = {3: (4.0, 1.0, 0.4)}  # objectness weight per level, P3-P5
V5_GAINS = (0.05, 1.0, 0.5)  # hyp box, obj, cls (hyp.scratch-low; train.py rescales them by nl, nc, imgsz)


@dataclass(frozen=True)
class V5Loss:
    """YOLOv5's loss items as ComputeLoss returns them (gain-weighted; total = sum x batch size), per level."""

    total: torch.Tensor
    lbox: torch.Tensor
    lobj: torch.Tensor
    lcls: torch.Tensor
    level_box: list[float]  # mean (1 - CIoU) of the level's targets (before the box gain)
    level_obj: list[float]  # mean objectness BCE of the level (before balance and gain)
    level_cls: list[float]  # mean class BCE of the level's targets (before the gain)
    ciou: list[torch.Tensor]  # (e,) CIoU of each target entry's predicted box, per level


def ciou_xywh(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """YOLOv5's CIoU of (n, 4) centre-size boxes: its own arithmetic (no eps on heights; alpha = v / (v - IoU + 1 + eps))."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = b1.chunk(4, -1), b2.chunk(4, -1)
    w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
    b1x1, b1x2, b1y1, b1y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
    b2x1, b2x2, b2y1, b2y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    inter = (b1x2.minimum(b2x2) - b1x1.maximum(b2x1)).clamp(0) * (b1y2.minimum(b2y2) - b1y1.maximum(b2y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1x2.maximum(b2x2) - b1x1.minimum(b2x1)
    ch = b1y2.maximum(b2y2) - b1y1.minimum(b2y1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b2x1 + b2x2 - b1x1 - b1x2) ** 2 + (b2y1 + b2y2 - b1y1 - b1y2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    alpha = v / (v - iou + (1 + eps))
    return (iou - (rho2 / c2 + v * alpha)).squeeze(-1)


def yolov5_loss(preds: list[torch.Tensor], levels: list[V5Level], nc: int, gains=V5_GAINS) -> V5Loss:
    """preds: per level (b, na, h, w, 5 + nc) raw head outputs (Detect's training layout); levels from build_targets."""
    bce = torch.nn.BCEWithLogitsLoss()
    lbox, lobj, lcls = torch.zeros(1), torch.zeros(1), torch.zeros(1)
    balance = BALANCE.get(len(preds), (4.0, 1.0, 0.25, 0.06, 0.02))
    lb, lo, lc, cious = [], [], [], []
    for i, (pi, lv) in enumerate(zip(preds, levels)):
        tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype)
        n = lv.image.shape[0]
        ciou = torch.zeros(0)
        box_i = cls_i = 0.0
        if n:
            pxy, pwh, _, pcls = pi[lv.image, lv.anchor, lv.gy, lv.gx].split((2, 2, 1, nc), 1)
            pxy = pxy.sigmoid() * 2 - 0.5
            pwh = (pwh.sigmoid() * 2) ** 2 * lv.anchors[lv.anchor]
            ciou = ciou_xywh(torch.cat((pxy, pwh), 1), lv.tbox)
            term = (1.0 - ciou).mean()
            lbox += term
            box_i = float(term)
            tobj[lv.image, lv.anchor, lv.gy, lv.gx] = ciou.detach().clamp(0).type(tobj.dtype)
            if nc > 1:
                t = torch.full_like(pcls, 0.0)
                t[range(n), lv.cls] = 1.0
                term = bce(pcls, t)
                lcls += term
                cls_i = float(term)
        obji = bce(pi[..., 4], tobj)
        lobj += obji * balance[i]
        lb.append(box_i)
        lo.append(float(obji))
        lc.append(cls_i)
        cious.append(ciou)
    lbox, lobj, lcls = lbox * gains[0], lobj * gains[1], lcls * gains[2]
    bs = preds[0].shape[0]
    return V5Loss(((lbox + lobj + lcls) * bs)[0], lbox[0], lobj[0], lcls[0], lb, lo, lc, cious)
