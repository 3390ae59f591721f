"""Weight initialisers the families share, each named after the reference it reproduces.

A model trained from scratch should start where its reference starts: Paddle's defaults
(Xavier for Linear, Kaiming normal for Conv2D) differ from PyTorch's and timm's, and for some
families (LeViT, RepViT) the difference compounds through the network.
"""
from __future__ import annotations

import math
from typing import Sequence, Type

import numpy as np
import paddle.nn as nn

__all__ = ["init_trunc_normal", "torch_default_init", "init_weights_fan_out"]


def init_trunc_normal(model: nn.Layer, std: float = 0.02,
                      layer_types: Sequence[Type[nn.Layer]] = (nn.Linear,)) -> None:
    """timm's ViT-style init: truncated normal weights (std 0.02), zero biases, for every layer
    of ``layer_types`` below ``model`` (EfficientFormer V1/V2: Linear; FasterNet: Conv2D and
    Linear)."""
    weight_init = nn.initializer.TruncatedNormal(std=std)
    zeros = nn.initializer.Constant(0.0)
    for layer in model.sublayers():
        if isinstance(layer, tuple(layer_types)):
            weight_init(layer.weight)
            if layer.bias is not None:
                zeros(layer.bias)


def torch_default_init(model: nn.Layer,
                       layer_types: Sequence[Type[nn.Layer]] = (nn.Linear, nn.Conv2D)) -> None:
    """PyTorch's default init, uniform with bound 1/sqrt(fan_in) for weights and biases, for
    every layer of ``layer_types`` below ``model`` (and ``model`` itself). timm's LeViT and
    RepViT keep it; Paddle's defaults are ~1.7x larger per layer, which through LeViT's
    BN-normalised residual stream gives far larger attention logits, and through RepViT's
    residual + SE stack amplifies rounding beyond float32 use."""
    for layer in model.sublayers(include_self=True):
        if not isinstance(layer, tuple(layer_types)):
            continue
        if isinstance(layer, nn.Linear):
            fan_in = layer.weight.shape[0]  # Paddle Linear weight is [in, out]
        else:
            fan_in = int(np.prod(layer.weight.shape[1:]))
        bound = 1.0 / math.sqrt(fan_in)
        nn.initializer.Uniform(-bound, bound)(layer.weight)
        if layer.bias is not None:
            nn.initializer.Uniform(-bound, bound)(layer.bias)


def init_weights_fan_out(model: nn.Layer, linear_std: float = 0.01) -> None:
    """timm's ByobNet initialisation (the reference for RepVGG and MobileOne): conv weights
    N(0, 2 / fan_out) with fan_out = k*k*out/groups, Linear N(0, linear_std), biases zero.
    BatchNorm keeps its default (weight 1, bias 0)."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.Conv2D):
            out_c, _, kh, kw = layer.weight.shape
            std = float(np.sqrt(2.0 / (kh * kw * out_c / layer._groups)))
            nn.initializer.Normal(0.0, std)(layer.weight)
            if layer.bias is not None:
                nn.initializer.Constant(0.0)(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.initializer.Normal(0.0, linear_std)(layer.weight)
            if layer.bias is not None:
                nn.initializer.Constant(0.0)(layer.bias)
