"""RepVGG branch ablation on CIFAR-10: with vs without the 1x1 and identity branches.

RepVGG (Ding et al., CVPR 2021, arXiv:2101.03697) ablates the training-time branches of
RepVGG-A0 on ImageNet (paper sec. 4.2, ablation table: identity + 1x1 branches, either one,
neither). ``ppnets.models.repvgg.RepVGG`` has no keyword that drops one branch, so two of the
rows can be run:

* ``3x3 + 1x1 + identity`` -- the training form (``repvgg_a0``);
* ``3x3 only, no BN`` -- ``deploy=True`` builds the fused single 3x3 conv (with bias) and
  trains it as a plain VGG; unlike the paper's "neither branch" row it has no BN.

Recipe: configs/repvgg/cifar10.yaml (SGD, CIFAR resized to 64x64: no stem-stride keyword).

    python reproduce/repvgg_ablation_cifar10.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/repvgg_ablation_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (REPO, Variant, add_variant_options, build_parser,  # noqa: E402
                     cifar_data, run_variants)

SCRIPT = "reproduce/repvgg_ablation_cifar10.py"
SCHEMA = "ppnets.reproduce.repvgg_ablation_cifar10/1"
CONFIG = os.path.join(REPO, "configs", "repvgg", "cifar10.yaml")


def variants():
    return [
        Variant("3x3+1x1+identity", CONFIG, [], branches="3x3 + 1x1 + identity (BN each)"),
        Variant("3x3 only (no BN)", CONFIG, ["model.kwargs.deploy=true"],
                branches="single 3x3 conv + bias (deploy form trained directly)"),
    ]


NOTES = [
    "Rows '3x3+1x1' (no identity) and '3x3+identity' (no 1x1) and a '3x3+BN only' row are NOT "
    "run: RepVGG's constructor has no keyword to drop one branch (needed: e.g. "
    "use_identity/use_1x1 flags on the block, as MobileOne's use_skip_branch/use_scale_branch).",
    "The paper's ablation is on ImageNet (RepVGG-A0, 120 epochs); CIFAR-10 numbers here are not "
    "comparable with it.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/repvgg_ablation_cifar10")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variants(script=SCRIPT, schema=SCHEMA,
                        title="RepVGG branch ablation on CIFAR-10", args=args, argv=argv,
                        variants=variants(), data=cifar_data(args),
                        extra_columns=[("branches", "branches", 0)], notes=NOTES,
                        plot=dict(name="branches", xlabel="training-time branches",
                                  title="RepVGG-A0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
