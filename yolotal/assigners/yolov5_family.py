"""Family adapter of YOLOv5's static anchor matching (build_targets), with YOLOv5's loss. Reads YOLOv5 head maps
(b, na, h, w, 5+nc) per level; without them, synthetic ones of the configured kind."""

from __future__ import annotations

from .registry import Family, register


def synthetic_v5(trace, cfg, nc: int, lvs: list) -> list:
    """YOLOv5 head maps (b, na, h, w, 5+nc): ``randn`` (seeded), or ``trained``: every target entry predicts its
    tbox with noise, objectness and its class logit high; elsewhere objectness and classes low."""
    import torch

    gen = torch.Generator().manual_seed(cfg.heads.seed)
    na = len(cfg.assigner.anchors[0]) // 2
    out = []
    for lv, g in zip(trace.levels, lvs):
        x = torch.randn(trace.batch, na, lv.h, lv.w, 5 + nc, generator=gen)
        if cfg.heads.kind == "trained":
            x = x * 0.5
            x[..., 4:] -= 4.0
            if len(g.image):
                logit = lambda p: torch.log(p / (1 - p))  # noqa: E731
                xy = logit(((g.tbox[:, :2] + 0.5) / 2).clamp(0.02, 0.98))
                wh = logit((torch.sqrt(g.tbox[:, 2:] / g.anchors[g.anchor]) / 2).clamp(0.02, 0.98))
                noise = torch.randn(len(g.image), 4, generator=gen) * 0.2
                x[g.image, g.anchor, g.gy, g.gx, :4] = torch.cat((xy, wh), 1) + noise
                x[g.image, g.anchor, g.gy, g.gx, 4] = 3.0
                x[g.image, g.anchor, g.gy, g.gx, 5 + g.cls] = 3.0
        out.append(x)
    return out


@register
class YOLOv5(Family):
    name = "yolov5"
    profiles = ("yolov5",)
    default_profile = "yolov5"
    default_topk = 10
    heads_layout = "yolov5"
    heads_title = "YOLOv5"
    from_model = False
    loss_name = "yolov5"
    has_candidates = False

    def read_heads(self, path, cfg):
        from ..inputs.heads import load_v5_heads

        return load_v5_heads(path, cfg.nc, len(cfg.assigner.anchors[0]) // 2)

    def own_batch(self, own):
        return None if not own else int(own[0].shape[0])

    def nc_of(self, own):
        return None if not own else int(own[0].shape[-1]) - 5

    def assign(self, trace, cfg, inputs) -> None:
        import numpy as np
        import torch

        from .yolov5 import anchors_tensor, build_targets

        trace.assigner_heads = ("YOLOv5 heads given (--heads)" if inputs.own is not None else
                                f"synthetic {cfg.heads.kind} YOLOv5 heads (seed {cfg.heads.seed})")
        labels = inputs.labels
        rows = np.concatenate([labels.batch_idx[:, None], labels.cls[:, None], labels.xywhn], 1).astype(np.float32)
        lvs = build_targets(torch.from_numpy(rows), [(lv.h, lv.w) for lv in trace.levels], cfg.strides,
                            anchors_tensor(cfg.assigner.anchors), cfg.assigner.anchor_t)
        # label row -> slot within its image
        slot = np.zeros(len(labels), np.int64)
        seen: dict[int, int] = {}
        for k, bi in enumerate(labels.batch_idx.tolist()):
            slot[k] = seen.get(bi, 0)
            seen[bi] = slot[k] + 1
        slot_t = torch.from_numpy(slot)
        tensors: dict[str, torch.Tensor] = {}
        for lv, g in zip(trace.levels, lvs):
            p = f"v5_l{lv.index}_"
            tensors.update({p + "anchors": g.anchors, p + "ratio": g.ratio, p + "match": g.match, p + "gxy": g.gxy,
                            p + "near": g.near, p + "image": g.image, p + "anchor": g.anchor, p + "gy": g.gy,
                            p + "gx": g.gx, p + "gt": slot_t[g.label] if len(g.label) else g.label,
                            p + "m_gt": slot_t[g.m_label] if len(g.m_label) else g.m_label,
                            p + "m_anchor": g.m_anchor, p + "offset": g.offset, p + "tbox": g.tbox})
        trace.add("yolov5", "YOLOv5 static matching per level", **tensors)
        inputs.state["v5_levels"] = lvs

    def loss(self, trace, cfg, inputs) -> None:
        import torch

        from ..errors import InputError
        from .yolov5 import yolov5_loss

        lvs, nc = inputs.state["v5_levels"], inputs.nc
        preds = inputs.own if inputs.own is not None else synthetic_v5(trace, cfg, nc, lvs)
        for lv, p in zip(trace.levels, preds):
            if tuple(p.shape[2:4]) != (lv.h, lv.w) or p.shape[0] != trace.batch:
                raise InputError(f"YOLOv5 heads: level {lv.index} is {tuple(p.shape)}, expected (b={trace.batch}, "
                                 f"na, {lv.h}, {lv.w}, 5+nc)")
        g = (cfg.loss.v5_box, cfg.loss.v5_obj, cfg.loss.v5_cls)
        lo = yolov5_loss(preds, lvs, nc, gains=g)
        ciou = {f"v5_l{i}_ciou": c for i, c in enumerate(lo.ciou)}
        trace.add("loss", f"YOLOv5 loss (hyp box {g[0]:g}, obj {g[1]:g}, cls {g[2]:g}; balance 4, 1, 0.4)",
                  v5_loss=lo.total, v5_lbox=lo.lbox, v5_lobj=lo.lobj, v5_lcls=lo.lcls,
                  v5_level_box=torch.tensor(lo.level_box), v5_level_obj=torch.tensor(lo.level_obj),
                  v5_level_cls=torch.tensor(lo.level_cls), **ciou)

    def positives(self, trace):
        """Every target entry's (image, GT slot, anchor cell), unique; YOLOv5 has no candidate set."""
        import torch

        parts = []
        for lv in trace.levels:
            p = f"v5_l{lv.index}_"
            cell = lv.start + trace[p + "gy"] * lv.w + trace[p + "gx"]
            parts.append(torch.stack((trace[p + "image"], trace[p + "gt"], cell), 1))
        pos = torch.unique(torch.cat(parts), dim=0) if parts else torch.zeros(0, 3, dtype=torch.int64)
        return pos, torch.zeros(0, 3, dtype=torch.int64)

    def params(self, cfg) -> dict:
        a = cfg.assigner
        return {"anchors": [list(r) for r in a.anchors], "anchor_t": a.anchor_t}

    def loss_meta(self, cfg) -> dict:
        lo = cfg.loss
        return {"name": "yolov5", "gains": {"box": lo.v5_box, "obj": lo.v5_obj, "cls": lo.v5_cls},
                "balance": [4.0, 1.0, 0.4] if len(cfg.strides) == 3 else None}

    def render_image(self, trace, con, image, rows, full) -> None:
        from ..render.others import yolov5_image

        yolov5_image(trace, con, image)

    def render_loss(self, trace, con, images) -> None:
        from ..render.others import render_v5_loss

        render_v5_loss(trace, con, images)

    def legend(self, cfg) -> str:
        return cfg.assigner.profile
