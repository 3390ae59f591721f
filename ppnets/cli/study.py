"""``ppnets study``: re-run a paper's latency study on this machine (docs/latency_studies.md).

    ppnets study --list                                   # the studies, one line each
    ppnets study fasternet-table1                         # full run into results/latency/
    ppnets study zoo --quick --output-dir /tmp/zoo        # pipeline check: subset, 3 repeats
    ppnets study shufflenetv2-guidelines --device cpu gpu --arm-results arm.json
    ppnets study mobileone-blocks --runtimes paddle_inference onnxruntime openvino

``python reproduce/latency_<stem>.py [options]`` runs the same study with the same options
(:func:`run_reproduce_script`). Both embed a run record (:mod:`ppnets.experiments.record`).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from typing import Callable, Dict, Optional, Sequence

from ppnets.cli.study_precision import (PRECISION_STUDY, PRECISION_SUMMARY, add_precision_parser,
                                        run_precision)
from ppnets.experiments.record import RunRecord
from ppnets.runtime import RUNTIMES
from ppnets.studies import STUDIES, Study, StudyError
from ppnets.studies.shufflenetv2_guidelines import GUIDELINES
from ppnets.studies.study import DEFAULT_OUTPUT_DIR, DEFAULT_RUNTIMES, QUICK_REPEATS, QUICK_WARMUP
from ppnets.studies.zoo import QUICK_MODELS

HELP = "re-run a paper's latency study on this machine (ppnets study --list)"
DESCRIPTION = ("Re-run a paper's latency study on this machine: the paper's networks measured "
               "through the bench harness, the paper's numbers and claims beside ours, written "
               "as <study>.json/.md/.png. 'ppnets study --list' names the studies; 'ppnets "
               "study NAME --help' lists a study's options.")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every study shares (the fields of :class:`ppnets.studies.StudyOptions`)."""
    parser.add_argument("--device", dest="devices", nargs="+", choices=("cpu", "gpu"),
                        default=["cpu"],
                        help="where to measure on this machine (e.g. --device cpu gpu)")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES + ("all",),
                        default=list(DEFAULT_RUNTIMES), metavar="RUNTIME",
                        help="runtimes to measure every network on, each judged on its own: "
                             f"{', '.join(RUNTIMES)}, or all (default: "
                             f"{' '.join(DEFAULT_RUNTIMES)}). One not installed here is "
                             "listed as skipped with the reason; runtimes other than "
                             "paddle_inference run on the CPU only")
    parser.add_argument("--threads", type=_positive, default=1,
                        help="CPU math-library threads (the papers' CPU figures: 1)")
    parser.add_argument("--no-mkldnn", dest="mkldnn", action="store_false",
                        help="disable oneDNN kernels on CPU")
    parser.add_argument("--warmup", type=_positive, default=10, help="untimed runs per network")
    parser.add_argument("--repeats", type=_positive, default=50,
                        help="individually timed runs per network")
    parser.add_argument("--rounds", type=_positive, default=3,
                        help="fresh predictors per network, each timed; the median round is "
                             "reported (docs/benchmarking.md)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a subset with {QUICK_WARMUP} warm-up / {QUICK_REPEATS} repeats: "
                             "checks the pipeline; the numbers mean nothing and are marked so")
    parser.add_argument("--arm-results", default=None, metavar="FILE",
                        help="bench-schema JSON measured on an ARM device, merged by label")
    parser.add_argument("--gpu-results", default=None, metavar="FILE",
                        help="bench-schema JSON measured on a GPU host, merged by label")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="where <study>.json/.md/.png are written")
    parser.add_argument("--keep-models", default=None, metavar="DIR",
                        help="keep every exported program under DIR/<label>/ (for a device "
                             "runner); other runtimes than paddle_inference: "
                             "DIR/<runtime>/<label>/")
    parser.add_argument("--no-figure", dest="figure", action="store_false", help="skip the PNG")


def _shufflenetv2_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guidelines", nargs="+", choices=GUIDELINES, default=list(GUIDELINES))


def _efficientformer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="efficientformer_l1",
                        help="registered EfficientFormer for the breakdown")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the whole-model breakdown")


def _zoo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None, metavar="PATTERN",
                        help="registry names or fnmatch patterns (default: every registered "
                             f"model; with --quick: {' '.join(QUICK_MODELS)})")


# study name -> the options of its own (the fields its options class adds to StudyOptions)
STUDY_ARGUMENTS: Dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "shufflenetv2-guidelines": _shufflenetv2_arguments,
    "efficientformer-observations": _efficientformer_arguments,
    "zoo": _zoo_arguments,
}


def add_study_arguments(parser: argparse.ArgumentParser, study: Study) -> None:
    """Every option of ``study``: the shared ones and its own."""
    parser.description = f"{study.summary}. Writes {study.stem}.json/.md/.png."
    add_common_arguments(parser)
    STUDY_ARGUMENTS.get(study.name, lambda p: None)(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="list the studies, one line each")
    sub = parser.add_subparsers(dest="study", metavar="NAME")
    for name, study in STUDIES.items():
        add_study_arguments(sub.add_parser(name, help=study.summary), study)
    add_precision_parser(sub)   # not a paper's study: its own options (cli/study_precision.py)


def list_studies() -> str:
    summaries = {**{name: study.summary for name, study in STUDIES.items()},
                 PRECISION_STUDY: PRECISION_SUMMARY}
    width = max(len(name) for name in summaries)
    return "\n".join(f"{name:<{width}}  {summary}" for name, summary in summaries.items())


def options_from_args(study: Study, args: argparse.Namespace):
    """The study's options class filled from parsed arguments (dests are its field names)."""
    return study.options(**{f.name: getattr(args, f.name)
                            for f in dataclasses.fields(study.options)})


def run_study_args(study: Study, args: argparse.Namespace, script: str,
                   command: Sequence[str]) -> int:
    """Run ``study`` with the parsed options; the run record names ``script`` and ``command``
    (the command line as typed, one word per item)."""
    record = RunRecord(script, command, smoke=args.quick, device=args.devices[0])
    try:
        study.run(options_from_args(study, args), command=shlex.join(command),
                  run_record=record.data)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list or args.study is None:
        print(list_studies())
        if args.study is None and not args.list:
            print("\nRun one with 'ppnets study NAME [options]' ('ppnets study NAME --help').")
        return 0
    if args.study == PRECISION_STUDY:
        return run_precision(args)
    return run_study_args(STUDIES[args.study], args, f"ppnets study {args.study}",
                          shlex.split(args.command))


def run_reproduce_script(name: str, script_path: str,
                         argv: Optional[Sequence[str]] = None) -> int:
    """``python reproduce/<stem>.py [options]``: the study ``name`` with the options of
    ``ppnets study NAME``, recorded as that command line."""
    study = STUDIES[name]
    argv = list(sys.argv[1:] if argv is None else argv)
    script = os.path.basename(script_path)
    parser = argparse.ArgumentParser(prog=f"python reproduce/{script}")
    add_study_arguments(parser, study)
    args = parser.parse_args(argv)
    return run_study_args(study, args, script, ["python", f"reproduce/{script}", *argv])
