"""Latency lookup table (EfficientFormer's LUT idea, offline): per-block latencies measured once
on a backend, a model's latency predicted as the sum over its blocks.

    python -m ppnets.deploy.lut --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 \
        --table results/deploy/lut_cpu.json --json results/deploy/lut_validation.json

A *block* is a sublayer that sits directly in a container (``nn.Sequential``/``nn.LayerList``)
or directly in the model, and is not itself a container: stems, every stage block, downsampling
layers, the head. One forward pass with hooks records each block's input shape; the table key is
``class | input shape | output shape | parameter count`` (so the same block type at another
width or resolution is another entry). Each entry is timed by ``ppnets.bench``
(``benchmark_model`` on the block alone: export, Paddle Inference predictor, the harness's
timing loop, median) in ``rounds`` fresh predictors, round-robin over the missing blocks, and is
the median of those medians (:func:`interleaved_runs`: one predictor can run a block steadily
up to 2x slower than the next). Validation measures the whole deploy-form models the same way
and reports per-model relative error, the median and largest relative error and the Spearman
rank correlation.

The sum ignores what a whole-model program gains (cross-block fusion, one call instead of many)
and pays each block's call overhead once; both are what the validation measures.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

import ppnets
from ppnets.bench import benchmark_model
from ppnets.registry import resolve_model_names
from ppnets.utils import atomic_write_json, utc_now

__all__ = ["blocks_of", "unique_blocks", "interleaved_runs", "round_medians", "latency_summary",
           "median_over_predictors", "LatencyTable", "validate"]

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
# Measuring: the median over fresh predictors, built round-robin


def interleaved_runs(items: Dict[str, Tuple[Union[str, nn.Layer], Sequence[int]]],
                     rounds: int = 5, progress: Optional[Callable[[int, int, str], None]] = None,
                     **bench) -> Dict[str, List[Dict[str, Any]]]:
    """``rounds`` runs of ``ppnets.bench.benchmark_model`` per item (key -> (layer or registry
    name, input size)), round-robin: round r builds one fresh predictor per item before round
    r + 1.

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


