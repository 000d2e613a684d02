"""Assignment health: the per-batch counts (checked against a per-GT loop), the CSV and `yolotal health`."""

from __future__ import annotations

import csv

import pytest
import torch

from test_assigner_runtime import make_batch
from yolotal import TaskAlignedAssigner
from yolotal.core.boxes import box_iou_pairs
from yolotal.health import BUCKETS, HealthAccumulator, append_row, read_rows


def by_hand(inputs, outputs, nc):
    """The same counts with plain loops over images and GTs."""
    pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt = inputs
    _, tb, ts, fg, gi = outputs
    groups = {}

    def add(g, vals):
        acc = groups.setdefault(g, [0.0] * 6)
        for i, v in enumerate(vals):
            acc[i] += v

    for i in range(gt_bboxes.shape[0]):
        for j in range(gt_bboxes.shape[1]):
            if not mask_gt[i, j, 0]:
                continue
            pos = (fg[i] & (gi[i] == j)).nonzero().squeeze(1).tolist()
            c = int(gt_labels[i, j, 0])
            scores = [float(ts[i, a, c]) for a in pos]
            ious = [float(box_iou_pairs(pd_bboxes[i, a], gt_bboxes[i, j])) for a in pos]
            w, h = (gt_bboxes[i, j, 2:] - gt_bboxes[i, j, :2]).tolist()
            bucket = BUCKETS[(w * h >= 32**2) + (w * h >= 96**2)]
            vals = [1, not pos, bool(pos) and max(scores) < 0.01, len(pos), sum(scores), sum(ious)]
            for g in ("all", bucket, f"class {c}"):
                add(g, vals)
    return groups


def test_counts_match_a_per_gt_loop():
    x = make_batch(3, 320, 25)
    x[0][:, :, :] *= torch.linspace(0.0001, 1, x[0].shape[1]).view(1, -1, 1)  # some GTs starve: tiny scores
    out = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5)(*x)
    acc = HealthAccumulator()
    acc.update(x, out)
    acc.update(x, out)  # two batches add up
    row = acc.epoch_row(1)
    exp = by_hand(x, out, 8)
    assert row["epoch"] == 1 and row["batches"] == 2
    assert exp["all"][2] > 0 and exp["all"][1] >= 0  # the case has starved GTs
    for g, (gts, no_pos, starved, pos, s_sum, i_sum) in exp.items():
        assert row[f"{g}/gts"] == 2 * gts and row[f"{g}/no_pos"] == 2 * no_pos and row[f"{g}/starved"] == 2 * starved
        assert row[f"{g}/positives"] == 2 * pos
        if pos:
            assert row[f"{g}/pos_per_gt"] == pytest.approx(pos / gts, abs=1e-4)
            assert row[f"{g}/score"] == pytest.approx(s_sum / pos, abs=2e-5)
            assert row[f"{g}/iou"] == pytest.approx(i_sum / pos, abs=2e-5)
    # levels: positives per stride add up to all positives
    lv = [k for k in row if k.startswith("stride ") and k.endswith("/positives")]
    assert [k.split("/")[0] for k in lv] == ["stride 8", "stride 16", "stride 32"]
    assert sum(row[k] for k in lv) == row["all/positives"] == int(out[3].sum()) * 2
    assert acc.epoch_row(2)["all/gts"] == 0  # reset after each epoch


def test_csv_rows_and_the_health_command(tmp_path, cli):
    x = make_batch(2, 320, 12)
    out = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5)(*x)
    acc = HealthAccumulator(names={i: f"k{i}" for i in range(8)})
    path = tmp_path / "assign_health.csv"
    for epoch in (1, 2, 3):
        acc.update(x, out)
        append_row(path, acc.epoch_row(epoch))
    rows = read_rows(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[0]["all/gts"] == 12 + 6
    assert "class k3/gts" in rows[0]
    with open(path) as f:
        assert len(list(csv.reader(f))) == 4  # header + one row per epoch
    code, text, err = cli("health", tmp_path)
    assert code == 0, err
    assert "All GTs per epoch" in text and "by size bucket" in text and "class k3" in text
    png = tmp_path / "assign_health.png"
    from PIL import Image

    im = Image.open(png)
    assert im.size[0] > 600 and len(im.convert("RGB").getcolors(1 << 20)) > 5  # curves drawn, not blank
    code, _, err = cli("health", tmp_path / "nothing")
    assert code == 2 and "no such file" in err
