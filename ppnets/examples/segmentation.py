"""Semantic segmentation over a ppnets backbone: the multi-scale feature API carrying a real
downstream training loop, in one module rather than a framework.

    from ppnets.examples.segmentation import train_segmentation
    run = train_segmentation("runs/shapes", backbone="mobilenetv2_100",
                             pretrained="mobilenetv2_100.tv_qnnpack_dequant.safetensors")
    print(run.miou, "vs all-background", run.background_miou)

* :class:`ShapesDataset` -- **synthetic** data: circles, squares and triangles of random size,
  rotation and colour on striped, noisy backgrounds, generated from ``(seed, index)``. The masks
  are exact: the image is painted from them (the class of a pixel is that of the last shape
  whose outline contains the pixel's centre). It exists so that the example runs anywhere in a
  CPU-minute with a known answer; it says nothing about accuracy on real images.
* :class:`FPN` (lateral 1x1 convs, top-down nearest upsampling and addition, a 3x3 smoothing
  conv per level; Lin et al. 2017) and :class:`SegmentationHead` (the levels summed at the finest
  one's resolution, conv-BN-ReLU, 1x1 to class logits), put together by :class:`SegmentationNet`
  over any ``create_model(name, features_only=True, out_indices=...)``; its output is upsampled
  to the input size, so the whole net exports as one program.
* :class:`SegmentationTask` -- the dense task :func:`ppnets.engine.fit` trains for: pixel
  cross-entropy, running pixel accuracy, and an evaluation of mean IoU, per-class IoU and pixel
  accuracy from the confusion matrix (:func:`confusion_matrix`, :func:`iou_from_confusion`).
* :func:`train_segmentation` -- builds the net (pretrained backbone, early stages frozen, the
  backbone's BatchNorm statistics kept), trains it through ``fit`` (checkpoints, resume,
  VisualDL, ``results.json``), reports the all-background baseline on the same images, and
  exports the whole net to Paddle Inference, checked against eager on validation images.

See docs/training.md, "Dense tasks".
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

import ppnets
from ppnets.engine import Task, apply_overrides, fit, freeze, load_config, seed_everything
from ppnets.registry import IMAGENET_MEAN, IMAGENET_STD, model_info
from ppnets.runtime import (DEFAULT_ATOL, compare_outputs, create_predictor, deploy_form,
                            export_program, run_predictor)
from ppnets.utils import atomic_write_json

__all__ = ["CLASSES", "Shape", "ShapesDataset", "shape_mask", "FPN", "SegmentationHead",
           "SegmentationNet", "confusion_matrix", "iou_from_confusion", "background_miou",
           "PixelCrossEntropy", "PixelAccuracy", "SegmentationTask",
           "freeze_batchnorm_statistics", "strided_indices", "build_segmentation_net",
           "segmentation_config", "export_and_check", "SegmentationRun", "train_segmentation"]

CLASSES = ("background", "circle", "square", "triangle")
_SIDES = {"square": 4, "triangle": 3}


# ---------------------------------------------------------------------------------------------
# the synthetic data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """One painted shape: class index in :data:`CLASSES`, centre ``(cx, cy)`` and
    ``radius`` in pixels (a polygon's circumradius), rotation ``angle`` (radians) and RGB
    ``color`` in [0, 1]."""
    label: int
    cx: float
    cy: float
    radius: float
    angle: float
    color: Tuple[float, float, float]


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """``[height, width]`` bool: the pixels whose centre ``(x + 0.5, y + 0.5)`` lies in the
    shape (on its outline included)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    dx, dy = x - shape.cx, y - shape.cy
    name = CLASSES[shape.label]
    if name == "circle":
        return dx * dx + dy * dy <= shape.radius ** 2
    n = _SIDES[name]
    corners = [(shape.radius * math.cos(shape.angle + 2 * math.pi * k / n),
                shape.radius * math.sin(shape.angle + 2 * math.pi * k / n)) for k in range(n)]
    inside = np.ones((height, width), dtype=bool)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        # counter-clockwise corners: the inside is left of every edge
        inside &= (x1 - x0) * (dy - y0) - (y1 - y0) * (dx - x0) >= 0
    return inside


class ShapesDataset(paddle.io.Dataset):
    """``num_images`` generated images (``image_size`` square) with exact masks; SYNTHETIC.

    Image ``i`` depends only on ``(seed, i)``: a background of stripes between two random
    colours (random direction, frequency and phase) with Gaussian pixel noise, and 1 to
    ``max_shapes`` flat-coloured shapes (circle, square, triangle; random class, radius
    ``radius_range`` x ``image_size``, rotation and colour), painted in order, each inside the
    image. ``dataset[i]`` is ``(image, mask)``: a CHW float32 image normalised with ``mean``/
    ``std`` (a pretrained backbone's: ImageNet's by default) and an ``[H, W]`` int64 mask of
    class indices (0 background). :meth:`sample` gives the RGB image in [0, 1] and the shapes.
    """

    classes = CLASSES
    num_classes = len(CLASSES)

    def __init__(self, num_images: int, image_size: int = 64, seed: int = 0,
                 max_shapes: int = 2, radius_range: Tuple[float, float] = (0.18, 0.32),
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 noise: float = 0.06):
        super().__init__()
        if num_images < 1 or image_size < 8 or max_shapes < 1:
            raise ValueError(f"ShapesDataset needs num_images >= 1, image_size >= 8 and "
                             f"max_shapes >= 1; got {num_images}, {image_size}, {max_shapes}")
        self.num_images, self.image_size, self.seed = int(num_images), int(image_size), int(seed)
        self.max_shapes, self.radius_range, self.noise = int(max_shapes), radius_range, noise
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return self.num_images

    def _shapes(self, rng: np.random.Generator) -> List[Shape]:
        size = self.image_size
        out = []
        for _ in range(int(rng.integers(1, self.max_shapes + 1))):
            radius = float(rng.uniform(*self.radius_range)) * size
            cx, cy = rng.uniform(radius, size - radius, 2)
            out.append(Shape(int(rng.integers(1, len(CLASSES))), float(cx), float(cy), radius,
                             float(rng.uniform(0, 2 * math.pi)),
                             tuple(float(c) for c in rng.uniform(0, 1, 3))))
        return out

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        size = self.image_size
        c0, c1 = rng.uniform(0, 1, (2, 3))
        theta, cycles = rng.uniform(0, math.pi), rng.uniform(1.5, 6)
        phase = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0:size, 0:size] / size
        t = 0.5 + 0.5 * np.sin(2 * math.pi * cycles * (x * math.cos(theta) + y * math.sin(theta))
                               + phase)
        img = c0 * (1 - t[..., None]) + c1 * t[..., None]
        img += rng.normal(0, self.noise, img.shape)
        return np.clip(img, 0, 1)

    def sample(self, index: int) -> Tuple[np.ndarray, np.ndarray, List[Shape]]:
        """``(RGB image [H, W, 3] float32 in [0, 1], mask [H, W] int64, shapes)`` of image
        ``index``."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        rng = np.random.default_rng([self.seed, index])
        img = self._background(rng)
        mask = np.zeros((self.image_size, self.image_size), dtype=np.int64)
        shapes = self._shapes(rng)
        for shape in shapes:
            inside = shape_mask(shape, self.image_size, self.image_size)
            img[inside] = shape.color
            mask[inside] = shape.label
        return img.astype(np.float32), mask, shapes

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        img, mask, _ = self.sample(int(index))
        return (img.transpose(2, 0, 1) - self.mean) / self.std, mask

    def masks(self) -> np.ndarray:
        """Every mask, ``[N, H, W]``."""
        return np.stack([self.sample(i)[1] for i in range(self.num_images)])


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
class FPN(nn.Layer):
    """Feature pyramid (Lin et al. 2017): a 1x1 lateral conv per input map to ``channels``,
    top-down from the coarsest map (nearest upsampling to the next map's size, added to its
    lateral), a 3x3 smoothing conv per level. Returns the levels, finest first."""

    def __init__(self, in_channels: Sequence[int], channels: int = 64):
        super().__init__()
        self.lateral = nn.LayerList([nn.Conv2D(c, channels, 1) for c in in_channels])
        self.smooth = nn.LayerList([nn.Conv2D(channels, channels, 3, padding=1)
                                    for _ in in_channels])

    def forward(self, features: Sequence[paddle.Tensor]) -> List[paddle.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        levels = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            levels.insert(0, lateral + F.interpolate(levels[0], size=lateral.shape[-2:],
                                                     mode="nearest"))
        return [conv(p) for conv, p in zip(self.smooth, levels)]


class SegmentationHead(nn.Layer):
    """The FPN levels upsampled (bilinear) to the finest one and summed, then 3x3 conv-BN-ReLU
    and a 1x1 conv to ``num_classes`` logits."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2D(channels, channels, 3, padding=1, bias_attr=False),
                                  nn.BatchNorm2D(channels), nn.ReLU())
        self.classifier = nn.Conv2D(channels, num_classes, 1)

    def forward(self, levels: Sequence[paddle.Tensor]) -> paddle.Tensor:
        size = levels[0].shape[-2:]
        fused = levels[0]
        for level in levels[1:]:
            fused = fused + F.interpolate(level, size=size, mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(fused))


