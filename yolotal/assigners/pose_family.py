"""Family adapters of the pose task.

* ``pose``       YOLOv8-pose / YOLO11-pose (``Pose`` head): the detection TAL on boxes and scores, keypoints decoded
                 ``2·raw + anchor - 0.5``, v8PoseLoss (box, pose, kobj, cls, dfl/l1);
* ``pose26``     YOLO26-pose (``Pose26`` head), one-to-many branch: the pose TAL (level gate + OKS overlap),
                 keypoints decoded ``raw + anchor``, PoseLoss26 (the same terms plus RLE);
* ``pose26-o2o`` its one-to-one branch (topk 7, topk2 1, as YOLO26 trains it).

The computation is :mod:`yolotal.pose`, :mod:`yolotal.assigners.pose_tal` and :mod:`yolotal.loss_pose`; this module
records their stages into the trace. kpt_shape comes from the model, else the dataset YAML, else a ``--save-heads``
file (``Config.keypoints``); the dataset YAML's ``kpt_oks_sigmas`` and ``flip_idx`` are kept there too.

Stages (besides the generic anchors, decode, gt): ``keypoints`` (raw, decoded and px keypoints of every anchor, the
padded GT keypoints, the OKS sigmas); for pose26 ``gate`` and ``oks``; then the TAL stages ``candidates``,
``metrics``, ``topk``, ``conflicts``, ``targets``; ``loss`` (detection terms + pose, kobj[, rle], per positive,
anchor and GT).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .registry import Family, register

DENSE_CELLS_BYTES = 48  # peak bytes per (image, GT, anchor) cell of the pose assignment's dense stages
POSE_GAINS = {"pose": 12.0, "kobj": 1.0, "rle": 1.0}  # ultralytics 8.4 defaults (hyp.pose, hyp.kobj, hyp.rle)
FLOW_PREFIX = "flow."  # --save-heads keeps a model's RealNVP weights under these keys


def setup_keypoints(fam, cfg, labels, model, saved):
    """cfg with ``keypoints`` settled: kpt_shape from the model, else the dataset YAML, else a --save-heads file;
    the YAML's kpt_oks_sigmas / flip_idx. InputError when there is none, or when sources disagree."""
    import numpy as np

    from ..config import KeypointConfig
    from ..core.keypoints import select_sigmas
    from ..errors import InputError

    shape, source, sigmas, flip = None, "", None, None
    if model is not None:
        if model.kpt_shape is None:
            raise InputError("this model has no keypoint head (kpt_shape)", model.path)
        gen = "26" if model.head_class == "Pose26" else "v8"
        if gen != fam.generation:
            want = "pose26 (or pose26-o2o)" if gen == "26" else "pose"
            raise InputError(f"this is a {'YOLO26' if gen == '26' else 'YOLOv8/YOLO11'}-pose model ({model.head_class} "
                             f"head): its assigner is {want}, not {fam.name} (leave --assigner out)", model.path)
        shape, source = tuple(model.kpt_shape), f"the model's {model.head_class} head"
        own = getattr(model.module, "kpt_oks_sigmas", None)  # set by the trainer from its dataset's YAML
        if own is not None:
            sigmas = [float(x) for x in np.asarray(own, np.float64).ravel().tolist()]
    ds_src = None
    if labels is not None:
        from ..inputs.dataset import is_dataset_yaml, read_dataset

        if is_dataset_yaml(Path(labels)):
            ds = read_dataset(Path(labels))
            ds_src = str(labels)
            if ds.kpt_shape is not None:
                if shape is None:
                    shape, source = tuple(ds.kpt_shape), f"the dataset YAML {labels}"
                elif tuple(ds.kpt_shape) != shape:
                    raise InputError(f"kpt_shape {list(ds.kpt_shape)} of the dataset YAML disagrees with the model's "
                                     f"{list(shape)}", str(labels))
            sigmas = ds.kpt_oks_sigmas if ds.kpt_oks_sigmas is not None else sigmas
            flip = ds.flip_idx
    if shape is None and saved and "kpt_shape" in saved:
        shape, source = tuple(int(x) for x in np.asarray(saved["kpt_shape"]).tolist()), "the saved heads file"
        if "kpt_oks_sigmas" in saved and sigmas is None:
            sigmas = [float(x) for x in np.asarray(saved["kpt_oks_sigmas"]).tolist()] or None
    if shape is None:
        raise InputError("a pose run needs kpt_shape (dataset YAML)", str(labels) if labels is not None else None)
    if len(shape) != 2 or shape[0] < 1 or shape[1] not in (2, 3):
        raise InputError(f"kpt_shape must be [K >= 1, 2 or 3], got {list(shape)}", ds_src or source)
    if sigmas is not None:
        try:
            select_sigmas(shape, sigmas)
        except ValueError as e:
            raise InputError(str(e), ds_src) from None
    if flip is not None and (len(flip) != shape[0] or sorted(int(x) for x in flip) != list(range(shape[0]))):
        raise InputError(f"flip_idx must be a permutation of 0..{shape[0] - 1}, got {flip}", ds_src)
    kc = KeypointConfig((int(shape[0]), int(shape[1])), tuple(sigmas) if sigmas is not None else None,
                        tuple(int(x) for x in flip) if flip is not None else None, source)
    return replace(cfg, keypoints=kc)


