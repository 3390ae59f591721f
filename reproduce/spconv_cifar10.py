"""Reproduce the SPConv CIFAR-10 experiments.

Two experiments, each a YAML config in configs/spconv/:

* ``seed``  -- ResNet18 vs SPConv-ResNet18 on CIFAR-10 resized to 224, Adam 3e-4, batch 128,
  10 epochs (configs/spconv/seed_resnet18.yaml);
* ``paper`` -- the paper's CIFAR-10 study: ResNet-20 and VGG-16 without and with SPConv at
  alpha 1/2 ... 1/16, 32x32, SGD (configs/spconv/paper_cifar10.yaml, whose comments give the
  recipe's sources).

Every model trains with ``ppnets.engine.fit`` into ``<output-dir>/<experiment>/<model>/``
(checkpoints, VisualDL logs, results.json; re-running the same command resumes). The script then
counts params/MACs (``ppnets.analysis.profile_model``) and measures batch-1 latency
(``ppnets.bench.benchmark_model``, 1 thread) and writes ``results.json``, ``results.md`` and
``run_record.json`` into ``<output-dir>`` (``<output-dir>/smoke`` with ``--smoke``).

    python reproduce/spconv_cifar10.py --experiment all --device gpu --data-file cifar-10-python.tar.gz
    python reproduce/spconv_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing

from ppnets.cli.experiment import (build_parser, experiment_fields, report_errors,  # noqa: E402
                                   script_command)
from ppnets.experiments.spconv_cifar10 import SpconvOptions, run  # noqa: E402

SCRIPT = "reproduce/spconv_cifar10.py"


def parse_args(argv: Optional[Sequence[str]] = None):
    p = build_parser(__doc__.split("\n\n")[0], default_output_dir="outputs/spconv_cifar10")
    p.add_argument("--experiment", choices=("seed", "paper", "paper_subset", "all"),
                   default="all", help="all = seed + paper; paper_subset = the paper's recipe "
                   "scaled to the 4,829-image CIFAR-10 subset")
    p.add_argument("--models", nargs="+", default=None,
                   help="train only these registry names (default: the experiment's list)")
    p.add_argument("--no-bench", action="store_true", help="skip the latency measurement")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module first, e.g. one that registers your own models")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for module in args.imports:
        importlib.import_module(module)
    options = SpconvOptions(**experiment_fields(args), experiment=args.experiment,
                            models=args.models, bench=not args.no_bench, script=SCRIPT,
                            command=script_command(SCRIPT, argv))

    def train_and_measure() -> int:
        results = run(options, os.path.join(REPO, "configs", "spconv"))
        return 1 if any(row["errors"] for row in results["rows"]) else 0
    return report_errors(train_and_measure)


if __name__ == "__main__":
    sys.exit(main())
