"""Self-contained HTML reports: a dataset scan (geometry or ``--model``), an assignment run, training health.

One file, nothing fetched: the stylesheet and script are inline, charts are inline SVG drawn by matplotlib
(:mod:`yolotal.render.charts`), gallery crops are PNG ``data:`` URIs, and a Content-Security-Policy forbids any
other source, so the page makes no network request of any kind. The per-GT table holds its rows as JSON and
shows one page at a time, sorted by a click on a column header and filtered by a text box (every word must
appear in the row), so a report of 100 000 GTs opens at once.

Sections: overview, alerts (corrupt files, tiny GTs, GTs without a candidate or a positive, zero-weight
positives), per-class and per-size tables with charts, the gallery of the worst GTs
(:mod:`yolotal.render.gallery`), and the per-GT table. Reads the report dicts only (``yolotal.scanning.report``,
``yolotal.scan_model.summarise``), plus a gallery built by the caller.
"""

from __future__ import annotations

import base64
import html as _html
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import InputError
from .gallery import LEVEL_COLOURS, GalleryItem
from .html_assets import CSS, JS

PAGE_ROWS = 100
ALERT_ROWS = 500  # details listed under an alert (the per-GT table has them all)
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'")
FLAG_SHORT = {"starved_classic": "no candidate (classic)", "starved_ultralytics": "no candidate (ultralytics)",
              "tiny": "tiny", "clamped": "DFL clamped", "no_positives_simulated": "no positive (simulated)"}


def esc(v) -> str:
    return _html.escape(str(v), quote=True)


def _n(v, digits: int = 3) -> str:
    """A number for a table cell: thousands separated, floats to ``digits`` places, — for None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return esc(v)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "—"


def _json_script(element_id: str, obj) -> str:
    """A ``<script type="application/json">`` block that cannot end early: every ``<`` written as ``\\u003c``."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


# ------------------------------------------------------------------------------------------------ page parts
def _page(title: str, subtitle: str, sections: list[tuple[str, str, str]], data: str = "") -> str:
    """The whole document: sections as (id, nav label, html)."""
    from .. import __version__

    nav = "".join(f'<a href="#{sid}">{esc(label)}</a>' for sid, label, _ in sections)
    body = "\n".join(body for _, _, body in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div></header>'
        f"<nav>{nav}</nav><main>{body}</main>"
        f'<footer>yolotal {esc(__version__)} · a self-contained file: no request leaves this page</footer>'
        f"{data}<script>{JS}</script></body></html>\n"
    )


def _section(sid: str, title: str, inner: str, count: int | None = None) -> str:
    c = f' data-count="{count}"' if count is not None else ""
    badge = f'<span class="count">{count:,}</span>' if count is not None else ""
    return f'<section id="{sid}"{c}><h2>{esc(title)}{badge}</h2>{inner}</section>'