def _with_flow(heads, flow):
    from ..inputs.heads import Heads

    return Heads(heads.boxes, heads.scores, heads.grids, heads.source, {**heads.extra, "flow": flow})


def read_saved_flow(path: Path):
    """A model's RealNVP flow saved by --save-heads (``flow.*`` arrays), or None."""
    import numpy as np
    import torch

    from ..loss_pose import flow_from_state_dict

    if path.suffix != ".npz":
        return None
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
        sd = {k[len(FLOW_PREFIX):]: torch.from_numpy(z[k]) for k in z.files if k.startswith(FLOW_PREFIX)}
        src = str(z["flow_source"]) if "flow_source" in z.files else f"the RealNVP flow saved in {path}"
    return flow_from_state_dict(sd, source=src) if sd else None


def flow_arrays(flow) -> dict:
    """A Flow as ``flow.*`` arrays (the keys of a RealNVP state dict), for --save-heads."""
    out = {f"{FLOW_PREFIX}mask": flow.masks.numpy()}
    for kind, mlps in (("s", flow.s), ("t", flow.t)):
        for i, p in enumerate(mlps):
            for (j, w), x in zip(((0, "weight"), (0, "bias"), (2, "weight"), (2, "bias"), (4, "weight"), (4, "bias")),
                                 p):
                out[f"{FLOW_PREFIX}{kind}.{i}.{j}.{w}"] = x.numpy()
    return out


