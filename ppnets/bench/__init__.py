"""Latency of ppnets models under Paddle Inference, measured honestly (docs/benchmarking.md).

    from ppnets.bench import benchmark_model, benchmark_models
    res = benchmark_model("resnet18", threads=1)          # one model -> JSON-serialisable dict
    table = benchmark_models(["spconv_*"], threads=4)     # dict(schema, command, machine, results)

Command line: ``ppnets bench --models resnet18 --threads 1 --json out.json``; ``ppnets peers``
compares backends (:mod:`ppnets.bench.peers`). Exporting the deploy form and configuring the
predictor is :mod:`ppnets.runtime`'s job; this package times it.
"""
from .harness import (BACKEND, SCHEMA, benchmark_model, benchmark_models, check_settings,
                      format_table, interleaved_runs, latency_stats, latency_summary,
                      round_medians, time_calls, time_dygraph, time_predictor)

__all__ = ["BACKEND", "SCHEMA", "benchmark_model", "benchmark_models", "check_settings",
           "format_table", "interleaved_runs", "latency_stats", "latency_summary",
           "round_medians", "time_calls", "time_dygraph", "time_predictor"]
