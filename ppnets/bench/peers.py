"""Peer comparison: every ppnets runtime path beside ONNX Runtime, OpenVINO and PyTorch run by hand.

    ppnets peers --models resnet18 mobilenetv2_100 --threads 1 --json peers.json

    from ppnets.bench.peers import compare_peers, format_peers
    report = compare_peers(["resnet18"], threads=1)

For each model, on this machine, with the same thread count, batch, input and weights:

ppnets paths (:data:`PPNETS_PATHS`; ppnets exports the model and drives the runtime, so a
ppnets path through ONNX Runtime or OpenVINO is a ppnets path):

* ``paddle_inference``: the deploy form in Paddle Inference, :func:`ppnets.bench.benchmark_model`;
* ``paddle_inference_paddlex``: the same predictor with PaddleX's CPU settings
  (:data:`ppnets.bench.harness.PADDLE_SETTINGS` "paddlex");
* ``ppnets_onnxruntime`` / ``ppnets_openvino``: the model's export folder served by
  :func:`ppnets.runtime.open_session` (fp32, exact), timed by the same harness;
* ``paddle_lite``: the x86 ``.nb`` through its session, where Paddle Lite is installed and the
  caller passes a ``lite_exporter`` (the ``ppnets peers`` command does).

Peers run by hand (:data:`HAND_RUN`), each by its standard API on the same graph:

* ``onnxruntime``: the export's ``onnx/model.onnx`` (``paddle.onnx.export``, paddle2onnx) in
  ``onnxruntime.InferenceSession`` (``intra_op_num_threads=threads``, ``inter_op_num_threads=1``,
  all graph optimisations);
* ``openvino``: the same ONNX file, ``Core().compile_model(..., "CPU")`` with
  ``INFERENCE_NUM_THREADS=threads``, ``PERFORMANCE_HINT=LATENCY`` and
  ``INFERENCE_PRECISION_HINT=f32`` (exact fp32: OpenVINO's own default on a bf16-capable CPU is
  bf16), one infer request;
* ``torch_eager``: the reference implementation named by ``model_info(name)['reference']``
  (timm or torchvision) in its deploy form (timm's ``reparameterize_model``, then Conv-BN folding
  by ``torch.fx`` where the model traces; the record says which applied),
  ``torch.set_num_threads(threads)``, eager mode under ``inference_mode``, in a subprocess (torch
  and paddle never share a process).

All compute the same function: the reference's seeded random weights are written by the torch
subprocess and loaded into ppnets (``create_model(pretrained=...)``), whose deploy form every
other path runs; every output is compared with ppnets' eager output on the same input
(``max_rel_diff_vs_dygraph``: max |diff| / max(1, max |ours|)).

Every path is timed by the same loop (:mod:`ppnets.bench.timing`, loaded by path in the torch
subprocess) and reported in the bench schema (``backend`` is the runtime, ``peer`` the path),
with the latency ratio to Paddle Inference. The summary gives, per model, the fastest ppnets path
and its ratio to the fastest hand-run peer (target: <= :data:`PEER_TARGET`), and Paddle
Inference's own ratio to ONNX Runtime and PyTorch. The peak-compute reference is a measured
float32 SGEMM (numpy matmul, n=1024 by default) with 1 thread and with all available cores, so
each model's achieved FLOPS is also shown as a utilisation of this CPU.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle

from ppnets.factory import create_model
from ppnets.registry import model_info, resolve_model_names
from ppnets.runtime import deploy_form, reference_outputs, runtime_status, save_legacy
from ppnets.utils import machine_info
from ppnets.utils.signal_stack import keep_signal_stack

from .harness import SCHEMA, benchmark_model, write_export_folder
from .timing import latency_stats, time_calls

__all__ = ["PEERS", "PPNETS_PATHS", "HAND_RUN", "measure_sgemm_peak", "onnxruntime_record",
           "openvino_record", "torch_reference", "compare_peers", "summarize", "ORT_TARGET",
           "PEER_TARGET", "format_peers", "peers_markdown"]

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peer_child.py")
PPNETS_PATHS = ("paddle_inference", "paddle_inference_paddlex", "ppnets_onnxruntime",
                "ppnets_openvino", "paddle_lite")
HAND_RUN = ("onnxruntime", "openvino", "torch_eager")
PEERS = PPNETS_PATHS + HAND_RUN
# peer -> runtime of the ppnets paths served by ppnets.runtime sessions
_SESSION_PATHS = {"ppnets_onnxruntime": "onnxruntime", "ppnets_openvino": "openvino",
                  "paddle_lite": "paddle_lite"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
LiteExporter = Callable[[str, str, str, str, np.ndarray, List[np.ndarray]], Any]


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
    """A bench-schema record for a hand-run peer, sharing the Paddle record's settings."""
    median_s = samples_ms["median"] / 1e3
    rec = {k: base[k] for k in ("schema", "model", "input_size", "batch_size", "device",
                                "threads", "precision", "warmup", "macs", "params", "machine")}
    rec.update({
        "backend": backend, "peer": backend, "status": "measured", "mkldnn": None,
        "mkldnn_enabled": None, "deploy": True,
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


def onnxruntime_record(onnx_file: str, x: np.ndarray, ref: np.ndarray, base: Dict[str, Any],
                       warmup: int, repeats: int) -> Dict[str, Any]:
    """Time ``onnx_file`` (the export's ONNX graph) in ONNX Runtime, set up by hand with its
    standard API; its output is compared with ``ref`` (our eager output on ``x``)."""
    import onnxruntime as ort  # optional dependency (the onnx extra)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = base["threads"]
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = (["CUDAExecutionProvider"] if base["device"] == "gpu" else
                 ["CPUExecutionProvider"])
    sess = ort.InferenceSession(onnx_file, sess_options=opts, providers=providers)
    feed = {sess.get_inputs()[0].name: x}
    out = sess.run(None, feed)[0]  # untimed: parity check
    samples = time_calls(lambda: sess.run(None, feed), warmup, repeats)
    return _record("onnxruntime", base["model"], base, latency_stats(samples),
                   max_rel_diff_vs_dygraph=_max_diff(out, ref),
                   runtime=f"onnxruntime {ort.__version__}", export="paddle.onnx.export "
                   "(paddle2onnx) of the same deploy-form program, opset 13",
                   timed_region="InferenceSession.run() (outputs returned as numpy)")


def openvino_record(onnx_file: str, x: np.ndarray, ref: np.ndarray, base: Dict[str, Any],
                    warmup: int, repeats: int) -> Dict[str, Any]:
    """Time ``onnx_file`` in OpenVINO, compiled by hand with its standard API for exact fp32
    latency (``INFERENCE_PRECISION_HINT=f32``, ``PERFORMANCE_HINT=LATENCY``,
    ``INFERENCE_NUM_THREADS=threads``); its output is compared with ``ref``."""
    import openvino as ov  # optional dependency (the openvino extra)

    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": int(base["threads"])}
    with keep_signal_stack():   # OpenVINO may leave a freed one behind (the helper's doc)
        compiled = ov.Core().compile_model(onnx_file, "CPU", config)
        request = compiled.create_infer_request()
    output = compiled.outputs[0]
    out = np.array(request.infer({0: x})[output])  # untimed: parity check
    samples = time_calls(lambda: request.infer({0: x}), warmup, repeats)
    return _record("openvino", base["model"], base, latency_stats(samples),
                   max_rel_diff_vs_dygraph=_max_diff(out, ref),
                   runtime=f"openvino {ov.__version__}",
                   settings={k: str(v) for k, v in config.items()},
                   export="the same ONNX graph as onnxruntime",
                   timed_region="InferRequest.infer() (outputs copied to numpy)")


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


def _error(name: str, backend: str, exc: Exception) -> Dict[str, str]:
    return {"model": name, "backend": backend, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}


def _lite_artifact(model, name: str, folder: str, x: np.ndarray, refs: List[np.ndarray],
                   lite_exporter: Optional[LiteExporter]) -> Optional[str]:
    """Write ``folder/lite/model_x86.nb`` with ``lite_exporter`` where Paddle Lite is
    installed; the reason when it cannot be, else None."""
    status = runtime_status().get("paddle_lite") or {}
    if not status.get("available"):
        return status.get("reason") or "paddle_lite is not registered (import ppnets.deploy)"
    if lite_exporter is None:
        return ("compare_peers got no lite_exporter to convert the program to Paddle Lite's "
                ".nb (the `ppnets peers` command passes ppnets.deploy.lite_export)")
    model_file, params_file = save_legacy(model, x.shape[1:], x.shape[0],
                                          os.path.join(folder, "legacy"))
    lite_exporter(name, model_file, params_file, os.path.join(folder, "lite"), x, refs)
    return None


def _ppnets_paths(model, name: str, folder: str, peers: Sequence[str], bench: Dict[str, Any],
                  lite_exporter, unavailable: List[Dict[str, str]]) -> Dict[str, Dict]:
    """{peer: record} of the ppnets paths after the default Paddle Inference one."""
    recs: Dict[str, Dict[str, Any]] = {}
    if "paddle_inference_paddlex" in peers:
        recs["paddle_inference_paddlex"] = benchmark_model(model, paddle_settings="paddlex",
                                                           **bench)
    for peer, runtime in _SESSION_PATHS.items():
        if peer not in peers:
            continue
        if peer == "paddle_lite":
            x, refs, _ = reference_outputs(folder)
            reason = _lite_artifact(model, name, folder, x, refs, lite_exporter)
            if reason is not None:
                unavailable.append({"model": name, "peer": peer, "reason": reason})
                continue
        rec = benchmark_model(model, runtime=runtime, export_dir=folder, **bench)
        if rec["status"] == "unavailable":
            unavailable.append({"model": name, "peer": peer, "reason": rec["reason"]})
        else:
            recs[peer] = rec
    for peer, rec in recs.items():
        rec.update(model=name, peer=peer)
    return recs


def _hand_run(folder: str, x: np.ndarray, ref: np.ndarray, base: Dict[str, Any],
              peers: Sequence[str], warmup: int, repeats: int,
              errors: List[Dict[str, str]]) -> Dict[str, Dict[str, Any]]:
    recs = {}
    onnx_file = os.path.join(folder, "onnx", "model.onnx")
    for peer, runner in (("onnxruntime", onnxruntime_record), ("openvino", openvino_record)):
        if peer not in peers:
            continue
        try:
            recs[peer] = runner(onnx_file, x, ref, base, warmup, repeats)
        except Exception as exc:  # noqa: BLE001 - the other peers still run
            errors.append(_error(base["model"], peer, exc))
    return recs


def _model_records(name: str, batch_size: int, threads: int, warmup: int, repeats: int,
                   peers: Sequence[str], mkldnn: bool, errors: List[Dict[str, str]],
                   unavailable: List[Dict[str, str]],
                   lite_exporter: Optional[LiteExporter] = None) -> Dict[str, Dict[str, Any]]:
    """{peer: record} of one model, ppnets paths first; a peer that fails is appended to
    ``errors``, one that cannot run here to ``unavailable``."""
    size = tuple(model_info(name)["input_size"])
    x = np.random.default_rng(0).standard_normal((batch_size, *size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="ppnets-peers-") as tmp:
        torch_res = None
        if "torch_eager" in peers:
            try:
                torch_res = torch_reference(name, x, threads, warmup, repeats, tmp)
            except Exception as exc:  # noqa: BLE001 - the other peers still run
                errors.append(_error(name, "torch_eager", exc))
        # ours with the reference's weights: every backend computes the same function
        model, _, _ = deploy_form(create_model(
            name, pretrained=torch_res["weights"] if torch_res else None))
        with paddle.no_grad():
            ref = model(paddle.to_tensor(x))
        ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
        bench = dict(batch_size=batch_size, threads=threads, mkldnn=mkldnn, warmup=warmup,
                     repeats=repeats)
        base = benchmark_model(model, **bench)
        base.update(model=name, peer="paddle_inference")
        recs = {"paddle_inference": base}
        folder = os.path.join(tmp, "export")
        # the seeded input of the harness is this x (seed 0), so every path sees one input
        write_export_folder(model, name, size, batch_size, folder, seed=0)
        recs.update(_ppnets_paths(model, name, folder, peers, bench, lite_exporter,
                                  unavailable))
        recs.update(_hand_run(folder, x, ref, base, peers, warmup, repeats, errors))
        if torch_res is not None:
            recs["torch_eager"] = _torch_record(torch_res, base, ref)
    for e in errors:
        if e["model"] == name:
            print(f"{name} / {e['backend']} FAILED: {e['error']}", file=sys.stderr)
    return recs


def _table_row(name: str, peer: str, rec: Dict[str, Any], base_ms: float) -> Dict[str, Any]:
    return {"model": name, "backend": peer, "runtime": rec["backend"],
            "ppnets_path": peer in PPNETS_PATHS, "exact": rec.get("exact"),
            "median_ms": rec["latency_ms"]["median"], "iqr_ms": rec["latency_ms"]["iqr"],
            "ratio_to_paddle_inference": rec["latency_ms"]["median"] / base_ms,
            "gflops": rec["flops_per_s"] / 1e9, "utilisation": rec["utilisation_of_sgemm_peak"],
            "max_rel_diff_vs_dygraph": rec["max_rel_diff_vs_dygraph"]}


def compare_peers(names: Sequence[str], threads: int = 1, batch_size: int = 1,
                  warmup: int = 10, repeats: int = 50, peers: Sequence[str] = PEERS,
                  sgemm_n: int = 1024, mkldnn: bool = True,
                  lite_exporter: Optional[LiteExporter] = None) -> Dict[str, Any]:
    """Run every peer for every model (registry names or fnmatch patterns; KeyError for an
    unknown one); returns the report: dict(schema, machine, peak_sgemm, results, table,
    summary, errors, unavailable, ...), rendered by :func:`format_peers` /
    :func:`peers_markdown`. ``lite_exporter(name, model_file, params_file, out_dir, x, refs)``
    writes ``out_dir/model_x86.nb`` from a legacy program (``ppnets peers`` passes
    ``ppnets.deploy.lite_export``); without it, or without Paddle Lite, ``paddle_lite`` is
    listed under ``unavailable`` with the reason."""
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peers {unknown}; choose from {list(PEERS)}")
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
    unavailable: List[Dict[str, str]] = []
    for name in names:
        recs = _model_records(name, batch_size, threads, warmup, repeats, peers, mkldnn, errors,
                              unavailable, lite_exporter)
        base_ms = recs["paddle_inference"]["latency_ms"]["median"]
        for peer in PEERS:  # ppnets paths first, then the hand-run peers
            if peer not in recs:
                continue
            rec = recs[peer]
            rec["utilisation_of_sgemm_peak"] = rec["flops_per_s"] / peak_at["flops_per_s"]
            results.append(rec)
            table.append(_table_row(name, peer, rec, base_ms))
    load_end = machine_info(device="cpu", threads=threads, mkldnn=mkldnn).get("load_avg")
    workarounds = [{"model": r["model"], **w} for r in results
                   for w in r.get("ir_pass_workarounds") or []
                   if r.get("peer") == "paddle_inference"]
    return {"schema": SCHEMA, "kind": "peers", "machine": machine, "load_avg_end": load_end,
            "threads": threads, "batch_size": batch_size, "peak_sgemm": peak,
            "peers": list(peers), "results": results, "table": table,
            "summary": summarize(table), "errors": errors, "unavailable": unavailable,
            "ir_pass_workarounds": workarounds}


# Issue 14's target: Paddle Inference on the ppnets graph within this factor of ONNX Runtime on
# the same graph, and no slower than PyTorch eager in deploy form (still reported per model).
ORT_TARGET = 1.10
# Issue 25's target: the fastest exact ppnets path no slower than the fastest of ONNX Runtime,
# OpenVINO and PyTorch eager run by hand on the same graph.
PEER_TARGET = 1.0


def _fastest(ms: Dict[str, float], candidates: Sequence[str]):
    present = [(ms[c], c) for c in candidates if ms.get(c)]
    return min(present) if present else (None, None)


def summarize(table: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per model: the fastest exact ppnets path (a path whose outputs failed the check
    is left out) and its ratio to the fastest hand-run peer (target :data:`PEER_TARGET`), and
    Paddle Inference's ratios to ONNX Runtime and PyTorch (target :data:`ORT_TARGET` x ONNX
    Runtime, <= PyTorch eager)."""
    by_model: Dict[str, Dict[str, float]] = {}
    iqr: Dict[tuple, float] = {}
    for r in table:
        if r.get("exact") is False:   # a ppnets path that failed its output check
            continue
        by_model.setdefault(r["model"], {})[r["backend"]] = r["median_ms"]
        iqr[r["model"], r["backend"]] = r.get("iqr_ms") or 0.0
    rows = []
    for name, ms in by_model.items():
        pi, ort, pt = ms.get("paddle_inference"), ms.get("onnxruntime"), ms.get("torch_eager")
        best_ms, best = _fastest(ms, PPNETS_PATHS)
        peer_ms, peer = _fastest(ms, HAND_RUN)
        row = {"model": name, "paddle_inference_ms": pi, "onnxruntime_ms": ort,
               "openvino_ms": ms.get("openvino"), "torch_eager_ms": pt,
               "pi_over_ort": pi / ort if pi and ort else None,
               "pi_over_torch": pi / pt if pi and pt else None,
               "fastest_ppnets_path": best, "fastest_ppnets_ms": best_ms,
               "fastest_hand_run_peer": peer, "fastest_hand_run_ms": peer_ms,
               "ppnets_over_peer": best_ms / peer_ms if best_ms and peer_ms else None}
        row["within_ort_target"] = (None if row["pi_over_ort"] is None
                                    else row["pi_over_ort"] <= ORT_TARGET)
        row["not_slower_than_torch"] = (None if row["pi_over_torch"] is None
                                        else row["pi_over_torch"] <= 1.0)
        row["peer_target_met"] = (None if row["ppnets_over_peer"] is None
                                  else row["ppnets_over_peer"] <= PEER_TARGET)
        # e.g. ppnets_onnxruntime vs onnxruntime: one runtime, one graph, one setting -- a
        # difference inside either's IQR is a tie, not a verdict
        row["within_iqr"] = (None if row["ppnets_over_peer"] is None else
                             abs(best_ms - peer_ms) <= max(iqr[name, best], iqr[name, peer]))
        rows.append(row)
    return rows


def _cell(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def _mark(ok):
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _summary_lines(summary: Sequence[Dict[str, Any]]) -> List[str]:
    lines = ["", f"Target: the fastest exact ppnets path <= {PEER_TARGET:.2f}x the fastest of "
             "ONNX Runtime, OpenVINO and PyTorch eager run by hand on the same graph (a ppnets "
             "path through ONNX Runtime or OpenVINO counts: ppnets exports and drives it).", "",
             "| model | fastest ppnets path | (ms) | fastest hand-run peer | (ms) | ratio | "
             f"<= {PEER_TARGET:.2f} | difference within the IQR |",
             "|---|---|---:|---|---:|---:|---|---|"]
    for r in summary:
        tie = "n/a" if r.get("within_iqr") is None else ("yes" if r["within_iqr"] else "no")
        lines.append(f"| {r['model']} | {r['fastest_ppnets_path'] or 'n/a'} | "
                     f"{_cell(r['fastest_ppnets_ms'], '.2f')} | "
                     f"{r['fastest_hand_run_peer'] or 'n/a'} | "
                     f"{_cell(r['fastest_hand_run_ms'], '.2f')} | "
                     f"{_cell(r['ppnets_over_peer'], '.2f')} | {_mark(r['peer_target_met'])} | "
                     f"{tie} |")
    lines += ["", f"Paddle Inference itself: within {ORT_TARGET:.2f}x of ONNX Runtime on the same "
              "graph and no slower than PyTorch eager (deploy form).", "",
              "| model | Paddle Inference (ms) | ONNX Runtime (ms) | PI / ORT | "
              f"<= {ORT_TARGET:.2f} | PyTorch eager (ms) | PI / PyTorch | <= 1 |",
              "|---|---:|---:|---:|---|---:|---:|---|"]
    for r in summary:
        lines.append(
            f"| {r['model']} | {_cell(r['paddle_inference_ms'], '.2f')} | "
            f"{_cell(r['onnxruntime_ms'], '.2f')} | {_cell(r['pi_over_ort'], '.2f')} | "
            f"{_mark(r['within_ort_target'])} | {_cell(r['torch_eager_ms'], '.2f')} | "
            f"{_cell(r['pi_over_torch'], '.2f')} | {_mark(r['not_slower_than_torch'])} |")
    return lines


def format_peers(report: Dict[str, Any]) -> str:
    peak = report["peak_sgemm"]
    lines = [f"SGEMM peak (numpy float32 matmul, n={peak['single_thread']['n']}): "
             f"{peak['single_thread']['flops_per_s'] / 1e9:.1f} GFLOPS on 1 thread"
             + (f", {peak['all_threads']['flops_per_s'] / 1e9:.1f} GFLOPS on "
                f"{peak['all_threads']['threads']} threads" if "all_threads" in peak else ""),
             "",
             "| model | backend | ppnets path | median (ms) | IQR (ms) | x Paddle Inference | "
             "GFLOPS | % of SGEMM peak | output vs ours (max rel. diff) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["table"]:
        diff = r["max_rel_diff_vs_dygraph"]
        path = "no (by hand)" if not r.get("ppnets_path") else (
            "yes" if r.get("exact") is not False else "yes, **output check FAILED**")
        lines.append(f"| {r['model']} | {r['backend']} | {path} | "
                     f"{r['median_ms']:.3f} | "
                     f"{r['iqr_ms']:.3f} | {r['ratio_to_paddle_inference']:.2f} | "
                     f"{r['gflops']:.1f} | {100 * r['utilisation']:.1f} | "
                     f"{'n/a' if diff is None else f'{diff:.2e}'} |")
    if report.get("summary"):
        lines += _summary_lines(report["summary"])
    for u in report.get("unavailable") or []:
        lines.append(f"\n{u['model']} / {u['peer']}: not run here: {u['reason']}")
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
    lines = ["# Peer comparison: ppnets' runtime paths vs ONNX Runtime, OpenVINO and PyTorch "
             "eager run by hand", "",
             f"Command: `{report.get('command', 'ppnets peers')}`", "",
             f"Machine: {m.get('cpu_model')} ({m.get('arch')}, {m.get('available_cores')} of "
             f"{m.get('logical_cores')} cores available, governor {m.get('cpu_governor')}, load "
             f"average {load_start} at the start, {load_end} at the end); Paddle "
             f"{m.get('paddle_version')} (oneDNN build: {m.get('paddle_with_onednn')}).", "",
             f"Settings: {report['threads']} thread(s), batch {report['batch_size']}, deploy "
             "form, fp32 (every path exact; OpenVINO with INFERENCE_PRECISION_HINT=f32), median "
             "of individually timed repeats.", ""]
    peak_load = max((load_start or [0])[0], (load_end or [0])[0])
    if peak_load > cores:
        lines += [f"**Warning: load average {peak_load:.1f} exceeds the {cores} available cores "
                  "while this ran; timings are distorted by other processes.**", ""]
    return "\n".join(lines + [format_peers(report)]) + "\n"


if __name__ == "__main__":
    print("error: python -m ppnets.bench.peers is now `ppnets peers ...` (the same options)",
          file=sys.stderr)
    sys.exit(2)
