"""``ppnets convert``: a reference checkpoint (timm / torchvision / official) to .pdparams.

    ppnets convert --model fasternet_t0 --src fasternet_t0.safetensors --out t0.pdparams
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ppnets.convert import load_pretrained, save_state_dict
from ppnets.factory import create_model

from .common import run_command

HELP = "convert a reference checkpoint (timm/torchvision/official) to .pdparams"
DESCRIPTION = "Convert a reference checkpoint (timm/torchvision/official) to .pdparams."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="ppnets registry name, e.g. fasternet_t0")
    parser.add_argument("--src", required=True, help=".safetensors, .npz, .pth or .pdparams")
    parser.add_argument("--out", required=True, help="output .pdparams path")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="default: the model's data set's (1000 for ImageNet models)")
    parser.add_argument("--layout", default=None, help="force a key layout (default: detect)")
    parser.add_argument("--deploy", action="store_true",
                        help="the checkpoint holds a reparameterized (deploy) model")
    parser.add_argument("--non-strict", action="store_true",
                        help="load what matches instead of failing on any mismatch")


def run(args: argparse.Namespace) -> int:
    try:
        model = create_model(args.model, num_classes=args.num_classes, deploy=args.deploy)
        report = load_pretrained(model, args.src, name=args.model, layout=args.layout,
                                 strict=not args.non_strict)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}",
              file=sys.stderr)
        return 2
    print(report)
    save_state_dict(model.state_dict(), args.out)
    print(f"wrote {args.out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets convert")
