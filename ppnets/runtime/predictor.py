"""Paddle Inference predictors configured the way ppnets measures and verifies them.

:func:`make_config` / :func:`create_predictor`: CPU (1..n math threads, oneDNN on or off) or
GPU, IR optimisation on, and the IR passes of :data:`KNOWN_PASS_CRASHES` deleted for the
programs that trigger them (:func:`pass_workarounds`; the record of every measurement says
so). :func:`run_predictor` feeds one input and returns every output.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import paddle

from .program import program_op_names

__all__ = ["KNOWN_PASS_CRASHES", "pass_workarounds", "make_config", "create_predictor",
           "stage_input", "run_predictor"]

# IR passes that crash Paddle Inference while it builds a predictor for some programs. A crash
# inside the C++ pass (SIGSEGV) kills the whole Python process, so it cannot be caught; the
# harness deletes the pass, for the programs that contain the trigger op only, before the
# predictor is built. oneDNN stays on (every other fuse pass still runs); the record lists what
# was deleted and why (``ir_pass_workarounds``). Each entry: the pass, the op whose presence in
# the PIR program triggers it, where it applies, the Paddle versions on which the crash was
# reproduced, and the cause.
KNOWN_PASS_CRASHES: Tuple[Dict[str, Any], ...] = (
    {"pass": "conv_activation_onednn_fuse_pass",
     "trigger_op": "leaky_relu",
     "device": "cpu", "mkldnn": True, "program": "pir",
     "reproduced_on_paddle": ("3.3.1",),
     "reason": "Paddle Inference segfaults in this pass (FusedConv2dOp::Build -> "
               "pir::FloatAttribute::data) when it fuses a conv2d with a following leaky_relu: "
               "the PIR program stores leaky_relu's negative_slope as a DoubleAttribute and the "
               "pass reads it as a FloatAttribute. Deleting the pass leaves conv2d and "
               "leaky_relu as two oneDNN kernels (unfused), so the latency includes one extra "
               "pass over the activation map per conv"},
)


def pass_workarounds(model_file: str, device: str = "cpu",
                     mkldnn: bool = True) -> List[Dict[str, Any]]:
    """The entries of :data:`KNOWN_PASS_CRASHES` that apply to this exported program and
    setting, as records: deleted pass, trigger op, reason, this Paddle's version, and the
    versions the crash was reproduced on. Empty when none applies."""
    ops = program_op_names(model_file)
    if ops is None:
        return []
    out = []
    for known in KNOWN_PASS_CRASHES:
        if device != known["device"] or bool(mkldnn) != known["mkldnn"]:
            continue
        if known["trigger_op"] in ops:
            out.append({"deleted_pass": known["pass"], "trigger_op": known["trigger_op"],
                        "reason": known["reason"], "paddle_version": paddle.__version__,
                        "reproduced_on_paddle": list(known["reproduced_on_paddle"])})
    return out


def make_config(model_file: str, params_file: str, device: str = "cpu", threads: int = 1,
                mkldnn: bool = True, gpu_id: int = 0,
                delete_passes: Sequence[str] = ()):
    """The ``paddle.inference.Config`` the harness uses for an exported model (``.json`` PIR
    program or legacy ``.pdmodel``, and its ``.pdiparams``). ``delete_passes`` are IR passes
    left out (see :func:`pass_workarounds`)."""
    from paddle import inference

    config = inference.Config(model_file, params_file)
    if device == "gpu":
        config.enable_use_gpu(256, gpu_id)  # initial memory pool (MB); it grows as needed
    else:
        config.disable_gpu()
        # Also caps the threads of the oneDNN/MKL kernels the predictor runs.
        config.set_cpu_math_library_num_threads(threads)
        if mkldnn:
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
    config.switch_ir_optim(True)
    for name in delete_passes:
        config.delete_pass(name)
    config.disable_glog_info()
    return config


def create_predictor(model_file: str, params_file: str, device: str = "cpu", threads: int = 1,
                     mkldnn: bool = True, gpu_id: int = 0, workarounds: bool = True):
    """A Paddle Inference predictor for an exported model, configured by :func:`make_config`;
    with ``workarounds`` (default) the passes :func:`pass_workarounds` names are deleted."""
    from paddle import inference

    deleted = [w["deleted_pass"] for w in pass_workarounds(model_file, device, mkldnn)] \
        if workarounds else []
    config = make_config(model_file, params_file, device, threads, mkldnn, gpu_id, deleted)
    if os.path.isfile(params_file):
        return inference.create_predictor(config)
    # A program without parameters (a softmax, a channel shuffle) has no parameters file:
    # Paddle 3.3 loads it so; Paddle 3.0's predictor insists on the file.
    try:
        return inference.create_predictor(config)
    except (RuntimeError, OSError) as exc:
        raise RuntimeError(
            f"Paddle {paddle.__version__} cannot load {model_file}, a program without "
            f"parameters (no {os.path.basename(params_file)}): its predictor needs a parameters "
            "file. Timing such a block needs a newer Paddle (3.3.1 loads it).") from exc


def stage_input(predictor, x: np.ndarray) -> List[Any]:
    names = predictor.get_input_names()
    if len(names) != 1:
        raise ValueError(f"the exported model has inputs {names}; the harness feeds exactly one")
    handle = predictor.get_input_handle(names[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(np.ascontiguousarray(x))
    return [predictor.get_output_handle(n) for n in predictor.get_output_names()]


def run_predictor(predictor, x: np.ndarray) -> List[np.ndarray]:
    """Run once on ``x`` and return every output as a numpy array."""
    outputs = stage_input(predictor, x)
    predictor.run()
    return [h.copy_to_cpu() for h in outputs]
