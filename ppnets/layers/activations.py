"""Activation factory.

Every activation is built by name so that block code stays declarative and export stays under
control: Paddle Lite 2.13 aborts on the ``relu6`` op, so ``relu6`` here is a clip to [0, 6], and
the hard-sigmoid uses the MobileNetV3 paper's slope of 1/6 (``relu6(x + 3) / 6``), not the 0.2
slope found in some Paddle code.
"""
from __future__ import annotations

from typing import Callable, Dict, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["create_act", "ReLU6", "HardSigmoid", "HardSwish", "SiLU", "register_act",
           "hard_sigmoid"]


def hard_sigmoid(x):
    """``relu6(x + 3) / 6`` (MobileNetV3, arXiv:1905.02244), expressed as one hard_sigmoid op."""
    return F.hardsigmoid(x, slope=1.0 / 6.0, offset=0.5)


class ReLU6(nn.Layer):
    """min(max(x, 0), 6) as a ``clip`` op, which every export target supports."""

    def forward(self, x):
        return paddle.clip(x, 0.0, 6.0)


class HardSigmoid(nn.Layer):
    def forward(self, x):
        return hard_sigmoid(x)


class HardSwish(nn.Layer):
    """x * relu6(x + 3) / 6 (the paper's h-swish); Paddle's hardswish op has exactly this form."""

    def forward(self, x):
        return F.hardswish(x)


class SiLU(nn.Layer):
    """x * sigmoid(x), written as the two ops. Paddle Inference (3.3) has no oneDNN kernel for
    ``silu`` (a plain kernel plus a layout conversion on each side: MobileViT-XXS ran ~1.3x
    slower) and Paddle Lite 2.13 aborts on the ``swish`` op; sigmoid and multiply run in both."""

    def forward(self, x):
        return x * F.sigmoid(x)


class GELUTanh(nn.Layer):
    def forward(self, x):
        return F.gelu(x, approximate=True)


_ACTS: Dict[str, Callable[[], nn.Layer]] = {
    "relu": nn.ReLU,
    "relu6": ReLU6,
    "gelu": nn.GELU,  # exact (erf) GELU, as timm and torch default to
    "gelu_tanh": GELUTanh,
    "silu": SiLU,
    "swish": SiLU,
    "hard_swish": HardSwish,
    "hardswish": HardSwish,
    "hard_sigmoid": HardSigmoid,
    "hardsigmoid": HardSigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "prelu": nn.PReLU,
    "identity": nn.Identity,
}


def register_act(name: str, factory: Callable[[], nn.Layer]) -> None:
    _ACTS[name] = factory


def create_act(act: Union[None, str, nn.Layer, type]) -> nn.Layer:
    """Build an activation layer from a name, a layer class, an instance, or None (identity)."""
    if act is None or act is False:
        return nn.Identity()
    if isinstance(act, nn.Layer):
        return act
    if isinstance(act, type) and issubclass(act, nn.Layer):
        return act()
    key = str(act).lower()
    if key not in _ACTS:
        raise ValueError(f"Unknown activation {act!r}; expected one of {sorted(_ACTS)} "
                         "or an nn.Layer class/instance.")
    return _ACTS[key]()
