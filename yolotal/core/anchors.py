"""Anchor points: one per grid cell, at the cell centre, in grid units of its level."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Level:
    """One pyramid level: its stride, grid size and slice of the flattened anchor vector."""

    index: int
    stride: int
    h: int
    w: int
    start: int  # first flattened anchor index of this level

    @property
    def count(self) -> int:
        return self.h * self.w

    @property
    def stop(self) -> int:
        return self.start + self.count


def levels_for(grids: list[tuple[int, int]], strides: tuple[int, ...] | list[int]) -> list[Level]:
    """Levels in stride order with their offsets in the flattened (A,) anchor vector."""
    out, start = [], 0
    for i, ((h, w), s) in enumerate(zip(grids, strides)):
        out.append(Level(i, int(s), int(h), int(w), start))
        start += h * w
    return out


def make_anchors(levels: list[Level], offset: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell-centre anchor points and their strides.

    Returns:
        anchor_points: Tensor[A, 2] (x, y) in grid units of each anchor's level, row-major per level.
        stride_tensor: Tensor[A, 1] stride (pixels per grid unit) of each anchor.
    """
    points, strides = [], []
    for lv in levels:
        xs = torch.arange(lv.w, dtype=torch.float32) + offset  # [w]
        ys = torch.arange(lv.h, dtype=torch.float32) + offset  # [h]
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # [h, w] each
        points.append(torch.stack((gx, gy), -1).view(-1, 2))  # [h*w, 2]
        strides.append(torch.full((lv.count, 1), float(lv.stride), dtype=torch.float32))
    return torch.cat(points), torch.cat(strides)


def level_of(levels: list[Level], anchor: int) -> Level:
    """The level holding flattened anchor index ``anchor``."""
    for lv in levels:
        if lv.start <= anchor < lv.stop:
            return lv
    raise IndexError(anchor)


def cell_of(levels: list[Level], anchor: int) -> tuple[Level, int, int]:
    """(level, column x, row y) of a flattened anchor index."""
    lv = level_of(levels, anchor)
    k = anchor - lv.start
    return lv, k % lv.w, k // lv.w
