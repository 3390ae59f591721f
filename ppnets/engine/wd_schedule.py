"""Weight-decay annealing (``optim.weight_decay_end``).

MobileOne (Vasu et al., CVPR 2023, sec. 4 "Experiments": "weight decay coefficient annealed from
1e-4 to 1e-5" with a cosine schedule over the 300 epochs) anneals the weight-decay coefficient
alongside the learning rate. :func:`wd_at` gives the coefficient of iteration ``step``: cosine
from ``optim.weight_decay`` (first iteration) to ``optim.weight_decay_end`` (last iteration),
with no warm-up phase (the official ``train.py`` updates it per epoch on the same cosine; we
update per iteration like our learning rate, which differs by less than one epoch's step).

It is a pure function of the iteration count, which the LR scheduler's state carries through
checkpoints, so a resumed run gets exactly the coefficients an uninterrupted one would.
"""
from __future__ import annotations

import math

import paddle

__all__ = ["wd_at", "set_weight_decay", "get_weight_decay", "WeightDecaySchedule"]


def wd_at(step: int, *, start: float, end: float, total_steps: int) -> float:
    """Cosine from ``start`` (step 0) to ``end`` (step ``total_steps - 1``)."""
    t = min(1.0, max(0.0, step / max(1, total_steps - 1)))
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_weight_decay(optimizer, value: float) -> None:
    """Change the decay coefficient of an optimizer built by ``build_optimizer``.

    Paddle keeps it in different places: ``AdamW._weight_decay`` (decoupled decay),
    ``Momentum._regularization_coeff`` (L2 fused into the momentum op) and the ``L2Decay``
    regulariser of ``SGD``/``Adam``."""
    value = float(value)
    if isinstance(optimizer, paddle.optimizer.AdamW):
        optimizer._weight_decay = value
    elif isinstance(optimizer, paddle.optimizer.Momentum):
        if optimizer._regularization_method != "l2_decay":
            raise ValueError("optim.weight_decay_end needs optim.weight_decay > 0 (the optimizer "
                             "was built without weight decay)")
        optimizer._regularization_coeff = value
        optimizer._default_dict["regularization_coeff"] = value
    else:
        reg = getattr(optimizer, "regularization", None)
        if reg is None or not hasattr(reg, "_coeff"):
            raise ValueError("optim.weight_decay_end needs optim.weight_decay > 0 (the optimizer "
                             "was built without weight decay)")
        reg._coeff = value


def get_weight_decay(optimizer) -> float:
    if isinstance(optimizer, paddle.optimizer.AdamW):
        return float(optimizer._weight_decay)
    if isinstance(optimizer, paddle.optimizer.Momentum):
        return float(optimizer._regularization_coeff)
    reg = getattr(optimizer, "regularization", None)
    return float(reg._coeff) if reg is not None else 0.0


class WeightDecaySchedule:
    """Sets the coefficient of the coming iteration (the training step calls :meth:`apply`
    after each scheduler step; the engine once more after restoring a checkpoint)."""

    def __init__(self, optimizer, scheduler, start: float, end: float, total_steps: int):
        self.optimizer, self.scheduler = optimizer, scheduler
        self.start, self.end, self.total_steps = float(start), float(end), int(total_steps)

    def current(self) -> float:
        # scheduler.last_epoch = iterations already done = index of the coming iteration
        return wd_at(int(self.scheduler.last_epoch), start=self.start, end=self.end,
                     total_steps=self.total_steps)

    def apply(self) -> None:
        set_weight_decay(self.optimizer, self.current())
