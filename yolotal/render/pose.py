"""Terminal views of the pose families (pose, pose26, pose26-o2o). They read the trace only.

assign: YOLOv8/YOLO11-pose shows the detection TAL view, then each GT's keypoints and keypoint loss; YOLO26-pose
shows per GT its level gate (which strides are open for its sqrt(area) and why, whether the fallback applied),
its candidates with s, OKS (with the 0.53·w·h area and the sigmas used), t and their fate, then the same keypoint
table. loss: the terms in the trainer's log order (box, pose, kobj, cls, dfl/l1[, rle]) per image and per GT.
"""

from __future__ import annotations

import torch
from rich import box as rbox
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from ..pipeline import Trace
from .fmt import fit, num, size
from .terminal import conflict_table, gt_style, gt_symbol, note, render_gt_tensors, render_summary, warn

TERM_TEXT = {
    "box_loss": "(1 − CIoU) × weight over positives",
    "pose_loss": "OKS-based keypoint loss over positives",
    "kobj_loss": "BCE of the visibility logit",
    "cls_loss": "BCE over all anchors and classes",
    "dfl_loss": "DFL of the 4 sides × weight",
    "l1_loss": "L1 of image-normalised ltrb × weight",
    "rle_loss": "RLE of visible keypoints (RealNVP)",
}
LOSS_KEYS = {"box_loss": ("raw_box", "loss_box"), "pose_loss": ("raw_pose", "loss_pose"),
             "kobj_loss": ("raw_kobj", "loss_kobj"), "cls_loss": ("raw_cls", "loss_cls"),
             "dfl_loss": ("raw_dfl", "loss_dfl"), "l1_loss": ("raw_dfl", "loss_dfl"), "rle_loss": ("raw_rle", "loss_rle")}


def is_26(trace: Trace) -> bool:
    return "gate_fallback" in trace


def pose_result(trace: Trace):
    """The pure module's PoseTALResult rebuilt from the trace (for gt_levels / gt_candidates)."""
    from ..assigners.pose_tal import LevelGate, OKSStage, PoseTALResult
    from ..assigners.tal import TALResult

    g = LevelGate(level_strides=trace["level_strides"], anchor_level=trace["anchor_level"], size=trace["gt_size"],
                  lower=trace["level_lower"], upper=trace["level_upper"], too_small=trace["too_small"],
                  too_large=trace["too_large"], level_open=trace["level_open"], mask_in_box=trace["mask_in_box"],
                  mask_gated=trace["mask_gated"], fallback=trace["gate_fallback"], no_candidates=trace["no_candidates"],
                  mask_in_gts=trace["mask_in_gts"])
    o = OKSStage(sigmas=trace["kpt_sigmas"], oks_area=trace["oks_area"], n_visible=trace["n_visible"],
                 uses_oks=trace["uses_oks"], ciou=trace["cand_ciou"], oks=trace["cand_oks"],
                 pair_b=trace["oks_pair_b"], pair_m=trace["oks_pair_m"], pair_a=trace["oks_pair_a"],
                 pair_kpt_sim=trace["pair_kpt_sim"], pair_kpt_dist=trace["pair_kpt_dist"])
    names = ("cand_bboxes", "mask_in_gts", "bbox_scores", "overlaps", "align_metric", "topk_idxs", "mask_topk",
             "mask_pos_topk", "mask_multi", "mask_pos", "fg_mask", "target_gt_idx", "target_labels", "target_bboxes",
             "target_scores", "pos_align_metrics", "pos_overlaps", "norm_align_metric")
    return PoseTALResult(gate=g, oks=o, tal=TALResult(**{k: trace[k] for k in names}))


def _sigmas_line(trace: Trace) -> str:
    from ..core.keypoints import select_sigmas

    kc = trace.config.keypoints
    _, why = select_sigmas(kc.shape, kc.oks_sigmas)
    s = trace["kpt_sigmas"].tolist()
    shown = ", ".join(f"{v:.3g}" for v in s[:6]) + (" …" if len(s) > 6 else "")
    return f"kpt_shape {list(kc.shape)} ({kc.source}); OKS sigmas: {why} [{shown}]"


