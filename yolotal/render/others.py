"""Terminal views of the assigners other than TAL (ATSS, SimOTA, YOLOv5) and the per-GT summary they share
with `compare`. They read the trace only."""

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
from .fmt import fit, num, size
from .terminal import gt_style, gt_symbol, render_gt_tensors, print_tensor, warn

OFFSET_NAMES = ("centre", "left", "up", "right", "down")
DESCRIPTIONS = {
    "atss": "YOLOv6 / mmyolo ATSS: per level the {topk} priors (5-stride boxes) nearest the GT centre; IoU "
            "threshold = mean + std of their IoUs; positives: IoU > threshold and centre inside the GT; an anchor "
            "claimed twice goes to the larger prior IoU. Soft score: IoU(GT, predicted box).",
    "simota": "YOLOX SimOTA ({profile}): cost = BCE(sqrt(cls·obj)) + 3·(−log IoU) + penalty outside the geometry; "
              "dynamic k = int(Σ top-{topk} IoUs) ≥ 1 lowest-cost candidates per GT; conflicts go to the lowest cost.",
    "yolov5": "YOLOv5 static matching: a GT matches an anchor box when max(r, 1/r) < anchor_t ({anchor_t:g}) for "
              "w and h; its centre cell and the nearest neighbour cell in x and in y (0.5 rule) become positives. "
              "No predictions are used.",
}


def positives_by_gt(trace: Trace, image: int) -> list[list[int]]:
    """For each real GT of the image, its positive anchor cells (sorted)."""
    n = trace.n_gts(image)
    pos = trace["pos_triples"]
    pos = pos[(pos[:, 0] == image) & (pos[:, 1] < n)]
    out: list[list[int]] = [[] for _ in range(n)]
    for _, m, a in pos.tolist():
        out[m].append(a)
    return [sorted(x) for x in out]


def level_counts(trace: Trace, anchors: list[int]) -> str:
    counts: dict[int, int] = {}
    for a in anchors:
        s = cell_of(trace.levels, a)[0].stride
        counts[s] = counts.get(s, 0) + 1
    return " ".join(f"s{s}×{c}" for s, c in sorted(counts.items())) or "—"


def header(trace: Trace, con: Console) -> None:
    a = trace.config.assigner
    con.print(Panel(DESCRIPTIONS[a.name].format(topk=a.topk, profile=a.profile, anchor_t=a.anchor_t),
                    title=f"{a.name} assigner · profile {a.profile}", expand=False))


