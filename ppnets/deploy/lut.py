"""Latency lookup table (EfficientFormer's LUT idea, offline): per-block latencies measured once
on a runtime, a model's latency predicted as the sum over its blocks.

    ppnets lut validate --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 \
        --table results/deploy/lut_paddle_inference_cpu.json \
        --json results/deploy/lut_validation.json
    ppnets lut validate --runtime openvino --models fasternet_t0 mobilenetv2_100 \
        --table results/deploy/lut_openvino_cpu.json
    # on a phone: ppnets lut export-grid ... --output-dir DIR, lut_device.py there, then
    # ppnets lut validate ... --lut lut_arm.json

A *block* is a sublayer that sits directly in a container (``nn.Sequential``/``nn.LayerList``)
or directly in the model, and is not itself a container: stems, every stage block, downsampling
layers, the head. One forward pass with hooks records each block's input shape; the table key is
``class | input shape | output shape | parameter count`` (so the same block type at another
width or resolution is another entry). Each entry is timed by ``ppnets.bench``
(``benchmark_model`` on the block alone: export, a predictor or session of the table's
runtime -- Paddle Inference, ONNX Runtime or OpenVINO, :data:`TABLE_RUNTIMES` -- the harness's
timing loop, median) in ``rounds`` fresh predictors, round-robin over the missing blocks, and is
the median of those medians (:func:`interleaved_runs`: one predictor can run a block steadily
up to 2x slower than the next). The whole deploy-form model is one more entry
(``model:<name>``), measured the same way in the same rounds; validation reports per-model
relative error, the median and largest relative error and the Spearman rank correlation.
A table holds one runtime's latencies (``meta.runtime``): the same blocks cost differently in
another runtime, so a table is extended only on its own runtime.

On a device: :func:`export_lite_grid` writes every entry as a Paddle Lite ``.nb`` with
``manifest.json`` and the device-side timer (``lut_device.py`` of ``ppnets/cli/device/``, which
needs neither paddle nor ppnets); its table comes back as a read-only ``file`` table. The
EfficientFormer searches (:mod:`ppnets.search.lut`) use the same table, measurement and grid.
The command is ``ppnets lut`` (:mod:`ppnets.cli.lut`).

The sum ignores what a whole-model program gains (cross-block fusion, one call instead of many)
and pays each block's call overhead once; both are what the validation measures.
"""
from __future__ import annotations

import copy
import json
import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

import ppnets
from ppnets.bench import interleaved_runs, latency_summary, round_medians
from ppnets.runtime import RUNTIMES, RuntimeUnavailableError
from ppnets.utils import atomic_write_json, utc_now

from .formats import export as export_formats
from .lite import DEVICE_FILES, copy_device_files

__all__ = ["blocks_of", "unique_blocks", "median_over_predictors", "DEVICES", "TABLE_RUNTIMES",
           "LatencyTable",
           "prediction_error", "MODEL_KEY", "zoo_grid", "grid_entries", "validate", "TokensInput",
           "DEVICE_FILES", "GRID_SCHEMA", "export_lite_grid"]

_CONTAINERS = (nn.Sequential, nn.LayerList)


def blocks_of(model: nn.Layer, input_size: Sequence[int]) -> List[Dict[str, Any]]:
    """Blocks in execution order: dict(key, layer, input_size (C, H, W) or (T, C), cls)."""
    chosen = []

    def visit(layer):
        for child in layer.children():
            if isinstance(child, _CONTAINERS):
                visit(child)
            else:
                chosen.append(child)

    visit(model)
    records: List[Dict[str, Any]] = []
    hooks = []
    for layer in chosen:
        def hook(lyr, inputs, output, _l=layer):
            x = inputs[0]
            out = output[0] if isinstance(output, (list, tuple)) else output
            if not isinstance(x, paddle.Tensor):
                return
            params = sum(int(np.prod(p.shape)) for p in lyr.parameters())
            records.append({"layer": _l, "cls": type(_l).__name__,
                            "input_size": tuple(x.shape[1:]),
                            "key": f"{type(_l).__name__}|in={list(x.shape[1:])}|out="
                                   f"{list(out.shape[1:])}|params={params}"})
        hooks.append(layer.register_forward_post_hook(hook))
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, *input_size], dtype="float32"))
    finally:
        for h in hooks:
            h.remove()
    return records


