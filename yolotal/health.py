"""Assignment health during training: what the assigner gave each GT, accumulated per epoch.

From one assigner call (its six inputs and five outputs, as ultralytics' TaskAlignedAssigner and yolotal's
take and return them) ``HealthAccumulator.update`` counts, per group of GTs (all, size bucket, class):

    gts        real GTs
    no_pos     GTs with no positive anchor (they add nothing to the box/DFL loss and only negatives to cls)
    starved    GTs whose positives all carry near-zero weight (largest target score < ``STARVED_SCORE``)
    positives  positive anchors of those GTs
    score_sum  sum of the positives' target scores (their weight in every loss term)
    iou_sum    sum of the positives' IoU between predicted and GT box

and per level (anchors of one stride) the positives, score and IoU sums. Size buckets are COCO's, on the
GT's area in training pixels: small < 32², medium < 96², large. Everything stays on the inputs' device
in one small (groups, 6) float64 tensor: no host read per batch; ``epoch_row`` reads it once per epoch.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

STARVED_SCORE = 0.01
BUCKETS = ("small", "medium", "large")
BUCKET_EDGES = (32.0**2, 96.0**2)
GT_STATS = ("gts", "no_pos", "starved", "positives", "score_sum", "iou_sum")
CSV_NAME = "assign_health.csv"


@dataclass
class HealthAccumulator:
    """Per-epoch counts of one run. ``names``: class names (index -> name); ``levels``: stride per level."""

    names: dict = field(default_factory=dict)
    levels: list = field(default_factory=list)  # strides, in anchor order; filled from the first batch
    level_sizes: list = field(default_factory=list)  # anchors per level
    nc: int = 0
    acc: object = None  # torch tensor (groups, 6), float64
    batches: int = 0

    def _setup(self, anc_points, nc: int, device) -> None:
        import torch

        from .assigners.tal_sparse import grid_structure_cached

        grid = grid_structure_cached(anc_points)
        if grid is not None:
            self.levels = [lv.stride for lv in grid]
            self.level_sizes = [lv.w * lv.h for lv in grid]
        else:
            self.levels, self.level_sizes = [], []
        self.nc = nc
        self.acc = torch.zeros(self.n_groups, len(GT_STATS), dtype=torch.float64, device=device)

    @property
    def n_groups(self) -> int:
        return 1 + len(BUCKETS) + len(self.levels) + self.nc

    def update(self, inputs: tuple, outputs: tuple) -> None:
        """Add one assigner call: inputs (pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt),
        outputs (target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx)."""
        import torch

        from .core.boxes import box_iou_pairs

        pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt = inputs[:6]
        target_labels, target_bboxes, target_scores, fg, gt_idx = outputs[:5]
        b, n_anc, nc = pd_scores.shape
        m = gt_bboxes.shape[1]
        if m == 0:
            return
        dev = pd_scores.device
        if self.acc is None or self.acc.device != dev or self.nc != nc or sum(self.level_sizes) not in (0, n_anc):
            prev = self.acc
            self._setup(anc_points, nc, dev)
            if prev is not None and prev.shape == self.acc.shape:
                self.acc += prev.to(dev)
        with torch.no_grad():
            fgf = fg.float()  # (b, A)
            lab = target_labels.long().clamp(0, nc - 1).unsqueeze(-1)
            score = target_scores.gather(-1, lab).squeeze(-1).float() * fgf  # (b, A) weight of each positive
            iou = torch.where(fg, box_iou_pairs(pd_bboxes.float(), target_bboxes.float()), 0.0)  # (b, A)
            owner = (torch.arange(b, device=dev).unsqueeze(1) * m + gt_idx).reshape(-1)  # flat GT of each anchor
            n_pos = torch.zeros(b * m, device=dev).index_add_(0, owner, fgf.reshape(-1))
            s_sum = torch.zeros(b * m, device=dev).index_add_(0, owner, score.reshape(-1))
            i_sum = torch.zeros(b * m, device=dev).index_add_(0, owner, iou.reshape(-1))
            s_max = torch.zeros(b * m, device=dev).scatter_reduce_(0, owner, score.reshape(-1), "amax")
            valid = mask_gt.reshape(-1).bool()
            has = n_pos > 0
            per_gt = torch.stack((torch.ones_like(n_pos), (~has).float(), (has & (s_max < STARVED_SCORE)).float(),
                                  n_pos, s_sum, i_sum), 1).double() * valid.unsqueeze(1)  # (b*M, 6)
            wh = (gt_bboxes[..., 2:] - gt_bboxes[..., :2]).float().reshape(-1, 2)
            area = wh[:, 0] * wh[:, 1]
            bucket = (area >= BUCKET_EDGES[0]).long() + (area >= BUCKET_EDGES[1]).long()
            cls = gt_labels.reshape(-1).long().clamp(0, nc - 1)
            n_lv = len(self.levels)
            self.acc[0] += per_gt.sum(0)
            self.acc.index_add_(0, 1 + bucket, per_gt)
            self.acc.index_add_(0, 1 + len(BUCKETS) + n_lv + cls, per_gt)
            if n_lv:
                level = torch.repeat_interleave(torch.arange(n_lv, device=dev),
                                                torch.tensor(self.level_sizes, device=dev))  # (A,)
                per_anchor = torch.stack((fgf, score, iou), -1).double().sum(0)  # (A, 3)
                rows = torch.zeros(n_lv, 3, dtype=torch.float64, device=dev).index_add_(0, level, per_anchor)
                self.acc[1 + len(BUCKETS) : 1 + len(BUCKETS) + n_lv, 3:] += rows
        self.batches += 1

    def group_names(self) -> list[str]:
        lv = [f"stride {s:g}" for s in self.levels]
        cls = [f"class {self.names.get(i, i)}" for i in range(self.nc)]
        return ["all", *BUCKETS, *lv, *cls]

    def epoch_row(self, epoch: int) -> dict:
        """The epoch's counts as one flat row ({group}/{stat}: value), then reset."""
        row: dict = {"epoch": epoch, "batches": self.batches}
        if self.acc is None:
            return row
        values = self.acc.cpu().tolist()  # the one host read, once per epoch
        n_lv = len(self.levels)
        for k, (name, v) in enumerate(zip(self.group_names(), values)):
            gts, no_pos, starved, pos, s_sum, i_sum = v
            is_level = 1 + len(BUCKETS) <= k < 1 + len(BUCKETS) + n_lv
            if not is_level:
                row[f"{name}/gts"] = int(gts)
                row[f"{name}/no_pos"] = int(no_pos)
                row[f"{name}/starved"] = int(starved)
                row[f"{name}/pos_per_gt"] = round(pos / gts, 4) if gts else ""
            row[f"{name}/positives"] = int(pos)
            row[f"{name}/score"] = round(s_sum / pos, 5) if pos else ""
            row[f"{name}/iou"] = round(i_sum / pos, 5) if pos else ""
        self.acc.zero_()
        self.batches = 0
        return row


def append_row(path: Path, row: dict) -> None:
    """Append one epoch row to the CSV (header on the first row; a changed header rewrites the file)."""
    path = Path(path)
    rows = read_rows(path) if path.exists() else []
    if rows and list(rows[0].keys()) == list(row.keys()):
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=list(row)).writerow(row)
        return
    from .atomic import atomic_write

    keys = list(row)
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, restval="")
    w.writeheader()
    for r in [*rows, row]:
        w.writerow(r)
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode()))


def read_rows(path: Path) -> list[dict]:
    """The CSV as a list of dicts; numbers parsed, empty cells None."""
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.append({k: _num(v) for k, v in r.items()})
    return out


def _num(v):
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v else f
