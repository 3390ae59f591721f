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
"""
from __future__ import annotations

import contextlib
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
from ppnets.runtime import (check_input_size, deploy_form, export_program, make_config,
                            pass_workarounds, run_predictor, stage_input)
from ppnets.utils import gpu_name, machine_info, utc_now

from .timing import latency_stats, time_calls  # the one timing loop (framework-free module)

__all__ = ["SCHEMA", "BACKEND", "benchmark_model", "benchmark_models", "interleaved_runs",
           "round_medians", "latency_summary", "time_predictor", "time_dygraph", "time_calls",
           "latency_stats", "check_settings", "format_table"]

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


def _time_predictor_rounds(model_file: str, params_file: str, name: str, x: np.ndarray,
                           reference: List[np.ndarray], *, device: str, threads: int,
                           mkldnn: bool, warmup: int, repeats: int, rounds: int,
                           workarounds: bool) -> _PredictorRounds:
    """Build ``rounds`` fresh predictors of the exported program and time each; the first
    round's untimed first run is also the parity check against the eager ``reference``."""
    applied = pass_workarounds(model_file, device, mkldnn) if workarounds else []
    round_samples = []
    for round_index in range(rounds):
        # a Paddle Inference config serves one predictor only
        config = make_config(model_file, params_file, device, threads, mkldnn,
                             delete_passes=[w["deleted_pass"] for w in applied])
        mkldnn_enabled = bool(config.mkldnn_enabled())
        predictor = paddle.inference.create_predictor(config)
        if round_index == 0:   # first run: untimed, also the parity check
            max_abs_diff, output_scale = _parity(name, run_predictor(predictor, x), reference)
        round_samples.append(time_predictor(predictor, x, warmup, repeats))
        del predictor
    return _PredictorRounds(round_samples, mkldnn_enabled, applied, model_file, max_abs_diff,
                            output_scale)


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
                   threads: int, mkldnn: bool, warmup: int, macs: int, params: int,
                   measured: _PredictorRounds) -> Dict[str, Any]:
    """The benchmark record (schema :data:`SCHEMA`, docs/benchmarking.md)."""
    latency, round_medians = _median_round(measured.samples)
    median_s = latency["median"] / 1e3
    return {
        "schema": SCHEMA,
        "backend": BACKEND,
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
        "flops_per_s": 2.0 * macs * batch_size / median_s,
        "max_abs_diff_vs_dygraph": measured.max_abs_diff,
        # relative to max(1, max|eager output|): comparable across models' logit scales
        "max_rel_diff_vs_dygraph": measured.max_abs_diff / measured.output_scale,
        "ir_pass_workarounds": measured.applied,
        "machine": machine_info(device=device, threads=threads, mkldnn=bool(mkldnn)),
        "timestamp_utc": utc_now(),
    }


def benchmark_model(model_or_name: Union[str, nn.Layer], input_size: Optional[Sequence[int]] = None,
                    batch_size: int = 1, device: str = "cpu", threads: int = 1,
                    mkldnn: bool = True, warmup: int = 10, repeats: int = 50,
                    dygraph: bool = False, workdir: Optional[str] = None,
                    seed: int = 0, workarounds: bool = True, rounds: int = 1,
                    features_only: bool = False,
                    out_indices: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Latency of one model's deploy form under Paddle Inference; a JSON-serialisable dict.

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

    ``rounds`` builds that many predictors from the exported program, one after the other, and
    times each (``warmup`` + ``repeats``): predictors built from the same program can run it at
    different steady speeds (MobileNetV3-Small-0.5: 2.60-4.28 ms over 8 predictors on the 2-core
    development VM, docs/benchmarking.md). The record's statistics are those of the median
    round -- the round whose median is the median of ``round_medians_ms`` (the lower of the two
    middle ones for an even count) -- so every number in it comes from one real predictor.
    """
    settings = check_settings(input_size=input_size, batch_size=batch_size, device=device,
                              threads=threads, warmup=warmup, repeats=repeats, rounds=rounds)
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
                                    workarounds=workarounds)

    result = _result_record(name, input_size, batch_size, device, threads, mkldnn, warmup,
                            macs, params, measured)
    result["outputs"] = len(reference)
    if isinstance(model, FeatureBackbone):
        result.update(features_only=True, out_indices=list(model.out_indices))
    if dygraph_samples is not None:
        result["dygraph_latency_ms"] = latency_stats(dygraph_samples)
    if workdir is not None:
        result["model_file"] = measured.model_file
    return result


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


def benchmark_models(names_or_patterns: Union[str, Sequence[str]], *,
                     command: Optional[str] = None,
                     progress: Optional[Callable[[Dict[str, Any]], None]] = None,
                     **kwargs) -> Dict[str, Any]:
    """Benchmark every model that the names/patterns resolve to, with one set of settings.

    ``kwargs`` are :func:`benchmark_model`'s. ``progress`` is called with each result as it
    completes. Returns ``dict(schema, command, machine, results=[...])``.
    """
    unknown = set(kwargs) - {"input_size", "batch_size", "device", "threads", "mkldnn", "warmup",
                             "repeats", "dygraph", "workdir", "seed", "workarounds", "rounds",
                             "features_only", "out_indices"}
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
