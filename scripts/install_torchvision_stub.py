"""Write a minimal stand-in for torchvision into the running environment (tests and CI only).

Why: `import ultralytics` (the optional extra behind `--model`) asks for torchvision's *version metadata*,
and its training-time validation may call `torchvision.ops.nms`. On machines where the only torchvision
wheel is a CUDA build that fails to import beside a CPU torch, this stand-in satisfies both: a
`torchvision-0.0.0+stub.dist-info` and a package whose `ops.nms` is a plain-torch greedy NMS. Everything
else in it raises when used. yolotal itself never imports torchvision.

Usage (inside the venv):  python scripts/install_torchvision_stub.py
Does nothing when a real torchvision is already importable.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path

INIT = '''"""Stand-in for torchvision written by yolotal's scripts/install_torchvision_stub.py (tests only)."""
__version__ = "{version}"
from . import ops  # noqa: E402,F401


def __getattr__(name):
    raise AttributeError(f"torchvision stand-in: {name} is not available")
'''

OPS = '''"""Plain-torch NMS: keep boxes in descending score order, dropping those whose IoU with a kept box exceeds
the threshold (torchvision.ops.nms semantics)."""
import torch


def box_iou(a, b):
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    keep = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    iou = box_iou(boxes[order], boxes[order]) if len(order) else None
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(int(order[i]))
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def batched_nms(boxes, scores, idxs, iou_threshold):
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def __getattr__(name):
    raise AttributeError(f"torchvision stand-in: ops.{name} is not available")
'''


def matching_version() -> str:
    """The torchvision release that pairs with the installed torch (torch 2.N <-> torchvision 0.(N+15)), so that
    ultralytics' compatibility check finds the pair it expects and prints no warning."""
    import torch

    major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    return f"0.{minor + 15}.0" if major == 2 else "0.0.0"


def main() -> int:
    try:
        if importlib.util.find_spec("torchvision") is not None:
            import torchvision  # noqa: F401

            print(f"a real torchvision is importable ({torchvision.__version__}); nothing written")
            return 0
    except Exception:  # a broken CUDA build: replace it? no — refuse, the user decides
        print("torchvision is installed but does not import; run `pip uninstall -y torchvision` first, then this script again, to use the stand-in", file=sys.stderr)
        return 1
    site = Path(sysconfig.get_paths()["purelib"])
    pkg = site / "torchvision"
    (pkg / "ops").mkdir(parents=True, exist_ok=True)
    version = matching_version()
    (pkg / "__init__.py").write_text(INIT.replace("{version}", version))
    (pkg / "ops" / "__init__.py").write_text(OPS)
    for old in site.glob("torchvision-*.dist-info"):  # an earlier stand-in's metadata
        if (old / "RECORD").exists() and not (old / "RECORD").read_text().strip():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    dist = site / f"torchvision-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torchvision\nVersion: {version}\n")
    (dist / "RECORD").write_text("")
    print(f"torchvision stand-in written to {pkg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
