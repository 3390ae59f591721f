"""The one ONNX export of a deploy-form model: ``paddle.onnx.export`` (paddle2onnx), made exact.

Every ONNX file ppnets writes -- ``ppnets export``, the latency harness, the peer comparison,
the op profiles -- comes from :func:`export_onnx`, which adds three things to paddle2onnx:

* **GroupNorm's epsilon.** paddle2onnx 2.1 writes Paddle's ``group_norm`` as an ONNX
  ``InstanceNormalization`` over a reshaped tensor, and drops its ``epsilon`` attribute to 0.0
  attribute to an uninitialised value (measured on PoolFormer, whose GroupNorms have epsilon
  1e-5: 0.0 in one export, -9.7e-07 in the next; a negative epsilon gives NaN for some inputs).
  The exported nodes get the model's own epsilon back; a model whose group and instance norms
  disagree on epsilon is refused rather than guessed.
* **LeakyReLU's slope.** paddle2onnx 2.1 writes ``leaky_relu`` as ``LeakyRelu`` with ``alpha``
  0.0 -- a plain ReLU (PIR stores ``negative_slope`` as a double; Paddle Inference's own
  conv + leaky_relu fuse pass trips on the same attribute, ``KNOWN_PASS_CRASHES``). The nodes get
  the model's ``nn.LeakyReLU`` slope back, under the same one-value rule.
* **No installs at run time.** paddle2onnx switches on Polygraphy's automatic ``pip install``
  of what its constant folding lacks; it is kept off, so a missing package skips the folding
  (paddle2onnx says so) instead of changing the user's environment. The ``onnx`` extra declares
  every one of them (tests/deploy/test_onnx_runtime_installs.py).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import paddle
import paddle.nn as nn

__all__ = ["export_onnx", "no_installs_at_run_time", "restore_dropped_attributes"]


@contextlib.contextmanager
def no_installs_at_run_time() -> Iterator[None]:
    """Polygraphy's automatic installs off (``POLYGRAPHY_AUTOINSTALL_DEPS``, read when
    ``polygraphy.config`` is first imported) for the duration; the variable is restored."""
    before = os.environ.get("POLYGRAPHY_AUTOINSTALL_DEPS")
    try:
        from polygraphy import config
    except ImportError:
        config = None
    if config is not None:
        config.AUTOINSTALL_DEPS = False
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("POLYGRAPHY_AUTOINSTALL_DEPS", None)
        else:
            os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = before


# ONNX op -> (its attribute that paddle2onnx 2.1 loses, the Paddle layers that export to it and
# the layer attribute holding the value)
_DROPPED_ATTRIBUTES = (
    ("InstanceNormalization", "epsilon",
     (nn.GroupNorm, nn.InstanceNorm1D, nn.InstanceNorm2D, nn.InstanceNorm3D), "_epsilon",
     nn.GroupNorm),
    ("LeakyRelu", "alpha", (nn.LeakyReLU,), "_negative_slope", nn.LeakyReLU),
)


def _one_value(model: nn.Layer, layer_types, field: str, what: str) -> float:
    values = {float(getattr(layer, field)) for layer in model.sublayers()
              if isinstance(layer, layer_types)}
    if len(values) > 1:
        raise ValueError(
            f"{type(model).__name__} has {what} layers with different values of {field.strip('_')} "
            f"{sorted(values)}: paddle2onnx loses them, and the exported nodes cannot be matched "
            "to their layers. Use one value for all of them, or export without ONNX.")
    return values.pop()


def restore_dropped_attributes(onnx_file: str, model: nn.Layer) -> int:
    """Give the nodes paddle2onnx wrote for ``model``'s GroupNorms and LeakyReLUs the model's
    epsilon and slope (module docstring); returns how many attributes were changed."""
    fixes = []
    for op_type, attr_name, layer_types, field, trigger in _DROPPED_ATTRIBUTES:
        if any(isinstance(layer, trigger) for layer in model.sublayers()):
            fixes.append((op_type, attr_name,
                          _one_value(model, layer_types, field, trigger.__name__)))
    if not fixes:
        return 0
    import onnx

    graph = onnx.load(onnx_file)
    changed = 0
    for op_type, attr_name, value in fixes:
        for node in graph.graph.node:
            if node.op_type != op_type:
                continue
            attrs = {a.name: a for a in node.attribute}
            if attr_name not in attrs:
                node.attribute.append(onnx.helper.make_attribute(attr_name, value))
                changed += 1
            elif attrs[attr_name].f != value:
                attrs[attr_name].f = value
                changed += 1
    if changed:
        onnx.save(graph, onnx_file)
    return changed


def export_onnx(model: nn.Layer, input_shape: Sequence[int], prefix: str,
                opset: int = 13) -> str:
    """Write ``prefix + ".onnx"`` for ``model`` (deploy form, eval mode) at the fixed input
    shape ``[batch, C, H, W]`` (input name ``x``); returns the file's path."""
    spec = paddle.static.InputSpec(list(input_shape), dtype="float32", name="x")
    with no_installs_at_run_time():
        paddle.onnx.export(model, prefix, input_spec=[spec], opset_version=opset)
    path = prefix + ".onnx"
    restore_dropped_attributes(path, model)
    return path
