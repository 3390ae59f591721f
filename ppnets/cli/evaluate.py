"""``ppnets eval``: top-1 / top-5 of weights on ImageNet-style validation images, in the
dygraph model and, with ``--runtime``, in the runtime and precision that will serve them.

    ppnets eval --model resnet18 --pretrained resnet18.safetensors --data-dir /data/imagenet
    ppnets eval --model resnet18 --pretrained r18.pdparams --list val_list.txt --root /data/val
    ppnets eval --model mobilenetv2_100 --pretrained mnv2.safetensors --list val_list.txt \
        --runtime onnxruntime                      # dygraph and ONNX Runtime, one report
    ppnets eval --export exports/mnv2 --list val_list.txt --runtime openvino --precision bf16 \
        --no-dygraph

``--pretrained`` takes what ``ppnets.create_model(pretrained=...)`` reads (ppnets ``.pdparams``
or a reference ``.safetensors``/``.npz``/``.pth``, converted on the fly). Preprocessing is the
weights' evaluation transform (:mod:`ppnets.engine.evaluate`). Image files are checked
before the first batch: an unreadable one is an error listing them all unless
``--on-bad-image skip`` leaves them out (recorded in ``--json``'s ``bad_images``).

``--runtime R`` also runs the export (``--export DIR``, or ``--model``/``--pretrained``
exported on the fly into the cache at ``--batch-size``, ``ppnets.deploy.cache``) in runtime R at
``--precision``, on the same images with the same preprocessing (the export's batch is fixed:
the last batch is padded), and reports both top-1s, the share of images whose top-1 class is
the same, and both images/s. ``--no-dygraph`` skips the dygraph model (faster). INT8 uses the
export's INT8 artifacts, made when missing and calibrated on the first ``--calib-images``
images of the evaluation data; the report then also gives top-1 on the images after them.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ppnets.deploy.cache import Calibration, cached_export, ensure_int8
from ppnets.engine.data import ON_BAD_IMAGE
from ppnets.engine.evaluate import evaluate, evaluate_export, top1_from
from ppnets.engine.predict import default_runtime, read_export_json
from ppnets.utils import atomic_write_json

from .common import run_command
from .experiment import report_errors
from .predict import EXPORT_FAILURES, USAGE_ERRORS, add_runtime_options, pretrained_value

HELP = "top-1/top-5 of weights on a validation folder or list (dygraph and/or a runtime)"
DESCRIPTION = ("Top-1 / top-5 of weights on ImageNet-style validation images (a class-folder "
               "tree or a PaddleClas list), in the dygraph model and, with --runtime, in the "
               "runtime and precision that will serve them.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="registry name (ppnets models)")
    model.add_argument("--export", "--export-dir", dest="export", metavar="DIR",
                       help="an export folder (ppnets export) to evaluate with --runtime")
    p.add_argument("--pretrained", nargs="?", const="true", default=None, metavar="TAG|PATH",
                   help="with --model: the weights: the published ones (bare flag, 'true' or a "
                        "tag) or a file: .pdparams, or a reference .safetensors/.npz/.pth to "
                        "convert")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="folder holding val/<class>/ folders, or the class "
                                        "folders themselves")
    src.add_argument("--list", help="PaddleClas list file: 'relative/path label' per line")
    p.add_argument("--root", default=None,
                   help="folder the --list paths are relative to (default: the list's folder)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="also the batch an on-the-fly export is made for")
    p.add_argument("--num-workers", type=int, default=None,
                   help="DataLoader worker processes (default: min(8, usable cores))")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--input-size", type=int, default=None, help="override the model's size")
    p.add_argument("--crop-pct", type=float, default=None, help="override the model's crop_pct")
    p.add_argument("--interpolation", default=None,
                   help="override the model's resize filter (bilinear, bicubic, ...)")
    p.add_argument("--json", default=None, help="write the results here (atomically)")
    p.add_argument("--save-logits", default=None, metavar="NPZ",
                   help="save per-image logits, labels and paths (of the runtime with "
                        "--runtime)")
    p.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default="error",
                   help="unreadable image files: error (stop, listing them; default) or skip "
                        "(evaluate without them, recorded in the results)")
    add_runtime_options(p, "also evaluate the export in this runtime (default: the dygraph "
                           "model only; with --export, paddle_inference or what it has)")
    p.add_argument("--no-dygraph", action="store_true",
                   help="with --runtime: skip the dygraph evaluation (only the runtime's)")
    p.add_argument("--calib-images", type=int, default=100,
                   help="--precision int8: the first N images of the evaluation data "
                        "calibrate (when the export has no INT8 artifacts yet)")


def _check_options(args: argparse.Namespace) -> None:
    if args.model and args.pretrained is None:
        raise ValueError("--model needs --pretrained (the weights to evaluate)")
    if args.export and args.pretrained is not None:
        raise ValueError("--pretrained goes with --model; an export folder has its weights")
    if not args.runtime and (args.no_dygraph or args.precision != "fp32"):
        raise ValueError("--no-dygraph and --precision evaluate in a runtime: add "
                         "--runtime (paddle_inference, onnxruntime, openvino, paddle_lite)")
    if args.runtime and (args.crop_pct or args.interpolation):
        raise ValueError("--crop-pct/--interpolation change the dygraph preprocessing only; "
                         "with --runtime both use the weights' (export.json)")


def _dygraph(args: argparse.Namespace, model: str, pretrained, keep: bool) -> Dict[str, Any]:
    return evaluate(model, pretrained, data_dir=args.data_dir, list_file=args.list,
                    root=args.root, batch_size=args.batch_size, num_workers=args.num_workers,
                    device=args.device, limit=args.limit, num_classes=args.num_classes,
                    input_size=args.input_size, crop_pct=args.crop_pct,
                    interpolation=args.interpolation,
                    save_logits=None if keep else args.save_logits, progress=True,
                    on_bad_image=args.on_bad_image, keep_logits=keep)


def _export_weights(export_dir: str):
    """(model, pretrained) of an export folder's weights, for its dygraph evaluation; None
    when export.json does not say which they are."""
    meta = read_export_json(export_dir)
    weights = meta.get("weights") or {}
    if weights.get("kind") == "file" and os.path.isfile(weights.get("path", "")):
        return meta["model"], weights["path"]
    if weights.get("kind") == "published":
        return meta["model"], weights["weight"][len(meta["model"]) + 1:]
    return None


def _runtime_folder(args: argparse.Namespace) -> str:
    calibration = Calibration(count=args.calib_images, list_file=args.list,
                              data_dir=args.data_dir, root=args.root)
    if args.export:
        if args.precision == "int8":
            ensure_int8(args.export, calibration)
        return args.export
    return cached_export(args.model, pretrained_value(args.pretrained),
                         num_classes=args.num_classes, input_size=args.input_size,
                         batch_size=args.batch_size, runtime=args.runtime,
                         precision=args.precision, calibration=calibration, progress=True)


def _calibrated_first(export_dir: str, args: argparse.Namespace) -> Optional[int]:
    """How many images at the start of the evaluation data calibrated the export's INT8
    artifacts (None: they were calibrated on other images)."""
    try:
        with open(os.path.join(export_dir, "int8", "calibration.json"), encoding="utf-8") as f:
            source = json.load(f).get("source") or {}
    except (OSError, ValueError):
        return None
    ours = os.path.abspath(args.list) if args.list else None
    folder = os.path.abspath(args.data_dir) if args.data_dir else None
    same = (ours and source.get("list") == ours) or (
        folder and source.get("folder") in (folder, os.path.join(folder, "val")))
    return int(source.get("count", 0)) if same else None


def evaluate_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The dygraph evaluation of :func:`add_arguments`'s options, or with ``--runtime`` the
    combined report (:func:`evaluate_on_runtime`)."""
    if args.export and not args.runtime:
        args.runtime = default_runtime(args.export)
    _check_options(args)
    if not args.runtime:
        return _dygraph(args, args.model, pretrained_value(args.pretrained), keep=False)
    return evaluate_on_runtime(args)


