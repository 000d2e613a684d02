"""A tiny checkpoint saved by the installed ultralytics release, as its trainer saves one (half-precision
``ema``, ``train_args``, ``version``), for the tests that ``auto`` picks the profile of the release that
trained a checkpoint. Written to tests/fixtures/models/yolov8_tiny_u<version>.pt (~880 kB). Never run by CI:

    /work/oracle/bin/pip install --no-deps --target /work/oracle-8.4.127 ultralytics==8.4.127
    YOLO_VERBOSE=False YOLO_OFFLINE=1 PYTHONPATH=/work/oracle-8.4.127 /work/oracle/bin/python scripts/make_version_checkpoint.py
"""

from copy import deepcopy
from pathlib import Path

import torch
import ultralytics
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"

cfg = yaml_model_load("yolov8n.yaml")
cfg["scales"] = {"n": [0.33, 0.0625, 1024]}
torch.manual_seed(7)
model = DetectionModel(cfg, nc=2, verbose=False)
model.names = {0: "cat", 1: "dog"}
args = get_cfg(overrides={"imgsz": 128, "model": "yolov8n.yaml", "data": "pets.yaml"})
ckpt = {"epoch": 9, "best_fitness": 0.1, "model": None, "ema": deepcopy(model).half(), "updates": 90,
        "optimizer": None, "train_args": vars(args), "train_metrics": {}, "train_results": {}, "date": "2026-01-01",
        "version": ultralytics.__version__, "license": "AGPL-3.0", "docs": "https://docs.ultralytics.com"}
out = OUT / f"yolov8_tiny_u{ultralytics.__version__}.pt"
torch.save(ckpt, out)
print(out, out.stat().st_size)
