"""run(config, labels, heads) -> Trace: every stage of anchors -> decode -> assign -> loss, by name.

Renderers (terminal, export) only read the trace. Stage order and tensor names:

anchors     anchor_points (A,2) grid units, stride_tensor (A,1)
decode      pred_distri (b,A,4*reg_max) logits, pred_logits (b,A,nc), pred_ltrb (b,A,4) grid units,
            pred_bboxes_grid (b,A,4) grid xyxy, pred_bboxes (b,A,4) px xyxy, pred_scores (b,A,nc) sigmoid
gt          gt_labels (b,M,1), gt_bboxes (b,M,4) px xyxy, mask_gt (b,M,1)
candidates  cand_bboxes (b,M,4) px, mask_in_gts (b,M,A)
metrics     bbox_scores, overlaps, align_metric (b,M,A)
topk        topk_idxs (b,M,topk), mask_topk, mask_pos_topk (b,M,A)
conflicts   mask_multi (b,A), mask_pos (b,M,A)
  -- or, when the dense (b,M,A) tensors would exceed config.dense_budget_mb (trace.summarised says so):
pairs       pair_b, pair_m, pair_a (P,) candidate pairs; pair_s, pair_u, pair_t (P,); pair_topk, pair_pos (P,);
            mask_multi (b,A)
targets     fg_mask, target_gt_idx, target_labels (b,A), target_bboxes (b,A,4), target_scores (b,A,nc),
            pos_align_metrics, pos_overlaps (b,M), norm_align_metric (b,A)
loss        loss_box, loss_cls, loss_dfl (gain-weighted), target_scores_sum, cls/box/dfl_per_anchor (b,A) ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .assigners import registry
from .config import Config
from .core.anchors import Level, levels_for, make_anchors
from .core.boxes import xywh_to_xyxy
from .core.decode import dfl_distances, ltrb_to_xyxy
from .errors import InputError
from .inputs.heads import Heads, check_grids, synthetic_randn, synthetic_trained
from .inputs.labels import Labels, check_classes, with_batch
from .assigners.tal_family import DENSE_BYTES_PER_CELL  # noqa: F401  (re-exported: tests size inputs with it)


@dataclass
class Stage:
    name: str
    title: str
    tensors: dict[str, torch.Tensor]


@dataclass
class Trace:
    """The recorded pipeline. ``trace["overlaps"]`` finds a tensor in any stage."""

    config: Config
    levels: list[Level]
    labels: Labels
    heads_source: str
    gt_origin: list[list[tuple[str, int]]]  # per image, per real GT: (file, line)
    stages: dict[str, Stage] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    summarised: str = ""  # why the dense (b, M, A) stages were not built, when they were not
    pictures: list = field(default_factory=list)  # per image: (path, Letterbox) of its picture, or None
    notes: list[str] = field(default_factory=list)  # how the inputs were read (geometry, model): shown as info
    assigner_heads: str = ""  # simota / yolov5: the heads their assignment and loss read (heads_source: the v8 decode's)

    def add(self, name: str, title: str, **tensors: torch.Tensor) -> None:
        self.stages[name] = Stage(name, title, tensors)

    def __getitem__(self, key: str) -> torch.Tensor:
        for st in self.stages.values():
            if key in st.tensors:
                return st.tensors[key]
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return any(key in st.tensors for st in self.stages.values())

    def tensors(self) -> dict[str, torch.Tensor]:
        """All tensors of all stages, in stage order."""
        out: dict[str, torch.Tensor] = {}
        for st in self.stages.values():
            out.update(st.tensors)
        return out

    @property
    def batch(self) -> int:
        return int(self["pred_scores"].shape[0])

    def n_gts(self, image: int) -> int:
        return len(self.gt_origin[image])

    @property
    def family(self) -> "registry.Family":
        """The assigner family that made the assignment stages (its render hooks show them)."""
        return registry.get(self.config.assigner.name)


@dataclass
class RunInputs:
    """What a family's stages read besides the trace.

    labels: the batch's labels after the letterbox. heads: the YOLOv8-layout heads of the decode stage.
    own: the family's own heads (YOLOX / YOLOv5 layout) when given, else None. nc: classes.
    tal_inputs: (pd_scores (b,A,nc), pd_bboxes (b,A,4) px, anc_points (A,2) px, gt_labels (b,M,1),
    gt_bboxes (b,M,4) px, mask_gt (b,M,1)), the detection assigners' six inputs.
    state: what a family's assignment hands on to its loss.
    source_segments: the labels' polygons before the letterbox (normalised to each original image; the seg
    families rasterise GT masks from them with the trainer's arithmetic). letterboxes: per image, its Letterbox
    or None.
    """

    labels: Labels
    heads: Heads
    own: object
    nc: int
    tal_inputs: tuple
    state: dict = field(default_factory=dict)
    source_segments: tuple = ()
    letterboxes: list = field(default_factory=list)


def pad_targets(labels: Labels, batch: int, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels -> padded (gt_labels (b,M,1), gt_bboxes (b,M,4) px xyxy, mask_gt (b,M,1)), M = most GTs per image.

    Boxes are scaled to pixels first and converted to corners second, like the reference; a padding row is
    all zeros, and ``mask_gt`` is "xyxy sums to more than 0", the reference's rule.
    """
    counts = np.bincount(labels.batch_idx, minlength=batch) if len(labels) else np.zeros(batch, np.int64)
    m = int(counts.max()) if len(labels) else 0
    out = torch.zeros(batch, m, 5)
    slot = np.zeros(batch, np.int64)
    for i in range(len(labels)):
        bi = int(labels.batch_idx[i])
        out[bi, slot[bi], 0] = float(labels.cls[i])
        out[bi, slot[bi], 1:] = torch.from_numpy(labels.xywhn[i])
        slot[bi] += 1
    h, w = imgsz
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    out[..., 1:5] = xywh_to_xyxy(out[..., 1:5] * scale)
    gt_labels, gt_bboxes = out.split((1, 4), 2)
    mask_gt = (gt_bboxes.sum(2, keepdim=True) > 0).float()
    return gt_labels, gt_bboxes, mask_gt


