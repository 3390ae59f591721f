"""``ppnets export``: reparameterize, export and verify a model for every runtime.

    ppnets export --model fasternet_t0 --pretrained --formats paddle onnx lite --output-dir t0
    ppnets export --model mobilenetv2_100 --pretrained runs/ft/best.pdparams --num-classes 2
    ppnets export --model fasternet_t0 --pretrained --features-only --out-indices 1 2 3

``--pretrained``: the published weights (a bare flag or ``true``: the default tag; or a tag), or
a checkpoint file of any format ``create_model(pretrained=...)`` reads (a fine-tuned
``.pdparams`` with its ``--num-classes``). Without it the weights are random: a WARNING line
says so, and so does the report (``weights`` in ``export.json``).

``--features-only`` exports the backbone without its classifier
(``create_model(name, features_only=True, out_indices=...)``, docs/features.md): every artifact
is a multi-output program, one output per feature map (``--out-indices``: positions in the
model's ``feature_info``, negative from the end; default: the model's default maps), and every
output is verified.

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

from ppnets.convert import CorruptCheckpointError, UnsafePickleError
from ppnets.deploy import FORMATS, export
from ppnets.factory import create_model
from ppnets.registry import model_info
from ppnets.weights.fetch import WeightsIntegrityError, WeightsUnavailableError
from ppnets.weights.sources import WeightNotFoundError

from .common import run_command

HELP = "export the deploy form to Paddle Inference / ONNX / Paddle Lite, verified"
DESCRIPTION = ("Export a ppnets model (deploy form) to Paddle Inference, legacy .pdmodel, ONNX "
               "and Paddle Lite .nb, verifying each against the eager model.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name, e.g. fasternet_t0")
    p.add_argument("--pretrained", nargs="?", const="true", default=None, metavar="TAG|PATH",
                   help="weights: the published ones (bare flag or 'true': the default tag; "
                        "or a tag, `ppnets weights list MODEL`) or a checkpoint file (.pdparams, "
                        ".safetensors, .npz, .pth); without it the weights are random")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the --pretrained checkpoint (default: the model's data "
                        "set's, 1000 for ImageNet models)")
    p.add_argument("--deploy", action="store_true",
                   help="the --pretrained checkpoint is a reparameterized (deploy-form) one")
    p.add_argument("--features-only", action="store_true",
                   help="export the backbone without its classifier: one output per feature "
                        "map (docs/features.md); --pretrained loads everything but the "
                        "classifier")
    p.add_argument("--out-indices", type=int, nargs="+", default=None, metavar="I",
                   help="with --features-only: the maps to return, positions in the model's "
                        "feature_info (negative from the end; default: the model's default)")
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


def _pretrained(value: Optional[str]):
    return True if value is not None and value.strip().lower() == "true" else value


def _check_feature_options(args: argparse.Namespace) -> None:
    if args.out_indices is not None and not args.features_only:
        raise ValueError("--out-indices selects the maps of a features-only backbone: add "
                         "--features-only")
    if args.features_only and args.num_classes is not None:
        raise ValueError("--features-only exports the backbone without a classifier: drop "
                         "--num-classes (the checkpoint's classifier, if any, is left out)")


def build(args: argparse.Namespace, name: str):
    """(model, weights record for the report) of the options; raises on weights that cannot be
    loaded, and ValueError when the classifier of the weights is not the model's (another
    class count) or the feature options do not fit together."""
    _check_feature_options(args)
    pretrained = _pretrained(args.pretrained)
    if args.features_only:
        model = create_model(name, pretrained=pretrained, deploy=args.deploy,
                             features_only=True, out_indices=args.out_indices)
        loaded = model.model.loaded_weights  # the backbone's classifier is never exported
    else:
        model = create_model(name, num_classes=args.num_classes, pretrained=pretrained,
                             deploy=args.deploy)
        loaded = model.loaded_weights
    if loaded is None:
        return model, {"kind": "random", "warning": "random initialisation, no --pretrained: "
                                                    "the artifacts compute nothing useful"}
    if loaded.classifier_kept and not args.features_only:
        theirs = ("has no classifier: pass --num-classes 0 (a backbone without one)"
                  if loaded.source_classes == 0 else
                  f"has a classifier for {loaded.source_classes or 'another number of'} "
                  f"classes and this model was built for {model.num_classes}: pass "
                  f"--num-classes {loaded.source_classes or 'N'}")
        raise ValueError(f"{loaded.source} {theirs} (an export with a random classifier is of "
                         "no use)")
    return model, loaded.record()


def run(args: argparse.Namespace) -> int:
    try:
        name = model_info(args.model).get("name", args.model)
        if args.pretrained is None:
            print(f"WARNING: exporting {name} with random weights (no --pretrained): the "
                  "artifacts compute nothing useful; pass --pretrained for the published "
                  "weights or --pretrained PATH for yours", file=sys.stderr)
        model, weights = build(args, name)
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except (WeightNotFoundError, WeightsUnavailableError, WeightsIntegrityError,
            CorruptCheckpointError, UnsafePickleError, FileNotFoundError, ValueError,
            RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = export(model, formats=tuple(args.formats), out_dir=args.output_dir,
                    input_size=args.input_size, batch_size=args.batch_size,
                    lite_targets=tuple(args.lite_targets), opset=args.opset, atol=args.atol,
                    lite_python=args.lite_python, progress=True, weights=weights)
    if report.get("features_only"):
        print(f"features-only backbone: out_indices {report['out_indices']}, outputs "
              f"{report['outputs']}")
    print("| artifact | status | max abs diff | file |\n|---|---|---:|---|")
    for key, art in report["artifacts"].items():
        diff = art.get("max_abs_diff")
        print(f"| {key} | {art.get('status')} | {'n/a' if diff is None else f'{diff:.2e}'} | "
              f"{art.get('file', art.get('reason') or art.get('error', ''))} |")
    print(f"\nweights: {_describe(weights)}")
    return 0 if report["all_passed"] else 1


def _describe(weights) -> str:
    if weights["kind"] == "random":
        return "RANDOM (no --pretrained)"
    if weights["kind"] == "published":
        return f"published {weights['weight']}"
    return f"{weights['path']} (sha256 {weights['sha256'][:12]})"


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets export")
