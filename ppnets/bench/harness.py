"""Latency of a deployed model under Paddle Inference, measured so that it can be trusted.

The measured object is the deploy form: ``model.eval()``, :func:`ppnets.reparameterize_model`,
then ``paddle.jit.save`` with a fixed-shape ``InputSpec`` (Paddle 3.3 writes PIR ``.json`` +
``.pdiparams``), loaded by ``paddle.inference.create_predictor``. The rules (see
docs/benchmarking.md):

* the first runs are never timed (``warmup >= 1``): they build oneDNN primitives, cuDNN plans and
  the IR passes' caches;
* every repeat is timed on its own with ``time.perf_counter`` and the median and interquartile
  range are reported, never a mean over a loop that hides outliers;
* ``rounds`` fresh predictors can be built and timed one after the other, and the median round is
  reported: predictors of one program can run it at different steady speeds;
* the timed region is ``predictor.run()`` plus ``copy_to_cpu()`` of every output, so an
  asynchronous device (GPU) has finished before the clock stops; the input is staged once;
* the exported predictor's outputs are compared with the dygraph model's once, and the largest
  difference is recorded with the latency (every output: a features-only backbone,
  ``features_only=True``, has one per feature map);
* an IR pass that is known to crash Paddle Inference on a program (:data:`KNOWN_PASS_CRASHES`)
  is deleted for that program only, and the record says so (``ir_pass_workarounds``).

Every other runtime and precision (``runtime=`` one of :data:`ppnets.runtime.RUNTIMES`,
``precision=`` one of :data:`ppnets.runtime.PRECISIONS`) is timed by the same loop through
:func:`ppnets.runtime.open_session`: the deploy form is exported into an export folder
(``paddle/``, ``onnx/``, ``reference_io.npz``, ``export.json``; or ``export_dir`` names an
existing one, e.g. one with INT8 artifacts), ``rounds`` fresh sessions are timed on
``Session.run``, and the outputs are checked against eager by
:func:`ppnets.runtime.check_session` (fp32: exact rule, ``passed``/``failed``; bf16/int8:
``approximate``, with their differences, never called exact). A runtime or precision that
cannot run here gives a record with ``status`` ``"unavailable"`` and the reason, not an error.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import (Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np
import paddle
import paddle.nn as nn

from ppnets.analysis import profile_model
from ppnets.models.features import FeatureBackbone
from ppnets.registry import resolve_model_names
from ppnets.runtime import (DEFAULT_ATOL, PRECISIONS, RUNTIMES, PrecisionUnsupportedError,
                            RuntimeUnavailableError, check_input_size, check_session,
                            compare_all_outputs, export_onnx,
                            deploy_form, export_program, make_config, open_session,
                            pass_workarounds, reference_outputs, run_predictor, runtime_status,
                            save_legacy, stage_input)
from ppnets.utils import atomic_write_json, gpu_name, machine_info, utc_now

from .timing import latency_stats, time_calls  # the one timing loop (framework-free module)

__all__ = ["SCHEMA", "BACKEND", "PADDLE_SETTINGS", "benchmark_model", "benchmark_models",
           "interleaved_runs", "round_medians", "latency_summary", "time_predictor",
           "time_dygraph", "time_session", "time_calls", "latency_stats", "check_settings",
           "format_table", "write_export_folder", "resolve_runtimes"]

# Version of the result layout (docs/benchmarking.md). Bump it when a key changes meaning or
# disappears; adding keys keeps it.
SCHEMA = "ppnets.bench/1"
BACKEND = "paddle_inference"
TIMED_REGION = "predictor.run() + copy_to_cpu() of every output (input staged once)"
SESSION_TIMED_REGION = ("Session.run(x): the runtime's run call with the input passed, every "
                        "output returned as numpy")
DEVICES = ("cpu", "gpu")

# Paddle Inference CPU settings the harness can apply to its predictor (``paddle_settings``).
# "paddlex" is what PaddleX's static inference (paddlex/inference/models/common/static_infer.py,
# PaddleX 3.x) sets for a CPU run with oneDNN: an unbounded oneDNN primitive cache, the new IR
# and executor, optimisation level 3 and memory reuse. Which is faster is measured
# (docs/benchmarking.md, "Paddle Inference settings"); "default" stays the default.
PADDLE_SETTINGS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "paddlex": {"mkldnn_cache_capacity": -1, "enable_new_ir": True, "enable_new_executor": True,
                "optimization_level": 3, "enable_memory_optim": True},
}


# --------------------------------------------------------------------------------------------
# Argument checks


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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
                   warmup: int = 10, repeats: int = 50, rounds: int = 1) -> Dict[str, Any]:
    """Validate benchmark settings and return them normalised; raises ValueError (bad value) or
    RuntimeError (GPU requested but unavailable) with what to do instead."""
    return {
        "input_size": None if input_size is None else check_input_size(input_size),
        "batch_size": _check_int("batch_size", batch_size, 1),
        "device": _check_device(device),
        "threads": _check_int("threads", threads, 1),
        "warmup": _check_int("warmup (the first run is never timed)", warmup, 1),
        "repeats": _check_int("repeats", repeats, 1),
        "rounds": _check_int("rounds (fresh predictors)", rounds, 1),
    }


# --------------------------------------------------------------------------------------------
# Statistics and output


def _fmt(value: Optional[float], digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _runtime_label(r: Dict[str, Any]) -> str:
    settings = (r.get("paddle_settings") or {}).get("name", "default")
    return r.get("backend", BACKEND) + ("" if settings == "default" else f" ({settings})")


def _output_check(r: Dict[str, Any]) -> str:
    """'exact' (fp32 within the export tolerance), 'FAILED', or the approximate difference."""
    parity = r.get("parity") or {}
    if parity.get("status") == "passed":
        return "exact"
    if parity.get("status") == "approximate":
        agreement = parity.get("top1_agreement")
        return (f"approx. (max rel. diff {r.get('max_rel_diff_vs_dygraph') or 0:.2e}"
                + ("" if agreement is None else f", top-1 agree {100 * agreement:.0f} %") + ")")
    return "**FAILED**" if parity else "n/a"


def format_table(results: Iterable[Dict[str, Any]]) -> str:
    """Markdown table of benchmark results (one row per result; a runtime that could not run
    is listed below the table with its reason)."""
    lines = ["| model | runtime | precision | params (M) | MACs (G) | median (ms) | IQR (ms) | "
             "img/s | GFLOPS achieved | output |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    unavailable = []
    for r in results:
        if r.get("status") == "unavailable":
            unavailable.append(f"- {r['model']} / {r['backend']} {r['precision']}: "
                               f"unavailable: {r['reason']}")
            continue
        lat = r["latency_ms"]
        params = None if r.get("params") is None else r["params"] / 1e6
        macs = None if r.get("macs") is None else r["macs"] / 1e9
        gflops = None if r.get("flops_per_s") is None else r["flops_per_s"] / 1e9
        lines.append(f"| {r['model']} | {_runtime_label(r)} | {r.get('precision', 'fp32')} | "
                     f"{_fmt(params, 2)} | {_fmt(macs, 3)} | "
                     f"{_fmt(lat['median'], 3)} | {_fmt(lat['iqr'], 3)} | "
                     f"{_fmt(r['throughput_ips'], 1)} | {_fmt(gflops, 1)} | "
                     f"{_output_check(r)} |")
    return "\n".join(lines + ([""] + unavailable if unavailable else []))


# --------------------------------------------------------------------------------------------
# Export and Paddle Inference


def time_predictor(predictor, x: np.ndarray, warmup: int, repeats: int) -> List[float]:
    """Per-repeat seconds of ``run()`` + ``copy_to_cpu()`` of all outputs, after ``warmup`` runs.

    Copying the outputs to host inside the timed region is what makes a GPU measurement honest:
    it cannot return before the device has finished.
    """
    outputs = stage_input(predictor, x)

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


@contextlib.contextmanager
def _paddle_device(device: str):
    previous = paddle.get_device()
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    try:
        yield
    finally:
        paddle.set_device(previous)


def _profile(model: nn.Layer, input_size) -> Tuple[int, int]:
    """(MACs per image, parameters) of the deploy-form model, from ppnets.analysis."""
    prof = profile_model(model, input_size=tuple(input_size), batch_size=1)
    return int(prof.macs), int(prof.params)


class _PredictorRounds(NamedTuple):
    """What :func:`_time_predictor_rounds` measured on the exported program."""
    samples: List[List[float]]         # per round: per-repeat seconds
    mkldnn_enabled: bool               # as the last round's config reports it
    applied: List[Dict[str, Any]]      # IR pass workarounds
    model_file: str
    max_abs_diff: float
    output_scale: float
    parity: Dict[str, Any]             # compare_all_outputs / check_session record


def _reference_outputs(model: nn.Layer, batch_size: int, input_size: Sequence[int],
                       seed: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The seeded input and the eager model's outputs on it (the parity reference)."""
    x = np.random.default_rng(seed).standard_normal(
        (batch_size, *input_size)).astype(np.float32)
    with paddle.no_grad():
        reference = model(paddle.to_tensor(x))
    reference = [r.numpy() for r in (reference if isinstance(reference, (list, tuple))
                                     else [reference])]
    return x, reference


