"""yolotal: inspect anchors, DFL decode, task-aligned assignment and loss of YOLOv8/YOLO11 training."""

__version__ = "0.1.0"
