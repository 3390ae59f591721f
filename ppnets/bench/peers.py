"""Peer comparison: one architecture in Paddle Inference, ONNX Runtime and PyTorch, one run.

    ppnets peers --models resnet18 mobilenetv2_100 --threads 1 --json peers.json

    from ppnets.bench.peers import compare_peers, format_peers
    report = compare_peers(["resnet18"], threads=1)

For each model, on this machine, with the same thread count, batch and input:

* ``paddle_inference``: ours, deploy form, :func:`ppnets.bench.benchmark_model`;
* ``onnxruntime``: the same deploy-form model exported with ``paddle.onnx.export`` (paddle2onnx;
  the path that works with Paddle 3.3's PIR programs), run by ``onnxruntime.InferenceSession``
  (``intra_op_num_threads=threads``, ``inter_op_num_threads=1``, all graph optimisations); its
  output is compared with the eager model's;
* ``torch_eager``: the reference implementation named by ``model_info(name)['reference']`` (timm
  or torchvision) in its deploy form (timm's ``reparameterize_model``, then Conv-BN folding by
  ``torch.fx`` where the model traces; the record says which applied),
  ``torch.set_num_threads(threads)``, eager mode under ``inference_mode``, in a subprocess (torch
  and paddle never share a process).

All three compute the same function: the reference's seeded random weights are written by the
torch subprocess and loaded into ppnets (``create_model(pretrained=...)``), whose deploy form
Paddle Inference runs and ONNX Runtime runs as exported; every backend's output is compared with
ppnets' eager output on the same input (``max_rel_diff_vs_dygraph``: max |diff| / max(1,
max |ours|)).

Every backend is timed by the same loop (:mod:`ppnets.bench.timing`, loaded by path in the torch
subprocess) and reported in the bench schema (``backend`` says which), with the latency ratio to
Paddle Inference. The peak-compute reference is a measured float32 SGEMM (numpy matmul, n=1024 by
default) with 1 thread and with all available cores, so each model's achieved FLOPS is also
shown as a utilisation of this CPU.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Sequence

import numpy as np
import paddle

from ppnets.factory import create_model
from ppnets.registry import model_info, resolve_model_names
from ppnets.runtime import deploy_form
from ppnets.utils import machine_info

from .harness import SCHEMA, benchmark_model
from .timing import latency_stats, time_calls

__all__ = ["PEERS", "measure_sgemm_peak", "onnxruntime_record", "torch_reference",
           "compare_peers", "summarize", "ORT_TARGET", "format_peers", "peers_markdown"]

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peer_child.py")
PEERS = ("paddle_inference", "onnxruntime", "torch_eager")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _run_child(task: str, request: Dict[str, Any], threads: int, timeout: int = 1800):
    env = dict(os.environ)
    for var in _THREAD_VARS:
        env[var] = str(threads)
    with tempfile.TemporaryDirectory(prefix="ppnets-peer-") as tmp:
        req, out = os.path.join(tmp, "req.json"), os.path.join(tmp, "out.json")
        if "input_array" in request:
            np.save(os.path.join(tmp, "x.npy"), request.pop("input_array"))
            request["input"] = os.path.join(tmp, "x.npy")
        with open(req, "w", encoding="utf-8") as f:
            json.dump({"task": task, **request}, f)
        proc = subprocess.run([sys.executable, CHILD, req, out], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{task} subprocess failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-800:]}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def measure_sgemm_peak(threads: int, n: int = 1024, warmup: int = 3,
                       repeats: int = 10) -> Dict[str, Any]:
    """Measured float32 GEMM FLOP/s of this CPU with ``threads`` BLAS threads (a subprocess, so
    the thread count is set before numpy loads its BLAS)."""
    res = _run_child("sgemm", {"n": n, "warmup": warmup, "repeats": repeats}, threads)
    res["threads"] = threads
    return res


def _record(backend: str, name: str, base: Dict[str, Any], samples_ms: Dict[str, Any],
            **extra) -> Dict[str, Any]:
    """A bench-schema record for a peer backend, sharing the Paddle record's settings."""
    median_s = samples_ms["median"] / 1e3
    rec = {k: base[k] for k in ("schema", "model", "input_size", "batch_size", "device",
                                "threads", "precision", "warmup", "macs", "params", "machine")}
    rec.update({
        "backend": backend, "mkldnn": None, "mkldnn_enabled": None, "deploy": True,
        "latency_ms": samples_ms, "throughput_ips": base["batch_size"] / median_s,
        "flops_per_s": 2.0 * base["macs"] * base["batch_size"] / median_s,
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    })
    rec.update(extra)
    return rec


