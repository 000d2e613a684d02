"""Terminal views of the OBB families (``obb``, ``obb-o2o``): per GT its candidates with s, ProbIoU, t and their
fate, the rotated box, a per-GT summary; the v8OBBLoss terms per image and per GT; the walk's steps 6 onwards.
They read the trace only."""

from __future__ import annotations

import math

import torch
from rich import box as rbox
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from ..core.anchors import cell_of
from ..pipeline import Trace
from .fmt import fit, num, size
from .terminal import NEAR_ZERO, gt_style, gt_symbol, note, print_tensor, warn
from rich.table import Table


def _deg(rad: float) -> str:
    return f"{math.degrees(rad):.1f}°"


def rbox_text(r) -> str:
    """cx, cy, w×h px and the angle in degrees of one xywhr row."""
    cx, cy, w, h, a = (float(v) for v in r)
    return f"({num(cx)},{num(cy)}) {size(w)}×{size(h)} px {_deg(a)}"


def gt_rows(trace: Trace, image: int) -> list[dict]:
    """Per real GT of the image: its facts for the summary (candidates, positives, weighted, best ProbIoU, flag)."""
    n = trace.n_gts(image)
    fg, tgi, ts = trace["fg_mask"][image], trace["target_gt_idx"][image], trace["target_scores"][image].amax(-1)
    if "mask_in_gts" in trace:
        cand = trace["mask_in_gts"][image, :n]
        ov = trace["overlaps"][image, :n]
        n_cand = cand.sum(1).tolist()
        best_u = [float(ov[j][cand[j]].max()) if n_cand[j] else None for j in range(n)]
    else:  # assigned on candidate pairs
        sel = trace["pair_b"] == image
        pm, pu = trace["pair_m"][sel], trace["pair_u"][sel]
        n_cand = torch.bincount(pm, minlength=n)[:n].tolist()
        best_u = [float(pu[pm == j].max()) if n_cand[j] else None for j in range(n)]
    out = []
    for j in range(n):
        pos = torch.nonzero(fg & (tgi == j)).flatten()
        c = int(n_cand[j])
        w = int((ts[pos] >= NEAR_ZERO).sum())
        levels: dict[int, int] = {}
        for a in pos.tolist():
            s = cell_of(trace.levels, a)[0].stride
            levels[s] = levels.get(s, 0) + 1
        flag = ("no candidates" if c == 0 else "no positives" if not len(pos)
                else "only near-zero-weight positives" if w == 0 else "")
        out.append(dict(j=j, cand=c, pos=len(pos), weighted=w, best=best_u[j],
                        score=float(ts[pos].sum()), levels=" ".join(f"s{k}×{v}" for k, v in sorted(levels.items())),
                        flag=flag))
    return out


