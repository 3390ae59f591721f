"""RepVGG branch ablation on CIFAR-10: with and without the identity and 1x1 branches.

RepVGG (Ding et al., CVPR 2021, arXiv:2101.03697) ablates the training-time branches on ImageNet
(paper Sec. 4.2, Table 6: an "Identity branch" and a "1x1 branch" column, each present or not,
120 epochs). ``ppnets.models.repvgg.RepVGG`` drops them with ``use_identity`` / ``use_1x1``
(every setting still reparameterizes into the same plain 3x3-conv model), so all four rows of
the table run here, on RepVGG-A0 (configs/repvgg/cifar10.yaml):

* ``3x3+1x1+identity`` -- both branches: the training form of ``repvgg_a0``;
* ``3x3+identity`` -- identity branch, no 1x1 branch;
* ``3x3+1x1`` -- 1x1 branch, no identity branch;
* ``3x3 only`` -- neither: every layer a single 3x3 conv-BN (+ ReLU);
* ``3x3 only (no BN)`` -- not in the paper's table: ``deploy=True`` trains the fused form
  (one 3x3 conv with bias, no BN) directly, i.e. a plain VGG without normalisation, which shows
  what BN alone contributes next to ``3x3 only``.

Recipe: configs/repvgg/cifar10.yaml (SGD, CIFAR resized to 64x64: no stem-stride keyword).

    python reproduce/repvgg_ablation_cifar10.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/repvgg_ablation_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing
from ppnets.cli.experiment import (add_variant_options, build_parser,  # noqa: E402
                                   run_variant_table)
from ppnets.experiments import Variant, cifar_data  # noqa: E402

SCRIPT = "reproduce/repvgg_ablation_cifar10.py"
SCHEMA = "ppnets.reproduce.repvgg_ablation_cifar10/1"
CONFIG = os.path.join(REPO, "configs", "repvgg", "cifar10.yaml")


def _branches(identity: bool, one_by_one: bool):
    """Overrides and the paper's two checkmark columns for one row."""
    overrides = []
    if not identity:
        overrides.append("model.kwargs.use_identity=false")
    if not one_by_one:
        overrides.append("model.kwargs.use_1x1=false")
    return overrides, dict(identity_branch=identity, branch_1x1=one_by_one)


def variants():
    rows = []
    for label, identity, one_by_one, text in [
            ("3x3+1x1+identity", True, True, "3x3 conv-BN + 1x1 conv-BN + identity BN"),
            ("3x3+identity", True, False, "3x3 conv-BN + identity BN"),
            ("3x3+1x1", False, True, "3x3 conv-BN + 1x1 conv-BN"),
            ("3x3 only", False, False, "3x3 conv-BN")]:
        overrides, fields = _branches(identity, one_by_one)
        rows.append(Variant(label, CONFIG, overrides, branches=text, **fields))
    rows.append(Variant("3x3 only (no BN)", CONFIG, ["model.kwargs.deploy=true"],
                        branches="single 3x3 conv + bias (deploy form trained directly)",
                        identity_branch=False, branch_1x1=False))
    return rows


NOTES = [
    "Rows 1-4 are the paper's Table 6 (identity branch yes/no x 1x1 branch yes/no) through "
    "RepVGG(use_identity=..., use_1x1=...); the identity branch exists only where a layer keeps "
    "its shape (not in the stride-2 first layer of a stage), as in the paper.",
    "'3x3 only (no BN)' is an extra row (deploy=True trained directly: no BN anywhere).",
    "The paper's ablation is an ImageNet experiment (120 epochs); CIFAR-10 numbers here are not "
    "comparable with it.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/repvgg_ablation_cifar10")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="RepVGG branch ablation on CIFAR-10", variants=variants(),
                             data=cifar_data,
                             extra_columns=[("identity_branch", "identity branch", 0),
                                            ("branch_1x1", "1x1 branch", 0),
                                            ("branches", "branches", 0)],
                             notes=NOTES,
                             plot=dict(name="branches", xlabel="training-time branches",
                                       title="RepVGG-A0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
