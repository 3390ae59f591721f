"""The multi-branch conv block of RepVGG (arXiv:2101.03697) and MobileOne (arXiv:2206.04861).

Train form: the sum of ``num_conv_branches`` parallel kxk conv-BN branches, an optional 1x1
conv-BN branch (RepVGG's "1x1 branch", MobileOne's "scale branch") and an optional BN-only skip
branch (when input and output shapes agree), followed by an optional attention layer (SE) and the
activation. Every branch is linear in the input in eval mode, so ``reparameterize()`` sums them
into ONE kxk conv with bias.

The fused conv lives where the first kxk branch was (``conv_kxk.0``, a :class:`ConvBN` with its BN
folded), so the deploy state dict is the train one minus the extra branches plus a conv bias, and
the deploy forward is the train forward with one branch — there is no second code path.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle.nn as nn

from .activations import create_act
from .conv_bn import ConvBN
from .drop import DropPath
from .reparam import assign, default_dtype_like, fuse_bn, identity_kernel, pad_1x1_to_kxk

__all__ = ["RepConvBN"]


class RepConvBN(nn.Layer):
    """Reparameterizable kxk conv: sum of kxk conv-BN branches + 1x1 conv-BN + BN skip.

    Args:
        num_conv_branches: parallel kxk conv-BN branches (MobileOne's over-parameterization factor
            k; RepVGG uses 1).
        use_scale: add the 1x1 conv-BN branch (only when ``kernel_size > 1``; for a 1x1 conv it
            would duplicate the main branch).
        use_identity: add the BN skip branch when ``in_channels == out_channels`` and
            ``stride == 1``.
        attn: a layer applied to the branch sum before the activation (SE), or None.
        drop_path_rate: stochastic depth on the conv branches' sum, only where there is a skip
            branch (as timm; not in the official RepVGG/MobileOne code).
        deploy: build the fused form (one kxk conv with bias).

    Parameter names: ``conv_kxk.<i>.conv.weight``, ``conv_kxk.<i>.bn.*``, ``conv_scale.*``,
    ``identity.*`` (a BatchNorm2D), ``attn.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, num_conv_branches: int = 1, use_scale: bool = True,
                 use_identity: bool = True, act="relu", attn: Optional[nn.Layer] = None,
                 drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        if num_conv_branches < 1:
            raise ValueError(f"num_conv_branches must be >= 1, got {num_conv_branches}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = groups
        self.deploy = deploy
        has_identity = use_identity and in_channels == out_channels and stride == 1
        self.conv_kxk = nn.LayerList([
            ConvBN(in_channels, out_channels, kernel_size, stride=stride, groups=groups,
                   deploy=deploy)
            for _ in range(1 if deploy else num_conv_branches)])
        if use_scale and kernel_size > 1 and not deploy:
            self.conv_scale = ConvBN(in_channels, out_channels, 1, stride=stride, groups=groups)
        else:
            self.conv_scale = None
        self.identity = nn.BatchNorm2D(out_channels) if has_identity and not deploy else None
        self.drop_path = (DropPath(drop_path_rate) if drop_path_rate > 0 and has_identity
                          and not deploy else nn.Identity())
        self.attn = attn if attn is not None else nn.Identity()
        self.act = create_act(act)

    def forward(self, x):
        out = self.conv_kxk[0](x)
        for branch in self.conv_kxk[1:]:
            out = out + branch(x)
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        out = self.drop_path(out)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(self.attn(out))

    def fused_kernel_bias(self):
        """(kernel, bias) of the single kxk conv equal to all branches in eval mode."""
        k = self.kernel_size
        kernel = np.zeros([self.out_channels, self.in_channels // self.groups, k, k])
        bias = np.zeros([self.out_channels])
        for branch in self.conv_kxk:
            w, b = branch.fused_kernel_bias()
            kernel += w
            bias += 0.0 if b is None else b
        if self.conv_scale is not None:
            w, b = self.conv_scale.fused_kernel_bias()
            kernel += pad_1x1_to_kxk(w, k)
            bias += b
        if self.identity is not None:
            w, b = fuse_bn(identity_kernel(self.in_channels, self.groups, k), None, self.identity)
            kernel += w
            bias += b
        return kernel, bias

    def reparameterize(self):
        if self.deploy:
            return
        kernel, bias = self.fused_kernel_bias()
        with default_dtype_like(self.conv_kxk[0].conv.weight):
            fused = ConvBN(self.in_channels, self.out_channels, self.kernel_size,
                           stride=self.stride, groups=self.groups, deploy=True)
        assign(fused.conv.weight, kernel)
        assign(fused.conv.bias, bias)
        self.conv_kxk = nn.LayerList([fused])
        for name in ("conv_scale", "identity"):
            if getattr(self, name) is not None:
                delattr(self, name)
                setattr(self, name, None)
        self.drop_path = nn.Identity()
        self.deploy = True

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, groups={self.groups}, branches={len(self.conv_kxk)}, "
                f"deploy={self.deploy}")