def _parity(name: str, outputs: List[np.ndarray],
            reference: List[np.ndarray]) -> Tuple[float, float]:
    """(max |predictor - eager|, output scale); raises when the output shapes differ."""
    if len(outputs) != len(reference) or any(
            o.shape != r.shape for o, r in zip(outputs, reference)):
        raise RuntimeError(
            f"{name}: the exported predictor returned shapes "
            f"{[o.shape for o in outputs]}, the dygraph model "
            f"{[r.shape for r in reference]}")
    max_abs_diff = max(float(np.abs(o.astype(np.float64) - r).max())
                       for o, r in zip(outputs, reference))
    output_scale = max(1.0, max(float(np.abs(r).max()) for r in reference))
    return max_abs_diff, output_scale


def _check_paddle_settings(paddle_settings: str) -> str:
    if paddle_settings not in PADDLE_SETTINGS:
        raise ValueError(f"paddle_settings must be one of {sorted(PADDLE_SETTINGS)}, got "
                         f"{paddle_settings!r}")
    return paddle_settings


def _apply_paddle_settings(config, paddle_settings: str, device: str, mkldnn: bool) -> None:
    """Apply :data:`PADDLE_SETTINGS` ``paddle_settings`` on top of :func:`make_config`'s."""
    settings = PADDLE_SETTINGS[paddle_settings]
    if not settings:
        return
    if device == "cpu" and mkldnn:
        config.set_mkldnn_cache_capacity(settings["mkldnn_cache_capacity"])
    config.enable_new_ir(settings["enable_new_ir"])
    if settings["enable_new_executor"]:
        config.enable_new_executor()
    config.set_optimization_level(settings["optimization_level"])
    if settings["enable_memory_optim"]:
        config.enable_memory_optim()


