"""Deployment: export + verification (Paddle Inference PIR, legacy .pdmodel, ONNX, Paddle Lite
.nb), Paddle Lite op-compatibility checks, on-device benchmarking, INT8 quantization and a
latency lookup table. See docs/deploy.md.

    from ppnets.deploy import export
    report = export("fasternet_t0", formats=("paddle", "onnx", "lite"), out_dir="exports/t0")

Command line: ``ppnets export --model fasternet_t0 --formats paddle onnx lite``.
The Paddle Inference programs themselves (deploy form, legacy program, predictor, output
comparison) are :mod:`ppnets.runtime`'s.
"""
from .formats import FORMATS, export

__all__ = ["export", "FORMATS"]
