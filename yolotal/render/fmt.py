"""How every renderer writes numbers and fits tables to the console width.

Coordinates and sizes print one way everywhere: fixed decimals, never ``-0`` and never an exponent
(``1267.0``, not ``1.27e+03``). Tables never ellipsize a cell: long text wraps, and when even the narrowest
layout is wider than the console, the columns a table marks as secondary are dropped (and a dim line says so).
"""

from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def num(v: float, decimals: int = 1) -> str:
    """A coordinate or size: ``decimals`` fixed decimals, no exponent, no negative zero."""
    s = f"{float(v):.{decimals}f}"
    if s.startswith("-") and float(s) == 0.0:
        s = s[1:]
    return s


def short(v: float, decimals: int = 4) -> str:
    """Like ``num`` with trailing zeros (and a bare point) removed: 0.5, 4, 636, 12.25."""
    s = num(v, decimals)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def score(v: float) -> str:
    """A score or overlap in [0, 1]: 4 decimals, or 3 significant digits in e-notation below 1e-4 so that a tiny
    but non-zero value (4e-10) is not printed as 0.0000 next to t."""
    v = float(v)
    if v != 0.0 and abs(v) < 1e-4:
        return f"{v:.3g}"
    return f"{v:.4f}"


def size(v: float) -> str:
    """A length in px with three significant digits but no exponent: 1267, 629, 38.4, 6.25."""
    v = float(v)
    return num(v, 0 if abs(v) >= 99.95 else 1 if abs(v) >= 9.995 else 2)


def box(b: Iterable[float], decimals: int = 1) -> str:
    """An xyxy box: (x1,y1,x2,y2)."""
    return "(" + ",".join(num(v, decimals) for v in b) + ")"


def point(p: Iterable[float], decimals: int = 4) -> str:
    """A point (x,y) with trailing zeros dropped: (0.5,0.5), (636,636)."""
    return "(" + ",".join(short(v, decimals) for v in p) + ")"


def fit(con: Console, tab: Table, secondary: Iterable[str] = ()) -> Table:
    """Make ``tab`` fit ``con``'s width without cutting a number: a column is never narrower than its longest
    word (a number is one word), so only text wraps, at spaces. Widths are chosen here (the column with the
    most room to wrap gives up a character at a time) because rich's own collapse narrows the widest columns
    regardless of their content. While even the narrowest layout is too wide, the ``secondary`` columns (by header,
    last first) are dropped and the caption says which."""
    if not all(hasattr(tab, a) for a in ("_measure_column", "_get_padding_width", "_extra_width")):
        for c in tab.columns:  # a rich without these internals (written against rich 15): fold, never "…"
            c.overflow = "fold"
        return tab
    dropped: list[str] = []
    while True:
        ms = [tab._measure_column(con, con.options, c) for c in tab.columns]
        pads = [tab._get_padding_width(c._index) for c in tab.columns]
        widths = [m.maximum for m in ms]
        lows = [m.minimum for m in ms]
        if sum(lows) + tab._extra_width <= con.width or not _drop(tab, secondary, dropped):
            break
    total = sum(widths) + tab._extra_width
    if total > con.width:  # too wide as it is: narrow the widest column that has room, one character at a time
        while total > con.width:
            slack = [k for k in range(len(widths)) if widths[k] > lows[k]]
            if not slack:
                break
            k = max(slack, key=lambda i: (widths[i] - lows[i], widths[i]))  # the most room to wrap first
            widths[k] -= 1
            total -= 1
        for c, w, p in zip(tab.columns, widths, pads):  # fold, never "…", should a last resort still be needed
            c.width, c.no_wrap, c.overflow = max(w - p, 1), False, "fold"
    if dropped:
        note = Text(f"not shown at {con.width} columns: {', '.join(reversed(dropped))} (set COLUMNS wider)", style="dim")
        tab.caption = note if tab.caption is None else Text.assemble(str(tab.caption), " · ", note)
        tab.caption_justify = "left"
    return tab


def _drop(tab: Table, secondary: Iterable[str], dropped: list[str]) -> bool:
    """Remove the last secondary column still in the table; False when none is left."""
    for name in reversed(list(secondary)):
        for k, c in enumerate(tab.columns):
            if str(c.header) == name:
                tab.columns.pop(k)
                for i, col in enumerate(tab.columns):
                    col._index = i
                dropped.append(name)
                return True
    return False
