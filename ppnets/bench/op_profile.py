"""Where the time goes: per-op-type profiles of one model in Paddle Inference and in ONNX
Runtime, run on the same deploy-form program (ONNX Runtime on its ``paddle.onnx.export``).

* Paddle Inference: the predictor's own profiler (``Config.enable_profile()``), whose report
  the C++ side prints when the predictor is destroyed; it is captured from file descriptor 1
  and parsed (event, calls, total ms). Events are Paddle's kernels (``onednn_op.fused_conv2d``,
  ``pd_op.onednn_to_paddle_layout``, ...): the time of a kernel includes its framework work
  (primitive lookup, memory descriptors), which is what separates it from the raw oneDNN time.
* ONNX Runtime: ``SessionOptions.enable_profiling``; node events are summed per ``op_name``
  (``FusedConv``, ``Concat``, ...).

Both are per run (total / runs) next to the measured latency; the remainder of each is what the
runtime spends outside its ops.
"""
from __future__ import annotations

import collections
import json
import os
import re
import tempfile
from typing import Any, Dict, List

import numpy as np
import paddle
from paddle import inference

from ppnets.runtime import export_onnx, export_program, stage_input
from ppnets.utils import markdown_table, redirect_fd

from .timing import latency_stats, time_calls

__all__ = ["paddle_profile", "onnxruntime_profile", "profile_model", "format_profile"]

_ROW = re.compile(r"^(\S+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s*$")


def parse_paddle_report(text: str) -> Dict[str, Dict[str, float]]:
    """{event: {calls, total_ms}} of the first 'Event Summary' table of the profiler report
    (the one that merges every thread), without the nested ``infermeta`` rows."""
    events: Dict[str, Dict[str, float]] = {}
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Event  ")), None)
    if start is None:
        raise ValueError("no 'Event' table in the Paddle Inference profiler report")
    for line in lines[start + 1:]:
        if not line.strip():
            break
        m = _ROW.match(line.strip())
        if m and not line.startswith(" "):
            events[m.group(1)] = {"calls": int(m.group(2)), "total_ms": float(m.group(3))}
    return events


def paddle_profile(model_file: str, params_file: str, x: np.ndarray, runs: int = 50,
                   threads: int = 1, mkldnn: bool = True) -> Dict[str, Any]:
    config = inference.Config(model_file, params_file)
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    if mkldnn:
        config.enable_mkldnn()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    config.enable_profile()
    with tempfile.TemporaryDirectory(prefix="ppnets-prof-") as tmp:
        report = os.path.join(tmp, "report.txt")
        cwd = os.getcwd()
        os.chdir(tmp)  # the profiler also writes a binary profile.log into the working folder
        try:
            with open(report, "w") as captured, redirect_fd(1, captured):
                predictor = inference.create_predictor(config)
                stage_input(predictor, x)
                for _ in range(runs):
                    predictor.run()
                del predictor  # the report is printed now
        finally:
            os.chdir(cwd)
        with open(report, encoding="utf-8", errors="replace") as f:
            events = parse_paddle_report(f.read())
    return {"runtime": f"paddle_inference {paddle.__version__}", "runs": runs,
            "ops_ms_per_run": {k: v["total_ms"] / runs for k, v in events.items()},
            "calls_per_run": {k: v["calls"] / runs for k, v in events.items()}}


def onnxruntime_profile(onnx_file: str, x: np.ndarray, runs: int = 50,
                        threads: int = 1) -> Dict[str, Any]:
    import onnxruntime as ort  # optional dependency (the onnx extra)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="ppnets-ortprof-") as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(onnx_file, sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(runs + 1):
            sess.run(None, feed)
        with open(sess.end_profiling(), encoding="utf-8") as f:
            trace = json.load(f)
    per_op: Dict[str, float] = collections.defaultdict(float)
    calls: Dict[str, int] = collections.defaultdict(int)
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", event["name"])
            per_op[op] += event["dur"] / 1e3
            calls[op] += 1
    total_runs = runs + 1
    return {"runtime": f"onnxruntime {ort.__version__}", "runs": total_runs,
            "ops_ms_per_run": {k: v / total_runs for k, v in per_op.items()},
            "calls_per_run": {k: v / total_runs for k, v in calls.items()}}


def profile_model(model, input_size, threads: int = 1, runs: int = 50,
                  warmup: int = 10) -> Dict[str, Any]:
    """Both profiles of a deploy-form model and both measured latencies (ms per run)."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, *input_size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="ppnets-profile-") as tmp:
        mf, pf = export_program(model, input_size, 1, tmp)
        pp = paddle_profile(mf, pf, x, runs, threads)
        config = inference.Config(mf, pf)
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        config.enable_mkldnn()
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        stage_input(predictor, x)
        pp["latency_ms"] = latency_stats(time_calls(predictor.run, warmup, runs))["median"]
        prefix = os.path.join(tmp, "model")
        export_onnx(model, [1, *input_size], prefix)
        op = onnxruntime_profile(prefix + ".onnx", x, runs, threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(prefix + ".onnx", sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        op["latency_ms"] = latency_stats(time_calls(lambda: sess.run(None, feed), warmup,
                                                    runs))["median"]
    return {"paddle_inference": pp, "onnxruntime": op, "threads": threads,
            "input_size": list(input_size)}


def format_profile(name: str, prof: Dict[str, Any], top: int = 12) -> str:
    """Two tables, the ops of each runtime by time, with the share outside the ops."""
    out: List[str] = [f"### {name}: where the time goes ({prof['threads']} thread(s))", ""]
    for key in ("paddle_inference", "onnxruntime"):
        p = prof[key]
        ops = sorted(p["ops_ms_per_run"].items(), key=lambda kv: -kv[1])
        in_ops = sum(v for _, v in ops)
        rows = [[op, p["calls_per_run"][op], ms, 100 * ms / p["latency_ms"]]
                for op, ms in ops[:top]]
        rows.append(["(latency minus profiled ops; < 0: profiler overhead)", None,
                     p["latency_ms"] - in_ops,
                     100 * (p["latency_ms"] - in_ops) / p["latency_ms"]])
        out += [f"{p['runtime']}: {p['latency_ms']:.2f} ms per run (median, unprofiled)", "",
                markdown_table(["op", "calls/run", "ms/run", "% of latency"], rows,
                               digits=[0, 0, 3, 1]), ""]
    return "\n".join(out)