def _time_predictor_rounds(model_file: str, params_file: str, name: str, x: np.ndarray,
                           reference: List[np.ndarray], *, device: str, threads: int,
                           mkldnn: bool, warmup: int, repeats: int, rounds: int,
                           workarounds: bool, paddle_settings: str = "default"
                           ) -> _PredictorRounds:
    """Build ``rounds`` fresh predictors of the exported program and time each; the first
    round's untimed first run is also the parity check against the eager ``reference``."""
    applied = pass_workarounds(model_file, device, mkldnn) if workarounds else []
    round_samples = []
    for round_index in range(rounds):
        # a Paddle Inference config serves one predictor only
        config = make_config(model_file, params_file, device, threads, mkldnn,
                             delete_passes=[w["deleted_pass"] for w in applied])
        _apply_paddle_settings(config, paddle_settings, device, mkldnn)
        mkldnn_enabled = bool(config.mkldnn_enabled())
        predictor = paddle.inference.create_predictor(config)
        if round_index == 0:   # first run: untimed, also the parity check
            outputs = run_predictor(predictor, x)
            max_abs_diff, output_scale = _parity(name, outputs, reference)
            parity = compare_all_outputs(outputs, reference, DEFAULT_ATOL)
        round_samples.append(time_predictor(predictor, x, warmup, repeats))
        del predictor
    return _PredictorRounds(round_samples, mkldnn_enabled, applied, model_file, max_abs_diff,
                            output_scale, parity)


