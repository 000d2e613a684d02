"""yolotal.TaskAlignedAssigner in a training loop: memory held between calls, float16/bfloat16 inputs, and no
host round-trips in its path."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import yolotal
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


# ----------------------------------------------------------------------------------- threads and host reads
HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__bool__,
              torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__, torch.Tensor.__array__}


PACKAGE_DIR = os.path.dirname(os.path.abspath(yolotal.__file__)) + os.sep  # frames of the package, not of a test


def in_package(filename: str) -> bool:
    """Whether a stack frame's file is part of the installed yolotal package (whatever the clone is called: a
    checkout in a folder named ``yolotal`` holds ``yolotal/tests/...``, which is not the package)."""
    return os.path.abspath(filename).startswith(PACKAGE_DIR)


class HostReadSpy(torch.overrides.TorchFunctionMode):
    """Records every tensor method that copies values to the host, with the yolotal function that called it."""

    def __init__(self):
        super().__init__()
        self.reads: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            import traceback

            caller = [f.name for f in traceback.extract_stack() if in_package(f.filename)]
            self.reads.append((func.__name__, caller[-1] if caller else "?"))
        return func(*args, **(kwargs or {}))


def test_no_host_reads_in_the_assignment_path():
    """Values stay on the inputs' device: no .item() / .tolist() / .cpu() / numpy / bool(tensor) / int(tensor).
    (Data-dependent sizes remain, as in any sparse computation: nonzero, repeat_interleave.) The anchor layout
    is recognised once per layout and then recalled with one on-device comparison."""
    x = make_batch(4, 320, 30)
    x[0][:, :, :] *= 0.001  # low scores and shifted boxes: GTs with fewer than topk t > 0, zero picks, conflicts
    tal = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5, topk2=3)
    from yolotal.assigners import tal_sparse

    tal_sparse._GRID_CACHE.clear()  # a layout this process has not seen: recognised on the host, once
    with HostReadSpy() as first:
        tal(*x)
    assert first.reads and {c for _, c in first.reads} == {"grid_structure"}
    for _ in range(2):  # a trainer's next batches: new anchor tensors, same values
        with HostReadSpy() as spy:
            out = tal(x[0], x[1], x[2].clone(), *x[3:])
        assert spy.reads == [], spy.reads
    assert int(out[3].sum()) > 0


def test_result_is_the_same_on_any_number_of_threads():
    """The pair stage runs on one intra-op thread and pow is computed position-independently, so 1 or 2
    threads give the same bits, and the dense reference (on 2 threads) agrees with the pair assigner."""
    from yolotal.assigners.tal import TALParams, assign

    x = make_batch(8, 640, 60)  # ~10^5 pairs: above torch's parallel grain size
    tal = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5, keep_last=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = tal(*x)
        assert tal.last.n_pairs > 65536 and torch.get_num_threads() == 2  # the caller's count is restored
        dense = assign(*x, TALParams(num_classes=8, topk=10))
        torch.set_num_threads(1)
        one = tal(*x)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    assert torch.equal(two[2], dense.target_scores)
    w = two[3] & (two[2].sum(-1) > 0)
    assert torch.equal(w, dense.fg_mask & (dense.target_scores.sum(-1) > 0))


def test_pow_in_whole_blocks_depends_on_each_input_alone():
    from yolotal.core.threads import pow_in_whole_blocks

    u = torch.rand(1000, generator=torch.Generator().manual_seed(1))
    full = pow_in_whole_blocks(u, 6.0)
    for start, stop in ((0, 1000), (3, 1000), (0, 997), (517, 530), (999, 1000)):
        assert torch.equal(pow_in_whole_blocks(u[start:stop], 6.0), full[start:stop])
    assert torch.equal(pow_in_whole_blocks(u.flip(0), 6.0), full.flip(0))
    # plain pow does depend on position for some values (the scalar tail rounds differently), which is why
    torch.testing.assert_close(full, u.pow(6.0), rtol=2e-7, atol=0)


def test_the_frame_filter_ignores_a_clone_folder_named_yolotal():
    """The spy names the package function that read the host; a test file in a checkout folder called
    ``yolotal`` (git's default) is not package code, a file of the package is."""
    assert in_package(os.path.join(PACKAGE_DIR, "assigners", "tal_sparse.py"))
    assert not in_package(os.path.join(os.sep, "home", "u", "yolotal", "tests", "test_assigner_runtime.py"))
    assert not in_package(__file__)


@pytest.mark.parametrize("profile", ["v8.0.35", "v8.4.0", "classic"])
def test_no_host_reads_under_the_other_profiles(profile):
    """The v8.0.x conflict rule (CIoU of every GT at contested anchors, winners appended) and the v8.4.0
    enlargement keep the assignment path free of host reads too."""
    x = make_batch(4, 320, 30)
    x[0][:, :, :] *= 0.001
    tal = TaskAlignedAssigner(topk=10, num_classes=8, alpha=0.5, profile=profile, keep_last=True)
    tal(*x)  # the anchor layout, recognised once
    with HostReadSpy() as spy:
        out = tal(x[0], x[1], x[2].clone(), *x[3:])
    assert spy.reads == [], spy.reads
    assert int(out[3].sum()) > 0 and int(tal.last.multi.sum()) > 0
