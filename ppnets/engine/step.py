"""The engine's training step, and what drives it under ``paddle.Model.fit``.

:func:`train_step` is one optimizer step, in the order PaddleClas's ``train_epoch`` reads:
forward (AMP O1 on GPU) -> loss -> backward (scaled under AMP) -> optimizer/scaler -> schedule
(learning rate, weight-decay annealing) -> EMA -> log (the running train metrics). Everything it
uses is a :class:`TrainParts`, built from a config's ``optim``/``sched``/``train`` sections by
:func:`build_train_parts`.

:class:`EngineModel` is a ``paddle.Model`` whose ``train_batch`` is that step, so
``paddle.Model.fit`` stays the driver (callbacks, progress logging, VisualDL) for
:func:`ppnets.engine.fit` and for the supernets of :mod:`ppnets.search`, which plug in their own
step built from the same pieces (:func:`backward`, :func:`optimizer_step`). :class:`EpochLog` is the
per-epoch bookkeeping both use: the sampler's epoch, images, mean loss, time, one log line.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from .augment import SoftTargetCrossEntropy
from .ema import ModelEma
from .optim import build_optimizer, build_scheduler
from .wd_schedule import WeightDecaySchedule

# classification's running train metric (paddle's log name, the epoch record's key) and the
# evaluation metrics its epoch line shows: the defaults of the classification task
CLASSIFICATION_TRAIN_METRIC = ("acc_top1", "train_top1")
CLASSIFICATION_LABELS = {"top1": "top-1", "top5": "top-5"}

__all__ = ["TrainParts", "StepOutput", "build_loss", "build_train_parts", "train_step",
           "autocast", "backward", "optimizer_step", "EngineModel", "EpochLog", "epoch_line"]


def build_loss(train: Mapping) -> nn.Layer:
    """Cross-entropy with ``train.label_smoothing`` for integer labels (``[N]`` or ``[N, 1]``);
    Mixup/CutMix soft targets (``[N, C]``, smoothing already in them) take the soft-target
    form. One loss for both, so a batch's label layout never picks the wrong one."""
    return SoftTargetCrossEntropy(label_smoothing=float(train.get("label_smoothing") or 0.0))


@dataclass
class TrainParts:
    """What one training step uses. ``network`` is the layer a batch runs through (a
    :class:`~ppnets.engine.distill.DistillationNet` around the student when distilling);
    ``forward`` replaces it for the forward pass under data parallelism (``paddle.DataParallel``,
    set by :class:`EngineModel`). ``extra_optimizers`` step with ``optimizer`` (a supernet's
    architecture parameters). ``scaler``: AMP's loss scaler (None: float32). ``metrics``: the
    running train metrics the step logs."""
    network: nn.Layer
    loss: Callable[[Any, paddle.Tensor], paddle.Tensor]
    optimizer: paddle.optimizer.Optimizer
    scheduler: Optional[paddle.optimizer.lr.LRScheduler] = None
    extra_optimizers: Sequence[paddle.optimizer.Optimizer] = ()
    scaler: Optional[paddle.amp.GradScaler] = None
    weight_decay: Optional[WeightDecaySchedule] = None
    ema: Optional[ModelEma] = None
    metrics: List[paddle.metric.Metric] = field(
        default_factory=lambda: [paddle.metric.Accuracy(topk=(1, 5))])
    forward: Optional[Callable] = None


@dataclass
class StepOutput:
    """What a step hands to ``paddle.Model.fit``'s logs."""
    loss: float
    metrics: List[Any]   # each metric's running value over the epoch (paddle.Model's logs)


def autocast(parts: TrainParts):
    """AMP O1 around the forward pass when a scaler is set (GPU), else nothing."""
    if parts.scaler is None:
        return contextlib.nullcontext()
    return paddle.amp.auto_cast(enable=True, level="O1")


def backward(parts: TrainParts, loss: paddle.Tensor) -> None:
    (loss if parts.scaler is None else parts.scaler.scale(loss)).backward()


def optimizer_step(parts: TrainParts) -> None:
    """optimizer/scaler -> schedule -> EMA, after the gradients of a step were computed."""
    optimizers = (parts.optimizer, *parts.extra_optimizers)
    for opt in optimizers:
        if parts.scaler is None:
            opt.step()
        else:
            parts.scaler.step(opt)    # unscales the gradients, skips the step on inf/nan
    if parts.scaler is not None:
        parts.scaler.update()
    for opt in optimizers:
        opt.clear_grad()
    if parts.scheduler is not None:
        parts.scheduler.step()
    if parts.weight_decay is not None:
        parts.weight_decay.apply()    # the coefficient of the coming iteration
    if parts.ema is not None:
        parts.ema.update()


