"""python -m ppnets.export --model fasternet_t0 --formats paddle onnx lite [--out-dir DIR]

Reparameterize, export and verify (see ppnets.deploy.export and docs/deploy.md). Exit status 0
when every artifact that could be run here matched the eager model within ``--atol``, 1 when
one did not, 2 on a usage error. Paddle Lite needs ``PPNETS_PADDLELITE_PYTHON`` (see
scripts/prepare_paddlelite_env.sh) unless paddlelite is importable here.
"""
from __future__ import annotations

import argparse
import sys

import ppnets
from ppnets.deploy import export


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ppnets.export",
                                description="Export a ppnets model (deploy form) to Paddle "
                                            "Inference, legacy .pdmodel, ONNX and Paddle Lite "
                                            ".nb, verifying each against the eager model.")
    p.add_argument("--model", required=True, help="registry name, e.g. fasternet_t0")
    p.add_argument("--formats", nargs="+", default=["paddle", "onnx", "lite"],
                   choices=["paddle", "onnx", "lite"])
    p.add_argument("--out-dir", default=None, help="default: exports/<model>")
    p.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"), default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lite-targets", nargs="+", default=["arm", "x86"], choices=["arm", "x86"])
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--lite-python", default=None,
                   help="Python with paddlelite (default: $PPNETS_PADDLELITE_PYTHON)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    try:
        name = ppnets.model_info(args.model).get("name", args.model)
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    report = export(name, formats=tuple(args.formats), out_dir=args.out_dir,
                    input_size=args.input_size, batch_size=args.batch_size,
                    lite_targets=tuple(args.lite_targets), opset=args.opset, atol=args.atol,
                    lite_python=args.lite_python)
    print(f"| artifact | status | max abs diff | file |\n|---|---|---:|---|")
    for key, art in report["artifacts"].items():
        diff = art.get("max_abs_diff")
        print(f"| {key} | {art.get('status')} | {'n/a' if diff is None else f'{diff:.2e}'} | "
              f"{art.get('file', art.get('reason') or art.get('error', ''))} |")
    return 0 if report["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