def summary_table(trace: Trace, image: int) -> Table:
    tab = Table(title=f"Per-GT summary · {trace.config.assigner.name} · image {image} ({trace.labels.images[image]})",
                title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("GT", "cls", "box px", "w×h px", "cand", "pos", "pos/stride", "flag"):
        tab.add_column(c, justify="left" if c in ("box px", "pos/stride", "flag") else "right")
    cand = trace["cand_triples"]
    cand = cand[cand[:, 0] == image]
    gb = trace["gt_bboxes"][image]
    per = positives_by_gt(trace, image)
    if not all(per):
        tab.title += " · flagged GTs first"
    for j in sorted(range(len(per)), key=lambda j: (bool(per[j]), j)):  # GTs with no positive first
        anchors = per[j]
        x1, y1, x2, y2 = gb[j].tolist()
        nc_ = int((cand[:, 1] == j).sum()) if trace.family.has_candidates else None
        tab.add_row(Text(gt_symbol(j), style=gt_style(j)), str(int(trace["gt_labels"][image, j, 0])),
                    f"({num(x1, 0)},{num(y1, 0)} {num(x2, 0)},{num(y2, 0)})", f"{size(x2 - x1)}×{size(y2 - y1)}",
                    "—" if nc_ is None else str(nc_), str(len(anchors)), level_counts(trace, anchors),
                    Text("NO POSITIVES", style="bold red") if not anchors else "")
    return tab


def _cell(trace: Trace, a: int) -> str:
    lv, gy, gx = cell_of(trace.levels, a)
    return f"s{lv.stride} ({gx},{gy})"


# ------------------------------------------------------------------------------------------------ ATSS
def atss_image(trace: Trace, con: Console, i: int, rows: int) -> None:
    ov, dist, cand = trace["prior_overlaps"][i], trace["distances"][i], trace["candidate_idxs"][i]
    thr, is_pos, in_gt = trace["iou_threshold"][i], trace["is_pos"][i], trace["in_gt"][i]
    fg, tgi = trace["fg_mask"][i], trace["target_gt_idx"][i]
    for j in range(trace.n_gts(i)):
        c = cand[j]
        vals = ov[j, c]
        tab = Table(title=f"GT {j}: {c.numel()} candidates (nearest {trace.config.assigner.topk} per level) · "
                          f"IoU mean {float(vals.mean()):.4f} + std {float(vals.std()):.4f} = threshold "
                          f"{float(thr[j]):.4f}", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        for col in ("anchor", "cell", "dist px", "prior IoU", "> thr", "in GT", "result"):
            tab.add_column(col, justify="left" if col in ("cell", "result") else "right")
        order = torch.argsort(ov[j, c], descending=True)[:rows]
        for a in c[order].tolist():
            if fg[a] and int(tgi[a]) == j:
                res = Text("positive", style="bold green")
            elif bool(is_pos[j, a]) and bool(in_gt[j, a]):
                res = Text(f"lost to GT {int(tgi[a])} (larger prior IoU)", style="yellow")
            elif not bool(is_pos[j, a]):
                res = Text("below threshold", style="dim")
            else:
                res = Text("centre outside the GT", style="dim")
            tab.add_row(str(a), _cell(trace, a), num(dist[j, a]), f"{float(ov[j, a]):.4f}",
                        "✓" if bool(is_pos[j, a]) else "", "✓" if bool(in_gt[j, a]) else "", res)
        con.print(fit(con, tab))


# ------------------------------------------------------------------------------------------------ SimOTA
def simota_image(trace: Trace, con: Console, i: int, rows: int, full: bool) -> None:
    key = f"simota_cost[{i}]"
    if key not in trace:
        return
    cands = torch.nonzero(trace[f"simota_candidates[{i}]"]).flatten()
    cost, ious = trace[key], trace[f"simota_ious[{i}]"]
    cls_c, iou_c, geo = trace[f"simota_cls_cost[{i}]"], trace[f"simota_iou_cost[{i}]"], trace[f"simota_geometry[{i}]"]
    picked, matching, dk = trace[f"simota_picked[{i}]"], trace[f"simota_matching[{i}]"], trace[f"simota_dynamic_k[{i}]"]
    topk = trace[f"simota_topk_ious[{i}]"]
    con.print(f"{cands.numel()} candidate anchors (the geometry constraint) · cost matrix (n, C) = {tuple(cost.shape)}")
    print_tensor(con, f"pair_wise_ious[{i}]", ious, "(n, C) IoU(GT, predicted box)", full)
    print_tensor(con, f"cost[{i}]", cost, "(n, C) cls + 3·(−log IoU) + penalty", full)
    for j in range(cost.shape[0]):
        tab = Table(title=f"GT {j}: top-{topk.shape[1]} IoUs sum {float(topk[j].sum()):.3f} → dynamic k = {int(dk[j])}; "
                          f"its {min(rows, cost.shape[1])} lowest-cost candidates", title_justify="left",
                    box=rbox.SIMPLE_HEAD, pad_edge=False)
        for col in ("anchor", "cell", "IoU", "cls cost", "3·(−log IoU)", "in geometry", "cost", "picked", "result"):
            tab.add_column(col, justify="left" if col in ("cell", "result") else "right")
        for c in torch.argsort(cost[j])[:rows].tolist():
            a = int(cands[c])
            if bool(matching[j, c]):
                res = Text("positive", style="bold green")
            elif bool(picked[j, c]):
                res = Text(f"lost to GT {int(matching[:, c].to(torch.uint8).argmax())} (lower cost)", style="yellow")
            else:
                res = Text("not picked", style="dim")
            tab.add_row(str(a), _cell(trace, a), f"{float(ious[j, c]):.4f}", f"{float(cls_c[j, c]):.3f}",
                        f"{float(iou_c[j, c]):.3f}", "✓" if bool(geo[j, c]) else "✗ penalty",
                        f"{float(cost[j, c]):.4g}", "✓" if bool(picked[j, c]) else "", res)
        con.print(fit(con, tab, ("in geometry", "picked")))


# ------------------------------------------------------------------------------------------------ YOLOv5
def yolov5_image(trace: Trace, con: Console, i: int) -> None:
    n = trace.n_gts(i)
    for lv in trace.levels:
        p = f"v5_l{lv.index}_"
        anchors, ratio, match = trace[p + "anchors"], trace[p + "ratio"], trace[p + "match"]
        sel_gt = torch.nonzero(torch.from_numpy(trace.labels.batch_idx == i)).flatten()  # label rows of the image
        tab = Table(title=f"level {lv.index} · stride {lv.stride} · anchors (grid units) "
                          + ", ".join(f"{num(w, 2)}×{num(h, 2)}" for w, h in anchors.tolist()),
                    title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        tab.add_column("GT", justify="right")
        for k in range(anchors.shape[0]):
            tab.add_column(f"a{k}: max(r,1/r)", justify="right")
        tab.add_column("cells (anchor: gy,gx via offset)", justify="left")
        e_img, e_gt, e_a = trace[p + "image"], trace[p + "gt"], trace[p + "anchor"]
        e_gy, e_gx, e_off = trace[p + "gy"], trace[p + "gx"], trace[p + "offset"]
        for j in range(n):
            row = sel_gt[j]
            cells = [f"a{int(e_a[e])}:{int(e_gy[e])},{int(e_gx[e])} {OFFSET_NAMES[int(e_off[e])]}"
                     for e in torch.nonzero((e_img == i) & (e_gt == j)).flatten().tolist()]
            tab.add_row(Text(gt_symbol(j), style=gt_style(j)),
                        *[Text(f"{float(ratio[k, row]):.3f}", style="green" if bool(match[k, row]) else "dim")
                          for k in range(anchors.shape[0])], "; ".join(cells) or "—")
        con.print(fit(con, tab))
        entries = torch.nonzero(e_img == i).flatten().tolist()
        if entries:
            tb = trace[p + "tbox"]
            et = Table(title=f"level {lv.index}: the {len(entries)} targets (image, anchor, gy, gx) and tbox "
                             "(x, y from the cell's corner, w, h; grid units)", title_justify="left",
                       box=rbox.SIMPLE_HEAD, pad_edge=False)
            for col in ("GT", "anchor", "gy", "gx", "cell from", "tbox x", "tbox y", "tbox w", "tbox h"):
                et.add_column(col, justify="right")
            for e in entries:
                et.add_row(Text(gt_symbol(int(e_gt[e])), style=gt_style(int(e_gt[e]))), str(int(e_a[e])),
                           str(int(e_gy[e])), str(int(e_gx[e])), OFFSET_NAMES[int(e_off[e])],
                           *[f"{float(v):.4f}" for v in tb[e]])
            con.print(fit(con, et))


def render_assign_other(trace: Trace, con: Console, images: list[int], full: bool, rows: int = 12,
                        gt_tensors: bool = True) -> None:
    header(trace, con)
    if gt_tensors:
        render_gt_tensors(trace, con, full)
    name = trace.config.assigner.name
    for i in images:
        con.print(Rule(f"image {i} · {trace.labels.images[i]}"))
        if trace.n_gts(i) == 0:
            con.print("background image: no labels, no positives")
            continue
        trace.family.render_image(trace, con, i, rows, full)
        con.print(fit(con, summary_table(trace, i), ("pos/stride",)))
        for j, anchors in enumerate(positives_by_gt(trace, i)):
            if not anchors:
                f, ln = trace.gt_origin[i][j]
                warn(con, f"GT {j} ({f}:{ln}) gets no positive from {name}")


# ------------------------------------------------------------------------------------------------ compare
def render_compare(traces: dict[str, Trace], con: Console, images: list[int]) -> None:
    """Per GT: positives per assigner and level, and which anchors they disagree on."""
    names = list(traces)
    first = traces[names[0]]
    for i in images:
        con.print(Rule(f"image {i} · {first.labels.images[i]}"))
        if first.n_gts(i) == 0:
            con.print("background image: no labels; every assigner gives no positives")
            continue
        per = {k: positives_by_gt(t, i) for k, t in traces.items()}
        tab = Table(title=f"Positives per GT: count (per stride); second line: anchor cells shared with {names[0]} "
                          f"(∩), only in {names[0]} (−), only in this assigner (+)", title_justify="left",
                    box=rbox.SIMPLE_HEAD, pad_edge=False)
        tab.add_column("GT", justify="right")
        tab.add_column("w×h px", justify="right")
        for k in names:
            tab.add_column(k, justify="left")
        gb = first["gt_bboxes"][i]
        for j in range(first.n_gts(i)):
            x1, y1, x2, y2 = gb[j].tolist()
            base = set(per[names[0]][j])
            cells = []
            for k in names:
                mine = per[k][j]
                text = f"{len(mine)} ({level_counts(first, mine)})"
                if k != names[0]:
                    other = set(mine)
                    text += f"\n∩{len(base & other)} −{len(base - other)} +{len(other - base)}"
                cells.append(Text(text, style="bold red" if not mine else ""))
            tab.add_row(Text(gt_symbol(j), style=gt_style(j)), f"{size(x2 - x1)}×{size(y2 - y1)}", *cells)
        con.print(fit(con, tab, ("w×h px",)))
        for j in range(first.n_gts(i)):
            none = [k for k in names if not per[k][j]]
            if none and len(none) < len(names):
                f, ln = first.gt_origin[i][j]
                con.print(Text.assemble(("✗ ", "bold red"), f"GT {j} ({f}:{ln}): no positive from {', '.join(none)}; "
                                        f"positives from {', '.join(k for k in names if per[k][j])}"), soft_wrap=True)


# ------------------------------------------------------------------------------------------------ YOLOX loss
def render_yolox_loss(trace: Trace, con: Console, images: list[int]) -> None:
    """YOLOX's loss terms, per image and per GT (raw sums before the division by num_fg)."""
    num_fg = int(trace["yolox_num_fg"])
    con.print(Panel(f"YOLOX loss on the SimOTA targets · num_fg {num_fg} (the divisor of every term)\n"
                    "iou: 5.0 × Σ(1 − IoU²) over foreground · obj: Σ BCE(objectness, fg) over every anchor · "
                    "cls: Σ BCE(class logits, one-hot × matched IoU) over foreground · no L1 term (YOLOX adds "
                    "it only in the last no-augmentation epochs)", title="YOLOX loss", expand=False))
    tab = Table(title="Terms (as YOLOX logs them)", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("term", "value"):
        tab.add_column(c, justify="right")
    for name, key in (("iou_loss (×5)", "yolox_loss_iou"), ("conf_loss", "yolox_loss_obj"), ("cls_loss", "yolox_loss_cls"),
                      ("total_loss", "yolox_loss")):
        tab.add_row(name, f"{float(trace[key]):.6g}")
    con.print(fit(con, tab))
    iou_pa, obj_pa, cls_pa, fg = trace["iou_per_anchor"], trace["obj_per_anchor"], trace["cls_per_anchor"], trace["fg_mask"]
    img = Table(title="Per image (raw sums; divide by num_fg for the terms)", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("image", "fg", "Σ(1−IoU²)", "Σ obj BCE", "Σ cls BCE"):
        img.add_column(c, justify="right")
    for i in images:
        img.add_row(str(i), str(int(fg[i].sum())), f"{float(iou_pa[i].sum()):.5g}", f"{float(obj_pa[i].sum()):.5g}",
                    f"{float(cls_pa[i].sum()):.5g}")
    con.print(fit(con, img))
    tgi, ious = trace["target_gt_idx"], trace["pred_ious"]
    for i in images:
        n = trace.n_gts(i)
        if not n:
            continue
        gt = Table(title=f"Per GT · image {i}", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c in ("GT", "positives", "mean IoU", "Σ(1−IoU²)", "Σ cls BCE"):
            gt.add_column(c, justify="right")
        for j in range(n):
            sel = fg[i] & (tgi[i] == j)
            k = int(sel.sum())
            gt.add_row(Text(gt_symbol(j), style=gt_style(j)), Text(str(k), style="bold red" if not k else ""),
                       f"{float(ious[i][sel].mean()):.4f}" if k else "—", f"{float(iou_pa[i][sel].sum()):.5g}",
                       f"{float(cls_pa[i][sel].sum()):.5g}")
        con.print(fit(con, gt))


# ------------------------------------------------------------------------------------------------ YOLOv5 loss
def render_v5_loss(trace: Trace, con: Console, images: list[int]) -> None:
    """YOLOv5's loss items, per level and per GT."""
    lo = trace.config.loss
    con.print(Panel("YOLOv5 loss (ComputeLoss): box = mean(1 − CIoU) of each level's targets; obj = BCE over every "
                    "(anchor, cell) with target CIoU at the targets, weighted 4.0 / 1.0 / 0.4 by level; cls = BCE of the "
                    f"targets' class logits; gains box {lo.v5_box:g}, obj {lo.v5_obj:g}, cls {lo.v5_cls:g} (config "
                    "loss.v5_box / v5_obj / v5_cls; YOLOv5's train.py rescales them by the number of levels, classes "
                    "and imgsz); total = (box + obj + cls) × batch size", title="YOLOv5 loss", expand=False))
    tab = Table(title="Terms (as YOLOv5 logs them)", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("term", "value"):
        tab.add_column(c, justify="right")
    for name, key in (("box", "v5_lbox"), ("obj", "v5_lobj"), ("cls", "v5_lcls"), ("total (× batch)", "v5_loss")):
        tab.add_row(name, f"{float(trace[key]):.6g}")
    con.print(fit(con, tab))
    lv_tab = Table(title="Per level (before gains and balance)", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("level", "stride", "targets", "mean 1−CIoU", "obj BCE", "cls BCE"):
        lv_tab.add_column(c, justify="right")
    for lv in trace.levels:
        p = f"v5_l{lv.index}_"
        lv_tab.add_row(str(lv.index), str(lv.stride), str(int(trace[p + "image"].numel())),
                       f"{float(trace['v5_level_box'][lv.index]):.5g}", f"{float(trace['v5_level_obj'][lv.index]):.5g}",
                       f"{float(trace['v5_level_cls'][lv.index]):.5g}")
    con.print(fit(con, lv_tab))
    for i in images:
        n = trace.n_gts(i)
        if not n:
            continue
        gt = Table(title=f"Per GT · image {i}: target entries and the CIoU of their predicted boxes",
                   title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c in ("GT", "entries", "mean CIoU", "per stride"):
            gt.add_column(c, justify="right" if c != "per stride" else "left")
        for j in range(n):
            vals, per = [], []
            for lv in trace.levels:
                p = f"v5_l{lv.index}_"
                sel = (trace[p + "image"] == i) & (trace[p + "gt"] == j)
                k = int(sel.sum())
                if k:
                    vals.append(trace[f"v5_l{lv.index}_ciou"][sel])
                    per.append(f"s{lv.stride}×{k}")
            allv = torch.cat(vals) if vals else torch.zeros(0)
            gt.add_row(Text(gt_symbol(j), style=gt_style(j)), Text(str(allv.numel()), style="" if allv.numel() else "bold red"),
                       f"{float(allv.mean()):.4f}" if allv.numel() else "—", " ".join(per) or "—")
        con.print(fit(con, gt))
