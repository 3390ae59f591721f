"""``ppnets predict``: classify images with a registered model or an export folder.

    ppnets predict cat.jpg photos/ --model mobilenetv2_100 --pretrained
    ppnets predict photos/ --model mobilenetv2_100 --pretrained mnv2.safetensors --runtime openvino
    ppnets predict list.txt --export exports/ft --runtime onnxruntime --topk 3 --json preds.json

Images: files, folders (every image under them) and list files (``.txt``: one path a line,
relative to the list). ``--model`` (with ``--pretrained``: the published weights by default, a
tag or a checkpoint file) is exported on the fly into the cache (``ppnets.deploy.cache``);
``--export`` uses an export folder as it is. The preprocessing is the weights' evaluation
transform -- the one ``ppnets eval`` uses -- as recorded in ``export.json``, and so are the class
names (ImageNet's for ImageNet weights, a fine-tune's own). Prints the top-k of each image;
``--json`` writes one record per image, ``{"path", "topk": [{"index", "label", "prob"}]}``
(an unreadable file: ``topk`` empty and ``error``). Exit status 0, 1 when an image could not be
read, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ppnets.convert import CorruptCheckpointError, UnsafePickleError
from ppnets.deploy.cache import Calibration, cached_export, ensure_int8
from ppnets.engine.data import DataUnavailableError
from ppnets.engine.predict import Prediction, collect_images, predict_export, usable_cores
from ppnets.runtime import (PRECISIONS, RUNTIMES, PrecisionUnsupportedError,
                            RuntimeUnavailableError)
from ppnets.utils import atomic_write_json
from ppnets.weights.fetch import WeightsIntegrityError, WeightsUnavailableError
from ppnets.weights.sources import WeightNotFoundError

from .common import run_command
from .experiment import report_errors

HELP = "classify images with a model or an export folder, on any runtime"
DESCRIPTION = ("Classify images (files, folders, list files) with a registered model and its "
               "weights or an export folder, on Paddle Inference, ONNX Runtime, OpenVINO or "
               "Paddle Lite: the top-k classes with their names and probabilities.")

# What a user can get wrong, each said in one line by run().
USAGE_ERRORS = (KeyError, ValueError, FileNotFoundError, DataUnavailableError,
                RuntimeUnavailableError, PrecisionUnsupportedError, WeightNotFoundError,
                WeightsUnavailableError, WeightsIntegrityError, CorruptCheckpointError,
                UnsafePickleError)
# An export that failed its check against the eager model: exit status 1.
EXPORT_FAILURES = (RuntimeError,)


def add_model_source(p: argparse.ArgumentParser, required: bool) -> None:
    """``--model``/``--pretrained``/``--num-classes`` or ``--export``, shared with eval."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--model", help="registry name; exported on the fly into the cache")
    src.add_argument("--export", "--export-dir", dest="export", metavar="DIR",
                     help="an export folder (ppnets export), used as it is")
    p.add_argument("--pretrained", nargs="?", const="true", default=None, metavar="TAG|PATH",
                   help="with --model: the published weights (bare flag, 'true' or a tag) or a "
                        "checkpoint file")
    p.add_argument("--num-classes", type=int, default=None,
                   help="with --model: classes of the --pretrained checkpoint")


def add_runtime_options(p: argparse.ArgumentParser, runtime_help: str) -> None:
    p.add_argument("--runtime", choices=list(RUNTIMES), default=None, help=runtime_help)
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="fp32 (exact), bf16 (paddle_inference/openvino on a bf16 CPU) or int8 "
                        "(the export's INT8 artifacts; made when missing, calibrated on "
                        "--calib-images of the data)")
    p.add_argument("--threads", type=int, default=None,
                   help="the runtime's threads (default: the usable cores)")


def pretrained_value(value: Optional[str]):
    """--pretrained as create_model reads it: absent or 'true' -> True (published weights)."""
    return True if value is None or value.strip().lower() == "true" else value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, folders of images, or list files (.txt, a path a line)")
    add_model_source(p, required=True)
    add_runtime_options(p, "the runtime that runs the export (default: paddle_inference, or "
                           "the first the export has of onnxruntime, openvino, paddle_lite)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1,
                   help="with --model: the exported batch (an export folder has its own)")
    p.add_argument("--calib-list", default=None, metavar="LIST",
                   help="with --precision int8 and an export without INT8 artifacts: the "
                        "PaddleClas list whose first --calib-images images calibrate")
    p.add_argument("--calib-images", type=int, default=100)
    p.add_argument("--json", default=None, metavar="OUT",
                   help="write the records here (a JSON list, one record per image)")


def _calibration(args: argparse.Namespace) -> Optional[Calibration]:
    if args.precision != "int8" or not args.calib_list:
        return None
    return Calibration(count=args.calib_images, list_file=args.calib_list)


def export_folder(args: argparse.Namespace, batch_size: int,
                  calibration: Optional[Calibration]) -> str:
    """The export folder the options name (``--export``), or the cached export of ``--model``
    with ``--pretrained``, made when missing; int8: with INT8 artifacts."""
    if args.export:
        if args.pretrained is not None or args.num_classes is not None:
            raise ValueError("--pretrained/--num-classes go with --model; an export folder "
                             "(--export) has its weights")
        if args.precision == "int8":
            ensure_int8(args.export, calibration)
        return args.export
    return cached_export(args.model, pretrained_value(args.pretrained),
                         num_classes=args.num_classes, batch_size=batch_size,
                         runtime=args.runtime or "paddle_inference", precision=args.precision,
                         calibration=calibration, progress=True)


def _print(pred: Prediction) -> None:
    if pred.error:
        print(f"{pred.path}: error: {pred.error}", flush=True)
        return
    print(pred.path)
    for rank, top in enumerate(pred.topk, 1):
        label = f"{top['label']} ({top['index']})" if top["label"] else f"class {top['index']}"
        print(f"  {rank}. {100 * top['prob']:6.2f}%  {label}", flush=True)


def run(args: argparse.Namespace) -> int:
    return report_errors(lambda: _predict(args), USAGE_ERRORS, EXPORT_FAILURES)


def _predict(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1, got {args.topk}")
    paths = collect_images(args.images)
    if args.precision == "int8" and args.model and not args.calib_list:
        raise ValueError("--precision int8 with --model calibrates on images: give "
                         "--calib-list LIST (its first --calib-images images)")
    folder = export_folder(args, args.batch_size, _calibration(args))
    records, info = predict_export(folder, paths, args.runtime, args.precision,
                                   threads=args.threads or usable_cores(), topk=args.topk,
                                   on_result=_print)
    session = info["session"]
    print(f"\n{info['model']} on {session['runtime']} {session['version']} "
          f"({session['precision']}, {session['threads']} threads); export {info['export_dir']}",
          file=sys.stderr)
    if args.json:
        atomic_write_json(args.json, [r.to_dict() for r in records])
    failed = [r for r in records if r.error]
    if failed:
        print(f"{len(failed)} of {len(records)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets predict")
