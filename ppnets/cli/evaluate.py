"""``ppnets eval``: top-1 / top-5 of weights on ImageNet-style validation images.

    ppnets eval --model resnet18 --pretrained resnet18.safetensors --data-dir /data/imagenet
    ppnets eval --model resnet18 --pretrained r18.pdparams --list val_list.txt --root /data/val

``--pretrained`` takes what ``ppnets.create_model(pretrained=...)`` reads (ppnets ``.pdparams``
or a reference ``.safetensors``/``.npz``/``.pth``, converted on the fly). Preprocessing is the
model's timm evaluation transform (:mod:`ppnets.engine.evaluate`). Image files are checked
before the first batch: an unreadable one is an error listing them all unless
``--on-bad-image skip`` leaves them out (recorded in ``--json``'s ``bad_images``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Optional, Sequence

from ppnets.engine.data import ON_BAD_IMAGE, DataUnavailableError
from ppnets.engine.evaluate import evaluate
from ppnets.utils import atomic_write_json

from .common import run_command

HELP = "top-1/top-5 of weights on a validation folder or list"
DESCRIPTION = ("Top-1 / top-5 of weights on ImageNet-style validation images (a class-folder "
               "tree or a PaddleClas list).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name (ppnets models)")
    p.add_argument("--pretrained", required=True,
                   help="weights: .pdparams, or a reference .safetensors/.npz/.pth to convert")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="folder holding val/<class>/ folders, or the class "
                                        "folders themselves")
    src.add_argument("--list", help="PaddleClas list file: 'relative/path label' per line")
    p.add_argument("--root", default=None,
                   help="folder the --list paths are relative to (default: the list's folder)")
    p.add_argument("--batch-size", type=int, default=64)
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
                   help="save per-image logits, labels and paths")
    p.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default="error",
                   help="unreadable image files: error (stop, listing them; default) or skip "
                        "(evaluate without them, recorded in the results)")


def evaluate_args(args: argparse.Namespace) -> Dict[str, Any]:
    """Run :func:`ppnets.engine.evaluate.evaluate` with the options of :func:`add_arguments`."""
    return evaluate(args.model, args.pretrained, data_dir=args.data_dir, list_file=args.list,
                    root=args.root, batch_size=args.batch_size, num_workers=args.num_workers,
                    device=args.device, limit=args.limit, num_classes=args.num_classes,
                    input_size=args.input_size, crop_pct=args.crop_pct,
                    interpolation=args.interpolation, save_logits=args.save_logits,
                    progress=True, on_bad_image=args.on_bad_image)


def summary_line(result: Dict[str, Any], args: argparse.Namespace) -> str:
    speed = f"{result['images_per_s']:.1f}" if result["images_per_s"] else "n/a"
    return (f"{result['model']}: top-1 {100 * result['top1']:.2f}%  top-5 "
            f"{100 * result['top5']:.2f}%  on {result['num_images']} images  ({speed} images/s, "
            f"{args.device}, batch {args.batch_size}, {result['num_workers']} workers)")


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate_args(args)
    except (KeyError, ValueError, DataUnavailableError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}",
              file=sys.stderr)
        return 2
    print(summary_line(result, args))
    if args.json:
        atomic_write_json(args.json, {**result, "command": args.command})
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets eval")
