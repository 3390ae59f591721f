"""``ppnets complexity``: params, MACs, FLOPs (= 2 x MACs) and memory access of models.

    ppnets complexity --models 'repvgg_*' fasternet_t0 [--input-size 3 224 224]
        [--batch-size 1] [--deploy] [--per-layer] [--json OUT]

Prints one row per model with our counts next to the published ``params_m`` / ``macs_g`` of
``ppnets.model_info`` and the relative differences (``--deploy`` compares with the
``*_deploy`` figures where a family publishes them). MACs are compared per sample, and only when
the profiled input size is the one the published figure refers to.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence

from tqdm import tqdm

from ppnets.analysis import profile_model
from ppnets.factory import create_model
from ppnets.registry import model_info, resolve_model_names
from ppnets.utils import atomic_write_json

from .common import run_command

def _published(info: Dict[str, Any], key: str, deploy: bool):
    """(value, key used) of a published figure; deploy figures win under --deploy."""
    if deploy and info.get(f"{key}_deploy") is not None:
        return info[f"{key}_deploy"], f"{key}_deploy"
    return info.get(key), key


def _rel(ours: float, published) -> Optional[float]:
    if published is None or published == 0:
        return None
    return (ours - published) / published


def profile_record(name: str, input_size: Optional[Sequence[int]], batch_size: int,
                   deploy: bool, per_layer: bool) -> Dict[str, Any]:
    info = model_info(name)
    model = create_model(name, deploy=deploy)
    prof = profile_model(model, input_size=input_size or info["input_size"], batch_size=batch_size)
    params_pub, params_key = _published(info, "params_m", deploy)
    macs_pub, macs_key = _published(info, "macs_g", deploy)
    same_size = tuple(prof.input_size) == tuple(info["input_size"])
    macs_g = prof.macs / batch_size / 1e9
    record = {
        "name": name,
        "input_size": list(prof.input_size),
        "batch_size": batch_size,
        "deploy": deploy,
        "params": prof.params,
        "params_m": prof.params / 1e6,
        "macs": prof.macs,
        "macs_g_per_sample": macs_g,
        "flops": prof.flops,
        "flops_convention": "FLOPs = 2 x MACs",
        "memory_bytes": prof.memory_bytes,
        # under --deploy the *_deploy figures are used where published; "keys" says which
        "published": {"params_m": params_pub, "macs_g": macs_pub,
                      "keys": [params_key, macs_key], "input_size": list(info["input_size"])},
        "rel_diff": {
            "params": _rel(prof.params / 1e6, params_pub),
            # a published MAC count refers to the published input size only
            "macs": _rel(macs_g, macs_pub) if same_size else None,
        },
    }
    if per_layer:
        record["layers"] = [layer.to_dict() for layer in prof.layers]
        record["table"] = prof.table()
    return record


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _summary_table(records: List[Dict[str, Any]]) -> str:
    header = ["model", "input", "params (M)", "published", "rel. diff", "MACs (G)", "published",
              "rel. diff", "FLOPs (=2xMACs) (G)", "memory (MB)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['name']} | ERROR: {r['error']} |" + " |" * (len(header) - 2))
            continue
        pub = r["published"]
        lines.append("| " + " | ".join([
            r["name"] + (" (deploy)" if r["deploy"] else ""),
            f"{r['batch_size']}x" + "x".join(map(str, r["input_size"])),
            f"{r['params_m']:.3f}", _fmt(pub["params_m"], ".3f"),
            _fmt(r["rel_diff"]["params"], "+.2%"),
            f"{r['macs_g_per_sample']:.4f}", _fmt(pub["macs_g"], ".4f"),
            _fmt(r["rel_diff"]["macs"], "+.2%"),
            f"{r['flops'] / r['batch_size'] / 1e9:.4f}",
            f"{r['memory_bytes'] / 1e6:.2f}",
        ]) + " |")
    return "\n".join(lines)


HELP = "params, MACs (FLOPs = 2 x MACs), memory access, beside the published figures"
DESCRIPTION = ("Params, MACs (FLOPs = 2 x MACs) and memory access cost of registered models, "
               "next to the published figures.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", "--model", nargs="+", required=True, metavar="NAME",
                   help="registry names or fnmatch patterns (quote them), e.g. 'repvgg_*'")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None,
                   help="input size without batch (default: the model's model_info input_size)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--deploy", action="store_true",
                   help="profile create_model(name, deploy=True), the reparameterized form")
    p.add_argument("--per-layer", action="store_true", help="also print per-layer tables")
    p.add_argument("--json", metavar="OUT", default=None, help="write the results as JSON")


def run(args: argparse.Namespace) -> int:
    # patterns must match; a plain name that fails becomes an error row (exit status 1)
    names: List[str] = []
    for item in args.models:
        try:
            matched = resolve_model_names([item]) if set(item) & set("*?[") else [item]
        except KeyError as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 2
        names += [n for n in matched if n not in names]
    records = []
    for name in tqdm(names, desc="profiling", unit="model", disable=len(names) < 2,
                     file=sys.stderr):
        try:
            records.append(profile_record(name, args.input_size, args.batch_size, args.deploy,
                                          args.per_layer))
        except Exception as exc:  # keep profiling the other models; report and exit non-zero
            records.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
    print(_summary_table(records))
    print("\nMACs = multiply-accumulates of conv/linear/matmul per sample; FLOPs = 2 x MACs; "
          "memory = float32 bytes of layer inputs + outputs + weights (ShuffleNetV2's MAC).")
    if args.per_layer:
        for r in records:
            if "table" in r:
                print(f"\n### {r['name']}\n")
                print(r.pop("table"))
    if args.json:
        for r in records:
            r.pop("table", None)
        atomic_write_json(args.json, {"models": records, "command": args.command})
        print(f"\nwrote {args.json}")
    return 1 if any("error" in r for r in records) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets complexity")
