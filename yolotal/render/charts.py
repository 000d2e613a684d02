"""Charts drawn with matplotlib: inline SVG for the HTML reports, PNG for ``yolotal health``.

Every chart is a ``matplotlib.figure.Figure`` built without pyplot (no global state, no GUI backend), so
rendering is safe inside a library call. ``svg`` returns the figure as an ``<svg>`` element ready to inline
(text kept as text, no external reference, stable ids), ``png`` as PNG bytes.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

# one palette for every chart: the HTML's CSS uses the same colours for its legends
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f")
GROUP_COLOURS = {"all": "#222222", "small": "#d62728", "medium": "#1f77b4", "large": "#2ca02c"}
GROUP_LABELS = {"all": "all GTs", "small": "small (area < 32² px)", "medium": "medium (< 96² px)", "large": "large"}
INK, GRID = "#333333", "#e3e3e3"
NICE = [1, 2, 2.5, 5, 10]  # tick steps (× a power of ten)


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _style(ax, title: str, ylabel: str = "", xlabel: str = "") -> None:
    ax.set_title(title, loc="left", fontsize=10.5, color=INK, pad=6)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9, color=INK)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9, color=INK)
    ax.tick_params(labelsize=8.5, colors=INK, length=3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#999999")
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def bar_chart(categories: Sequence[str], series: dict[str, Sequence[float | None]], title: str, *,
              ylabel: str = "", xlabel: str = "", percent: bool = False, size: tuple[float, float] = (6.0, 2.5),
              rotate: bool | None = None):
    """Grouped vertical bars: one group per category, one bar per series (None = no bar). percent: values
    are shares in [0, 1] and the axis reads in %."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = _figure(*size)
    ax = fig.add_subplot()
    n = max(len(series), 1)
    width = 0.8 / n
    xs = list(range(len(categories)))
    for k, (name, vals) in enumerate(series.items()):
        pos = [x - 0.4 + width * (k + 0.5) for x in xs]
        ax.bar(pos, [0.0 if v is None else float(v) for v in vals], width * 0.92, label=name,
               color=COLOURS[k % len(COLOURS)], linewidth=0)
    ax.set_xticks(xs, [str(c) for c in categories])
    if rotate is None:
        rotate = len(categories) > 8 or max((len(str(c)) for c in categories), default=0) * len(categories) > 70
    if rotate:
        for t in ax.get_xticklabels():
            t.set_rotation(45)
            t.set_ha("right")
    ax.set_xlim(-0.6, len(categories) - 0.4)
    top = max((float(v) for vals in series.values() for v in vals if v is not None), default=0.0)
    ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)  # counts and shares start at 0, an empty chart reads 0..1
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=NICE, integer=not percent and all(
        v is None or float(v).is_integer() for vals in series.values() for v in vals)))
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    _style(ax, title, ylabel, xlabel)
    if len(series) > 1:
        ax.legend(fontsize=8.5, frameon=False, loc="best")
    return fig


def line_panel(ax, xs: Sequence[float], series: dict[str, Sequence[float | None]], title: str, percent: bool,
               colours: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> None:
    """Curves on one axis: x (e.g. epochs) against each series, gaps where a value is None."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    for k, (name, vals) in enumerate(series.items()):
        pts = [(x, v) for x, v in zip(xs, vals) if v is not None]
        if not pts:
            continue
        colour = (colours or {}).get(name, COLOURS[k % len(COLOURS)])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3.5, linewidth=1.8,
                color=colour, label=(labels or {}).get(name, name))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=NICE, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=NICE))
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax.set_ylim(bottom=0)
    _style(ax, title, xlabel="epoch")


def line_chart(xs: Sequence[float], series: dict[str, Sequence[float | None]], title: str, *, percent: bool = False,
               colours: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               size: tuple[float, float] = (4.6, 2.8)):
    """One panel of curves as its own figure, with a legend."""
    fig = _figure(*size)
    ax = fig.add_subplot()
    line_panel(ax, xs, series, title, percent, colours, labels)
    if any(any(v is not None for v in s) for s in series.values()):
        ax.legend(fontsize=8, frameon=False)
    return fig


def panels_figure(xs: Sequence[float], panels: Sequence[tuple[str, Callable[[str], list], bool]],
                  groups: Sequence[str], title: str = "", cols: int = 3):
    """Several panels of curves in one figure (one per measure) and one shared legend in a spare cell.

    panels: (title, values of a group -> list over xs, percent axis)."""
    n = len(panels)
    cells = n + 1
    rows = (cells + cols - 1) // cols
    fig = _figure(4.4 * cols, 3.0 * rows)
    if title:
        fig.suptitle(title, fontsize=12, color=INK, x=0.01, ha="left")
    grid = fig.add_gridspec(rows, cols)
    for k, (name, values, pct) in enumerate(panels):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        line_panel(ax, xs, {g: values(g) for g in groups}, name, pct, GROUP_COLOURS, GROUP_LABELS)
    legend = fig.add_subplot(grid[n // cols, n % cols])
    legend.axis("off")
    handles = [h for ax in fig.axes[:1] for h in ax.get_lines()]
    if handles:
        legend.legend(handles=handles, loc="center left", frameon=False, fontsize=10, title="GTs", title_fontsize=10)
    return fig


def svg(fig) -> str:
    """The figure as an inline ``<svg>`` element: text as text, stable ids, scales to its container's width."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "yolotal", "svg.image_inline": True}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    start = text.index("<svg")
    out = text[start:]
    # the viewBox keeps the aspect ratio; the width comes from the page's CSS
    head_end = out.index(">")
    head = out[:head_end]
    import re

    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    out = head + ' class="chart" role="img"' + out[head_end:]
    return out.strip()


def png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
