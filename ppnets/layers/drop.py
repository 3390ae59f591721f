"""Stochastic depth and layer scale."""
from __future__ import annotations

import paddle
import paddle.nn as nn

__all__ = ["DropPath", "drop_path", "LayerScale"]


def drop_path(x, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True):
    """Drop whole residual branches per sample (Huang et al., 2016), as timm does."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.bernoulli(paddle.full(shape, keep_prob, dtype=x.dtype))
    if scale_by_keep and keep_prob > 0.0:
        mask = mask / keep_prob
    return x * mask


class DropPath(nn.Layer):
    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = float(drop_prob)
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self):
        return f"drop_prob={self.drop_prob:.3f}"


class LayerScale(nn.Layer):
    """Per-channel learnable scale (CaiT, arXiv:2103.17239).

    ``data_format='NCHW'`` scales dim 1 of a 4D map, ``'NLC'`` the last dim of tokens. The
    parameter is named ``gamma`` in both cases.
    """

    def __init__(self, dim: int, init_value: float = 1e-5, data_format: str = "NLC"):
        super().__init__()
        if data_format not in ("NCHW", "NLC"):
            raise ValueError(f"data_format must be 'NCHW' or 'NLC', got {data_format!r}")
        self.data_format = data_format
        self.gamma = self.create_parameter(
            [dim], default_initializer=nn.initializer.Constant(init_value))

    def forward(self, x):
        if self.data_format == "NCHW":
            return x * self.gamma.reshape([1, -1, 1, 1])
        return x * self.gamma
