"""Family adapter of YOLOX's SimOTA, with YOLOX's loss. Reads YOLOX-layout heads (4 box + objectness + nc);
without them, the same predictions as the YOLOv8 heads in YOLOX's layout."""

from __future__ import annotations

from .atss_family import check_dense_budget
from .registry import Family, register


def yolox_from_v8(trace):
    """YOLOX-layout heads carrying the same predictions as the trace's (v8) heads: the decoded boxes as
    (x, y, log w, log h) regressions, the same class logits, and as objectness logit the largest class logit
    (so sqrt(cls * obj) is the class score where that class leads, and background anchors stay background)."""
    import torch

    from ..inputs.heads import Heads

    ap, st = trace["anchor_points"], trace["stride_tensor"]
    box = trace["pred_bboxes"]  # (b, A, 4) px xyxy
    wh = (box[..., 2:] - box[..., :2]).clamp(min=1e-3)
    cxy = (box[..., :2] + box[..., 2:]) / 2
    reg = torch.cat((cxy / st - (ap - 0.5), torch.log(wh / st)), -1)
    obj = trace["pred_logits"].amax(-1, keepdim=True)
    lead = torch.cat((reg, obj), -1).permute(0, 2, 1).contiguous()
    return Heads(lead, trace["pred_logits"].permute(0, 2, 1).contiguous(), tuple((lv.h, lv.w) for lv in trace.levels),
                 "the same predictions as the TAL heads, in YOLOX's layout (objectness = the largest class logit)")


@register
class SimOTA(Family):
    name = "simota"
    profiles = ("yolox", "yolox-0.3")
    default_profile = "yolox"
    default_topk = 10  # IoUs summed for the dynamic k
    heads_layout = "yolox"
    heads_title = "YOLOX"
    from_model = False
    loss_name = "yolox"

    def read_heads(self, path, cfg):
        from ..inputs.heads import load_heads

        return load_heads(path, cfg.reg_max, cfg.nc, layout="yolox")

    def own_batch(self, own):
        return None if own is None else int(own.batch)

    def nc_of(self, own):
        return None if own is None else own.nc

    def assign(self, trace, cfg, inputs) -> None:
        import torch

        from .simota import assign_image, decode

        heads = inputs.own if inputs.own is not None else yolox_from_v8(trace)
        trace.assigner_heads = heads.source
        nc = inputs.nc
        ap, st = trace["anchor_points"], trace["stride_tensor"]
        cells = ap - 0.5
        lead = heads.boxes.permute(0, 2, 1)  # (b, A, 5)
        cls = heads.scores.permute(0, 2, 1)  # (b, A, nc)
        pred = decode(lead[..., :4], cells, st)  # (b, A, 4) cx, cy, w, h px
        b, n_anchors = pred.shape[:2]
        fg = torch.zeros(b, n_anchors, dtype=torch.bool)
        gt_idx = torch.zeros(b, n_anchors, dtype=torch.int64)
        iou = torch.zeros(b, n_anchors)
        per_image: dict[str, torch.Tensor] = {}
        h, w = cfg.imgsz
        lab = trace.labels
        most = max((trace.n_gts(i) for i in range(b)), default=0)
        check_dense_budget("simota", "(GTs, candidates) per image", most * n_anchors, 32, cfg)
        for i in range(b):
            n = trace.n_gts(i)
            if n == 0:
                continue
            # YOLOX takes labels as cx, cy, w, h in pixels: scaled straight from the normalised values
            rows = lab.batch_idx == i
            gt_cxcywh = torch.from_numpy(lab.xywhn[rows]) * torch.tensor([w, h, w, h], dtype=torch.float32)
            per_image[f"simota_gt_cxcywh[{i}]"] = gt_cxcywh
            r = assign_image(gt_cxcywh, trace["gt_labels"][i, :n, 0], pred[i], cls[i], lead[i, :, 4:5], cells, st,
                             nc, cfg.assigner.profile, cfg.assigner.topk)
            fg[i], iou[i] = r.fg, r.matched_iou
            gt_idx[i] = r.matched_gt.clamp(min=0)
            for k in ("candidates", "in_box", "in_centre", "geometry", "ious", "cls_cost", "iou_cost", "cost",
                      "topk_ious", "dynamic_k", "picked", "matching"):
                per_image[f"simota_{k}[{i}]"] = getattr(r, k)
        trace.add("simota_decode", f"YOLOX decode ({heads.source})", yolox_pred_cxcywh=pred,
                  yolox_obj_logits=lead[..., 4:5].contiguous(), yolox_cls_logits=cls.contiguous())
        trace.add("simota", "SimOTA per image (C = candidate anchors of the image)", **per_image)
        trace.add("targets", "Targets", fg_mask=fg, target_gt_idx=gt_idx, pred_ious=iou)

    def loss(self, trace, cfg, inputs) -> None:
        """YOLOX's loss on the SimOTA targets."""
        import torch

        from ..loss import yolox_loss

        b = trace.batch
        fg, gt_idx = trace["fg_mask"], trace["target_gt_idx"]
        gts = [trace[f"simota_gt_cxcywh[{i}]"] if f"simota_gt_cxcywh[{i}]" in trace else torch.zeros(0, 4)
               for i in range(b)]
        cls = [trace["gt_labels"][i, : trace.n_gts(i), 0] for i in range(b)]
        lo = yolox_loss(trace["yolox_pred_cxcywh"], trace["yolox_obj_logits"], trace["yolox_cls_logits"], fg, gt_idx,
                        trace["pred_ious"], gts, cls)
        trace.add("loss", "YOLOX loss (reg_weight 5, no L1 term)", yolox_loss=lo.loss, yolox_loss_iou=lo.loss_iou,
                  yolox_loss_obj=lo.loss_obj, yolox_loss_cls=lo.loss_cls, yolox_num_fg=torch.tensor(lo.num_fg),
                  iou_per_anchor=lo.iou_per_anchor, obj_per_anchor=lo.obj_per_anchor, cls_per_anchor=lo.cls_per_anchor)

    def candidates(self, trace):
        """Each GT's allowed anchors."""
        import torch

        rows = []
        for i in range(trace.batch):
            if f"simota_geometry[{i}]" in trace:
                ci = torch.nonzero(trace[f"simota_candidates[{i}]"]).flatten()
                m, c = torch.nonzero(trace[f"simota_geometry[{i}]"], as_tuple=True)
                rows.append(torch.stack((torch.full_like(m, i), m, ci[c]), 1))
        return torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.int64)

    def params(self, cfg) -> dict:
        from .simota import PROFILES

        a = cfg.assigner
        radius, penalty, box_test = PROFILES[a.profile]
        return {"topk": a.topk, "centre_radius_strides": radius, "penalty": penalty, "in_box_candidates": box_test}

    def loss_meta(self, cfg) -> dict:
        return {"name": "yolox", "gains": {"iou": 5.0, "obj": 1.0, "cls": 1.0}}  # YOLOX's reg_weight 5, fixed

    def render_image(self, trace, con, image, rows, full) -> None:
        from ..render.others import simota_image

        simota_image(trace, con, image, rows, full)

    def render_loss(self, trace, con, images) -> None:
        from ..render.others import render_yolox_loss

        render_yolox_loss(trace, con, images)
