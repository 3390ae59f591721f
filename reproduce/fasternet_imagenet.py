"""FasterNet on ImageNet-1k with the official per-size recipes.

FasterNet (Chen et al., CVPR 2023, arXiv:2303.03667): T0, T2, S and L trained with the
recipes of the official cfg/fasternet_*.yaml (configs/fasternet/imagenet_*.yaml, whose comments
cite every number and list the deviations: no multi-scale 192->224 schedule, no gradient
clipping for L). The paper's global batch is 2048 on 8 GPUs: launch with
``python -m paddle.distributed.launch`` and keep ``data.batch_size`` x devices at 2048 (the lr
follows the batch through ``optim.lr_scale_batch``).

    python -m paddle.distributed.launch --gpus 0,1,2,3,4,5,6,7 reproduce/fasternet_imagenet.py \
        --device gpu --data-dir /data/ILSVRC2012 --only fasternet_t0
    python reproduce/fasternet_imagenet.py --smoke     # 400-image sample, T0 only
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
SCRIPT = "reproduce/fasternet_imagenet.py"
SCHEMA = "ppnets.reproduce.fasternet_imagenet/1"
CFG = os.path.join(REPO, "configs", "fasternet")


def variants():
    return [Variant(f"fasternet_{size}", os.path.join(CFG, f"imagenet_{size}.yaml"), [],
                    **published(f"fasternet_{size}")) for size in ("t0", "t2", "s", "l")]


NOTES = ["published_top1: the paper's ImageNet-1k top-1 (%) from the registry's model_info; "
         "top-1 columns of this run are fractions.",
         "FasterNet-T1 and -M: no config yet (their official cfg files were not consulted)."]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/fasternet_imagenet")
    add_imagenet_options(p)
    add_variant_options(p)
    args = p.parse_args(argv)
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="FasterNet on ImageNet-1k", variants=variants(),
                             data=lambda options: imagenet_data(options, IMAGENET_SAMPLE),
                             extra_columns=[("published_top1", "paper top-1 (%, ImageNet-1k)", 1)],
                             notes=NOTES, smoke_rows=["fasternet_t0"])


if __name__ == "__main__":
    sys.exit(main())
