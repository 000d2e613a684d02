"""Pure tensor functions: anchors, box geometry (IoU family), DFL decode."""
