"""Small shape helpers shared by the model files."""
from __future__ import annotations

from typing import Optional

import paddle

__all__ = ["make_divisible", "channel_shuffle", "to_2tuple"]


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None,
                   round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10%.

    The rule of the MobileNet reference code (and timm's ``make_divisible``).
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def channel_shuffle(x, groups: int):
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> transpose of the (g, c) grid.

    Written with reshape/transpose only (no flatten) so the exported graph runs in Paddle Lite.
    """
    n, c, h, w = x.shape
    x = paddle.reshape(x, [-1, groups, c // groups, h, w])
    x = paddle.transpose(x, [0, 2, 1, 3, 4])
    return paddle.reshape(x, [-1, c, h, w])


def to_2tuple(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def known_size(dim):
    """A tensor dimension as a Python int, or None when it is only known at run time (while
    tracing for export with a dynamic batch, shapes can be -1 or graph values)."""
    return dim if isinstance(dim, int) and dim > 0 else None