class _Parameterised(nn.Layer):
    """A parameter-free block (pooling, activation) plus a zero scalar: paddle.jit.save writes
    no ``.pdiparams`` for a program without parameters, which the harness expects. The extra
    elementwise add is part of the measured time (tiny, and documented)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.zero = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.))

    def forward(self, x):
        return self.inner(x) + self.zero


def _measurable(layer: nn.Layer) -> nn.Layer:
    """The block inside a container (``reparameterize_model`` fuses a model's children, not the
    model itself), with a zero scalar when it has no parameters."""
    layer = nn.Sequential(layer)
    return layer if layer.parameters() else _Parameterised(layer)


def _layer_of(block: Dict[str, Any]) -> nn.Layer:
    """A fresh copy of a block: :func:`blocks_of`'s ``layer``, or a search block spec's
    ``build()``."""
    return copy.deepcopy(block["layer"]) if "layer" in block else block["build"]()


def unique_blocks(blocks: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One block per key, in first-seen order."""
    seen: Dict[str, Dict[str, Any]] = {}
    for block in blocks:
        seen.setdefault(block["key"], block)
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Measuring: the median over fresh predictors, built round-robin (ppnets.bench.interleaved_runs)


def median_over_predictors(layer: Union[str, nn.Layer], input_size: Sequence[int],
                           device: str = "cpu", threads: int = 1, warmup: int = 5,
                           repeats: int = 20, rounds: int = 5,
                           runtime: str = "paddle_inference") -> Dict[str, Any]:
    """Latency of ``layer`` in ``runtime``: :func:`latency_summary` over ``rounds`` fresh
    predictors (sessions), plus the last run's backend and machine record."""
    runs = interleaved_runs({"layer": (layer, input_size)}, rounds, device=device,
                            threads=threads, warmup=warmup, repeats=repeats,
                            runtime=runtime)["layer"]
    _check_measured(runs)
    return {**latency_summary(runs), "backend": runs[-1]["backend"],
            "machine": runs[-1]["machine"]}


# --------------------------------------------------------------------------------------------
# The table


DEVICES = ("cpu", "gpu", "file")
# Runtimes a table is measured on here (Paddle Lite's tables are measured on the device: file)
TABLE_RUNTIMES = tuple(r for r in RUNTIMES if r != "paddle_lite")


def _check_measured(runs: Sequence[Dict[str, Any]]) -> None:
    """Raise when the harness could not run the table's runtime (its record says why)."""
    for run in runs:
        if run.get("status") == "unavailable":
            raise RuntimeUnavailableError(
                f"cannot measure on {run.get('backend')}: {run.get('reason')}")


_HOW_TO_MEASURE = ("Export this grid (ppnets lut export-grid, or --export-lite-grid of a "
                   "search), time it on the device with lut_device.py, and pass the new table "
                   "with --lut (docs/deploy.md, docs/search.md).")


