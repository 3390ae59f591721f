"""EfficientFormerV2 design ablation on CIFAR-10, as far as the constructor allows.

EfficientFormerV2 (Li et al., ICCV 2023, arXiv:2212.08059, Table 1) builds V2 from
EfficientFormer-L1 in steps: pool mixer -> DWConv in a unified FFN, FFN locality, MHSA with
talking heads, attention in stage 3 with stride attention, attention downsampling. The V2
constructor exposes ``num_vit`` (attention blocks at the end of stages 3 and 4), ``mlp_ratios``
and ``act``, so the runnable rows are (configs/efficientformerv2/cifar10.yaml: AdamW, CIFAR
resized to 64, ``img_size=64``):

* ``V2-S0`` -- the full design (registry efficientformerv2_s0: 2 attention blocks in stages 3/4);
* ``no MHSA (num_vit=0)`` -- the unified DWConv-FFN everywhere, no attention blocks
  (approximates the table's "pool mixer -> DWConv" locality rows before attention is added);
* ``MHSA x4 (num_vit=4)`` -- more global blocks (the direction of the table's stage-3
  attention row).

Rows NOT runnable without new keywords (listed in the results): the V1 pool-mixer baseline at
64x64 (EfficientFormer V1's constructor is fixed to 224x224), talking heads on/off, stride
attention on/off, attention downsampling on/off.

    python reproduce/efficientformerv2_ablation_cifar10.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/efficientformerv2_ablation_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (REPO, Variant, add_variant_options, build_parser,  # noqa: E402
                     cifar_data, run_variants)

SCRIPT = "reproduce/efficientformerv2_ablation_cifar10.py"
SCHEMA = "ppnets.reproduce.efficientformerv2_ablation_cifar10/1"
CONFIG = os.path.join(REPO, "configs", "efficientformerv2", "cifar10.yaml")


def variants():
    return [
        Variant("V2-S0", CONFIG, [], num_vit=2),
        Variant("no MHSA (num_vit=0)", CONFIG, ["model.kwargs.num_vit=0"], num_vit=0),
        Variant("MHSA x4 (num_vit=4)", CONFIG, ["model.kwargs.num_vit=4"], num_vit=4),
    ]


NOTES = [
    "Not run (no constructor keyword): EfficientFormer-L1 pool-mixer baseline at CIFAR sizes "
    "(V1 needs img_size), MHSA without talking heads, attention without stride (stage-3 "
    "attention at full resolution), strided-conv instead of attention downsampling. Needed: "
    "`talking_heads`, `attn_stride`, `attn_downsample` flags on EfficientFormerV2 and "
    "`img_size` on EfficientFormer.",
    "The paper's Table 1 values are ImageNet numbers; CIFAR-10 accuracies here are not "
    "comparable.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/efficientformerv2_ablation_cifar10")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variants(script=SCRIPT, schema=SCHEMA,
                        title="EfficientFormerV2 design ablation on CIFAR-10", args=args,
                        argv=argv, variants=variants(), data=cifar_data(args),
                        extra_columns=[("num_vit", "attention blocks", 0)], notes=NOTES,
                        plot=dict(name="ablation", x="num_vit", xlabel="num_vit",
                                  title="EfficientFormerV2-S0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
