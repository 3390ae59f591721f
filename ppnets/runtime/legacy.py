"""Legacy (``.pdmodel``, ProgramDesc) export under Paddle 3.3, for Paddle Lite and PaddleSlim.

``with paddle.pir_utils.OldIrGuard(): paddle.jit.save(...)`` traces the model into the old IR.
In Paddle 3.3 several public functions are bound straight to ``paddle._C_ops`` (``F.gelu``,
``paddle.matmul``, ``paddle.multiply``, ``paddle.sum``, ``paddle.tanh``, ``F.sigmoid`` ...);
those accept eager tensors and PIR ``Value``\\ s only, so the old-IR trace stops with
``gelu(): argument (position 1) must be Value, but got Variable``. :func:`old_ir_ops` swaps them,
for the duration of the export only, for functions that append the equivalent old-IR operator
(``gelu``, ``matmul_v2``, ``elementwise_mul``, ``reduce_sum`` ...) when given an old-IR
``Variable`` and defer to the original otherwise.

Attention-bias tables (LeViT, EfficientFormer V1/V2) are exported as constants
(:func:`ppnets.layers.attention_bias.constant_attention_biases`): a ``gather`` of the table
makes Paddle Lite's x86 runtime abort on LeViT.
"""
from __future__ import annotations

import contextlib
import os
from typing import Sequence, Tuple

import paddle

from ppnets.layers.attention_bias import constant_attention_biases

__all__ = ["old_ir_ops", "save_legacy"]


def _is_old_ir_var(x) -> bool:
    from paddle.base import framework

    return (isinstance(x, framework.Variable) and not paddle.in_dynamic_mode()
            and not framework.in_pir_mode())


def _append(op_type: str, inputs: dict, attrs: dict, dtype):
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype=dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs)
    return out


def _unary(op_type, **fixed):
    def build(orig):
        def fn(x, *args, **kwargs):
            if not _is_old_ir_var(x):
                return orig(x, *args, **kwargs)
            return _append(op_type, {"X": x}, dict(fixed), x.dtype)
        return fn
    return build


def _gelu(orig):
    def fn(x, approximate=False, name=None):
        if not _is_old_ir_var(x):
            return orig(x, approximate, name) if name is not None else orig(x, approximate)
        return _append("gelu", {"X": x}, {"approximate": bool(approximate)}, x.dtype)
    return fn


def _matmul(orig):
    def fn(x, y, transpose_x=False, transpose_y=False, name=None):
        if not _is_old_ir_var(x) and not _is_old_ir_var(y):
            return orig(x, y, transpose_x, transpose_y)
        return _append("matmul_v2", {"X": x, "Y": y},
                       {"trans_x": bool(transpose_x), "trans_y": bool(transpose_y)}, x.dtype)
    return fn


def _binary(op_type):
    def build(orig):
        def fn(x, y, name=None):
            if not _is_old_ir_var(x) and not _is_old_ir_var(y):
                return orig(x, y)
            return _append(op_type, {"X": x, "Y": y}, {"axis": -1}, x.dtype)
        return fn
    return build


def _reduce(op_type):
    def build(orig):
        def fn(x, axis=None, dtype=None, keepdim=False, name=None):
            if not _is_old_ir_var(x):
                return orig(x, axis, dtype, keepdim) if op_type == "reduce_sum" else \
                    orig(x, axis, keepdim)
            if op_type != "reduce_sum":  # amax/amin-like signature: (x, axis, keepdim)
                dtype, keepdim = None, dtype if isinstance(dtype, bool) else keepdim
            dims = [] if axis is None else ([axis] if isinstance(axis, int) else list(axis))
            return _append(op_type, {"X": x}, {"dim": dims, "keep_dim": bool(keepdim),
                                               "reduce_all": not dims}, x.dtype)
        return fn
    return build


# (module path, attribute) -> shim builder. Only functions bound to _C_ops in Paddle 3.3.
_SHIMS = {
    "gelu": _gelu, "matmul": _matmul,
    "multiply": _binary("elementwise_mul"), "maximum": _binary("elementwise_max"),
    "minimum": _binary("elementwise_min"),
    "sum": _reduce("reduce_sum"),
    "tanh": _unary("tanh"), "sigmoid": _unary("sigmoid"), "exp": _unary("exp"),
    "sqrt": _unary("sqrt"), "rsqrt": _unary("rsqrt"), "log": _unary("log"),
    "abs": _unary("abs"), "sin": _unary("sin"),
}


def _modules():
    import paddle.nn.functional as F
    import paddle.tensor as T
    from paddle.nn.functional import activation
    from paddle.tensor import linalg, math, ops

    return [paddle, F, activation, T, linalg, math, ops, paddle.base.framework.Variable]


_C_BOUND = ("paddle.base.dygraph.generated_tensor_methods_patch", "paddle.base.libpaddle.pir.ops",
            "paddle._C_ops", "paddle.base.libpaddle.eager.ops")


def _c_bound(fn) -> bool:
    return getattr(fn, "__module__", None) in _C_BOUND or type(fn).__name__ == \
        "builtin_function_or_method"


@contextlib.contextmanager
def old_ir_ops():
    """Patch the ``_C_ops``-bound functions listed in ``_SHIMS`` so an old-IR trace works."""
    import paddle._C_ops as C
    from paddle.base.framework import Variable

    saved = []
    try:
        for name, build in _SHIMS.items():
            if getattr(C, name, None) is None:
                continue
            for mod in _modules():
                current = getattr(mod, name, None)
                if current is None or not _c_bound(current):
                    continue
                shim = build(current)
                saved.append((mod, name, current))
                setattr(mod, name, shim if mod is not Variable else
                        (lambda self, *a, _s=shim, **k: _s(self, *a, **k)))
        yield
    finally:
        for mod, name, value in reversed(saved):
            setattr(mod, name, value)


def save_legacy(model, input_size: Sequence[int], batch_size: int,
                out_dir: str, prefix: str = "model") -> Tuple[str, str]:
    """Write ``model.pdmodel`` + ``model.pdiparams`` (old IR) with a fixed input shape [batch, C,
    H, W] named ``x``; returns (model file, params file). Leaves Paddle in dynamic mode."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, prefix)
    spec = paddle.static.InputSpec([batch_size, *input_size], dtype="float32", name="x")
    # Attention-bias tables become constants (no gather op: Paddle Lite's x86 runtime aborts
    # on LeViT's).
    with constant_attention_biases(model), paddle.pir_utils.OldIrGuard(), old_ir_ops():
        paddle.jit.save(model, path, input_spec=[spec])
    if not paddle.in_dynamic_mode():  # a failed trace must not leave the process static
        paddle.disable_static()
    model_file, params_file = path + ".pdmodel", path + ".pdiparams"
    if not (os.path.isfile(model_file) and os.path.isfile(params_file)):
        raise RuntimeError(f"legacy export wrote no .pdmodel/.pdiparams in {out_dir}: found "
                           f"{sorted(os.listdir(out_dir))}")
    return model_file, params_file