def train_step(parts: TrainParts, images, labels) -> StepOutput:
    """One optimizer step on one batch: forward -> loss -> backward -> optimizer/scaler ->
    schedule -> EMA -> log."""
    parts.network.train()
    with autocast(parts):
        outputs = (parts.forward or parts.network)(images)
    loss = parts.loss(outputs, labels)
    backward(parts, loss)
    optimizer_step(parts)
    metrics = [m.update(*[t.numpy() for t in _as_list(m.compute(outputs, labels))])
               for m in parts.metrics]
    return StepOutput(float(loss), metrics)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def build_train_parts(cfg: Mapping, network: nn.Layer, parameters, *, epochs: int,
                      steps_per_epoch: int, batch_size: int, world_size: int = 1,
                      loss: Optional[Callable[[Any, paddle.Tensor], paddle.Tensor]] = None,
                      metrics: Optional[Sequence[paddle.metric.Metric]] = None) -> TrainParts:
    """The step's parts from a resolved config: ``optim`` (optimizer, weight decay and its
    annealing ``weight_decay_end``, ``clip_grad_norm``; ``lr`` given for a global batch of
    ``lr_scale_batch`` images is scaled linearly to ``batch_size * world_size``), ``sched``
    (per-iteration schedule over ``epochs``), ``train.label_smoothing`` and ``train.amp``
    (O1 on GPU; ignored with a warning elsewhere). ``parameters`` are the ones trained.
    ``loss``/``metrics``: a task's (:class:`~ppnets.engine.task.Task`) instead of
    classification's cross-entropy and running top-1/top-5."""
    optim = cfg["optim"]
    base_lr = float(optim["lr"])
    if optim.get("lr_scale_batch"):
        # linear scaling rule (Goyal et al. 2017)
        base_lr *= batch_size * world_size / float(optim["lr_scale_batch"])
    scheduler = build_scheduler(cfg["sched"], base_lr, epochs, steps_per_epoch)
    optimizer = build_optimizer(optim, parameters, scheduler)
    parts = TrainParts(network, build_loss(cfg["train"]) if loss is None else loss, optimizer,
                       scheduler)
    if metrics is not None:
        parts.metrics = list(metrics)
    if optim.get("weight_decay_end") is not None:
        parts.weight_decay = WeightDecaySchedule(
            optimizer, scheduler, float(optim["weight_decay"]), float(optim["weight_decay_end"]),
            epochs * steps_per_epoch)
        parts.weight_decay.apply()
    if cfg["train"]["amp"]:
        if cfg["device"] == "gpu":
            parts.scaler = paddle.amp.GradScaler()
        else:
            warnings.warn("train.amp=true ignored: mixed precision needs device=gpu")
    return parts


class EngineModel(paddle.Model):
    """``paddle.Model`` whose training batch is ``step(images, labels)`` (default:
    :func:`train_step` of ``parts``), driven by ``paddle.Model.fit`` through
    :meth:`train_epochs`."""

    def __init__(self, parts: TrainParts,
                 step: Optional[Callable[[Any, Any], StepOutput]] = None):
        # one input, whatever the network's forward signature: a batch is (images, labels)
        super().__init__(parts.network, inputs=[paddle.static.InputSpec([None], name="images")])
        if paddle.distributed.get_world_size() > 1:
            # paddle.Model wrapped the network in DataParallel when it was built: its gradient
            # all-reduce hooks belong to that wrapper, so the forward pass must go through it
            parts.forward = self._adapter.ddp_model
        self.parts = parts
        self.step = step or functools.partial(train_step, parts)
        self.prepare(parts.optimizer, parts.loss, list(parts.metrics))

    def train_batch(self, inputs, labels=None, update=True):
        out = self.step(inputs[0], labels[0])
        losses = [np.asarray(out.loss, dtype=np.float32)]
        return (losses, out.metrics) if self._metrics else losses

    def train_epochs(self, loader, epochs: int, on_epoch_end: Callable[[Dict[str, Any]], None],
                     *, start_epoch: int = 0, callbacks: Sequence = (), verbose: int = 0,
                     log_freq: int = 10,
                     train_metric: Optional[Tuple[str, str]] = CLASSIFICATION_TRAIN_METRIC
                     ) -> "EpochLog":
        """``fit`` over ``loader`` (batches from an :class:`~ppnets.engine.data.EpochBatchSampler`)
        for ``epochs`` epochs, the first being global epoch ``start_epoch``; ``on_epoch_end``
        gets each epoch's record (:class:`EpochLog`; ``train_metric`` names the running
        metric it records). ``verbose``/``log_freq``: paddle's progress log. Returns the
        :class:`EpochLog` (its ``steps``)."""
        epoch_log = EpochLog(loader.batch_sampler, self.parts.optimizer, on_epoch_end,
                             start_epoch, train_metric)
        # the step owns the schedule: Paddle's per-batch LR stepping off
        no_lr_stepping = paddle.callbacks.LRScheduler(by_step=False, by_epoch=False)
        self.fit(loader, None, epochs=epochs, log_freq=log_freq, verbose=verbose,
                 callbacks=[epoch_log, *callbacks, no_lr_stepping])
        return epoch_log


