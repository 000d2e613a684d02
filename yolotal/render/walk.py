"""`yolotal walk`: the whole pipeline, stage by stage, in the order of seed 001's run.log walkthrough
(predictions -> anchors -> decode -> padded labels -> in-box mask), then on through the assignment and loss."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from ..pipeline import Trace
from .terminal import (
    conflict_table,
    fit,
    print_tensor,
    render_loss,
    render_summary,
    warn,
)


def step(con: Console, title: str, note: str = "") -> None:
    con.print()
    con.print(Rule(Text(title, style="bold")))
    if note:
        con.print(Text(note, style="italic"))


def render_walk(trace: Trace, con: Console, full: bool = False) -> None:
    cfg = trace.config
    b, a_total = trace["pred_scores"].shape[:2]
    nc, r = trace["pred_scores"].shape[2], cfg.reg_max
    con.print(Text(f"imgsz {cfg.imgsz[0]}×{cfg.imgsz[1]} · strides {list(cfg.strides)} · "
                   f"nc {nc} · reg_max {r} · batch {b} · profile {cfg.assigner.profile}", style="bold"))
    for n in trace.notes:
        con.print(Text.assemble(("note: ", "bold cyan"), n), soft_wrap=True)
    for w in trace.warnings:
        warn(con, w)

    step(con, "1. Predictions: the head outputs, flattened over levels",
         f"each level is (b, 4*reg_max+nc, h, w) = (b, {4 * r + nc}, h, w); heads: {trace.heads_source}")
    for lv in trace.levels:
        con.print(f"  level {lv.index}: ({b}, {4 * r + nc}, {lv.h}, {lv.w}) → stride {cfg.imgsz[0] // lv.h} "
                  f"= imgsz / grid, anchors {lv.start}..{lv.stop - 1}")
    con.print(f"pred_scores (b, A, nc) = {tuple(trace['pred_logits'].shape)} logits · "
              f"pred_regs (b, A, 4*reg_max) = {tuple(trace['pred_distri'].shape)} · strides {list(cfg.strides)}")

    step(con, "2. Anchor points", "one per grid cell at its centre (offset 0.5), in grid units of its own level")
    print_tensor(con, "anc_points", trace["anchor_points"], "(A, 2) grid units", full)
    print_tensor(con, "strides_tensor", trace["stride_tensor"], "(A, 1) pixels per grid unit", full)

    step(con, "3. Decode: DFL integral -> ltrb distances -> xyxy boxes",
         "softmax over the reg_max bins of each side, then Σ bin·p; box = anchor ∓ distances (grid units)")
    print_tensor(con, "pred_bboxes", trace["pred_bboxes_grid"], "(b, A, 4) grid units xyxy", full)

    step(con, "4. Labels: padded to the most GTs per image, scaled to pixels, xywh -> xyxy")
    con.print(f"labels: {len(trace.labels)} rows from {trace.labels.origin[0][0] if len(trace.labels) else 'none'}")
    print_tensor(con, "gt_bboxes", trace["gt_bboxes"], "(b, M, 4) px xyxy", full)
    print_tensor(con, "gt_labels", trace["gt_labels"], "(b, M, 1)", full)
    print_tensor(con, "gt_mask", trace["mask_gt"], "(b, M, 1) (mask_gt) 0 = padding row", full)

    step(con, "5. Assigner inputs", "scores after sigmoid, boxes and anchors scaled to pixels")
    for name, shape, what in (
        ("pd_scores", tuple(trace["pred_scores"].shape), "sigmoid(pred_scores)"),
        ("pd_bboxes", tuple(trace["pred_bboxes"].shape), "pred_bboxes * stride, px"),
        ("anc_points", tuple(trace["anchor_points"].shape), "anchor_points * stride, px"),
    ):
        con.print(f"  {name} {shape}: {what}")

    trace.family.render_walk(trace, con, full)


def walk_tal(trace: Trace, con: Console, full: bool) -> None:
    """Steps 6-8 of the task-aligned assigners: candidates, metric, top-k and conflicts, targets, loss."""
    cfg, b = trace.config, trace.batch
    if trace.summarised:
        _walk_summarised(trace, con, full)
        return
    step(con, "6a. Candidates: anchor centres inside each GT",
         "an anchor is a candidate when its centre lies strictly inside the (candidate) box: min(ltrb) > eps"
         + (f"; profile {cfg.assigner.profile} first enlarges GT sides < {cfg.enlargement[0]:g} px to "
            f"{cfg.enlargement[1]:g} px" if cfg.enlargement is not None else ""))
    for i in range(b):
        print_tensor(con, f"in_gts_mask[{i}]", trace["mask_in_gts"][i].float(), "(M, A)", full)

    step(con, "6b. Metric: t = s^alpha · u^beta over candidates",
         f"s = score of the GT's class, u = CIoU clamped at 0; alpha {cfg.assigner.alpha:g}, beta {cfg.assigner.beta:g}")
    print_tensor(con, "overlaps", trace["overlaps"], "(b, M, A) CIoU u at candidates", full)
    print_tensor(con, "align_metric", trace["align_metric"], "(b, M, A) t at candidates", full)

    step(con, "6c. Top-k and conflicts", f"each GT keeps its {cfg.assigner.topk} largest t among its candidates; "
         "an anchor picked by several GTs goes to the GT with the largest CIoU")
    for i in range(b):
        ct = conflict_table(trace, i)
        if ct is not None:
            con.print(f"image {i}:")
            con.print(fit(con, ct))
    print_tensor(con, "mask_pos", trace["mask_pos"].float(), "(b, M, A) final positives", full)

    _walk_targets(trace, con, full)


def walk_other(trace: Trace, con: Console, full: bool) -> None:
    """Steps 6-7 for ATSS, SimOTA and YOLOv5: their own stages, then the loss where yolotal has it."""
    from .others import render_assign_other

    a = trace.config.assigner
    step(con, f"6. Assignment: {a.name} ({a.profile})")
    render_assign_other(trace, con, list(range(trace.batch)), full, gt_tensors=False)
    if "yolox_loss" in trace:
        from .others import render_yolox_loss

        step(con, "7. Loss (YOLOX: IoU, objectness, BCE) on these targets")
        render_yolox_loss(trace, con, list(range(trace.batch)))
    elif "v5_loss" in trace:
        from .others import render_v5_loss

        step(con, "7. Loss (YOLOv5: CIoU, objectness, BCE per anchor box) on these targets")
        render_v5_loss(trace, con, list(range(trace.batch)))
    elif "loss_box" in trace:  # the v8 loss stage (tal, tal-o2o, atss)
        step(con, "7. Loss (YOLOv8/11: BCE, CIoU, DFL) on these targets")
        render_loss(trace, con, list(range(trace.batch)))
    else:
        step(con, "7. Loss", f"not computed: {a.name}'s targets belong to another loss (YOLOX / YOLOv5), which "
             "yolotal does not implement")


def _walk_summarised(trace: Trace, con: Console, full: bool) -> None:
    """Steps 6-8 when the dense (b, M, A) tensors were not built: the pair lists instead."""
    step(con, "6. Assignment on candidate pairs", trace.summarised)
    for name, what in (("pair_b", "image"), ("pair_m", "GT slot"), ("pair_a", "anchor"),
                       ("pair_t", "alignment metric t"), ("pair_pos", "final positive")):
        print_tensor(con, name, trace[name], f"(P,) {what} of each candidate pair", full)
    _walk_targets(trace, con, full)


def _walk_targets(trace: Trace, con: Console, full: bool) -> None:
    b = trace.batch
    step(con, "7. Targets", "fg_mask marks anchors with a GT; background anchors keep placeholders (GT 0)")
    print_tensor(con, "fg_mask", trace["fg_mask"].float(), "(b, A)", full)
    print_tensor(con, "target_gt_idx", trace["target_gt_idx"], "(b, A), meaningful where fg_mask", full)
    print_tensor(con, "target_bboxes", trace["target_bboxes"], "(b, A, 4) px", full)
    print_tensor(con, "target_scores", trace["target_scores"], "(b, A, nc) soft one-hot", full)
    for i in range(b):
        if trace.n_gts(i):
            render_summary(trace, con, i)
        else:
            con.print(Text(f"image {i}: background image (no labels)", style="dim"))

    step(con, "8. Loss")
    render_loss(trace, con, list(range(b)))

