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

import copy
import json
import os
import shutil
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

import ppnets.utils.machine as machine_module
from ppnets.analysis import count_params
from ppnets.bench import benchmark_model
from ppnets.deploy import lite_runner
from ppnets.deploy.formats import export as export_formats
from ppnets.deploy.lite import CHILD as LITE_CHILD
from ppnets.deploy.lite import TIMING as LITE_TIMING
from ppnets.deploy.lut import LatencyTable, _Parameterised, _spearman
from ppnets.utils import atomic_write_json, utc_now

from . import lut_device

__all__ = ["TARGETS", "BlockSpec", "TokensInput", "LatencyLUT", "ParamCounter",
           "median_over_predictors", "interleaved_runs", "round_medians", "prediction_error",
           "export_lite_grid", "unique_specs"]

TARGETS = ("cpu", "gpu", "file")
BlockSpec = Dict[str, Any]   # {"key": str, "input_size": (C, H, W), "build": () -> nn.Layer}


class TokensInput(nn.Layer):
    """A token block measured on a (N, T, C, 1) input: squeeze the last axis, run the block."""

    def __init__(self, block: nn.Layer):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(paddle.squeeze(x, axis=-1))


def _measurable(layer: nn.Layer) -> nn.Layer:
    """The block inside a container (``reparameterize_model`` fuses a model's children, not the
    model itself), with a zero scalar when it has no parameters."""
    layer = nn.Sequential(layer)
    return layer if layer.parameters() else _Parameterised(layer)


def unique_specs(specs: Iterable[BlockSpec]) -> List[BlockSpec]:
    """One spec per key, in first-seen order."""
    seen: Dict[str, BlockSpec] = {}
    for spec in specs:
        seen.setdefault(spec["key"], spec)
    return list(seen.values())


def _layer_of(block: Dict[str, Any]) -> nn.Layer:
    """A fresh copy of a block spec's layer (``build()``) or of ``ppnets.deploy.lut``'s
    ``layer``."""
    return copy.deepcopy(block["layer"]) if "layer" in block else block["build"]()


