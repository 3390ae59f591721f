"""FasterNet ablations on CIFAR-10: partial ratio r, normalisation and activation.

FasterNet (Chen et al., CVPR 2023, arXiv:2303.03667) ablates on ImageNet with FasterNet-T0
(paper sec. 4, ablation table): the partial ratio r = c_p / c of PConv (1, 1/2, 1/4, 1/8, 1/16),
BN vs LN and ReLU vs GELU. This script reruns them on CIFAR-10 with configs/fasternet/cifar10.yaml
(FasterNet-T0, patch_size=2 for 32x32 inputs, our AdamW recipe): r through the constructor's
``n_div`` (r = 1/n_div), the activation through ``act`` and BN vs LN through ``norm_layer``
(``'ln'``: every BatchNorm -- patch embedding, merging, MLP -- becomes a LayerNorm over the
channels of each pixel).

    python reproduce/fasternet_cifar10_ablation.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/fasternet_cifar10_ablation.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
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

SCRIPT = "reproduce/fasternet_cifar10_ablation.py"
SCHEMA = "ppnets.reproduce.fasternet_cifar10_ablation/1"
CONFIG = os.path.join(REPO, "configs", "fasternet", "cifar10.yaml")


def variants():
    rows = []
    for n_div in (1, 2, 4, 8, 16):
        rows.append(Variant(f"r=1/{n_div}" if n_div > 1 else "r=1", CONFIG,
                            [f"model.kwargs.n_div={n_div}", "model.kwargs.act=gelu"],
                            ablation="partial ratio", partial_ratio=1.0 / n_div, act="gelu",
                            norm="BN"))
    rows.append(Variant("LN (r=1/4)", CONFIG,
                        ["model.kwargs.n_div=4", "model.kwargs.act=gelu",
                         "model.kwargs.norm_layer=ln"],
                        ablation="normalization", partial_ratio=0.25, act="gelu", norm="LN"))
    rows.append(Variant("ReLU (r=1/4)", CONFIG, ["model.kwargs.n_div=4", "model.kwargs.act=relu"],
                        ablation="activation", partial_ratio=0.25, act="relu", norm="BN"))
    return rows


NOTES = [
    "r=1/4 with GELU and BN is FasterNet-T0's own setting (the GELU row of the activation "
    "ablation and the BN row of the normalisation ablation).",
    "LN (r=1/4): norm_layer=ln replaces every BatchNorm (patch embedding, patch merging, MLP) "
    "by a LayerNorm over channels (eps 1e-5); LN cannot be folded into the conv, so this model "
    "keeps its norms after reparameterize().",
    "r = 1/n_div; the constructor rounds the PConv channels down (dim // n_div), e.g. 40 // 16 = "
    "2 channels at stage 1 of T0.",
    "Published ImageNet ablation values: see the paper's ablation table (FasterNet-T0); they are "
    "ImageNet numbers and not comparable with CIFAR-10 accuracies.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/fasternet_cifar10_ablation")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="FasterNet ablations on CIFAR-10", variants=variants(),
                             data=cifar_data,
                             extra_columns=[("partial_ratio", "r", 4), ("norm", "norm", 0),
                                            ("act", "act", 0)],
                             notes=NOTES,
                             plot=dict(name="partial_ratio", x="partial_ratio", logx=True,
                                       xlabel="partial ratio r", title="FasterNet-T0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
