"""RepViT's "modernisation" of MobileNetV3 on CIFAR-10, one config per step.

RepViT (Wang et al., CVPR 2024, arXiv:2307.09283, sec. 3 and its roadmap figure) turns
MobileNetV3-L into RepViT step by step: block design (separate token and channel mixers,
re-parameterised DW conv), expansion ratio 4 -> 2 with wider channels, macro design (early
convolution stem, deeper downsampling, simple classifier, stage ratio), micro design (3x3
kernels everywhere, SE in alternate blocks). The steps the constructors can express are run
here with one recipe (configs/repvit/cifar10.yaml: AdamW, CIFAR resized to 64x64):

1. ``MobileNetV3-L`` -- mobilenetv3_large_100 (the starting point);
1b. ``RepViT 5x5 r4, simple downsampling`` -- as row 2 with ``deep_downsample=False``: each
   downsampling layer is only the stride-2 depthwise conv-BN + 1x1 conv-BN pair (the state
   before the "deeper downsampling layers" macro step);
2. ``RepViT, 5x5 DW, ratio 4`` -- repvit_m1_0 with kernel_size=5, mlp_ratio=4: RepViT's
   block and macro design but MobileNetV3's larger kernels and expansion (approximates the
   state after "block design" + "macro design", before "expansion ratio" and "kernel size");
3. ``RepViT, 3x3 DW, ratio 4`` -- adds the 3x3-kernel micro step;
4. ``RepViT-M1.0`` -- mlp_ratio=2 too: the final network (single head, no distillation);
4b/4c. ``RepViT-M1.0`` with ``se_layout='all'`` (SE in every block) and ``'none'`` (no SE):
   the alternatives to the cross-block SE placement of the "SE layer placement" micro step.

The steps are applied in a different order than the paper's (its order interleaves macro
steps the constructor cannot switch individually), see NOTES.

    python reproduce/repvit_cifar10.py --data-file cifar-10-python.tar.gz --device gpu
    python reproduce/repvit_cifar10.py --smoke --data-file ../shared/data/cifar-10-python-partial.tar.gz
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing
from ppnets.cli.experiment import (add_variant_options, build_parser,  # noqa: E402
                                   run_variant_table)
from ppnets.experiments import Variant, cifar_data, published  # noqa: E402

SCRIPT = "reproduce/repvit_cifar10.py"
SCHEMA = "ppnets.reproduce.repvit_cifar10/1"
CONFIG = os.path.join(REPO, "configs", "repvit", "cifar10.yaml")


def variants():
    return [
        Variant("1 MobileNetV3-L", CONFIG,
                ["model.name=mobilenetv3_large_100", "model.kwargs={}"], step=1,
                **published("mobilenetv3_large_100")),
        Variant("1b RepViT 5x5 r4, simple downsampling", CONFIG,
                ["model.kwargs.kernel_size=5", "model.kwargs.mlp_ratio=4",
                 "model.kwargs.deep_downsample=false"], step=1.5,
                published_top1=None, published_source=None),
        Variant("2 RepViT 5x5 r4", CONFIG,
                ["model.kwargs.kernel_size=5", "model.kwargs.mlp_ratio=4"], step=2,
                published_top1=None, published_source=None),
        Variant("3 RepViT 3x3 r4", CONFIG,
                ["model.kwargs.kernel_size=3", "model.kwargs.mlp_ratio=4"], step=3,
                published_top1=None, published_source=None),
        Variant("4 RepViT-M1.0", CONFIG, [], step=4, **published("repvit_m1_0")),
        Variant("4b RepViT-M1.0, SE in every block", CONFIG, ["model.kwargs.se_layout=all"],
                step=4, published_top1=None, published_source=None),
        Variant("4c RepViT-M1.0, no SE", CONFIG, ["model.kwargs.se_layout=none"], step=4,
                published_top1=None, published_source=None),
    ]


NOTES = [
    "Approximated: the macro-design steps early-convolution stem, simple classifier and stage "
    "ratio 1:1:7:1 are not separate constructor switches; they enter at step 1b together with "
    "RepViT's block design. The deeper downsampling layers are their own step (1b -> 2, "
    "deep_downsample) and the SE placement is compared on the final network (4 vs 4b/4c, "
    "se_layout).",
    "The paper's roadmap accuracies are ImageNet numbers (published_top1 shows the registry's "
    "ImageNet top-1 of the two end points); CIFAR-10 accuracies here are not comparable.",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/repvit_cifar10")
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="RepViT: MobileNetV3 -> RepViT steps on CIFAR-10",
                             variants=variants(), data=cifar_data,
                             extra_columns=[("published_top1", "paper top-1 (%, ImageNet-1k)", 1)],
                             notes=NOTES,
                             plot=dict(name="roadmap", x="step", xlabel="step",
                                       title="MobileNetV3-L -> RepViT-M1.0, CIFAR-10"))


if __name__ == "__main__":
    sys.exit(main())