def _cards(items: Iterable[tuple[str, object]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="stat"><div class="v">{_n(v)}</div><div class="k">{esc(k)}</div></div>' for k, v in items) + "</div>"


def _alert(level: str, key: str, count: int, text: str, details: Sequence[str] = (), limit: int | None = None) -> str:
    """One alert line: level bad / warn / ok, a count, what it means, and the first ``limit`` details."""
    limit = ALERT_ROWS if limit is None else limit
    more = ""
    if details:
        items = "".join(f"<li>{esc(d)}</li>" for d in details[:limit])
        extra = f" (the first {limit:,} of {count:,})" if len(details) > limit else ""
        more = f"<details><summary>show {min(len(details), limit):,}{extra}</summary><ol>{items}</ol></details>"
    return (f'<li class="alert {level}" data-alert="{esc(key)}" data-count="{count}"><b>{count:,}</b> '
            f"{text}{more}</li>")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    h = "".join(f"<th>{esc(x)}</th>" for x in head)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="tablewrap"><table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table></div>'


def _chart(fig) -> str:
    from .charts import svg

    return svg(fig)


def _gallery(items: Sequence[GalleryItem], strides: Sequence[int] | None, note: str = "", known: bool = True,
             empty: str = "No GT needs a look: none is flagged.") -> str:
    if not items:
        return f'<p class="muted">{esc(empty)}</p>'
    legend = ['<div class="legend">']
    for k, s in enumerate(strides or ()):
        rgb = LEVEL_COLOURS[k % len(LEVEL_COLOURS)]
        legend.append(f'<span><i style="background:rgb{rgb}"></i>stride {esc(s)}</span>')
    legend.append('<span><i class="ring"></i>candidate anchor centre</span>')
    if known:
        legend.append('<span><i style="background:#555"></i>positive (size: target score)</span>'
                      '<span><i class="box"></i>GT with positives</span><span><i class="box bad"></i>GT without</span>')
    else:
        legend.append('<span><i class="box unknown"></i>GT</span>')
    legend.append(f'<span><i class="box dash{"" if known else " unknown"}"></i>enlarged candidate box '
                  "(ultralytics 8.4)</span></div>")
    cards = []
    for it in items:
        uri = "data:image/png;base64," + base64.b64encode(it.png).decode()
        flags = "".join(f'<span class="flag{" tiny" if f == "tiny" else ""}">{esc(FLAG_SHORT.get(f, f))}</span>'
                        for f in it.flags)
        nums = "".join(f"<tr><td>{esc(k)}</td><td>{_n(v)}</td></tr>" for k, v in it.numbers.items())
        cards.append(f'<figure><img src="{uri}" alt="{esc(it.title)}" loading="eager" decoding="async">'
                     f'<figcaption><div class="t">{esc(it.title)}</div>{flags}<table>{nums}</table>'
                     "</figcaption></figure>")
    head = f'<p class="muted">{esc(note)}</p>' if note else ""
    return head + "".join(legend) + '<div class="gallery">' + "".join(cards) + "</div>"


def _gt_table(columns: list[dict], rows: list[list], files: list[str], note: str = "") -> tuple[str, str]:
    """The per-GT table's markup and its JSON data block."""
    th = "".join(f'<th tabindex="0" aria-sort="none" data-col="{i}" title="sort by {esc(c["label"])}"'
                 f'{" class=" + chr(34) + "l" + chr(34) if c["t"] in ("s", "flags", "file") else ""}>'
                 f'{esc(c["label"])}</th>' for i, c in enumerate(columns))
    inner = (f'<p class="muted">{esc(note)}</p>' if note else "") + (
        '<div class="toolbar"><input id="gt-filter" type="search" placeholder="filter: words that must all appear '
        '(file, class, flag, …)" aria-label="filter rows"><button id="gt-prev" type="button">‹ prev</button>'
        '<button id="gt-next" type="button">next ›</button><span id="gt-status" class="muted"></span></div>'
        f'<div class="gtscroll"><table id="gt-table"><thead><tr>{th}</tr></thead><tbody></tbody></table></div>')
    data = _json_script("gt-data", {"columns": [{"label": c["label"], "t": c["t"]} for c in columns],
                                     "rows": rows, "files": files, "page": PAGE_ROWS})
    return inner, data


def _encode_rows(rows: Sequence[dict], columns: list[dict]) -> tuple[list[list], list[str]]:
    """Row dicts -> arrays in column order, file names as indices into one list, NaN/inf as None."""
    files: dict[str, int] = {}
    getters = [c["get"] for c in columns]
    file_cols = [i for i, c in enumerate(columns) if c["t"] == "file"]
    float_cols = [i for i, c in enumerate(columns) if c["t"] == "n"]
    inf = math.inf
    out = []
    for r in rows:
        line = [g(r) for g in getters]
        for i in file_cols:
            line[i] = files.setdefault(str(line[i]), len(files))
        for i in float_cols:
            v = line[i]
            if v.__class__ is float and (v != v or v == inf or v == -inf):
                line[i] = None
        out.append(line)
    return out, list(files)


def _col(label: str, t: str, get) -> dict:
    return {"label": label, "t": t, "get": get}


def _w(r: dict, key: str = "box") -> float:
    b = r[key]
    return round(b[2] - b[0], 2)


def _h(r: dict, key: str = "box") -> float:
    b = r[key]
    return round(b[3] - b[1], 2)


MODEL_COLUMNS = [
    _col("file", "file", lambda r: r["file"]), _col("line", "n", lambda r: r["line"]),
    _col("class", "s", lambda r: r.get("name", str(r.get("class")))), _col("size", "s", lambda r: r.get("size")),
    _col("w px", "n", _w), _col("h px", "n", _h),
    _col("candidates", "n", lambda r: r.get("candidates")), _col("positives", "n", lambda r: r.get("positives")),
    _col("weighted", "n", lambda r: r.get("weighted_positives")),
    _col("Σ score", "n", lambda r: r.get("score_sum")), _col("max score", "n", lambda r: r.get("max_score")),
    _col("mean IoU", "n", lambda r: r.get("mean_iou")), _col("max IoU", "n", lambda r: r.get("max_iou")),
    _col("pos. per level", "l", lambda r: r.get("positives_per_level")),
    _col("flags", "flags", lambda r: list(r.get("flags", []))),
]


def _geometry_columns(rows: Sequence[dict]) -> list[dict]:
    if rows and "candidates_classic" in rows[0] and isinstance(rows[0]["candidates_classic"], list):
        # scan --report's "flagged" records: per-level lists
        cols = [
            _col("file", "file", lambda r: r["file"]), _col("line", "n", lambda r: r["line"]),
            _col("class", "s", lambda r: str(r.get("name", r.get("cls")))),
            _col("w px", "n", lambda r: _w(r, "box_px")), _col("h px", "n", lambda r: _h(r, "box_px")),
            _col("cand. classic", "l", lambda r: r["candidates_classic"]),
            _col("cand. ultralytics", "l", lambda r: r["candidates_ultralytics"]),
        ]
        if "positives_simulated" in rows[0]:
            cols.append(_col("pos. simulated", "l", lambda r: r["positives_simulated"]))
    else:
        cols = [
            _col("file", "file", lambda r: r["file"]), _col("line", "n", lambda r: r["line"]),
            _col("class", "s", lambda r: r.get("name", str(r.get("class")))),
            _col("√(w·h) px", "n", lambda r: r.get("side_px")),
            _col("w px", "n", _w), _col("h px", "n", _h),
            _col("cand. classic", "n", lambda r: r.get("candidates_classic")),
            _col("cand. ultralytics", "n", lambda r: r.get("candidates_ultralytics")),
        ]
        if rows and "positives_simulated" in rows[0]:
            cols.append(_col("pos. simulated", "n", lambda r: r.get("positives_simulated")))
    cols.append(_col("flags", "flags", lambda r: [FLAG_SHORT.get(f, f) for f in r.get("flags", [])]))
    return cols


# ------------------------------------------------------------------------------------------------ geometry scan
def scan_gt_rows(res) -> list[dict]:
    """Every GT of a geometry scan (:class:`yolotal.scanning.ScanResult`) as a row: file, line, class, name, box px
    (letterboxed canvas), side_px = √(w·h), candidates per profile (all levels), simulated positives, flags."""
    import numpy as np

    rows, geo = res.parsed.rows, res.geo
    flags = res.flags()
    names = res.labels.names
    files = [str(f) for f in res.labels.files]
    box = np.round(geo.box_px.astype(np.float64), 2)
    side = np.sqrt(np.maximum((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]), 0))
    cls = rows[:, 0].astype(np.int64)
    cc, cu = geo.cand_classic.sum(1), geo.cand_ultra.sum(1)
    ps = res.positives.sum(1) if res.positives is not None else None
    fkeys = list(flags)
    fmat = np.stack([flags[k] for k in fkeys], 1) if fkeys else np.zeros((len(rows), 0), bool)
    out = []
    fl, ln = res.parsed.file.tolist(), res.parsed.line.tolist()
    box_l, side_l, cls_l, cc_l, cu_l = box.tolist(), np.round(side, 2).tolist(), cls.tolist(), cc.tolist(), cu.tolist()
    ps_l = ps.tolist() if ps is not None else None
    any_flag = fmat.any(1).tolist()
    for i in range(len(rows)):
        c = cls_l[i]
        r = {"file": files[fl[i]], "line": ln[i], "class": c, "name": names[c] if names and c < len(names) else str(c),
             "box": box_l[i], "side_px": side_l[i], "candidates_classic": cc_l[i], "candidates_ultralytics": cu_l[i],
             "flags": [fkeys[k] for k in np.nonzero(fmat[i])[0]] if any_flag[i] else []}
        if ps_l is not None:
            r["positives_simulated"] = ps_l[i]
        out.append(r)
    return out


def _geometry_sections(doc: dict, gallery: Sequence[GalleryItem]) -> tuple[list, str]:
    from .charts import bar_chart

    f, g, s = doc["files"], doc["gts"], doc["settings"]
    fc = doc["flag_counts"]
    geo = doc.get("geometry", {})
    overview = _cards([("label files", f["total"]), ("GTs", g), ("background images", f["background"]),
                       ("corrupt files (skipped)", f["corrupt"]), ("duplicate rows dropped", f["duplicate_rows_dropped"]),
                       ("letterboxed files", geo.get("letterboxed", 0)), ("files without image", geo.get("no_image", 0))])
    splits = ", ".join(f"{k} {v}" for k, v in f.get("splits", {}).items())
    overview += (f'<p class="settings">imgsz {s["imgsz"][0]}×{s["imgsz"][1]} · strides {", ".join(map(str, s["strides"]))}'
                 f' · reg_max {s["reg_max"]}{" · splits: " + esc(splits) if splits else ""}<br>{esc(s.get("canvas", ""))}</p>')

    alerts = []
    errs = doc.get("errors", [])
    alerts.append(_alert("bad" if f["corrupt"] else "ok", "corrupt", f["corrupt"],
                         "corrupt label files: a bad line (or an unreadable image) makes ultralytics skip the whole "
                         "file, so none of its GTs is trained on",
                         [f"{e['file']}:{e['line']}: {e['reason']}" for e in errs[: ALERT_ROWS + 1]]))
    flagged = doc.get("flagged", [])

    def where(key: str) -> list[str]:
        from itertools import islice

        return list(islice((f"{x['file']}:{x['line']}  class {x['cls']}  box {', '.join(f'{v:.1f}' for v in x['box_px'])}"
                            for x in flagged if key in x["flags"]), ALERT_ROWS + 1))

    for key, level, text in (
        ("starved_classic", "bad", "GTs with no anchor centre inside the box: never a positive under ultralytics "
                                   "8.0–8.3 (classic profile)"),
        ("starved_ultralytics", "bad", "GTs with no candidate even after 8.4's enlargement to stride_val"),
        ("no_positives_simulated", "bad", "GTs with no positive in the simulated assignment (partly-trained heads)"),
        ("clamped", "warn", "GTs whose every DFL target is clamped (farther than reg_max − 1.01 strides from a side)"),
        ("tiny", "warn", f"tiny GTs: a side shorter than the smallest stride ({min(s['strides'])} px)"),
    ):
        if key in fc:
            alerts.append(_alert(level if fc[key] else "ok", key, fc[key], text, where(key)))
    dups = doc.get("duplicates", [])
    if dups:
        alerts.append(_alert("warn", "duplicates", f["duplicate_rows_dropped"], "duplicate rows dropped (as "
                             "ultralytics drops them)", [f"{d['file']}: line(s) {', '.join(map(str, d['lines']))}"
                                                         for d in dups]))
    if geo.get("no_image"):
        alerts.append(_alert("warn", "no_image", geo["no_image"], "label files without an image: their boxes are "
                             "taken as normalised × imgsz (no letterbox)"))

    classes = sorted(doc["class_counts"].items(), key=lambda kv: -kv[1])
    cls_table = _table(("class", "GTs", "share"), [(esc(k), _n(v), _pct(v, g)) for k, v in classes])
    top = classes[:30]
    cls_chart = _chart(bar_chart([k for k, _ in top], {"GTs": [v for _, v in top]},
                                 "GTs per class" + (" (the 30 most frequent)" if len(classes) > 30 else ""),
                                 ylabel="GTs")) if classes else ""
    sizes = doc["size_histogram_px"]
    size_table = _table(("√(w·h) px", "GTs", "share"), [(esc(k), _n(v), _pct(v, g)) for k, v in sizes.items()])
    size_chart = _chart(bar_chart(list(sizes), {"GTs": list(sizes.values())}, "GTs per size (√(w·h), letterboxed px)",
                                  ylabel="GTs", xlabel="px", rotate=False))
    cpl = doc["candidates_per_level"]
    sim = doc.get("positives_per_level_simulated")
    lv_rows = [[str(st), _n(cpl["classic"][i]), _n(cpl["ultralytics"][i])] + ([_n(sim[i])] if sim else [])
               for i, st in enumerate(s["strides"])]
    series = {"candidates classic": cpl["classic"], "candidates ultralytics": cpl["ultralytics"]}
    if sim:
        series["positives (simulated)"] = sim
    lv_table = _table(("stride", "candidates classic", "candidates ultralytics") + (("positives (simulated)",) if sim
                                                                                     else ()), lv_rows)
    lv_chart = _chart(bar_chart([f"stride {st}" for st in s["strides"]], series, "Anchor–GT pairs per level",
                                ylabel="pairs"))

    rows = doc.get("per_gt")
    note = "every GT" if rows is not None else "the flagged GTs (tiny, no candidate, DFL clamped, no simulated positive)"
    rows = rows if rows is not None else flagged
    cols = _geometry_columns(rows)
    data, files = _encode_rows(rows, cols)
    gt_inner, gt_data = _gt_table(cols, data, files, f"Rows: {note}. Click a column header to sort, type to filter.")
    worst = doc.get("worst_files", [])
    worst_html = ("<h3>Worst files</h3>" + _table(("file", "flagged GTs", "label errors"),
                                                  [(esc(w["file"]), _n(w["flagged_gts"]), _n(w["errors"]))
                                                   for w in worst[:20]])) if worst else ""
    sections = [
        ("overview", "Overview", _section("overview", "Overview", overview)),
        ("alerts", "Alerts", _section("alerts", "Alerts", f'<ul class="alerts">{"".join(alerts)}</ul>{worst_html}')),
        ("classes", "Classes", _section("classes", "Per class", f'<div class="grid2">{cls_table}{cls_chart}</div>',
                                        len(classes))),
        ("sizes", "Sizes", _section("sizes", "Per size", f'<div class="grid2">{size_table}{size_chart}</div>')),
        ("levels", "Levels", _section("levels", "Per level", f'<div class="grid2">{lv_table}{lv_chart}</div>')),
        ("gallery", "Gallery", _section("gallery", "Gallery: the worst GTs", _gallery(
            gallery, s["strides"], "Geometry only: rings are the anchor centres inside the (enlarged) box; "
                                   "positives need a model (scan --model).", known=False), len(gallery))),
        ("gts", "GTs", _section("gts", "Per GT", gt_inner, len(rows))),
    ]
    return sections, gt_data


# ------------------------------------------------------------------------------------------------ scan --model / run
STAT_COLUMNS = (("GTs", "gts", "{:,}"), ("no positive %", "no_positive_pct", "{:.1f}"),
                ("zero-weight %", "zero_weight_pct", "{:.1f}"), ("positives / GT", "positives_per_gt", "{:.2f}"),
                ("mean score", "mean_target_score", "{:.3f}"), ("mean IoU", "mean_iou", "{:.3f}"))


def _stats_table(first: str, groups: dict) -> str:
    return _table((first,) + tuple(h for h, _, _ in STAT_COLUMNS),
                  [(esc(name),) + tuple("—" if st.get(k) is None else fmt.format(st[k]) for _, k, fmt in STAT_COLUMNS)
                   for name, st in groups.items()])


def _stats_charts(groups: dict, what: str) -> str:
    from .charts import bar_chart

    if not groups:
        return ""
    names = list(groups)[:30]

    def pick(k: str, scale: float = 1.0) -> list:
        return [None if groups[n].get(k) is None else groups[n][k] * scale for n in names]

    a = bar_chart(names, {"no positive": pick("no_positive_pct", 0.01), "zero-weight positives":
                          pick("zero_weight_pct", 0.01)}, f"Starved GTs per {what}", percent=True, ylabel="GTs")
    b = bar_chart(names, {"mean target score": pick("mean_target_score"), "mean IoU": pick("mean_iou")},
                  f"Positives' quality per {what}")
    return _chart(a) + _chart(b)


def _model_sections(doc: dict, gallery: Sequence[GalleryItem], run: bool) -> tuple[list, str]:
    m = doc.get("meta", {})
    rows = doc.get("per_gt", [])
    g = doc["gts"]
    no_pos = [r for r in rows if r["positives"] == 0]
    zero_w = [r for r in rows if r["positives"] > 0 and r["weighted_positives"] == 0]
    strides = m.get("strides") or [8, 16, 32]
    tiny = [r for r in rows if min(r["box"][2] - r["box"][0], r["box"][3] - r["box"][1]) < min(strides)]
    loss = doc.get("loss_mean") or {}
    cards = [("images", doc.get("images")), ("GTs", g), ("no positive", len(no_pos)),
             ("zero-weight positives", len(zero_w)), ("tiny GTs", len(tiny))]
    if "images_run" in doc:
        cards.insert(1, ("images through the model", doc["images_run"]))
    cards += [(f"loss {k}{' (mean of batches)' if not run else ''}", v) for k, v in loss.items() if v is not None]
    a = doc.get("all", {})
    cards += [("positives / GT", a.get("positives_per_gt")), ("mean target score", a.get("mean_target_score")),
              ("mean IoU", a.get("mean_iou"))]
    setting = " · ".join(f"{k} {esc(v if not isinstance(v, list) else '×'.join(map(str, v)))}"
                         for k, v in m.items() if k in ("model", "arch", "imgsz", "strides", "device", "assigner",
                                                         "profile", "topk", "alpha", "beta", "heads", "split"))
    overview = _cards(cards) + (f'<p class="settings">{setting}</p>' if setting else "")
    if m.get("note"):
        overview += f'<p class="settings">{esc(m["note"])}</p>'

    def where(sel: list[dict]) -> list[str]:
        return [f"{r['file']}:{r['line']}  {r.get('name', r['class'])}  {_w(r):.1f}×{_h(r):.1f} px  "
                f"{r['positives']} positive(s), Σ score {r['score_sum']}" for r in sel[: ALERT_ROWS + 1]]

    errs = doc.get("errors", [])
    alerts = []
    if doc.get("partial"):
        alerts.append(_alert("bad", "partial", 1, "PARTIAL: interrupted; the numbers cover the images done so far"))
    if not run:
        alerts.append(_alert("bad" if errs else "ok", "corrupt", len(errs), "problems: corrupt label files, missing "
                             "or unreadable images, skipped lines",
                             [f"{e['file']}{':' + str(e['line']) if e.get('line') else ''}: {e['reason']}"
                              for e in errs[: ALERT_ROWS + 1]]))
    alerts.append(_alert("bad" if no_pos else "ok", "no_positive", len(no_pos), "GTs with no positive anchor: "
                         "nothing teaches the model to find them", where(no_pos)))
    alerts.append(_alert("bad" if zero_w else "ok", "zero_weight", len(zero_w), "GTs whose positives all carry "
                         "target score < 0.01: positives in name only", where(zero_w)))
    alerts.append(_alert("warn" if tiny else "ok", "tiny", len(tiny), f"tiny GTs: a side shorter than the smallest "
                         f"stride ({min(strides)} px)", where(tiny)))
    by_class, by_size = doc.get("by_class", {}), doc.get("by_size", {})
    worst_img = doc.get("worst_images", [])
    worst_html = ("<h3>Images with the most starved GTs</h3>" + _table(
        ("label file", "GTs", "starved"), [(esc(d["file"]), _n(d["gts"]), _n(d["starved"])) for d in worst_img]))\
        if worst_img else ""
    cols = MODEL_COLUMNS
    data, files = _encode_rows(rows, cols)
    gt_inner, gt_data = _gt_table(cols, data, files, "Every GT. Σ score: the sum of its positives' target scores; "
                                  "weighted: positives with score ≥ 0.01. Click a column header to sort, type to filter.")
    sections = [
        ("overview", "Overview", _section("overview", "Overview", overview)),
        ("alerts", "Alerts", _section("alerts", "Alerts", f'<ul class="alerts">{"".join(alerts)}</ul>{worst_html}')),
        ("classes", "Classes", _section("classes", "Per class", _stats_table("class", by_class) + '<div class="grid2 even">'
                                        + _stats_charts(by_class, "class") + "</div>", len(by_class))),
        ("sizes", "Sizes", _section("sizes", "Per size (letterboxed px: small < 32², medium < 96²)",
                                    _stats_table("size", by_size) + '<div class="grid2 even">' + _stats_charts(by_size, "size")
                                    + "</div>")),
        ("gallery", "Gallery", _section("gallery", "Gallery: the worst GTs", _gallery(
            gallery, strides, empty="No crops in this report." if doc.get("worst_gts") else
            "No GT needs a look: none is starved."), len(gallery))),
        ("gts", "GTs", _section("gts", "Per GT", gt_inner, len(rows))),
    ]
    return sections, gt_data


# ------------------------------------------------------------------------------------------------ public
def scan_html(doc: dict, gallery: Sequence[GalleryItem] = ()) -> str:
    """The page of a scan report: ``yolotal.scanning.report`` (geometry; ``per_gt`` rows when present, else the
    flagged GTs) or the ``scan --model`` summary (``meta``, ``by_class``, ``per_gt``...)."""
    if "flag_counts" in doc:
        sections, data = _geometry_sections(doc, gallery)
        return _page("yolotal scan · dataset audit", f"{doc['dataset']} · {doc['gts']:,} GTs", sections, data)
    sections, data = _model_sections(doc, gallery, run=False)
    m = doc.get("meta", {})
    sub = f"{m.get('dataset', '')} ({m.get('split', '')}) · model {m.get('model', '')} · {doc['gts']:,} GTs"
    return _page("yolotal scan --model · dataset audit", sub, sections, data)


def run_html(doc: dict, gallery: Sequence[GalleryItem] = ()) -> str:
    """The page of an assignment run (:func:`yolotal.render.run_rows.run_doc`)."""
    sections, data = _model_sections(doc, gallery, run=True)
    m = doc.get("meta", {})
    sub = f"{m.get('dataset', '')} · {m.get('assigner', '')} ({m.get('profile', '')}) · {doc['gts']:,} GTs"
    return _page("yolotal assign · assignment run", sub, sections, data)


def _write(text: str, path: str | Path) -> Path:
    from ..atomic import atomic_write

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("HTML directory does not exist", str(parent))
    if p.is_dir():
        raise InputError("is a directory, not an HTML file", str(p))
    data = text.encode("utf-8")
    try:
        return atomic_write(p, lambda fh: fh.write(data))
    except OSError as e:
        raise InputError(f"cannot write the HTML report ({e.strerror or e.__class__.__name__})", str(p)) from None


def write_scan_html(doc: dict, path: str | Path, *, gallery: Sequence[GalleryItem] = ()) -> Path:
    """Write a scan report (geometry or --model doc) as one self-contained HTML file, atomically."""
    return _write(scan_html(doc, gallery), path)


def write_geometry_scan_html(res, path: str | Path, *, gallery: int = 24, top: int = 20) -> Path:
    """A geometry scan (:class:`yolotal.scanning.ScanResult`) as HTML: its report, every GT's row and the crops of
    the ``gallery`` worst GTs."""
    from ..scanning import report
    from .gallery import gallery_from_scan

    doc = report(res, top)
    doc["per_gt"] = scan_gt_rows(res)
    return write_scan_html(doc, path, gallery=gallery_from_scan(res, gallery) if gallery else ())


def write_run_html(trace, path: str | Path, *, gallery: Sequence[GalleryItem] | int = 24,
                   names: list[str] | None = None, doc: dict | None = None) -> Path:
    """An assignment run (a :class:`yolotal.pipeline.Trace`) as HTML: per class / size tables, every GT's row
    and the crops of the worst GTs (``gallery``: how many, or the items themselves). ``doc``: the run's
    :func:`~yolotal.render.run_rows.run_doc` when the caller already has it."""
    from .gallery import gallery_from_trace
    from .run_rows import run_doc

    doc = doc if doc is not None else run_doc(trace, names)
    items = gallery_from_trace(trace, gallery, rows=doc["per_gt"]) if isinstance(gallery, int) else list(gallery)
    return _write(run_html(doc, items), path)


def health_html(rows: list[dict], title: str = "") -> str:
    """The health curves (the PNG's panels, one SVG each) and the per-epoch table."""
    from .charts import GROUP_COLOURS, GROUP_LABELS, line_chart
    from .health import GROUPS, PANELS, epochs_of, panel_values, share

    xs = epochs_of(rows)
    charts = []
    for k in range(len(PANELS)):
        name, values, pct = panel_values(rows, k)
        charts.append(_chart(line_chart(xs, {g: values(g) for g in GROUPS}, name, percent=pct,
                                        colours=GROUP_COLOURS, labels=GROUP_LABELS)))

    def p(v):
        return "—" if v is None else f"{100 * v:.1f}%"

    table = _table(("epoch", "batches", "GTs", "no positive", "starved", "positives / GT", "score", "IoU"),
                   [(_n(r.get("epoch")), _n(r.get("batches")), _n(r.get("all/gts")), p(share(r, "all", "no_pos")),
                     p(share(r, "all", "starved")), _n(r.get("all/pos_per_gt")), _n(r.get("all/score")),
                     _n(r.get("all/iou"))) for r in rows])
    last = rows[-1] if rows else {}
    cards = _cards([("epochs", len(rows)), ("GTs (last epoch)", last.get("all/gts")),
                    ("no positive (last)", p(share(last, "all", "no_pos"))),
                    ("starved (last)", p(share(last, "all", "starved")))])
    sections = [
        ("overview", "Overview", _section("overview", "Overview", cards + '<p class="settings">starved = every positive '
                                          "of the GT has target score < 0.01; size buckets on the GT's area in "
                                          "training px</p>")),
        ("curves", "Curves", _section("curves", "Per epoch", '<div class="gallery" style="grid-template-columns:'
                                      'repeat(auto-fill,minmax(380px,1fr))">' + "".join(charts) + "</div>",
                                      len(charts))),
        ("epochs", "Table", _section("epochs", "All GTs per epoch", table, len(rows))),
    ]
    return _page(title or "yolotal health · assignment during training", f"{len(rows)} epoch(s)", sections)


def write_health_html(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """``yolotal health --html``: the same panels as the PNG, as inline SVG in one self-contained page."""
    return _write(health_html(rows, title), path)
