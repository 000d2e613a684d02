"""Golden pose fixtures from the reference trainer (NOT run by CI; needs ultralytics 8.4.190).

    YOLO_VERBOSE=False YOLO_OFFLINE=1 /work/oracle/bin/python scripts/make_golden_pose.py

Each case is generated from its own seed with numpy only (no yolotal code), run through ultralytics'
v8PoseLoss or PoseLoss26 (whose assigner call is recorded; for PoseLoss26 the PoseTaskAlignedAssigner
intermediates too), and written to tests/fixtures/golden/pose/<case>.npz:

    labels      (n, 6) float32 batch_idx cls cx cy w h (normalised)
    kpts_label  (n, K, D) keypoints as the label rows hold them (normalised; D = 2: negative = invisible)
    keypoints   (n, K, 3) what the dataset hands the loss (D = 2 rows get visibility 0 where x or y < 0)
    level0..    (b, 4*reg_max + nc + K*D [+ 2K], h, w) head maps in the pose .npz channel order (float16 values,
                stored as float16; read them as float32)
    flow.*      the RealNVP state dict (YOLO26 cases), built right after torch.manual_seed(seed)
    config      JSON: imgsz, strides, nc, reg_max, kpt_shape, loss (v8 | 26), topk, topk2, sigmas, reference
    kpts_decoded_fg (P, K, C) the loss's decoded keypoints at the positives (grid units; C = D [+ 2])
    gt_kpts     (b, M, K, 3) px, as the loss pads them; gt_bboxes, gt_labels, mask_gt as the assigner got them
    mask_in_box, mask_in_gts, overlaps, align_metric, mask_pos_topk, mask_pos  (b, M, A) (mask_in_box: YOLO26 only;
                the v8 cases hold the detection TAL's, mask_in_gts restricted to real GTs)
    target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx  the assigner's outputs
    loss        (5 or 6,) the logged items: box, pose, kobj, cls, dfl|l1[, rle] (gain-weighted, not × batch)
    e2e_weighted, e2e_logged (6,)  E2ELoss(PoseLoss26) at epoch 0 on the same heads for both branches (YOLO26
                cases with topk 10): 0.8·one2many + 0.2·one2one per term (÷ batch), and the logged one2one items
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import torch

import ultralytics
from ultralytics.nn.modules.block import RealNVP
from ultralytics.utils import loss as uloss
from ultralytics.utils.tal import TaskAlignedAssigner

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden" / "pose"

# boxes in px (x1, y1, x2, y2) per image that each case must contain, on top of random ones
COCO_FORCED = {
    0: [(100, 100, 160, 156, "vis"),  # sqrt(area) 58 < 2*32: its 4 P5 anchors are gated away
        (40, 30, 240, 270, "vis"),  # sqrt(area) 219 > 12*16: only P5 open
        (200, 180, 280, 270, "none")],  # no visible keypoint: CIoU
    1: [(20, 200, 30, 212, "vis")],  # tiny: the finest level has no lower bound
}
FALLBACK_FORCED = {0: [(50, 2, 78, 1342, "vis"),  # 28 x 1340: P3/P4 closed (sqrt 194 > 192), no P5 centre inside
                       (120, 300, 220, 420, "vis"), (150, 800, 180, 840, "none")]}

CASES = {
    # name: (seed, batch, imgsz, strides, nc, reg_max, kpt_shape, loss, heads, topk, topk2, per_image, forced, sigmas)
    "pose26_coco": (40, 2, (320, 320), (8, 16, 32), 1, 1, (17, 3), "26", "near", 10, None, [3, 4], COCO_FORCED, None),
    "pose26_fallback_k5d2": (41, 1, (1344, 256), (8, 16, 32), 2, 1, (5, 2), "26", "near", 10, None, [3],
                             FALLBACK_FORCED, None),
    "pose26_o2o": (42, 2, (256, 320), (8, 16, 32), 3, 1, (17, 3), "26", "near", 7, 1, [6, 4], {0: [(10, 10, 60, 70, "none")]},
                   None),
    "pose26_randn": (43, 1, (256, 256), (8, 16, 32), 1, 1, (17, 3), "26", "randn", 10, None, [6], {}, None),
    "posev8_coco": (44, 2, (320, 320), (8, 16, 32), 1, 16, (17, 3), "v8", "near", 10, None, [5, 3], COCO_FORCED, None),
    "posev8_k4d2_sigmas": (45, 2, (256, 256), (8, 16, 32), 2, 16, (4, 2), "v8", "randn", 10, None, [4, 3], {},
                           [0.5, 0.3, 0.3, 0.8]),
}


def random_boxes(rng, n, imgsz):
    h, w = imgsz
    out = []
    for _ in range(n):
        bw, bh = rng.uniform(12, min(w, h) * 0.6, 2)
        x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        out.append((x1, y1, x1 + bw, y1 + bh, "vis" if rng.random() > 0.15 else "none"))
    return out


def make_labels(rng, spec):
    seed, batch, imgsz, strides, nc, reg_max, (k, d), loss, heads, topk, topk2, per_image, forced, sigmas = spec
    h, w = imgsz
    rows, kl, kd = [], [], []
    for b in range(batch):
        for x1, y1, x2, y2, vis in list(forced.get(b, [])) + random_boxes(rng, per_image[b], imgsz):
            rows.append([b, int(rng.integers(0, nc)), (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
            px = rng.uniform(x1, x2, k) / w
            py = rng.uniform(y1, y2, k) / h
            if d == 3:
                v = rng.choice([0.0, 1.0, 2.0], k, p=[0.2, 0.3, 0.5]) if vis == "vis" else np.zeros(k)
                if vis == "vis" and not v.any():
                    v[0] = 2.0
                lab = np.stack([px, py, v], -1)
                lab[v == 0, :2] = 0.0  # COCO writes unlabelled keypoints as 0 0 0
                kl.append(lab)
                kd.append(lab)
            else:
                hide = rng.random(k) < 0.25 if vis == "vis" else np.ones(k, bool)
                if vis == "vis" and hide.all():
                    hide[0] = False
                lab = np.stack([px, py], -1)
                lab[hide] = -0.005  # invisible: a negative coordinate (the checker allows down to -0.01)
                kl.append(lab)
                v = np.where((lab[:, 0] < 0) | (lab[:, 1] < 0), 0.0, 1.0)
                kd.append(np.concatenate([lab, v[:, None]], -1))
    labels = np.array(rows, np.float32).reshape(-1, 6)
    return labels, np.array(kl, np.float32).reshape(-1, k, d), np.array(kd, np.float32).reshape(-1, k, 3)


def make_heads(rng, spec, labels, kpts):
    seed, batch, imgsz, strides, nc, reg_max, (k, d), loss, heads, topk, topk2, per_image, forced, sigmas = spec
    h, w = imgsz
    lead = 4 * reg_max
    extra = k * d + (2 * k if loss == "26" else 0)
    levels = []
    for s in strides:
        gh, gw = h // s, w // s
        x = rng.normal(0, 1, (batch, lead + nc + extra, gh, gw)).astype(np.float32)
        if heads == "randn":
            levels.append(x)
            continue
        x[:, lead: lead + nc] -= 3.0
        x[:, lead + nc + k * d:] -= 1.0  # YOLO26 sigmas
        for row, kp in zip(labels, kpts):
            b, c = int(row[0]), int(row[1])
            x1, y1 = (row[2] - row[4] / 2) * w, (row[3] - row[5] / 2) * h
            x2, y2 = (row[2] + row[4] / 2) * w, (row[3] + row[5] / 2) * h
            size = np.sqrt((x2 - x1) * (y2 - y1))
            for gy in range(gh):
                for gx in range(gw):
                    px, py = (gx + 0.5) * s, (gy + 0.5) * s
                    if not (x1 < px < x2 and y1 < py < y2):
                        continue
                    dist = np.array([px - x1, py - y1, x2 - px, y2 - py]) / s + rng.normal(0, 0.4, 4)
                    if reg_max > 1:
                        bins = np.arange(reg_max)
                        for side in range(4):
                            x[b, side * reg_max: (side + 1) * reg_max, gy, gx] = -((bins - dist[side]) ** 2) / 0.7
                    else:
                        x[b, :4, gy, gx] = dist
                    x[b, lead + c, gy, gx] += 4.0 + rng.normal(0, 1.0)
                    sd = 0.25 + 0.04 * size / s
                    tgt = kp[:, :2] * np.array([w, h]) / s + rng.normal(0, sd, (k, 2))  # grid units
                    anc = np.array([gx + 0.5, gy + 0.5])
                    raw = (tgt - anc + 0.5) / 2 if loss == "v8" else tgt - anc
                    for j in range(k):
                        x[b, lead + nc + j * d, gy, gx] = raw[j, 0]
                        x[b, lead + nc + j * d + 1, gy, gx] = raw[j, 1]
                        if d == 3:
                            x[b, lead + nc + j * d + 2, gy, gx] = (3.0 if kp[j, 2] else -3.0) + rng.normal()
        levels.append(x)
    return [x.astype(np.float16).astype(np.float32) for x in levels]  # float16 values: stored half size, exactly


def model_stub(spec, flow):
    seed, batch, imgsz, strides, nc, reg_max, kpt_shape, loss, heads, topk, topk2, per_image, forced, sigmas = spec
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    head = types.SimpleNamespace(stride=torch.tensor(strides, dtype=torch.float32), nc=nc, reg_max=reg_max,
                                 kpt_shape=list(kpt_shape))
    if flow is not None:
        head.flow_model = flow
    m.model = [head]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, pose=12.0, kobj=1.0, rle=1.0)
    if sigmas is not None:
        m.kpt_oks_sigmas = sigmas
    return m


def run_case(name, spec):
    seed, batch, imgsz, strides, nc, reg_max, (k, d), loss, heads, topk, topk2, per_image, forced, sigmas = spec
    rng = np.random.default_rng(seed)
    labels, kpts_label, kpts = make_labels(rng, spec)
    levels = make_heads(rng, spec, labels, kpts)
    flow = None
    if loss == "26":
        torch.manual_seed(seed)
        flow = RealNVP()
    model = model_stub(spec, flow)
    cls_ = uloss.PoseLoss26 if loss == "26" else uloss.v8PoseLoss
    crit = cls_(model, tal_topk=topk, tal_topk2=topk2)
    rec = {}
    orig = crit.assigner

    def recording(*args, **kw):
        rec["args"] = [a.clone() for a in args]
        rec["kw"] = {key: v.clone() for key, v in kw.items()}
        out = orig(*args, **kw)
        rec["out"] = tuple(o.clone() for o in out)  # the loss divides target_bboxes in place later
        return out

    crit.assigner = recording
    dec_orig = crit.kpts_decode

    def rec_decode(anchor_points, pred_kpts):
        out = dec_orig(anchor_points, pred_kpts)
        rec["decoded"] = out.detach().clone()
        return out

    crit.kpts_decode = rec_decode
    t_levels = [torch.from_numpy(x) for x in levels]
    b, c = t_levels[0].shape[:2]
    flat = torch.cat([x.view(b, c, -1) for x in t_levels], 2)
    lead = 4 * reg_max
    preds = {"boxes": flat[:, :lead], "scores": flat[:, lead: lead + nc], "feats": t_levels,
             "kpts": flat[:, lead + nc: lead + nc + k * d]}
    if loss == "26":
        preds["kpts_sigma"] = flat[:, lead + nc + k * d:]
    lab = torch.from_numpy(labels)
    batch_d = {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6], "keypoints": torch.from_numpy(kpts)}
    total, items = crit(preds, batch_d)
    loss_items = np.array([float(v) for v in items.values()], np.float32)

    pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt = rec["args"]
    tl, tb, ts, fg, tgi = rec["out"]
    out = dict(
        config=np.array(json.dumps(dict(
            imgsz=list(imgsz), strides=list(strides), nc=nc, reg_max=reg_max, kpt_shape=[k, d], loss=loss, topk=topk,
            topk2=topk2, sigmas=sigmas, heads=heads, seed=seed, names=list(items.keys()),
            reference=f"ultralytics {ultralytics.__version__}"))),
        labels=labels, kpts_label=kpts_label, keypoints=kpts, loss=loss_items,
        kpts_decoded_fg=rec["decoded"][fg].numpy(), gt_labels=gt_labels.numpy(), gt_bboxes=gt_bboxes.numpy(),
        mask_gt=mask_gt.numpy(), target_labels=tl.numpy(), target_bboxes=tb.numpy(), target_scores=ts.float().numpy(),
        fg_mask=fg.numpy(), target_gt_idx=tgi.numpy(),
        **{f"level{i}": x.astype(np.float16) for i, x in enumerate(levels)},
    )
    if loss == "26":
        kw = rec["kw"]
        a = orig
        a.anc_strides = kw["anc_strides"]
        a.bs, a.n_max_boxes = pd_scores.shape[0], gt_bboxes.shape[1]
        out["gt_kpts"] = kw["gt_kpts"].numpy()
        if gt_bboxes.shape[1]:
            in_box = TaskAlignedAssigner.select_candidates_in_gts(a, anc, gt_bboxes, mask_gt)
            in_gts = a.select_candidates_in_gts(anc, gt_bboxes, mask_gt)
            mask_pos, align, ov = a.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc, mask_gt,
                                                 pd_kpts=kw["pd_kpts"], gt_kpts=kw["gt_kpts"])
            _, _, final = a.select_highest_overlaps(mask_pos.clone(), ov.clone(), a.n_max_boxes, align.clone())
            out.update(mask_in_box=(in_box & mask_gt.bool()).numpy(), mask_in_gts=in_gts.bool().numpy(),
                       overlaps=ov.numpy(), align_metric=align.numpy(), mask_pos_topk=mask_pos.bool().numpy(),
                       mask_pos=final.bool().numpy())
        out.update({f"flow.{key}": v.numpy() for key, v in flow.state_dict().items()})
    elif gt_bboxes.shape[1]:  # v8: the detection TAL's intermediates
        a = orig
        a.bs, a.n_max_boxes = pd_scores.shape[0], gt_bboxes.shape[1]
        mask_pos, align, ov = a.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc, mask_gt)
        _, _, final = a.select_highest_overlaps(mask_pos.clone(), ov.clone(), a.n_max_boxes, align.clone())
        out.update(mask_in_gts=(a.select_candidates_in_gts(anc, gt_bboxes, mask_gt) & mask_gt.bool()).numpy(),
                   overlaps=ov.numpy(), align_metric=align.numpy(), mask_pos_topk=mask_pos.bool().numpy(),
                   mask_pos=final.bool().numpy())
    if loss == "26" and topk == 10:  # the end-to-end loss, both branches on these heads (epoch 0 of 100)
        model.args.epochs = 100
        e2e = uloss.E2ELoss(model, uloss.PoseLoss26)
        if flow is not None:  # both branches share the head's flow
            e2e.one2many.flow_model = e2e.one2one.flow_model = flow
        tot, e2e_items = e2e({"one2many": preds, "one2one": preds}, batch_d)
        out.update(e2e_weighted=(tot / batch).detach().numpy().astype(np.float32),
                   e2e_logged=np.array([float(v) for v in e2e_items.values()], np.float32))
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{name}.npz", **out)
    fgn = int(fg.sum())
    print(f"{name}: {len(labels)} GTs, {fgn} positives, loss {dict(zip(items.keys(), loss_items.round(5)))}")


if __name__ == "__main__":
    for name, spec in CASES.items():
        run_case(name, spec)
