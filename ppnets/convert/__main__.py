"""python -m ppnets.convert --model NAME --src FILE --out FILE.pdparams"""
from __future__ import annotations

import argparse
import sys

import ppnets
from ppnets.convert import load_pretrained, save_state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ppnets.convert",
        description="Convert a reference checkpoint (timm/torchvision/official) to .pdparams.")
    parser.add_argument("--model", required=True, help="ppnets registry name, e.g. fasternet_t0")
    parser.add_argument("--src", required=True, help=".safetensors, .npz, .pth or .pdparams")
    parser.add_argument("--out", required=True, help="output .pdparams path")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--layout", default=None, help="force a key layout (default: detect)")
    parser.add_argument("--deploy", action="store_true",
                        help="the checkpoint holds a reparameterized (deploy) model")
    parser.add_argument("--non-strict", action="store_true",
                        help="load what matches instead of failing on any mismatch")
    args = parser.parse_args(argv)


    model = ppnets.create_model(args.model, num_classes=args.num_classes, deploy=args.deploy)
    try:
        report = load_pretrained(model, args.src, name=args.model, layout=args.layout,
                                 strict=not args.non_strict)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report)
    save_state_dict(model.state_dict(), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
