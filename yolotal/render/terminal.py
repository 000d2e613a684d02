"""Rich terminal views of a :class:`~yolotal.pipeline.Trace`. Reads the trace; computes nothing new
beyond indexing and summaries of what the trace holds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich import box as rbox
from rich.text import Text

from .. import profiles
from ..core.anchors import Level, cell_of
from ..pipeline import Trace
from .fmt import box as fmt_box, fit, num, point, score, size

FULL_LIMIT = 1000  # tensors with more elements print as a summary unless --full (torch's own threshold)
PRINT_LIMIT = 2_000_000  # not even --full prints more elements than this
SUMMARY_ROWS = 40  # per-GT rows shown when the dense stages were summarised (flagged GTs first)
NEAR_ZERO = 0.01  # a positive whose target score is below this carries near-zero weight in the box/DFL/cls loss
SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
COLORS = ["red", "green", "yellow", "blue", "magenta", "cyan", "bright_red", "bright_green", "bright_yellow",
          "bright_blue", "bright_magenta", "bright_cyan", "orange1", "purple", "spring_green2", "deep_pink2"]


def gt_symbol(j: int) -> str:
    """One character per GT in the grids (0-9 a-z A-Z); past 62 GTs, the index itself."""
    return SYMBOLS[j] if j < len(SYMBOLS) else str(j)


def gt_style(j: int) -> str:
    return COLORS[j % len(COLORS)]


def level_name(lv: Level) -> str:
    return f"L{lv.index}/s{lv.stride}"


# ------------------------------------------------------------------------------------------------ tensors
def tensor_text(t: torch.Tensor, full: bool = False) -> str:
    """torch's own print for small tensors (so the seed's run.log is reproduced), else a one-line summary.

    ``full`` prints bigger tensors whole, up to PRINT_LIMIT elements; beyond that only the summary (use
    --export to get the numbers).
    """
    if full and t.numel() > PRINT_LIMIT:
        return summary(t).replace("(--full prints it all)", f"(over {PRINT_LIMIT:,} elements: not printed in full; "
                                  "--export writes it)")
    if full or t.numel() <= FULL_LIMIT:
        if full:
            torch.set_printoptions(threshold=10**9)
        try:
            return str(t)
        finally:
            torch.set_printoptions(profile="default")
    return summary(t)


def summary(t: torch.Tensor) -> str:
    x = t.float() if t.dtype == torch.bool else t
    nz = int(torch.count_nonzero(t))
    if t.numel() == 0:
        return f"shape {tuple(t.shape)} {str(t.dtype).replace('torch.', '')} (empty)"
    return (
        f"shape {tuple(t.shape)} {str(t.dtype).replace('torch.', '')} · nonzero {nz}/{t.numel()} · "
        f"min {x.min().item():.6g} · max {x.max().item():.6g}  (--full prints it all)"
    )


def print_tensor(con: Console, name: str, t: torch.Tensor, what: str, full: bool) -> None:
    con.print(Text.assemble((f"{name}", "bold"), f"  {tuple(t.shape)}  ", (what, "dim")))
    con.print(tensor_text(t, full), markup=False, highlight=False)


def note(con: Console, msg: str) -> None:
    """How the inputs were read (geometry, model): informational, on the main output, wrapped to the console's
    width (COLUMNS) at spaces like the tables."""
    con.print(Text.assemble(("note: ", "bold cyan"), msg))


_WARN: dict = {"console": None, "seen": {}}  # where warnings go, and those already printed (in order)


def warnings_to(err: Console | None) -> None:
    """Send every warning of this run to ``err`` (the CLI's stderr console), each once; None = the console the
    renderer was given (library use)."""
    _WARN["console"], _WARN["seen"] = err, {}


def printed_warnings() -> list[str]:
    """The warnings printed since warnings_to, in order (walk --log writes them to the log too)."""
    return list(_WARN["seen"])


def warn(con: Console, msg: str) -> None:
    """A warning: on the stderr console when the CLI set one (warnings_to), printed once per run."""
    if msg in _WARN["seen"]:
        return
    _WARN["seen"][msg] = None
    (_WARN["console"] or con).print(Text.assemble(("warning: ", "bold yellow"), msg), soft_wrap=True)


# ------------------------------------------------------------------------------------------------ anchors
def render_anchors(trace: Trace, con: Console, level: int | None = None, full: bool = False) -> None:
    ap, st = trace["anchor_points"], trace["stride_tensor"]
    cfg = trace.config
    con.print(Text(f"imgsz {cfg.imgsz[0]}×{cfg.imgsz[1]} (h×w px) · strides {list(cfg.strides)} · "
                   f"{ap.shape[0]} anchors, one per grid cell at its centre (offset 0.5)"))
    con.print(Text("anchor_points are in grid units of their level; pixels = grid × stride", style="italic"))
    tab = Table(box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("level", "grid h×w", "anchors", "flat index", "first grid", "first px", "last grid", "last px"):
        tab.add_column(c, justify="right")
    for lv in trace.levels:
        f, l = ap[lv.start], ap[lv.stop - 1]
        tab.add_row(
            level_name(lv), f"{lv.h}×{lv.w}", str(lv.count), f"{lv.start}–{lv.stop - 1}",
            point(f), point(f * lv.stride), point(l), point(l * lv.stride),
        )
    con.print(fit(con, tab, ("first grid", "last grid")))
    if level is not None:
        lv = trace.levels[level]
        pts = ap[lv.start : lv.stop]
        con.print(Rule(f"{level_name(lv)}: anchor_points[{lv.start}:{lv.stop}] (grid units)"))
        con.print(tensor_text(pts, full), markup=False, highlight=False)
        con.print(Rule(f"{level_name(lv)}: stride_tensor[{lv.start}:{lv.stop}]"))
        con.print(tensor_text(st[lv.start : lv.stop], full), markup=False, highlight=False)


# ------------------------------------------------------------------------------------------------ decode
def default_anchors(trace: Trace, image: int) -> list[int]:
    """The best positive of each GT of the image, else the first anchor. Best = largest target score (TAL, ATSS),
    IoU with the matched GT (SimOTA); YOLOv5 has no per-anchor weight: the GT's first positive cell."""
    pt = trace["pos_triples"]
    pt = pt[pt[:, 0] == image]
    weight = None
    if "norm_align_metric" in trace:
        weight = trace["norm_align_metric"][image]
    elif "pred_ious" in trace:
        weight = trace["pred_ious"][image]
    elif "target_scores" in trace:
        weight = trace["target_scores"][image].amax(-1)
    out = []
    for j in range(trace.n_gts(image)):
        idx = pt[pt[:, 1] == j, 2]
        if idx.numel():
            out.append(int(idx[weight[idx].argmax()]) if weight is not None else int(idx.min()))
    return out or [0]


def render_decode(trace: Trace, con: Console, image: int, anchors: list[int]) -> None:
    reg_max = trace.config.reg_max
    dist = trace["pred_distri"][image]
    ltrb, grid_box, px_box = trace["pred_ltrb"][image], trace["pred_bboxes_grid"][image], trace["pred_bboxes"][image]
    ap = trace["anchor_points"]
    for a in anchors:
        lv, cx, cy = cell_of(trace.levels, a)
        con.print(Rule(f"image {image} · anchor {a}"))
        con.print(f"anchor {a} · {level_name(lv)} cell (x={cx}, y={cy}) · centre {point(ap[a])} grid = "
                  f"{point(ap[a] * lv.stride)} px")
        con.print(owner_text(trace, image, a))
        if reg_max > 1:
            probs = dist[a].view(4, reg_max).softmax(-1)
            tab = Table(title=f"DFL: softmax over {reg_max} bins per side; distance = Σ bin·p (grid units)")
            tab.add_column("side")
            tab.add_column("distribution (bins 0…" + str(reg_max - 1) + ")")
            tab.add_column("argmax", justify="right")
            tab.add_column("distance", justify="right")
            tab.add_column("px", justify="right")
            bars = " ▁▂▃▄▅▆▇█"
            for s, side in enumerate(("left", "top", "right", "bottom")):
                p = probs[s]
                top = float(p.max())
                spark = "".join(bars[min(8, int(round(float(v) / top * 8)))] for v in p)
                tab.add_row(side, spark, str(int(p.argmax())), f"{float(ltrb[a, s]):.4f}", f"{float(ltrb[a, s]) * lv.stride:.2f}")
            con.print(fit(con, tab, ("px",)))
        else:
            con.print(f"reg_max = 1: no distribution; ltrb = {[round(float(v), 4) for v in ltrb[a]]} grid units")
        con.print(f"decoded box xyxy: {fmt_box(grid_box[a])} grid units = {fmt_box(px_box[a])} px; "
                  f"size {num(px_box[a, 2] - px_box[a, 0])}×{num(px_box[a, 3] - px_box[a, 1])} px")
        sc = trace["pred_scores"][image, a]
        best = int(sc.argmax())
        con.print(f"class scores (sigmoid): best class {best} = {float(sc[best]):.4f}; max over classes tells the "
                  "confidence, there is no objectness channel")


# ------------------------------------------------------------------------------------------------ per-GT facts
@dataclass
class GTFacts:
    index: int
    cls: int
    box: list[float]
    origin: tuple[str, int]
    candidates: int
    positives: int
    zero_weight: int  # positives with target score < NEAR_ZERO
    levels: dict[str, int]
    best_iou: float
    max_metric: float
    picked_lost: int  # picked by its top-k but given to another GT
    best_weight: float = 0.0  # largest target score among its positives

    @property
    def short_flag(self) -> str:
        return {"": "", "NO POSITIVES": "NO POS", "ONLY NEAR-ZERO-WEIGHT POSITIVES": "0-W ONLY"}.get(self.flag, "NO CAND")

    @property
    def flag(self) -> str:
        if self.candidates == 0:
            return "NO CANDIDATES: no anchor centre inside the box"
        if self.positives == 0:
            return "NO POSITIVES"
        if self.zero_weight == self.positives:
            return "ONLY NEAR-ZERO-WEIGHT POSITIVES"
        return ""


def gt_facts(trace: Trace, image: int) -> list[GTFacts]:
    if trace.summarised:
        return _gt_facts_from_pairs(trace, image)
    n = trace.n_gts(image)
    gb, gl = trace["gt_bboxes"][image], trace["gt_labels"][image]
    inb, mask_gt = trace["mask_in_gts"][image], trace["mask_gt"][image]
    ov, am = trace["overlaps"][image], trace["align_metric"][image]
    mp, mpt = trace["mask_pos"][image], trace["mask_pos_topk"][image]
    ns = trace["norm_align_metric"][image]  # (A,) target score of each anchor (its GT's)
    out = []
    for j in range(n):
        cand = inb[j] & mask_gt[j].bool()
        pos = torch.nonzero(mp[j]).flatten()
        levels: dict[str, int] = {}
        for a in pos.tolist():
            name = f"s{cell_of(trace.levels, a)[0].stride}"
            levels[name] = levels.get(name, 0) + 1
        out.append(GTFacts(
            index=j, cls=int(gl[j, 0]), box=[float(v) for v in gb[j]], origin=trace.gt_origin[image][j],
            candidates=int(cand.sum()), positives=int(pos.numel()),
            zero_weight=int((ns[pos] < NEAR_ZERO).sum()) if pos.numel() else 0,
            levels=levels, best_iou=float(ov[j].max()) if cand.any() else 0.0,
            max_metric=float(am[j].max()) if cand.any() else 0.0,
            picked_lost=int((mpt[j] & ~mp[j]).sum()),
            best_weight=float(ns[pos].max()) if pos.numel() else 0.0,
        ))
    return out


def _gt_facts_from_pairs(trace: Trace, image: int) -> list[GTFacts]:
    """The same facts from the candidate pairs (when the dense tensors were not built)."""
    n = trace.n_gts(image)
    gb, gl = trace["gt_bboxes"][image], trace["gt_labels"][image]
    sel = trace["pair_b"] == image
    pm, pa = trace["pair_m"][sel], trace["pair_a"][sel]
    pu, pt = trace["pair_u"][sel], trace["pair_t"][sel]
    ptk, pp = trace["pair_topk"][sel], trace["pair_pos"][sel]
    level_of = torch.zeros(trace.levels[-1].stop, dtype=torch.int64)
    for lv in trace.levels:
        level_of[lv.start : lv.stop] = lv.index

    def per_gt(values: torch.Tensor, reduce: str) -> list[float]:  # values (pairs,) -> one per GT
        return torch.zeros(n, dtype=torch.float64).scatter_reduce_(0, pm, values.double(), reduce).tolist()

    cands = torch.bincount(pm, minlength=n).tolist() if n else []
    pos = torch.bincount(pm[pp], minlength=n).tolist() if n else []
    weight = trace["norm_align_metric"][image][pa]  # (pairs,) target score of the pair's anchor
    zero_w = torch.bincount(pm[pp & (weight < NEAR_ZERO)], minlength=n).tolist() if n else []
    best_w = per_gt(torch.where(pp, weight, torch.zeros_like(weight)), "amax")
    lost = torch.bincount(pm[ptk & ~pp], minlength=n).tolist() if n else []
    best_u, max_t = per_gt(pu, "amax"), per_gt(pt, "amax")
    out = []
    for j in range(n):
        levels: dict[str, int] = {}
        for lv_i, c in zip(*torch.unique(level_of[pa[pp & (pm == j)]], return_counts=True)):
            levels[f"s{trace.levels[int(lv_i)].stride}"] = int(c)
        out.append(GTFacts(
            index=j, cls=int(gl[j, 0]), box=[float(v) for v in gb[j]], origin=trace.gt_origin[image][j],
            candidates=cands[j], positives=pos[j], zero_weight=zero_w[j], levels=levels,
            best_iou=best_u[j], max_metric=max_t[j], picked_lost=lost[j], best_weight=best_w[j],
        ))
    return out


def summary_table(trace: Trace, image: int, facts: list[GTFacts]) -> Table:
    first = " · flagged GTs first" if any(f.flag for f in facts) else ""
    tab = Table(title=f"Per-GT summary · image {image} ({trace.labels.images[image]}){first}", title_justify="left",
                box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c, j in (("GT", "right"), ("cls", "right"), ("box px", "left"), ("w×h px", "right"),
                 ("cand", "right"), ("pos", "right"), ("0-w", "right"), ("pos/stride", "left"),
                 ("u max", "right"), ("t max", "right"), ("flag", "left")):
        tab.add_column(c, justify=j, no_wrap=c not in ("box px", "pos/stride"), overflow="fold")
    for f in facts:
        style = "bold red" if f.flag else ""
        w, h = f.box[2] - f.box[0], f.box[3] - f.box[1]
        tab.add_row(
            Text(gt_symbol(f.index), style=gt_style(f.index)), str(f.cls),
            f"({num(f.box[0], 0)},{num(f.box[1], 0)} {num(f.box[2], 0)},{num(f.box[3], 0)})", f"{size(w)}×{size(h)}",
            str(f.candidates), str(f.positives), str(f.zero_weight),
            " ".join(f"{k}×{v}" for k, v in f.levels.items()) or "—", f"{f.best_iou:.3f}", f"{f.max_metric:.2g}",
            Text(f.short_flag, style=style),
        )
    return tab


# ------------------------------------------------------------------------------------------------ grids
def _level_masks(trace: Trace, image: int, lv: Level) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidates, positives) of the image's real GTs on one level, each (n, h, w) bool."""
    n = trace.n_gts(image)
    sl = slice(lv.start, lv.stop)
    cand = (trace["mask_in_gts"][image, :n] & trace["mask_gt"][image, :n].bool())[:, sl]
    pos = trace["mask_pos"][image, :n, sl]
    return cand.reshape(n, lv.h, lv.w), pos.reshape(n, lv.h, lv.w)


def grid_text(m: torch.Tensor, window: tuple[int, int, int, int], f: int, positives: bool) -> Text:
    """Draw (n, h, w) masks inside window (r0, r1, c0, c1): one char per f×f block of cells.

    '.' nothing, the GT's symbol, '+' several GTs.
    """
    r0, r1, c0, c1 = window
    txt = Text()
    for y in range(r0, r1 + 1, f):
        txt.append(f"{y:>3} ", style="dim")
        for x in range(c0, c1 + 1, f):
            owners = torch.nonzero(m[:, y : y + f, x : x + f].flatten(1).any(1)).flatten().tolist()
            if not owners:
                txt.append(".", style="dim")
            elif len(owners) > 1:
                txt.append("+", style="bold white on red")
            else:
                txt.append(gt_symbol(owners[0]), style=gt_style(owners[0]) + (" bold reverse" if positives else ""))
        txt.append("\n")
    return txt


def render_grids(trace: Trace, con: Console, image: int) -> None:
    """Per level: the in-box candidates and the final positives, drawn on the grid (cropped to the GTs)."""
    for lv in trace.levels:
        cand, pos = _level_masks(trace, image, lv)
        used = (cand | pos).any(0)
        if not used.any():
            con.print(Text(f"{level_name(lv)}: no candidates", style="dim"))
            continue
        rows, cols = torch.nonzero(used.any(1)).flatten(), torch.nonzero(used.any(0)).flatten()
        r0, r1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 1, lv.h - 1)
        c0, c1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 1, lv.w - 1)
        width = c1 - c0 + 1
        side = 2 * width + 12 <= con.width
        avail = (con.width - 12) // 2 if side else con.width - 8
        f = max(1, -(-width // max(avail, 8)))  # ceil: cells per character
        where = f"rows {r0}–{r1}, cols {c0}–{c1} of {lv.h}×{lv.w}" + (f", 1 char = {f}×{f} cells" if f > 1 else "")
        a = grid_text(cand, (r0, r1, c0, c1), f, False)
        b = grid_text(pos, (r0, r1, c0, c1), f, True)
        title = f"{level_name(lv)} · {where}"
        if side:
            tab = Table(title=title, title_justify="left", show_edge=False, box=None, padding=(0, 2))
            tab.add_column("in-box candidates (symbol = GT, + = several)")
            tab.add_column("final positives (symbol = assigned GT)")
            tab.add_row(a, b)
            con.print(tab)
        else:
            con.print(Text(title, style="bold"))
            con.print(Text("in-box candidates (symbol = GT, + = several GTs)", style="italic"))
            con.print(a)
            con.print(Text("final positives (symbol = GT it is assigned to)", style="italic"))
            con.print(b)


# ------------------------------------------------------------------------------------------------ assignment
def candidate_table(trace: Trace, image: int, j: int, rows: int) -> Table:
    a_cfg = trace.config.assigner
    inb = trace["mask_in_gts"][image, j]
    s, u, t = trace["bbox_scores"][image, j], trace["overlaps"][image, j], trace["align_metric"][image, j]
    topk_picked, final = trace["mask_pos_topk"][image, j], trace["mask_pos"][image, j]
    tgi, fg, ns = trace["target_gt_idx"][image], trace["fg_mask"][image], trace["norm_align_metric"][image]
    idx = torch.nonzero(inb).flatten()
    order = idx[torch.argsort(t[idx], descending=True, stable=True)][:rows]
    tab = Table(
        title=f"GT {j}: its {idx.numel()} candidates by t = s^{a_cfg.alpha:g} · u^{a_cfg.beta:g} "
              f"(top {min(rows, idx.numel())} shown)",
        title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False,
    )
    for c in ("#", "anchor", "level", "cell x,y", "s (score)", "u (CIoU)", "t", "top-k", "result", "target score"):
        tab.add_column(c, justify="right" if c not in ("result", "level") else "left")
    for r, a in enumerate(order.tolist(), start=1):
        lv, cx, cy = cell_of(trace.levels, a)
        if final[a] and not topk_picked[a]:
            res, st = "positive (won, not picked)", "yellow"
        elif final[a]:
            res, st = "positive", "green"
        elif topk_picked[a] and fg[a]:
            res, st = f"lost to GT {int(tgi[a])}", "red"
        elif topk_picked[a]:
            res, st = "dropped by topk2", "red"
        else:
            res, st = "not picked", "dim"
        tab.add_row(
            str(r), str(a), level_name(lv), f"{cx},{cy}", score(s[a]), score(u[a]), f"{float(t[a]):.4g}",
            "✓" if topk_picked[a] else "", Text(res, style=st), score(ns[a]) if final[a] else "",
        )
    return tab


def conflict_table(trace: Trace, image: int) -> Table | None:
    multi = torch.nonzero(trace["mask_multi"][image]).flatten()
    if multi.numel() == 0:
        return None
    mpt, ov = trace["mask_pos_topk"][image], trace["overlaps"][image]
    tgi, fg = trace["target_gt_idx"][image], trace["fg_mask"][image]
    tab = Table(title=f"Anchors claimed by several GTs ({multi.numel()}): the largest CIoU over all GTs wins",
                title_justify="left")
    for c in ("anchor", "level", "cell x,y", "claimed by (u)", "winner", "note"):
        tab.add_column(c)
    for a in multi.tolist():
        lv, cx, cy = cell_of(trace.levels, a)
        claim = torch.nonzero(mpt[:, a]).flatten().tolist()
        w = int(tgi[a])
        note = "" if w in claim else "winner had not picked this anchor"
        if not fg[a]:
            w_txt, note = "—", "dropped (topk2)"
        else:
            w_txt = f"GT {w} (u={float(ov[w, a]):.4f})"
        tab.add_row(str(a), level_name(lv), f"{cx},{cy}", ", ".join(f"GT {c} ({float(ov[c, a]):.3f})" for c in claim),
                    w_txt, note)
    return tab


def render_gt_tensors(trace: Trace, con: Console, full: bool) -> None:
    for name, what in (("gt_bboxes", "(b, M, 4) px xyxy, zero rows are padding"), ("gt_labels", "(b, M, 1) class id"),
                       ("mask_gt", "(b, M, 1) 1 = real GT, 0 = padding")):
        if trace.summarised and not full:  # a big scene: one line each
            con.print(Text.assemble((name, "bold"), "  ", (what, "dim"), "  ", summary(trace[name])))
        else:
            print_tensor(con, name, trace[name], what, full)


def render_assign(trace: Trace, con: Console, images: list[int], full: bool, rows: int | None = None) -> None:
    cfg, a_cfg = trace.config, trace.config.assigner
    rule = cfg.enlargement
    enl = "" if rule is None else (
        f", GT sides < {rule[0]:g} px enlarged to {rule[1]:g} px for candidate selection")
    topk2 = f", topk2 {a_cfg.topk2}" if a_cfg.topk2 else ""
    con.print(Panel(
        f"profile [bold]{a_cfg.profile}[/]{enl}\ntopk {a_cfg.topk}{topk2}, alpha {a_cfg.alpha:g}, beta {a_cfg.beta:g}, "
        f"eps {a_cfg.eps:g} · heads: {trace.heads_source}",
        title="Task-aligned assignment", expand=False,
    ))
    render_gt_tensors(trace, con, full)
    if trace.summarised:
        note(con, trace.summarised)  # how the output is shown, not a problem with the input: stdout
    rows = rows or a_cfg.topk + 3
    for i in images:
        con.print(Rule(f"image {i} · {trace.labels.images[i]}"))
        n = trace.n_gts(i)
        fg = trace["fg_mask"][i]
        if n == 0:
            con.print(f"background image: no labels; all {fg.numel()} anchors are background "
                      "(they only add classification loss)")
            continue
        if trace.summarised:
            sel = trace["pair_b"] == i
            con.print(f"{int(sel.sum())} candidate pairs · {int(trace['pair_topk'][sel].sum())} top-k picks · "
                      f"{int(trace['mask_multi'][i].sum())} anchors claimed by more than one GT · "
                      f"foreground anchors: {int(fg.sum())} · background: {int((~fg).sum())}")
            render_summary(trace, con, i)
            continue
        if rule is not None:
            cb, gb = trace["cand_bboxes"][i, :n], trace["gt_bboxes"][i, :n]
            wh = gb[:, 2:] - gb[:, :2]
            for j in range(n):
                if bool((wh[j] < rule[0]).any()):
                    con.print(Text(f"GT {j}: candidate box enlarged {fmt_box(gb[j])} → {fmt_box(cb[j])} px", style="cyan"))
        render_grids(trace, con, i)
        for j in range(n):
            con.print(fit(con, candidate_table(trace, i, j, rows), ("level", "#")))
        ct = conflict_table(trace, i)
        con.print(fit(con, ct) if ct is not None else Text("no anchor was claimed by more than one GT", style="dim"))
        con.print(f"foreground anchors: {int(fg.sum())} · background: {int((~fg).sum())} "
                  f"(background has no GT: its target_gt_idx 0 and target label are placeholders)")
        render_summary(trace, con, i)


def render_summary(trace: Trace, con: Console, image: int) -> None:
    """The per-GT summary table of one image, then one line for each flagged GT saying why."""
    facts = gt_facts(trace, image)
    flagged = [f for f in facts if f.flag]
    shown = flagged + [f for f in facts if not f.flag]  # flagged GTs first, each part in GT order
    if trace.summarised and len(facts) > SUMMARY_ROWS:
        shown = shown[:SUMMARY_ROWS]
        counts = {}
        for f in flagged:
            counts[f.short_flag] = counts.get(f.short_flag, 0) + 1
        con.print(f"{len(facts)} GTs, {len(flagged)} flagged ("
                  + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
                  + f"); the table shows {SUMMARY_ROWS} of them, flagged first; --export has every pair")
    con.print(fit(con, summary_table(trace, image, shown), ("t max", "u max", "pos/stride")))
    for f in shown:
        if f.flag:
            con.print(Text.assemble(("✗ ", "bold red"), f"GT {f.index} ({f.origin[0]}:{f.origin[1]}): {f.flag}"
                                    + explain(trace, f)), soft_wrap=True)


def explain(trace: Trace, f: GTFacts) -> str:
    w, h = f.box[2] - f.box[0], f.box[3] - f.box[1]
    smin = min(trace.config.strides)
    if f.candidates == 0:
        hint = "; the ultralytics profile enlarges such boxes" if trace.config.enlargement is None else ""
        return f" — the box is {num(w)}×{num(h)} px and contains no anchor centre of any level (finest stride {smin}){hint}"
    if f.positives == 0 and f.picked_lost:
        return f" — its {f.picked_lost} top-k pick(s) among its candidates went to other GTs (larger CIoU there)"
    if f.positives == 0:
        return (" — every candidate has t = 0 (CIoU clamped to 0, or s^alpha·u^beta underflows float32), so top-k "
                "over all anchors picked non-candidates (torch's order among ties) and nothing survived the in-box mask")
    which = "its only positive has" if f.positives == 1 else f"all {f.positives} of its positives have"
    return (f" — {which} target score < {NEAR_ZERO:g} (largest {f.best_weight:.2g}; a "
            f"positive's target score is t / max t · max u, and its best CIoU u is {f.best_iou:.3g}), so they add almost "
            "nothing to the box, DFL and class loss: the head is barely taught this GT")


# ------------------------------------------------------------------------------------------------ loss
def render_loss(trace: Trace, con: Console, images: list[int]) -> None:
    cfg = trace.config
    b = trace.batch
    tss = float(trace["target_scores_sum"])
    con.print(Panel(
        f"target_scores_sum = max(Σ target_scores, 1) = {tss:.6g}  (every term is divided by it)\n"
        f"heads: {trace.heads_source}",
        title="Detection loss", expand=False,
    ))
    tab = Table(title="Terms (as ultralytics logs them; the backward pass uses weighted × batch size)")
    for c in ("term", "what", "raw", "gain", "weighted", f"× batch ({b})"):
        tab.add_column(c, justify="right" if c not in ("term", "what") else "left")
    dfl_what = "DFL of the 4 sides × weight" if cfg.reg_max > 1 else (
        "L1 of image-normalised ltrb × weight" if profiles.has_third_term(cfg.loss_profile, 1) else "none (reg_max = 1)")
    for name, what, raw, gain, w in (
        ("box", "(1 − CIoU) × weight over positives", "raw_box", cfg.loss.box, "loss_box"),
        ("cls", "BCE over all anchors and classes", "raw_cls", cfg.loss.cls, "loss_cls"),
        ("dfl", dfl_what, "raw_dfl", cfg.loss.dfl, "loss_dfl"),
    ):
        tab.add_row(name, what, f"{float(trace[raw]):.6g}", f"{gain:g}", f"{float(trace[w]):.6g}", f"{float(trace[w]) * b:.6g}")
    total = sum(float(trace[k]) for k in ("loss_box", "loss_cls", "loss_dfl"))
    tab.add_row("total", "", "", "", f"{total:.6g}", f"{total * b:.6g}", style="bold")
    con.print(fit(con, tab, ("what",)))

    cls_pa, box_pa, dfl_pa, fg = trace["cls_per_anchor"], trace["box_per_anchor"], trace["dfl_per_anchor"], trace["fg_mask"]
    ts = trace["target_scores"]
    img = Table(title="Per image (raw contributions; they add up to the raw terms)", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("image", "name", "GTs", "positives", "Σ target score", "cls", "box", "dfl"):
        img.add_column(c, justify="right" if c != "name" else "left")
    for i in range(b):
        img.add_row(str(i), trace.labels.images[i], str(trace.n_gts(i)), str(int(fg[i].sum())), f"{float(ts[i].sum()):.4f}",
                    f"{float(cls_pa[i].sum()):.5g}", f"{float(box_pa[i].sum()):.5g}", f"{float(dfl_pa[i].sum()):.5g}")
    con.print(fit(con, img, ("name",)))

    tgi, ciou, ltrb, clamped = trace["target_gt_idx"], trace["ciou"], trace["dfl_target_ltrb"], trace["dfl_clamped"]
    rmax = cfg.reg_max - 1 - 0.01
    for i in images:
        n = trace.n_gts(i)
        if n == 0:
            continue
        gt = Table(title=f"Per GT · image {i} (raw box/dfl/cls contributions of its positives)", title_justify="left",
                   box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c in ("GT", "cls", "pos", "Σ weight", "mean CIoU", "box", "dfl", "cls@pos", "max ltrb grid", "clamp hi",
                  "clamp 0"):
            gt.add_column(c, justify="right", no_wrap=True)
        warnings = []
        for j in range(n):
            sel = fg[i] & (tgi[i] == j)
            k = int(sel.sum())
            mx = float(ltrb[i][sel].max()) if k else 0.0
            # sides clamped at reg_max - 1.01 (box too large for the stride) and at 0 (anchor outside the real box:
            # a candidate only through the small-GT enlargement)
            ncl = int((clamped[i][sel] & (ltrb[i][sel] > rmax)).sum()) if k else 0
            n0 = int((clamped[i][sel] & (ltrb[i][sel] < 0)).sum()) if k else 0
            gt.add_row(
                Text(gt_symbol(j), style=gt_style(j)), str(int(trace["gt_labels"][i, j, 0])), str(k),
                f"{float(ts[i][sel].sum()):.4f}", f"{float(ciou[i][sel].mean()):.4f}" if k else "—",
                f"{float(box_pa[i][sel].sum()):.4g}", f"{float(dfl_pa[i][sel].sum()):.4g}",
                f"{float(cls_pa[i][sel].sum()):.4g}", f"{mx:.2f}", Text(str(ncl), style="bold red" if ncl else ""),
                str(n0),
            )
            hi = clamped[i][sel] & (ltrb[i][sel] > rmax)
            if cfg.reg_max > 1 and hi.any():
                strides = sorted({cell_of(trace.levels, a)[0].stride for a in torch.nonzero(sel).flatten().tolist()})
                warnings.append(
                    f"image {i} GT {j} ({trace.gt_origin[i][j][0]}:{trace.gt_origin[i][j][1]}): "
                    f"{int(hi.sum())} DFL target side(s) clamped at reg_max − 1.01 = {rmax:.2f} grid units "
                    f"(largest {mx:.2f} at stride {strides}): the box is too large for its anchors' strides; "
                    f"the head cannot learn its full extent"
                )
        con.print(fit(con, gt, ("cls@pos", "mean CIoU", "cls", "clamp 0")))
        if cfg.reg_max > 1:
            con.print(Text(f"clamp hi: DFL target sides beyond reg_max − 1.01 = {rmax:.2f} grid units (box too "
                           "large for the stride); clamp 0: sides below 0 (the anchor lies outside the real box, a "
                           "candidate only through the small-GT enlargement)", style="dim"), soft_wrap=False)
        for w in warnings:
            warn(con, w)


def owner_text(trace: Trace, image: int, anchor: int) -> Text:
    """Which GT an anchor is a positive of (image, GT index, class, file:line), or that it is background."""
    name = trace.config.assigner.name
    pt = trace["pos_triples"]
    gts = pt[(pt[:, 0] == image) & (pt[:, 2] == anchor), 1].tolist()
    if not gts:
        return Text(f"background: no GT of image {image} has this anchor as a positive ({name} assigner)", style="dim")
    parts = []
    for j in gts:
        f, ln = trace.gt_origin[image][j]
        parts.append(f"image {image} GT {j} (class {int(trace['gt_labels'][image, j, 0])}, {f}:{ln})")
    return Text(f"positive of {' and '.join(parts)} ({name} assigner)", style=gt_style(gts[0]))
