"""Swap yolotal.TaskAlignedAssigner into ultralytics' own v8DetectionLoss and compare (NOT run by CI).

    YOLO_VERBOSE=False YOLO_OFFLINE=1 PYTHONPATH=. /tmp/oracle/bin/python scripts/check_dropin.py

For every golden case (same inputs as scripts/make_golden.py), the loss is computed twice by ultralytics
8.4: with its TaskAlignedAssigner, then with yolotal's constructed from the same keywords. Prints the three
loss items of both and the largest relative difference; exits 1 if any differs by more than 1e-6.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402
from ultralytics.utils import loss as uloss  # noqa: E402

from yolotal import TaskAlignedAssigner  # noqa: E402


def items(crit, levels, labels, reg_max):
    b, c = levels[0].shape[:2]
    flat = torch.cat([x.view(b, c, -1) for x in levels], 2)
    preds = {"boxes": flat[:, : 4 * reg_max], "scores": flat[:, 4 * reg_max :], "feats": levels}
    lab = torch.from_numpy(labels)
    batch = {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6]}
    total, _ = crit(preds, batch)
    return total.detach().numpy()


def main() -> int:
    worst = 0.0
    for name, spec in mg.CASES.items():
        seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads, topk, topk2 = spec
        labels, levels = mg.make_inputs(spec)
        t_levels = [torch.from_numpy(x) for x in levels]
        crit = uloss.v8DetectionLoss(mg.model_stub(strides, nc, reg_max), tal_topk=topk, tal_topk2=topk2)
        ref = items(crit, t_levels, labels, reg_max)
        a = crit.assigner
        crit.assigner = TaskAlignedAssigner(
            topk=a.topk, num_classes=a.num_classes, alpha=a.alpha, beta=a.beta, stride=a.stride, eps=a.eps,
            topk2=a.topk2,
        )
        got = items(crit, t_levels, labels, reg_max)
        rel = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)))
        worst = max(worst, rel)
        print(f"{name:18s} ultralytics {np.array2string(ref, precision=6)}  yolotal {np.array2string(got, precision=6)}  "
              f"max rel diff {rel:.1e}")
    print(f"worst relative difference: {worst:.1e}")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