class EpochLog(paddle.callbacks.Callback):
    """Per epoch of ``paddle.Model.fit``: sets the sampler's (global) epoch, sums the images (of
    every rank) and losses of its steps, and at its end hands the epoch's record
    (:meth:`record`) to ``on_end``. ``start_epoch``: epochs done before this ``fit`` call (a
    resumed run). ``train_metric``: (the running metric's name in paddle's logs, its key in the
    record), or None."""

    def __init__(self, sampler, optimizer, on_end: Callable[[Dict[str, Any]], None],
                 start_epoch: int = 0,
                 train_metric: Optional[Tuple[str, str]] = CLASSIFICATION_TRAIN_METRIC):
        super().__init__()
        self.sampler, self.optimizer, self.on_end = sampler, optimizer, on_end
        self.start_epoch = int(start_epoch)
        self.train_metric = train_metric
        self.epoch, self.steps = self.start_epoch, 0

    def on_epoch_begin(self, epoch=None, logs=None):
        self.epoch = self.start_epoch + epoch
        self.sampler.set_epoch(self.epoch)
        self.images, self.loss_sum, self.metric = 0, 0.0, None
        self.lr = float(self.optimizer.get_lr())
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, step, logs=None):
        logs = logs or {}
        n = int(logs.get("batch_size", 0))   # paddle.Model's logs: already times the ranks
        loss = logs.get("loss")
        self.images += n
        if loss is not None:
            self.loss_sum += float(loss[0] if isinstance(loss, (list, tuple)) else loss) * n
        if self.train_metric is not None:
            self.metric = logs.get(self.train_metric[0])
        self.steps += 1

    def record(self) -> Dict[str, Any]:
        """The finished epoch: ``epoch`` (1-based), ``lr`` at its start, mean ``train_loss``,
        the running train metric (``train_top1`` for classification), ``train_time_s``,
        ``images_per_s``, ``images``."""
        seconds = time.perf_counter() - self.t0
        record = {"epoch": self.epoch + 1, "lr": self.lr,
                  "train_loss": self.loss_sum / max(1, self.images)}
        if self.train_metric is not None:
            value = self.metric[0] if isinstance(self.metric, (list, tuple)) else self.metric
            record[self.train_metric[1]] = (None if value is None or math.isnan(value)
                                            else float(value))
        record.update(train_time_s=seconds,
                      images_per_s=self.images / seconds if seconds > 0 else None,
                      images=self.images)
        return record

    def on_epoch_end(self, epoch=None, logs=None):
        self.on_end(self.record())


def epoch_line(record: Mapping, epochs: int,
               labels: Mapping[str, str] = CLASSIFICATION_LABELS) -> str:
    """``[ppnets.engine] epoch 3/10 lr 0.05 loss 1.2345 [val top-1 ...] (812.3 img/s)``;
    ``labels``: the evaluation metrics shown (``val_<name>`` of the record) and their labels."""
    shown = [f"{label} {record[f'val_{name}']:.4f}" for name, label in labels.items()
             if record.get(f"val_{name}") is not None]
    val = " val " + " ".join(shown) if shown else ""
    return (f"[ppnets.engine] epoch {record['epoch']}/{epochs} lr {record['lr']:.5g} "
            f"loss {record['train_loss']:.4f}{val} ({record['images_per_s'] or 0:.1f} img/s)")
