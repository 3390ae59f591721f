"""Latency lookup table (EfficientFormer's LUT idea, offline): per-block latencies measured once
on a backend, a model's latency predicted as the sum over its blocks.

    python -m ppnets.deploy.lut --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 \
        --table results/deploy/lut_cpu.json --json results/deploy/lut_validation.json

A *block* is a sublayer that sits directly in a container (``nn.Sequential``/``nn.LayerList``)
or directly in the model, and is not itself a container: stems, every stage block, downsampling
layers, the head. One forward pass with hooks records each block's input shape; the table key is
``class | input shape | output shape | parameter count`` (so the same block type at another
width or resolution is another entry). Each new entry is timed by ``ppnets.bench``
(``benchmark_model`` on the block alone: export, Paddle Inference predictor, the harness's
timing loop, median). Validation compares the sum with the measured end-to-end median of the
same deploy-form model and reports per-model relative error, the median relative error and the
Spearman rank correlation.

The sum ignores what a whole-model program gains (cross-block fusion, one call instead of many)
and pays each block's call overhead once; both are what the validation measures.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

import ppnets
from ppnets.bench import benchmark_model
from ppnets.registry import resolve_model_names
from ppnets.utils import atomic_write_json

__all__ = ["blocks_of", "LatencyTable", "validate"]

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


class LatencyTable:
    """key -> median latency (ms) of one block on one backend/setting; JSON file."""

    def __init__(self, path: Optional[str] = None, threads: int = 1, warmup: int = 5,
                 repeats: int = 20):
        self.path, self.threads, self.warmup, self.repeats = path, threads, warmup, repeats
        self.entries: Dict[str, float] = {}
        self.meta: Dict[str, Any] = {}
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            self.entries = dict(saved["entries"])
            self.meta = saved.get("meta", {})

    def measure(self, block: Dict[str, Any]) -> float:
        if block["key"] not in self.entries:
            layer = copy.deepcopy(block["layer"])
            if not layer.parameters():
                layer = _Parameterised(layer)
            res = benchmark_model(layer,
                                  input_size=block["input_size"], threads=self.threads,
                                  warmup=self.warmup, repeats=self.repeats)
            self.entries[block["key"]] = res["latency_ms"]["median"]
            self.meta = {"backend": res["backend"], "threads": self.threads,
                         "warmup": self.warmup, "repeats": self.repeats,
                         "machine": res["machine"]}
        return self.entries[block["key"]]

    def predict(self, model: nn.Layer, input_size: Sequence[int]) -> Dict[str, Any]:
        blocks = blocks_of(model, input_size)
        per = [(b["key"], self.measure(b)) for b in blocks]
        return {"predicted_ms": float(sum(v for _, v in per)), "blocks": len(per),
                "per_block_ms": per}

    def save(self, path: Optional[str] = None) -> None:
        atomic_write_json(path or self.path, {"schema": "ppnets.lut/1", "meta": self.meta,
                                              "entries": self.entries}, strict=True)


def _spearman(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    if len(a) < 3:
        return None
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def validate(names: Sequence[str], table: LatencyTable, threads: int = 1, warmup: int = 5,
             repeats: int = 20) -> Dict[str, Any]:
    rows = []
    for name in names:
        measured = benchmark_model(name, threads=threads, warmup=warmup, repeats=repeats)
        model = ppnets.create_model(name)
        model.eval()
        ppnets.reparameterize_model(model)
        pred = table.predict(model, measured["input_size"])
        m = measured["latency_ms"]["median"]
        rows.append({"model": name, "measured_ms": m, "predicted_ms": pred["predicted_ms"],
                     "rel_error": (pred["predicted_ms"] - m) / m, "blocks": pred["blocks"],
                     "load_avg": measured["machine"]["load_avg"]})
        if table.path:
            table.save()
    errs = [abs(r["rel_error"]) for r in rows]
    return {"rows": rows, "median_abs_rel_error": float(np.median(errs)) if errs else None,
            "spearman": _spearman([r["measured_ms"] for r in rows],
                                  [r["predicted_ms"] for r in rows]),
            "threads": threads, "warmup": warmup, "repeats": repeats}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ppnets.deploy.lut")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--table", required=True, help="LUT file (read if present, extended)")
    p.add_argument("--json", default=None, help="validation report")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)

    table = LatencyTable(args.table, args.threads, args.warmup, args.repeats)
    load_start = list(os.getloadavg())
    report = validate(resolve_model_names(args.models), table, args.threads, args.warmup,
                      args.repeats)
    table.save()
    # 1/5/15-min load averages: timings on a shared machine mean little without them.
    report["load_avg_start"], report["load_avg_end"] = load_start, list(os.getloadavg())
    report["command"] = "python -m ppnets.deploy.lut " + " ".join(argv or sys.argv[1:])
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