def interleaved_runs(items: Dict[str, Tuple[nn.Layer, Sequence[int]]], rounds: int = 5,
                     progress: Optional[Callable[[int, int, str], None]] = None,
                     **bench) -> Dict[str, List[Dict[str, Any]]]:
    """``rounds`` runs of ``ppnets.bench.benchmark_model`` per item (key -> (layer, input
    size)), round-robin: round r builds one fresh predictor per item before round r + 1.

    One predictor is not a measurement on this kind of machine: predictors built from the same
    program run a small block at either of two steady speeds up to 2x apart (each with a small
    IQR; e.g. an EfficientFormer MB3D at 32x32 gave 0.37 or 0.64 ms over 8 predictors on the
    2-core development VM, docs/search.md), and the machine has slow phases seconds long. The
    median over predictors takes the common speed; interleaving makes a slow phase touch one
    round of many items instead of every round of a few."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    runs: Dict[str, List[Dict[str, Any]]] = {key: [] for key in items}
    total, done = rounds * len(items), 0
    for _ in range(rounds):
        for key, (layer, input_size) in items.items():
            runs[key].append(benchmark_model(layer, input_size=tuple(input_size), **bench))
            done += 1
            if progress is not None:
                progress(done, total, key)
    return runs


def round_medians(runs: Sequence[Dict[str, Any]]) -> List[float]:
    return [float(r["latency_ms"]["median"]) for r in runs]


def median_over_predictors(layer: nn.Layer, input_size: Sequence[int], device: str = "cpu",
                           threads: int = 1, warmup: int = 5, repeats: int = 20,
                           rounds: int = 5) -> Dict[str, Any]:
    """Latency of ``layer``: the median over ``rounds`` fresh predictors of each one's median
    (:func:`interleaved_runs` with one item)."""
    runs = interleaved_runs({"layer": (layer, input_size)}, rounds, device=device,
                            threads=threads, warmup=warmup, repeats=repeats)["layer"]
    medians = round_medians(runs)
    return {"median_ms": float(np.median(medians)), "round_medians_ms": medians,
            "iqr_ms": [r["latency_ms"].get("iqr") for r in runs], "backend": runs[-1]["backend"],
            "machine": runs[-1]["machine"], "load_avg": runs[-1]["machine"]["load_avg"]}


class LatencyLUT(LatencyTable):
    """key -> median latency (ms) on one target; ``ppnets.lut/1`` JSON (see module docstring)."""

    def __init__(self, path: Optional[str] = None, target: str = "cpu", threads: int = 1,
                 warmup: int = 5, repeats: int = 20, rounds: int = 5):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if target == "file" and not (path and os.path.isfile(path)):
            raise FileNotFoundError(
                f"latency table {path!r} not found. A 'file' target reads a table measured on "
                "the device (docs/search.md: export the grid with --export-lite-grid, run "
                "lut_device.py there, bring its JSON back and pass it with --lut).")
        super().__init__(path, threads=threads, warmup=warmup, repeats=repeats)
        self.target, self.rounds = target, int(rounds)
        # key -> the median of each round (a fresh predictor); kept in the JSON beside "entries"
        self.round_medians: Dict[str, List[float]] = {}
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                self.round_medians = dict(json.load(f).get("round_medians_ms", {}))

    def measure(self, block: Dict[str, Any]) -> float:
        """The entry of ``block`` (a block spec, or ``ppnets.deploy.lut``'s block dict with a
        ``layer``); measured now when missing and the target is a Paddle Inference device (its
        rounds back to back: :meth:`fill` a whole grid first to interleave them)."""
        key = block["key"]
        if key in self.entries:
            return self.entries[key]
        if self.target == "file":
            raise KeyError(
                f"the latency table {self.path} has no entry {key!r}: it was built for another "
                "search grid (image size, widths, classes). Export this grid with "
                "--export-lite-grid, time it on the device with lut_device.py, and pass the "
                "new table with --lut.")
        res = median_over_predictors(_measurable(_layer_of(block)), block["input_size"],
                                     self.target, self.threads, self.warmup, self.repeats,
                                     self.rounds)
        self.entries[key] = res["median_ms"]
        self.round_medians[key] = res["round_medians_ms"]
        self._stamp(res)
        return self.entries[key]

    def _stamp(self, res: Dict[str, Any]) -> None:
        self.meta = {"backend": res["backend"], "device": self.target, "threads": self.threads,
                     "warmup": self.warmup, "repeats": self.repeats, "rounds": self.rounds,
                     "machine": res["machine"], "updated_utc": utc_now()}

    def latency(self, specs: Sequence[BlockSpec]) -> float:
        """Predicted latency (ms) of a network: the sum of its blocks' entries."""
        return float(sum(self.measure(spec) for spec in specs))

    def missing(self, specs: Iterable[BlockSpec]) -> List[str]:
        return [s["key"] for s in unique_specs(specs) if s["key"] not in self.entries]

    def fill(self, specs: Iterable[BlockSpec],
             progress: Optional[Callable[[int, int, str], None]] = None) -> int:
        """Measure every missing entry of ``specs``; returns how many.

        Round-robin: round r builds one fresh predictor per missing block before round r + 1
        starts, so an entry's ``rounds`` predictors are built at different times. On a shared
        VM the machine has slow phases seconds long (every block measured in one was ~1.7x
        slow, every round); measured back to back, all rounds of a few entries fall in one, while
        interleaved they touch one round of many entries and the median drops it. A table from
        another device (``file``) names the missing keys instead."""
        todo = [s for s in unique_specs(specs) if s["key"] not in self.entries]
        if not todo:
            return 0
        if self.target == "file":
            raise KeyError(
                f"the latency table {self.path} lacks {len(todo)} entries of this search grid, "
                f"e.g. {[s['key'] for s in todo[:3]]}: it was built for another grid (image "
                "size, widths, classes). Export this grid with --export-lite-grid, time it on "
                "the device with lut_device.py, and pass the new table with --lut.")
        runs = interleaved_runs({s["key"]: (_measurable(_layer_of(s)), s["input_size"])
                                 for s in todo}, self.rounds, progress, device=self.target,
                                threads=self.threads, warmup=self.warmup, repeats=self.repeats)
        for key, key_runs in runs.items():
            self.round_medians[key] = round_medians(key_runs)
            self.entries[key] = float(np.median(self.round_medians[key]))
        res = key_runs[-1]
        self._stamp(res)
        if self.path:
            self.save()
        return len(todo)

    def save(self, path: Optional[str] = None) -> None:
        """Write the table; a table from another device (``file``) is never rewritten."""
        if self.target != "file" or path:
            atomic_write_json(path or self.path, {
                "schema": "ppnets.lut/1", "meta": self.meta, "entries": self.entries,
                "round_medians_ms": self.round_medians}, strict=True)

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
        report = export_formats(_measurable(spec["build"]()), formats=("lite",), out_dir=folder,
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

