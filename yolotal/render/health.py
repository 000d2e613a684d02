"""`yolotal health`: the per-epoch assignment-health rows as a terminal table, a PNG of curves (matplotlib) and
the same panels in an HTML page (:func:`yolotal.render.html.write_health_html`)."""

from __future__ import annotations

from pathlib import Path

from rich import box as rbox
from rich.console import Console
from rich.table import Table

from ..atomic import atomic_write
from ..health import BUCKETS
from .fmt import fit

GROUPS = ("all", *BUCKETS)


def share(row: dict, group: str, stat: str) -> float | None:
    """stat / gts of a group in one row, None without GTs."""
    gts = row.get(f"{group}/gts")
    v = row.get(f"{group}/{stat}")
    return v / gts if gts and v is not None else None


def _f(v, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f}%" if pct else (f"{v:.3f}" if isinstance(v, float) else str(v))


def render_health(rows: list[dict], con: Console, source: str) -> None:
    """One table of the whole run per epoch, then the last epoch by size bucket, level and class."""
    con.print(f"{source}: {len(rows)} epoch(s) · starved = every positive of the GT has target score < 0.01")
    t = Table(box=rbox.SIMPLE_HEAD, title="All GTs per epoch")
    for c in ("epoch", "batches", "GTs", "no pos", "starved", "pos/GT", "score", "IoU",
              "no pos % s·m·l", "starved % s·m·l"):
        t.add_column(c, justify="right")

    def sml(r, stat):
        return "·".join("—" if share(r, b, stat) is None else f"{100 * share(r, b, stat):.0f}" for b in BUCKETS)

    for r in rows:
        t.add_row(str(r.get("epoch")), str(r.get("batches")), _f(r.get("all/gts")),
                  _f(share(r, "all", "no_pos"), True), _f(share(r, "all", "starved"), True),
                  _f(r.get("all/pos_per_gt")), _f(r.get("all/score")), _f(r.get("all/iou")),
                  sml(r, "no_pos"), sml(r, "starved"))
    con.print(fit(con, t, ("batches", "no pos % s·m·l", "starved % s·m·l")))
    if rows and rows[0].get("o2o/all/gts") is not None:  # an end-to-end model: its one-to-one branch too
        t = Table(box=rbox.SIMPLE_HEAD, title="One-to-one branch (end-to-end model) per epoch")
        for c in ("epoch", "GTs", "no pos", "starved", "pos/GT", "score", "IoU"):
            t.add_column(c, justify="right")
        for r in rows:
            t.add_row(str(r.get("epoch")), _f(r.get("o2o/all/gts")), _f(share(r, "o2o/all", "no_pos"), True),
                      _f(share(r, "o2o/all", "starved"), True), _f(r.get("o2o/all/pos_per_gt")),
                      _f(r.get("o2o/all/score")), _f(r.get("o2o/all/iou")))
        con.print(fit(con, t))
    if not rows:
        return
    last = rows[-1]
    groups = [k[: -len("/positives")] for k in last if k.endswith("/positives")]
    t = Table(box=rbox.SIMPLE_HEAD, title=f"Epoch {last.get('epoch')} by size bucket (training px), level and class")
    for c in ("group", "GTs", "no positive", "starved", "positives", "pos/GT", "score", "IoU"):
        t.add_column(c, justify="right" if c != "group" else "left")
    for g in groups:
        if g == "all":
            continue
        t.add_row(g, _f(last.get(f"{g}/gts")), _f(share(last, g, "no_pos"), True),
                  _f(share(last, g, "starved"), True), _f(last.get(f"{g}/positives")),
                  _f(last.get(f"{g}/pos_per_gt")), _f(last.get(f"{g}/score")), _f(last.get(f"{g}/iou")))
    con.print(fit(con, t, ("positives",)))


PANELS = (  # title, value of (row, group), percent axis
    ("GTs with no positive", lambda r, g: share(r, g, "no_pos"), True),
    ("GTs starved (all positives score < 0.01)", lambda r, g: share(r, g, "starved"), True),
    ("positives per GT", lambda r, g: r.get(f"{g}/pos_per_gt"), False),
    ("mean target score of positives", lambda r, g: r.get(f"{g}/score"), False),
    ("mean IoU of positives", lambda r, g: r.get(f"{g}/iou"), False),
)


def epochs_of(rows: list[dict]) -> list[int]:
    """The x axis: each row's epoch (its position, from 1, where the CSV has none)."""
    return [r.get("epoch") if r.get("epoch") is not None else i + 1 for i, r in enumerate(rows)]


def panel_values(rows: list[dict], k: int) -> tuple[str, list, bool]:
    """Panel k as (title, values of a group -> list over the rows, percent axis)."""
    name, fn, pct = PANELS[k]
    return name, (lambda g: [fn(r, g) for r in rows]), pct


def health_figure(rows: list[dict], title: str = ""):
    """One matplotlib figure: a panel per measure (epoch on x), a line per size bucket and all GTs, one legend."""
    from .charts import panels_figure

    return panels_figure(epochs_of(rows), [panel_values(rows, k) for k in range(len(PANELS))], GROUPS,
                         title or "assignment health over epochs")


def draw_health_png(rows: list[dict], path: Path, title: str = "") -> Path:
    """Curves over epochs (matplotlib), one panel per quantity, one line per size bucket (and all GTs); written
    atomically."""
    from .charts import png

    data = png(health_figure(rows, title))
    return atomic_write(Path(path), lambda fh: fh.write(data))
