"""Latency of ppnets models in every runtime, measured honestly (docs/benchmarking.md).

    from ppnets.bench import benchmark_model, benchmark_models
    res = benchmark_model("resnet18", threads=1)          # one model -> JSON-serialisable dict
    res = benchmark_model("resnet18", runtime="openvino", precision="bf16")
    table = benchmark_models(["spconv_*"], threads=4, runtimes="all")  # dict(..., results)
    from ppnets.bench.recommend import recommend          # the fastest exact runtime

Command line: ``ppnets bench --models resnet18 --runtime all --json out.json``;
``ppnets bench --recommend --models resnet18``; ``ppnets peers`` compares ppnets' runtime paths
with ONNX Runtime, OpenVINO and PyTorch run by hand (:mod:`ppnets.bench.peers`). Exporting the
deploy form, configuring the predictor and opening runtime sessions is :mod:`ppnets.runtime`'s
job; this package times it.
"""
from .harness import (BACKEND, PADDLE_SETTINGS, SCHEMA, benchmark_model, benchmark_models,
                      check_settings, format_table, interleaved_runs, latency_stats,
                      latency_summary, resolve_runtimes, round_medians, time_calls,
                      time_dygraph, time_predictor, time_session, write_export_folder)

__all__ = ["BACKEND", "PADDLE_SETTINGS", "SCHEMA", "benchmark_model", "benchmark_models",
           "check_settings", "format_table", "interleaved_runs", "latency_stats",
           "latency_summary", "resolve_runtimes", "round_medians", "time_calls", "time_dygraph",
           "time_predictor", "time_session", "write_export_folder"]
