"""Structural reparameterization: the arithmetic and the model walk.

A layer that can be fused implements ``reparameterize()`` (in place, idempotent) and is then
responsible for its whole subtree. :func:`reparameterize_model` walks a model top-down, calls the
outermost such layers and does not descend into them.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ["fuse_bn", "bn_scale_shift", "fuse_linear_bn", "pad_1x1_to_kxk", "identity_kernel",
           "reparameterize_model", "reparameterize_children", "ReparamMixin", "new_conv_like",
           "assign", "dtype_name", "default_dtype_like", "scale_outputs", "fold_layer_scale"]


def _np(t) -> np.ndarray:
    return t.numpy() if isinstance(t, paddle.Tensor) else np.asarray(t)


def dtype_name(tensor: paddle.Tensor) -> str:
    """``"float32"`` for a float32 tensor (Paddle prints dtypes as ``paddle.float32``)."""
    return str(tensor.dtype).replace("paddle.", "")


@contextlib.contextmanager
def default_dtype_like(tensor: paddle.Tensor):
    """Layers created inside take ``tensor``'s dtype: a model built in float64 (the parity
    tests' exact comparison) stays float64 through ``reparameterize()``."""
    old = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype_name(tensor))
    try:
        yield
    finally:
        paddle.set_default_dtype(old)


def assign(param: paddle.Tensor, value) -> None:
    """``param.set_value`` from a (float64) array, rounded once to the parameter's dtype."""
    param.set_value(np.asarray(_np(value)).astype(dtype_name(param)))


def bn_scale_shift(bn: nn.Layer) -> Tuple[np.ndarray, np.ndarray]:
    """An eval-mode BatchNorm as ``y = x * scale + shift`` per channel (float64)."""
    mean = _np(bn._mean).astype(np.float64)
    var = _np(bn._variance).astype(np.float64)
    gamma = _np(bn.weight).astype(np.float64) if bn.weight is not None else np.ones_like(mean)
    beta = _np(bn.bias).astype(np.float64) if bn.bias is not None else np.zeros_like(mean)
    # Paddle's batch_norm kernels take epsilon as a C++ float: the train form adds 1e-5 rounded
    # to float32 even in a float64 model. Folding the same value keeps the fusion exact in
    # float64 where a BN's running variance is tiny (MobileOne's scale branches: ~1e-6, where
    # the float64 1e-5 left a 1e-8 relative gap).
    scale = gamma / np.sqrt(var + float(np.float32(bn._epsilon)))
    return scale, beta - mean * scale


def fuse_bn(kernel, bias, bn: nn.Layer) -> Tuple[np.ndarray, np.ndarray]:
    """Fold an eval-mode BatchNorm into the preceding conv: returns (kernel, bias) as float64
    numpy arrays (rounded to the model's dtype only when assigned, see :func:`assign`).

    y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
      = conv_{k * gamma / std}(x) + (b - mean) * gamma / std + beta
    """
    k = _np(kernel).astype(np.float64)
    b = np.zeros(k.shape[0]) if bias is None else _np(bias).astype(np.float64)
    scale, shift = bn_scale_shift(bn)
    fused_k = k * scale.reshape([-1] + [1] * (k.ndim - 1))
    fused_b = b * scale + shift
    return fused_k, fused_b


def fuse_linear_bn(linear: nn.Linear, bn: nn.Layer) -> nn.Linear:
    """One Linear computing ``bn(linear(x))`` in eval mode (Paddle's weight is [in, out])."""
    scale, shift = bn_scale_shift(bn)
    w = _np(linear.weight).astype(np.float64)
    b = _np(linear.bias).astype(np.float64) if linear.bias is not None else 0.0
    with default_dtype_like(linear.weight):
        fused = nn.Linear(w.shape[0], w.shape[1])
    assign(fused.weight, w * scale[None, :])
    assign(fused.bias, b * scale + shift)
    return fused


def pad_1x1_to_kxk(kernel, k: int) -> np.ndarray:
    """Zero-pad a 1x1 kernel to kxk (centre tap), so it can be added to a kxk kernel."""
    kern = _np(kernel)
    if kern.shape[-1] == k:
        return kern
    p = (k - kern.shape[-1]) // 2
    return np.pad(kern, [(0, 0), (0, 0), (p, p), (p, p)])


