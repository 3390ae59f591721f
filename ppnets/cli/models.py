"""``ppnets models``: the registered models, by pattern or family, and one model's facts.

    ppnets models                          # every model: family, params, MACs, top-1, input
    ppnets models 'fasternet_*' --family repvgg
    ppnets models --info fasternet_t0      # model_info as JSON (figures, sources, notes)
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from ppnets.registry import list_models, model_info
from ppnets.utils import markdown_table

from .common import run_command

HELP = "list registered models (patterns, family) or show one model's model_info"
DESCRIPTION = "The registered models, by pattern or family, and one model's published facts."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="*", metavar="PATTERN",
                   help="fnmatch patterns (quote them), e.g. 'repvgg_*' (default: all)")
    p.add_argument("--family", default=None, help="only this family, e.g. fasternet")
    p.add_argument("--info", metavar="NAME", default=None,
                   help="print this model's model_info as JSON instead of the list")


def run(args: argparse.Namespace) -> int:
    if args.info:
        try:
            info = model_info(args.info)
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
        print(json.dumps(info, indent=2, default=list))
        return 0
    names = list_models(args.patterns or None, family=args.family)
    if not names:
        print(f"error: no registered model matches {args.patterns or '*'}"
              + (f" in family {args.family!r}" if args.family else ""), file=sys.stderr)
        return 2
    rows = []
    for name in names:
        info = model_info(name)
        rows.append([name, info["family"], info.get("params_m"), info.get("macs_g"),
                     info.get("top1"), "x".join(map(str, info["input_size"][1:])),
                     info["dataset"]])
    print(markdown_table(["model", "family", "params (M)", "MACs (G)", "top-1 (%)", "input",
                          "data set"], rows, digits=[0, 0, 2, 3, 1, 0, 0],
                         align="---|---|---:|---:|---:|---|---"))
    print(f"\n{len(names)} models; published figures with sources: ppnets models --info NAME")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets models")
