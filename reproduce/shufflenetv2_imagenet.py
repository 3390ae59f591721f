"""ShuffleNetV2 on ImageNet-1k with the paper's (ShuffleNet V1) recipe.

ShuffleNet V2 (Ma et al., ECCV 2018, arXiv:1807.11164) trains like ShuffleNet V1: SGD, lr 0.5
decayed linearly to 0, weight decay 4e-5, batch 1024, 3 x 10^5 iterations (240 epochs);
configs/shufflenetv2/imagenet_x1_0.yaml cites the sources and the assumptions (momentum 0.9,
scale augmentation). Rows: the four widths 0.5x, 1.0x, 1.5x, 2.0x with the same recipe.

    python -m paddle.distributed.launch --gpus 0,1,2,3 reproduce/shufflenetv2_imagenet.py \
        --device gpu --data-dir /data/ILSVRC2012 --only shufflenet_v2_x1_0
    python reproduce/shufflenetv2_imagenet.py --smoke     # 400-image sample, 0.5x only
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing
from ppnets.cli.experiment import (add_imagenet_options, add_variant_options,  # noqa: E402
                                   build_parser, run_variant_table)
from ppnets.experiments import Variant, imagenet_data, published  # noqa: E402

# --smoke without --data-dir: the 400 validation images of the shared data folder
IMAGENET_SAMPLE = os.path.join(REPO, "..", "shared", "data", "imagenet-val-sample")
SCRIPT = "reproduce/shufflenetv2_imagenet.py"
SCHEMA = "ppnets.reproduce.shufflenetv2_imagenet/1"
CONFIG = os.path.join(REPO, "configs", "shufflenetv2", "imagenet_x1_0.yaml")


def variants():
    return [Variant(name, CONFIG, [f"model.name={name}"], **published(name))
            for name in ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                         "shufflenet_v2_x2_0")]


NOTES = ["published_top1: the paper's ImageNet-1k top-1 (%) from the registry's model_info.",
         "The paper trains 0.5x-2.0x with one recipe; the official repo uses different weight "
         "decay for some widths -- not applied here."]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/shufflenetv2_imagenet")
    add_imagenet_options(p)
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="ShuffleNetV2 on ImageNet-1k", variants=variants(),
                             data=lambda options: imagenet_data(options, IMAGENET_SAMPLE),
                             extra_columns=[("published_top1", "paper top-1 (%, ImageNet-1k)", 1)],
                             notes=NOTES, smoke_rows=["shufflenet_v2_x0_5"])


if __name__ == "__main__":
    sys.exit(main())
