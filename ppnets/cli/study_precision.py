"""``ppnets study x86-precision``: bf16 and INT8 beside fp32 on each x86 runtime, latency and
accuracy on real images (:mod:`ppnets.studies.precision`, docs/deploy.md "x86 INT8 and bf16").

    ppnets study x86-precision --pretrained mobilenetv2_100.safetensors \\
        --list-file imagenet-val-sample/val_list.txt          # -> results/latency/precision_x86.*
    ppnets study x86-precision --pretrained W --list-file L --smoke --output-dir /tmp/p

``python reproduce/x86_precision.py [options]`` runs the same (:func:`run_reproduce_script`).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Optional, Sequence

from ppnets.experiments.record import RunRecord
from ppnets.runtime import PRECISIONS
from ppnets.studies.precision import RUNTIMES, SMOKE, PrecisionOptions, run_precision_study

PRECISION_STUDY = "x86-precision"
PRECISION_SUMMARY = ("bf16 and INT8 vs fp32 on Paddle Inference, ONNX Runtime, OpenVINO: "
                     "latency + top-1")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (f"{PRECISION_SUMMARY}. Exports the model with its weights, "
                          "quantizes it to INT8 (calibrated on the first images of the list), "
                          "runs every runtime x precision and writes precision_x86.json/.md "
                          "with the issue's targets judged.")
    parser.add_argument("--pretrained", required=True, metavar="WEIGHTS",
                        help="the model's weights (a file create_model(pretrained=...) reads)")
    parser.add_argument("--list-file", required=True, metavar="LIST",
                        help="evaluation images: a PaddleClas list ('relative/path label')")
    parser.add_argument("--root", default=None, help="image root (default: the list's folder)")
    parser.add_argument("--model", default="mobilenetv2_100", help="registered model name")
    parser.add_argument("--limit", type=_positive, default=None,
                        help="evaluate the first N images only (default: all)")
    parser.add_argument("--calibration-images", type=_positive, default=100,
                        help="INT8 calibrates on the first N images; top-1 is also reported "
                             "on the others")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--threads", nargs="+", type=_positive, default=[1, 2],
                        help="thread counts timed (batch 1)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs per round")
    parser.add_argument("--repeats", type=_positive, default=50, help="timed runs per round")
    parser.add_argument("--rounds", type=_positive, default=3,
                        help="interleaved rounds over every configuration; the median counts")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a pipeline check: {SMOKE['limit']} images, {SMOKE['repeats']} "
                             "repeats; the numbers mean nothing and are marked so")
    parser.add_argument("--output-dir", default="results/latency",
                        help="where precision_x86.json/.md are written")
    parser.add_argument("--export-dir", default=None,
                        help="keep the export and its int8/ here (default: a temporary folder)")


def add_precision_parser(subparsers) -> None:
    """The ``x86-precision`` entry of ``ppnets study``'s sub-commands."""
    add_precision_arguments(subparsers.add_parser(PRECISION_STUDY, help=PRECISION_SUMMARY))


def run_precision(args: argparse.Namespace, script: str = f"ppnets study {PRECISION_STUDY}",
                  command: Optional[Sequence[str]] = None) -> int:
    """Run the study with the parsed options; the run record names ``script`` and ``command``
    (the command line as typed, one word per item)."""
    command = list(command) if command else shlex.split(getattr(args, "command", "") or script)
    record = RunRecord(script, command, smoke=args.smoke, device="cpu")
    options = PrecisionOptions(
        pretrained=args.pretrained, list_file=args.list_file, model=args.model, root=args.root,
        limit=args.limit, calibration_images=args.calibration_images,
        runtimes=tuple(args.runtimes), precisions=tuple(args.precisions),
        threads=tuple(args.threads), warmup=args.warmup, repeats=args.repeats,
        rounds=args.rounds, smoke=args.smoke, output_dir=args.output_dir,
        export_dir=args.export_dir)
    try:
        run_precision_study(options, command=shlex.join(command), run_record=record.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_reproduce_script(script_path: str, argv: Optional[Sequence[str]] = None) -> int:
    """``python reproduce/x86_precision.py [options]``: the options of ``ppnets study
    x86-precision``, recorded as that command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script = os.path.basename(script_path)
    parser = argparse.ArgumentParser(prog=f"python reproduce/{script}")
    add_precision_arguments(parser)
    args = parser.parse_args(argv)
    return run_precision(args, script, ["python", f"reproduce/{script}", *argv])
