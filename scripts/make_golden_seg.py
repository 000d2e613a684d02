"""Golden fixtures for segmentation from the reference trainer (NOT run by CI; needs ultralytics + opencv).

    YOLO_VERBOSE=False YOLO_OFFLINE=1 /work/oracle/bin/python scripts/make_golden_seg.py

Writes tests/fixtures/golden/seg/:

* masks.npz — a corpus of polygons and the GT masks ultralytics 8.4 makes of them (``polygons2masks`` and
  ``polygons2masks_overlap``, i.e. cv2.fillPoly + cv2.resize) at several image sizes and mask ratios:
  ``coords`` (sum k, 2) float32 px, ``counts`` (n,) vertices per polygon, ``group`` (n,) which image each
  belongs to, ``groups`` JSON [[h, w, ratio], ...], ``masks_bits`` the (n, h//r, w//r) masks packed with
  np.packbits (flattened, in polygon order), ``index_bits`` / ``order`` the overlap index image (as uint8/int32
  bytes) and draw order per group.
* trainer_masks.npz — label polygons (normalised, 3 to 1400 vertices) as the trainer prepares them: resampled
  to 1000 points (or one more than the image's longest), mapped through a letterbox's size / ratio / padding
  (``cases`` rows w, h, ratio w, ratio h, pad left, pad top), the resulting pixel polygons and their masks
  at 640 x 640, ratio 4.
* <case>.npz — a batch run through ``v8SegmentationLoss`` or ``SegmentLoss26`` (its SegTaskAlignedAssigner call
  recorded): inputs (labels in the trainer's order, head maps, mask coefficients, prototypes, semantic logits,
  the batch's GT masks), the assigner's GT tensors and outputs, its intermediates (candidates; box CIoU,
  combined overlap and alignment metric of every candidate pair in (image, GT, anchor) order; pre-conflict
  positives) and the logged loss items.

* model_<name>.npz — a real -seg model built from its YAML (seeded untrained weights, YOLO26n-seg: end-to-end,
  reg_max 1, semantic logits; YOLO11n-seg): each branch's boxes / scores / mask coefficients / prototypes
  (/ semantic logits), the batch's labels and polygons, the criterion's loss items and total.

Inputs are drawn with numpy from each case's seed (no yolotal code).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

import ultralytics
from ultralytics.data.utils import polygons2masks, polygons2masks_overlap
from ultralytics.utils import loss as uloss
from ultralytics.utils.tal import TaskAlignedAssigner

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden" / "seg"


# ------------------------------------------------------------------------------------------------ polygons
def random_polygon(rng, h, w, kind):
    k = int(rng.integers(3, 30))
    if kind == "star":
        c = rng.uniform(0, [w, h])
        r = rng.uniform(1, max(h, w) / 3, k)
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        p = np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1)
    elif kind == "scribble":  # self-intersecting
        p = rng.uniform(0, [w, h], (k, 2))
    elif kind == "border":  # clipped labels on the right / bottom edge and beyond
        p = rng.uniform(0, [w, h], (k, 2))
        p[rng.random(k) < 0.3, 0] = w
        p[rng.random(k) < 0.3, 1] = h
    elif kind == "outside":
        p = rng.uniform(-40, [w + 40, h + 40], (k, 2))
    elif kind == "thin":
        x = rng.uniform(0, w)
        p = np.array([[x, rng.uniform(0, h)], [x + rng.uniform(0, 3), rng.uniform(0, h)], [x + rng.uniform(0, 3), rng.uniform(0, h)]])
    else:  # tiny
        c = rng.uniform(0, [w, h])
        p = c + rng.uniform(-4, 4, (k, 2))
    return p.astype(np.float32)


def make_masks_corpus():
    rng = np.random.default_rng(100)
    groups = [(640, 640, 4), (640, 640, 4), (640, 640, 4), (480, 640, 4), (320, 320, 2), (256, 384, 1), (160, 224, 8)]
    kinds = ["star", "scribble", "border", "outside", "thin", "tiny"]
    coords, counts, group, bits, index_bits, orders = [], [], [], [], [], []
    for gi, (h, w, r) in enumerate(groups):
        n = 40 if gi < 3 else 12
        polys = [random_polygon(rng, h, w, kinds[int(rng.integers(0, len(kinds)))]) for _ in range(n)]
        if gi == 0:  # identical areas (an area tie) and an empty mask
            polys[1] = polys[0] + np.float32(0)
            polys[2] = np.array([[w + 10, 5], [w + 20, 5], [w + 15, 30]], np.float32)
        masks = polygons2masks((h, w), [p.reshape(-1) for p in polys], color=1, downsample_ratio=r)
        index, order = polygons2masks_overlap((h, w), [p.reshape(-1) for p in polys], downsample_ratio=r)
        for p in polys:
            coords.append(p)
            counts.append(len(p))
            group.append(gi)
        bits.append(np.packbits(masks.astype(bool).reshape(-1)))
        index_bits.append(np.frombuffer(index.tobytes(), np.uint8))
        orders.append(order.astype(np.int64))
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT / "masks.npz", coords=np.concatenate(coords), counts=np.array(counts), group=np.array(group),
        groups=np.array(json.dumps(groups)), masks_bits=np.concatenate(bits),
        index_bits=np.concatenate(index_bits), order=np.concatenate(orders),
        reference=np.array(f"ultralytics {ultralytics.__version__}"),
    )
    print("masks.npz", len(counts), "polygons")


def make_trainer_corpus():
    """Label polygons (normalised, 3 to 1400 vertices) through the trainer's resampling and letterbox updates
    (``resample_segments``, ``Instances.denormalize/scale/add_padding``) and ``polygons2masks``."""
    from ultralytics.utils.instance import Instances
    from ultralytics.utils.ops import resample_segments

    rng = np.random.default_rng(200)
    cases, seg_coords, seg_counts, out_px, masks_bits = [], [], [], [], []
    for t in range(12):
        lens = [int(x) for x in rng.choice([3, 4, 10, 57, 999, 1000, 1001, 1400], int(rng.integers(1, 4)))]
        segs = [rng.uniform(0, 1, (k, 2)).astype(np.float32) for k in lens]
        w, h = [(640, 480), (640, 640), (333, 640), (512, 384)][t % 4]
        ratio = [(1.0, 1.0), (0.5, 0.5), (1.37, 1.37)][t % 3]
        pad = [(0, 0), (0, 80), (153, 0)][t % 3]
        max_len = max(lens)
        n = (max_len + 1) if 1000 < max_len else 1000
        res = np.stack(resample_segments([s.copy() for s in segs], n=n), 0)
        inst = Instances(np.zeros((len(segs), 4), np.float32), res, bbox_format="xywh", normalized=True)
        inst.convert_bbox("xyxy")
        inst.denormalize(w, h)
        inst.scale(*ratio)
        inst.add_padding(*pad)
        m = polygons2masks((640, 640), list(inst.segments), 1, 4)
        cases.append([w, h, *ratio, *pad])
        seg_coords += segs
        seg_counts.append(lens)
        out_px.append(inst.segments.reshape(-1, 2))
        masks_bits.append(np.packbits(m.astype(bool).reshape(-1)))
    np.savez_compressed(
        OUT / "trainer_masks.npz", cases=np.array(cases, np.float64), seg_coords=np.concatenate(seg_coords),
        seg_counts=np.array(json.dumps(seg_counts)), polygons_px=np.concatenate(out_px),
        masks_bits=np.concatenate(masks_bits), reference=np.array(f"ultralytics {ultralytics.__version__}"),
    )
    print("trainer_masks.npz", len(cases), "images")


# ------------------------------------------------------------------------------------------------ batches
def polygons_for_image(rng, n, h, w):
    """n object polygons (px) of assorted sizes, some overlapping, some on the border."""
    out = []
    for _ in range(n):
        size = rng.choice([6, 20, 60, 150])
        c = rng.uniform(size / 2, [w - size / 2, h - size / 2]) if rng.random() < 0.8 else np.array([w - 2, rng.uniform(0, h)])
        k = int(rng.integers(5, 16))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.4, 1.0, k) * size / 2
        p = np.stack([c[0] + rad * np.cos(a), c[1] + rad * np.sin(a)], 1)
        p[:, 0] = p[:, 0].clip(0, w)
        p[:, 1] = p[:, 1].clip(0, h)
        out.append(p.astype(np.float32))
    return out


CASES = {
    # name: (seed, loss, batch, imgsz, nc, nm, per_image, heads, overlap, topk, topk2, semantic)
    "v8_overlap_randn": (31, "v8", 2, (320, 320), 3, 8, [7, 4], "randn", True, 10, None, False),
    "v8_separate_near": (32, "v8", 2, (256, 320), 4, 8, [9, 5], "near", False, 10, None, False),
    "y26_overlap_near": (33, "26", 2, (320, 320), 3, 8, [12, 6], "near", True, 10, None, True),
    "y26_separate_randn": (34, "26", 2, (256, 256), 2, 32, [6, 3], "randn", False, 10, None, False),
    "y26_o2o_near": (35, "26", 2, (320, 320), 3, 8, [10, 8], "near", True, 7, 1, True),
    "y26_crowded_near": (36, "26", 1, (256, 256), 2, 8, [30], "near", False, 10, None, True),
    # YOLO26 models have reg_max 1 (an L1 term instead of DFL): both branches of the end-to-end loss
    "y26_reg1_o2m_near": (37, "26", 2, (320, 320), 3, 8, [8, 5], "near1", True, 10, None, True),
    "y26_reg1_o2o_near": (37, "26", 2, (320, 320), 3, 8, [8, 5], "near1", True, 7, 1, True),
}
STRIDES = (8, 16, 32)


def model_stub(nc, overlap, reg_max):
    m = torch.nn.Module()
    m.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    m.model = [types.SimpleNamespace(stride=torch.tensor(STRIDES, dtype=torch.float32), nc=nc, reg_max=reg_max)]
    m.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, overlap_mask=overlap)
    return m


def trainer_batch(polys_per_image, cls_per_image, imgsz, overlap, ratio=4):
    """The trainer's batch dict (as Format + collate build it) and the labels in its order."""
    h, w = imgsz
    rows, masks_list, sem_list = [], [], []
    for i, (polys, cls) in enumerate(zip(polys_per_image, cls_per_image)):
        cls = np.asarray(cls, np.float32)
        if overlap:
            index, order = polygons2masks_overlap((h, w), [p.reshape(-1) for p in polys], downsample_ratio=ratio)
            polys = [polys[j] for j in order]
            cls = cls[order]
            masks_list.append(torch.from_numpy(index.astype(np.int64))[None].float())
            sem = torch.from_numpy(cls)[torch.from_numpy(index.astype(np.int64)) - 1]
        else:
            m = polygons2masks((h, w), [p.reshape(-1) for p in polys], color=1, downsample_ratio=ratio)
            masks_list.append(torch.from_numpy(m).float())
            t = torch.from_numpy(m)
            wts = t.sum(dim=(1, 2))
            key = torch.where(t.bool(), wts[:, None, None], wts.max() + 1)
            sem = torch.from_numpy(cls)[key.min(0).indices] * t.any(0)
        sem_list.append(sem.float())
        for p, c in zip(polys, cls):
            x1, y1 = p.min(0)
            x2, y2 = p.max(0)
            rows.append([i, c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
    labels = np.array(rows, np.float32).reshape(-1, 6)
    lab = torch.from_numpy(labels)
    batch = {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6], "masks": torch.cat(masks_list),
             "sem_masks": torch.stack(sem_list)}
    return batch, labels


def near_heads(rng, labels, polys_in_order, batch, nc, nm, imgsz, reg_max):
    """Box/class maps near the labels, prototypes whose channel 0 is the image's GT union (+/-1) and
    coefficients (1, noise) for anchors inside a GT box: predicted masks near the GT masks."""
    h, w = imgsz
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_golden import near_label_heads

    levels = near_label_heads(rng, labels, batch, nc, reg_max, imgsz, STRIDES)
    mh, mw = h // 4, w // 4
    protos = rng.normal(0, 0.3, (batch, nm, mh, mw)).astype(np.float32)
    sem_level = np.full((batch, nc, h // 8, w // 8), -2.0, np.float32) + rng.normal(0, 0.5, (batch, nc, h // 8, w // 8)).astype(np.float32)
    for i in range(batch):
        union = np.zeros((mh, mw), bool)
        for p in polys_in_order[i]:
            union |= polygons2masks((h, w), [p.reshape(-1)], 1, 4)[0].astype(bool)
        protos[i, 0] += 2 * union - 1
    a = sum((h // s) * (w // s) for s in STRIDES)
    coef = rng.normal(0, 1, (batch, nm, a)).astype(np.float32)
    anc = []
    for s in STRIDES:
        ys, xs = np.meshgrid(np.arange(h // s) + 0.5, np.arange(w // s) + 0.5, indexing="ij")
        anc.append(np.stack([xs.ravel(), ys.ravel()], 1) * s)
    anc = np.concatenate(anc)
    for row in labels:
        i, c = int(row[0]), int(row[1])
        x1, y1 = (row[2] - row[4] / 2) * w, (row[3] - row[5] / 2) * h
        x2, y2 = (row[2] + row[4] / 2) * w, (row[3] + row[5] / 2) * h
        inside = (anc[:, 0] > x1) & (anc[:, 0] < x2) & (anc[:, 1] > y1) & (anc[:, 1] < y2)
        coef[i, :, inside] = rng.normal(0, 0.3, (int(inside.sum()), nm)).astype(np.float32)
        coef[i, 0, inside] = 1.0
        gx1, gy1, gx2, gy2 = int(x1 // 8), int(y1 // 8), int(np.ceil(x2 / 8)), int(np.ceil(y2 / 8))
        sem_level[i, c, gy1:gy2, gx1:gx2] += 3.0
    return levels, coef, protos, sem_level


def compute_case(spec):
    """Run one case through the reference; returns (config, arrays) as stored."""
    seed, kind, batch_n, imgsz, nc, nm, per_image, heads, overlap, topk, topk2, semantic = spec
    reg_max = 1 if heads.endswith("1") else 16
    rng = np.random.default_rng(seed)
    h, w = imgsz
    polys = [polygons_for_image(rng, n, h, w) for n in per_image]
    clss = [rng.integers(0, nc, n) for n in per_image]
    batch, labels = trainer_batch(polys, clss, imgsz, overlap)
    if overlap:  # polygons in the trainer's (area) order
        ordered = []
        for i, p in enumerate(polys):
            _, order = polygons2masks_overlap((h, w), [q.reshape(-1) for q in p], downsample_ratio=4)
            ordered.append([p[j] for j in order])
    else:
        ordered = polys
    if heads == "randn":
        levels = [rng.normal(0, 1, (batch_n, 4 * reg_max + nc, h // s, w // s)).astype(np.float32) for s in STRIDES]
        a = sum((h // s) * (w // s) for s in STRIDES)
        coef = rng.normal(0, 1, (batch_n, nm, a)).astype(np.float32)
        protos = rng.normal(0, 1, (batch_n, nm, h // 4, w // 4)).astype(np.float32)
        sem_level = rng.normal(0, 1, (batch_n, nc, h // 8, w // 8)).astype(np.float32)
    else:
        levels, coef, protos, sem_level = near_heads(rng, labels, ordered, batch_n, nc, nm, imgsz, reg_max)

    model = model_stub(nc, overlap, reg_max)
    cls_ = uloss.v8SegmentationLoss if kind == "v8" else uloss.SegmentLoss26
    crit = cls_(model, tal_topk=topk, tal_topk2=topk2)
    rec = {}
    orig = crit.assigner

    def recording(*args, **kw):
        rec["args"] = [x.clone() for x in args]
        rec["kw"] = {k: v.clone() for k, v in kw.items()}
        out = orig(*args, **kw)
        rec["out"] = out
        return out

    crit.assigner = recording
    t_levels = [torch.from_numpy(x) for x in levels]
    flat = torch.cat([x.view(batch_n, x.shape[1], -1) for x in t_levels], 2)
    proto_t = torch.from_numpy(protos)
    preds = {"boxes": flat[:, : 4 * reg_max], "scores": flat[:, 4 * reg_max :], "feats": t_levels,
             "mask_coefficient": torch.from_numpy(coef),
             "proto": (proto_t, torch.from_numpy(sem_level)) if semantic else proto_t}
    total, items = crit.loss(preds, batch)
    names = list(items)
    loss_items = np.array([float(items[k]) for k in names], np.float32)

    pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt = rec["args"]
    tl, tb, ts, fg, tgi = rec["out"]
    a = orig
    a.bs, a.n_max_boxes = pd_scores.shape[0], gt_bboxes.shape[1]
    extra = {}
    kw = rec["kw"]
    mask_in = a.select_candidates_in_gts(anc, gt_bboxes, mask_gt)
    mask_pos, align, ov = a.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc, mask_gt, **kw)
    cand = (mask_in * mask_gt).bool()
    idx = cand.nonzero(as_tuple=True)
    box_iou = TaskAlignedAssigner.pair_overlaps(a, idx, gt_bboxes, pd_bboxes)
    extra = dict(mask_in_gts=mask_in.bool().numpy(), mask_pos_topk=mask_pos.bool().numpy(),
                 cand_box_iou=box_iou.numpy(), cand_overlap=ov[idx].numpy(), cand_align=align[idx].numpy())
    if kw:
        extra["gt_masks_bits"] = np.packbits(kw["gt_masks"].bool().numpy().reshape(-1))
        extra["gt_masks_shape"] = np.array(kw["gt_masks"].shape)
        extra["mask_scale"] = kw["mask_scale"].numpy()
    cfg = dict(kind=kind, imgsz=list(imgsz), strides=list(STRIDES), nc=nc, nm=nm, reg_max=reg_max, topk=topk,
               topk2=topk2, overlap=overlap, semantic=semantic, loss_names=names,
               reference=f"ultralytics {ultralytics.__version__}")
    arrays = dict(
        labels=labels,
        poly_coords=np.concatenate([p for im in ordered for p in im]),
        poly_counts=np.array([len(p) for im in ordered for p in im]),
        batch_masks=batch["masks"].numpy().astype(np.int32 if overlap else np.uint8),
        mask_coef=coef, protos=protos, **({"semantic": sem_level} if semantic else {}),
        **{f"level{i}": x for i, x in enumerate(levels)},
        gt_labels=gt_labels.numpy(), gt_bboxes=gt_bboxes.numpy(), mask_gt=mask_gt.numpy(),
        target_labels=tl.numpy(), target_bboxes=tb.numpy(), target_scores=ts.float().numpy(),
        fg_mask=fg.bool().numpy(), target_gt_idx=tgi.long().numpy(), loss_items=loss_items, **extra,
    )
    return cfg, arrays


def run_case(name, spec):
    cfg, arrays = compute_case(spec)
    np.savez_compressed(OUT / f"{name}.npz", config=np.array(json.dumps(cfg)), **arrays)
    items = dict(zip(cfg["loss_names"], arrays["loss_items"].round(5)))
    print(f"{name:22s} M={arrays['gt_bboxes'].shape[1]} fg={int(arrays['fg_mask'].sum())} items={items}")


MODEL_CASES = {  # name: (yaml, overlap, seed)
    "model_yolo26n_seg": ("yolo26n-seg.yaml", True, 41),
    "model_yolo11n_seg": ("yolo11n-seg.yaml", False, 42),
}


def run_model_case(name, yaml, overlap, seed):
    """A -seg model built from its YAML (seeded weights), its training-mode output on a random batch and the
    reference criterion's loss: the heads of every branch, the batch and the loss items / total are stored."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import SegmentationModel
    from ultralytics.utils import DEFAULT_CFG

    torch.manual_seed(seed)
    nc, imgsz = 3, (256, 256)
    model = SegmentationModel(yaml, nc=nc, verbose=False)
    model.args = get_cfg(DEFAULT_CFG, {"overlap_mask": overlap})
    model.train()
    rng = np.random.default_rng(seed)
    polys = [polygons_for_image(rng, n, *imgsz) for n in (6, 3)]
    clss = [rng.integers(0, nc, len(p)) for p in polys]
    batch, labels = trainer_batch(polys, clss, imgsz, overlap)
    with torch.no_grad():
        preds = model(torch.rand(2, 3, *imgsz))
        total, items = model.init_criterion()(preds, batch)
    ordered = []
    for p in polys:
        order = polygons2masks_overlap(imgsz, [q.reshape(-1) for q in p], downsample_ratio=4)[1] if overlap else range(len(p))
        ordered += [p[j] for j in order]
    arrays = {"labels": labels, "poly_coords": np.concatenate(ordered), "poly_counts": np.array([len(p) for p in ordered]),
              "loss_items": np.array([float(v) for v in items.values()], np.float32),
              "loss_total": np.float32(total.sum())}
    branches = {"one2many": preds["one2many"], "one2one": preds["one2one"]} if "one2many" in preds else {"main": preds}
    for bn, br in branches.items():
        proto = br["proto"]
        arrays[f"{bn}_boxes"] = br["boxes"].numpy()
        arrays[f"{bn}_scores"] = br["scores"].numpy()
        arrays[f"{bn}_mask_coef"] = br["mask_coefficient"].numpy()
        arrays[f"{bn}_protos"] = (proto[0] if isinstance(proto, tuple) else proto).numpy()
        if isinstance(proto, tuple):
            arrays[f"{bn}_semantic"] = proto[1].numpy()
    arrays["grids"] = np.array([f.shape[2:] for f in next(iter(branches.values()))["feats"]])
    cfg = dict(yaml=yaml, overlap=overlap, nc=nc, imgsz=list(imgsz), branches=list(branches), loss_names=list(items),
               reg_max=int(model.model[-1].reg_max), reference=f"ultralytics {ultralytics.__version__}")
    np.savez_compressed(OUT / f"{name}.npz", config=np.array(json.dumps(cfg)), **arrays)
    print(f"{name:22s} items={dict(zip(cfg['loss_names'], arrays['loss_items'].round(5)))}")


def main():
    if not ultralytics.__version__.startswith("8.4"):
        raise SystemExit(f"needs ultralytics 8.4.x, found {ultralytics.__version__}")
    torch.set_num_threads(1)
    make_masks_corpus()
    make_trainer_corpus()
    for name, spec in CASES.items():
        run_case(name, spec)
    for name, spec in MODEL_CASES.items():
        run_model_case(name, *spec)


if __name__ == "__main__":
    main()
