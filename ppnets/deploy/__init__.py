"""Deployment: export + verification (Paddle Inference PIR, legacy .pdmodel, ONNX, Paddle Lite
.nb), Paddle Lite op-compatibility checks, on-device benchmarking, INT8 quantization and a
latency lookup table. See docs/deploy.md.

    from ppnets.deploy import export
    report = export("fasternet_t0", formats=("paddle", "onnx", "lite"), out_dir="exports/t0")

Command line: ``python -m ppnets.export --model fasternet_t0 --formats paddle onnx lite``.
"""
from .export import DEFAULT_ATOL, FORMATS, compare_outputs, export
from .legacy import old_ir_ops, save_legacy

__all__ = ["export", "FORMATS", "DEFAULT_ATOL", "compare_outputs", "save_legacy", "old_ir_ops"]
