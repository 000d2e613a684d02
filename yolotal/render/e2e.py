"""`yolotal loss --model` on an end-to-end model: both branches side by side, their weights and the total."""

from __future__ import annotations

from rich import box as rbox
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .fmt import fit
from .terminal import note, render_loss, warn


def _branch_facts(run) -> tuple[int, int, int]:
    """(positives, GTs, GTs without a positive) of one branch."""
    recs = run.gts(as_frame=False)
    return sum(r.positives for r in recs), len(recs), sum(1 for r in recs if r.positives == 0)


def render_e2e(e2e, con: Console, images: list[int] | None = None, detail: bool = True) -> None:
    m, o = e2e.one2many, e2e.one2one
    for n in m.trace.notes:
        note(con, n)
    for w in m.trace.warnings:
        warn(con, w)
    w_m, w_o = e2e.weights
    rule = e2e.rule
    third = e2e.third_term
    if rule.weighting == "progressive":
        weights = (f"o2m = max(1 − e / max(epochs − 1, 1), 0) · 0.7 + 0.1 = {w_m:.6g}, o2o = 1 − o2m = {w_o:.6g} "
                   f"({e2e.epoch_note}; --epoch E for another point of the schedule)")
    else:
        weights = f"o2m = o2o = 1 (8.0–8.3's E2EDetectLoss sums the branches; {e2e.epoch_note})"
    con.print(Panel(f"{rule.name}: total = o2m · L_o2m + o2o · L_o2o, L = (box + cls + {third[:-5]}) × batch\n{weights}",
                    title="End-to-end loss: both branches", expand=False))
    tab = Table(title="Branches side by side (terms gain-weighted, as logged)", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("", "one2many", "one2one"):
        tab.add_column(c, justify="left" if not c else "right")
    am, ao = m.config.assigner, o.config.assigner
    tab.add_row("assigner", f"tal topk {am.topk}" + (f" topk2 {am.topk2}" if am.topk2 else ""),
                f"tal-o2o topk {ao.topk}" + (f" topk2 {ao.topk2}" if ao.topk2 else ""))
    pm, g, sm = _branch_facts(m)
    po, _, so = _branch_facts(o)
    tab.add_row("GTs", str(g), str(g))
    tab.add_row("positives", str(pm), str(po))
    tab.add_row("GTs without a positive", Text(str(sm), style="bold red" if sm else ""),
                Text(str(so), style="bold red" if so else ""))
    lm_, lo_ = m.loss, o.loss
    for name, key in (("box_loss", "loss_box"), ("cls_loss", "loss_cls"), (third, "loss_dfl")):
        tab.add_row(name, f"{lm_[key]:.6g}", f"{lo_[key]:.6g}")
    Lm, Lo = e2e.branch_total(m), e2e.branch_total(o)
    tab.add_row(f"L (× batch {m.batch})", f"{Lm:.6g}", f"{Lo:.6g}", style="bold")
    tab.add_row("weight", f"{w_m:.6g}", f"{w_o:.6g}")
    tab.add_row("weight · L", f"{w_m * Lm:.6g}", f"{w_o * Lo:.6g}")
    con.print(fit(con, tab))
    con.print(Text(f"total (what the trainer backpropagates) = {e2e.total:.6g}", style="bold"))
    logged = ", ".join(f"{k} {v:.5g}" for k, v in e2e.logged.items())
    which = "the one2one branch's items" if rule.logged == "one2one" else "both branches' items summed"
    con.print(f"the trainer logs {which}: {logged}")
    if detail:
        for title, run in (("one2many branch (tal)", m), ("one2one branch (tal-o2o)", o)):
            con.print()
            con.print(Text(title, style="bold underline"))
            render_loss(run.trace, con, list(range(run.batch)) if images is None else images)


def e2e_stage_table(trace, names) -> Table:
    """The ``e2e`` stage a task family records (``Family.both_branches``): per logged term its one2many and
    one2one value, the weighted sum and × batch; ``names`` are the trainer's names of the items."""
    b = trace.batch
    w_m, w_o = (float(x) for x in trace["e2e_weights"])
    e, n_e = (int(x) for x in trace["e2e_epoch"])
    et = Table(title=f"End-to-end (E2ELoss) at epoch {e} of {n_e}: weighted = {w_m:.4g}·one2many + "
                     f"{w_o:.4g}·one2one; the trainer logs one2one's items", title_justify="left",
               box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("term", "one2many", "one2one", "weighted", f"× batch ({b})"):
        et.add_column(c, justify="left" if c == "term" else "right")
    m, o, w = trace["e2e_o2m_items"], trace["e2e_o2o_items"], trace["e2e_weighted"]
    for k, nm in enumerate(names):
        et.add_row(nm, f"{float(m[k]):.6g}", f"{float(o[k]):.6g}", f"{float(w[k]):.6g}", f"{float(w[k]) * b:.6g}")
    et.add_row("total", f"{float(m.sum()):.6g}", f"{float(o.sum()):.6g}", f"{float(w.sum()):.6g}",
               f"{float(w.sum()) * b:.6g}", style="bold")
    return et
