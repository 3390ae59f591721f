"""The latency lookup table of the searches (EfficientFormer §4 step 2; EfficientFormerV2 §4).

A search space describes a network as a list of *block specs*: dicts ``{"key", "input_size",
"build"}`` where ``key`` names the block and its shape (``v1/mb4d|c=96|hw=8x8|mlp=4``),
``input_size`` is its (C, H, W) input and ``build()`` returns the block as a layer. The
predicted latency of a network is the sum of its blocks' entries -- nothing else.

:class:`LatencyLUT` is :class:`ppnets.deploy.lut.LatencyTable` (same JSON file,
``ppnets.lut/1``, same measurement) with a *target*:

* ``cpu`` / ``gpu``: a missing entry is measured with :func:`ppnets.bench.benchmark_model` on
  that Paddle Inference device (the block alone, deploy form; the median over fresh predictors);
* ``file``: a table measured elsewhere -- an ARM phone or board through Paddle Lite -- is only
  read; a missing entry is an error that names the key and how to measure it.

ARM workflow (docs/search.md): :func:`ppnets.deploy.lut.export_lite_grid` writes every block of
the search grid as a Paddle Lite ``.nb`` plus ``manifest.json`` and copies the device-side
runner (``lut_device.py`` with ``lite_runner.py`` of ``ppnets/cli/device/`` and their helpers,
:data:`ppnets.deploy.lite.DEVICE_FILES`) into the same folder; on the device ``python3
lut_device.py --grid . --out lut_arm.json`` times each block; the search then runs with ``--lut
lut_arm.json``.

Blocks whose input is a token sequence (EfficientFormer's Meta3D, the V1 head) are measured on
a (T, C, 1) input that :class:`~ppnets.deploy.lut.TokensInput` squeezes to (T, C): the exporter
takes 4D inputs only, and a squeeze costs about nothing. A parameter-free block gets the zero
scalar of ``ppnets.deploy.lut`` added (the exporter needs a params file). Both are part of the
entry, and of the reported prediction error.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional

from ppnets.analysis import count_params
from ppnets.bench import interleaved_runs, latency_summary, round_medians
from ppnets.deploy.lut import (DEVICE_FILES, LatencyTable, TokensInput, export_lite_grid,
                               median_over_predictors, prediction_error)
from ppnets.deploy.lut import unique_blocks as unique_specs

__all__ = ["TARGETS", "BlockSpec", "TokensInput", "LatencyLUT", "ParamCounter", "DEVICE_FILES",
           "median_over_predictors", "interleaved_runs", "round_medians", "latency_summary",
           "prediction_error", "export_lite_grid", "unique_specs"]

TARGETS = ("cpu", "gpu", "file")
BlockSpec = Dict[str, Any]   # {"key": str, "input_size": (C, H, W), "build": () -> nn.Layer}


class LatencyLUT(LatencyTable):
    """key -> median latency (ms) on one target; ``ppnets.lut/1`` JSON (see module docstring):
    :class:`ppnets.deploy.lut.LatencyTable` with the search's name for its device."""

    def __init__(self, path: Optional[str] = None, target: str = "cpu", threads: int = 1,
                 warmup: int = 5, repeats: int = 20, rounds: int = 5):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        super().__init__(path, threads=threads, warmup=warmup, repeats=repeats, rounds=rounds,
                         device=target)

    @property
    def target(self) -> str:
        return self.device

    def describe(self) -> Dict[str, Any]:
        return {"path": os.path.abspath(self.path) if self.path else None,
                "target": self.target, "entries": len(self.entries), "meta": self.meta}


class ParamCounter:
    """Parameters of a network as the sum over its block specs (each key built once); equal to
    ``ppnets.analysis`` counting the whole model, as every parameter sits in one block."""

    def __init__(self):
        self.cache: Dict[str, int] = {}

    def __call__(self, specs: Iterable[BlockSpec]) -> int:
        total = 0
        for spec in specs:
            if spec["key"] not in self.cache:
                self.cache[spec["key"]] = count_params(spec["build"]())
            total += self.cache[spec["key"]]
        return total
