"""MobileNet V1/V2/V3 on ImageNet-1k.

The configs (configs/mobilenet/imagenet_*.yaml) train with TF-style RMSProp
(``optim.name: rmsprop_tf``) as the papers did: MobileNetV2 the official TF-slim recipe (eps 1.0,
lr 0.045 per 96 images, x0.98 every 2.5 epochs, label smoothing, EMA; V1 reuses it), V3-Large
timm's documented RMSProp recipe. Each config lists its sources and every deviation.

    python -m paddle.distributed.launch --gpus 0,1,2,3,4,5,6,7 reproduce/mobilenet_imagenet.py \
        --device gpu --data-dir /data/ILSVRC2012 --only mobilenetv2_100
    python reproduce/mobilenet_imagenet.py --smoke     # 400-image sample, V3-Large only (EMA on)
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
SCRIPT = "reproduce/mobilenet_imagenet.py"
SCHEMA = "ppnets.reproduce.mobilenet_imagenet/1"
CFG = os.path.join(REPO, "configs", "mobilenet")


def variants():
    return [Variant(name, os.path.join(CFG, f"imagenet_{cfg}.yaml"), [], **published(name))
            for name, cfg in (("mobilenetv1_100", "v1_100"), ("mobilenetv2_100", "v2_100"),
                              ("mobilenetv3_large_100", "v3_large_100"))]


NOTES = ["published_top1: the papers' ImageNet-1k top-1 (%) from the registry's model_info.",
         "Recipes deviate from the papers in places (synchronous data parallel, our crop "
         "augmentation; V1 has no published recipe): see the config comments."]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/mobilenet_imagenet")
    add_imagenet_options(p)
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="MobileNet V1/V2/V3 on ImageNet-1k", variants=variants(),
                             data=lambda options: imagenet_data(options, IMAGENET_SAMPLE),
                             extra_columns=[("published_top1", "paper top-1 (%, ImageNet-1k)", 1),
                                            ("top1_ema_pct", "EMA top-1 (%)", 2)],
                             notes=NOTES, smoke_rows=["mobilenetv3_large_100"])


if __name__ == "__main__":
    sys.exit(main())
