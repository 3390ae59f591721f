"""EfficientFormerV2 design ablation on CIFAR-10: the V1 baseline and V2's Table 1 components.

EfficientFormerV2 (Li et al., ICCV 2023, arXiv:2212.08059, Table 1 and Sec. 3) builds V2 from
an EfficientFormer-L1 baseline in steps: a unified FFN (the pool mixer replaced by a depthwise
conv inside the FFN), MHSA improvements (locality in V, talking heads), attention at higher
resolution made affordable by stride attention, and attention downsampling. Each row here
trains one setting with the same recipe (configs/efficientformerv2/cifar10.yaml: AdamW, CIFAR
resized to 64, ``img_size=64``):

* ``V1-L1 (pool mixer)`` -- the table's baseline: EfficientFormer-L1 (pool-mixer Meta4D blocks,
  one Meta3D attention block) built for 64x64 inputs with ``img_size=64``;
* ``V2-S0`` -- the full design (registry efficientformerv2_s0: 2 attention blocks in stages 3/4);
* ``V2-S0 w/o talking heads`` -- ``talking_heads=False``: plain softmax MHSA (the talking-head
  half of the MHSA-improvement step removed);
* ``V2-S0 w/o stride attention`` -- ``attn_stride=False``: stage-3 attention at the stage's full
  resolution (the "attention at higher resolution" step without "stride attention");
* ``V2-S0 w/o attention downsampling`` -- ``attn_downsample=False``: the last downsampling is
  the plain 3x3 stride-2 conv-BN;
* ``no MHSA (num_vit=0)`` -- the unified DWConv-FFN everywhere, no attention blocks (the
  locality steps before attention is added);
* ``MHSA x4 (num_vit=4)`` -- more global blocks in stages 3 and 4.

The V2 rows remove one component from the final network rather than adding them in the
paper's order: the paper's intermediate networks are not S0, so no keyword reproduces them.

    python reproduce/efficientformerv2_ablation_cifar10.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/efficientformerv2_ablation_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
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

SCRIPT = "reproduce/efficientformerv2_ablation_cifar10.py"
SCHEMA = "ppnets.reproduce.efficientformerv2_ablation_cifar10/1"
CONFIG = os.path.join(REPO, "configs", "efficientformerv2", "cifar10.yaml")


def variants():
    return [
        Variant("V1-L1 (pool mixer)", CONFIG,
                ["model.name=efficientformer_l1", "model.kwargs={img_size: 64}"],
                paper_step="baseline: EfficientFormer-L1 (pool mixer)", num_vit=1),
        Variant("V2-S0", CONFIG, [], paper_step="all steps (EfficientFormerV2-S0)", num_vit=2),
        Variant("V2-S0 w/o talking heads", CONFIG, ["model.kwargs.talking_heads=false"],
                paper_step="MHSA improvements: talking heads removed", num_vit=2),
        Variant("V2-S0 w/o stride attention", CONFIG, ["model.kwargs.attn_stride=false"],
                paper_step="attention at higher resolution, without stride attention",
                num_vit=2),
        Variant("V2-S0 w/o attention downsampling", CONFIG,
                ["model.kwargs.attn_downsample=false"],
                paper_step="attention downsampling replaced by strided conv-BN", num_vit=2),
        Variant("no MHSA (num_vit=0)", CONFIG, ["model.kwargs.num_vit=0"],
                paper_step="unified FFN only (no attention blocks)", num_vit=0),
        Variant("MHSA x4 (num_vit=4)", CONFIG, ["model.kwargs.num_vit=4"],
                paper_step="more attention blocks", num_vit=4),
    ]


NOTES = [
    "V1-L1 (pool mixer) is EfficientFormer-L1 at img_size=64 (its attention bias table sized "
    "for the 2x2 last-stage grid), trained with the V2 recipe; its num_vit counts Meta3D blocks "
    "in the last stage only, V2's counts attention blocks in each of stages 3 and 4.",
    "A global -o model.kwargs.img_size=... override applies to every row, the V1 row included "
    "(both constructors take img_size).",
    "The V2 rows each remove one Table 1 component from EfficientFormerV2-S0; the paper adds "
    "them one at a time to intermediate networks that are not S0, so the rows are comparable "
    "with each other, not with the paper's intermediate rows.",
    "The paper's Table 1 values are ImageNet numbers; CIFAR-10 accuracies here are not "
    "comparable.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/efficientformerv2_ablation_cifar10")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="EfficientFormerV2 design ablation on CIFAR-10",
                             variants=variants(), data=cifar_data,
                             extra_columns=[("paper_step", "Table 1 step", 0),
                                            ("num_vit", "attention blocks", 0)],
                             notes=NOTES,
                             plot=dict(name="ablation", xlabel="design step",
                                       title="EfficientFormer-L1 / V2-S0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
