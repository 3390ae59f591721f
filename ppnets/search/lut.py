"""The latency lookup table of the searches (EfficientFormer §4 step 2; EfficientFormerV2 §4).

A search space describes a network as a list of *block specs*: dicts ``{"key", "input_size",
"build"}`` where ``key`` names the block and its shape (``v1/mb4d|c=96|hw=8x8|mlp=4``),
``input_size`` is its (C, H, W) input and ``build()`` returns the block as a layer. The
predicted latency of a network is the sum of its blocks' entries -- nothing else.

:class:`LatencyLUT` extends :class:`ppnets.deploy.lut.LatencyTable` (same JSON file,
``ppnets.lut/1``) with a *target*:

* ``cpu`` / ``gpu``: a missing entry is measured at once with :func:`ppnets.bench.benchmark_model`
  on that Paddle Inference device (the block alone, deploy form, median of the repeats);
* ``file``: a table measured elsewhere -- an ARM phone or board through Paddle Lite -- is only
  read; a missing entry is an error that names the key and how to measure it.

ARM workflow (docs/search.md): :func:`export_lite_grid` writes every block of the search grid
as a Paddle Lite ``.nb`` plus ``manifest.json`` and copies the device-side runner
(:mod:`ppnets.search.lut_device` with ``ppnets.deploy.lite_runner`` and its helpers) into the same
folder; on the device ``python3 lut_device.py --grid . --out lut_arm.json`` times each block;
the search then runs with ``--lut lut_arm.json``.

Blocks whose input is a token sequence (EfficientFormer's Meta3D, the V1 head) are measured on
a (T, C, 1) input that the wrapper squeezes to (T, C): the exporter takes 4D inputs only, and a
squeeze costs about nothing. A parameter-free block gets the zero scalar of
``ppnets.deploy.lut`` added (the exporter needs a params file). Both are part of the entry, and
of the reported prediction error.
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

import ppnets.utils.machine as machine_module
from ppnets.analysis import count_params
from ppnets.deploy import lite_runner
from ppnets.deploy.formats import export as export_formats
from ppnets.deploy.lite import CHILD as LITE_CHILD
from ppnets.deploy.lite import TIMING as LITE_TIMING
from ppnets.deploy.lut import (LatencyTable, _layer_of, _measurable, _spearman, interleaved_runs,
                               latency_summary, median_over_predictors, round_medians)
from ppnets.deploy.lut import unique_blocks as unique_specs
from ppnets.utils import atomic_write_json, utc_now

from . import lut_device

__all__ = ["TARGETS", "BlockSpec", "TokensInput", "LatencyLUT", "ParamCounter",
           "median_over_predictors", "interleaved_runs", "round_medians", "latency_summary",
           "prediction_error", "export_lite_grid", "unique_specs"]

TARGETS = ("cpu", "gpu", "file")
BlockSpec = Dict[str, Any]   # {"key": str, "input_size": (C, H, W), "build": () -> nn.Layer}


class TokensInput(nn.Layer):
    """A token block measured on a (N, T, C, 1) input: squeeze the last axis, run the block."""

    def __init__(self, block: nn.Layer):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(paddle.squeeze(x, axis=-1))


class LatencyLUT(LatencyTable):
    """key -> median latency (ms) on one target; ``ppnets.lut/1`` JSON (see module docstring).

    ``cpu``/``gpu`` measure as :class:`ppnets.deploy.lut.LatencyTable` does; ``file`` only
    reads, and a missing entry is an error that says how to measure the grid on the device."""

    def __init__(self, path: Optional[str] = None, target: str = "cpu", threads: int = 1,
                 warmup: int = 5, repeats: int = 20, rounds: int = 5):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if target == "file" and not (path and os.path.isfile(path)):
            raise FileNotFoundError(
                f"latency table {path!r} not found. A 'file' target reads a table measured on "
                "the device (docs/search.md: export the grid with --export-lite-grid, run "
                "lut_device.py there, bring its JSON back and pass it with --lut).")
        super().__init__(path, threads=threads, warmup=warmup, repeats=repeats, rounds=rounds,
                         device="cpu" if target == "file" else target)
        self.target = target

    def measure(self, block: Dict[str, Any]) -> float:
        """The entry of ``block``; measured now when missing and the target is a Paddle
        Inference device (its rounds back to back: :meth:`fill` a whole grid first to
        interleave them)."""
        if self.target == "file" and block["key"] not in self.entries:
            raise KeyError(
                f"the latency table {self.path} has no entry {block['key']!r}: it was built for "
                "another search grid (image size, widths, classes). Export this grid with "
                "--export-lite-grid, time it on the device with lut_device.py, and pass the "
                "new table with --lut.")
        return super().measure(block)

    def fill(self, specs: Iterable[BlockSpec],
             progress: Optional[Callable[[int, int, str], None]] = None) -> int:
        """Measure every missing entry of ``specs`` (round-robin, see
        :meth:`LatencyTable.fill`); a table from another device (``file``) names the missing
        keys instead."""
        todo = self.missing(specs)
        if todo and self.target == "file":
            raise KeyError(
                f"the latency table {self.path} lacks {len(todo)} entries of this search grid, "
                f"e.g. {todo[:3]}: it was built for another grid (image "
                "size, widths, classes). Export this grid with --export-lite-grid, time it on "
                "the device with lut_device.py, and pass the new table with --lut.")
        return super().fill(specs, progress)

    def save(self, path: Optional[str] = None) -> None:
        """Write the table; a table from another device (``file``) is never rewritten."""
        if self.target != "file" or path:
            super().save(path)

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


def prediction_error(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Relative error of predicted vs measured latency over ``rows`` (each with
    ``predicted_ms`` and ``measured_ms``): per row, median |error|, Spearman rank correlation."""
    pairs = [(r["predicted_ms"], r["measured_ms"]) for r in rows
             if r.get("measured_ms") and r.get("predicted_ms") is not None]
    rel = [(p - m) / m for p, m in pairs]
    return {"n": len(pairs), "rel_errors": rel,
            "median_abs_rel_error": float(np.median(np.abs(rel))) if rel else None,
            "max_abs_rel_error": float(np.max(np.abs(rel))) if rel else None,
            "spearman": _spearman([m for _, m in pairs], [p for p, _ in pairs])}


