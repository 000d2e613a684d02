"""Terminal view of ``scan --model``: reads the report dict only."""

from __future__ import annotations

from rich import box as rbox
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .fmt import fit, size

COLUMNS = (("GTs", "gts", "{:,}"), ("no pos %", "no_positive_pct", "{:.1f}"), ("0-w %", "zero_weight_pct", "{:.1f}"),
           ("pos/GT", "positives_per_gt", "{:.2f}"), ("score", "mean_target_score", "{:.3f}"),
           ("IoU", "mean_iou", "{:.3f}"))


def _table(title: str, first: str, rows: dict) -> Table:
    t = Table(title=title, title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    t.add_column(first, no_wrap=True, overflow="fold")
    for head, _, _ in COLUMNS:
        t.add_column(head, justify="right", no_wrap=True)
    for name, st in rows.items():
        t.add_row(str(name), *("—" if st[key] is None else fmt.format(st[key]) for _, key, fmt in COLUMNS))
    return t


def render_model_scan(doc: dict, con: Console) -> None:
    m = doc["meta"]
    con.print(Text(f"{m['dataset']} ({m['split']}): {doc['images']:,} images · {doc['gts']:,} GTs · model "
                   f"{m['model']} ({m['arch']}, nc {m['nc']}) at imgsz {m['imgsz'][0]}×{m['imgsz'][1]} on "
                   f"{m['device']} · {m['assigner']} ({m['profile']}), topk {m['topk']}", style="bold"))
    if doc["partial"]:
        con.print(Text("PARTIAL: interrupted; the numbers cover the images done so far", style="bold red"))
    con.print(Text("no pos = GTs with no positive anchor; 0-w = GTs whose positives all have target score < 0.01; "
                   "pos/GT = final positives per GT; score = mean target score of positives; IoU = mean IoU of the "
                   "positives' predicted boxes with their GT", style="dim"))
    con.print(fit(con, _table("All GTs", "", {"all": doc["all"]})))
    con.print(fit(con, _table("Per size (letterboxed px: small < 32², medium < 96²)", "size", doc["by_size"])))
    con.print(fit(con, _table("Per class", "class", doc["by_class"])))
    if doc["worst_gts"]:
        t = Table(title=f"Worst GTs (first {len(doc['worst_gts'])})", title_justify="left", box=rbox.SIMPLE_HEAD,
                  pad_edge=False)
        for c, j in (("file:line", "left"), ("class", "left"), ("w×h px", "right"), ("pos", "right"),
                     ("Σ score", "right"), ("why", "left")):
            t.add_column(c, justify=j, overflow="fold")
        for r in doc["worst_gts"]:
            b = r["box"]
            why = ", ".join(r["flags"]) or "low total target score"
            t.add_row(f"{r['file']}:{r['line']}", r["name"], f"{size(b[2] - b[0])}×{size(b[3] - b[1])}",
                      str(r["positives"]), f"{r['score_sum']:.3f}", why)
        con.print(fit(con, t))
    if doc["worst_images"]:
        t = Table(title="Images with the most starved GTs", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c, j in (("label file", "left"), ("GTs", "right"), ("starved", "right")):
            t.add_column(c, justify=j, overflow="fold")
        for d in doc["worst_images"]:
            t.add_row(d["file"], str(d["gts"]), str(d["starved"]))
        con.print(fit(con, t))
    if doc["errors"]:
        con.print(Text(f"{len(doc['errors'])} problem(s) (label lines skipped, images missing or unreadable):",
                       style="bold yellow"))
        for e in doc["errors"][:10]:
            con.print(f"  {e['file']}{':' + str(e['line']) if e.get('line') else ''}: {e['reason']}", soft_wrap=True)