def latency_summary(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """One latency from the runs of :func:`interleaved_runs` for one item: ``median_ms`` is the
    median over the runs of each run's median; the rest says how far the runs spread and
    under what load the last one ran."""
    medians = round_medians(runs)
    return {"median_ms": float(np.median(medians)), "round_medians_ms": medians,
            "iqr_ms": [r["latency_ms"].get("iqr") for r in runs],
            "load_avg": runs[-1]["machine"]["load_avg"]}


def median_over_predictors(layer: Union[str, nn.Layer], input_size: Sequence[int],
                           device: str = "cpu", threads: int = 1, warmup: int = 5,
                           repeats: int = 20, rounds: int = 5) -> Dict[str, Any]:
    """Latency of ``layer``: :func:`latency_summary` over ``rounds`` fresh predictors, plus the
    last run's backend and machine record."""
    runs = interleaved_runs({"layer": (layer, input_size)}, rounds, device=device,
                            threads=threads, warmup=warmup, repeats=repeats)["layer"]
    return {**latency_summary(runs), "backend": runs[-1]["backend"],
            "machine": runs[-1]["machine"]}


# --------------------------------------------------------------------------------------------
# The table


class LatencyTable:
    """key -> latency (ms) of one block on one Paddle Inference device and setting; JSON file
    (``ppnets.lut/1``: ``meta``, ``entries`` and each entry's ``round_medians_ms``).

    An entry is the median over ``rounds`` fresh predictors of each one's median
    (:func:`interleaved_runs`). :meth:`fill` measures every missing entry of a set of blocks
    round-robin; :meth:`measure` measures one missing entry on its own (its rounds back to
    back)."""

    def __init__(self, path: Optional[str] = None, threads: int = 1, warmup: int = 5,
                 repeats: int = 20, rounds: int = 5, device: str = "cpu"):
        self.path, self.threads, self.warmup, self.repeats = path, threads, warmup, repeats
        self.rounds, self.device = int(rounds), device
        self.entries: Dict[str, float] = {}
        self.round_medians: Dict[str, List[float]] = {}
        self.meta: Dict[str, Any] = {}
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            self.entries = dict(saved["entries"])
            self.round_medians = dict(saved.get("round_medians_ms", {}))
            self.meta = saved.get("meta", {})

    def _bench(self) -> Dict[str, Any]:
        return {"device": self.device, "threads": self.threads, "warmup": self.warmup,
                "repeats": self.repeats}

    def _stamp(self, run: Dict[str, Any]) -> None:
        self.meta = {"backend": run["backend"], "device": self.device, "threads": self.threads,
                     "warmup": self.warmup, "repeats": self.repeats, "rounds": self.rounds,
                     "machine": run["machine"], "updated_utc": utc_now()}

    def measure(self, block: Dict[str, Any]) -> float:
        """The entry of ``block`` (:func:`blocks_of`'s dict, or a search block spec); measured
        now when missing."""
        key = block["key"]
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
        runs = interleaved_runs({b["key"]: (_measurable(_layer_of(b)), b["input_size"])
                                 for b in todo}, self.rounds, progress, **self._bench())
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
        per = [(b["key"], self.measure(b)) for b in blocks]
        return {"predicted_ms": float(sum(v for _, v in per)), "blocks": len(per),
                "per_block_ms": per}

    def save(self, path: Optional[str] = None) -> None:
        atomic_write_json(path or self.path, {
            "schema": "ppnets.lut/1", "meta": self.meta, "entries": self.entries,
            "round_medians_ms": self.round_medians}, strict=True)


def _spearman(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    if len(a) < 3:
        return None
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _deploy_model(name: str) -> nn.Layer:
    model = ppnets.create_model(name)
    model.eval()
    ppnets.reparameterize_model(model)
    return model


def validate(names: Sequence[str], table: LatencyTable,
             progress: Optional[Callable[[int, int, str], None]] = None) -> Dict[str, Any]:
    """Predicted (sum of the table's entries) against measured end-to-end latency of each model,
    both with the table's settings: every missing block of every model is measured first
    (:meth:`LatencyTable.fill`), then the whole models, round-robin over the models as well."""
    models = {name: (_deploy_model(name), ppnets.model_info(name)["input_size"])
              for name in names}
    blocks = {name: blocks_of(model, size) for name, (model, size) in models.items()}
    table.fill([b for name in names for b in blocks[name]], progress)
    runs = interleaved_runs(models, table.rounds, progress, **table._bench())
    rows = []
    for name in names:
        measured = latency_summary(runs[name])
        m = measured["median_ms"]
        predicted = table.latency(blocks[name])
        rows.append({"model": name, "measured_ms": m, "predicted_ms": predicted,
                     "rel_error": (predicted - m) / m, "blocks": len(blocks[name]),
                     "measurement": measured})
    errs = [abs(r["rel_error"]) for r in rows]
    return {"rows": rows, "median_abs_rel_error": float(np.median(errs)) if errs else None,
            "max_abs_rel_error": float(np.max(errs)) if errs else None,
            "spearman": _spearman([r["measured_ms"] for r in rows],
                                  [r["predicted_ms"] for r in rows]),
            "device": table.device, "threads": table.threads, "warmup": table.warmup,
            "repeats": table.repeats, "rounds": table.rounds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ppnets.deploy.lut",
                                description="Latency lookup table of zoo models' blocks and its "
                                            "prediction error against whole-model latency.")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--table", required=True, help="LUT file (read if present, extended)")
    p.add_argument("--json", default=None, help="validation report")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5,
                   help="fresh predictors per entry and per model (the median is taken)")
    args = p.parse_args(argv)

    table = LatencyTable(args.table, args.threads, args.warmup, args.repeats, args.rounds,
                         args.device)
    load_start = list(os.getloadavg())
    report = validate(resolve_model_names(args.models), table, progress=lambda i, n, key: print(
        f"  [{i}/{n}] {key}", flush=True) if i % 25 == 0 or i == n else None)
    # 1/5/15-min load averages: timings on a shared machine mean little without them.
    report["load_avg_start"], report["load_avg_end"] = load_start, list(os.getloadavg())
    report["command"] = "python -m ppnets.deploy.lut " + " ".join(
        sys.argv[1:] if argv is None else argv)
    report["table"] = {"path": args.table, "entries": len(table.entries), "meta": table.meta}
    print("| model | measured (ms) | LUT sum (ms) | rel. error |\n|---|---:|---:|---:|")
    for r in report["rows"]:
        print(f"| {r['model']} | {r['measured_ms']:.2f} | {r['predicted_ms']:.2f} | "
              f"{100 * r['rel_error']:+.1f}% |")
    print(f"median |rel. error| {report['median_abs_rel_error']}, Spearman {report['spearman']}")
    print(f"load average (1/5/15 min) at start {load_start}, at end {report['load_avg_end']}")
    if args.json:
        atomic_write_json(args.json, report, strict=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
