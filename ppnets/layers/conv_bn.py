"""Conv-BN(-Act), the building block of every CNN in the zoo, with exact BN folding."""
from __future__ import annotations

from typing import Optional, Union

import paddle.nn as nn

from .activations import create_act
from .reparam import assign, bn_scale_shift, default_dtype_like, fuse_bn, new_conv_like

__all__ = ["ConvBN", "BNLinear"]


class ConvBN(nn.Layer):
    """Conv2D (no bias) -> BatchNorm2D -> activation.

    ``reparameterize()`` folds the BN into the conv (conv gains a bias, ``bn`` becomes Identity
    and leaves the state dict). ``deploy=True`` builds the folded form directly.
    Parameter names: ``conv.weight``, ``bn.weight``/``bn.bias``/``bn._mean``/``bn._variance``.
    ``bias=True`` gives the conv its own bias before the BN (timm's ``ConvNorm``, EfficientFormerV2).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=1, stride=1,
                 padding: Optional[Union[int, str]] = None, dilation: int = 1, groups: int = 1,
                 act=None, deploy: bool = False, bn_eps: float = 1e-5, bn_momentum: float = 0.9,
                 bn_weight_init: Optional[float] = None, bias: bool = False):
        super().__init__()
        if padding is None:
            k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
            padding = ((k - 1) * dilation) // 2
        self.deploy = deploy
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, dilation=dilation, groups=groups,
                              bias_attr=None if (deploy or bias) else False)
        if deploy:
            self.bn = nn.Identity()
        else:
            # Paddle's momentum is the weight of the old statistic (torch's 0.1 == Paddle's 0.9).
            self.bn = nn.BatchNorm2D(out_channels, momentum=bn_momentum, epsilon=bn_eps)
            if bn_weight_init is not None:
                self.bn.weight.set_value(self.bn.weight.numpy() * 0 + bn_weight_init)
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def fused_kernel_bias(self):
        """The (kernel, bias) this conv+BN computes in eval mode, as numpy arrays."""
        if isinstance(self.bn, nn.Identity):
            bias = self.conv.bias.numpy() if self.conv.bias is not None else None
            return self.conv.weight.numpy(), bias
        return fuse_bn(self.conv.weight, self.conv.bias, self.bn)

    def reparameterize(self):
        if isinstance(self.bn, nn.Identity):
            return
        kernel, bias = self.fused_kernel_bias()
        self.conv = new_conv_like(self.conv, kernel, bias)
        self.bn = nn.Identity()
        self.deploy = True



class BNLinear(nn.Layer):
    """BatchNorm1D -> Linear, foldable into one Linear (LeViT/RepViT classifier heads)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, deploy: bool = False,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.deploy = deploy
        self.bn = nn.Identity() if deploy else nn.BatchNorm1D(in_features, epsilon=bn_eps)
        self.l = nn.Linear(in_features, out_features, bias_attr=None if (bias or deploy) else False)

    def forward(self, x):
        return self.l(self.bn(x))

    def reparameterize(self):
        if isinstance(self.bn, nn.Identity):
            return
        scale, shift = bn_scale_shift(self.bn)
        w = self.l.weight.numpy().astype("float64")  # Paddle Linear weight is [in, out]
        b = self.l.bias.numpy().astype("float64") if self.l.bias is not None else 0.0
        with default_dtype_like(self.l.weight):
            fused = nn.Linear(w.shape[0], w.shape[1])
        assign(fused.weight, w * scale[:, None])
        assign(fused.bias, shift @ w + b)
        self.l = fused
        self.bn = nn.Identity()
        self.deploy = True