def evaluate_on_runtime(args: argparse.Namespace) -> Dict[str, Any]:
    """``{"model", "runtime": evaluate_export's, "dygraph": evaluate's or None, "comparison"}``
    (logits dropped)."""
    folder = _runtime_folder(args)
    rt = evaluate_export(folder, args.runtime, args.precision, threads=args.threads,
                         data_dir=args.data_dir, list_file=args.list, root=args.root,
                         num_workers=args.num_workers, limit=args.limit,
                         on_bad_image=args.on_bad_image, save_logits=args.save_logits,
                         progress=True, keep_logits=True)
    source = None if args.no_dygraph else (
        (args.model, pretrained_value(args.pretrained)) if args.model else _export_weights(folder))
    dy = _dygraph(args, *source, keep=True) if source else None
    result = {"model": rt["model"], "runtime": rt, "dygraph": dy,
              "comparison": _compare(rt, dy, _calibrated_first(folder, args)
                                     if args.precision == "int8" else None)}
    if args.precision == "int8":   # which images calibrated, as quantize_export recorded them
        with open(os.path.join(folder, "int8", "calibration.json"), encoding="utf-8") as f:
            result["calibration"] = json.load(f)
        result["comparison"]["calibration_images_used"] = result["calibration"].get("count")
    return result


