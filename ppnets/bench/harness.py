"""Latency of a deployed model under Paddle Inference, measured so that it can be trusted.

The measured object is the deploy form: ``model.eval()``, :func:`ppnets.reparameterize_model`,
then ``paddle.jit.save`` with a fixed-shape ``InputSpec`` (Paddle 3.3 writes PIR ``.json`` +
``.pdiparams``), loaded by ``paddle.inference.create_predictor``. The rules (see
docs/benchmarking.md):

* the first runs are never timed (``warmup >= 1``): they build oneDNN primitives, cuDNN plans and
  the IR passes' caches;
* every repeat is timed on its own with ``time.perf_counter`` and the median and interquartile
  range are reported, never a mean over a loop that hides outliers;
* the timed region is ``predictor.run()`` plus ``copy_to_cpu()`` of every output, so an
  asynchronous device (GPU) has finished before the clock stops; the input is staged once;
* the exported predictor's output is compared with the dygraph model's once, and the difference
  is recorded with the latency;
* an IR pass that is known to crash Paddle Inference on a program (:data:`KNOWN_PASS_CRASHES`)
  is deleted for that program only, and the record says so (``ir_pass_workarounds``).
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

from .machine import gpu_name, machine_info
from .timing import latency_stats, time_calls  # the one timing loop (framework-free module)

__all__ = ["SCHEMA", "BACKEND", "benchmark_model", "benchmark_models", "resolve_model_names",
           "export_model", "make_config", "create_predictor", "run_predictor", "time_predictor",
           "time_dygraph", "time_calls", "latency_stats", "check_settings", "format_table",
           "write_json", "KNOWN_PASS_CRASHES", "program_op_names", "pass_workarounds"]

# Version of the result layout (docs/benchmarking.md). Bump it when a key changes meaning or
# disappears; adding keys keeps it.
SCHEMA = "ppnets.bench/1"
BACKEND = "paddle_inference"
TIMED_REGION = "predictor.run() + copy_to_cpu() of every output (input staged once)"
DEVICES = ("cpu", "gpu")


# --------------------------------------------------------------------------------------------
# Argument checks


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_input_size(input_size) -> Tuple[int, int, int]:
    try:
        size = tuple(input_size)
    except TypeError:
        size = ()
    if len(size) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v > 0 for v in size):
        raise ValueError(f"input_size must be (channels, height, width) with positive integers, "
                         f"e.g. (3, 224, 224); got {input_size!r}")
    return tuple(int(v) for v in size)


def _check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "gpu":
        if not paddle.device.is_compiled_with_cuda():
            raise RuntimeError(
                "device='gpu' was requested but this Paddle build has no CUDA "
                "(paddle.device.is_compiled_with_cuda() is False): install paddlepaddle-gpu or "
                "benchmark with device='cpu'")
        if gpu_name() is None:
            raise RuntimeError("device='gpu' was requested but Paddle sees no GPU (check "
                               "CUDA_VISIBLE_DEVICES and the driver), or use device='cpu'")
    return device


def check_settings(input_size=None, batch_size: int = 1, device: str = "cpu", threads: int = 1,
                   warmup: int = 10, repeats: int = 50) -> Dict[str, Any]:
    """Validate benchmark settings and return them normalised; raises ValueError (bad value) or
    RuntimeError (GPU requested but unavailable) with what to do instead."""
    return {
        "input_size": None if input_size is None else _check_input_size(input_size),
        "batch_size": _check_int("batch_size", batch_size, 1),
        "device": _check_device(device),
        "threads": _check_int("threads", threads, 1),
        "warmup": _check_int("warmup (the first run is never timed)", warmup, 1),
        "repeats": _check_int("repeats", repeats, 1),
    }


# --------------------------------------------------------------------------------------------
# Statistics and output


def write_json(obj: Any, path: str) -> None:
    """Write ``obj`` as JSON atomically: a temporary file in the same folder, then os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _fmt(value: Optional[float], digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(results: Iterable[Dict[str, Any]]) -> str:
    """Markdown table of benchmark results (one row per result)."""
    lines = ["| model | params (M) | MACs (G) | median (ms) | IQR (ms) | img/s | GFLOPS achieved |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lat = r["latency_ms"]
        params = None if r.get("params") is None else r["params"] / 1e6
        macs = None if r.get("macs") is None else r["macs"] / 1e9
        gflops = None if r.get("flops_per_s") is None else r["flops_per_s"] / 1e9
        lines.append(f"| {r['model']} | {_fmt(params, 2)} | {_fmt(macs, 3)} | "
                     f"{_fmt(lat['median'], 3)} | {_fmt(lat['iqr'], 3)} | "
                     f"{_fmt(r['throughput_ips'], 1)} | {_fmt(gflops, 1)} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Export and Paddle Inference


def export_model(model: nn.Layer, input_size: Sequence[int], batch_size: int,
                 out_dir: str) -> Tuple[str, str]:
    """``paddle.jit.save`` the model with a fixed input shape; returns (model file, params file).

    The shape is static ([batch, C, H, W]) so the inference passes may specialise on it, as a
    deployment would. Paddle 3.3 writes a PIR program (``.json``); older builds ``.pdmodel``.
    """
    prefix = os.path.join(out_dir, "inference")
    spec = paddle.static.InputSpec([batch_size, *input_size], dtype="float32", name="x")
    paddle.jit.save(model, prefix, input_spec=[spec])
    params_file = prefix + ".pdiparams"
    for suffix in (".json", ".pdmodel"):
        if os.path.isfile(prefix + suffix) and os.path.isfile(params_file):
            return prefix + suffix, params_file
    raise RuntimeError(f"paddle.jit.save wrote no program next to {prefix!r}: found "
                       f"{sorted(os.listdir(out_dir))}")


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
    return inference.create_predictor(
        make_config(model_file, params_file, device, threads, mkldnn, gpu_id, deleted))


def _stage_input(predictor, x: np.ndarray) -> List[Any]:
    names = predictor.get_input_names()
    if len(names) != 1:
        raise ValueError(f"the exported model has inputs {names}; the harness feeds exactly one")
    handle = predictor.get_input_handle(names[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(np.ascontiguousarray(x))
    return [predictor.get_output_handle(n) for n in predictor.get_output_names()]


def run_predictor(predictor, x: np.ndarray) -> List[np.ndarray]:
    """Run once on ``x`` and return every output as a numpy array."""
    outputs = _stage_input(predictor, x)
    predictor.run()
    return [h.copy_to_cpu() for h in outputs]


def time_predictor(predictor, x: np.ndarray, warmup: int, repeats: int) -> List[float]:
    """Per-repeat seconds of ``run()`` + ``copy_to_cpu()`` of all outputs, after ``warmup`` runs.

    Copying the outputs to host inside the timed region is what makes a GPU measurement honest:
    it cannot return before the device has finished.
    """
    outputs = _stage_input(predictor, x)

    def step():
        predictor.run()
        for h in outputs:
            h.copy_to_cpu()

    return time_calls(step, warmup, repeats)


@contextlib.contextmanager
def _dygraph_cpu_settings(threads: int, mkldnn: bool):
    """Apply the predictor's CPU settings to eager execution; restore the oneDNN flags after.

    The math-library thread count is process-wide and cannot be read back, so it stays set.
    """
    core = getattr(paddle.base, "core", None)
    if core is not None and hasattr(core, "set_num_threads"):
        core.set_num_threads(threads)
    flags = {}
    for flag in ("FLAGS_use_mkldnn", "FLAGS_use_onednn"):
        with contextlib.suppress(Exception):
            flags.update(paddle.get_flags([flag]))
    paddle.set_flags({k: bool(mkldnn) for k in flags})
    try:
        yield
    finally:
        paddle.set_flags(flags)


def time_dygraph(model: nn.Layer, x: np.ndarray, warmup: int, repeats: int,
                 device: str = "cpu", threads: int = 1, mkldnn: bool = True) -> List[float]:
    """Per-repeat seconds of eager ``model(x)`` + copy of the output to host, for comparison."""
    tensor = paddle.to_tensor(x)
    sync = paddle.device.synchronize if device == "gpu" else (lambda: None)

    def step():
        with paddle.no_grad():
            out = model(tensor)
        for o in (out if isinstance(out, (list, tuple)) else [out]):
            o.numpy()
        sync()

    settings = _dygraph_cpu_settings(threads, mkldnn) if device == "cpu" else \
        contextlib.nullcontext()
    with settings:
        sync()
        return time_calls(step, warmup, repeats)


# --------------------------------------------------------------------------------------------
# Models


def resolve_model_names(names_or_patterns: Union[str, Sequence[str]]) -> List[str]:
    """Registry names for a list of names, aliases or fnmatch patterns, in order, deduplicated.

    Raises KeyError (with close matches, from the registry) for an unknown name and for a
    pattern that matches nothing.
    """
    import ppnets

    items = [names_or_patterns] if isinstance(names_or_patterns, str) else list(names_or_patterns)
    if not items:
        raise ValueError("no model names given")
    out: List[str] = []
    for item in items:
        if any(ch in item for ch in "*?["):
            matched = ppnets.list_models(item)
            if not matched:
                raise KeyError(f"pattern {item!r} matches no registered model; "
                               "see ppnets.list_models()")
        else:
            # model_info raises KeyError with close matches and maps aliases to the real name.
            matched = [ppnets.model_info(item).get("name", item)]
        out.extend(n for n in matched if n not in out)
    return out


@contextlib.contextmanager
def _paddle_device(device: str):
    previous = paddle.get_device()
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    try:
        yield
    finally:
        paddle.set_device(previous)


def _prepare_model(model_or_name, input_size):
    """(deploy-form model, name, input size). A passed-in Layer is copied, never modified."""
    import ppnets

    if isinstance(model_or_name, str):
        info = ppnets.model_info(model_or_name)
        name = info.get("name", model_or_name)
        model = ppnets.create_model(name)
        if input_size is None:
            input_size = info["input_size"]
    elif isinstance(model_or_name, nn.Layer):
        model = copy.deepcopy(model_or_name)
        model.to(device=paddle.get_device())  # the device _paddle_device selected
        name = getattr(model_or_name, "model_name", None) or type(model_or_name).__name__
        if input_size is None:
            registered = getattr(model_or_name, "model_name", None)
            if registered is None:
                raise ValueError(f"input_size is required for a model that is not from the "
                                 f"registry ({name}); pass e.g. input_size=(3, 224, 224)")
            input_size = ppnets.model_info(registered)["input_size"]
    else:
        raise TypeError(f"model_or_name must be a registry name or a paddle.nn.Layer, got "
                        f"{type(model_or_name).__name__}")
    model.eval()
    ppnets.reparameterize_model(model)  # a no-op for models with nothing to fuse
    return model, name, _check_input_size(input_size)


def _profile(model: nn.Layer, input_size) -> Tuple[int, int]:
    """(MACs per image, parameters) of the deploy-form model, from ppnets.analysis."""
    from ppnets.analysis import profile_model

    prof = profile_model(model, input_size=tuple(input_size), batch_size=1)
    return int(prof.macs), int(prof.params)


def benchmark_model(model_or_name: Union[str, nn.Layer], input_size: Optional[Sequence[int]] = None,
                    batch_size: int = 1, device: str = "cpu", threads: int = 1,
                    mkldnn: bool = True, warmup: int = 10, repeats: int = 50,
                    dygraph: bool = False, workdir: Optional[str] = None,
                    seed: int = 0, workarounds: bool = True) -> Dict[str, Any]:
    """Latency of one model's deploy form under Paddle Inference; a JSON-serialisable dict.

    ``model_or_name`` is a registry name (input size from ``ppnets.model_info`` unless given)
    or an ``nn.Layer`` (copied, so the caller's model is not fused or moved). ``threads`` and
    ``mkldnn`` (oneDNN) apply to CPU. ``workdir`` keeps the exported model there (default: a
    temporary folder, deleted afterwards). ``dygraph=True`` also times eager execution of the
    same deploy-form model (``dygraph_latency_ms``). ``workarounds`` deletes the IR passes of
    :data:`KNOWN_PASS_CRASHES` that apply to the exported program (listed in the record's
    ``ir_pass_workarounds``); False builds the predictor with every pass, which on an affected
    Paddle version crashes the process. See docs/benchmarking.md for the schema.
    """
    settings = check_settings(input_size=input_size, batch_size=batch_size, device=device,
                              threads=threads, warmup=warmup, repeats=repeats)
    input_size, batch_size, device, threads, warmup, repeats = (
        settings[k] for k in ("input_size", "batch_size", "device", "threads", "warmup",
                              "repeats"))

    with _paddle_device(device):
        model, name, input_size = _prepare_model(model_or_name, input_size)
        macs, params = _profile(model, input_size)
        x = np.random.default_rng(seed).standard_normal(
            (batch_size, *input_size)).astype(np.float32)
        with paddle.no_grad():
            reference = model(paddle.to_tensor(x))
        reference = [r.numpy() for r in (reference if isinstance(reference, (list, tuple))
                                         else [reference])]
        dygraph_samples = None
        if dygraph:
            dygraph_samples = time_dygraph(model, x, warmup, repeats, device, threads, mkldnn)

        with contextlib.ExitStack() as stack:
            if workdir is None:
                out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ppnets-bench-"))
            else:
                out_dir = os.path.join(workdir, name)
                os.makedirs(out_dir, exist_ok=True)
            model_file, params_file = export_model(model, input_size, batch_size, out_dir)
            applied = pass_workarounds(model_file, device, mkldnn) if workarounds else []
            config = make_config(model_file, params_file, device, threads, mkldnn,
                                 delete_passes=[w["deleted_pass"] for w in applied])
            predictor = paddle.inference.create_predictor(config)
            outputs = run_predictor(predictor, x)  # first run: untimed, also the parity check
            if len(outputs) != len(reference) or any(
                    o.shape != r.shape for o, r in zip(outputs, reference)):
                raise RuntimeError(
                    f"{name}: the exported predictor returned shapes "
                    f"{[o.shape for o in outputs]}, the dygraph model "
                    f"{[r.shape for r in reference]}")
            max_abs_diff = max(float(np.abs(o.astype(np.float64) - r).max())
                               for o, r in zip(outputs, reference))
            samples = time_predictor(predictor, x, warmup, repeats)
            mkldnn_enabled = bool(config.mkldnn_enabled())
            del predictor

    latency = latency_stats(samples)
    median_s = latency["median"] / 1e3
    result: Dict[str, Any] = {
        "schema": SCHEMA,
        "backend": BACKEND,
        "model": name,
        "input_size": list(input_size),
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
        "mkldnn": bool(mkldnn),
        "mkldnn_enabled": mkldnn_enabled,
        "precision": "fp32",
        "deploy": True,
        "warmup": warmup,
        "timed_region": TIMED_REGION,
        "latency_ms": latency,
        "throughput_ips": batch_size / median_s,
        "macs": macs,
        "params": params,
        "flops_per_s": 2.0 * macs * batch_size / median_s,
        "max_abs_diff_vs_dygraph": max_abs_diff,
        "ir_pass_workarounds": applied,
        "machine": machine_info(device=device, threads=threads, mkldnn=bool(mkldnn)),
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }
    if dygraph_samples is not None:
        result["dygraph_latency_ms"] = latency_stats(dygraph_samples)
    if workdir is not None:
        result["model_file"] = model_file
    return result


def benchmark_models(names_or_patterns: Union[str, Sequence[str]], *,
                     command: Optional[str] = None,
                     progress: Optional[Callable[[Dict[str, Any]], None]] = None,
                     **kwargs) -> Dict[str, Any]:
    """Benchmark every model that the names/patterns resolve to, with one set of settings.

    ``kwargs`` are :func:`benchmark_model`'s. ``progress`` is called with each result as it
    completes. Returns ``dict(schema, command, machine, results=[...])``.
    """
    unknown = set(kwargs) - {"input_size", "batch_size", "device", "threads", "mkldnn", "warmup",
                             "repeats", "dygraph", "workdir", "seed", "workarounds"}
    if unknown:
        raise TypeError(f"benchmark_models got unknown arguments {sorted(unknown)}")
    names = resolve_model_names(names_or_patterns)
    if command is None:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
        command = f"benchmark_models({names_or_patterns!r}{', ' + args if args else ''})"
    results = []
    for name in names:
        result = benchmark_model(name, **kwargs)
        results.append(result)
        if progress is not None:
            progress(result)
    return {
        "schema": SCHEMA,
        "command": command,
        "machine": machine_info(device=kwargs.get("device", "cpu"),
                                threads=kwargs.get("threads", 1),
                                mkldnn=bool(kwargs.get("mkldnn", True))),
        "results": results,
    }
