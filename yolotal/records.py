"""Per-GT records of a run, for every assigner family: what ``Run.gts()`` returns and the HTML report lists.

Computed from the trace only (its ``pos_triples`` / ``cand_triples`` and the family's scores), so they agree with
the terminal's per-GT tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pipeline import Trace

NEAR_ZERO = 0.01  # a positive whose target score is below this carries near-zero weight (as the terminal flags it)


@dataclass(frozen=True)
class GTRecord:
    """One real GT of a run.

    image: batch index; file, line: where the label came from; cls: class id; box: (x1, y1, x2, y2) px on the
    imgsz canvas (after the letterbox); w, h: its size in px; candidates: anchors it could be assigned
    (its candidate set; None for YOLOv5, which has none); positives: anchors assigned to it; weighted: positives
    whose target score is >= 0.01 (None where the family has no soft scores); score_sum: its positives' target
    scores summed (what it adds to target_scores_sum; None without soft scores); max_iou: largest overlap of a
    prediction with it among its candidates (CIoU for the task-aligned families, IoU otherwise); levels: positives
    per stride, e.g. "s8×3 s16×2"; flag: "" or why it is not learnt ("no candidates", "no positives",
    "only near-zero-weight positives").
    """

    image: int
    file: str
    line: int
    cls: int
    box: tuple[float, float, float, float]
    w: float
    h: float
    candidates: int | None
    positives: int
    weighted: int | None
    score_sum: float | None
    max_iou: float | None
    levels: str
    flag: str


def gt_records(trace: "Trace") -> list[GTRecord]:
    """Every real GT of every image, in image order, flagged GTs first within an image."""
    from .core.anchors import cell_of

    fam = trace.family
    pos, cand = trace["pos_triples"], trace["cand_triples"]
    scores = None
    if "target_scores" in trace:
        scores = trace["target_scores"].amax(-1)  # (b, A) soft score of each anchor's target
    elif "pred_ious" in trace:  # SimOTA: the class target is the matched IoU
        scores = trace["pred_ious"]
    out: list[GTRecord] = []
    for i in range(trace.batch):
        n = trace.n_gts(i)
        if not n:
            continue
        gb = trace["gt_bboxes"][i]
        p_i, c_i = pos[pos[:, 0] == i], cand[cand[:, 0] == i]
        best = _max_overlaps(trace, i, c_i, n)
        recs = []
        for j in range(n):
            anchors = p_i[p_i[:, 1] == j, 2]
            levels: dict[int, int] = {}
            for a in anchors.tolist():
                s = cell_of(trace.levels, a)[0].stride
                levels[s] = levels.get(s, 0) + 1
            sc = scores[i, anchors] if scores is not None else None
            n_cand = int((c_i[:, 1] == j).sum()) if fam.has_candidates else None
            weighted = int((sc >= NEAR_ZERO).sum()) if sc is not None else None
            flag = ("no candidates" if n_cand == 0 else "no positives" if not len(anchors)
                    else "only near-zero-weight positives" if weighted == 0 else "")
            x1, y1, x2, y2 = (float(v) for v in gb[j])
            f, ln = trace.gt_origin[i][j]
            recs.append(GTRecord(
                image=i, file=str(f), line=int(ln), cls=int(trace["gt_labels"][i, j, 0]), box=(x1, y1, x2, y2),
                w=x2 - x1, h=y2 - y1, candidates=n_cand, positives=int(len(anchors)), weighted=weighted,
                score_sum=float(sc.sum()) if sc is not None else None, max_iou=best[j],
                levels=" ".join(f"s{k}×{v}" for k, v in sorted(levels.items())), flag=flag))
        recs.sort(key=lambda r: (r.flag == "", 0))  # stable: flagged first, slot order within each group
        out += recs
    return out


def _max_overlaps(trace: "Trace", image: int, cand, n: int) -> list[float | None]:
    """Per GT of the image: the largest overlap of a prediction with it over its candidates (None: none)."""
    if "overlaps" in trace:  # dense task-aligned: CIoU clamped at 0 at candidates
        ov = trace["overlaps"][image]
        out = []
        for j in range(n):
            a = cand[cand[:, 1] == j, 2]
            out.append(float(ov[j, a].max()) if len(a) else None)
        return out
    if "pair_u" in trace:
        sel = trace["pair_b"] == image
        pm, pu = trace["pair_m"][sel], trace["pair_u"][sel]
        return [float(pu[pm == j].max()) if bool((pm == j).any()) else None for j in range(n)]
    if not len(cand):
        return [None] * n
    from .core.boxes import box_iou_pairs

    gb, pb = trace["gt_bboxes"][image], trace["pred_bboxes"][image]
    iou = box_iou_pairs(gb[cand[:, 1]], pb[cand[:, 2]])
    out = []
    for j in range(n):
        sel = cand[:, 1] == j
        out.append(float(iou[sel].max()) if bool(sel.any()) else None)
    return out
