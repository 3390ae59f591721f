"""``ppnets``: one command for the whole suite.

    ppnets models 'fasternet_*'                  # list, with published figures
    ppnets models --info fasternet_t0            # one model's model_info
    ppnets train -c spconv/paper_cifar10 -o train.epochs=2 --output-dir runs/x
    ppnets configs 'fasternet*'                  # the shipped recipes (configs show NAME: merged)
    ppnets data check my_images/                 # unreadable, odd or duplicated image files
    ppnets eval --model resnet18 --pretrained r18.safetensors --data-dir /data/imagenet
    ppnets export --model fasternet_t0 --pretrained --formats paddle onnx --output-dir exports/t0
    ppnets bench --models resnet18 'spconv_*' --threads 1 --json bench.json
    ppnets complexity --models 'repvgg_*' --deploy
    ppnets convert --model fasternet_t0 --src fasternet_t0.safetensors --out t0.pdparams
    ppnets weights fetch --all                   # published weights into the cache (offline use)
    ppnets study --list                          # the papers' latency studies; study NAME runs one
    ppnets peers --models resnet18 --threads 1   # Paddle Inference vs ONNX Runtime vs PyTorch
    ppnets search efficientformer --smoke --data-file cifar-10-python.tar.gz   # latency search
    ppnets lut validate --models fasternet_t0 --table lut.json   # latency lookup table
    ppnets deploy check --models 'fasternet_*'   # Paddle Lite: ops, .nb conversion, x86 parity

``ppnets <command> --help`` lists a command's options. One vocabulary throughout:
``--model``/``--models``, ``--output-dir``, ``--device``, ``--threads``, ``-c`` (config),
``-o key=value`` (config override).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional, Sequence

from . import (bench, complexity, configs, convert, data, deploy, evaluate, export, lut, models,
               peers, predict, search, study, train, weights)
from .common import configure_parser

__all__ = ["main", "COMMANDS"]

# command name -> module (see ppnets.cli.common for what a command module defines)
COMMANDS = {"train": train, "eval": evaluate, "export": export, "bench": bench,
            "complexity": complexity, "convert": convert, "models": models, "weights": weights,
            "configs": configs, "data": data, "study": study, "peers": peers, "search": search,
            "lut": lut, "deploy": deploy, "predict": predict}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppnets", description="ppnets: PaddlePaddle reproductions of efficient vision "
                                   "backbones -- models, training, export, latency, complexity.",
        epilog="Run 'ppnets <command> --help' for a command's options.")
    sub = parser.add_subparsers(dest="subcommand", metavar="<command>")
    sub.required = True
    for name, module in COMMANDS.items():
        configure_parser(sub.add_parser(name, help=module.HELP), module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = shlex.join(["ppnets", *argv])
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
