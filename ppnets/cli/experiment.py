"""The command line every experiment shares (``reproduce/*.py``, ``ppnets search``).

``--data-dir/--data-file``, ``--output-dir``, ``--device``, ``-o/--override key.sub=value``
(repeatable), ``--smoke``, ``--seed``, ``--no-resume``; ImageNet experiments add
``--train-list`` / ``--val-list``, row-table experiments ``--only`` / ``--no-plot``. They fill
:class:`ppnets.experiments.ExperimentOptions`: configs hold the recipe, these options the
environment. :func:`report_errors` turns a mistake in them into one ``error:`` line and exit
status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from ppnets.engine import ConfigError, DataUnavailableError
from ppnets.experiments import ExperimentError, ExperimentOptions, run_variants

__all__ = ["build_parser", "add_experiment_arguments", "add_imagenet_options",
           "add_variant_options", "experiment_fields", "experiment_options", "script_command",
           "report_errors", "run_variant_table"]

# A user's mistake in the options, the recipe or the data: one line, not a traceback.
USER_ERRORS = (ExperimentError, ConfigError, DataUnavailableError)


def add_experiment_arguments(p: argparse.ArgumentParser, default_output_dir: str) -> None:
    """The options every experiment shares."""
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


def build_parser(description: str, default_output_dir: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every reproduce script shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_experiment_arguments(p, default_output_dir)
    return p


def add_imagenet_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-list", default=None,
                   help="PaddleClas list file of the training split (paths relative to --data-dir)")
    p.add_argument("--val-list", default=None,
                   help="PaddleClas list file of the validation split")


def add_variant_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                   help="run only the rows with these labels (default: all)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG figure")


def script_command(script: str, argv: Optional[Sequence[str]]) -> List[str]:
    """The command line of ``python <script> <argv>`` as typed (``argv`` None: this process's)."""
    return ["python", script, *(sys.argv[1:] if argv is None else argv)]


def experiment_fields(args: argparse.Namespace) -> Dict[str, Any]:
    """The :class:`ExperimentOptions` fields the parsed options set (the ones a parser lacks
    keep their defaults)."""
    return dict(output_dir=args.output_dir, data_file=args.data_file, data_dir=args.data_dir,
                device=args.device, overrides=list(args.override), smoke=args.smoke,
                seed=args.seed, resume=not args.no_resume, only=getattr(args, "only", None),
                plot=not getattr(args, "no_plot", False),
                train_list=getattr(args, "train_list", None),
                val_list=getattr(args, "val_list", None))


def experiment_options(args: argparse.Namespace, script: str,
                       command: Sequence[str]) -> ExperimentOptions:
    """:class:`ExperimentOptions` from the options of :func:`build_parser` (and
    :func:`add_imagenet_options` / :func:`add_variant_options` when present)."""
    return ExperimentOptions(**experiment_fields(args), script=script, command=list(command))


def report_errors(run: Callable[[], int],
                  errors: Tuple[Type[BaseException], ...] = USER_ERRORS,
                  failures: Tuple[Type[BaseException], ...] = ()) -> int:
    """``run()``'s exit status, or one ``error:`` line on stderr and 2 when it raises one of
    ``errors`` (default: the options, the recipe or the data are wrong, :data:`USER_ERRORS`),
    1 when it raises one of ``failures`` (the command was right, the work failed)."""
    try:
        return run()
    except errors + failures as exc:
        # a KeyError's str() is its repr: print the message itself
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {text}", file=sys.stderr)
        return 2 if isinstance(exc, errors) else 1


def run_variant_table(args: argparse.Namespace, *, script: str, argv: Optional[Sequence[str]],
                      data: Callable[[ExperimentOptions], Dict[str, Any]], **table) -> int:
    """A row-table script's command: :func:`ppnets.experiments.run_variants` with the parsed
    options, the data described by ``data(options)`` (``cifar_data``, ``imagenet_data``) and the
    table (``schema``, ``title``, ``variants``, ...); 0, or 2 for a mistake in the options."""
    options = experiment_options(args, script, script_command(script, argv))

    def run() -> int:
        run_variants(options, data=data(options), **table)
        return 0
    return report_errors(run)