# Files the device needs beside the .nb files (no paddle, no ppnets there).
DEVICE_FILES = {"lut_device.py": lut_device.__file__, "lite_runner.py": lite_runner.__file__,
                "_lite_child.py": LITE_CHILD, "timing.py": LITE_TIMING,
                "machine.py": machine_module.__file__}


def export_lite_grid(specs: Iterable[BlockSpec], out_dir: str, target: str = "arm",
                     python: Optional[str] = None,
                     progress: Optional[Callable[[int, int, str], None]] = None
                     ) -> Dict[str, Any]:
    """Write every block as a Paddle Lite ``.nb`` for ``target`` into ``out_dir`` with
    ``manifest.json`` and the device-side runner; returns the manifest.

    Needs a Python with paddlelite (``PPNETS_PADDLELITE_PYTHON``, see ``ppnets.deploy.lite``).
    A block that fails to convert is listed under ``failed`` (the search then cannot price it:
    the device table will miss that key)."""
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    specs = unique_specs(specs)
    entries, failed = [], []
    for i, spec in enumerate(specs):
        folder = os.path.join(out_dir, "blocks", f"{i:04d}")
        report = export_formats(_measurable(_layer_of(spec)), formats=("lite",), out_dir=folder,
                                input_size=spec["input_size"], lite_targets=(target,),
                                lite_python=python)
        art = report["artifacts"].get(f"lite_{target}", {})
        if art.get("file"):
            entries.append({"key": spec["key"], "input_size": list(spec["input_size"]),
                            "nb": os.path.relpath(art["file"], out_dir)})
        else:
            failed.append({"key": spec["key"], "error": art.get("error") or art.get("reason")})
        if progress is not None:
            progress(i + 1, len(specs), spec["key"])
    manifest = {"schema": lut_device.GRID_SCHEMA, "target": target, "created_utc": utc_now(),
                "paddle_version": paddle.__version__, "entries": entries, "failed": failed}
    atomic_write_json(os.path.join(out_dir, "manifest.json"), manifest)
    for name, src in DEVICE_FILES.items():
        shutil.copy(src, os.path.join(out_dir, name))
    return manifest

