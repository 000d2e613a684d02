"""Golden fixtures for every yolotal profile, each recorded from a real ultralytics release of its range
(NOT run by CI; needs that release). The release's own TaskAlignedAssigner and detection loss are run; the
installed release must belong to the profile asked for.

    # the package only, over the oracle venv's torch (no other dependency changes):
    /work/oracle/bin/pip install --no-deps --target /work/oracle-8.4.127 ultralytics==8.4.127
    YOLO_VERBOSE=False YOLO_OFFLINE=1 PYTHONPATH=/work/oracle-8.4.127 /work/oracle/bin/python \\
        scripts/make_golden_profiles.py --profile v8.4.0
    # likewise: v8.0.0 <- 8.0.6, v8.0.35 <- 8.0.51, classic <- 8.3.200, ultralytics <- 8.4.190 (the oracle venv)

8.0.x imports hydra and IPython at module level (training and notebook helpers, not the loss): when they are
missing, empty stand-ins are put in sys.modules before the import.

Cases: the 13 cases of scripts/make_golden.py (their inputs are read from tests/fixtures/golden/inputs, which
that script wrote; topk2 cases only for the 8.4 profiles), plus PROFILE_CASES below, made for the profiles'
differences: GTs of 5-15 px on P3 and on P2-like strides 4..32, a reg_max-1 head, crowded conflicts (whose
winner under 8.0.0-8.0.51 can be a GT that is not a candidate of the anchor). Written as make_golden.py writes
(tests/fixtures/golden/<profile>/<case>.npz; inputs/<case>.npz for the new cases), and the config JSON also
carries ``loss_names``: the names the release's loss gives its three items (8.4.104 on: a dict).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (numpy-only case generators; imports no ultralytics at module level)

OUT = mg.OUT

# name: (seed, batch, imgsz, strides, nc, reg_max, per_image, kind, topk, topk2)
PROFILE_CASES = {
    "tiny_p2": (20, 2, (128, 128), (4, 8, 16, 32), 3, 16, [9, 7], "tiny5_15", 10, None),
    "tiny_p3": (21, 2, (160, 160), (8, 16, 32), 3, 16, [9, 8], "tiny5_15", 10, None),
    "tiny_o2o": (22, 2, (160, 160), (8, 16, 32), 3, 16, [8, 6], "tiny5_15", 7, 1),
    "tiny_reg_max1": (23, 2, (160, 160), (8, 16, 32), 3, 1, [7, 6], "tiny_mixed", 10, None),
    "crowded_all": (24, 1, (128, 128), (8, 16, 32), 2, 16, [16], "overlapping", 10, None),
    "all_gts_winner": (25, 1, (96, 96), (8, 16, 32), 3, 16, None, "crafted", 10, None),
}
RANGES = {  # profile -> (first, last) release, as yolotal.profiles (kept here so the script needs no yolotal)
    "v8.0.0": ((8, 0, 0), (8, 0, 6)),
    "v8.0.35": ((8, 0, 35), (8, 0, 51)),
    "classic": ((8, 0, 52), (8, 3, 253)),
    "v8.4.0": ((8, 4, 0), (8, 4, 127)),
    "ultralytics": ((8, 4, 128), (8, 99, 0)),
}


def profile_labels(rng, batch, nc, per_image, imgsz, kind) -> np.ndarray:
    """Labels for PROFILE_CASES (numpy only): sides of 5-15 px, tiny plus larger, or heavily overlapping."""
    h, w = imgsz
    rows = []
    for b in range(batch):
        for i in range(per_image[b]):
            if kind == "tiny5_15" or (kind == "tiny_mixed" and i % 2 == 0):
                bw, bh = rng.uniform(5, 15, 2)
            elif kind == "tiny_mixed":
                bw, bh = rng.uniform(16, 90, 2)
            else:  # overlapping: boxes of 20-60 px around a few centres
                cx0, cy0 = [(40, 40), (80, 70), (60, 95)][i % 3]
                bw, bh = rng.uniform(20, 60, 2)
                cx = np.clip(cx0 + rng.normal(0, 8), bw / 2, w - bw / 2)
                cy = np.clip(cy0 + rng.normal(0, 8), bh / 2, h - bh / 2)
                rows.append([b, int(rng.integers(0, nc)), cx / w, cy / h, bw / w, bh / h])
                continue
            cx, cy = rng.uniform(bw / 2, w - bw / 2), rng.uniform(bh / 2, h - bh / 2)
            rows.append([b, int(rng.integers(0, nc)), cx / w, cy / h, bw / w, bh / h])
    return np.array(rows, dtype=np.float32).reshape(-1, 6)


def _dfl_logits(d, reg_max):
    """(4,) distances in grid units -> (4 * reg_max,) logits peaked at them."""
    bins = np.arange(reg_max)
    return np.concatenate([-((bins - x) ** 2) / 0.7 for x in d]).astype(np.float32)


def around_label_heads(rng, labels, batch, nc, reg_max, imgsz, strides, reach=16.0, noise=0.3):
    """Head maps whose anchors inside a label *or near a small one* (within its box widened to ``reach`` px)
    predict a noisy version of it; the box is stretched to keep the anchor inside (distances >= 0.05). Elsewhere
    small boxes and low scores. Near-anchor predictions make the enlargement's extra candidates carry weight."""
    h, w = imgsz
    levels = []
    for s in strides:
        gh, gw = h // s, w // s
        x = np.zeros((batch, 4 * reg_max + nc, gh, gw), np.float32)
        x[:, : 4 * reg_max] = _dfl_logits([0.5] * 4, reg_max)[:, None, None] if reg_max > 1 else 0.5
        x[:, 4 * reg_max :] = rng.normal(-4, 0.5, (batch, nc, gh, gw))
        for row in labels:
            b, c = int(row[0]), int(row[1])
            cx, cy, bw, bh = row[2] * w, row[3] * h, row[4] * w, row[5] * h
            rx, ry = max(bw, reach) / 2, max(bh, reach) / 2
            for gy in range(gh):
                for gx in range(gw):
                    px, py = (gx + 0.5) * s, (gy + 0.5) * s
                    if not (abs(px - cx) < rx and abs(py - cy) < ry):
                        continue
                    d = np.array([px - (cx - bw / 2), py - (cy - bh / 2), cx + bw / 2 - px, cy + bh / 2 - py]) / s
                    d = np.maximum(d + rng.normal(0, noise, 4), 0.05)
                    if reg_max > 1:
                        x[b, : 4 * reg_max, gy, gx] = _dfl_logits(np.minimum(d, reg_max - 1.5), reg_max)
                    else:
                        x[b, :4, gy, gx] = d
                    x[b, 4 * reg_max + c, gy, gx] = 1.0 + rng.normal(0, 1.0)
        levels.append(x)
    return levels