class SegmentationNet(nn.Layer):
    """``backbone`` (a features-only ppnets model: a list of NCHW maps, ``feature_info``) ->
    :class:`FPN` -> :class:`SegmentationHead` -> logits ``[N, num_classes, H, W]`` at the input
    size (bilinear)."""

    def __init__(self, backbone: nn.Layer, num_classes: int, fpn_channels: int = 64):
        super().__init__()
        self.backbone = backbone
        self.fpn = FPN(backbone.feature_info.channels(), fpn_channels)
        self.head = SegmentationHead(fpn_channels, num_classes)
        self.num_classes = int(num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        logits = self.head(self.fpn(self.backbone(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def freeze_batchnorm_statistics(layer: nn.Layer) -> int:
    """Make every BatchNorm in ``layer`` normalise with its running statistics in training too,
    and stop updating them (their scale and offset still train unless frozen); returns how many.
    The usual practice for a pretrained backbone under small dense-task batches (Detectron2's
    FrozenBatchNorm), and required by weights whose BatchNorms were folded into the convs."""
    norms = [m for m in layer.sublayers(include_self=True)
             if isinstance(m, (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm))]
    for norm in norms:
        norm._use_global_stats = True
    return len(norms)


def strided_indices(backbone: str, min_reduction: int = 4, **kwargs) -> Tuple[int, ...]:
    """Positions in ``backbone``'s ``feature_info`` of the maps with stride >= ``min_reduction``
    (an FPN's usual strides 4 to 32)."""
    info = ppnets.create_model(backbone, num_classes=0, **kwargs).feature_info
    return tuple(i for i, r in enumerate(info.reduction()) if r >= min_reduction)


# ---------------------------------------------------------------------------------------------
# metrics and the task
# ---------------------------------------------------------------------------------------------
def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """``[num_classes, num_classes]`` int64 pixel counts, rows the true class, columns the
    predicted one; target pixels outside ``[0, num_classes)`` are ignored."""
    pred, target = np.asarray(pred).reshape(-1), np.asarray(target).reshape(-1)
    valid = (target >= 0) & (target < num_classes)
    index = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(confusion: np.ndarray) -> Dict[str, Any]:
    """``class_iou`` (intersection over union per class; None for a class neither in the truth
    nor in the prediction), ``miou`` (their mean over the classes that have one) and
    ``pixel_acc``."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    class_iou = [float(i / u) if u > 0 else None for i, u in zip(intersection, union)]
    present = [v for v in class_iou if v is not None]
    total = confusion.sum()
    return {"miou": float(np.mean(present)) if present else 0.0,
            "pixel_acc": float(intersection.sum() / total) if total else 0.0,
            "class_iou": class_iou}


def background_miou(masks: np.ndarray, num_classes: int) -> float:
    """Mean IoU of predicting background (class 0) everywhere: the trivial baseline."""
    return iou_from_confusion(confusion_matrix(np.zeros_like(masks), masks, num_classes))["miou"]


class PixelCrossEntropy(nn.Layer):
    """Mean cross-entropy over pixels: logits ``[N, C, H, W]``, labels ``[N, H, W]``."""

    def forward(self, logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        return F.cross_entropy(logits, labels.astype("int64").unsqueeze(1), axis=1)


class PixelAccuracy(paddle.metric.Metric):
    """Running fraction of correctly classified pixels (the training log's metric)."""

    def __init__(self, name: str = "pixel_acc"):
        super().__init__()
        self._name = name
        self.reset()

    def compute(self, logits, labels):
        return (logits.argmax(axis=1) == labels.astype("int64")).astype("float32")

    def update(self, correct):
        self.correct += float(np.asarray(correct).sum())
        self.total += int(np.asarray(correct).size)
        return self.accumulate()

    def reset(self):
        self.correct, self.total = 0.0, 0

    def accumulate(self):
        return self.correct / self.total if self.total else 0.0

    def name(self):
        return [self._name]


class SegmentationTask(Task):
    """Semantic segmentation for :func:`ppnets.engine.fit`: pixel cross-entropy; evaluation
    ``miou`` (picks the best checkpoint), ``pixel_acc`` and ``class_iou`` (a list, one value per
    class, None where a class is absent from truth and prediction)."""

    metrics = ("miou", "pixel_acc", "class_iou")
    labels = {"miou": "mIoU", "pixel_acc": "pixel acc"}
    train_metric = ("pixel_acc", "train_pixel_acc")

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)

    def loss(self, cfg):
        return PixelCrossEntropy()

    def train_metrics(self):
        return [PixelAccuracy()]

    def train_collate(self, cfg, num_classes: int):
        aug = cfg["data"]["augment"]
        if float(aug.get("mixup_alpha") or 0) > 0 or float(aug.get("cutmix_alpha") or 0) > 0:
            raise ValueError("data.augment.mixup_alpha/cutmix_alpha mix image labels: they do "
                             "not apply to segmentation masks; set them to 0")
        return None

    def evaluate(self, network, batches: Iterable, *, sum_over_ranks: bool = False
                 ) -> Dict[str, Any]:
        network.eval()
        confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        t0 = time.perf_counter()
        with paddle.no_grad():
            for images, masks in batches:
                if not isinstance(images, paddle.Tensor):
                    images = paddle.to_tensor(images)
                logits = network(images)
                masks = masks.numpy() if isinstance(masks, paddle.Tensor) else np.asarray(masks)
                confusion += confusion_matrix(logits.argmax(axis=1).numpy(), masks,
                                              self.num_classes)
        if sum_over_ranks:
            total = paddle.to_tensor(confusion)
            paddle.distributed.all_reduce(total)
            confusion = total.numpy()
        return {**iou_from_confusion(confusion), "time_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# training, baseline, export
# ---------------------------------------------------------------------------------------------
def build_segmentation_net(backbone: str = "mobilenetv2_100",
                           pretrained: Union[None, bool, str] = None,
                           out_indices: Optional[Sequence[int]] = None,
                           frozen: Sequence[str] = ("stem", "blocks.0", "blocks.1"),
                           num_classes: int = len(CLASSES), fpn_channels: int = 64
                           ) -> Tuple[SegmentationNet, List[str]]:
    """``(net, frozen parameter names)``: ``create_model(backbone, features_only=True,
    out_indices=..., pretrained=...)`` (default: its maps at strides 4 to 32) under an
    :class:`FPN` and :class:`SegmentationHead`. ``frozen``: prefixes of the backbone's parameter
    names (as ``model.freeze`` names a classifier's: ``stem``, ``blocks.0``) frozen with
    :func:`ppnets.engine.freeze`; every BatchNorm of the backbone keeps its statistics
    (:func:`freeze_batchnorm_statistics`)."""
    if out_indices is None:
        out_indices = strided_indices(backbone)
    features = ppnets.create_model(backbone, features_only=True, out_indices=out_indices,
                                   pretrained=pretrained)
    net = SegmentationNet(features, num_classes, fpn_channels)
    names = [f"backbone.model.{n}" for n in freeze(features.model, list(frozen))]
    freeze_batchnorm_statistics(features)
    return net, names


def segmentation_config(output_dir: str, backbone: str, pretrained, image_size: int,
                        epochs: int, batch_size: int, lr: float, seed: int,
                        overrides: Sequence[str] = ()) -> dict:
    """The engine config of the run: AdamW with a cosine schedule, loaders in-process (the
    images are generated in microseconds), one evaluation per epoch. ``overrides`` are
    ``key=value`` strings applied last, as on the command line."""
    cfg = {"model": {"name": backbone, "pretrained": pretrained or None},
           "data": {"image_size": int(image_size), "batch_size": int(batch_size),
                    "eval_batch_size": 32, "num_workers": 0, "num_classes": len(CLASSES)},
           "optim": {"name": "adamw", "lr": float(lr), "weight_decay": 1e-4},
           "sched": {"name": "cosine"},
           "train": {"epochs": int(epochs), "seed": int(seed), "verbose": 0, "log_freq": 10},
           "output_dir": str(output_dir)}
    return load_config(None, base=apply_overrides(cfg, overrides) if overrides else cfg)


# Paddle 3.3.1's oneDNN executor cannot run the interpolation ops of a PIR program: the predictor
# raises "ConvertPirAttribute2RuntimeAttribute not support [pir::ArrayAttribute<pir::
# DoubleAttribute>]" (their ``scale`` attribute; PaddlePaddle/Paddle issue #79749). Every
# upsampling network (this one, PaddleSeg's) meets it; the program runs on Paddle's own CPU
# kernels with oneDNN off.
ONEDNN_INTERP_ERROR = "ConvertPirAttribute2RuntimeAttribute"


def _run_program(model_file: str, params_file: str, images: np.ndarray, onednn: bool):
    predictor = create_predictor(model_file, params_file, device="cpu", threads=1,
                                 mkldnn=onednn)
    return np.concatenate([run_predictor(predictor, images[i:i + 1])[0]
                           for i in range(len(images))])


def export_and_check(net: SegmentationNet, images: np.ndarray, out_dir: str
                     ) -> Dict[str, Any]:
    """Export the whole net (eval mode, :func:`ppnets.runtime.deploy_form`) as one Paddle
    Inference program (:func:`ppnets.runtime.export_program`: PIR, input ``[1, C, H, W]``), run
    it on ``images`` one at a time as deployed, and compare its logits with the eager net's
    (:func:`ppnets.runtime.compare_outputs`), on Paddle's CPU kernels (``onednn_off``) and with
    oneDNN (``onednn_on``: the error is recorded where Paddle cannot run the program; see
    ``ONEDNN_INTERP_ERROR``). Also ``same_mask_pixels``: the fraction of pixels whose
    predicted class agrees. Written to ``out_dir/export.json``; returned."""
    model, _, size = deploy_form(net, images.shape[1:])
    os.makedirs(out_dir, exist_ok=True)
    model_file, params_file = export_program(model, size, 1, out_dir)
    with paddle.no_grad():
        eager = model(paddle.to_tensor(images)).numpy()
    record: Dict[str, Any] = {"model_file": model_file, "params_file": params_file,
                              "input_size": list(size), "paddle_version": paddle.__version__}
    for name, onednn in (("onednn_off", False), ("onednn_on", True)):
        try:
            exported = _run_program(model_file, params_file, images, onednn)
        except (RuntimeError, NotImplementedError) as exc:
            record[name] = {"status": "failed", "error": str(exc).strip()[-400:]}
            continue
        record[name] = compare_outputs(exported, eager, DEFAULT_ATOL)
        record[name]["same_mask_pixels"] = float((exported.argmax(1) == eager.argmax(1)).mean())
    atomic_write_json(os.path.join(out_dir, "export.json"), record)
    return record


@dataclass
class SegmentationRun:
    """What :func:`train_segmentation` returns. ``results``: ``fit``'s results dict (also in
    ``<output_dir>/results.json``); ``miou``/``class_iou``/``pixel_acc``: the last evaluation;
    ``background_miou``: predicting background everywhere on the same validation images;
    ``frozen``: the parameters that did not train; ``export``: :func:`export_and_check`'s
    record (None when not exported); ``net``: the trained network (the last epoch's weights)."""
    results: Dict[str, Any]
    miou: float
    class_iou: List[Optional[float]]
    pixel_acc: float
    background_miou: float
    frozen: List[str]
    net: SegmentationNet
    val_set: ShapesDataset
    export: Optional[Dict[str, Any]] = None


def train_segmentation(output_dir: str, backbone: str = "mobilenetv2_100",
                       pretrained: Union[None, bool, str] = None,
                       out_indices: Optional[Sequence[int]] = None,
                       frozen: Sequence[str] = ("stem", "blocks.0", "blocks.1"),
                       image_size: int = 64, train_images: int = 256, val_images: int = 64,
                       epochs: int = 3, batch_size: int = 16, lr: float = 1e-3,
                       seed: int = 0, export_model: bool = True,
                       overrides: Sequence[str] = ()) -> SegmentationRun:
    """Train :class:`SegmentationNet` over ``backbone`` on :class:`ShapesDataset` (synthetic:
    ``train_images`` from seed ``seed``, ``val_images`` from seed ``seed + 1``) through
    :func:`ppnets.engine.fit` with :class:`SegmentationTask`, into ``output_dir`` (checkpoints,
    VisualDL, ``results.json``; a second call resumes or reports the finished run). Then the
    all-background baseline on the validation masks and, with ``export_model``, the whole net
    exported to Paddle Inference and checked against eager on the validation images
    (``output_dir/export``). ``frozen``/``out_indices``: :func:`build_segmentation_net`;
    ``overrides``: config ``key=value`` strings (:func:`segmentation_config`)."""
    seed_everything(seed)   # the FPN's and head's initial weights
    net, frozen_names = build_segmentation_net(backbone, pretrained, out_indices, frozen)
    info = model_info(backbone)
    data = dict(image_size=image_size, mean=info.get("mean") or IMAGENET_MEAN,
                std=info.get("std") or IMAGENET_STD)
    train_set = ShapesDataset(train_images, seed=seed, **data)
    val_set = ShapesDataset(val_images, seed=seed + 1, **data)
    cfg = segmentation_config(output_dir, backbone, pretrained, image_size, epochs, batch_size,
                              lr, seed, overrides)
    results = fit(cfg, model=net, data=(train_set, val_set),
                  task=SegmentationTask(len(CLASSES)))
    run = SegmentationRun(results, results["final_miou"], results["final_class_iou"],
                          results["final_pixel_acc"],
                          background_miou(val_set.masks(), len(CLASSES)), frozen_names, net,
                          val_set)
    if export_model:
        images = np.stack([val_set[i][0] for i in range(min(8, len(val_set)))])
        run.export = export_and_check(net, images, os.path.join(output_dir, "export"))
    return run
