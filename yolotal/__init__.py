"""yolotal: inspect anchors, DFL decode, task-aligned assignment and loss of YOLOv8/YOLO11 training."""

__version__ = "0.1.0"
__all__ = ["E2ERun", "InputError", "Run", "ScanReport", "TaskAlignedAssigner", "__version__", "inspect", "inspect_e2e",
           "scan"]

from .errors import InputError  # noqa: E402  (torch-free)


def __getattr__(name: str):
    # torch is imported only when something that computes is asked for, so `yolotal --help` stays fast
    if name == "TaskAlignedAssigner":
        from .assigner import TaskAlignedAssigner

        return TaskAlignedAssigner
    if name in ("inspect", "inspect_e2e", "scan", "Run", "ScanReport", "E2ERun"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'yolotal' has no attribute {name!r}")
