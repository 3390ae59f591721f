"""Learned relative-position attention biases (LeViT, EfficientFormer V1/V2).

The bias table is gathered by a relative-position index. In eval mode the gathered bias is
computed once and cached (a non-persistable buffer: never in ``state_dict()``, a constant of an
exported program); ``train()``, ``eval()`` and ``set_state_dict()`` on the owning model invalidate
the cache, so a stale bias can never be used after the table changes.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Tuple

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ["relative_bias_index", "AttentionBiasCache", "AttentionBiasOwner",
           "constant_attention_biases"]


def relative_bias_index(key_res: Tuple[int, int], query_step: int = 1) -> np.ndarray:
    """Index into a ``[heads, kh * kw]`` bias table for every (query, key) pair: the table holds
    one bias per absolute 2D offset ``(|dy|, |dx|)``, stored at ``|dy| * kw + |dx|``.

    Keys sit on the full ``key_res`` grid; queries on every ``query_step``-th row/column of it
    (``query_step=2`` for EfficientFormerV2's downsampling attention). Returns ``[Nq, Nk]`` int64.
    """
    kh, kw = key_res
    ky, kx = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    qy, qx = np.meshgrid(np.arange(0, kh, query_step), np.arange(0, kw, query_step), indexing="ij")
    dy = np.abs(qy.reshape(-1, 1) - ky.reshape(1, -1))
    dx = np.abs(qx.reshape(-1, 1) - kx.reshape(1, -1))
    return (dy * kw + dx).astype("int64")


class AttentionBiasCache:
    """Mixin for an attention ``nn.Layer`` with a learned bias table.

    Owns ``attention_biases`` ([heads, table], a parameter, timm's name),
    ``attention_bias_idxs`` ([Nq, Nk], a non-persistable buffer) and ``attention_bias_cache``
    (the gathered eval-mode bias or None, a non-persistable buffer: never in ``state_dict()``,
    but ``paddle.jit.save`` picks it up as a constant of the exported program).
    :meth:`attention_bias` returns the gathered ``[heads, Nq, Nk]`` bias: recomputed on every call
    in train mode (so gradients reach the table), computed once and reused in eval mode (eval
    mode therefore treats the table as a constant).
    """

    def _init_attention_bias(self, num_heads: int, table_size: int, index: np.ndarray):
        self.attention_biases = self.create_parameter(
            [num_heads, table_size], default_initializer=nn.initializer.Constant(0.0))
        self.register_buffer("attention_bias_idxs", paddle.to_tensor(index), persistable=False)
        self.register_buffer("attention_bias_cache", None, persistable=False)

    def _gather_attention_bias(self):
        heads = self.attention_biases.shape[0]
        nq, nk = self.attention_bias_idxs.shape
        flat = paddle.gather(self.attention_biases,
                             paddle.reshape(self.attention_bias_idxs, [-1]), axis=1)
        return paddle.reshape(flat, [heads, nq, nk])

    def clear_attention_bias_cache(self):
        self.attention_bias_cache = None

    def build_attention_bias_cache(self):
        """Compute the eval-mode bias now (eagerly), e.g. before ``paddle.jit.save``."""
        with paddle.no_grad():
            self.attention_bias_cache = self._gather_attention_bias().detach()

    def attention_bias(self):
        if self.training:
            if self.attention_bias_cache is not None and paddle.in_dynamic_mode():
                self.attention_bias_cache = None
            return self._gather_attention_bias()
        cached = self.attention_bias_cache
        if not paddle.in_dynamic_mode():
            # Being traced for export: a warm cache becomes a constant of the graph; without one
            # the gather is traced (still correct), since a traced value cannot be cached.
            return cached if cached is not None else self._gather_attention_bias()
        if cached is None or cached.dtype != self.attention_biases.dtype or \
                str(cached.place) != str(self.attention_biases.place):
            self.build_attention_bias_cache()
        return self.attention_bias_cache

    def set_state_dict(self, *args, **kwargs):
        self.clear_attention_bias_cache()
        return super().set_state_dict(*args, **kwargs)


class AttentionBiasOwner:
    """Model mixin: ``train()``, ``eval()`` and ``set_state_dict()`` drop every stale attention-bias
    cache; ``eval()`` also rebuilds them eagerly so that an export right after it gets constants.

    Needed because Paddle's ``Layer.train()/eval()`` only flip ``training`` on sublayers without
    calling their methods.
    """

    def _refresh_attention_bias_caches(self):
        for layer in self.sublayers(include_self=True):
            if isinstance(layer, AttentionBiasCache):
                layer.clear_attention_bias_cache()
                if not layer.training and paddle.in_dynamic_mode():
                    layer.build_attention_bias_cache()

    def train(self, mode: bool = True):
        # Paddle 3.0's Layer.train() takes no mode and returns None: self, as Paddle 3.3 does
        super().train() if mode else super().eval()
        self._refresh_attention_bias_caches()
        return self

    def eval(self):
        super().eval()
        self._refresh_attention_bias_caches()
        return self

    def set_state_dict(self, *args, **kwargs):
        result = super().set_state_dict(*args, **kwargs)
        self._refresh_attention_bias_caches()
        return result


@contextlib.contextmanager
def constant_attention_biases(model: nn.Layer):
    """For an old-IR export trace (``ppnets.deploy.save_legacy``): every eval-mode
    :class:`AttentionBiasCache` in ``model`` returns its eagerly gathered bias, so the program
    holds the bias as a constant instead of a ``gather`` of the table.

    This also covers subclasses that gather while tracing (LeViT does, because a PIR
    ``paddle.jit.save`` cannot capture the cached tensor); the old IR can, and Paddle Lite's x86
    runtime aborts on LeViT's gather (``CheckShape``). The instance attribute set here shadows
    the class method and is removed on exit.
    """
    layers = [layer for layer in model.sublayers(include_self=True)
              if isinstance(layer, AttentionBiasCache) and not layer.training]
    for layer in layers:
        layer.build_attention_bias_cache()
        layer.attention_bias = functools.partial(AttentionBiasCache.attention_bias, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.attention_bias
