"""yolotal: inspect anchors, DFL decode, task-aligned assignment and loss of YOLOv8/YOLO11 training."""

__version__ = "0.1.0"
__all__ = ["TaskAlignedAssigner", "__version__"]


def __getattr__(name: str):
    # torch is imported only when the assigner is asked for, so `yolotal --help` stays fast
    if name == "TaskAlignedAssigner":
        from .assigner import TaskAlignedAssigner

        return TaskAlignedAssigner
    raise AttributeError(f"module 'yolotal' has no attribute {name!r}")