# ------------------------------------------------------------------------------------------------ assign
def render_pose_assign(trace: Trace, con: Console, images: list[int], full: bool) -> None:
    if not is_26(trace):
        from .terminal import render_assign

        render_assign(trace, con, images, full)
        con.print(Rule("keypoints (YOLOv8/YOLO11-pose: assignment is the detection TAL above)"))
        note(con, _sigmas_line(trace))
        for i in images:
            keypoint_table(trace, con, i)
        return
    a = trace.config.assigner
    from ..assigners.pose_tal import LEVEL_RANGE

    lo, hi = LEVEL_RANGE
    topk2 = f", topk2 {a.topk2}" if a.topk2 else ""
    con.print(Panel(
        f"YOLO26-pose ({a.name}): candidates = anchor centres in the (small-side enlarged) box, on levels with "
        f"{lo:g}·stride ≤ √(w·h) ≤ {hi:g}·stride (finest: no lower bound, coarsest: no upper bound; no level left → "
        f"the ungated candidates); u = OKS = mean over visible keypoints of exp(−d² / ((2σ)²·(0.53·w·h + eps)·2)), "
        f"CIoU for a GT without visible keypoints; t = s^{a.alpha:g}·u^{a.beta:g}\n"
        f"topk {a.topk}{topk2}, eps {a.eps:g} · heads: {trace.heads_source}\n{_sigmas_line(trace)}",
        title="Pose task-aligned assignment", expand=False,
    ))
    render_gt_tensors(trace, con, full)
    res = pose_result(trace)
    rows = a.topk + 3
    for i in images:
        con.print(Rule(f"image {i} · {trace.labels.images[i]}"))
        n = trace.n_gts(i)
        fg = trace["fg_mask"][i]
        if n == 0:
            con.print(f"background image: no labels; all {fg.numel()} anchors are background "
                      "(they only add classification loss)")
            continue
        for j in range(n):
            gt_view(trace, con, res, i, j, rows, full)
        ct = conflict_table(trace, i)
        if ct is not None:
            ct.title = str(ct.title).replace("the largest CIoU", "the largest u (OKS, or CIoU)")
        con.print(fit(con, ct) if ct is not None else Text("no anchor was claimed by more than one GT", style="dim"))
        con.print(f"foreground anchors: {int(fg.sum())} · background: {int((~fg).sum())} "
                  f"(background has no GT: its target_gt_idx 0 and target label are placeholders)")
        render_summary(trace, con, i)
        keypoint_table(trace, con, i)


