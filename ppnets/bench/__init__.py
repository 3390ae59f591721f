"""Latency of ppnets models under Paddle Inference, measured honestly (docs/benchmarking.md).

    from ppnets.bench import benchmark_model, benchmark_models, machine_info
    res = benchmark_model("resnet18", threads=1)          # one model -> JSON-serialisable dict
    table = benchmark_models(["spconv_*"], threads=4)     # dict(schema, command, machine, results)

Command line: ``python -m ppnets.bench --models resnet18 --threads 1 --json out.json``.
"""
from .harness import (BACKEND, KNOWN_PASS_CRASHES, SCHEMA, benchmark_model, benchmark_models,
                      check_settings, create_predictor, export_model, format_table, latency_stats,
                      make_config, pass_workarounds, program_op_names, resolve_model_names,
                      run_predictor, time_calls, time_dygraph, time_predictor, write_json)
from .machine import cpu_model, gpu_name, machine_info

__all__ = ["BACKEND", "KNOWN_PASS_CRASHES", "SCHEMA", "benchmark_model", "benchmark_models",
           "check_settings", "create_predictor", "export_model", "format_table", "latency_stats",
           "make_config", "pass_workarounds", "program_op_names", "resolve_model_names",
           "run_predictor", "time_calls", "time_dygraph", "time_predictor", "write_json",
           "cpu_model", "gpu_name", "machine_info"]
