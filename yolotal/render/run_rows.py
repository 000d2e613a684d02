"""An assignment run (a :class:`yolotal.pipeline.Trace`) as the rows and summary of a ``scan --model`` report.

Every real GT gets the scan --model row (file, line, class, box, size bucket, candidates, positives, weighted
positives, target-score sum and max, IoU of its positives' predicted boxes, positives per level, flags), and the
run is summarised per class and size bucket the same way, so one HTML renderer serves both.
"""

from __future__ import annotations


class _Unit:
    """The trace seen by an assigner without soft target scores (yolov5, simota): every positive weighs 1."""

    def __init__(self, trace):
        self._t = trace

    def __getattr__(self, name):
        return getattr(self._t, name)

    def __contains__(self, key: str) -> bool:
        return key == "target_scores" or key in self._t

    def __getitem__(self, key: str):
        if key != "target_scores":
            return self._t[key]
        import torch

        b, a = self._t["pred_scores"].shape[:2]
        nc = int(self._t["pred_scores"].shape[2])
        out = torch.zeros(b, a, nc)
        pos = self._t["pos_triples"]
        if len(pos):
            gl = self._t["gt_labels"][pos[:, 0], pos[:, 1], 0].long().clamp(0, nc - 1)
            out[pos[:, 0], pos[:, 2], gl] = 1.0
        return out


def _records(trace):
    from ..scan_model import records_of

    return records_of(trace if "target_scores" in trace else _Unit(trace))


def trace_records(trace) -> list:
    """Every real GT's :class:`yolotal.scan_model.GTRecord` (unrounded), in image then label order."""
    return _records(trace)[0]


def worst_key(r) -> tuple:
    """The scan --model report's order of a GTRecord, worst first: no positive, then zero-weight positives, then
    the smallest target-score sum."""
    return (r.positives > 0, r.weighted > 0, r.score_sum)


def names_of(trace) -> list[str] | None:
    names = getattr(trace.config, "names", None)
    return list(names) if names else None


def trace_rows(trace, names: list[str] | None = None) -> list[dict]:
    """Every real GT's row (the scan --model ``per_gt`` row), in image then label order."""
    from ..scan_model import _row

    recs, _ = _records(trace)
    return [_row(r, names if names is not None else names_of(trace)) for r in recs]


def run_doc(trace, names: list[str] | None = None, top: int = 20) -> dict:
    """The scan --model report of one run: ``all``, ``by_class``, ``by_size``, ``worst_gts``, ``per_gt`` (and
    ``meta``: the assigner, imgsz, strides, loss terms when the run computed them)."""
    from ..scan_model import ModelScan, summarise

    recs, ims = _records(trace)
    for im, origin in zip(ims, trace.gt_origin):
        im["file"] = origin[0][0] if origin else im["image"]
    res = ModelScan(batches={0: (recs, ims, [])}, n_done=trace.batch, n_run=trace.batch)
    doc = summarise(res, names if names is not None else names_of(trace), top)
    a = trace.config.assigner
    meta = {"dataset": ", ".join(sorted({f for o in trace.gt_origin for f, _ in o})[:3]) or "labels",
            "imgsz": list(trace.config.imgsz), "strides": [lv.stride for lv in trace.levels],
            "assigner": a.name, "profile": getattr(a, "profile", ""), "topk": getattr(a, "topk", None),
            "heads": trace.heads_source}
    if "target_scores" not in trace:
        meta["note"] = f"{a.name} gives no soft target scores: every positive counts as score 1"
    loss = {k[5:]: round(float(trace[k]), 5) for k in ("loss_box", "loss_cls", "loss_dfl") if k in trace}
    doc["loss_mean"] = loss or doc["loss_mean"]
    doc["meta"] = meta
    doc.pop("images_run", None)  # every image of a run is assigned
    return doc
