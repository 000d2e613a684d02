"""Pose losses: YOLOv8/YOLO11-pose (box, pose, kobj, cls, dfl) and YOLO26-pose (the same plus RLE).

Box, cls and dfl/l1 are the detection loss (yolotal.loss.detection_loss) on the assigner's targets. The keypoint
terms are taken over the P positive anchors (image-major, anchor order) and the K keypoints of the GT each is
assigned to, in grid units of the anchor's level:

* pose: ``mean over P·K of  f_p · (1 - exp(-e_pk)) · m_pk``, with ``e = d² / ((2σ)² · (area + 1e-9) · 2)``,
  d the distance of predicted and GT keypoint, area = w·h of the target box (grid units², no 0.53 factor here),
  m_pk = GT visibility != 0 and ``f_p = K / (visible keypoints of p + 1e-9)``;
* kobj: BCE-with-logits of the visibility logit against m_pk, mean over P·K (only with D = 3);
* rle (YOLO26): residual log-likelihood of the error ``(pred - gt) / σ̂`` of every visible keypoint
  (σ̂ = sigmoid of the ``kpts_sigma`` channels) under a RealNVP flow:
  ``sum over the N visible keypoints and x, y of w_k · (log σ̂ - log φ(error) + log 2σ̂ + |error|) / N``,
  clamped at 0 as a whole; errors holding NaN/inf are dropped, the rest clamped to [-100, 100].

Reported values follow the trainer's log: gain-weighted (box 7.5, pose 12, kobj 1, cls 0.5, dfl 1.5, rle 1),
not multiplied by the batch size, in the order box, pose, kobj, cls, dfl (l1 for reg_max 1)[, rle].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .core.boxes import xyxy_to_xywh
from .core.keypoints import OKS_LOSS_EPS
from .loss import LossResult

RLE_SIGMA_EPS = 1e-9  # added to σ̂ before dividing the error by it
RLE_ERROR_CLAMP = 100.0


@dataclass(frozen=True)
class PoseGains:
    box: float = 7.5
    pose: float = 12.0
    kobj: float = 1.0
    cls: float = 0.5
    dfl: float = 1.5
    rle: float = 1.0


# ------------------------------------------------------------------------------------------------ RealNVP flow
@dataclass(frozen=True)
class Flow:
    """The RealNVP of YOLO26's RLE loss: 6 affine couplings on 2-d points.

    masks (6, 2): the coupling masks ([0, 1], [1, 0], ... ); s[i] / t[i]: the scale / translation MLP of coupling
    i as (W1 (64, 2), b1, W2 (64, 64), b2, W3 (2, 64), b3), SiLU between layers, tanh after the scale MLP.
    """

    masks: torch.Tensor
    s: tuple
    t: tuple
    source: str = ""


FLOW_COUPLINGS = 6
FLOW_HIDDEN = 64


def flow_from_state_dict(sd: dict, prefix: str = "", source: str = "") -> Flow:
    """A Flow from a RealNVP state dict (keys ``s.0.0.weight`` ...; ``prefix`` e.g. ``model.23.flow_model.``)."""

    def mlp(kind: str, i: int):
        return tuple(sd[f"{prefix}{kind}.{i}.{j}.{w}"].float() for j in (0, 2, 4) for w in ("weight", "bias"))

    n = sd[f"{prefix}mask"].shape[0]
    return Flow(sd[f"{prefix}mask"].float(), tuple(mlp("s", i) for i in range(n)), tuple(mlp("t", i) for i in range(n)),
                source)


def init_flow(seed: int) -> Flow:
    """The flow a freshly built YOLO26 pose head holds right after ``torch.manual_seed(seed)``: every Linear
    drawn as torch draws it (Kaiming-uniform weight, uniform bias ±1/sqrt(fan_in)), in construction order
    (6 scale MLPs, then 6 translation MLPs), then each weight redrawn Xavier-uniform with gain 0.01."""
    gen = torch.Generator().manual_seed(seed)
    sizes = ((2, FLOW_HIDDEN), (FLOW_HIDDEN, FLOW_HIDDEN), (FLOW_HIDDEN, 2))
    layers = []
    for _ in range(2 * FLOW_COUPLINGS):
        mlp = []
        for fan_in, fan_out in sizes:
            w = torch.empty(fan_out, fan_in)
            torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(fan_in)
            b = torch.empty(fan_out).uniform_(-bound, bound, generator=gen)
            mlp += [w, b]
        layers.append(mlp)
    for mlp in layers:
        for j in (0, 2, 4):
            torch.nn.init.xavier_uniform_(mlp[j], gain=0.01, generator=gen)
    masks = torch.tensor([[0, 1], [1, 0]] * (FLOW_COUPLINGS // 2), dtype=torch.float32)
    return Flow(masks, tuple(tuple(x) for x in layers[:FLOW_COUPLINGS]),
                tuple(tuple(x) for x in layers[FLOW_COUPLINGS:]), f"untrained RealNVP (seed {seed})")


def _mlp(x: torch.Tensor, p: tuple, tanh: bool) -> torch.Tensor:
    w1, b1, w2, b2, w3, b3 = p
    y = F.linear(F.silu(F.linear(F.silu(F.linear(x, w1, b1)), w2, b2)), w3, b3)
    return torch.tanh(y) if tanh else y


def flow_log_prob(x: torch.Tensor, flow: Flow) -> torch.Tensor:
    """log density of Tensor[N, 2] points under the flow (standard normal base) -> Tensor[N]."""
    log_det, z = x.new_zeros(x.shape[0]), x
    for i in reversed(range(len(flow.masks))):
        m = flow.masks[i]
        z_ = m * z
        s = _mlp(z_, flow.s[i], True) * (1 - m)
        t = _mlp(z_, flow.t[i], False) * (1 - m)
        z = (1 - m) * (z - t) * torch.exp(-s) + z_
        log_det = log_det - s.sum(dim=1)
    return -0.5 * (z.float() ** 2).sum(-1) - math.log(2 * math.pi) + log_det


# ---------------------------------------------------------------------------------------------------- the loss
@dataclass(frozen=True)
class RLEStage:
    """RLE terms of the N visible keypoints of positives, in (positive, keypoint) order.

    pos (N,) i64 index into the positives; kpt (N,) keypoint index; sigma (N, 2) σ̂ = sigmoid(raw);
    error (N, 2) (pred - gt) / (σ̂ + 1e-9), clamped to ±100; valid (N,) no NaN/inf in the error (the others
    are dropped); log_phi (N,) flow log density (0 where not valid); weight (N,) per-keypoint weight;
    term (N,) the keypoint's share of the total (summed over x, y, already / N), 0 where not valid.
    """

    pos: torch.Tensor
    kpt: torch.Tensor
    sigma: torch.Tensor
    error: torch.Tensor
    valid: torch.Tensor
    log_phi: torch.Tensor
    weight: torch.Tensor
    term: torch.Tensor


@dataclass(frozen=True)
class PoseLossResult:
    """Pose loss terms and their per-positive, per-anchor and per-GT parts. P positives, K keypoints.

    det               the detection terms (box, cls, dfl/l1) of yolotal.loss.detection_loss
    pos_b, pos_a, pos_gt (P,) i64   image, anchor and assigned GT of each positive
    kpt_visible       (P, K)   GT keypoint visibility != 0 (the loss mask)
    kpt_area          (P,)     w·h of the target box in grid units² (the OKS scale of the loss)
    kpt_dist          (P, K)   distance of predicted and GT keypoint, grid units
    kpt_e             (P, K)   d² / ((2σ)² · (area + 1e-9) · 2)
    kpt_factor        (P,)     K / (visible keypoints + 1e-9)
    pose_per_pos      (P,)     the positive's share of the raw pose term (sums to raw_pose)
    kobj_per_pos      (P,)     its share of the raw kobj term (zeros without a visibility channel)
    rle               RLEStage or None (no flow or no sigma channels)
    rle_per_pos       (P,)     its share of the raw RLE term before the clamp at 0
    *_per_anchor      (b, A)   the same per anchor (0 for background)
    *_per_gt          (b, M)   summed over each GT's positives (box and dfl too); n_pos_per_gt (b, M) i64
    raw_pose/kobj/rle ()       totals before the gains (rle clamped at 0)
    loss_*            ()       gain-weighted totals; names / items: the trainer's log, in its order
    """

    det: LossResult
    pos_b: torch.Tensor
    pos_a: torch.Tensor
    pos_gt: torch.Tensor
    kpt_visible: torch.Tensor
    kpt_area: torch.Tensor
    kpt_dist: torch.Tensor
    kpt_e: torch.Tensor
    kpt_factor: torch.Tensor
    pose_per_pos: torch.Tensor
    kobj_per_pos: torch.Tensor
    rle: RLEStage | None
    rle_per_pos: torch.Tensor
    pose_per_anchor: torch.Tensor
    kobj_per_anchor: torch.Tensor
    rle_per_anchor: torch.Tensor
    pose_per_gt: torch.Tensor
    kobj_per_gt: torch.Tensor
    rle_per_gt: torch.Tensor
    box_per_gt: torch.Tensor
    dfl_per_gt: torch.Tensor
    n_pos_per_gt: torch.Tensor
    raw_pose: torch.Tensor
    raw_kobj: torch.Tensor
    raw_rle: torch.Tensor
    loss_box: torch.Tensor
    loss_pose: torch.Tensor
    loss_kobj: torch.Tensor
    loss_cls: torch.Tensor
    loss_dfl: torch.Tensor
    loss_rle: torch.Tensor
    names: tuple[str, ...]

    @property
    def items(self) -> torch.Tensor:
        """The logged loss items in the order of ``names``."""
        vals = [self.loss_box, self.loss_pose, self.loss_kobj, self.loss_cls, self.loss_dfl]
        if len(self.names) == 6:
            vals.append(self.loss_rle)
        return torch.stack([v.reshape(()) for v in vals])


def rle_terms(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, weights: torch.Tensor,
              flow: Flow) -> tuple[torch.Tensor, RLEStage]:
    """RLE of positives: pred (P, K, C) with x, y first and the 2 raw σ channels last, gt (P, K, 3) grid units,
    visible (P, K) bool, weights (K,). Returns (raw total before the clamp, RLEStage)."""
    pi, ki = visible.nonzero(as_tuple=True)  # (N,) row-major: the order of pred[visible]
    pv = pred[pi, ki]  # (N, C)
    sigma = pv[:, -2:].float().sigmoid().clamp_min(torch.finfo(pv.dtype).tiny)
    err = (pv[:, 0:2] - gt[pi, ki, 0:2]) / (sigma + RLE_SIGMA_EPS)
    valid = ~(torch.isnan(err) | torch.isinf(err)).any(-1)
    w = weights[ki]
    e = err[valid].clamp(-RLE_ERROR_CLAMP, RLE_ERROR_CLAMP)
    sg = sigma[valid]
    log_phi = flow_log_prob(e, flow) if e.shape[0] else e.new_zeros(0)
    per = torch.log(sg) - log_phi.unsqueeze(1)
    per = per + (torch.log(sg * 2) + torch.abs(e))
    per = per * w[valid].unsqueeze(1)
    per = per / max(len(per), 1)
    total = per.sum()
    term = torch.zeros(len(pi))
    term[valid] = per.sum(1)
    lp = torch.zeros(len(pi))
    lp[valid] = log_phi
    err_out = err.clone()
    err_out[valid] = e
    return total, RLEStage(pi, ki, sigma, err_out, valid, lp, w, term)


def pose_loss(
    det: LossResult,
    kpts_grid: torch.Tensor,
    fg_mask: torch.Tensor,
    target_gt_idx: torch.Tensor,
    gt_kpts: torch.Tensor,
    target_bboxes: torch.Tensor,
    stride_tensor: torch.Tensor,
    sigmas: torch.Tensor,
    kpt_dim: int,
    gains: PoseGains = PoseGains(),
    flow: Flow | None = None,
    rle_weights: torch.Tensor | None = None,
    reg_max: int = 16,
) -> PoseLossResult:
    """The pose loss of one batch.

    Args:
        det: detection_loss of the same batch and targets (box, cls, dfl/l1). Its gains are not re-applied.
        kpts_grid: (b, A, K, C) decoded keypoints (core.keypoints.decode_keypoints), grid units; C = kpt_dim, or
            kpt_dim + 2 with YOLO26's raw σ channels appended (then, with a flow, the RLE term is computed).
        fg_mask (b, A) bool, target_gt_idx (b, A) i64, target_bboxes (b, A, 4) px xyxy: the assigner's targets.
        gt_kpts: (b, M, K, 3) padded GT keypoints, px x, y, visibility.
        stride_tensor: (A, 1). sigmas: (K,). kpt_dim: D of kpt_shape (3 adds the kobj term).
        flow, rle_weights (K,): YOLO26's RealNVP and per-keypoint weights (core.keypoints.rle_weights).
        reg_max: names the last detection term dfl (> 1) or l1.
    """
    b, a, k, c = kpts_grid.shape
    m = gt_kpts.shape[1]
    with_rle = flow is not None and c == kpt_dim + 2
    names = ("box_loss", "pose_loss", "kobj_loss", "cls_loss", "dfl_loss" if reg_max > 1 else "l1_loss")
    if flow is not None:  # a YOLO26 head logs rle_loss (0 without sigma channels)
        names += ("rle_loss",)

    pb, pa = fg_mask.nonzero(as_tuple=True)  # (P,) image-major, as the reference indexes
    pg = target_gt_idx[pb, pa]
    n = len(pb)
    zero = torch.zeros(())
    stride_p = stride_tensor[pa]  # (P, 1)
    tb = target_bboxes[pb, pa] / stride_p  # (P, 4) grid units
    area = xyxy_to_xywh(tb)[:, 2:].prod(1, keepdim=True)  # (P, 1)
    gt = gt_kpts[pb, pg].clone()  # (P, K, 3)
    gt[..., :2] = gt[..., :2] / stride_p[:, :, None]
    pred = kpts_grid[pb, pa]  # (P, K, C)
    vis = gt[..., 2] != 0  # (P, K)
    d = (pred[..., 0] - gt[..., 0]).pow(2) + (pred[..., 1] - gt[..., 1]).pow(2)
    factor = k / (torch.sum(vis, dim=1) + OKS_LOSS_EPS)  # (P,)
    e = d / ((2 * sigmas).pow(2) * (area + OKS_LOSS_EPS) * 2)  # (P, K)
    pose_elems = factor.view(-1, 1) * ((1 - torch.exp(-e)) * vis)  # (P, K)
    raw_pose = pose_elems.mean() if n else zero
    denom = max(n * k, 1)
    pose_pp = pose_elems.sum(1) / denom
    if kpt_dim == 3 and n:
        kobj_elems = F.binary_cross_entropy_with_logits(pred[..., 2], vis.float(), reduction="none")
        raw_kobj = kobj_elems.mean()
        kobj_pp = kobj_elems.sum(1) / denom
    else:
        raw_kobj, kobj_pp = zero, torch.zeros(n)
    rle, rle_pp, raw_rle = None, torch.zeros(n), zero
    if with_rle and n and bool(vis.any()):
        w = rle_weights if rle_weights is not None else torch.ones(k)
        total, rle = rle_terms(pred, gt, vis, w, flow)
        raw_rle = total.clamp(min=0)
        rle_pp = torch.zeros(n).index_add_(0, rle.pos, rle.term)

    def per_anchor(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(b, a)
        out[pb, pa] = v
        return out

    def per_gt(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(b * m)
        if n:
            out.index_add_(0, pb * m + pg, v)
        return out.view(b, m)

    return PoseLossResult(
        det=det,
        pos_b=pb,
        pos_a=pa,
        pos_gt=pg,
        kpt_visible=vis,
        kpt_area=area[:, 0],
        kpt_dist=d.sqrt(),
        kpt_e=e,
        kpt_factor=factor,
        pose_per_pos=pose_pp,
        kobj_per_pos=kobj_pp,
        rle=rle,
        rle_per_pos=rle_pp,
        pose_per_anchor=per_anchor(pose_pp),
        kobj_per_anchor=per_anchor(kobj_pp),
        rle_per_anchor=per_anchor(rle_pp),
        pose_per_gt=per_gt(pose_pp),
        kobj_per_gt=per_gt(kobj_pp),
        rle_per_gt=per_gt(rle_pp),
        box_per_gt=per_gt(det.box_per_anchor[pb, pa]),
        dfl_per_gt=per_gt(det.dfl_per_anchor[pb, pa]),
        n_pos_per_gt=per_gt(torch.ones(n)).round().long(),
        raw_pose=raw_pose,
        raw_kobj=raw_kobj,
        raw_rle=raw_rle,
        loss_box=det.loss_box,
        loss_pose=raw_pose * gains.pose,
        loss_kobj=raw_kobj * gains.kobj,
        loss_cls=det.loss_cls,
        loss_dfl=det.loss_dfl,
        loss_rle=raw_rle * gains.rle,
        names=names,
    )


# ------------------------------------------------------------------------------------------- end-to-end YOLO26


def e2e_branch_weights(epoch: int, epochs: int) -> tuple[float, float]:
    """(one2many, one2one) weights of an end-to-end YOLO26 loss during 0-based ``epoch`` of ``epochs``: the
    one2many weight falls linearly from 0.8 (epoch 0) to 0.1 (last epoch); one2one gets the rest."""
    from .e2e import branch_weights

    return branch_weights(epoch, epochs)


@dataclass(frozen=True)
class E2EPoseLoss:
    """Both branches of an end-to-end YOLO26-pose loss (one2many: topk 10; one2one: topk 7, topk2 1).

    weighted (6,)  o2m · one2many.items + o2o · one2one.items: what is back-propagated, divided by the batch size
    logged         the trainer logs the one2one branch's items only
    """

    one2many: PoseLossResult
    one2one: PoseLossResult
    o2m: float
    o2o: float

    @property
    def weighted(self) -> torch.Tensor:
        return self.one2many.items * self.o2m + self.one2one.items * self.o2o

    @property
    def logged(self) -> torch.Tensor:
        return self.one2one.items
