"""Squeeze-and-excitation (Hu et al., arXiv:1709.01507) with a configurable gate."""
from __future__ import annotations

from typing import Optional

import paddle.nn as nn

from .activations import create_act
from .helpers import make_divisible

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Layer):
    """Global average pool -> 1x1 conv (reduce) -> act -> 1x1 conv (expand) -> gate -> scale.

    ``gate='sigmoid'`` is the original SE; ``gate='hard_sigmoid'`` is MobileNetV3's
    ``relu6(x + 3) / 6``. The reduced width is ``rd_channels`` if given, else
    ``make_divisible(channels * rd_ratio, rd_divisor)`` (``rd_divisor=1`` rounds plainly).
    Parameter names follow timm: ``conv_reduce``, ``conv_expand``.
    """

    def __init__(self, channels: int, rd_ratio: float = 0.25, rd_channels: Optional[int] = None,
                 rd_divisor: int = 8, act="relu", gate="sigmoid", bias: bool = True):
        super().__init__()
        if rd_channels is None:
            rd_channels = (make_divisible(channels * rd_ratio, rd_divisor) if rd_divisor > 1
                           else int(round(channels * rd_ratio)))
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.conv_reduce = nn.Conv2D(channels, rd_channels, 1, bias_attr=None if bias else False)
        self.act = create_act(act)
        self.conv_expand = nn.Conv2D(rd_channels, channels, 1, bias_attr=None if bias else False)
        self.gate = create_act(gate)

    def forward(self, x):
        s = self.pool(x)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * self.gate(s)
