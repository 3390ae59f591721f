"""``ppnets configs``: the training recipes shipped with ppnets, and one recipe merged.

    ppnets configs                      # every recipe: name, model, data set, description
    ppnets configs fasternet            # names containing 'fasternet' (or a pattern: '*/cifar10')
    ppnets configs show fasternet/cifar10 [-o train.epochs=5]   # the merged recipe as YAML

A recipe name is what ``ppnets train -c`` takes (``ppnets train -c fasternet/cifar10``); the
files live in the installed package (``ppnets/configs/``), so a wheel install has them too.
``base/`` recipes are fragments other recipes inherit (``_base_``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ppnets.engine.config import ConfigError, dump_config, list_configs, load_config
from ppnets.utils import markdown_table

from .common import run_command

HELP = "list the shipped training recipes, or show one merged (ppnets configs show NAME)"
DESCRIPTION = ("The training recipes shipped with ppnets (names for ppnets train -c), or one "
               "recipe with its _base_ files and the defaults merged: ppnets configs show NAME.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", nargs="*", metavar="PATTERN | show NAME",
                   help="a name pattern to list (substring or shell pattern; default: all), or "
                        "'show NAME' to print that recipe merged")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="with show: apply these overrides too (repeatable)")


def _show(name: str, overrides: Sequence[str]) -> int:
    try:
        cfg = load_config(name, overrides, complete=False)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dump_config(cfg), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[:1] == ["show"]:
        if len(words) != 2:
            print("error: usage: ppnets configs show NAME (a name from `ppnets configs`)",
                  file=sys.stderr)
            return 2
        return _show(words[1], args.override)
    if len(words) > 1:
        print(f"error: one pattern at a time, got {words}; 'show NAME' prints one recipe",
              file=sys.stderr)
        return 2
    recipes = list_configs(words[0] if words else "*")
    if not recipes:
        print(f"error: no recipe matches {words[0]!r}; `ppnets configs` lists them all",
              file=sys.stderr)
        return 2
    rows = []
    for recipe in recipes:
        try:
            cfg = load_config(recipe.path, complete=False)
            model, data = cfg["model"]["name"] or "(-o model.name=...)", cfg["data"]["dataset"]
        except ConfigError:
            model, data = "?", "?"
        if recipe.name.startswith("base/"):
            model, data = "(fragment)", ""
        rows.append([recipe.name, model, data, recipe.description])
    print(markdown_table(["recipe", "model", "data", "description"], rows,
                         align="---|---|---|---"))
    print(f"\n{len(recipes)} recipes; `ppnets train -c NAME`, `ppnets configs show NAME`")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets configs")