def make_heads(cfg: Config, labels: Labels, heads: Heads | None, batch: int | None = None) -> Heads:
    """The given heads, or synthetic ones of the configured kind (``batch`` images: by default
    ``heads.batch`` of the config, else as many as the labels describe)."""
    if heads is not None:
        return heads
    batch = batch or cfg.heads.batch or max(labels.n_images, 1)
    if cfg.heads.kind == "randn":
        return synthetic_randn(batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.heads.seed)
    gt = xywh_to_xyxy(torch.from_numpy(labels.xywhn) * torch.tensor([cfg.imgsz[1], cfg.imgsz[0]] * 2)).numpy()
    return synthetic_trained(
        batch, cfg.num_classes, cfg.reg_max, cfg.grids, cfg.strides, cfg.heads.seed, labels.batch_idx, labels.cls, gt
    )


def run(cfg: Config, labels: Labels, heads: Heads | None = None, with_loss: bool = True,
        pictures: list | None = None, own_heads=None, letterboxes: list | None = None,
        notes: list[str] | None = None) -> Trace:
    """Run the whole pipeline and record every stage; the assigner family (``cfg.assigner.name``, looked up in
    the registry) records its own stages and loss.

    pictures: per image, the path of its image or None. One geometry rule for every command: an image's
    labels are first mapped through ultralytics' validation letterbox onto the imgsz canvas (scale r, then
    padding), so the numbers describe the pixels the trainer (and a model) sees; without an image, the
    normalised labels are scaled to the imgsz canvas.
    letterboxes: per image, its Letterbox (or None) when already known (from a model run or a saved heads
    file); default: computed from each picture's header.
    own_heads: the family's own heads (its ``read_heads``: YOLOX- or YOLOv5-layout), or None for synthetic ones.
    notes: lines describing where the inputs came from, shown before the geometry notes.
    """
    fam = registry.get(cfg.assigner.name)
    pictures = list(pictures or [])
    if letterboxes is None:
        from .inputs.pictures import image_size, letterbox_for

        letterboxes = [None if pic is None else letterbox_for(*image_size(pic), cfg.imgsz) for pic in pictures]
    boxes = list(letterboxes)
    source_segments = labels.segments  # before the letterbox (see RunInputs)
    if any(lb is not None for lb in boxes):
        from .inputs.pictures import apply_letterbox

        labels = apply_letterbox(labels, boxes, cfg.imgsz)
    # the assigner's own heads (YOLOX, YOLOv5) set the batch when the v8 heads are synthetic: images beyond the
    # labels are background, whichever heads say how many there are
    own = fam.own_batch(own_heads)
    heads = fam.make_heads(cfg, labels, heads, own)
    if own is not None and own != heads.batch:
        raise InputError(f"the {fam.heads_title} heads hold {own} images but the YOLOv8 heads {heads.batch}",
                         heads.source)
    check_grids(heads, cfg.grids, cfg.imgsz, cfg.strides)
    nc = heads.nc
    check_classes(labels, nc)
    labels = with_batch(labels, heads.batch)
    a_cfg = cfg.assigner
    levels = levels_for(list(heads.grids), cfg.strides)
    n_anchors = levels[-1].stop
    if fam.task_aligned and a_cfg.topk > n_anchors:
        raise InputError(f"assigner.topk ({a_cfg.topk}) is larger than the number of anchors ({n_anchors})", "config")

    gt_origin: list[list[tuple[str, int]]] = [[] for _ in range(heads.batch)]
    for i in range(len(labels)):
        gt_origin[int(labels.batch_idx[i])].append(labels.origin[i])
    trace = Trace(cfg, levels, labels, heads.source, gt_origin, warnings=list(cfg.warnings) + list(labels.warnings),
                  notes=list(labels.notes) + list(notes or []))
    trace.notes += geometry_notes(labels, pictures, boxes, cfg.imgsz)
    for i in range(heads.batch):
        pic = pictures[i] if i < len(pictures) else None
        lb = boxes[i] if i < len(boxes) else None
        trace.pictures.append(None if pic is None or lb is None else (str(pic), lb))

    anchor_points, stride_tensor = make_anchors(levels)
    trace.add("anchors", "Anchor points", anchor_points=anchor_points, stride_tensor=stride_tensor)

    pred_distri = heads.boxes.permute(0, 2, 1).contiguous()  # (b, A, 4R)
    pred_logits = heads.scores.permute(0, 2, 1).contiguous()  # (b, A, nc)
    pred_ltrb = dfl_distances(pred_distri, cfg.reg_max)
    pred_bboxes_grid = ltrb_to_xyxy(pred_ltrb, anchor_points)
    pred_bboxes = pred_bboxes_grid * stride_tensor
    pred_scores = pred_logits.sigmoid()
    trace.add(
        "decode", "DFL decode of the predictions",
        pred_distri=pred_distri, pred_logits=pred_logits, pred_ltrb=pred_ltrb,
        pred_bboxes_grid=pred_bboxes_grid, pred_bboxes=pred_bboxes, pred_scores=pred_scores,
    )

    gt_labels, gt_bboxes, mask_gt = pad_targets(labels, heads.batch, cfg.imgsz)
    trace.add("gt", "Padded ground truth", gt_labels=gt_labels, gt_bboxes=gt_bboxes, mask_gt=mask_gt)
    for bi, origins in enumerate(gt_origin):
        for j, (f, ln) in enumerate(origins):
            if not mask_gt[bi, j, 0]:
                trace.warnings.append(
                    f"{f}:{ln}: GT {j} of image {bi} has corner coordinates summing to <= 0; the reference "
                    "trainer treats it as padding, and so does this run"
                )

    inputs = RunInputs(labels, heads, own_heads, nc,
                       (pred_scores, pred_bboxes, anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt),
                       source_segments=source_segments, letterboxes=boxes)
    fam.assign(trace, cfg, inputs)
    pos, cand = fam.positives(trace)
    trace.add("positives", "Positives and candidates of every assigner as (image, GT, anchor cell)",
              pos_triples=pos, cand_triples=cand)
    if with_loss:
        fam.loss(trace, cfg, inputs)
    return trace


def geometry_notes(labels: Labels, pictures: list, boxes: list, imgsz: tuple[int, int]) -> list[str]:
    """One line per image with a letterbox (original size, r, padding), and one for those without."""
    h, w = imgsz
    out, missing = [], []
    for i in range(labels.n_images):
        lb = boxes[i] if i < len(boxes) else None
        if lb is None:
            missing.append(i)
            continue
        pic = pictures[i] if i < len(pictures) and pictures[i] is not None else "saved letterbox"
        out.append(f"image {i} ({pic}): {lb.describe(imgsz)}; its labels are mapped the same way")
    if missing and not out:
        out.append(f"no image found: labels taken as a {w}×{h} image (normalised × imgsz, no letterbox)")
    elif missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        out.append(f"image(s) {shown}: no image found: labels taken as a {w}×{h} image")
    return out