def identity_kernel(channels: int, groups: int = 1, k: int = 3, dtype=np.float64) -> np.ndarray:
    """A kxk (grouped) conv kernel that computes the identity, for fusing a skip/BN branch."""
    in_per_group = channels // groups
    kern = np.zeros((channels, in_per_group, k, k), dtype=dtype)
    for c in range(channels):
        kern[c, c % in_per_group, k // 2, k // 2] = 1.0
    return kern


def new_conv_like(conv: nn.Conv2D, weight: np.ndarray, bias: Optional[np.ndarray]) -> nn.Conv2D:
    """A Conv2D with ``conv``'s geometry holding the given (fused) weight and bias."""
    out_c, in_per_group = weight.shape[:2]
    with default_dtype_like(conv.weight):
        fused = nn.Conv2D(in_per_group * conv._groups, out_c, weight.shape[2:],
                          stride=conv._stride, padding=conv._padding, dilation=conv._dilation,
                          groups=conv._groups, bias_attr=None if bias is not None else False)
    assign(fused.weight, weight)
    if bias is not None:
        assign(fused.bias, bias)
    return fused


def scale_outputs(layer: nn.Layer, scale) -> nn.Layer:
    """A Conv2D or Linear like ``layer`` whose output channel c is multiplied by ``scale[c]``."""
    scale = _np(scale).astype(np.float64)
    w = _np(layer.weight).astype(np.float64)
    b = None if layer.bias is None else _np(layer.bias).astype(np.float64) * scale
    if isinstance(layer, nn.Conv2D):
        return new_conv_like(layer, w * scale.reshape([-1, 1, 1, 1]), b)
    if isinstance(layer, nn.Linear):
        with default_dtype_like(layer.weight):
            scaled = nn.Linear(w.shape[0], w.shape[1], bias_attr=None if b is not None else False)
        assign(scaled.weight, w * scale[None, :])  # Paddle's Linear weight is [in, out]
        if b is not None:
            assign(scaled.bias, b)
        return scaled
    raise TypeError("can fold a per-channel scale into a Conv2D or Linear, got "
                    f"{type(layer).__name__}")


def fold_layer_scale(owner: nn.Layer, scale_name: str, target_path: str) -> None:
    """Fold the LayerScale ``owner.<scale_name>`` (``y * gamma``) into the Conv2D/Linear at
    ``owner.<target_path>`` (dotted) that produces ``y``, and replace the scale by Identity.

    Valid only when nothing non-linear sits between the two (the caller's structure says so) and
    the target is already fused (BN folded). A no-op once folded.
    """
    scale = getattr(owner, scale_name)
    if isinstance(scale, nn.Identity):
        return
    *parents, attr = target_path.split(".")
    parent = owner
    for name in parents:
        parent = getattr(parent, name)
    setattr(parent, attr, scale_outputs(getattr(parent, attr), scale.gamma))
    setattr(owner, scale_name, nn.Identity())


def reparameterize_children(layer: nn.Layer) -> None:
    """Fuse ``layer``'s subtree: call the outermost reparameterizable descendants."""
    for child in layer.children():
        if callable(getattr(child, "reparameterize", None)):
            child.reparameterize()
        else:
            reparameterize_children(child)


def reparameterize_model(model: nn.Layer) -> nn.Layer:
    """Fuse every reparameterizable layer of ``model`` in place and return it.

    Refuses a model in train mode: fusion uses the BatchNorm running statistics, so a model that
    is still training would silently change behaviour. Calling it twice is a no-op.
    """
    if model.training:
        raise RuntimeError(
            "reparameterize_model() needs a model in eval mode: BatchNorm is folded using its "
            "running statistics, which only eval mode uses. Call model.eval() first.")
    params = model.parameters()
    with default_dtype_like(params[0]) if params else contextlib.nullcontext():
        reparameterize_children(model)
    if hasattr(model, "deploy"):
        model.deploy = True
    return model


class ReparamMixin:
    """Gives a model the ``reparameterize()`` verb (in place, eval mode only, idempotent)."""

    def reparameterize(self):
        return reparameterize_model(self)
