"""The deploy form of a model as a Paddle Inference program.

:func:`deploy_form` is the model every runtime measures or verifies: eval mode, re-parameterized
(:func:`ppnets.reparameterize_model`), a copy when a Layer is passed in; with
``features_only=True`` the features-only backbone, whose program has one output per map.
:func:`export_program` saves it with ``paddle.jit.save`` at a fixed input shape (Paddle 3.3
writes a PIR ``.json`` program); :func:`program_op_names` lists the ops of such a program.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import tempfile
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ppnets.factory import create_model
from ppnets.layers import reparameterize_model
from ppnets.models.features import FeatureBackbone
from ppnets.registry import model_info
from ppnets.utils import redirect_fd

__all__ = ["deploy_form", "export_program", "program_op_names", "check_input_size"]


# Paddle 3.3 logs this (C++, on stderr, once per process) when it traces the first tensor sum
# (``x + y`` passes ``out=None`` to the add op); the program is right, the line is noise.
PIR_OUT_NOTICE = "Paddle static graph(PIR) not support input out tensor"


@contextlib.contextmanager
def _without_stderr_line(text: str) -> Iterator[None]:
    """Hold what is written to file descriptor 2 (C++ logs included) meanwhile and pass it on
    afterwards, without the lines that contain ``text``."""
    try:
        os.fstat(2)
    except OSError:   # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        try:
            with redirect_fd(2, held):
                yield
        finally:
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines(True)
                    if text not in line]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def export_program(model: nn.Layer, input_size: Sequence[int], batch_size: int,
                 out_dir: str) -> Tuple[str, str]:
    """``paddle.jit.save`` the model with a fixed input shape; returns (model file, params file).

    The shape is static ([batch, C, H, W]) so the inference passes may specialise on it, as a
    deployment would. Paddle 3.3 writes a PIR program (``.json``); older builds ``.pdmodel``.
    """
    prefix = os.path.join(out_dir, "inference")
    spec = paddle.static.InputSpec([batch_size, *input_size], dtype="float32", name="x")
    with _without_stderr_line(PIR_OUT_NOTICE):
        paddle.jit.save(model, prefix, input_spec=[spec])
    params_file = prefix + ".pdiparams"
    for suffix in (".json", ".pdmodel"):
        # a program without parameters (a softmax) gets no parameters file
        if os.path.isfile(prefix + suffix) and (os.path.isfile(params_file) or
                                                 not model.parameters()):
            return prefix + suffix, params_file
    raise RuntimeError(f"paddle.jit.save wrote no program next to {prefix!r}: found "
                       f"{sorted(os.listdir(out_dir))}")


def program_op_names(model_file: str) -> Optional[set]:
    """Names of the ops in a PIR ``.json`` program without their dialect prefix (``conv2d``,
    ``leaky_relu``, ...); None for a legacy ``.pdmodel`` or a file that is not a PIR program."""
    if not model_file.endswith(".json"):
        return None
    try:
        with open(model_file, encoding="utf-8") as f:
            program = json.load(f)
    except (OSError, ValueError):
        return None
    names: set = set()
    stack = [program.get("program", program)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ops = node.get("ops")
            if isinstance(ops, list):
                for op in ops:
                    name = op.get("#") if isinstance(op, dict) else None
                    if isinstance(name, str):  # "1.leaky_relu": dialect id, then op name
                        names.add(name.split(".", 1)[-1].rstrip("_"))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def deploy_form(model_or_name, input_size=None, features_only: bool = False,
                out_indices: Optional[Sequence[int]] = None):
    """(deploy-form model, name, input size) of a registry name or a Layer. A passed-in Layer
    is copied, never modified; ``input_size`` defaults to the registry's.

    ``features_only=True`` makes it the features-only backbone
    (:class:`ppnets.models.features.FeatureBackbone`, the maps at ``out_indices``; default: the
    model's default maps): built so for a registry name, wrapped around the copy of a classifier
    Layer; a Layer that already is a backbone is taken as it is (``out_indices`` must then be
    left unset)."""
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects the maps of a features-only backbone: pass "
                         "features_only=True with it")
    if isinstance(model_or_name, str):
        info = model_info(model_or_name)
        name = info.get("name", model_or_name)
        model = create_model(name, features_only=features_only, out_indices=out_indices)
        if input_size is None:
            input_size = info["input_size"]
    elif isinstance(model_or_name, nn.Layer):
        model = copy.deepcopy(model_or_name)
        model.to(device=paddle.get_device())  # the device _paddle_device selected
        name = getattr(model_or_name, "model_name", None) or type(model_or_name).__name__
        if features_only:
            model = _as_backbone(model, out_indices)
        if input_size is None:
            registered = getattr(model_or_name, "model_name", None)
            if registered is None:
                raise ValueError(f"input_size is required for a model that is not from the "
                                 f"registry ({name}); pass e.g. input_size=(3, 224, 224)")
            input_size = model_info(registered)["input_size"]
    else:
        raise TypeError(f"model_or_name must be a registry name or a paddle.nn.Layer, got "
                        f"{type(model_or_name).__name__}")
    model.eval()
    reparameterize_model(model)  # a no-op for models with nothing to fuse
    return model, name, check_input_size(input_size)


def _as_backbone(model: nn.Layer, out_indices: Optional[Sequence[int]]) -> nn.Layer:
    """A copied Layer as a features-only backbone (see :func:`deploy_form`)."""
    if isinstance(model, FeatureBackbone):
        if out_indices is not None:
            raise ValueError(f"this model is a features-only backbone already (its maps: "
                             f"out_indices={list(model.out_indices)}): build another one for "
                             "other maps, or leave out_indices unset")
        return model
    if not hasattr(model, "forward_intermediates"):
        raise ValueError(f"features_only=True needs a ppnets model (feature_info and "
                         f"forward_intermediates); {type(model).__name__} has none")
    return FeatureBackbone(model, out_indices)


def check_input_size(input_size) -> Tuple[int, int, int]:
    try:
        size = tuple(input_size)
    except TypeError:
        size = ()
    if len(size) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v > 0 for v in size):
        raise ValueError(f"input_size must be (channels, height, width) with positive integers, "
                         f"e.g. (3, 224, 224); got {input_size!r}")
    return tuple(int(v) for v in size)