def summary_table(trace: Trace, image: int, rows: list[dict]) -> Table:
    tab = Table(title=f"Per-GT summary · image {image} ({trace.labels.images[image]})"
                + (" · flagged GTs first" if any(r["flag"] for r in rows) else ""),
                title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("GT", "cls", "centre px", "w×h px", "angle", "cand", "pos", "weighted", "u max", "pos/stride", "flag"):
        tab.add_column(c, justify="left" if c in ("centre px", "pos/stride", "flag") else "right")
    g = trace["gt_rboxes"][image]
    for r in sorted(rows, key=lambda r: (r["flag"] == "", r["j"])):
        j = r["j"]
        cx, cy, w, h, a = (float(v) for v in g[j])
        tab.add_row(Text(gt_symbol(j), style=gt_style(j)), str(int(trace["gt_labels"][image, j, 0])),
                    f"{num(cx)},{num(cy)}", f"{size(w)}×{size(h)}", _deg(a), str(r["cand"]), str(r["pos"]),
                    str(r["weighted"]), "—" if r["best"] is None else f"{r['best']:.4f}", r["levels"] or "—",
                    Text(r["flag"].upper(), style="bold red") if r["flag"] else "")
    return tab


def explain(trace: Trace, image: int, r: dict) -> str:
    j = r["j"]
    g, c = trace["gt_rboxes"][image, j], trace["cand_rboxes"][image, j]
    if r["flag"] == "no candidates":
        floor = (f"; its candidate box (sides floored at {trace.config.stride_val:g} px) is "
                 f"{size(float(c[2]))}×{size(float(c[3]))} px" if trace.config.assigner.profile == "ultralytics" else "")
        return (f" — the rotated box {size(float(g[2]))}×{size(float(g[3]))} px at {_deg(float(g[4]))} contains no "
                f"anchor centre of any level (finest stride {min(trace.config.strides)}){floor}")
    if r["flag"] == "no positives":
        return " — its top-k picks went to other GTs (larger ProbIoU there) or were cut by topk2"
    return (f" — every positive has target score < {NEAR_ZERO:g} (best ProbIoU {r['best']:.3g}): it adds almost "
            "nothing to the loss")


def candidate_table(trace: Trace, image: int, j: int, rows: int, full: bool) -> Table:
    from ..assigners.obb_family import gt_candidate_rows

    cands = gt_candidate_rows(trace, image, j)
    shown = cands if full else cands[:rows]
    a_cfg = trace.config.assigner
    tab = Table(title=f"GT {j}: {len(cands)} candidates, best t first"
                + ("" if len(shown) == len(cands) else f" (top {len(shown)}; --full for all)"),
                title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("anchor", "stride", "cell x,y", "s", "ProbIoU u", f"t=s^{a_cfg.alpha:g}·u^{a_cfg.beta:g}", "result"):
        tab.add_column(c, justify="left" if c in ("cell x,y", "result") else "right", no_wrap=c != "result")
    styles = {"positive": "bold green", "not in top-k": "dim"}
    for r in shown:
        tab.add_row(str(r["anchor"]), str(r["stride"]), f"{r['cell'][0]},{r['cell'][1]}", f"{r['s']:.3g}",
                    f"{r['u']:.4f}", f"{r['t']:.3g}", Text(r["result"], style=styles.get(r["result"], "yellow")))
    return tab


SUMMARY_ROWS = 40  # per-GT summary rows shown when the run was assigned on candidate pairs (flagged first)


def render_image(trace: Trace, con: Console, i: int, rows: int, full: bool) -> None:
    n = trace.n_gts(i)
    fg = trace["fg_mask"][i]
    g, c = trace["gt_rboxes"][i], trace["cand_rboxes"][i]
    facts = gt_rows(trace, i)
    shown = range(n)
    if trace.summarised and not full:  # a big scene: candidate tables of the flagged GTs only
        shown = [r["j"] for r in facts if r["flag"]]
    for j in shown:
        f, ln = trace.gt_origin[i][j]
        enl = ""
        if trace.config.assigner.profile == "ultralytics" and not torch.equal(g[j], c[j]):
            enl = f" · candidate box {size(float(c[j, 2]))}×{size(float(c[j, 3]))} px (sides floored)"
        con.print(Text.assemble((f"GT {j}", f"bold {gt_style(j)}"),
                                f" ({f}:{ln}) class {int(trace['gt_labels'][i, j, 0])} · {rbox_text(g[j])}{enl}"),
                  soft_wrap=True)
        con.print(fit(con, candidate_table(trace, i, j, rows, full), ("stride",)))
    multi = int(trace["mask_multi"][i].sum())
    con.print(f"anchors claimed by more than one GT: {multi} (each goes to the largest ProbIoU) · "
              f"foreground anchors: {int(fg.sum())} · background: {int((~fg).sum())}")
    table_rows = facts
    if trace.summarised and not full and len(facts) > SUMMARY_ROWS:
        table_rows = sorted(facts, key=lambda r: (r["flag"] == "", r["j"]))[:SUMMARY_ROWS]
        con.print(f"{len(facts)} GTs, {sum(1 for r in facts if r['flag'])} flagged; the table shows "
                  f"{SUMMARY_ROWS} of them, flagged first (--full for all; --export has every pair)")
    con.print(fit(con, summary_table(trace, i, table_rows), ("u max", "pos/stride", "weighted")))
    for r in facts:
        if r["flag"]:
            f, ln = trace.gt_origin[i][r["j"]]
            con.print(Text.assemble(("✗ ", "bold red"), f"GT {r['j']} ({f}:{ln}): {r['flag']}" + explain(trace, i, r)),
                      soft_wrap=True)


def header(trace: Trace, con: Console) -> None:
    cfg, a = trace.config, trace.config.assigner
    en = cfg.enlargement
    floor = ("" if en is None else f", GT sides < {en[0]:g} px raised to it for the in-box test" if en[0] == en[1]
             else f", GT sides < {en[0]:g} px raised to {en[1]:g} px for the in-box test")
    topk2 = f", topk2 {a.topk2}" if a.topk2 else ""
    con.print(Panel(
        f"{a.name} · profile [bold]{a.profile}[/]{floor}\ntopk {a.topk}{topk2}, alpha {a.alpha:g}, beta {a.beta:g}, "
        f"overlap ProbIoU · heads: {trace.heads_source}",
        title="Rotated task-aligned assignment", expand=False))


def render_assign(trace: Trace, con: Console, images: list[int], full: bool, rows: int | None = None) -> None:
    header(trace, con)
    if trace.summarised:
        note(con, trace.summarised)
    rows = rows or trace.config.assigner.topk + 3
    for i in images:
        con.print(Rule(f"image {i} · {trace.labels.images[i]}"))
        if trace.n_gts(i) == 0:
            con.print(f"background image: no (kept) OBB labels; all {trace['fg_mask'][i].numel()} anchors are "
                      "background (they only add classification loss)")
            continue
        render_image(trace, con, i, rows, full)


# ------------------------------------------------------------------------------------------------ loss
def render_loss(trace: Trace, con: Console, images: list[int]) -> None:
    from ..assigners.obb_family import RotatedTaskAligned

    cfg, b = trace.config, trace.batch
    g_box, g_cls, g_dfl, g_ang = RotatedTaskAligned.gains(cfg)
    tss = float(trace["target_scores_sum"])
    third = "dfl" if cfg.reg_max > 1 else "l1"
    con.print(Panel(f"target_scores_sum = max(Σ target_scores, 1) = {tss:.6g}  (every term is divided by it)\n"
                    f"heads: {trace.heads_source}", title="OBB loss (v8OBBLoss)", expand=False))
    tab = Table(title="Terms (as ultralytics logs them; the backward pass uses weighted × batch size)")
    for c in ("term", "what", "raw", "gain", "weighted", f"× batch ({b})"):
        tab.add_column(c, justify="right" if c not in ("term", "what") else "left")
    third_what = ("DFL of the 4 sides (along the target's axes) × weight" if cfg.reg_max > 1
                  else "L1 of image-normalised ltrb × weight")
    for name, what, raw, gain, w in (
        ("box", "(1 − ProbIoU) × weight over positives", "raw_box", g_box, "loss_box"),
        ("cls", "BCE over all anchors and classes", "raw_cls", g_cls, "loss_cls"),
        (third, third_what, "raw_dfl", g_dfl, "loss_dfl"),
        ("angle", "sin²(2Δθ)·exp(−log²(w/h)/9) × weight", "raw_angle", g_ang, "loss_angle"),
    ):
        tab.add_row(name, what, f"{float(trace[raw]):.6g}", f"{gain:g}", f"{float(trace[w]):.6g}",
                    f"{float(trace[w]) * b:.6g}")
    total = sum(float(trace[k]) for k in ("loss_box", "loss_cls", "loss_dfl", "loss_angle"))
    tab.add_row("total", "", "", "", f"{total:.6g}", f"{total * b:.6g}", style="bold")
    con.print(fit(con, tab, ("what",)))

    if "e2e_weighted" in trace:  # loss --model on YOLO26-obb: both branches as E2ELoss weighs them
        from .e2e import e2e_stage_table

        con.print(fit(con, e2e_stage_table(trace, RotatedTaskAligned.loss_names(trace))))

    pa = {k: trace[f"{k}_per_anchor"] for k in ("cls", "box", "dfl", "angle")}
    fg, ts = trace["fg_mask"], trace["target_scores"]
    img = Table(title="Per image (raw contributions; they add up to the raw terms)", box=rbox.SIMPLE_HEAD,
                pad_edge=False)
    for c in ("image", "name", "GTs", "pos", "Σ score", "cls", "box", third, "angle"):
        img.add_column(c, justify="right" if c != "name" else "left")
    for i in range(b):
        img.add_row(str(i), trace.labels.images[i], str(trace.n_gts(i)), str(int(fg[i].sum())),
                    f"{float(ts[i].sum()):.4f}", *(f"{float(pa[k][i].sum()):.5g}" for k in ("cls", "box", "dfl", "angle")))
    con.print(fit(con, img, ("name",)))

    tgi, piou, ltrb, clamped = trace["target_gt_idx"], trace["loss_probiou"], trace["dfl_target_ltrb"], trace["dfl_clamped"]
    rmax = cfg.reg_max - 1 - 0.01
    for i in images:
        n = trace.n_gts(i)
        if n == 0:
            continue
        gt = Table(title=f"Per GT · image {i} (raw contributions of its positives)", title_justify="left",
                   box=rbox.SIMPLE_HEAD, pad_edge=False)
        cols = ["GT", "cls", "pos", "Σ weight", "ProbIoU", "box", third, "angle", "cls@pos"]
        if cfg.reg_max > 1:
            cols += ["clamp hi", "clamp 0"]
        for c in cols:
            gt.add_column(c, justify="right", no_wrap=True)
        warnings = []
        for j in range(n):
            sel = fg[i] & (tgi[i] == j)
            k = int(sel.sum())
            row = [Text(gt_symbol(j), style=gt_style(j)), str(int(trace["gt_labels"][i, j, 0])), str(k),
                   f"{float(ts[i][sel].sum()):.4f}", f"{float(piou[i][sel].mean()):.4f}" if k else "—",
                   *(f"{float(pa[key][i][sel].sum()):.4g}" for key in ("box", "dfl", "angle", "cls"))]
            if cfg.reg_max > 1:
                hi = clamped[i][sel] & (ltrb[i][sel] > rmax)
                lo = clamped[i][sel] & (ltrb[i][sel] < 0)
                row += [Text(str(int(hi.sum())), style="bold red" if hi.any() else ""), str(int(lo.sum()))]
                if hi.any():
                    f, ln = trace.gt_origin[i][j]
                    warnings.append(f"image {i} GT {j} ({f}:{ln}): {int(hi.sum())} DFL target side(s) clamped at "
                                    f"reg_max − 1.01 = {rmax:.2f} grid units: the rotated box is too large for its "
                                    "anchors' strides")
            gt.add_row(*row)
        con.print(fit(con, gt, ("cls@pos", "Σ weight", "clamp 0")))
        for w in warnings:
            warn(con, w)


# ------------------------------------------------------------------------------------------------ walk
def _step(con: Console, title: str, text: str = "") -> None:
    from .walk import step

    step(con, title, text)


def render_walk(trace: Trace, con: Console, full: bool) -> None:
    """Walk steps 6 onwards: rotated GTs, rotated decode, candidates, metric, top-k and conflicts, targets, loss."""
    cfg, a, b = trace.config, trace.config.assigner, trace.batch
    _step(con, "6a. Rotated GTs: label corners (px) -> minimum-area rectangle -> xywhr",
          "w is the longer side, the angle in [-π/4, 3π/4); rows with a side under 2 px are dropped (as the trainer)")
    print_tensor(con, "gt_corners", trace["gt_corners"], "(b, M, 4, 2) px corners of the kept GTs", full)
    print_tensor(con, "gt_rboxes", trace["gt_rboxes"], "(b, M, 5) px cx, cy, w, h, angle rad", full)
    _step(con, "6b. Rotated decode: the angle channel, then l,t,r,b along the predicted angle -> xywhr",
          "the angle channel in radians (YOLOv8/11 heads: (sigmoid(x) − ¼)·π; YOLO26: the value itself)")
    print_tensor(con, "pred_angle", trace["pred_angle"], "(b, A, 1) radians", full)
    print_tensor(con, "pred_rboxes", trace["pred_rboxes"], "(b, A, 5) px xywhr", full)
    if trace.summarised:
        _step(con, "6c–6e. Assignment on candidate pairs", trace.summarised)
        for name, what in (("pair_b", "image"), ("pair_m", "GT slot"), ("pair_a", "anchor"),
                           ("pair_u", "ProbIoU u"), ("pair_t", "alignment metric t"), ("pair_pos", "final positive")):
            print_tensor(con, name, trace[name], f"(P,) {what} of each candidate pair", full)
        _walk_targets(trace, con, full)
        return
    _step(con, "6c. Candidates: anchor centres inside each rotated GT (edges included)",
          (f"ultralytics 8.4 first raises GT sides < {cfg.enlargement[0]:g} px to {cfg.enlargement[1]:g} px (centre, "
           "angle kept)" if cfg.enlargement is not None else "the GT's own rotated box"))
    for i in range(b):
        print_tensor(con, f"in_gts_mask[{i}]", trace["mask_in_gts"][i].float(), "(M, A)", full)
    _step(con, "6d. Metric: t = s^alpha · u^beta over candidates",
          f"s = score of the GT's class, u = ProbIoU(GT, prediction) clamped at 0; alpha {a.alpha:g}, beta {a.beta:g}")
    print_tensor(con, "overlaps", trace["overlaps"], "(b, M, A) ProbIoU u at candidates", full)
    print_tensor(con, "align_metric", trace["align_metric"], "(b, M, A) t at candidates", full)
    _step(con, "6e. Top-k and conflicts", f"each GT keeps its {a.topk} largest t among its candidates; an anchor "
          "picked by several GTs goes to the GT with the largest ProbIoU"
          + (f"; topk2 {a.topk2} keeps that many per GT" if a.topk2 else ""))
    print_tensor(con, "mask_multi", trace["mask_multi"].float(), "(b, A) anchors claimed by several GTs", full)
    print_tensor(con, "mask_pos", trace["mask_pos"].float(), "(b, M, A) final positives", full)
    _walk_targets(trace, con, full)


def _walk_targets(trace: Trace, con: Console, full: bool) -> None:
    cfg, b = trace.config, trace.batch
    _step(con, "7. Targets", "fg_mask marks anchors with a GT; background anchors keep placeholders (GT 0)")
    print_tensor(con, "fg_mask", trace["fg_mask"].float(), "(b, A)", full)
    print_tensor(con, "target_gt_idx", trace["target_gt_idx"], "(b, A), meaningful where fg_mask", full)
    print_tensor(con, "target_rboxes", trace["target_rboxes"], "(b, A, 5) px xywhr", full)
    print_tensor(con, "target_scores", trace["target_scores"], "(b, A, nc) soft one-hot", full)
    for i in range(b):
        if trace.n_gts(i):
            facts = gt_rows(trace, i)
            con.print(fit(con, summary_table(trace, i, facts), ("u max", "pos/stride", "weighted")))
        else:
            con.print(Text(f"image {i}: background image (no kept labels)", style="dim"))
    if "loss_box" in trace:
        _step(con, "8. Loss (v8OBBLoss: ProbIoU box term, " + ("DFL" if cfg.reg_max > 1 else "L1")
              + ", BCE, angle)")
        render_loss(trace, con, list(range(b)))
    else:
        note(con, "loss not computed")
