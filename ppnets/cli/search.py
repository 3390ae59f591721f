"""``ppnets search``: EfficientFormer's latency-driven architecture searches for your device.

    ppnets search efficientformer --smoke --data-file cifar-10-python-partial.tar.gz
    ppnets search efficientformerv2 --data-file cifar-10-python.tar.gz \
        --latency-targets-ms 0.5 0.4 0.3 --output-dir outputs/search/v2
    ppnets search efficientformer --data-file cifar-10-python.tar.gz --export-lite-grid grid
    ppnets search efficientformer --data-file cifar-10-python.tar.gz --lut lut_arm.json \
        --latency-targets-ms 4 3 2        # a table built on a phone (docs/search.md)

``efficientformer``: the V1 latency-driven slimming (arXiv:2206.01191 §4,
:mod:`ppnets.search.v1`); ``efficientformerv2``: the V2 fine-grained joint search with MES
(arXiv:2212.08059 §4, :mod:`ppnets.search.v2`). The recipes are the shipped
``search/efficientformer_cifar10`` and ``search/efficientformerv2_cifar10`` (``--config``
another, ``-o key=value`` to change one value). Writes ``search.json``, ``search.md``,
``search.png``, ``run_record.json`` and the latency table ``lut_<target>.json`` into
``--output-dir`` (``<output-dir>/smoke`` with ``--smoke``). ``reproduce/efficientformer_search.py``
and ``reproduce/efficientformerv2_search.py`` are the same commands.
"""
from __future__ import annotations

import argparse
import shlex
from typing import Optional, Sequence

from ppnets.search import v1, v2
from ppnets.search.runner import SearchOptions

from .experiment import add_experiment_arguments, experiment_fields, report_errors, script_command

HELP = "latency-driven architecture search (EfficientFormer V1 slimming, V2 MES)"
DESCRIPTION = ("EfficientFormer's latency-driven architecture searches for a device: supernet, "
               "latency table, search to several latency targets, networks that "
               "ppnets.create_model builds.")

# search name -> (module, one line for --help)
SEARCHES = {"efficientformer": (v1, "EfficientFormer V1 latency-driven slimming "
                                    "(arXiv:2206.01191 §4)"),
            "efficientformerv2": (v2, "EfficientFormerV2 fine-grained joint search with MES "
                                      "(arXiv:2212.08059 §4)")}


def add_search_arguments(p: argparse.ArgumentParser, search: str) -> None:
    """The experiment options (``--data-file/--data-dir``, ``--output-dir``, ``--device``,
    ``-o``, ``--smoke``, ``--seed``) plus the search's own."""
    module = SEARCHES[search][0]
    add_experiment_arguments(p, module.OUTPUT_DIR)
    p.add_argument("--target", choices=("cpu", "gpu"), default=None,
                   help="Paddle Inference device the latency table is measured on (default: "
                        "--device); ignored with --lut")
    p.add_argument("--lut", default=None, metavar="FILE",
                   help="a latency table measured on another device (ppnets.lut/1 JSON, e.g. "
                        "from lut_device.py on an ARM phone): search for that device")
    p.add_argument("--latency-targets-ms", type=float, nargs="+", default=None, metavar="MS",
                   help="latency budgets, all found in one run (default: the config's "
                        "experiment.search.target_fractions of the largest network's latency)")
    p.add_argument("--export-lite-grid", default=None, metavar="DIR",
                   help="write every block of the search grid as a Paddle Lite .nb with the "
                        "device-side timer into DIR, then stop (docs/search.md)")
    p.add_argument("--config", default=module.RECIPE,
                   help="search recipe: a file or a shipped recipe's name (ppnets configs)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="search", metavar="<search>")
    sub.required = True
    for name, (_, help_line) in SEARCHES.items():
        add_search_arguments(sub.add_parser(
            name, help=help_line, description=help_line,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter), name)


def search_options(args: argparse.Namespace, script: str,
                   command: Sequence[str]) -> SearchOptions:
    """:class:`~ppnets.search.runner.SearchOptions` from the options of
    :func:`add_search_arguments`."""
    return SearchOptions(**experiment_fields(args), script=script, command=list(command),
                         config=args.config, target=args.target, lut=args.lut,
                         latency_targets_ms=args.latency_targets_ms,
                         export_lite_grid=args.export_lite_grid)


def _export_grid(module, options: SearchOptions) -> int:
    manifest = module.export_grid(options)
    folder = options.export_lite_grid
    print(f"{len(manifest['entries'])} blocks in {folder} ({len(manifest['failed'])} failed "
          "to convert). Copy the folder to the device and run there:\n"
          "  python3 lut_device.py --grid . --out lut_arm.json\n"
          "then search with --lut lut_arm.json (docs/search.md).")
    return 0 if not manifest["failed"] else 1


def run_search(search: str, options: SearchOptions) -> int:
    """Run one search (or only export its grid); the exit status."""
    module = SEARCHES[search][0]

    def go() -> int:
        if options.export_lite_grid:
            return _export_grid(module, options)
        module.search(options)
        return 0
    return report_errors(go)


def run(args: argparse.Namespace) -> int:
    return run_search(args.search, search_options(args, f"ppnets search {args.search}",
                                                  shlex.split(args.command)))


def script_main(search: str, description: str, script: str,
                argv: Optional[Sequence[str]] = None) -> int:
    """``reproduce/<search>_search.py``: the same command with the script's name."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_search_arguments(p, search)
    args = p.parse_args(argv)
    return run_search(search, search_options(args, script, script_command(script, argv)))