class LatencyTable:
    """key -> latency (ms) of one block on one device, runtime and setting; JSON file
    (``ppnets.lut/1``: ``meta`` -- with ``runtime`` --, ``entries`` and each entry's
    ``round_medians_ms``).

    On ``cpu``/``gpu`` an entry is measured in ``runtime`` (:data:`TABLE_RUNTIMES`;
    ``paddle_inference`` by default, the only one on ``gpu``): the median over ``rounds`` fresh
    predictors of each one's median (:func:`interleaved_runs`): :meth:`fill` measures every
    missing entry of a set of blocks round-robin, :meth:`measure` one missing entry on its own
    (its rounds back to back). ``file`` is a table measured elsewhere -- an ARM phone or board
    through Paddle Lite, ``lut_device.py`` -- and is only read: a missing entry is
    an error that names it and says how to measure it. A saved table measured in another
    runtime than ``runtime`` is an error (its entries would be priced in the wrong runtime);
    tables written before runtimes were recorded are Paddle Inference's."""

    def __init__(self, path: Optional[str] = None, threads: int = 1, warmup: int = 5,
                 repeats: int = 20, rounds: int = 5, device: str = "cpu",
                 runtime: str = "paddle_inference"):
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if device != "file" and runtime not in TABLE_RUNTIMES:
            raise ValueError(f"runtime must be one of {TABLE_RUNTIMES}, got {runtime!r} (a "
                             "Paddle Lite table is measured on the device: ppnets lut "
                             "export-grid, then --lut)")
        if device == "gpu" and runtime != "paddle_inference":
            raise ValueError(f"a gpu table is measured with paddle_inference; {runtime} "
                             "tables are measured on the cpu")
        if device == "file" and not (path and os.path.isfile(path)):
            raise FileNotFoundError(
                f"latency table {path!r} not found. A 'file' table is one measured on the "
                "device: export the grid (ppnets lut export-grid, or --export-lite-grid of a "
                "search), run lut_device.py there, bring its JSON back and pass it with --lut.")
        self.path, self.threads, self.warmup, self.repeats = path, threads, warmup, repeats
        self.rounds, self.device = int(rounds), device
        self.runtime = runtime
        self.entries: Dict[str, float] = {}
        self.round_medians: Dict[str, List[float]] = {}
        self.meta: Dict[str, Any] = {}
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            self.entries = dict(saved["entries"])
            self.round_medians = dict(saved.get("round_medians_ms", {}))
            self.meta = saved.get("meta", {})
        if device == "file":
            self.runtime = self.meta.get("runtime", self.meta.get("backend", "paddle_lite"))
        elif self.entries and self.saved_runtime() != runtime:
            saved_in = self.saved_runtime()
            raise ValueError(
                f"the latency table {path} was measured in {saved_in}, not {runtime}: pass "
                f"--runtime {saved_in} to use it, or another --table path for a {runtime} "
                "table (one table per runtime)")

    def saved_runtime(self) -> str:
        """The runtime the loaded entries were measured in (``meta.runtime``; a table written
        before runtimes were recorded names only its ``backend``, Paddle Inference)."""
        return self.meta.get("runtime") or self.meta.get("backend") or "paddle_inference"

    def settings(self) -> Dict[str, Any]:
        """How the entries were measured: this table's settings, or for a table from another
        device (``file``) the ones its ``meta`` records."""
        if self.device == "file":
            return {"device": self.meta.get("device", "file"), "runtime": self.runtime,
                    **{k: self.meta.get(k) for k in ("threads", "warmup", "repeats", "rounds")}}
        return {"device": self.device, "runtime": self.runtime, "threads": self.threads,
                "warmup": self.warmup, "repeats": self.repeats, "rounds": self.rounds}

    def _bench(self) -> Dict[str, Any]:
        return {"device": self.device, "threads": self.threads, "warmup": self.warmup,
                "repeats": self.repeats, "runtime": self.runtime}

    def _stamp(self, run: Dict[str, Any]) -> None:
        self.meta = {"runtime": self.runtime, "backend": run["backend"], "device": self.device,
                     "threads": self.threads, "warmup": self.warmup, "repeats": self.repeats,
                     "rounds": self.rounds, "machine": run["machine"], "updated_utc": utc_now()}

    def measure(self, block: Dict[str, Any]) -> float:
        """The entry of ``block`` (:func:`blocks_of`'s dict, or a search block spec); measured
        now when missing."""
        key = block["key"]
        if key not in self.entries and self.device == "file":
            raise KeyError(f"the latency table {self.path} has no entry {key!r}: it was built "
                           "for another grid (other models, image size, widths or classes). "
                           + _HOW_TO_MEASURE)
        if key not in self.entries:
            res = median_over_predictors(_measurable(_layer_of(block)), block["input_size"],
                                         rounds=self.rounds, **self._bench())
            self.entries[key] = res["median_ms"]
            self.round_medians[key] = res["round_medians_ms"]
            self._stamp(res)
        return self.entries[key]

    def missing(self, blocks: Iterable[Dict[str, Any]]) -> List[str]:
        return [b["key"] for b in unique_blocks(blocks) if b["key"] not in self.entries]

    def fill(self, blocks: Iterable[Dict[str, Any]],
             progress: Optional[Callable[[int, int, str], None]] = None) -> int:
        """Measure every missing entry of ``blocks``; returns how many (the table is saved when
        it has a path).

        Round-robin: round r builds one fresh predictor per missing block before round r + 1
        starts, so an entry's ``rounds`` predictors are built at different times. On a shared
        VM the machine has slow phases seconds long (every block measured in one was ~1.7x
        slow, every round); measured back to back, all rounds of a few entries fall in one, while
        interleaved they touch one round of many entries and the median drops it."""
        todo = [b for b in unique_blocks(blocks) if b["key"] not in self.entries]
        if not todo:
            return 0
        if self.device == "file":
            raise KeyError(
                f"the latency table {self.path} lacks {len(todo)} entries of this grid, e.g. "
                f"{[b['key'] for b in todo[:3]]}: it was built for another grid (other models, "
                "image size, widths or classes). " + _HOW_TO_MEASURE)
        runs = interleaved_runs({b["key"]: (_measurable(_layer_of(b)), b["input_size"])
                                 for b in todo}, self.rounds, progress, **self._bench())
        for key_runs in runs.values():
            _check_measured(key_runs)
        for key, key_runs in runs.items():
            self.round_medians[key] = round_medians(key_runs)
            self.entries[key] = float(np.median(self.round_medians[key]))
        self._stamp(key_runs[-1])
        if self.path:
            self.save()
        return len(todo)

    def latency(self, blocks: Sequence[Dict[str, Any]]) -> float:
        """Predicted latency (ms): the sum of the blocks' entries (a repeated block counts every
        time)."""
        return float(sum(self.measure(block) for block in blocks))

    def predict(self, model: nn.Layer, input_size: Sequence[int]) -> Dict[str, Any]:
        blocks = blocks_of(model, input_size)
        return {"predicted_ms": self.latency(blocks), "blocks": len(blocks),
                "per_block_ms": [(b["key"], self.entries[b["key"]]) for b in blocks]}

    def save(self, path: Optional[str] = None) -> None:
        """Write the table; a table from another device (``file``) is never rewritten."""
        if self.device != "file" or path:
            atomic_write_json(path or self.path, {
                "schema": "ppnets.lut/1", "meta": self.meta, "entries": self.entries,
                "round_medians_ms": self.round_medians}, strict=True)


