"""Overhead of yolotal.ultralytics.monitor() on a yolo11n training step (CPU). Not a test.

    YOLO_VERBOSE=False YOLO_OFFLINE=1 python benchmarks/bench_monitor.py [--imgsz 320 --batch 8 --images 48]

Trains yolo11n.yaml for one epoch on synthetic images (written to a temporary directory) with the monitor
on, timing in the same run every training step (on_train_batch_start -> on_train_batch_end) and the
monitor's own work inside it (its forward hook on the assigner). Both are measured in the same process at
the same time, so a busy machine slows both alike. Goal: monitor time <= 3 % of the step time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("YOLO_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--yolotal-assigner", action="store_true", help="also patch in yolotal's assigner")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_ultralytics_training import make_dataset  # noqa: E402
    from ultralytics import YOLO

    import yolotal.ultralytics as yu

    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "ds", n=args.images, size=args.imgsz)
        model = YOLO("yolo11n.yaml")
        mon = yu.monitor(model)
        spent = {"monitor": 0.0, "steps": 0.0, "n": 0}
        update = mon.acc.update

        def timed_update(*a, **k):
            t0 = time.perf_counter()
            update(*a, **k)
            spent["monitor"] += time.perf_counter() - t0

        mon.acc.update = timed_update
        t_start = {}
        model.add_callback("on_train_batch_start", lambda tr: t_start.update(t=time.perf_counter()))

        def end(tr):
            spent["steps"] += time.perf_counter() - t_start["t"]
            spent["n"] += 1

        model.add_callback("on_train_batch_end", end)
        patch = yu.use_yolotal_assigner() if args.yolotal_assigner else None
        try:
            model.train(data=str(data), epochs=1, imgsz=args.imgsz, batch=args.batch, workers=0, device="cpu",
                        plots=False, val=False, project=tmp, name="bench", verbose=False, amp=False)
        finally:
            if patch:
                patch.restore()
    n = spent["n"]
    share = spent["monitor"] / spent["steps"]
    print(f"yolo11n, imgsz {args.imgsz}, batch {args.batch}, {n} steps, assigner: "
          f"{'yolotal' if args.yolotal_assigner else 'ultralytics'}; load average {os.getloadavg()[0]:.2f}")
    print(f"step {1000 * spent['steps'] / n:.1f} ms, monitor {1000 * spent['monitor'] / n:.2f} ms per step: "
          f"{100 * share:.2f} % of a step (goal <= 3 %){'' if share <= 0.03 else ' MISSED'}")


if __name__ == "__main__":
    main()
