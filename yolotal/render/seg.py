"""Terminal views of the segmentation families (``seg``, ``seg26``, ``seg26-o2o``): GT masks per GT; for YOLO26-seg
each GT's candidates with s, box CIoU, mask IoU (which pairs got one), the mean, t and their fate; a per-GT summary
flagging GTs with no candidates, no positives or an empty mask; the loss terms (box, seg, cls, dfl/l1, sem) per
image and per GT; the walk's steps 6 onwards. They read the trace only."""

from __future__ import annotations

import torch
from rich import box as rbox
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from ..core.anchors import cell_of
from ..pipeline import Trace
from .fmt import box as fmt_box
from .fmt import fit
from .terminal import NEAR_ZERO, gt_style, gt_symbol, note, print_tensor, warn


def mask_line(trace: Trace) -> str:
    gm = trace["gt_masks"]
    cfg = trace.config
    how = ("overlap_mask on: one index image per picture, GT slots by mask area (largest first), a smaller mask "
           "covers a larger one" if cfg.overlap_mask else "overlap_mask off: one mask per GT, label order")
    return f"GT masks {gm.shape[-1]}×{gm.shape[-2]} px (imgsz / {cfg.imgsz[0] // gm.shape[-2]}); {how}"


# ------------------------------------------------------------------------------------------------ per-GT facts
def gt_rows(trace: Trace, image: int) -> list[dict]:
    """Per real GT of the image: candidates, mask-IoU pairs, positives, weighted ones, best overlap, mask area, flag."""
    n = trace.n_gts(image)
    dense = "mask_in_gts" in trace  # else: assigned on candidate pairs (over the dense budget)
    if dense:
        cand = trace["mask_in_gts"][image, :n]
        ov = trace["overlaps"][image, :n]
    else:
        sel = trace["pair_b"] == image
        pm, pu = trace["pair_m"][sel], trace["pair_u"][sel]
    fg, tgi = trace["fg_mask"][image], trace["target_gt_idx"][image]
    ts = trace["target_scores"][image].amax(-1)
    area = trace["gt_mask_area"][image]
    has_pairs = "pair_image" in trace
    out = []
    for j in range(n):
        pos = torch.nonzero(fg & (tgi == j)).flatten()
        if dense:
            c = int(cand[j].sum())
            best = float(ov[j][cand[j]].max()) if c else None
        else:
            c = int((pm == j).sum())
            best = float(pu[pm == j].max()) if c else None
        w = int((ts[pos] >= NEAR_ZERO).sum())
        pairs = int(((trace["pair_image"] == image) & (trace["pair_gt"] == j)).sum()) if has_pairs else None
        levels: dict[int, int] = {}
        for a in pos.tolist():
            s = cell_of(trace.levels, a)[0].stride
            levels[s] = levels.get(s, 0) + 1
        flag = ("no candidates" if c == 0 else "no positives" if not len(pos)
                else "only near-zero-weight positives" if w == 0 else "empty mask" if int(area[j]) == 0 else "")
        out.append(dict(j=j, cand=c, pairs=pairs, pos=len(pos), weighted=w, area=int(area[j]),
                        best=best,
                        levels=" ".join(f"s{k}×{v}" for k, v in sorted(levels.items())), flag=flag))
    return out


