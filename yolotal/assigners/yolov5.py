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
    image, anchor, gy, gx, label, offset (e,) i64  final entries (offset: index into OFFSET_NAMES)
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
            tbox=torch.cat((te[:, 2:4] - gij, te[:, 4:6]), 1),
        ))
    return out


def anchors_tensor(anchors: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """Config anchors (one flat w,h list per level, same count per level) -> (L, na, 2) pixels."""
    return torch.tensor([list(a) for a in anchors], dtype=torch.float32).view(len(anchors), -1, 2)
