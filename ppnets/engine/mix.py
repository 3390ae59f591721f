"""Mixup / CutMix as a DataLoader ``collate_fn`` and the matching soft-target cross-entropy.

:class:`MixupCutmixCollate` stacks a batch like the default collate, then (with probability
``prob``) mixes it with its reverse: Mixup (Zhang et al. 2018, arXiv:1710.09412) blends the
images with ``lam ~ Beta(mixup_alpha, mixup_alpha)``; CutMix (Yun et al. 2019, arXiv:1905.04899)
pastes a box of area ``1 - lam`` (``lam ~ Beta(cutmix_alpha, cutmix_alpha)``) and corrects
``lam`` to the box actually pasted after clipping at the border. When both are enabled one of
them is chosen per batch (CutMix with probability ``switch_prob``). Targets become soft:
``lam * smooth(y) + (1 - lam) * smooth(y_reversed)`` with label smoothing ``smoothing``
(off value ``smoothing / num_classes``), the same targets as timm's ``Mixup`` in 'batch' mode.

:class:`SoftTargetCrossEntropy` takes such ``[N, num_classes]`` targets and also plain integer
labels (evaluation batches), for which it is ``CrossEntropyLoss(label_smoothing=...)``.
``paddle.metric.Accuracy`` scores soft targets against their argmax.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["MixupCutmixCollate", "SoftTargetCrossEntropy", "smooth_one_hot", "cutmix_box"]


def smooth_one_hot(labels: np.ndarray, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    off = smoothing / num_classes
    out = np.full((len(labels), num_classes), off, dtype=np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64).reshape(-1)] = 1.0 - smoothing + off
    return out


def cutmix_box(h: int, w: int, lam: float, rng: np.random.RandomState):
    """Box ``(top, bottom, left, right)`` of area about ``(1 - lam) * h * w`` centred uniformly,
    clipped to the image."""
    ratio = np.sqrt(1.0 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy, cx = rng.randint(0, h), rng.randint(0, w)
    return (int(np.clip(cy - ch // 2, 0, h)), int(np.clip(cy + ch // 2, 0, h)),
            int(np.clip(cx - cw // 2, 0, w)), int(np.clip(cx + cw // 2, 0, w)))


class MixupCutmixCollate:
    """``collate_fn`` giving ``(images [N, C, H, W] float32, targets [N, num_classes])``.

    Randomness comes from ``numpy.random`` (the global state, reseeded per epoch by the engine
    and per worker by ``paddle.io.DataLoader``), so a run is reproducible.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 prob: float = 1.0, switch_prob: float = 0.5, smoothing: float = 0.0):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.smoothing = float(smoothing)

    def mix(self, images: np.ndarray, labels: np.ndarray,
            rng: Optional[np.random.RandomState] = None):
        """Mix a stacked batch in place of a copy; returns ``(images, targets, lam)``."""
        rng = rng or np.random.mtrand._rand
        images = np.array(images, dtype=np.float32, copy=True)
        lam = 1.0
        enabled = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if enabled and rng.rand() < self.prob:
            use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or
                                                    rng.rand() < self.switch_prob)
            flipped = images[::-1].copy()
            if use_cutmix:
                lam = float(rng.beta(self.cutmix_alpha, self.cutmix_alpha))
                h, w = images.shape[-2:]
                top, bottom, left, right = cutmix_box(h, w, lam, rng)
                images[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
                lam = 1.0 - (bottom - top) * (right - left) / float(h * w)
            else:
                lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
                images = (images * lam + flipped * (1.0 - lam)).astype(np.float32)
        y = smooth_one_hot(labels, self.num_classes, self.smoothing)
        targets = (y * lam + y[::-1] * (1.0 - lam)).astype(np.float32)
        return images, targets, lam

    def __call__(self, batch):
        images = np.stack([np.asarray(s[0], dtype=np.float32) for s in batch])
        labels = np.asarray([int(np.asarray(s[1]).reshape(-1)[0]) for s in batch], dtype=np.int64)
        images, targets, _ = self.mix(images, labels)
        return images, targets


class SoftTargetCrossEntropy(nn.Layer):
    """``mean(sum(-target * log_softmax(logits)))`` for soft targets ``[N, C]``; integer labels
    (``[N]`` or ``[N, 1]``) fall back to cross-entropy with ``label_smoothing``."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, target):
        if target.dtype in (paddle.int64, paddle.int32) or (
                target.ndim == 2 and target.shape[-1] == 1) or target.ndim == 1:
            target = target.astype("int64").reshape([-1])
            return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        logp = F.log_softmax(logits.astype("float32"), axis=-1)
        return (-target.astype("float32") * logp).sum(axis=-1).mean()