def _max_diff(out: np.ndarray, ref: np.ndarray) -> float:
    """max |out - ref| / max(1, max |ref|): random-weight logits range from 1e-9 to 1e9 across
    the zoo, so the difference is read relative to their scale."""
    ref = ref.astype(np.float64)
    return float(np.abs(out.astype(np.float64) - ref).max() / max(1.0, np.abs(ref).max()))


def onnxruntime_record(model, x: np.ndarray, ref: np.ndarray, base: Dict[str, Any],
                       warmup: int, repeats: int, opset: int = 13) -> Dict[str, Any]:
    """Export ``model`` (deploy form) with ``paddle.onnx.export`` and time it in ONNX
    Runtime; its output is compared with ``ref`` (our eager output on ``x``)."""
    import onnxruntime as ort  # optional dependency (the onnx extra)

    size, batch, threads = base["input_size"], base["batch_size"], base["threads"]
    with tempfile.TemporaryDirectory(prefix="ppnets-onnx-") as tmp:
        prefix = os.path.join(tmp, "model")
        spec = paddle.static.InputSpec([batch, *size], dtype="float32", name="x")
        paddle.onnx.export(model, prefix, input_spec=[spec], opset_version=opset)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = (["CUDAExecutionProvider"] if base["device"] == "gpu" else
                     ["CPUExecutionProvider"])
        sess = ort.InferenceSession(prefix + ".onnx", sess_options=opts, providers=providers)
    feed = {sess.get_inputs()[0].name: x}
    out = sess.run(None, feed)[0]  # untimed: parity check
    samples = time_calls(lambda: sess.run(None, feed), warmup, repeats)
    return _record("onnxruntime", base["model"], base, latency_stats(samples),
                   max_rel_diff_vs_dygraph=_max_diff(out, ref),
                   runtime=f"onnxruntime {ort.__version__}", export="paddle.onnx.export "
                   f"(paddle2onnx) of the same deploy-form program, opset {opset}",
                   timed_region="InferenceSession.run() (outputs returned as numpy)")


def torch_reference(name: str, x: np.ndarray, threads: int, warmup: int, repeats: int,
                    folder: str, seed: int = 0) -> Dict[str, Any]:
    """The reference implementation (timm/torchvision) in PyTorch eager, deploy form, in a
    subprocess: its seeded weights (``weights``, for ppnets to load), output and timing."""
    reference = model_info(name).get("reference")
    if not reference or "name" not in reference:
        raise ValueError(f"{name}: model_info has no 'reference' (lib, name) to build in PyTorch")
    weights, output = os.path.join(folder, "reference.safetensors"), \
        os.path.join(folder, "reference_out.npy")
    res = _run_child("torch", {"reference": {k: v for k, v in reference.items()
                                             if k in ("lib", "name")},
                               "threads": threads, "warmup": warmup, "repeats": repeats,
                               "seed": seed, "weights_out": weights, "output": output,
                               "input_array": x}, threads)
    res.update(weights=weights, output=np.load(output),
               reference=f"{reference.get('lib', 'timm')}:{reference['name']}")
    return res


def _torch_record(res: Dict[str, Any], base: Dict[str, Any], ref: np.ndarray):
    return _record("torch_eager", base["model"], base, res["latency_ms"],
                   reference=res["reference"], runtime=f"{res['framework']}, {res['library']}",
                   reference_params=res["params"], deploy_form=res["deploy_form"],
                   max_rel_diff_vs_dygraph=_max_diff(res["output"], ref),
                   timed_region="model(x) + .numpy() under torch.inference_mode() (the same "
                                "weights as ours; output compared)")


