"""yolotal.TaskAlignedAssigner in a training loop: memory held between calls, float16/bfloat16 inputs, and no
host round-trips in its path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from yolotal import TaskAlignedAssigner

MIB = 1 << 20


def make_batch(b: int, imgsz: int, n_gt: int, nc: int = 8, seed: int = 0, large: bool = True):
    """Anchors of strides 8/16/32, GTs of every size (with some covering most of the image when ``large``),
    predictions near the GTs: (pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt), float32."""
    g = torch.Generator().manual_seed(seed)
    pts = []
    for s in (8, 16, 32):
        n = imgsz // s
        ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
        pts.append(torch.stack((xs.reshape(-1), ys.reshape(-1)), 1) * s)
    anc = torch.cat(pts)
    a = anc.shape[0]
    side = (torch.rand(b, n_gt, generator=g) * 5.5 + 1.5).exp().clamp(2, imgsz)  # 4 .. 1100 px
    if large:
        side[:, :2] = imgsz * 0.95
    wh = torch.stack((side, side * (0.6 + 0.8 * torch.rand(b, n_gt, generator=g))), -1).clamp(max=imgsz)
    c = wh / 2 + torch.rand(b, n_gt, 2, generator=g) * (imgsz - wh)
    gt = torch.cat((c - wh / 2, c + wh / 2), -1)
    labels = torch.randint(0, nc, (b, n_gt, 1), generator=g).float()
    mask = torch.ones(b, n_gt, 1)
    mask[-1, n_gt // 2 :] = 0  # padding rows
    gt[-1, n_gt // 2 :] = 0
    scores = torch.rand(b, a, nc, generator=g) * 0.9
    own = torch.randint(0, n_gt, (b, a), generator=g)
    pd = gt.gather(1, own.unsqueeze(-1).expand(b, a, 4)) + torch.randn(b, a, 4, generator=g) * 6
    pd = torch.cat((torch.minimum(pd[..., :2], pd[..., 2:]), torch.maximum(pd[..., :2], pd[..., 2:])), -1)
    return scores, pd, anc, labels, gt, mask


def tensor_bytes(obj, seen=None) -> int:
    """Bytes of the tensor storages reachable from obj's attributes (dicts, lists, tuples, dataclasses)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        st = obj.untyped_storage()
        return 0 if ("st", st.data_ptr()) in seen or seen.add(("st", st.data_ptr())) else st.nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(tensor_bytes(v, seen) for v in obj)
    if dataclasses.is_dataclass(obj):
        return sum(tensor_bytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if hasattr(obj, "__dict__"):
        return tensor_bytes(vars(obj), seen)
    return 0


def test_last_is_off_by_default_and_nothing_big_is_held_between_calls():
    x = make_batch(4, 640, 60)
    tal = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5)
    out = tal(*x)
    assert tal.last is None
    held = tensor_bytes(tal)
    assert held <= MIB, f"{held} bytes held"
    del out
    # the same object with keep_last holds the pairs: the measurement sees them
    kept = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5, keep_last=True)
    kept(*x)
    assert kept.last is not None and tensor_bytes(kept) > MIB
    assert kept.last.n_pairs > 10_000


def test_keeping_last_context_manager():
    x = make_batch(2, 320, 10)
    tal = TaskAlignedAssigner(num_classes=8, alpha=0.5)
    with tal.keeping_last():
        out = tal(*x)
        r = tal.last
    assert r is not None and torch.equal(r.fg_mask, out[3]) and not tal.keep_last
    tal(*x)  # outside the block the next call drops it again
    assert tal.last is None and tensor_bytes(tal) <= MIB


@pytest.mark.parametrize("imgsz", [640, 1280])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(imgsz, dtype):
    x = make_batch(2, imgsz, 40)
    half = [t.to(dtype) for t in x]
    tal = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5)
    labels, bboxes, scores, fg, gt_idx = tal(*half)
    assert scores.dtype == dtype and bboxes.dtype == dtype
    assert labels.dtype == torch.int64 and fg.dtype == torch.bool and gt_idx.dtype == torch.int64
    assert torch.isfinite(scores).all() and torch.isfinite(bboxes).all()
    assert ((scores >= 0) & (scores <= 1)).all() and int(fg.sum()) > 100
    # the large boxes overflow w*h in float16 (> 65504): computed in float16 they would give inf / NaN.
    assert float((x[4][..., 2] - x[4][..., 0]).max() * (x[4][..., 3] - x[4][..., 1]).max()) > 65504
    # exactly the float32 assignment of the same (rounded) values, its scores rounded once to the caller's dtype
    ref = tal(*[t.float() for t in half])
    assert torch.equal(fg, ref[3]) and torch.equal(gt_idx, ref[4]) and torch.equal(labels, ref[0])
    assert torch.equal(scores, ref[2].to(dtype)) and torch.equal(bboxes, ref[1].to(dtype))
