"""``ppnets export``: reparameterize, export and verify a model for every runtime.

    ppnets export --model fasternet_t0 --formats paddle onnx lite --output-dir exports/t0

Paddle Inference (PIR and the legacy ``.pdmodel``), ONNX (run in ONNX Runtime) and Paddle Lite
``.nb`` (op check; the x86 ``.nb`` run by the Lite runtime), each verified against the eager
model (:func:`ppnets.deploy.export`, docs/deploy.md). Exit status 0 when every artifact that
could be run here matched within ``--atol``, 1 when one did not, 2 on a usage error. Paddle Lite
needs ``PPNETS_PADDLELITE_PYTHON`` (scripts/prepare_paddlelite_env.sh) unless paddlelite is
importable here.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ppnets.deploy import FORMATS, export
from ppnets.registry import model_info

from .common import run_command

HELP = "export the deploy form to Paddle Inference / ONNX / Paddle Lite, verified"
DESCRIPTION = ("Export a ppnets model (deploy form) to Paddle Inference, legacy .pdmodel, ONNX "
               "and Paddle Lite .nb, verifying each against the eager model.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name, e.g. fasternet_t0")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    p.add_argument("--output-dir", "--out-dir", dest="output_dir", default=None,
                   help="where the artifacts go (default: exports/<model>)")
    p.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"), default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lite-targets", nargs="+", default=["arm", "x86"], choices=["arm", "x86"])
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--lite-python", default=None,
                   help="Python with paddlelite (default: $PPNETS_PADDLELITE_PYTHON)")


def run(args: argparse.Namespace) -> int:
    try:
        name = model_info(args.model).get("name", args.model)
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    report = export(name, formats=tuple(args.formats), out_dir=args.output_dir,
                    input_size=args.input_size, batch_size=args.batch_size,
                    lite_targets=tuple(args.lite_targets), opset=args.opset, atol=args.atol,
                    lite_python=args.lite_python, progress=True)
    print("| artifact | status | max abs diff | file |\n|---|---|---:|---|")
    for key, art in report["artifacts"].items():
        diff = art.get("max_abs_diff")
        print(f"| {key} | {art.get('status')} | {'n/a' if diff is None else f'{diff:.2e}'} | "
              f"{art.get('file', art.get('reason') or art.get('error', ''))} |")
    return 0 if report["all_passed"] else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets export")
