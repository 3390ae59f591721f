"""What :func:`ppnets.engine.fit` trains a network for: a :class:`Task` supplies the loss, the
running training metric and the evaluation; the engine does the rest (the one training step,
the schedule, checkpoints, resumption, VisualDL, ``results.json``) the same way for every task.

:class:`ClassificationTask` is the default: cross-entropy (label smoothing, Mixup/CutMix soft
targets) and top-1/top-5 by :func:`~ppnets.engine.evaluate.evaluate_network`. A dense task
(e.g. :class:`ppnets.examples.segmentation.SegmentationTask`) is passed with the network and its
data: ``fit(cfg, model=net, data=(train_set, val_set), task=SegmentationTask(num_classes))``.
See docs/training.md, "Dense tasks".
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import paddle

from .data import build_train_collate
from .evaluate import evaluate_network
from .step import CLASSIFICATION_LABELS, CLASSIFICATION_TRAIN_METRIC, build_loss

__all__ = ["Task", "ClassificationTask"]


class Task(abc.ABC):
    """The task-specific parts of a training run.

    ``metrics``: the names of what :meth:`evaluate` returns, recorded per evaluated epoch as
    ``val_<name>`` (``val_<name>_ema`` for the EMA weights) and in the results as
    ``final_<name>`` and ``best_<name>``; the first one is a number, higher is better, and picks
    the best checkpoint. ``labels``: how the epoch line names the numeric metrics it prints
    (those listed); ``log_names``: their VisualDL names (default: the metric's name).
    ``train_metric``: (log name of the running training metric, its key in the epoch record),
    or None.
    """

    metrics: Tuple[str, ...] = ()
    labels: Mapping[str, str] = {}
    log_names: Mapping[str, str] = {}
    train_metric: Optional[Tuple[str, str]] = None

    @abc.abstractmethod
    def loss(self, cfg: Mapping) -> Callable[[Any, paddle.Tensor], paddle.Tensor]:
        """The loss ``(network outputs, labels) -> scalar`` of the training step."""

    @abc.abstractmethod
    def evaluate(self, network, batches: Iterable, *, sum_over_ranks: bool = False
                 ) -> Dict[str, Any]:
        """Every name of ``metrics`` over ``batches`` of ``(inputs, labels)``, and ``time_s``.
        ``sum_over_ranks``: each rank saw its own share of the batches; the result must be
        the whole set's on every rank."""

    def train_metrics(self) -> List[paddle.metric.Metric]:
        """The running metrics the training step updates (``paddle.metric.Metric``)."""
        return []

    def train_collate(self, cfg: Mapping, num_classes: int):
        """The training loader's ``collate_fn`` (None: Paddle's default)."""
        return None

    def eval_scalars(self, result: Mapping[str, Any]) -> Dict[str, float]:
        """What VisualDL logs of an evaluation: the numeric metrics, by their log names."""
        return {self.log_names.get(m, m): float(result[m]) for m in self.metrics
                if isinstance(result[m], (int, float))}


class ClassificationTask(Task):
    """Image classification, the engine's default: cross-entropy with ``train.label_smoothing``
    (soft targets under Mixup/CutMix, whose ``collate_fn`` it supplies), running top-1, and
    top-1/top-5 by :func:`~ppnets.engine.evaluate.evaluate_network`."""

    metrics = ("top1", "top5")
    labels = CLASSIFICATION_LABELS
    log_names = {"top1": "acc_top1", "top5": "acc_top5"}
    train_metric = CLASSIFICATION_TRAIN_METRIC

    def loss(self, cfg):
        return build_loss(cfg["train"])

    def train_metrics(self):
        return [paddle.metric.Accuracy(topk=(1, 5))]

    def train_collate(self, cfg, num_classes):
        return build_train_collate(cfg, num_classes)

    def evaluate(self, network, batches, *, sum_over_ranks=False):
        res = evaluate_network(network, batches, sum_over_ranks=sum_over_ranks)
        return {"top1": res.top1, "top5": res.top5, "time_s": res.time_s}