def _compare(rt: Dict[str, Any], dy: Optional[Dict[str, Any]],
             calibrated: Optional[int]) -> Dict[str, Any]:
    """Top-1 agreement and speed ratio of the runtime against dygraph; INT8: top-1 on the
    images after the calibration images. Pops the logits from both results."""
    logits, labels = rt.pop("logits"), rt.pop("labels")
    out: Dict[str, Any] = {"dygraph_skipped": dy is None}
    if dy is not None:
        dy_logits = dy.pop("logits")
        dy.pop("labels")
        out["same_top1_prediction"] = float(np.mean(logits.argmax(1) == dy_logits.argmax(1)))
        if rt["images_per_s"] and dy["images_per_s"]:
            out["speedup_images_per_s"] = rt["images_per_s"] / dy["images_per_s"]
    if calibrated:
        out["calibration_images"] = calibrated
        out["after_calibration"] = {"runtime": top1_from(logits, labels, calibrated)}
        if dy is not None:
            out["after_calibration"]["dygraph"] = top1_from(dy_logits, labels, calibrated)
    return out


def _speed(value: Optional[float]) -> str:
    return f"{value:.1f}" if value else "n/a"


def summary_line(result: Dict[str, Any], args: argparse.Namespace) -> str:
    if "runtime" in result and isinstance(result["runtime"], dict):
        return runtime_summary(result)
    return (f"{result['model']}: top-1 {100 * result['top1']:.2f}%  top-5 "
            f"{100 * result['top5']:.2f}%  on {result['num_images']} images  "
            f"({_speed(result['images_per_s'])} images/s, {args.device}, batch "
            f"{args.batch_size}, {result['num_workers']} workers)")


def runtime_summary(result: Dict[str, Any]) -> str:
    rt, dy, cmp = result["runtime"], result["dygraph"], result["comparison"]
    lines = []
    if dy is not None:
        lines.append(f"{result['model']} dygraph: top-1 {100 * dy['top1']:.2f}%  top-5 "
                     f"{100 * dy['top5']:.2f}%  on {dy['num_images']} images  "
                     f"({_speed(dy['images_per_s'])} images/s, batch {dy['batch_size']}, "
                     f"{dy['num_workers']} workers)")
    sess = rt["session"]
    lines.append(f"{result['model']} {rt['runtime']} {rt['precision']}: top-1 "
                 f"{100 * rt['top1']:.2f}%  top-5 {100 * rt['top5']:.2f}%  on "
                 f"{rt['num_images']} images  ({_speed(rt['images_per_s'])} images/s, "
                 f"{sess['version']}, {rt['threads']} threads, batch {rt['batch_size']}, "
                 f"{rt['num_workers']} workers; output check: {rt['check'].get('status')})")
    if dy is not None:
        speed = cmp.get("speedup_images_per_s")
        lines.append(f"same top-1 class as dygraph on {100 * cmp['same_top1_prediction']:.2f}% "
                     "of the images" + (f"; {speed:.1f}x the dygraph images/s" if speed else ""))
    after = cmp.get("after_calibration")
    if after and not after["runtime"]["num_images"]:
        lines.append(f"int8 calibrated on the first {cmp['calibration_images']} images: every "
                     "evaluated image was one of them (evaluate more images than calibrate)")
    elif after:
        parts = [f"{name} {100 * r['top1']:.2f}%" for name, r in after.items() if r["top1"]
                 is not None]
        used = cmp.get("calibration_images_used")
        note = f" ({used} used)" if used and used != cmp["calibration_images"] else ""
        lines.append(f"int8 calibrated on the first {cmp['calibration_images']} images{note}; "
                     f"top-1 on the other {after['runtime']['num_images']}: {', '.join(parts)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    return report_errors(lambda: _evaluate(args), USAGE_ERRORS, EXPORT_FAILURES)


def _evaluate(args: argparse.Namespace) -> int:
    result = evaluate_args(args)
    print(summary_line(result, args))
    if args.json:
        atomic_write_json(args.json, {**result, "command": args.command})
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets eval")