def summary_table(trace: Trace, image: int, rows: list[dict]) -> Table:
    has_pairs = rows and rows[0]["pairs"] is not None
    tab = Table(title=f"Per-GT summary · image {image} ({trace.labels.images[image]})"
                + (" · flagged GTs first" if any(r["flag"] for r in rows) else ""),
                title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    cols = ["GT", "cls", "box px", "mask px", "cand"] + (["mIoU"] if has_pairs else []) + [
        "pos", "weighted", "ov max", "pos/stride", "flag"]
    for c in cols:
        tab.add_column(c, justify="left" if c in ("box px", "pos/stride", "flag") else "right")
    gb = trace["gt_bboxes"][image]
    for r in sorted(rows, key=lambda r: (r["flag"] == "", r["j"])):
        j = r["j"]
        row = [Text(gt_symbol(j), style=gt_style(j)), str(int(trace["gt_labels"][image, j, 0])), fmt_box(gb[j], 0),
               str(r["area"]), str(r["cand"])] + ([str(r["pairs"])] if has_pairs else []) + [
            str(r["pos"]), str(r["weighted"]), "—" if r["best"] is None else f"{r['best']:.3f}", r["levels"] or "—",
            Text(r["flag"].upper(), style="bold red") if r["flag"] else ""]
        tab.add_row(*row)
    return tab


def explain(trace: Trace, image: int, r: dict) -> str:
    if r["flag"] == "no candidates":
        b = trace["gt_bboxes"][image, r["j"]]
        return (f" — its box {fmt_box(b, 0)} px contains no anchor centre of any level (finest stride "
                f"{min(trace.config.strides)})")
    if r["flag"] == "no positives":
        return " — its top-k picks went to other GTs (larger overlap there) or were cut by topk2"
    if r["flag"] == "empty mask":
        return (" — its polygon covers no pixel of the GT mask (too small at imgsz / 4, or covered by smaller "
                "objects with overlap_mask): every mask IoU is 0 and its positives learn an empty mask")
    return (f" — every positive has target score < {NEAR_ZERO:g} (best overlap {r['best']:.3g}): it adds almost "
            "nothing to the loss")


def render_summary(trace: Trace, con: Console, image: int) -> None:
    rows = gt_rows(trace, image)
    con.print(fit(con, summary_table(trace, image, rows), ("pos/stride", "ov max", "weighted", "box px")))
    for r in rows:
        if r["flag"]:
            f, ln = trace.gt_origin[image][r["j"]]
            con.print(Text.assemble(("✗ ", "bold red"), f"GT {r['j']} ({f}:{ln}): {r['flag']}" + explain(trace, image, r)),
                      soft_wrap=True)


# ------------------------------------------------------------------------------------------------ assign
def render_assign_v8(trace: Trace, con: Console, images: list[int], full: bool) -> None:
    """YOLOv8/YOLO11-seg: the detection TAL view, then the GT masks per GT."""
    from .terminal import render_assign

    con.print(Text(mask_line(trace), style="cyan"))
    render_assign(trace, con, images, full)
    for i in images:
        if trace.n_gts(i):
            con.print(Rule(f"GT masks · image {i} · {trace.labels.images[i]}"))
            render_summary(trace, con, i)


def candidate_table(trace: Trace, image: int, j: int, rows: int, full: bool) -> Table:
    from ..assigners.seg_family import SegView

    c = SegView(trace).candidates_of(image, j)
    order = torch.argsort(c.align_metric, descending=True, stable=True)
    k = c.anchors.numel()
    shown = order if full else order[:rows]
    tab = Table(title=f"GT {j}: {k} candidates, {int(c.has_mask_iou.sum())} with a mask IoU, best t first"
                + ("" if len(shown) == k else f" (top {len(shown)}; --full for all)"),
                title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for col in ("anchor", "cell", "s", "box u", "mask", "ov", "t", "k", "result"):
        tab.add_column(col, justify="left" if col in ("cell", "result") else "right", no_wrap=col != "result")
    tgi = trace["target_gt_idx"][image]
    for q in shown.tolist():
        anc = int(c.anchors[q])
        lv, cx, cy = cell_of(trace.levels, anc)
        if bool(c.positive[q]):
            res = Text("positive", style="bold green")
        elif int(c.lost_to[q]) >= 0:
            res = Text(f"lost to GT {int(c.lost_to[q])}", style="yellow")
        elif bool(c.topk[q]):
            res = Text("cut (topk2)", style="yellow")
        elif bool(trace["fg_mask"][image, anc]) and int(tgi[anc]) != j:
            res = Text(f"GT {int(tgi[anc])}'s", style="dim")
        else:
            res = Text("")
        tab.add_row(str(anc), f"s{lv.stride}:{cx},{cy}", f"{float(c.score[q]):.3f}", f"{float(c.box_iou[q]):.3f}",
                    f"{float(c.mask_iou[q]):.3f}" if bool(c.has_mask_iou[q]) else "—", f"{float(c.overlap[q]):.3f}",
                    f"{float(c.align_metric[q]):.2e}", "✓" if bool(c.topk[q]) else "", res)
    rest = order[len(shown):]
    if len(rest):
        with_m = int(c.has_mask_iou[rest].sum())
        tab.caption = (f"{len(rest)} more candidates not shown: {with_m} with a mask IoU, {len(rest) - with_m} "
                       "without · cell: stride:x,y · k: picked by its top-k · mask: — where not computed")
    else:
        tab.caption = "cell: stride:x,y · k: picked by its top-k · mask: — where not computed"
    return tab


def header_26(trace: Trace, con: Console) -> None:
    cfg, a = trace.config, trace.config.assigner
    topk2 = f", topk2 {a.topk2}" if a.topk2 else ""
    con.print(Panel(
        f"{a.name} · profile [bold]{a.profile}[/], GT sides < {cfg.stride_val:g} px enlarged for candidate selection\n"
        f"topk {a.topk}{topk2}, alpha {a.alpha:g}, beta {a.beta:g} · overlap = (box CIoU u + mask IoU) / 2; the mask "
        f"IoU of each GT's {int(trace['mask_k'])} (3·topk) best candidates by s^{a.alpha:g}·u^{a.beta:g}, 0 for the "
        f"others\n{mask_line(trace)}\nheads: {trace.heads_source}",
        title="Mask-aware task-aligned assignment (SegTaskAlignedAssigner)", expand=False))


def render_assign_26(trace: Trace, con: Console, images: list[int], full: bool, rows: int | None = None) -> None:
    header_26(trace, con)
    rows = rows or trace.config.assigner.topk + 3
    for i in images:
        con.print(Rule(f"image {i} · {trace.labels.images[i]}"))
        n = trace.n_gts(i)
        fg = trace["fg_mask"][i]
        if n == 0:
            con.print(f"background image: no labels; all {fg.numel()} anchors are background (they only add "
                      "classification loss)")
            continue
        area, gb = trace["gt_mask_area"][i], trace["gt_bboxes"][i]
        for j in range(n):
            f, ln = trace.gt_origin[i][j]
            con.print(Text.assemble((f"GT {j}", f"bold {gt_style(j)}"),
                                    f" ({f}:{ln}) class {int(trace['gt_labels'][i, j, 0])} · box {fmt_box(gb[j], 0)} px · "
                                    f"GT mask {int(area[j])} px"))
            con.print(fit(con, candidate_table(trace, i, j, rows, full), ("cell", "k")))
        con.print(f"anchors claimed by more than one GT: {int(trace['mask_multi'][i].sum())} (each goes to the "
                  f"largest overlap) · foreground anchors: {int(fg.sum())} · background: {int((~fg).sum())}")
        render_summary(trace, con, i)


# ------------------------------------------------------------------------------------------------ loss
def render_loss(trace: Trace, con: Console, images: list[int]) -> None:
    from ..assigners.seg_family import loss_items

    cfg, b = trace.config, trace.batch
    lo = cfg.loss
    tss, n_fg = float(trace["target_scores_sum"]), int(trace["n_fg"])
    third = "dfl" if cfg.reg_max > 1 else "l1"
    con.print(Panel(
        f"target_scores_sum = max(Σ target_scores, 1) = {tss:.6g} (box, cls, {third} are divided by it); "
        f"positives = {n_fg} (seg is divided by it)\n{mask_line(trace)}\nheads: {trace.heads_source}",
        title=f"Segmentation loss ({trace.family.loss_name})", expand=False))
    tab = Table(title="Terms (as ultralytics logs them; the backward pass uses weighted × batch size)")
    for c in ("term", "what", "raw", "gain", "weighted", f"× batch ({b})"):
        tab.add_column(c, justify="right" if c not in ("term", "what") else "left")
    sem_what = ("0.5·BCE + 0.5·Dice of the semantic logits" if bool(trace["has_semantic"])
                else "none: the heads carry no semantic logits")
    for name, what, raw, gain, w in (
        ("box", "(1 − CIoU) × weight over positives", "raw_box", lo.box, "loss_box"),
        ("seg", "per positive: BCE in its GT box / box area, mean over positives", "raw_seg", lo.box, "loss_seg"),
        ("cls", "BCE over all anchors and classes", "raw_cls", lo.cls, "loss_cls"),
        (third, "DFL of the 4 sides × weight" if cfg.reg_max > 1 else "L1 of image-normalised ltrb × weight",
         "raw_dfl", lo.dfl, "loss_dfl"),
        ("sem", sem_what, "raw_sem", lo.box, "loss_sem"),
    ):
        tab.add_row(name, what, f"{float(trace[raw]):.6g}", f"{gain:g}", f"{float(trace[w]):.6g}",
                    f"{float(trace[w]) * b:.6g}")
    items = loss_items(trace)
    total = sum(items.values())
    tab.add_row("total", "", "", "", f"{total:.6g}", f"{total * b:.6g}", style="bold")
    con.print(fit(con, tab, ("what",)))
    con.print("logged: " + "  ".join(f"{k} {v:.5g}" for k, v in items.items()))

    pa = {k: trace[f"{k}_per_anchor"] for k in ("cls", "box", "dfl", "seg")}
    fg, ts = trace["fg_mask"], trace["target_scores"]
    img = Table(title="Per image (raw contributions; they add up to the raw terms)", box=rbox.SIMPLE_HEAD,
                pad_edge=False)
    for c in ("image", "name", "GTs", "pos", "Σ score", "box", "seg", "cls", third):
        img.add_column(c, justify="right" if c != "name" else "left")
    for i in range(b):
        seg_i = float(pa["seg"][i].sum()) / max(n_fg, 1)
        img.add_row(str(i), trace.labels.images[i], str(trace.n_gts(i)), str(int(fg[i].sum())),
                    f"{float(ts[i].sum()):.4f}", f"{float(pa['box'][i].sum()):.5g}", f"{seg_i:.5g}",
                    f"{float(pa['cls'][i].sum()):.5g}", f"{float(pa['dfl'][i].sum()):.5g}")
    con.print(fit(con, img, ("name", "Σ score")))

    tgi, ciou = trace["target_gt_idx"], trace["ciou"]
    seg_gt, area = trace["seg_per_gt"], trace["gt_mask_area"]
    for i in images:
        n = trace.n_gts(i)
        if n == 0:
            continue
        gt = Table(title=f"Per GT · image {i} (raw contributions of its positives)", title_justify="left",
                   box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c in ("GT", "cls", "pos", "Σ weight", "CIoU", "box", "seg", "cls@pos", third, "mask px", "box area"):
            gt.add_column(c, justify="right", no_wrap=True)
        for j in range(n):
            sel = fg[i] & (tgi[i] == j)
            k = int(sel.sum())
            barea = float(trace["seg_box_area"][i][sel][0]) if k else None
            gt.add_row(Text(gt_symbol(j), style=gt_style(j)), str(int(trace["gt_labels"][i, j, 0])), str(k),
                       f"{float(ts[i][sel].sum()):.4f}", f"{float(ciou[i][sel].mean()):.4f}" if k else "—",
                       f"{float(pa['box'][i][sel].sum()):.4g}", f"{float(seg_gt[i, j]):.4g}",
                       f"{float(pa['cls'][i][sel].sum()):.4g}", f"{float(pa['dfl'][i][sel].sum()):.4g}",
                       str(int(area[i, j])), "—" if barea is None else f"{barea:.4f}")
        con.print(fit(con, gt, ("cls@pos", "CIoU", "Σ weight", "box area")))
        con.print(Text("seg: the GT's share of raw seg (its positives' BCE in the GT box / box area, ÷ all positives); "
                       "box area: the GT box as a fraction of the image", style="dim"), soft_wrap=False)
    if "e2e_weighted" in trace:
        render_e2e(trace, con)
    elif cfg.assigner.name.startswith("seg26") and "branch of an end-to-end head" in trace.heads_source:
        note(con, "end-to-end model: the trainer adds both branches, 0.8·one2many + 0.2·one2one at epoch 0 "
             "(--assigner seg26 / seg26-o2o show each branch)")


def render_e2e(trace: Trace, con: Console) -> None:
    """Both branches of an end-to-end YOLO26-seg model, their weights and what the trainer logs."""
    from .e2e import e2e_stage_table

    con.print(fit(con, e2e_stage_table(trace, list(_item_names(trace)))))


def _item_names(trace: Trace) -> tuple[str, ...]:
    return ("box_loss", "seg_loss", "cls_loss", "dfl_loss" if trace.config.reg_max > 1 else "l1_loss", "sem_loss")


# ------------------------------------------------------------------------------------------------ walk
def render_walk(trace: Trace, con: Console, full: bool) -> None:
    """Walk steps 6 onwards: GT masks, (mask IoUs), metric, top-k and conflicts, targets, loss."""
    from .walk import step

    step(con, "6a. GT masks: polygons resampled to 1000 points, letterboxed, filled and shrunk to imgsz / 4",
         mask_line(trace))
    print_tensor(con, "gt_masks", trace["gt_masks"].float(), "(b, M, H, W) bool", full)
    print_tensor(con, "gt_order", trace["gt_order"], "(b, M) label row of each GT slot (-1 padding)", full)
    if "mask_in_gts" not in trace:  # assigned on candidate pairs: no dense (b, M, A) stages
        step(con, "6b. Assignment on candidate pairs", trace.summarised)
        for name, what in (("pair_b", "image"), ("pair_m", "GT slot"), ("pair_a", "anchor"),
                           ("pair_t", "alignment metric t"), ("pair_pos", "final positive")):
            print_tensor(con, name, trace[name], f"(P,) {what} of each candidate pair", full)
    else:
        _walk_dense(trace, con, full)
    step(con, "7. Targets", "fg_mask marks anchors with a GT; background anchors keep placeholders (GT 0)")
    _walk_targets_and_loss(trace, con, full)


def _walk_dense(trace: Trace, con: Console, full: bool) -> None:
    from .walk import step

    cfg, a, b = trace.config, trace.config.assigner, trace.batch
    step(con, "6b. Candidates: anchor centres inside each GT",
         f"GT sides < {cfg.stride_val:g} px are first enlarged to {cfg.stride_val:g} px")
    for i in range(b):
        print_tensor(con, f"in_gts_mask[{i}]", trace["mask_in_gts"][i].float(), "(M, A)", full)
    if "pair_mask_iou" in trace:
        step(con, "6c. Mask IoU of each GT's 3·topk best candidates by s^alpha·u^beta",
             "predicted mask = coef @ protos > 0, cropped to the predicted box at prototype resolution; "
             "IoU = inter / max(union, 1) in pixels; every other candidate's mask IoU is 0")
        print_tensor(con, "box_metric", trace["box_metric"], "(b, M, A) s^alpha·u^beta + eps at candidates", full)
        print_tensor(con, "pair_mask_iou", trace["pair_mask_iou"], "(P,) mask IoU of each selected pair", full)
        what = "(b, M, A) (u + mask IoU) / 2 at candidates"
    else:
        what = "(b, M, A) CIoU u at candidates"
    step(con, "6d. Metric: t = s^alpha · overlap^beta over candidates", f"alpha {a.alpha:g}, beta {a.beta:g}")
    print_tensor(con, "overlaps", trace["overlaps"], what, full)
    print_tensor(con, "align_metric", trace["align_metric"], "(b, M, A) t at candidates", full)
    step(con, "6e. Top-k and conflicts", f"each GT keeps its {a.topk} largest t among its candidates; an anchor "
         "picked by several GTs goes to the GT with the largest overlap"
         + (f"; topk2 {a.topk2} keeps that many per GT" if a.topk2 else ""))
    print_tensor(con, "mask_pos", trace["mask_pos"].float(), "(b, M, A) final positives", full)


def _walk_targets_and_loss(trace: Trace, con: Console, full: bool) -> None:
    from .walk import step

    cfg, b = trace.config, trace.batch
    print_tensor(con, "fg_mask", trace["fg_mask"].float(), "(b, A)", full)
    print_tensor(con, "target_gt_idx", trace["target_gt_idx"], "(b, A), meaningful where fg_mask", full)
    print_tensor(con, "target_scores", trace["target_scores"], "(b, A, nc) soft one-hot", full)
    for i in range(b):
        if trace.n_gts(i):
            render_summary(trace, con, i)
        else:
            con.print(Text(f"image {i}: background image (no labels)", style="dim"))
    if "loss_box" in trace:
        step(con, f"8. Loss ({trace.family.loss_name}: box, seg, cls, {'dfl' if cfg.reg_max > 1 else 'l1'}, sem)")
        render_loss(trace, con, list(range(b)))
    else:
        warn(con, "loss not computed")