def _spearman(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    if len(a) < 3:
        return None
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def prediction_error(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Relative error of predicted vs measured latency over ``rows`` (each with
    ``predicted_ms`` and ``measured_ms``): per row, median and largest |error|, Spearman rank
    correlation."""
    pairs = [(r["predicted_ms"], r["measured_ms"]) for r in rows
             if r.get("measured_ms") and r.get("predicted_ms") is not None]
    rel = [(p - m) / m for p, m in pairs]
    return {"n": len(pairs), "rel_errors": rel,
            "median_abs_rel_error": float(np.median(np.abs(rel))) if rel else None,
            "max_abs_rel_error": float(np.max(np.abs(rel))) if rel else None,
            "spearman": _spearman([m for _, m in pairs], [p for p, _ in pairs])}


MODEL_KEY = "model:{}"   # a whole model's entry, beside its blocks' entries in the same table


def _deploy_model(name: str) -> nn.Layer:
    model = ppnets.create_model(name)
    model.eval()
    ppnets.reparameterize_model(model)
    return model


def zoo_grid(names: Sequence[str], input_size: Optional[Sequence[int]] = None
             ) -> Dict[str, Dict[str, Any]]:
    """name -> {"blocks": its blocks (:func:`blocks_of`), "model": the whole deploy-form model as
    one more entry}, at ``input_size`` (default: each model's own). The model's key is
    ``model:<name>``, with ``@CxHxW`` appended at a size other than its own."""
    grid = {}
    for name in names:
        own = tuple(ppnets.model_info(name)["input_size"])
        size = tuple(input_size) if input_size else own
        key = MODEL_KEY.format(name) + ("" if size == own else "@" + "x".join(map(str, size)))
        model = _deploy_model(name)
        grid[name] = {"blocks": blocks_of(model, size),
                      "model": {"key": key, "layer": model, "input_size": size}}
    return grid


def grid_entries(grid: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every entry of a :func:`zoo_grid`: the blocks of all models, then the models."""
    return ([b for g in grid.values() for b in g["blocks"]]
            + [g["model"] for g in grid.values()])


def validate(names: Sequence[str], table: LatencyTable,
             progress: Optional[Callable[[int, int, str], None]] = None,
             input_size: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Predicted (sum of the blocks' entries) against measured (the whole model's entry) latency
    of each model, both in ``table``, at ``input_size`` (default: each model's own).

    On a Paddle Inference device the missing entries -- blocks and whole models alike -- are
    measured first, round-robin over all of them (:meth:`LatencyTable.fill`); a table from a
    device (``file``) must already hold them all."""
    grid = zoo_grid(names, input_size)
    table.fill(grid_entries(grid), progress)
    rows = []
    for name, g in grid.items():
        key = g["model"]["key"]
        measured, predicted = table.entries[key], table.latency(g["blocks"])
        rows.append({"model": name, "measured_ms": measured, "predicted_ms": predicted,
                     "rel_error": (predicted - measured) / measured, "blocks": len(g["blocks"]),
                     "input_size": list(g["model"]["input_size"]),
                     "round_medians_ms": table.round_medians.get(key)})
    error = prediction_error(rows)
    return {"rows": rows, "median_abs_rel_error": error["median_abs_rel_error"],
            "max_abs_rel_error": error["max_abs_rel_error"], "spearman": error["spearman"],
            **table.settings()}


# --------------------------------------------------------------------------------------------
# A table built on the device itself (Paddle Lite)


class TokensInput(nn.Layer):
    """A block whose input has fewer than 3 axes per sample (a token sequence (T, C), a feature
    vector (C,)) measured on a 4D input: ``extra_axes`` trailing axes of size 1 are squeezed off
    before the block runs. Paddle Lite's exporter takes 4D inputs only; the squeeze costs about
    nothing and is part of the entry."""

    def __init__(self, block: nn.Layer, extra_axes: int = 1):
        super().__init__()
        self.block, self.axes = block, list(range(-extra_axes, 0))

    def forward(self, x):
        return self.block(paddle.squeeze(x, axis=self.axes))


def _four_d(layer: nn.Layer, input_size: Sequence[int]) -> Tuple[nn.Layer, Tuple[int, ...]]:
    extra = 3 - len(input_size)
    if extra <= 0:
        return layer, tuple(input_size)
    return TokensInput(layer, extra), (*input_size, *([1] * extra))


# The grid's manifest schema; lut_device.py, which cannot import ppnets, spells it too.
GRID_SCHEMA = "ppnets.lut-grid/1"


def export_lite_grid(blocks: Iterable[Dict[str, Any]], out_dir: str, target: str = "arm",
                     python: Optional[str] = None,
                     progress: Optional[Callable[[int, int, str], None]] = None
                     ) -> Dict[str, Any]:
    """Write every block (:func:`blocks_of`'s dicts, :func:`zoo_grid` entries or search block
    specs) as a Paddle Lite ``.nb`` for ``target`` into ``out_dir`` with ``manifest.json`` and
    the device-side runner (``lut_device.py`` and :data:`DEVICE_FILES`); returns the manifest.

    Needs a Python with paddlelite (``PPNETS_PADDLELITE_PYTHON``, see ``ppnets.deploy.lite``).
    A block that fails to convert is listed under ``failed`` (the device table will then miss
    that key, and whatever needs it cannot be priced)."""
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    blocks = unique_blocks(blocks)
    entries, failed = [], []
    for i, block in enumerate(blocks):
        folder = os.path.join(out_dir, "blocks", f"{i:04d}")
        layer, input_size = _four_d(_measurable(_layer_of(block)), block["input_size"])
        report = export_formats(layer, formats=("lite",), out_dir=folder, input_size=input_size,
                                lite_targets=(target,), lite_python=python)
        art = report["artifacts"].get(f"lite_{target}", {})
        if art.get("file"):
            entries.append({"key": block["key"], "input_size": list(input_size),
                            "nb": os.path.relpath(art["file"], out_dir)})
        else:
            failed.append({"key": block["key"], "error": art.get("error") or art.get("reason")})
        if progress is not None:
            progress(i + 1, len(blocks), block["key"])
    manifest = {"schema": GRID_SCHEMA, "target": target, "created_utc": utc_now(),
                "paddle_version": paddle.__version__, "entries": entries, "failed": failed}
    atomic_write_json(os.path.join(out_dir, "manifest.json"), manifest)
    copy_device_files(out_dir)
    return manifest


if __name__ == "__main__":
    print("error: python -m ppnets.deploy.lut is now `ppnets lut validate ...` (--table or "
          "--lut) and `ppnets lut export-grid ...` (--export-lite-grid DIR is --output-dir DIR)",
          file=sys.stderr)
    sys.exit(2)