@register
class PoseV8(Family):
    """YOLOv8/YOLO11-pose: the detection TAL, then v8PoseLoss."""

    name = "pose"
    task = "pose"
    profiles = ("ultralytics", "classic")
    default_profile = "ultralytics"
    default_topk = 10
    task_aligned = True
    loss_name = "v8PoseLoss"
    heads_title = "YOLOv8/YOLO11-pose"
    head_classes = ("Pose",)
    generation = "v8"

    @property
    def sigma_channels(self) -> bool:
        return self.generation == "26"

    # ---------------------------------------------------------------- inputs
    def setup(self, cfg, labels, model, saved):
        return setup_keypoints(self, cfg, labels, model, saved)

    def load_heads(self, path, cfg):
        from ..errors import InputError
        from ..inputs.pose_heads import load_pose_heads

        shape = cfg.keypoints.shape
        try:
            h = load_pose_heads(path, cfg.reg_max, cfg.nc, shape, self.sigma_channels)
        except InputError:
            if not self.sigma_channels:
                raise
            h = load_pose_heads(path, cfg.reg_max, cfg.nc, shape, False)  # YOLO26 heads without sigma channels
        flow = read_saved_flow(Path(path)) if self.sigma_channels else None
        return _with_flow(h, flow) if flow is not None else h

    def make_heads(self, cfg, labels, heads, batch):
        import numpy as np
        import torch

        from ..core.boxes import xywh_to_xyxy
        from ..errors import InputError
        from ..inputs.pose_heads import synthetic_pose_randn, synthetic_pose_trained

        if heads is not None:
            if "kpts" not in heads.extra:
                raise InputError(f"these heads have no keypoint outputs ('kpts'): the {self.name} assigner needs pose "
                                 "heads", heads.source)
            return heads
        shape = cfg.keypoints.shape
        batch = batch or cfg.heads.batch or max(labels.n_images, 1)
        if cfg.heads.kind == "randn":
            return synthetic_pose_randn(batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.heads.seed, shape,
                                        self.sigma_channels)
        h, w = cfg.imgsz
        gt = xywh_to_xyxy(torch.from_numpy(labels.xywhn) * torch.tensor([w, h, w, h])).numpy()
        kp = labels.keypoints if labels.keypoints is not None else np.zeros((len(labels), shape[0], 3), np.float32)
        kp = kp.astype(np.float32) * np.array([w, h, 1], np.float32)
        return synthetic_pose_trained(batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.strides, cfg.heads.seed, shape,
                                      self.sigma_channels, self.generation, labels.batch_idx, labels.cls, gt, kp)

    def model_heads(self, lm, images, source, branch):
        """The model's training-dict outputs (boxes, scores, kpts; YOLO26: kpts_sigma) and its RealNVP flow.

        YOLO26's head writes ``kpts_sigma`` only in training mode: for the forward pass the head module alone is
        flagged as training (its layers, BatchNorm included, stay in eval mode, so no output changes)."""
        from ..errors import InputError
        from ..inputs.heads import heads_from_object
        from ..inputs.model import raw_outputs
        from ..loss_pose import flow_from_state_dict

        head = lm.module.model[-1]
        was = head.training
        if self.sigma_channels:
            head.training = True
        try:
            raw = raw_outputs(lm, images, branch)
        finally:
            head.training = was
        heads = heads_from_object(raw, source, lm.reg_max, lm.nc)
        k, d = lm.kpt_shape
        if "kpts" not in heads.extra or heads.extra["kpts"].shape[1] != k * d:
            raise InputError(f"the model's head did not return {k}×{d} keypoint channels ('kpts')", lm.path)
        flow = getattr(head, "flow_model", None) if self.sigma_channels else None
        if flow is not None:
            sd = {n: t.detach().float().cpu() for n, t in flow.state_dict().items()}
            return _with_flow(heads, flow_from_state_dict(sd, source=f"the RealNVP flow of {lm.path}"))
        return heads

    # ---------------------------------------------------------------- stages
    def assign(self, trace, cfg, inputs) -> None:
        import torch

        from ..core.keypoints import select_sigmas
        from ..errors import InputError
        from ..pose import pad_keypoints, run_pose
        from .atss_family import check_dense_budget
        from .tal_family import record_selection, tal_params

        shape = cfg.keypoints.shape
        k, d = shape
        heads, lab = inputs.heads, inputs.labels
        kpts = heads.extra.get("kpts")
        if kpts is None or kpts.shape[1] != k * d:
            got = "none" if kpts is None else kpts.shape[1]
            raise InputError(f"the heads have {got} keypoint channels, kpt_shape [{k}, {d}] needs {k * d}",
                             heads.source)
        sig = heads.extra.get("kpts_sigma") if self.sigma_channels else None
        if sig is not None and sig.shape[1] != 2 * k:
            raise InputError(f"the heads have {sig.shape[1]} keypoint-sigma channels, expected 2K = {2 * k}",
                             heads.source)
        kp = lab.keypoints
        if len(lab) and (kp is None or kp.shape[1:] != (k, 3) or len(kp) != len(lab)):
            f, ln = lab.origin[0]
            raise InputError(f"labels without {k} keypoints per row (kpt_shape [{k}, {d}])", f, ln)
        b, m, n_anchors = trace.batch, trace["gt_bboxes"].shape[1], trace["anchor_points"].shape[0]
        check_dense_budget(self.name, "(b, M, A)", b * m * n_anchors, DENSE_CELLS_BYTES, cfg)
        gt_kpts = pad_keypoints(kp if kp is not None else torch.zeros(0, k, 3).numpy(), lab.batch_idx, b, cfg.imgsz)
        sigmas, why = select_sigmas(shape, cfg.keypoints.oks_sigmas)
        trace.notes.append(f"kpt_shape {list(shape)} from {cfg.keypoints.source}; OKS sigmas: {why}"
                           + (f"; flip_idx {list(cfg.keypoints.flip_idx)}" if cfg.keypoints.flip_idx else ""))
        params = tal_params(cfg, inputs.nc)
        r = run_pose(self.generation, shape, kpts, sig, trace["pred_distri"], trace["pred_logits"],
                     trace["pred_bboxes_grid"], trace["anchor_points"], trace["stride_tensor"], trace["gt_labels"],
                     trace["gt_bboxes"], trace["mask_gt"], gt_kpts, sigmas, params, cfg.imgsz, cfg.reg_max,
                     with_loss=False)
        ktens = dict(kpts_raw=r.kpts_raw, kpts_grid=r.kpts_grid, kpts_px=r.kpts_px, gt_kpts=r.gt_kpts,
                     kpt_sigmas=sigmas)
        if r.sigma_raw is not None:
            ktens["kpts_sigma_raw"] = r.sigma_raw
        decode = "raw + anchor" if self.generation == "26" else "2·raw + anchor − 0.5"
        trace.add("keypoints", f"Keypoints: decode {decode} (grid units), px, GT keypoints", **ktens)
        if self.generation == "26":
            g, o = r.assignment.gate, r.assignment.oks
            trace.add("gate", "Level gate: lo·stride <= sqrt(area) <= hi·stride, fallback to the ungated candidates",
                      level_strides=g.level_strides, anchor_level=g.anchor_level, gt_size=g.size,
                      level_lower=g.lower, level_upper=g.upper, too_small=g.too_small, too_large=g.too_large,
                      level_open=g.level_open, mask_in_box=g.mask_in_box, mask_gated=g.mask_gated,
                      gate_fallback=g.fallback, no_candidates=g.no_candidates)
            trace.add("oks", "Overlap u: OKS of the predicted keypoints (CIoU for GTs without visible keypoints)",
                      oks_area=o.oks_area, n_visible=o.n_visible, uses_oks=o.uses_oks, cand_ciou=o.ciou,
                      cand_oks=o.oks, oks_pair_b=o.pair_b, oks_pair_m=o.pair_m, oks_pair_a=o.pair_a,
                      pair_kpt_sim=o.pair_kpt_sim, pair_kpt_dist=o.pair_kpt_dist)
        t = r.tal
        trace.add("candidates", "Candidates: anchor centres inside each GT" + (" (after the level gate)"
                  if self.generation == "26" else ""), cand_bboxes=t.cand_bboxes, mask_in_gts=t.mask_in_gts)
        trace.add("metrics", "Alignment metric t = s^alpha * u^beta" + (" (u = OKS)" if self.generation == "26" else ""),
                  bbox_scores=t.bbox_scores, overlaps=t.overlaps, align_metric=t.align_metric)
        record_selection(trace, t)

    def loss(self, trace, cfg, inputs) -> None:
        from ..core.keypoints import rle_weights
        from ..loss import detection_loss
        from ..loss_pose import PoseGains, init_flow, pose_loss

        lc = cfg.loss
        gains = PoseGains(box=lc.box, pose=POSE_GAINS["pose"], kobj=POSE_GAINS["kobj"], cls=lc.cls, dfl=lc.dfl,
                          rle=POSE_GAINS["rle"])
        det = detection_loss(
            trace["pred_distri"], trace["pred_logits"], trace["pred_bboxes_grid"], trace["anchor_points"],
            trace["stride_tensor"], trace["fg_mask"], trace["target_bboxes"], trace["target_scores"], cfg.imgsz,
            cfg.reg_max, (lc.box, lc.cls, lc.dfl), cfg.loss_profile,
        )
        flow = None
        if self.generation == "26":
            flow = inputs.heads.extra.get("flow")
            if flow is None:
                flow = init_flow(cfg.heads.seed)
            trace.notes.append(f"RLE flow: {flow.source}" + ("" if "kpts_sigma_raw" in trace else
                                                             " (the heads have no sigma channels: rle_loss is 0)"))
        kgrid = trace["kpts_grid"]  # (b, A, K, D [+ 2 raw sigma channels of YOLO26])
        lo = pose_loss(det, kgrid, trace["fg_mask"], trace["target_gt_idx"], trace["gt_kpts"],
                       trace["target_bboxes"], trace["stride_tensor"], trace["kpt_sigmas"], cfg.keypoints.shape[1],
                       gains, flow, rle_weights(cfg.keypoints.shape), cfg.reg_max)
        extra = {}
        if lo.rle is not None:
            extra = dict(rle_pos=lo.rle.pos, rle_kpt=lo.rle.kpt, rle_sigma=lo.rle.sigma, rle_error=lo.rle.error,
                         rle_valid=lo.rle.valid, rle_log_phi=lo.rle.log_phi, rle_weight=lo.rle.weight,
                         rle_term=lo.rle.term)
        trace.add(
            "loss", "Loss (" + ("PoseLoss26" if self.generation == "26" else "v8PoseLoss") + ")",
            loss_box=lo.loss_box, loss_pose=lo.loss_pose, loss_kobj=lo.loss_kobj, loss_cls=lo.loss_cls,
            loss_dfl=lo.loss_dfl, **({"loss_rle": lo.loss_rle} if len(lo.names) == 6 else {}),
            loss_items=lo.items, target_scores_sum=det.target_scores_sum,
            raw_box=det.raw_box, raw_cls=det.raw_cls, raw_dfl=det.raw_dfl, raw_pose=lo.raw_pose, raw_kobj=lo.raw_kobj,
            raw_rle=lo.raw_rle,
            cls_per_anchor=det.cls_per_anchor, box_per_anchor=det.box_per_anchor, dfl_per_anchor=det.dfl_per_anchor,
            ciou=det.ciou, dfl_target_ltrb=det.dfl_target_ltrb, dfl_clamped=det.dfl_clamped,
            pose_per_anchor=lo.pose_per_anchor, kobj_per_anchor=lo.kobj_per_anchor, rle_per_anchor=lo.rle_per_anchor,
            pose_per_gt=lo.pose_per_gt, kobj_per_gt=lo.kobj_per_gt, rle_per_gt=lo.rle_per_gt,
            box_per_gt=lo.box_per_gt, dfl_per_gt=lo.dfl_per_gt, n_pos_per_gt=lo.n_pos_per_gt,
            kpt_pos_b=lo.pos_b, kpt_pos_a=lo.pos_a, kpt_pos_gt=lo.pos_gt, kpt_visible=lo.kpt_visible,
            kpt_area=lo.kpt_area, kpt_dist=lo.kpt_dist, kpt_e=lo.kpt_e, kpt_factor=lo.kpt_factor,
            pose_per_pos=lo.pose_per_pos, kobj_per_pos=lo.kobj_per_pos, rle_per_pos=lo.rle_per_pos, **extra,
        )

    def end_to_end(self, trace, gathered, epoch) -> None:
        """YOLO26-pose's E2ELoss: the other branch's PoseLoss26 on the same images (one forward pass per branch),
        the branch weights at ``epoch`` (o2m from 0.8 at epoch 0 to 0.1 at the last; o2o the rest), the weighted
        items (what is back-propagated, / batch) and the logged ones (the one2one branch's). Stage ``e2e``."""
        if self.generation != "26" or "loss_items" not in trace:
            return super().end_to_end(trace, gathered, epoch)
        other = "pose26" if self.model_branch == "one2one" else "pose26-o2o"
        self.both_branches(trace, gathered, epoch, other, "YOLO26-pose")

    def loss_names(self, trace) -> tuple[str, ...]:
        """The trainer's log names of ``loss_items``."""
        names = ("box_loss", "pose_loss", "kobj_loss", "cls_loss", "dfl_loss" if trace.config.reg_max > 1 else "l1_loss")
        return names + (("rle_loss",) if self.generation == "26" else ())

    def candidates(self, trace):
        import torch

        return torch.nonzero(trace["mask_in_gts"] & trace["mask_gt"].bool())

    def params(self, cfg) -> dict:
        from .pose_tal import LEVEL_RANGE

        a, kc = cfg.assigner, cfg.keypoints
        out = {"topk": a.topk, "topk2": a.topk2, "alpha": a.alpha, "beta": a.beta, "eps": a.eps,
               "kpt_shape": list(kc.shape) if kc.shape else None, "generation": self.generation}
        if a.profile == "ultralytics":
            out["stride_val"] = cfg.stride_val
        if kc.oks_sigmas is not None:
            out["kpt_oks_sigmas"] = list(kc.oks_sigmas)
        if kc.flip_idx is not None:
            out["flip_idx"] = list(kc.flip_idx)
        if self.generation == "26":
            out["level_range"] = list(LEVEL_RANGE)
            out["oks_area_factor"] = 0.53
        return out

    def loss_meta(self, cfg) -> dict:
        lo = cfg.loss
        gains = {"box": lo.box, "pose": POSE_GAINS["pose"], "kobj": POSE_GAINS["kobj"], "cls": lo.cls, "dfl": lo.dfl}
        if self.generation == "26":
            gains["rle"] = POSE_GAINS["rle"]
        return {"name": self.loss_name, "gains": gains}

    # ---------------------------------------------------------------- render hooks
    def render_assign(self, trace, con, images, full) -> None:
        from ..render.pose import render_pose_assign

        render_pose_assign(trace, con, images, full)

    def render_loss(self, trace, con, images) -> None:
        from ..render.pose import render_pose_loss

        render_pose_loss(trace, con, images)

    def render_walk(self, trace, con, full) -> None:
        from ..render.pose import walk_pose

        walk_pose(trace, con, full)

    def legend(self, cfg) -> str:
        return cfg.assigner.profile


@register
class Pose26(PoseV8):
    """YOLO26-pose, one-to-many branch: the pose TAL (level gate, OKS), then PoseLoss26 (with RLE)."""

    name = "pose26"
    profiles = ("ultralytics",)
    loss_name = "PoseLoss26"
    heads_title = "YOLO26-pose"
    head_classes = ("Pose26",)
    generation = "26"


@register
class Pose26OneToOne(Pose26):
    """YOLO26-pose, one-to-one branch: topk 7, topk2 1 (E2ELoss's one2one PoseLoss26)."""

    name = "pose26-o2o"
    default_topk = 7
    default_topk2 = 1
    model_branch = "one2one"