def gt_view(trace: Trace, con: Console, res, i: int, j: int, rows: int, full: bool) -> None:
    """One GT of YOLO26-pose: its numbers, its level gate, its candidates."""
    from ..assigners.pose_tal import gt_candidates, gt_levels

    gb = trace["gt_bboxes"][i, j]
    w, h = float(gb[2] - gb[0]), float(gb[3] - gb[1])
    f, ln = trace.gt_origin[i][j]
    k = trace["gt_kpts"].shape[2]
    nv = int(trace["n_visible"][i, j])
    u_is = "u = OKS" if nv else "u = CIoU (no visible keypoint)"
    con.print(Text.assemble((f"GT {j}", gt_style(j)), f" ({f}:{ln}) class {int(trace['gt_labels'][i, j, 0])}: box "
                            f"({num(gb[0])},{num(gb[1])},{num(gb[2])},{num(gb[3])}) px, {size(w)}×{size(h)}, "
                            f"√area {float(trace['gt_size'][i, j]):.1f} px, OKS area 0.53·w·h = "
                            f"{float(trace['oks_area'][i, j]):.1f} px², {nv}/{k} keypoints visible; {u_is}"),
             soft_wrap=False)
    lv = Table(title=f"GT {j}: level gate", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("stride", "takes √area", "gate", "in box", "cand", "pos"):
        lv.add_column(c, justify="left" if c in ("gate", "takes √area") else "right")
    for r in gt_levels(res, i, j):
        lv.add_row(str(r["stride"]), f"[{r['lower']:g}, {r['upper']:g}]",
                   Text(r["reason"], style="" if r["open"] else "yellow"), str(r["in_box"]), str(r["candidates"]),
                   str(r["positives"]))
    con.print(fit(con, lv))
    if bool(trace["no_candidates"][i, j]):
        con.print(Text(f"GT {j}: no anchor centre of any level lies inside its box: no candidates", style="bold red"))
    elif bool(trace["gate_fallback"][i, j]):
        con.print(Text(f"GT {j}: fallback: the gate closed every level that has an anchor inside the box, so its "
                       "ungated in-box anchors are the candidates", style="cyan"))
    cands = gt_candidates(res, trace["anchor_points"] * trace["stride_tensor"], i, j, trace["kpts_px"],
                          trace["gt_kpts"], trace["gt_bboxes"], trace.config.assigner.eps)
    kept = [c for c in cands if c["kept"]]
    dropped = [c for c in cands if not c["kept"]]
    shown = kept if full else kept[:rows]
    shown_d = dropped if full else dropped[:4]
    a = trace.config.assigner
    tab = Table(title=f"GT {j}: {len(kept)} candidates by t = s^{a.alpha:g}·u^{a.beta:g} (top {len(shown)} shown)"
                + (f"; {len(dropped)} in-box anchors gated away" if dropped else ""),
                title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c in ("anchor", "stride", "cell", "gate", "s", "OKS" if nv else "CIoU", "t", "top", "result"):
        tab.add_column(c, justify="left" if c in ("gate", "result", "cell") else "right")
    for c in shown + shown_d:
        cell = f"{c['cell'][0]},{c['cell'][1]}"
        if not c["kept"]:
            u = Text(f"({c['oks_if_open']:.3f})", style="dim") if c.get("oks_if_open") is not None else "–"
            tab.add_row(str(c["anchor"]), str(c["stride"]), cell, Text("closed", style="yellow"), "–", u, "–", "",
                        Text("gated away", style="dim"))
            continue
        u = c["oks"] if c["oks"] is not None else c["ciou"]
        if c["positive"]:
            res_t = Text("positive", style="green")
        elif c["taken_by"] is not None:
            res_t = Text(f"lost→GT {c['taken_by']}", style="red")
        elif c["picked"]:
            res_t = Text("topk2 drop", style="red")
        else:
            res_t = Text("no pick", style="dim")
        tab.add_row(str(c["anchor"]), str(c["stride"]), cell, "open", f"{c['score']:.3f}", f"{u:.3f}",
                    f"{c['t']:.3g}", "✓" if c["picked"] else "", res_t)
    notes = []
    if shown_d and any(c.get("oks_if_open") is not None for c in shown_d):
        notes.append("(x): the OKS a gated-away anchor would have had; the trainer never computes it")
    more = len(kept) - len(shown) + len(dropped) - len(shown_d)
    if more > 0:
        notes.append(f"{more} more not shown (--full)")
    if notes:
        tab.caption = " · ".join(notes)
        tab.caption_justify = "left"
    con.print(fit(con, tab, ("cell",)))


def keypoint_table(trace: Trace, con: Console, i: int) -> None:
    """Per GT of one image: visible keypoints, positives, mean keypoint distance of its positives and its pose,
    kobj (and rle) loss contributions (raw)."""
    n = trace.n_gts(i)
    if n == 0:
        return
    has_loss = "pose_per_gt" in trace
    rle = "loss_rle" in trace
    tab = Table(title=f"Keypoints per GT · image {i} (raw loss contributions of its positives)", title_justify="left",
                box=rbox.SIMPLE_HEAD, pad_edge=False)
    cols = ["GT", "visible", "pos", "mean d px", "pose", "kobj"] + (["rle"] if rle else []) + ["flag"]
    for c in cols:
        tab.add_column(c, justify="left" if c == "flag" else "right")
    gk = trace["gt_kpts"][i]
    k = gk.shape[1]
    fg, tgi = trace["fg_mask"][i], trace["target_gt_idx"][i]
    for j in range(n):
        vis = gk[j, :, 2] != 0
        sel = torch.nonzero(fg & (tgi == j)).flatten()
        if len(sel) and bool(vis.any()):
            d = (trace["kpts_px"][i, sel][:, vis] - gk[j, vis, :2]).pow(2).sum(-1).sqrt()  # (p, v)
            md = f"{float(d.mean()):.1f}"
        else:
            md = "—"
        flag = ""
        if not bool(vis.any()):
            flag = "no visible keypoint"
        if not len(sel):
            flag = (flag + "; " if flag else "") + "NO POSITIVES"
        row = [Text(gt_symbol(j), style=gt_style(j)), f"{int(vis.sum())}/{k}", str(len(sel)), md]
        if has_loss:
            row += [f"{float(trace['pose_per_gt'][i, j]):.4g}", f"{float(trace['kobj_per_gt'][i, j]):.4g}"]
            row += [f"{float(trace['rle_per_gt'][i, j]):.4g}"] if rle else []
        else:
            row += ["—", "—"] + (["—"] if rle else [])
        row.append(Text(flag, style="bold red" if "NO POS" in flag else "yellow"))
        tab.add_row(*row)
    con.print(fit(con, tab, ("mean d px",)))


# ------------------------------------------------------------------------------------------------ loss
def render_pose_loss(trace: Trace, con: Console, images: list[int]) -> None:
    fam = trace.family
    cfg = trace.config
    b = trace.batch
    names = fam.loss_names(trace)
    meta = fam.loss_meta(cfg)["gains"]
    tss = float(trace["target_scores_sum"])
    con.print(Panel(
        f"{fam.loss_name}: target_scores_sum = max(Σ target_scores, 1) = {tss:.6g} (box, cls, dfl are divided by "
        f"it; pose and kobj are means over positives × keypoints"
        + ("; rle is divided by the number of visible keypoints and clamped at 0)" if "rle_loss" in names else ")")
        + f"\n{_sigmas_line(trace)}\nheads: {trace.heads_source}",
        title="Pose loss", expand=False,
    ))
    tab = Table(title="Terms (in the trainer's log order; the backward pass uses weighted × batch size)")
    for c in ("term", "what", "raw", "gain", "weighted", f"× batch ({b})"):
        tab.add_column(c, justify="right" if c not in ("term", "what") else "left")
    total = 0.0
    for nm in names:
        raw_k, w_k = LOSS_KEYS[nm]
        gain = meta[nm.split("_")[0]] if nm != "l1_loss" else meta["dfl"]
        w = float(trace[w_k])
        total += w
        tab.add_row(nm, TERM_TEXT[nm], f"{float(trace[raw_k]):.6g}", f"{gain:g}", f"{w:.6g}", f"{w * b:.6g}")
    tab.add_row("total", "", "", "", f"{total:.6g}", f"{total * b:.6g}", style="bold")
    con.print(fit(con, tab, ("what",)))

    if "e2e_weighted" in trace:
        from .e2e import e2e_stage_table

        con.print(fit(con, e2e_stage_table(trace, names)))

    rle = "rle_loss" in names
    fg = trace["fg_mask"]
    img = Table(title="Per image (raw contributions; they add up to the raw terms)", box=rbox.SIMPLE_HEAD,
                pad_edge=False)
    cols = ["image", "GTs", "pos", "box", "pose", "kobj", "cls", "dfl"] + (["rle"] if rle else [])
    for c in cols:
        img.add_column(c, justify="right")
    per = {"box": "box_per_anchor", "pose": "pose_per_anchor", "kobj": "kobj_per_anchor", "cls": "cls_per_anchor",
           "dfl": "dfl_per_anchor", "rle": "rle_per_anchor"}
    for i in range(b):
        img.add_row(str(i), str(trace.n_gts(i)), str(int(fg[i].sum())),
                    *[f"{float(trace[per[c]][i].sum()):.4g}" for c in cols[3:]])
    con.print(fit(con, img))

    for i in images:
        n = trace.n_gts(i)
        if n == 0:
            continue
        gt = Table(title=f"Per GT · image {i} ({trace.labels.images[i]}; raw contributions of its positives)",
                   title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        cols = ["GT", "pos", "visible", "box", "pose", "kobj", "dfl"] + (["rle"] if rle else []) + ["flag"]
        for c in cols:
            gt.add_column(c, justify="left" if c == "flag" else "right")
        gk = trace["gt_kpts"][i]
        for j in range(n):
            npos = int(trace["n_pos_per_gt"][i, j])
            nv = int((gk[j, :, 2] != 0).sum())
            vals = [f"{float(trace[k][i, j]):.4g}" for k in ("box_per_gt", "pose_per_gt", "kobj_per_gt", "dfl_per_gt")]
            if rle:
                vals.append(f"{float(trace['rle_per_gt'][i, j]):.4g}")
            flag = "NO POSITIVES" if npos == 0 else ("no visible keypoint: no pose loss" if nv == 0 else "")
            gt.add_row(Text(gt_symbol(j), style=gt_style(j)), str(npos), f"{nv}/{gk.shape[1]}", *vals,
                       Text(flag, style="bold red" if npos == 0 else "yellow"))
        con.print(fit(con, gt))
    if rle and "rle_valid" in trace and not bool(trace["rle_valid"].all()):
        warn(con, f"{int((~trace['rle_valid']).sum())} keypoint error(s) were NaN/inf and left out of the RLE term")


# ------------------------------------------------------------------------------------------------ walk
def walk_pose(trace: Trace, con: Console, full: bool) -> None:
    """Walk steps 6 onwards: keypoint decode, (YOLO26: the gate and OKS), the TAL steps, targets, the pose loss."""
    from .terminal import print_tensor
    from .walk import step

    gen26 = is_26(trace)
    step(con, "6. Keypoints", ("decode raw + anchor" if gen26 else "decode 2·raw + anchor − 0.5")
         + " in grid units, × stride for px; GT keypoints padded like the boxes (x, y px, visibility)")
    note(con, _sigmas_line(trace))
    print_tensor(con, "kpts_px", trace["kpts_px"], "(b, A, K, 2) predicted keypoints, px", full)
    print_tensor(con, "gt_kpts", trace["gt_kpts"], "(b, M, K, 3) GT keypoints px, visibility", full)
    if not gen26:
        a = trace.config.assigner
        step(con, "6a. Candidates: anchor centres inside each GT (the detection TAL)")
        print_tensor(con, "mask_in_gts", trace["mask_in_gts"].float(), "(b, M, A)", full)
        step(con, "6b. Metric: t = s^alpha · u^beta over candidates",
             f"s = score of the GT's class, u = CIoU clamped at 0; alpha {a.alpha:g}, beta {a.beta:g}")
        print_tensor(con, "overlaps", trace["overlaps"], "(b, M, A) CIoU u at candidates", full)
        print_tensor(con, "align_metric", trace["align_metric"], "(b, M, A) t at candidates", full)
        step(con, "6c. Top-k and conflicts", f"each GT keeps its {a.topk} largest t; an anchor picked by several GTs "
             "goes to the GT with the largest CIoU")
        print_tensor(con, "mask_pos", trace["mask_pos"].float(), "(b, M, A) final positives", full)
        _walk_targets_pose(trace, con, full)
        return
    step(con, "6a. Level gate", "a GT of size √(w·h) takes candidates on levels with 2·stride ≤ √area ≤ 12·stride; "
         "no level left → its ungated candidates (fallback)")
    print_tensor(con, "gt_size", trace["gt_size"], "(b, M) √(w·h) px", full)
    print_tensor(con, "level_open", trace["level_open"].float(), "(b, M, L) the gate's open levels", full)
    print_tensor(con, "gate_fallback", trace["gate_fallback"].float(), "(b, M) fallback applied", full)
    step(con, "6b. Overlap u = OKS", "exp(−d² / ((2σ)²·(0.53·w·h + eps)·2)) averaged over visible keypoints")
    print_tensor(con, "oks_area", trace["oks_area"], "(b, M) 0.53·w·h px²", full)
    print_tensor(con, "overlaps", trace["overlaps"], "(b, M, A) u at candidates", full)
    print_tensor(con, "align_metric", trace["align_metric"], "(b, M, A) t at candidates", full)
    step(con, "6c. Top-k and conflicts", f"each GT keeps its {trace.config.assigner.topk} largest t; an anchor picked "
         "by several GTs goes to the GT with the largest u")
    print_tensor(con, "mask_pos", trace["mask_pos"].float(), "(b, M, A) final positives", full)
    _walk_targets_pose(trace, con, full)


def _walk_targets_pose(trace: Trace, con: Console, full: bool) -> None:
    from .terminal import print_tensor
    from .walk import step

    b = trace.batch
    step(con, "7. Targets", "fg_mask marks anchors with a GT; background anchors keep placeholders (GT 0)")
    print_tensor(con, "fg_mask", trace["fg_mask"].float(), "(b, A)", full)
    print_tensor(con, "target_gt_idx", trace["target_gt_idx"], "(b, A), meaningful where fg_mask", full)
    for i in range(b):
        if trace.n_gts(i):
            render_summary(trace, con, i)
    step(con, "8. Pose loss")
    render_pose_loss(trace, con, list(range(b)))
