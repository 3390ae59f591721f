"""MobileOne ablations on CIFAR-10: over-parameterisation factor k and the scale branch.

MobileOne (Vasu et al., CVPR 2023, arXiv:2206.04040) ablates on ImageNet (paper sec. 4,
ablation tables): the number of over-parameterised conv branches k in {1, 2, 3, 4} and the
effect of the re-parameterisable branches (with vs without the 1x1 "scale" branch and the BN
skip). Here on CIFAR-10 with configs/mobileone/cifar10.yaml (MobileOne-S0 widths, SGD with the
paper's weight-decay annealing 1e-4 -> 1e-5, CIFAR resized to 64x64: no stem-stride keyword),
through the constructor's ``num_conv_branches`` and ``use_scale_branch`` keywords.

    python reproduce/mobileone_ablation_cifar10.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/mobileone_ablation_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
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

SCRIPT = "reproduce/mobileone_ablation_cifar10.py"
SCHEMA = "ppnets.reproduce.mobileone_ablation_cifar10/1"
CONFIG = os.path.join(REPO, "configs", "mobileone", "cifar10.yaml")


def variants():
    rows = [Variant(f"k={k}", CONFIG, [f"model.kwargs.num_conv_branches={k}",
                                       "model.kwargs.use_scale_branch=true"],
                    k=k, scale_branch=True) for k in (1, 2, 3, 4)]
    rows.append(Variant("k=4, no scale branch", CONFIG,
                        ["model.kwargs.num_conv_branches=4", "model.kwargs.use_scale_branch=false"],
                        k=4, scale_branch=False))
    rows.append(Variant("k=1, no scale/skip", CONFIG,
                        ["model.kwargs.num_conv_branches=1", "model.kwargs.use_scale_branch=false",
                         "model.kwargs.use_skip_branch=false"], k=1, scale_branch=False))
    return rows


NOTES = [
    "Every row is MobileOne-S0's layout (registry mobileone_s0) with the keywords shown; "
    "'k=1, no scale/skip' is the plain Conv-BN network after re-parameterisation, trained "
    "without any branch.",
    "The paper's ablations are ImageNet numbers; CIFAR-10 accuracies here are not comparable.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/mobileone_ablation_cifar10")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="MobileOne ablations on CIFAR-10", variants=variants(),
                             data=cifar_data,
                             extra_columns=[("k", "k", 0), ("scale_branch", "scale branch", 0)],
                             notes=NOTES,
                             plot=dict(name="branches", xlabel="variant",
                                       title="MobileOne-S0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
