"""The command line every experiment script shares (``reproduce/*.py``).

``--data-dir/--data-file``, ``--output-dir``, ``--device``, ``-o/--override key.sub=value``
(repeatable), ``--smoke``, ``--seed``, ``--no-resume``; ImageNet scripts add ``--train-list`` /
``--val-list``, row-table scripts ``--only`` / ``--no-plot``. Configs hold the recipe; these
options hold the environment.
"""
from __future__ import annotations

import argparse
from typing import List, Optional

__all__ = ["build_parser", "common_overrides", "add_imagenet_options", "add_variant_options"]


def build_parser(description: str, default_output_dir: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every reproduce script shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data-file", default=None,
                      help="local data archive (e.g. cifar-10-python.tar.gz)")
    data.add_argument("--data-dir", default=None,
                      help="folder holding the data set under its official file name")
    p.add_argument("--output-dir", default=default_output_dir,
                   help="where checkpoints, logs and result tables go")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. -o train.epochs=2 -o optim.lr=0.05 (repeatable)")
    p.add_argument("--smoke", action="store_true",
                   help="a few steps of one epoch per model: checks the pipeline end to end in "
                        "minutes on a CPU; the numbers mean nothing and are marked as smoke")
    p.add_argument("--seed", type=int, default=None, help="train.seed for every run")
    p.add_argument("--no-resume", action="store_true",
                   help="start over even if the output folder holds checkpoints (the old run "
                        "is moved to previous-<time>/, never deleted)")
    return p


def common_overrides(args: argparse.Namespace, data_file: Optional[str]) -> List[str]:
    """Overrides implied by the shared options (user ``-o`` values come after and win)."""
    out = [f"device={args.device}"]
    if data_file:
        out.append(f"data.data_file={data_file}")
    if args.seed is not None:
        out.append(f"train.seed={args.seed}")
    if args.no_resume:
        out.append("train.resume=false")
    return out


def add_imagenet_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-list", default=None,
                   help="PaddleClas list file of the training split (paths relative to --data-dir)")
    p.add_argument("--val-list", default=None,
                   help="PaddleClas list file of the validation split")


def add_variant_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                   help="run only the rows with these labels (default: all)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG figure")