def crafted_all_gts(rng, nc, reg_max, imgsz, strides):
    """One 96 x 96 image where the 8.0.0-8.0.51 conflict rule decides: GTs A and B both contain the anchor at
    (44, 44) (stride 8) and both pick it; its predicted box nearly equals GT C, which does not contain it. 8.0.x
    gives the anchor to C (largest CIoU among all GTs), later releases to A or B (largest among its candidates)."""
    h, w = imgsz
    boxes = [(30, 30, 50, 60, 0), (38, 38, 54, 50, 1), (46, 30, 66, 60, 2), (8, 64, 40, 90, 0)]  # px xyxy, class
    labels = np.array([[0, c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
                       for x1, y1, x2, y2, c in boxes], np.float32)
    levels = around_label_heads(rng, labels, 1, nc, reg_max, imgsz, strides)
    s, gx, gy = 8, 5, 5  # the anchor (44, 44)
    px = py = (gx + 0.5) * s
    d = np.array([px - 43.0, py - 30.0, 64.0 - px, 60.0 - py]) / s  # a box close to C, reaching the anchor
    levels[0][0, : 4 * reg_max, gy, gx] = _dfl_logits(d, reg_max)
    levels[0][0, 4 * reg_max :, gy, gx] = [1.5, 1.2, 2.0]
    return labels, levels


def profile_inputs(spec):
    seed, batch, imgsz, strides, nc, reg_max, per_image, kind, topk, topk2 = spec
    rng = np.random.default_rng(seed)
    if kind == "crafted":
        return crafted_all_gts(rng, nc, reg_max, imgsz, strides)
    labels = profile_labels(rng, batch, nc, per_image, imgsz, kind)
    levels = around_label_heads(rng, labels, batch, nc, reg_max, imgsz, strides)
    return labels, levels


def _stub_missing(*names):
    for name in names:
        try:
            __import__(name)
        except ImportError:
            mod = types.ModuleType(name)
            if name == "hydra":
                mod.main = lambda *a, **k: (lambda f: f)
            if name == "IPython":
                mod.get_ipython = lambda: None
                mod.display = types.ModuleType("IPython.display")
                sys.modules["IPython.display"] = mod.display
            sys.modules[name] = mod


def reference():
    """(version tuple, version string, a loss factory, the candidate-selection call) of the installed release."""
    _stub_missing("hydra", "IPython")
    import ultralytics

    ver = ultralytics.__version__
    v = tuple(int(x) for x in ver.split(".")[:3])
    if _has("ultralytics.utils.loss"):
        from ultralytics.utils import loss as uloss

        def make(model, topk, topk2):
            if v >= (8, 4, 0):
                return uloss.v8DetectionLoss(model, tal_topk=topk, tal_topk2=topk2)
            return uloss.v8DetectionLoss(model, tal_topk=topk) if v >= (8, 3, 0) else _set_topk(
                uloss.v8DetectionLoss(model), topk)
    else:  # 8.0.x: the loss lives in the detect trainer module, with topk 10 fixed (set on its assigner here)
        import importlib

        dtrain = importlib.import_module("ultralytics.yolo.v8.detect.train")  # the package exports a train()

        def make(model, topk, topk2):
            return _set_topk(dtrain.Loss(model), topk)
    return v, ver, make


def _has(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def _set_topk(crit, topk):
    crit.assigner.topk = topk
    return crit


def _candidates(v, assigner, anc, gt_bboxes, mask_gt):
    if v >= (8, 4, 0):
        return assigner.select_candidates_in_gts(anc, gt_bboxes, mask_gt)
    if hasattr(assigner, "select_candidates_in_gts"):
        return assigner.select_candidates_in_gts(anc, gt_bboxes)
    tal = sys.modules[type(assigner).__module__]  # 8.0.x: a module-level function
    return tal.select_candidates_in_gts(anc, gt_bboxes)


def model_stub(strides, nc, reg_max):
    m = mg.model_stub(strides, nc, reg_max)
    m.model[0].no = nc + 4 * reg_max  # 8.0.x-8.1 read the head's output count
    m.args.min_memory = False  # 8.0.3x-8.0.51: the default (no rolled-out assignment)
    return m


def run_case(name, labels, levels, case, profile, ref):
    imgsz, strides, nc, reg_max, topk, topk2 = case
    v, ver, make = ref
    batch = levels[0].shape[0]
    crit = make(model_stub(strides, nc, reg_max), topk, topk2)
    rec = {}
    orig = crit.assigner

    def recording(*args, **kw):
        rec["args"] = [a.clone() for a in args]
        out = orig(*args, **kw)
        rec["out"] = [o.clone() for o in out]  # 8.0.x divides target_bboxes by the strides in place afterwards
        return out

    crit.assigner = recording
    t_levels = [torch.from_numpy(x) for x in levels]
    lab = torch.from_numpy(labels)
    batch_d = {"batch_idx": lab[:, 0], "cls": lab[:, 1:2], "bboxes": lab[:, 2:6]}
    if v >= (8, 4, 0):
        b, c = t_levels[0].shape[:2]
        flat = torch.cat([x.view(b, c, -1) for x in t_levels], 2)
        preds = {"boxes": flat[:, : 4 * reg_max], "scores": flat[:, 4 * reg_max :], "feats": t_levels}
        _, items = crit(preds, batch_d)
    else:
        _, items = crit(t_levels, batch_d)
    if isinstance(items, dict):
        names, loss = list(items), torch.stack(list(items.values()))
    else:
        names, loss = ["box_loss", "cls_loss", "dfl_loss"], items
    loss = loss.detach().numpy().astype(np.float32)

    pd_scores, pd_bboxes, anc, gt_labels, gt_bboxes, mask_gt = rec["args"]
    tl, tb, ts, fg, tgi = rec["out"]
    a = orig
    a.bs, a.n_max_boxes = pd_scores.shape[0], gt_bboxes.shape[1]
    extra = {}
    if gt_bboxes.shape[1]:
        mask_in = _candidates(v, a, anc, gt_bboxes, mask_gt)
        mask_pos, align, ov = a.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc, mask_gt)
        extra = dict(mask_in_gts=mask_in.bool().numpy(), overlaps=ov.numpy(), align_metric=align.numpy(),
                     mask_pos_topk=mask_pos.bool().numpy())
    cfg = dict(imgsz=list(imgsz), strides=list(strides), nc=nc, reg_max=reg_max, topk=topk, topk2=topk2,
               profile=profile, reference=f"ultralytics {ver}", loss_names=names)
    (OUT / profile).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT / profile / f"{name}.npz",
        config=np.array(json.dumps(cfg)),
        gt_labels=gt_labels.numpy(), gt_bboxes=gt_bboxes.numpy(), mask_gt=mask_gt.numpy(),
        target_labels=tl.numpy(), target_bboxes=tb.numpy(), target_scores=ts.float().numpy(),
        fg_mask=fg.bool().numpy(), target_gt_idx=tgi.long().numpy(), loss=loss,
        **extra,
    )
    print(f"{profile:12s} {name:18s} b={batch} M={gt_bboxes.shape[1]} fg={int(fg.sum())} loss={loss} {names}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", choices=list(RANGES), required=True)
    ap.add_argument("--only-new", action="store_true", help="only PROFILE_CASES (the 13 older cases exist)")
    args = ap.parse_args()
    ref = reference()
    first, last = RANGES[args.profile]
    if not first <= ref[0] <= last:
        raise SystemExit(f"profile {args.profile} is ultralytics {first}-{last}; found {ref[1]}")
    has_topk2 = ref[0] >= (8, 4, 0)
    torch.set_num_threads(1)
    if not args.only_new:
        for name, spec in mg.CASES.items():
            seed, batch, imgsz, strides, nc, reg_max, per_image, kind, heads, topk, topk2 = spec
            if topk2 is not None and not has_topk2:
                continue
            inp = np.load(OUT / "inputs" / f"{name}.npz")
            levels = [inp[f"level{i}"] for i in range(len(strides))]
            run_case(name, inp["labels"], levels, (imgsz, strides, nc, reg_max, topk, topk2), args.profile, ref)
    for name, spec in PROFILE_CASES.items():
        seed, batch, imgsz, strides, nc, reg_max, per_image, kind, topk, topk2 = spec
        if topk2 is not None and not has_topk2:
            continue
        labels, levels = profile_inputs(spec)
        path = OUT / "inputs" / f"{name}.npz"
        if not path.exists():
            np.savez_compressed(path, labels=labels, **{f"level{i}": x for i, x in enumerate(levels)})
        run_case(name, labels, levels, (imgsz, strides, nc, reg_max, topk, topk2), args.profile, ref)


if __name__ == "__main__":
    main()
