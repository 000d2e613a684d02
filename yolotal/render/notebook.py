"""HTML snippets for Jupyter: what ``Run`` and ``ScanReport`` show of themselves (``_repr_html_``).

They read the run's per-GT records and the scan report's doc only.
"""

from __future__ import annotations

from html import escape
from typing import Any


def _table(headers: list[str], rows: list[list[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    cap = f"<caption style='text-align:left'>{escape(caption)}</caption>" if caption else ""
    return f"<table class='yolotal'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_cell(x) for x in v) + ")"
    return str(v)


def run_summary_html(run, max_rows: int = 40) -> str:
    """The run's settings, loss terms and per-GT table (flagged GTs first, at most ``max_rows``)."""
    t = run.trace
    a = t.config.assigner
    recs = run.gts(as_frame=False)
    flagged = sum(1 for r in recs if r.flag)
    head = (f"<p><b>yolotal run</b> · {escape(a.name)} ({escape(str(a.profile))}) · {t.batch} image(s) · "
            f"{len(recs)} GTs · {flagged} flagged · imgsz {list(t.config.imgsz)} · heads: {escape(t.heads_source)}</p>")
    loss = run.loss
    parts = [head]
    if loss:
        parts.append(_table(list(loss), [list(loss.values())], "loss terms"))
    order = sorted(recs, key=lambda r: (r.flag == "", r.image))[:max_rows]
    rows = [[r.image, f"{r.file}:{r.line}", r.cls, tuple(round(v, 1) for v in r.box), r.candidates, r.positives,
             r.weighted, r.score_sum, r.max_iou, r.levels, r.flag] for r in order]
    parts.append(_table(["image", "file:line", "cls", "box px", "cand", "pos", "weighted", "score sum", "max IoU",
                         "levels", "flag"], rows,
                        f"per-GT ({len(order)} of {len(recs)} shown, flagged first)"))
    return "".join(parts)


def scan_summary_html(rep) -> str:
    """The scan report's overview and per-class / per-size tables."""
    d = rep.doc
    parts = []
    if rep.kind == "model":
        m = d.get("meta", {})
        parts.append(f"<p><b>yolotal scan --model</b> · {escape(str(m.get('model')))} · {d.get('images')} images · "
                     f"{len(d.get('per_gt', []))} GTs{' · PARTIAL' if d.get('partial') else ''}</p>")
        for title, key in (("per class", "by_class"), ("per size", "by_size")):
            tab = d.get(key) or {}
            cols = list(next(iter(tab.values()), {}).keys())
            parts.append(_table([title.split()[1]] + cols, [[k] + [v.get(c) for c in cols] for k, v in tab.items()],
                                title))
    else:
        f = d["files"]
        parts.append(f"<p><b>yolotal scan</b> · {escape(str(d['dataset']))} · {f['total']} files · {d['gts']} GTs · "
                     f"{f['corrupt']} corrupt · {len(d['flagged'])} flagged GTs</p>")
        parts.append(_table(["flag", "GTs"], [[k, v] for k, v in d["flag_counts"].items()], "flags"))
        parts.append(_table(["class", "GTs"], [[k, v] for k, v in d["class_counts"].items()], "per class"))
        parts.append(_table(["√area px", "GTs"], [[k, v] for k, v in d["size_histogram_px"].items()], "per size"))
    return "".join(parts)