def _model_records(name: str, batch_size: int, threads: int, warmup: int, repeats: int,
                   peers: Sequence[str], mkldnn: bool,
                   errors: List[Dict[str, str]]) -> Dict[str, Dict[str, Any]]:
    """{backend: record} of one model; a backend that fails is appended to ``errors``."""
    size = tuple(model_info(name)["input_size"])
    x = np.random.default_rng(0).standard_normal((batch_size, *size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="ppnets-peers-") as tmp:
        torch_res = None
        if "torch_eager" in peers:
            try:
                torch_res = torch_reference(name, x, threads, warmup, repeats, tmp)
            except Exception as exc:  # noqa: BLE001 - the other peers still run
                errors.append({"model": name, "backend": "torch_eager",
                               "error": f"{type(exc).__name__}: {str(exc)[:400]}"})
        # ours with the reference's weights: every backend computes the same function
        model, _, _ = deploy_form(create_model(
            name, pretrained=torch_res["weights"] if torch_res else None))
        with paddle.no_grad():
            ref = model(paddle.to_tensor(x))
        ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
        base = benchmark_model(model, batch_size=batch_size, threads=threads,
                               mkldnn=mkldnn, warmup=warmup, repeats=repeats)
        base["model"] = name
        recs = {"paddle_inference": base}
        if "onnxruntime" in peers:
            try:
                recs["onnxruntime"] = onnxruntime_record(model, x, ref, base, warmup, repeats)
            except Exception as exc:  # noqa: BLE001
                errors.append({"model": name, "backend": "onnxruntime",
                               "error": f"{type(exc).__name__}: {str(exc)[:400]}"})
        if torch_res is not None:
            recs["torch_eager"] = _torch_record(torch_res, base, ref)
    for e in errors:
        if e["model"] == name:
            print(f"{name} / {e['backend']} FAILED: {e['error']}", file=sys.stderr)
    return recs


def compare_peers(names: Sequence[str], threads: int = 1, batch_size: int = 1,
                  warmup: int = 10, repeats: int = 50, peers: Sequence[str] = PEERS,
                  sgemm_n: int = 1024, mkldnn: bool = True) -> Dict[str, Any]:
    """Run every peer for every model (registry names or fnmatch patterns; KeyError for an
    unknown one); returns the report: dict(schema, machine, peak_sgemm, results, table,
    summary, errors, ...), rendered by :func:`format_peers` / :func:`peers_markdown`."""
    names = resolve_model_names(list(names))
    machine = machine_info(device="cpu", threads=threads, mkldnn=mkldnn)  # load at the start
    all_threads = machine.get("available_cores") or os.cpu_count() or 1
    peak = {"single_thread": measure_sgemm_peak(1, sgemm_n)}
    if all_threads > 1:
        peak["all_threads"] = measure_sgemm_peak(all_threads, sgemm_n)
    peak_at = peak["single_thread"] if threads == 1 else peak.get("all_threads",
                                                                   peak["single_thread"])
    results: List[Dict[str, Any]] = []
    table: List[Dict[str, Any]] = []
    errors: List[Dict[str, str]] = []
    for name in names:
        recs = _model_records(name, batch_size, threads, warmup, repeats, peers, mkldnn, errors)
        base_ms = recs["paddle_inference"]["latency_ms"]["median"]
        for backend, rec in recs.items():
            rec["utilisation_of_sgemm_peak"] = rec["flops_per_s"] / peak_at["flops_per_s"]
            results.append(rec)
            table.append({"model": name, "backend": backend,
                          "median_ms": rec["latency_ms"]["median"],
                          "iqr_ms": rec["latency_ms"]["iqr"],
                          "ratio_to_paddle_inference": rec["latency_ms"]["median"] / base_ms,
                          "gflops": rec["flops_per_s"] / 1e9,
                          "utilisation": rec["utilisation_of_sgemm_peak"],
                          "max_rel_diff_vs_dygraph": rec["max_rel_diff_vs_dygraph"]})
    load_end = machine_info(device="cpu", threads=threads, mkldnn=mkldnn).get("load_avg")
    workarounds = [{"model": r["model"], **w} for r in results
                   for w in r.get("ir_pass_workarounds") or []]
    return {"schema": SCHEMA, "kind": "peers", "machine": machine, "load_avg_end": load_end,
            "threads": threads, "batch_size": batch_size, "peak_sgemm": peak,
            "results": results, "table": table, "summary": summarize(table), "errors": errors,
            "ir_pass_workarounds": workarounds}


# The project's speed target (issue 14): Paddle Inference on the ppnets graph within this factor
# of ONNX Runtime on the same graph, and no slower than PyTorch eager in deploy form.
ORT_TARGET = 1.10


def summarize(table: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per model: each backend's median and Paddle Inference's ratio to the others,
    with whether the target (:data:`ORT_TARGET` x ONNX Runtime, <= PyTorch eager) is met."""
    by_model: Dict[str, Dict[str, float]] = {}
    for r in table:
        by_model.setdefault(r["model"], {})[r["backend"]] = r["median_ms"]
    rows = []
    for name, ms in by_model.items():
        pi, ort, pt = (ms.get(b) for b in PEERS)
        row = {"model": name, "paddle_inference_ms": pi, "onnxruntime_ms": ort,
               "torch_eager_ms": pt,
               "pi_over_ort": pi / ort if pi and ort else None,
               "pi_over_torch": pi / pt if pi and pt else None}
        row["within_ort_target"] = (None if row["pi_over_ort"] is None
                                    else row["pi_over_ort"] <= ORT_TARGET)
        row["not_slower_than_torch"] = (None if row["pi_over_torch"] is None
                                        else row["pi_over_torch"] <= 1.0)
        rows.append(row)
    return rows


def format_peers(report: Dict[str, Any]) -> str:
    peak = report["peak_sgemm"]
    lines = [f"SGEMM peak (numpy float32 matmul, n={peak['single_thread']['n']}): "
             f"{peak['single_thread']['flops_per_s'] / 1e9:.1f} GFLOPS on 1 thread"
             + (f", {peak['all_threads']['flops_per_s'] / 1e9:.1f} GFLOPS on "
                f"{peak['all_threads']['threads']} threads" if "all_threads" in peak else ""),
             "",
             "| model | backend | median (ms) | IQR (ms) | x Paddle Inference | GFLOPS | "
             "% of SGEMM peak | output vs ours (max rel. diff) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["table"]:
        diff = r["max_rel_diff_vs_dygraph"]
        lines.append(f"| {r['model']} | {r['backend']} | {r['median_ms']:.3f} | "
                     f"{r['iqr_ms']:.3f} | {r['ratio_to_paddle_inference']:.2f} | "
                     f"{r['gflops']:.1f} | {100 * r['utilisation']:.1f} | "
                     f"{'n/a' if diff is None else f'{diff:.2e}'} |")
    if report.get("summary"):
        def cell(v, fmt):
            return "n/a" if v is None else format(v, fmt)

        def mark(ok):
            return "n/a" if ok is None else ("yes" if ok else "**no**")

        lines += ["", f"Target: Paddle Inference within {ORT_TARGET:.2f}x of ONNX Runtime on the "
                  "same graph and no slower than PyTorch eager (deploy form).", "",
                  "| model | Paddle Inference (ms) | ONNX Runtime (ms) | PI / ORT | "
                  f"<= {ORT_TARGET:.2f} | PyTorch eager (ms) | PI / PyTorch | <= 1 |",
                  "|---|---:|---:|---:|---|---:|---:|---|"]
        for r in report["summary"]:
            lines.append(
                f"| {r['model']} | {cell(r['paddle_inference_ms'], '.2f')} | "
                f"{cell(r['onnxruntime_ms'], '.2f')} | {cell(r['pi_over_ort'], '.2f')} | "
                f"{mark(r['within_ort_target'])} | {cell(r['torch_eager_ms'], '.2f')} | "
                f"{cell(r['pi_over_torch'], '.2f')} | {mark(r['not_slower_than_torch'])} |")
    for e in report["errors"]:
        lines.append(f"\n{e['model']} / {e['backend']}: FAILED: {e['error']}")
    for w in report.get("ir_pass_workarounds") or []:
        lines.append(f"\n{w['model']} / paddle_inference: measured with IR pass "
                     f"{w['deleted_pass']} deleted (Paddle {w['paddle_version']} crashes with it "
                     f"on a program with {w['trigger_op']}; oneDNN on): {w['reason']}")
    return "\n".join(lines)


def peers_markdown(report: Dict[str, Any]) -> str:
    """The report as a Markdown page: command, machine (load average at the start and the
    end), settings and the table of :func:`format_peers`."""
    m = report["machine"]
    load_start, load_end = m.get("load_avg"), report.get("load_avg_end")
    cores = m.get("available_cores") or 1
    lines = ["# Peer comparison: Paddle Inference vs ONNX Runtime vs PyTorch eager", "",
             f"Command: `{report.get('command', 'ppnets peers')}`", "",
             f"Machine: {m.get('cpu_model')} ({m.get('arch')}, {m.get('available_cores')} of "
             f"{m.get('logical_cores')} cores available, governor {m.get('cpu_governor')}, load "
             f"average {load_start} at the start, {load_end} at the end); Paddle "
             f"{m.get('paddle_version')} (oneDNN build: {m.get('paddle_with_onednn')}).", "",
             f"Settings: {report['threads']} thread(s), batch {report['batch_size']}, deploy "
             "form, fp32, median of individually timed repeats.", ""]
    peak_load = max((load_start or [0])[0], (load_end or [0])[0])
    if peak_load > cores:
        lines += [f"**Warning: load average {peak_load:.1f} exceeds the {cores} available cores "
                  "while this ran; timings are distorted by other processes.**", ""]
    return "\n".join(lines + [format_peers(report)]) + "\n"


if __name__ == "__main__":
    print("error: python -m ppnets.bench.peers is now `ppnets peers ...` (the same options)",
          file=sys.stderr)
    sys.exit(2)
