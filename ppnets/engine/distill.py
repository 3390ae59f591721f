"""Knowledge distillation from a frozen teacher (the ``distill`` config section).

DeiT-style distillation (Touvron et al., "Training data-efficient image transformers &
distillation through attention", ICML 2021, sec. 4), the recipe of EfficientFormer V1/V2 and
RepViT (all three train with a RegNetY-16GF teacher through DeiT's code):

* the student may have a distillation head (``set_distilled_training(True)`` makes those models
  return ``(head, head_dist)`` in train mode); without one its single output plays both roles;
* ``hard``: ``(1 - alpha) * CE(head, y) + alpha * CE(head_dist, argmax(teacher))`` (DeiT's
  "hard-label distillation", alpha = 0.5 in DeiT/EfficientFormer);
* ``soft``: ``(1 - alpha) * CE(head, y) + alpha * tau^2 * KL(softmax(teacher / tau) ||
  softmax(head_dist / tau))``, the KL summed and divided by the number of logits as DeiT does;
* ``none``: the base loss only (no teacher is built).

The training step (:func:`ppnets.engine.train_step`) gives the loss only the network outputs
and labels, so the teacher runs inside :class:`DistillationNet`, a wrapper around the student
that the step runs: it returns the class head's logits (what the accuracy metric sees) and
keeps the distillation head's and the teacher's logits of the same batch for
:class:`DistillationLoss`. Checkpoints, the optimizer and evaluation still see the student
alone; the teacher stays in eval mode and receives no gradients.
"""
from __future__ import annotations

from typing import Mapping, Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

import ppnets

__all__ = ["DistillationNet", "DistillationLoss", "build_teacher"]

DISTILL_TYPES = ("hard", "soft", "none")


def build_teacher(distill: Mapping, num_classes: int) -> nn.Layer:
    """The frozen teacher: registry model ``distill.teacher`` with ``teacher_kwargs``, weights
    from ``teacher_weights`` (a ``.pdparams`` path). Without weights it stays randomly
    initialised -- only useful for smoke tests, and announced with a warning."""
    import warnings


    teacher = ppnets.create_model(distill["teacher"], num_classes=num_classes,
                                  **dict(distill.get("teacher_kwargs") or {}))
    path = distill.get("teacher_weights")
    if path:
        state = paddle.load(path)
        missing, unexpected = teacher.set_state_dict(state)
        if missing:
            raise RuntimeError(f"teacher weights {path} lack {len(missing)} entries of "
                               f"{distill['teacher']} (e.g. {missing[:3]}); convert them with "
                               "ppnets.convert first")
    else:
        warnings.warn(f"distill.teacher={distill['teacher']} has no teacher_weights: the teacher "
                      "is randomly initialised (smoke tests only)")
    for p in teacher.parameters():
        p.stop_gradient = True
    teacher.eval()
    return teacher


class DistillationNet(nn.Layer):
    def __init__(self, student: nn.Layer, teacher: nn.Layer):
        super().__init__()
        self.student = student
        self.teacher = teacher
        for p in teacher.parameters():
            p.stop_gradient = True
        self.teacher_logits: Optional[paddle.Tensor] = None
        self.dist_logits: Optional[paddle.Tensor] = None
        if hasattr(student, "set_distilled_training"):
            student.set_distilled_training(True)

    def train(self):
        super().train()
        self.teacher.eval()   # BN statistics and dropout of the teacher stay frozen
        return self

    def forward(self, x):
        out = self.student(x)
        if not self.training:
            self.teacher_logits = self.dist_logits = None
            return out
        if isinstance(out, (tuple, list)):
            out, self.dist_logits = out[0], out[1]
        else:
            self.dist_logits = out
        with paddle.no_grad():
            self.teacher_logits = self.teacher(x).detach()
        return out


class DistillationLoss(nn.Layer):
    """``base_loss(head, target)`` mixed with the distillation term (see the module docstring).
    ``source`` is the :class:`DistillationNet` whose last training forward pass is scored."""

    def __init__(self, base_loss: nn.Layer, source: DistillationNet, kind: str = "hard",
                 alpha: float = 0.5, tau: float = 1.0):
        super().__init__()
        if kind not in DISTILL_TYPES:
            raise ValueError(f"distill.type must be one of {DISTILL_TYPES}, got {kind!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distill.alpha must be in [0, 1], got {alpha}")
        self.base_loss, self.source = base_loss, source
        self.kind, self.alpha, self.tau = kind, float(alpha), float(tau)

    def forward(self, logits, target):
        base = self.base_loss(logits, target)
        teacher, dist = self.source.teacher_logits, self.source.dist_logits
        if self.kind == "none" or teacher is None:   # eval batches: the plain loss
            return base
        if self.kind == "hard":
            kd = F.cross_entropy(dist, teacher.argmax(axis=-1).unsqueeze(-1))
        else:
            t = self.tau
            log_s = F.log_softmax(dist / t, axis=-1)
            log_t = F.log_softmax(teacher / t, axis=-1)
            kd = (paddle.exp(log_t) * (log_t - log_s)).sum() * (t * t) / dist.numel()
        return base * (1.0 - self.alpha) + kd * self.alpha
