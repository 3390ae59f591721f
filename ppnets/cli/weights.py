"""``ppnets weights``: the published weights of every model, and the local cache.

    ppnets weights list 'fasternet_*'          # tags, sources, claimed top-1, cached or not
    ppnets weights fetch fasternet_t0 repvgg_a0 [--tag in1k]
    ppnets weights fetch --all                 # prepare an offline machine: copy PPNETS_HOME
    ppnets weights verify                      # re-hash every cache entry

The cache is ``PPNETS_HOME`` (default ``~/.cache/ppnets``); hub downloads follow
``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE=1`` keeps everything local.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import List, Optional, Sequence

from tqdm import tqdm

from ppnets.registry import list_models, resolve_model_names
from ppnets.utils import atomic_write_json, markdown_table
from ppnets.weights.fetch import WeightsIntegrityError, WeightsUnavailableError, ppnets_home
from ppnets.weights.pretrained import cache_dir, cached_entry, converted_weights, resolve_weight
from ppnets.weights.sources import NO_WEIGHTS, WeightNotFoundError, weights_for

from .common import run_command

HELP = "published weights: list them, fetch them into the cache, verify the cache"
DESCRIPTION = ("The published weights of every model (hub repository or URL, claimed top-1 and "
               "its source) and the local cache (PPNETS_HOME).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "fetch", "verify"))
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registry names or fnmatch patterns (default: every model)")
    p.add_argument("--tag", default=None, help="a weight tag (default: each model's default)")
    p.add_argument("--all", action="store_true",
                   help="fetch: every model's default weights (to prepare an offline machine)")
    p.add_argument("--json", default=None, help="list: also write the table as JSON")


def _names(args) -> List[str]:
    return resolve_model_names(args.models) if args.models else list_models()


def run(args: argparse.Namespace) -> int:
    try:
        names = _names(args)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.action == "list":
        rows, records = [], []
        for name in names:
            for src in weights_for(name):
                cached = cached_entry(src) is not None
                where = src.hf_hub_id if src.kind == "hf_hub" else src.url
                rows.append([name, src.tag, "yes" if src.default else "", where, src.top1,
                             "yes" if cached else ""])
                records.append({**dataclasses.asdict(src), "cached": cached})
        print(markdown_table(["model", "tag", "default", "source", "top-1 claimed", "cached"],
                             rows, digits=[0, 0, 0, 0, 2, 0], align="---|---|---|---|---:|---"))
        missing = [n for n in names if not weights_for(n)]
        if missing:
            print("\nno published weights:")
            for n in missing:
                print(f"- {n}: {NO_WEIGHTS.get(n, 'none listed')}")
        print(f"\ncache: {ppnets_home()}")
        if args.json:
            atomic_write_json(args.json, records)
        return 0
    if args.action == "fetch":
        if not args.models and not args.all:
            print("error: name the models to fetch, or --all for every model's default weights",
                  file=sys.stderr)
            return 2
        failed = []
        todo = [n for n in names if weights_for(n)]
        for name in tqdm(todo, desc="fetching weights", unit="model", file=sys.stderr):
            try:
                entry = converted_weights(resolve_weight(name, args.tag or True))
                tqdm.write(f"{name}: {entry['weights_path']}", file=sys.stderr)
            except (WeightNotFoundError, WeightsUnavailableError, WeightsIntegrityError,
                    RuntimeError, ValueError) as exc:
                failed.append(name)
                tqdm.write(f"{name}: FAILED: {exc}", file=sys.stderr)
        print(f"{len(todo) - len(failed)}/{len(todo)} cached under {ppnets_home()}")
        return 1 if failed else 0
    bad = 0
    for name in names:
        for src in weights_for(name):
            if os.path.isdir(cache_dir(src)) and cached_entry(src) is None:
                bad += 1
                print(f"{name}.{src.tag}: {cache_dir(src)} is incomplete or damaged; "
                      f"`ppnets weights fetch {name} --tag {src.tag}` rebuilds it")
    print("cache OK" if not bad else f"{bad} damaged entries")
    return 1 if bad else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets weights")
