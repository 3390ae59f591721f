"""Optimizers and per-iteration learning-rate schedules built from the ``optim``/``sched`` sections.

The schedule is a :class:`paddle.optimizer.lr.LRScheduler` stepped once per training batch by
the training step (:func:`ppnets.engine.step.optimizer_step`); its state (``last_epoch`` =
iterations done) travels inside the optimizer's state dict, so a resumed run continues the
curve exactly.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import paddle

__all__ = ["WarmupSchedule", "build_scheduler", "build_optimizer", "lr_at", "RMSPropTF"]


def lr_at(step: int, *, name: str, base_lr: float, steps_per_epoch: int, epochs: int,
          warmup_epochs: float = 0.0, warmup_start_lr: float = 0.0,
          milestones: Sequence[int] = (), step_size: float = 30, gamma: float = 0.1,
          eta_min: float = 0.0) -> float:
    """Learning rate of iteration ``step`` (0-based).

    Warm-up: linear from ``warmup_start_lr`` (step 0) to ``base_lr`` (step ``warmup_steps``).
    Afterwards: ``cosine`` decays per iteration, ``eta_min + (base_lr - eta_min) * (1 + cos(pi *
    t / T)) / 2`` with ``t`` the iterations since warm-up and ``T`` the iterations after warm-up
    (torch's CosineAnnealingLR stepped per iteration, reaching ``eta_min`` at the end);
    ``step``/``multistep`` multiply by ``gamma`` at epoch boundaries (``gamma ** floor(epoch /
    step_size)`` / at each epoch in ``milestones``, like torch's per-epoch StepLR/MultiStepLR);
    ``step_size`` may be fractional, as timm's ``StepLRScheduler`` (``decay_t``; e.g. the
    MobileNetV3/EfficientNet recipe: 0.973 every 2.4 epochs), with ``epoch`` counted from the
    start of training, warm-up included; ``constant`` keeps ``base_lr``.
    """
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    total = max(1, epochs * steps_per_epoch)
    if step < warmup_steps:
        return warmup_start_lr + (base_lr - warmup_start_lr) * step / warmup_steps
    epoch = step // steps_per_epoch
    if name == "constant":
        return base_lr
    if name == "cosine":
        t = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return eta_min + (base_lr - eta_min) * 0.5 * (1.0 + math.cos(math.pi * t))
    if name == "linear":   # ShuffleNet V1/V2: linear decay to eta_min over the run
        t = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return eta_min + (base_lr - eta_min) * (1.0 - t)
    if name == "step":
        return base_lr * gamma ** (epoch // float(step_size))
    if name == "multistep":
        return base_lr * gamma ** sum(1 for m in milestones if epoch >= int(m))
    raise ValueError(f"unknown schedule {name!r}; expected cosine, linear, step, multistep or constant")


class WarmupSchedule(paddle.optimizer.lr.LRScheduler):
    """Per-iteration schedule :func:`lr_at` as a Paddle ``LRScheduler``."""

    def __init__(self, base_lr: float, steps_per_epoch: int, epochs: int, name: str = "cosine",
                 **kwargs):
        self.params = dict(name=name, base_lr=float(base_lr), steps_per_epoch=int(steps_per_epoch),
                           epochs=int(epochs), **kwargs)
        lr_at(0, **self.params)  # fail now on a bad name, not at the first step
        super().__init__(learning_rate=float(base_lr))

    def get_lr(self) -> float:
        return lr_at(self.last_epoch, **self.params)


def build_scheduler(sched: Mapping, base_lr: float, epochs: int,
                    steps_per_epoch: int) -> WarmupSchedule:
    return WarmupSchedule(
        base_lr=base_lr, steps_per_epoch=steps_per_epoch, epochs=epochs, name=sched["name"],
        warmup_epochs=float(sched.get("warmup_epochs", 0.0) or 0.0),
        warmup_start_lr=float(sched.get("warmup_start_lr", 0.0) or 0.0),
        milestones=list(sched.get("milestones") or []),
        step_size=_positive(sched.get("step_size", 30), "sched.step_size"),
        gamma=float(sched.get("gamma", 0.1)),
        eta_min=float(sched.get("eta_min", 0.0)))


def _positive(value, key: str) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{key} must be > 0 (epochs between decays), got {value!r}")
    return value


class RMSPropTF(paddle.optimizer.RMSProp):
    """RMSProp with TensorFlow's semantics (``tf.compat.v1.train.RMSPropOptimizer``, used by the
    MobileNetV2/V3 and EfficientNet recipes; timm's ``RMSpropTF``)::

        ms  = rho * ms + (1 - rho) * g^2            (ms starts at 1)
        mom = momentum * mom + lr * g / sqrt(ms + eps)
        w   = w - mom

    ``paddle.optimizer.RMSProp`` (centered=False) computes the same update -- epsilon inside the
    square root, the learning rate inside the momentum buffer -- but starts the mean square at 0,
    which makes the first steps ~1/sqrt(1 - rho) ~ 3x (rho 0.9) larger than TF's and, with the
    small epsilon of the TF recipes, can blow up a freshly initialised network. This subclass
    only creates the mean-square accumulator filled with ones. ``weight_decay`` (a float) is
    L2 added to the gradient, as timm's ``weight_decay`` without ``decoupled_decay``.
    """

    def _create_accumulators(self, block, parameters):
        if isinstance(parameters, dict):
            parameters = parameters.get("params")
        for p in parameters:
            if p.name in self._already_create_accumulator:
                continue
            if self._multi_precision and self._is_dtype_fp16_or_bf16(p.dtype):
                raise NotImplementedError("RMSPropTF with multi_precision master weights")
            # created first with ones; the parent's call then finds it and keeps it
            self._add_accumulator(self._mean_square_acc_str, p, fill_value=1.0)
        super()._create_accumulators(block, parameters)


def build_grad_clip(optim: Mapping):
    """``paddle.nn.ClipGradByGlobalNorm(optim.clip_grad_norm)``, or None when it is unset/0.

    Clipping by the global norm of all gradients together, as ``torch.nn.utils.
    clip_grad_norm_`` (timm's ``--clip-grad X --clip-mode norm``): if the norm exceeds the
    threshold every gradient is scaled by ``threshold / norm``. It acts on the gradients the
    optimizer sees, before weight decay is added (Paddle applies ``grad_clip`` before the L2
    regulariser), and after AMP loss scaling is undone."""
    clip = optim.get("clip_grad_norm")
    if clip is None or float(clip) == 0.0:
        return None
    if float(clip) < 0:
        raise ValueError(f"optim.clip_grad_norm must be > 0 (or null to disable), got {clip!r}")
    return paddle.nn.ClipGradByGlobalNorm(clip_norm=float(clip))


def build_optimizer(optim: Mapping, parameters, learning_rate):
    """``sgd`` (``paddle.optimizer.Momentum``; plain ``SGD`` when momentum is 0), ``adam``,
    ``adamw`` or ``rmsprop_tf`` (:class:`RMSPropTF`; ``rho`` the mean-square decay, ``eps``,
    ``momentum``). ``weight_decay`` is L2 regularisation added to the gradient for sgd/adam/
    rmsprop_tf (as in torch.optim.SGD/Adam, timm's RMSpropTF) and decoupled decay for adamw.
    ``clip_grad_norm`` clips the global gradient norm (:func:`build_grad_clip`)."""
    name = optim["name"]
    wd = float(optim.get("weight_decay", 0.0) or 0.0)
    clip = build_grad_clip(optim)
    if name == "rmsprop_tf":
        return RMSPropTF(learning_rate=learning_rate, rho=float(optim.get("rho", 0.9)),
                         epsilon=float(optim.get("eps", 1e-3)),
                         momentum=float(optim.get("momentum", 0.9) or 0.0),
                         centered=False, parameters=parameters, weight_decay=wd or None,
                         grad_clip=clip)
    if name == "sgd":
        momentum = float(optim.get("momentum", 0.0) or 0.0)
        if momentum == 0.0:
            if optim.get("nesterov"):
                raise ValueError("optim.nesterov=true needs optim.momentum > 0")
            return paddle.optimizer.SGD(learning_rate=learning_rate, parameters=parameters,
                                        weight_decay=wd or None, grad_clip=clip)
        return paddle.optimizer.Momentum(learning_rate=learning_rate, momentum=momentum,
                                         parameters=parameters,
                                         use_nesterov=bool(optim.get("nesterov", False)),
                                         weight_decay=wd or None, grad_clip=clip)
    beta1, beta2 = (float(b) for b in optim.get("betas", (0.9, 0.999)))
    eps = float(optim.get("eps", 1e-8))
    if name == "adam":
        return paddle.optimizer.Adam(learning_rate=learning_rate, beta1=beta1, beta2=beta2,
                                     epsilon=eps, parameters=parameters, weight_decay=wd or None,
                                     grad_clip=clip)
    if name == "adamw":
        return paddle.optimizer.AdamW(learning_rate=learning_rate, beta1=beta1, beta2=beta2,
                                      epsilon=eps, parameters=parameters, weight_decay=wd,
                                      grad_clip=clip)
    raise ValueError(f"unknown optimizer {name!r}; expected sgd, adam, adamw or rmsprop_tf")
