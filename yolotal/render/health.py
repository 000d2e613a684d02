"""`yolotal health`: the per-epoch assignment-health rows as a terminal table and a PNG of curves (Pillow)."""

from __future__ import annotations

from pathlib import Path

from rich import box as rbox
from rich.console import Console
from rich.table import Table

from ..atomic import atomic_write
from ..health import BUCKETS
from .fmt import fit

GROUPS = ("all", *BUCKETS)
COLOURS = {"all": (20, 20, 20), "small": (214, 39, 40), "medium": (31, 119, 180), "large": (44, 160, 44)}


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
PW, PH, ML, MR, MT, MB = 380, 230, 52, 14, 28, 30


def draw_health_png(rows: list[dict], path: Path, title: str = "") -> Path:
    """Curves over epochs, one panel per quantity, one line per size bucket (and all GTs)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    cols = 3
    n_rows = (len(PANELS) + 1 + cols - 1) // cols  # + a legend cell
    img = Image.new("RGB", (cols * PW, n_rows * PH + 24), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((8, 6), title or "assignment health over epochs", fill=(0, 0, 0), font=font)
    epochs = [r.get("epoch") or i + 1 for i, r in enumerate(rows)]
    for k, (name, fn, pct) in enumerate(PANELS):
        x0, y0 = (k % cols) * PW, 24 + (k // cols) * PH
        _panel(d, font, x0, y0, name, epochs, {g: [fn(r, g) for r in rows] for g in GROUPS}, pct)
    lx, ly = (len(PANELS) % cols) * PW + 20, 24 + (len(PANELS) // cols) * PH + 40
    labels = {"all": "all GTs", "small": "small (area < 32x32 px)", "medium": "medium (< 96x96 px)", "large": "large"}
    for i, g in enumerate(GROUPS):
        d.line((lx, ly + 18 * i + 6, lx + 30, ly + 18 * i + 6), fill=COLOURS[g], width=3)
        d.text((lx + 38, ly + 18 * i), labels[g], fill=(0, 0, 0), font=font)
    d.text((lx, ly + 18 * len(GROUPS) + 8), "x axis: epoch", fill=(90, 90, 90), font=font)
    path = Path(path)

    def write(fh) -> None:
        img.save(fh, format="PNG")

    return atomic_write(path, write)


def _panel(d, font, x0: int, y0: int, name: str, epochs: list, series: dict, pct: bool) -> None:
    left, top, right, bottom = x0 + ML, y0 + MT, x0 + PW - MR, y0 + PH - MB
    d.text((x0 + ML, y0 + 8), name, fill=(0, 0, 0), font=font)
    d.rectangle((left, top, right, bottom), outline=(160, 160, 160))
    vals = [v for s in series.values() for v in s if v is not None]
    hi = max(vals) if vals else 1.0
    hi = (1.0 if pct and hi > 0.5 else hi * 1.1) or 1.0
    e_lo, e_hi = (min(epochs), max(epochs)) if epochs else (0, 1)
    span = max(e_hi - e_lo, 1)

    def xy(e, v):
        return left + (right - left) * (e - e_lo) / span, bottom - (bottom - top) * v / hi

    for f in (0.0, 0.5, 1.0):
        y = bottom - (bottom - top) * f
        d.line((left, y, right, y), fill=(225, 225, 225))
        d.text((x0 + 4, y - 6), f"{100 * hi * f:.0f}%" if pct else f"{hi * f:.2g}", fill=(60, 60, 60), font=font)
    for e in sorted(set(epochs)):
        x, _ = xy(e, 0)
        d.text((x - 3, bottom + 6), str(e), fill=(60, 60, 60), font=font)
    for g, s in series.items():
        pts = [xy(e, v) for e, v in zip(epochs, s) if v is not None]
        if len(pts) > 1:
            d.line(pts, fill=COLOURS[g], width=2)
        for x, y in pts:
            d.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=COLOURS[g])