def _export_and_time(model: nn.Layer, name: str, input_size: Sequence[int], batch_size: int,
                     x: np.ndarray, reference: List[np.ndarray], workdir: Optional[str],
                     **timing) -> _PredictorRounds:
    """Export the deploy-form ``model`` (into ``workdir/<name>``, else a temporary folder) and
    time its predictors (:func:`_time_predictor_rounds`, keywords ``timing``)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ppnets-bench-"))
        else:
            out_dir = os.path.join(workdir, name)
            os.makedirs(out_dir, exist_ok=True)
        model_file, params_file = export_program(model, input_size, batch_size, out_dir)
        return _time_predictor_rounds(model_file, params_file, name, x, reference, **timing)


def _median_round(round_samples: List[List[float]]) -> Tuple[Dict[str, Any], List[float]]:
    """(statistics of the median round, each round's median in ms); for an even count the
    lower of the two middle rounds, so every number comes from one real predictor."""
    round_stats = [latency_stats(samples) for samples in round_samples]
    round_medians = [stats["median"] for stats in round_stats]
    median_index = np.argsort(round_medians, kind="stable")[(len(round_samples) - 1) // 2]
    return round_stats[int(median_index)], round_medians


def _result_record(name: str, input_size: Sequence[int], batch_size: int, device: str,
                   threads: int, mkldnn: bool, warmup: int, macs: Optional[int],
                   params: Optional[int], measured: _PredictorRounds) -> Dict[str, Any]:
    """The benchmark record (schema :data:`SCHEMA`, docs/benchmarking.md)."""
    latency, round_medians = _median_round(measured.samples)
    median_s = latency["median"] / 1e3
    return {
        "schema": SCHEMA,
        "backend": BACKEND,
        "status": "measured",
        "model": name,
        "input_size": list(input_size),
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
        "mkldnn": bool(mkldnn),
        "mkldnn_enabled": measured.mkldnn_enabled,
        "precision": "fp32",
        "deploy": True,
        "warmup": warmup,
        "timed_region": TIMED_REGION,
        "latency_ms": latency,
        "rounds": len(measured.samples),
        "round_medians_ms": round_medians,
        "throughput_ips": batch_size / median_s,
        "macs": macs,
        "params": params,
        "flops_per_s": None if macs is None else 2.0 * macs * batch_size / median_s,
        "max_abs_diff_vs_dygraph": measured.max_abs_diff,
        # relative to max(1, max|eager output|): comparable across models' logit scales
        "max_rel_diff_vs_dygraph": measured.max_abs_diff / measured.output_scale,
        # fp32 held to the export check's rule (ppnets.runtime.compare_all_outputs); bf16 and
        # int8 are "approximate" and never exact
        "parity": measured.parity,
        "exact": measured.parity.get("status") == "passed",
        "ir_pass_workarounds": measured.applied,
        "machine": machine_info(device=device, threads=threads, mkldnn=bool(mkldnn)),
        "timestamp_utc": utc_now(),
    }


# --------------------------------------------------------------------------------------------
# Every runtime: export folders and sessions


def resolve_runtimes(runtimes: Union[str, Sequence[str]]) -> List[str]:
    """Runtime names checked against :data:`ppnets.runtime.RUNTIMES` (and registered ones);
    ``"all"`` is every runtime :func:`ppnets.runtime.runtime_status` reports available."""
    names = [runtimes] if isinstance(runtimes, str) else list(runtimes)
    status = runtime_status()
    out: List[str] = []
    for name in names:
        if name == "all":
            out += [r for r, s in status.items() if s["available"] and r not in out]
        elif name not in RUNTIMES and name not in status:
            raise ValueError(f"unknown runtime {name!r}; choose from {list(RUNTIMES)} or 'all'")
        elif name not in out:
            out.append(name)
    return out


def _check_runtime(runtime: str, precision: str) -> None:
    if runtime not in RUNTIMES and runtime not in runtime_status():
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")


def _write_onnx(model: nn.Layer, input_size: Sequence[int], batch_size: int, folder: str,
                opset: int) -> Dict[str, Any]:
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "model")
    try:
        export_onnx(model, [batch_size, *input_size], prefix, opset)
    except Exception as exc:  # noqa: BLE001 - paddle2onnx missing or an op it cannot convert
        return {"format": "onnx", "status": "failed",
                "error": f"the ONNX export failed: {type(exc).__name__}: {str(exc)[:400]}"}
    return {"format": "onnx", "file": prefix + ".onnx", "opset": opset, "status": "not_run"}


def write_export_folder(model: nn.Layer, name: str, input_size: Sequence[int], batch_size: int,
                        out_dir: str, seed: int = 0, formats: Sequence[str] = ("paddle", "onnx"),
                        opset: int = 13) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Write the deploy-form ``model`` as an export folder the runtime sessions read
    (:mod:`ppnets.runtime.sessions`): ``paddle/inference.json`` (``paddle`` in ``formats``),
    ``onnx/model.onnx`` (``onnx``), ``legacy/model.pdmodel`` (``legacy``), ``reference_io.npz`` (the seeded input and the eager
    outputs) and ``export.json``. Returns (input, eager outputs). The artifacts are checked by
    the benchmark that times them (``status`` "not_run" here); an ONNX export that fails is
    recorded in ``export.json`` (``artifacts.onnx.error``), not raised. ``ppnets export``
    writes the full folder (Paddle Lite, legacy program, class names)."""
    os.makedirs(out_dir, exist_ok=True)
    x, refs = _reference_outputs(model, batch_size, input_size, seed)
    arrays = {"x": x, "y": refs[0]}
    if len(refs) > 1:
        arrays.update({f"y_{i}": r for i, r in enumerate(refs)})
    np.savez(os.path.join(out_dir, "reference_io.npz"), **arrays)
    artifacts: Dict[str, Dict[str, Any]] = {}
    if "paddle" in formats:
        model_file, params_file = export_program(model, input_size, batch_size,
                                                 os.path.join(out_dir, "paddle"))
        artifacts["paddle"] = {"format": "paddle_pir", "file": model_file,
                               "params_file": params_file, "status": "not_run"}
    if "legacy" in formats:   # the old-IR program: OpenVINO's Paddle frontend reads it
        model_file, params_file = save_legacy(model, input_size, batch_size,
                                              os.path.join(out_dir, "legacy"))
        artifacts["legacy"] = {"format": "paddle_legacy_pdmodel", "file": model_file,
                               "params_file": params_file, "status": "not_run"}
    if "onnx" in formats:
        artifacts["onnx"] = _write_onnx(model, input_size, batch_size,
                                        os.path.join(out_dir, "onnx"), opset)
    report = {"schema": "ppnets.deploy/1", "model": name, "input_size": list(input_size),
              "batch_size": batch_size, "deploy": True, "seed": seed, "atol": DEFAULT_ATOL,
              "paddle_version": paddle.__version__,
              "weights": {"kind": "as benchmarked", "written_by": "ppnets.bench"},
              "outputs": [list(r.shape) for r in refs], "artifacts": artifacts,
              "timestamp_utc": utc_now()}
    atomic_write_json(os.path.join(out_dir, "export.json"), report, strict=True)
    return x, refs


def _read_export(export_dir: str) -> Dict[str, Any]:
    path = os.path.join(export_dir, "export.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{export_dir} has no export.json: pass an export folder "
                                "written by `ppnets export` (or leave export_dir unset and the "
                                "benchmark exports the model itself)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _export_errors(export_dir: str) -> str:
    """The export errors recorded in ``export_dir/export.json`` (e.g. an ONNX export that
    failed), as text to append to a runtime's 'missing artifact' message."""
    try:
        arts = _read_export(export_dir).get("artifacts") or {}
    except (OSError, ValueError):
        return ""
    errors = [f"{k}: {a['error']}" for k, a in arts.items()
              if isinstance(a, dict) and a.get("error")]
    return (" (the export recorded: " + "; ".join(errors) + ")") if errors else ""


def _unavailable_reason(runtime: str, precision: str) -> Optional[str]:
    """Why ``runtime`` cannot run ``precision`` on this machine, or None."""
    status = runtime_status().get(runtime)
    if status is None:
        return f"{runtime} is not a known runtime here"
    if not status["available"]:
        return status["reason"]
    if precision not in status["precisions"]:
        return (f"{runtime} {status.get('version')} cannot run {precision} on this machine "
                f"(usable here: {', '.join(status['precisions'])})")
    return None


def _needs_export_folder(runtime: str, precision: str) -> Optional[str]:
    """Why the benchmark cannot make ``runtime``'s ``precision`` artifact itself (Paddle Lite's
    ``.nb`` needs the Lite converter; INT8 needs calibration images), or None."""
    if precision == "int8":
        return (f"{runtime} int8 runs the quantized model of an export folder, which the "
                "benchmark does not make (it needs calibration images): quantize an export "
                "(ppnets.deploy.x86_int8.quantize_export, or `ppnets eval --runtime "
                f"{runtime} --precision int8`) and pass its folder (export_dir=, "
                "ppnets bench --export-dir)")
    if runtime == "paddle_lite":
        return ("paddle_lite runs lite/model_x86.nb of an export folder, which the benchmark "
                "does not make: `ppnets export --model MODEL --formats paddle onnx lite "
                "--lite-targets x86 --output-dir DIR`, then pass DIR (export_dir=, "
                "ppnets bench --export-dir)")
    return None


def _unavailable_record(name: str, runtime: str, precision: str, reason: str,
                        settings: Dict[str, Any]) -> Dict[str, Any]:
    size = settings.get("input_size")
    return {"schema": SCHEMA, "backend": runtime, "status": "unavailable", "reason": reason,
            "model": name, "precision": precision,
            "input_size": None if size is None else list(size),
            "batch_size": settings["batch_size"], "device": settings["device"],
            "threads": settings["threads"], "latency_ms": None, "exact": False,
            "machine": machine_info(device=settings["device"], threads=settings["threads"]),
            "timestamp_utc": utc_now()}


def time_session(session, x: np.ndarray, warmup: int, repeats: int) -> List[float]:
    """Per-repeat seconds of ``session.run(x)`` (every output returned as numpy), after
    ``warmup`` runs: the same loop as :func:`time_predictor`. A runtime in another process
    (Paddle Lite's child) times the same loop there (``session.timer``): its pipe would add
    about 0.9 ms per call."""
    if session.timer is not None:
        return list(session.timer(x, warmup, repeats))
    return time_calls(lambda: session.run(x), warmup, repeats)


def _time_session_rounds(export_dir: str, name: str, runtime: str, precision: str, *,
                         device: str, threads: int, warmup: int, repeats: int, rounds: int,
                         options: Optional[Dict[str, Any]]) -> Tuple[_PredictorRounds,
                                                                     Dict[str, Any]]:
    """Open ``rounds`` fresh sessions of the export folder and time each; the first session's
    untimed first runs are the check against the eager outputs saved in the folder."""
    x, reference, _ = reference_outputs(export_dir)
    round_samples, runtime_record = [], {}
    for round_index in range(rounds):
        with open_session(export_dir, runtime, threads=threads, precision=precision,
                          device=device, options=options) as session:
            if round_index == 0:
                max_abs_diff, output_scale = _parity(name, session.run(x), reference)
                parity = check_session(session, export_dir)
                runtime_record = parity.pop("session")
            round_samples.append(time_session(session, x, warmup, repeats))
    settings = runtime_record.get("settings", {})
    measured = _PredictorRounds(round_samples, bool(settings.get("mkldnn", False)),
                                list(settings.get("ir_pass_workarounds") or []),
                                runtime_record.get("artifact", ""), max_abs_diff, output_scale,
                                parity)
    return measured, runtime_record


def _formats_for(runtime: str, options: Optional[Dict[str, Any]]) -> Tuple[str, ...]:
    """The export formats ``runtime`` reads (ppnets.runtime.sessions, "Artifacts")."""
    if runtime == BACKEND:
        return ("paddle",)
    if runtime == "openvino" and (options or {}).get("source") == "paddle":
        return ("legacy",)
    return ("onnx",)


def _plain_name(model_or_name) -> str:
    if isinstance(model_or_name, str):
        return model_or_name
    return getattr(model_or_name, "model_name", None) or type(model_or_name).__name__


def _profile_or_none(model_or_name, input_size, features_only, out_indices):
    """(MACs, params) of a model or registry name; (None, None) when it cannot be built (an
    export folder of a model that is not in this registry)."""
    try:
        model, _, size = deploy_form(model_or_name, input_size, features_only, out_indices)
    except (KeyError, ValueError):
        return None, None
    return _profile(model, size)


def _export_for_session(model_or_name, settings: Dict[str, Any], workdir: Optional[str],
                        temporary: Optional[str], seed: int, formats: Sequence[str], features_only: bool,
                        out_indices, dygraph_mkldnn: Optional[bool]):
    """Export the deploy form into ``workdir/<name>`` (else ``temporary``) for a session run:
    (name, folder, MACs, params, eager samples when ``dygraph_mkldnn`` is not None)."""
    with _paddle_device(settings["device"]):
        model, name, size = deploy_form(model_or_name, settings["input_size"], features_only,
                                        out_indices)
        settings["input_size"] = size
        macs, params = _profile(model, size)
        folder = os.path.join(workdir, name) if workdir is not None else temporary
        x, _ = write_export_folder(model, name, size, settings["batch_size"], folder, seed,
                                   formats=formats)
        samples = None if dygraph_mkldnn is None else time_dygraph(
            model, x, settings["warmup"], settings["repeats"], settings["device"],
            settings["threads"], dygraph_mkldnn)
    return name, folder, macs, params, samples


def _session_benchmark(model_or_name, settings: Dict[str, Any], *, runtime: str,
                       precision: str, export_dir: Optional[str], workdir: Optional[str],
                       seed: int, dygraph: bool, mkldnn: bool, features_only: bool,
                       out_indices, options) -> Dict[str, Any]:
    """:func:`benchmark_model` through :func:`ppnets.runtime.open_session`."""
    name = _plain_name(model_or_name) if model_or_name is not None else None
    dygraph_samples, macs, params = None, None, None
    kept = export_dir is not None or workdir is not None  # the folder outlives the call
    if runtime == BACKEND:
        options = {"mkldnn": mkldnn, **(options or {})}
    with contextlib.ExitStack() as stack:
        if export_dir is not None:
            meta = _read_export(export_dir)
            name = name or meta.get("model", os.path.basename(os.path.abspath(export_dir)))
            settings.update(input_size=tuple(meta["input_size"]),
                            batch_size=int(meta.get("batch_size", 1)))
        reason = _unavailable_reason(runtime, precision) or (
            _needs_export_folder(runtime, precision) if export_dir is None else None)
        if reason is not None:
            return _unavailable_record(name, runtime, precision, reason, settings)
        if export_dir is None:
            temporary = None if workdir is not None else stack.enter_context(
                tempfile.TemporaryDirectory(prefix="ppnets-bench-"))
            name, export_dir, macs, params, dygraph_samples = _export_for_session(
                model_or_name, settings, workdir, temporary, seed,
                _formats_for(runtime, options), features_only, out_indices,
                mkldnn if dygraph else None)
        else:
            macs, params = _profile_or_none(model_or_name or name, settings["input_size"],
                                            features_only, out_indices)
        try:
            measured, runtime_record = _time_session_rounds(
                export_dir, name, runtime, precision, device=settings["device"],
                threads=settings["threads"], warmup=settings["warmup"],
                repeats=settings["repeats"], rounds=settings["rounds"], options=options)
        except (RuntimeUnavailableError, PrecisionUnsupportedError, FileNotFoundError,
                ValueError) as exc:   # ValueError: e.g. a CPU-only runtime asked for the GPU
            return _unavailable_record(name, runtime, precision,
                                       str(exc) + _export_errors(export_dir), settings)
        result = _result_record(name, settings["input_size"], settings["batch_size"],
                                settings["device"], settings["threads"],
                                runtime == BACKEND and options["mkldnn"],
                                settings["warmup"], macs, params, measured)
        result.update(backend=runtime, precision=precision, timed_region=SESSION_TIMED_REGION,
                      runtime_record=runtime_record,
                      outputs=int(measured.parity.get("num_outputs", 1)))
        if runtime != BACKEND:
            result.update(mkldnn=None, mkldnn_enabled=None)
        if kept:
            result["export_dir"] = os.path.abspath(export_dir)
    if dygraph_samples is not None:
        result["dygraph_latency_ms"] = latency_stats(dygraph_samples)
    return result


def _predictor_benchmark(model_or_name, settings: Dict[str, Any], *, mkldnn: bool,
                         dygraph: bool, workdir: Optional[str], seed: int, workarounds: bool,
                         features_only: bool, out_indices,
                         paddle_settings: str) -> Dict[str, Any]:
    """:func:`benchmark_model` for Paddle Inference fp32: the harness's own predictor."""
    input_size, batch_size, device, threads, warmup, repeats, rounds = (
        settings[k] for k in ("input_size", "batch_size", "device", "threads", "warmup",
                              "repeats", "rounds"))
    with _paddle_device(device):
        model, name, input_size = deploy_form(model_or_name, input_size, features_only,
                                              out_indices)
        macs, params = _profile(model, input_size)
        x, reference = _reference_outputs(model, batch_size, input_size, seed)
        dygraph_samples = None
        if dygraph:
            dygraph_samples = time_dygraph(model, x, warmup, repeats, device, threads, mkldnn)
        measured = _export_and_time(model, name, input_size, batch_size, x, reference, workdir,
                                    device=device, threads=threads, mkldnn=mkldnn,
                                    warmup=warmup, repeats=repeats, rounds=rounds,
                                    workarounds=workarounds, paddle_settings=paddle_settings)

    result = _result_record(name, input_size, batch_size, device, threads, mkldnn, warmup,
                            macs, params, measured)
    result["outputs"] = len(reference)
    result["paddle_settings"] = {"name": paddle_settings, **PADDLE_SETTINGS[paddle_settings]}
    if isinstance(model, FeatureBackbone):
        result.update(features_only=True, out_indices=list(model.out_indices))
    if dygraph_samples is not None:
        result["dygraph_latency_ms"] = latency_stats(dygraph_samples)
    if workdir is not None:
        result["model_file"] = measured.model_file
    return result


def benchmark_model(model_or_name: Union[str, nn.Layer, None] = None,
                    input_size: Optional[Sequence[int]] = None,
                    batch_size: int = 1, device: str = "cpu", threads: int = 1,
                    mkldnn: bool = True, warmup: int = 10, repeats: int = 50,
                    dygraph: bool = False, workdir: Optional[str] = None,
                    seed: int = 0, workarounds: bool = True, rounds: int = 1,
                    features_only: bool = False,
                    out_indices: Optional[Sequence[int]] = None,
                    runtime: str = BACKEND, precision: str = "fp32",
                    export_dir: Optional[str] = None, paddle_settings: str = "default",
                    options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Latency of one model's deploy form in one runtime at one precision (a JSON dict).

    ``model_or_name`` is a registry name (input size from ``ppnets.model_info`` unless given)
    or an ``nn.Layer`` (copied, so the caller's model is not fused or moved).
    ``features_only=True`` times the features-only backbone instead (the maps at
    ``out_indices``, :func:`ppnets.runtime.deploy_form`; a passed-in
    :class:`ppnets.models.features.FeatureBackbone` is timed as it is): the timed region copies
    every map to host, and every map is checked against eager. ``threads`` and
    ``mkldnn`` (oneDNN) apply to CPU. ``workdir`` keeps the exported model there (default: a
    temporary folder, deleted afterwards). ``dygraph=True`` also times eager execution of the
    same deploy-form model (``dygraph_latency_ms``). ``workarounds`` deletes the IR passes of
    :data:`KNOWN_PASS_CRASHES` that apply to the exported program (listed in the record's
    ``ir_pass_workarounds``); False builds the predictor with every pass, which on an affected
    Paddle version crashes the process. See docs/benchmarking.md for the schema.

    ``rounds`` fresh predictors (sessions) are timed one after the other (``warmup`` +
    ``repeats`` each): predictors of one program can run it at different steady speeds
    (docs/benchmarking.md). The record's statistics are those of the median round (the lower
    middle one for an even count), so every number in it comes from one real predictor.

    ``runtime`` / ``precision``: Paddle Inference fp32 without ``export_dir`` is the harness's
    own predictor (``paddle_settings``: :data:`PADDLE_SETTINGS`). Anything else, or an
    ``export_dir`` (its model, input size, batch and eager reference; ``model_or_name`` may be
    None), is timed through :func:`ppnets.runtime.open_session` (with ``options``): ``rounds``
    fresh sessions, the same loop, outputs checked by :func:`ppnets.runtime.check_session`
    (``parity``; ``exact`` only for fp32 within tolerance), plus ``runtime_record``. A runtime
    or precision that cannot run here, or a missing artifact, gives a record with ``status``
    "unavailable" and ``reason`` (the module docstring).
    """
    settings = check_settings(input_size=input_size, batch_size=batch_size, device=device,
                              threads=threads, warmup=warmup, repeats=repeats, rounds=rounds)
    _check_runtime(runtime, precision)
    _check_paddle_settings(paddle_settings)
    if model_or_name is None and export_dir is None:
        raise ValueError("benchmark_model needs a model (registry name or Layer) or an "
                         "export_dir")
    if runtime == BACKEND and precision == "fp32" and export_dir is None:
        return _predictor_benchmark(model_or_name, settings, mkldnn=mkldnn, dygraph=dygraph,
                                    workdir=workdir, seed=seed, workarounds=workarounds,
                                    features_only=features_only, out_indices=out_indices,
                                    paddle_settings=paddle_settings)
    if paddle_settings != "default":
        raise ValueError(f"paddle_settings={paddle_settings!r} configures the harness's own "
                         "Paddle Inference fp32 predictor: use it with runtime="
                         "'paddle_inference', precision='fp32' and no export_dir")
    return _session_benchmark(model_or_name, settings, runtime=runtime, precision=precision,
                              export_dir=export_dir, workdir=workdir, seed=seed,
                              dygraph=dygraph, mkldnn=mkldnn, features_only=features_only,
                              out_indices=out_indices, options=options)


def interleaved_runs(items: Dict[str, Tuple[Union[str, nn.Layer], Sequence[int]]],
                     rounds: int = 5, progress: Optional[Callable[[int, int, str], None]] = None,
                     **bench) -> Dict[str, List[Dict[str, Any]]]:
    """``rounds`` runs of ``ppnets.bench.benchmark_model`` per item (key -> (layer or registry
    name, input size)), round-robin: round r builds one fresh predictor per item before round
    r + 1.

    One predictor is not a measurement on this kind of machine: predictors built from the same
    program run a small block at either of two steady speeds up to 2x apart (each with a small
    IQR; e.g. an EfficientFormer MB3D at 32x32 gave 0.37 or 0.64 ms over 8 predictors on the
    2-core development VM, docs/search.md), and the machine has slow phases seconds long. The
    median over predictors takes the common speed; interleaving makes a slow phase touch one
    round of many items instead of every round of a few. (``benchmark_model(rounds=N)`` builds
    one item's predictors back to back from one export; this spreads them over the items.)"""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    runs: Dict[str, List[Dict[str, Any]]] = {key: [] for key in items}
    total, done = rounds * len(items), 0
    for _ in range(rounds):
        for key, (layer, input_size) in items.items():
            runs[key].append(benchmark_model(layer, input_size=tuple(input_size), **bench))
            done += 1
            if progress is not None:
                progress(done, total, key)
    return runs


def round_medians(runs: Sequence[Dict[str, Any]]) -> List[float]:
    return [float(r["latency_ms"]["median"]) for r in runs]


def latency_summary(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """One latency from the runs of :func:`interleaved_runs` for one item: ``median_ms`` is the
    median over the runs of each run's median; the rest says how far the runs spread and
    under what load the last one ran."""
    medians = round_medians(runs)
    return {"median_ms": float(np.median(medians)), "round_medians_ms": medians,
            "iqr_ms": [r["latency_ms"].get("iqr") for r in runs],
            "load_avg": runs[-1]["machine"]["load_avg"]}


_BENCH_ARGS = {"input_size", "batch_size", "device", "threads", "mkldnn", "warmup", "repeats",
               "dygraph", "workdir", "seed", "workarounds", "rounds", "features_only",
               "out_indices", "export_dir", "options"}


def _combinations(runtimes: Sequence[str], precisions: Sequence[str],
                  paddle_settings: Sequence[str], export_dir: Optional[str]):
    """(runtime, precision, paddle settings) to time, in a stable order."""
    for runtime in runtimes:
        for precision in precisions:
            if runtime == BACKEND and precision == "fp32" and export_dir is None:
                for settings in paddle_settings:
                    yield runtime, precision, settings
            else:
                yield runtime, precision, "default"


def _shared_export(name: str, kwargs: Dict[str, Any], stack: contextlib.ExitStack) -> str:
    """One export folder of ``name`` for all of its session runs (workdir/<name>, else a
    temporary folder that ``stack`` deletes)."""
    workdir = kwargs.get("workdir")
    with _paddle_device(kwargs.get("device", "cpu")):
        model, name, size = deploy_form(name, kwargs.get("input_size"),
                                        kwargs.get("features_only", False),
                                        kwargs.get("out_indices"))
        folder = (os.path.join(workdir, name) if workdir is not None else
                  stack.enter_context(tempfile.TemporaryDirectory(prefix="ppnets-bench-")))
        formats = ("paddle", "onnx") + _formats_for("openvino", kwargs.get("options"))
        write_export_folder(model, name, size, kwargs.get("batch_size", 1), folder,
                            kwargs.get("seed", 0), formats=formats)
    return folder


def _model_runs(name: Optional[str], combos, kwargs: Dict[str, Any],
                progress) -> List[Dict[str, Any]]:
    """Every combination of one model (or of the export folder ``kwargs['export_dir']``)."""
    results = []
    with contextlib.ExitStack() as stack:
        folder = kwargs.get("export_dir")
        sessions = [c for c in combos if not (c[0] == BACKEND and c[1] == "fp32"
                                              and folder is None)]
        runnable = [c for c in sessions if _unavailable_reason(c[0], c[1]) is None
                    and (folder is not None or _needs_export_folder(c[0], c[1]) is None)]
        if folder is None and len(runnable) > 1:
            folder = _shared_export(name, kwargs, stack)
        for runtime, precision, settings in combos:
            bench = dict(kwargs)
            if (runtime, precision, settings) in sessions and folder is not None and (
                    kwargs.get("export_dir") is not None
                    or _needs_export_folder(runtime, precision) is None):
                bench["export_dir"] = folder
            result = benchmark_model(name, runtime=runtime, precision=precision,
                                     paddle_settings=settings, **bench)
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def benchmark_models(names_or_patterns: Union[str, Sequence[str], None], *,
                     command: Optional[str] = None,
                     progress: Optional[Callable[[Dict[str, Any]], None]] = None,
                     runtimes: Union[str, Sequence[str]] = (BACKEND,),
                     precisions: Sequence[str] = ("fp32",),
                     paddle_settings: Sequence[str] = ("default",),
                     **kwargs) -> Dict[str, Any]:
    """Benchmark every model that the names/patterns resolve to, with one set of settings, in
    every runtime of ``runtimes`` (``"all"``: every available one) at every precision of
    ``precisions``; Paddle Inference fp32 once per :data:`PADDLE_SETTINGS` name in
    ``paddle_settings``.

    ``kwargs`` are :func:`benchmark_model`'s; with ``export_dir`` (an existing export folder)
    ``names_or_patterns`` may be None. A model's session runs share one export folder.
    ``progress`` is called with each result as it completes. Returns ``dict(schema, command,
    machine, runtimes, precisions, results=[...])``; a runtime or precision that cannot run here
    is a result with ``status`` "unavailable".
    """
    unknown = set(kwargs) - _BENCH_ARGS
    if unknown:
        raise TypeError(f"benchmark_models got unknown arguments {sorted(unknown)}")
    runtimes = resolve_runtimes(runtimes)
    for precision in precisions:
        _check_runtime(BACKEND, precision)
    for settings in paddle_settings:
        _check_paddle_settings(settings)
    if names_or_patterns is None and kwargs.get("export_dir") is None:
        raise ValueError("benchmark_models needs model names or an export_dir")
    names = ([None] if names_or_patterns is None else resolve_model_names(names_or_patterns))
    if command is None:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
        command = f"benchmark_models({names_or_patterns!r}{', ' + args if args else ''})"
    combos = list(_combinations(runtimes, precisions, paddle_settings, kwargs.get("export_dir")))
    results = []
    for name in names:
        results += _model_runs(name, combos, kwargs, progress)
    return {
        "schema": SCHEMA,
        "command": command,
        "machine": machine_info(device=kwargs.get("device", "cpu"),
                                threads=kwargs.get("threads", 1),
                                mkldnn=bool(kwargs.get("mkldnn", True))),
        "runtimes": runtimes,
        "precisions": list(precisions),
        "results": results,
    }
