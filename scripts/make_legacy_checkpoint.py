"""A checkpoint saved by ultralytics 8.3 (as its trainer saves one: half-precision `model` and `ema`, `train_args`),
for the test that `--model` loads checkpoints of older versions under 8.4. A tiny yolov8 (width 1/16: ~90 kB) and
8.3's own eval-mode raw outputs on a fixed input, to compare with. Run with the oracle venv and 8.3 on the path
(never by CI):

    /tmp/oracle/bin/pip install --no-deps --target /tmp/u83 ultralytics==8.3.200
    YOLO_VERBOSE=False YOLO_OFFLINE=1 PYTHONPATH=/tmp/u83 /tmp/oracle/bin/python scripts/make_legacy_checkpoint.py
"""

from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
import ultralytics
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"

assert ultralytics.__version__.startswith("8.3"), ultralytics.__version__
cfg = yaml_model_load("yolov8n.yaml")
cfg["scales"] = {"n": [0.33, 0.0625, 1024]}
torch.manual_seed(7)
model = DetectionModel(cfg, nc=2, verbose=False)
model.names = {0: "cat", 1: "dog"}
for m in model.modules():  # move BatchNorm statistics away from the init values, as training would
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.2, 0.2)
        m.running_var.uniform_(0.5, 1.5)
args = get_cfg(overrides={"imgsz": 128, "box": 7.0, "cls": 0.7, "dfl": 1.2, "model": "yolov8n.yaml", "data": "pets.yaml"})
ckpt = {"epoch": 9, "best_fitness": 0.1, "model": None, "ema": deepcopy(model).half(), "updates": 90,
        "optimizer": None, "train_args": vars(args), "train_metrics": {}, "train_results": {}, "date": "2025-01-01",
        "version": ultralytics.__version__, "license": "AGPL-3.0", "docs": "https://docs.ultralytics.com"}
OUT.mkdir(parents=True, exist_ok=True)
torch.save(ckpt, OUT / "yolov8_tiny_u83.pt")
x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
m = ckpt["ema"].float().eval()
with torch.no_grad():
    _, raw = m(x)
np.savez_compressed(OUT / "yolov8_tiny_u83_outputs.npz", images=x.numpy(),
                    **{f"level{i}": t.numpy() for i, t in enumerate(raw)})
print({f"level{i}": tuple(t.shape) for i, t in enumerate(raw)}, (OUT / "yolov8_tiny_u83.pt").stat().st_size)
