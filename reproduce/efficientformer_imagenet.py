"""EfficientFormer V1/V2 on ImageNet-1k with hard distillation.

EfficientFormer (Li et al., NeurIPS 2022, arXiv:2206.01191) and V2 (ICCV 2023,
arXiv:2212.08059) train with the official main.py recipe (configs/efficientformer/
imagenet_l1.yaml and configs/efficientformerv2/imagenet_s0.yaml cite it): AdamW lr 2e-3,
wd 0.025, 300 epochs, batch 1024, DeiT augmentation, EMA, and DeiT hard distillation from
RegNetY-16GF. The teacher is given with ``--teacher NAME --teacher-weights FILE.pdparams`` (any
registered model; regnety_160 is not in the ppnets registry yet). Without ``--teacher`` the
models train without distillation (recorded as such). ``--smoke`` uses a random
mobilenetv3_small_050 teacher just to exercise the distillation path.

    python -m paddle.distributed.launch --gpus 0,1,2,3,4,5,6,7 reproduce/efficientformer_imagenet.py \
        --device gpu --data-dir /data/ILSVRC2012 --only efficientformer_l1 \
        --teacher <name> --teacher-weights teacher.pdparams
    python reproduce/efficientformer_imagenet.py --smoke     # 400-image sample, L1 only
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
SCRIPT = "reproduce/efficientformer_imagenet.py"
SCHEMA = "ppnets.reproduce.efficientformer_imagenet/1"
V1 = os.path.join(REPO, "configs", "efficientformer", "imagenet_l1.yaml")
V2 = os.path.join(REPO, "configs", "efficientformerv2", "imagenet_s0.yaml")
SMOKE_TEACHER = "mobilenetv3_small_050"


def variants(teacher_ov):
    rows = [Variant(n, V1, [f"model.name={n}", *teacher_ov], **published(n))
            for n in ("efficientformer_l1", "efficientformer_l3", "efficientformer_l7")]
    rows += [Variant(n, V2, [f"model.name={n}", *teacher_ov], **published(n))
             for n in ("efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2",
                       "efficientformerv2_l")]
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0], "outputs/efficientformer_imagenet")
    add_imagenet_options(p)
    add_variant_options(p)
    p.add_argument("--teacher", default=None, help="registry name of the distillation teacher")
    p.add_argument("--teacher-weights", default=None, help="the teacher's .pdparams")
    p.add_argument("--distill-type", choices=("hard", "soft", "none"), default="hard")
    args = p.parse_args(argv)
    teacher = args.teacher or (SMOKE_TEACHER if args.smoke else None)
    ov = [f"distill.type={args.distill_type}"]
    notes = ["published_top1: the papers' ImageNet-1k top-1 (%) (with distillation) from the "
             "registry's model_info."]
    if teacher and args.distill_type != "none":
        ov.append(f"distill.teacher={teacher}")
        if args.teacher_weights:
            ov.append(f"distill.teacher_weights={os.path.abspath(args.teacher_weights)}")
        notes.append(f"distillation: {args.distill_type}, teacher {teacher} from "
                     f"{args.teacher_weights or 'RANDOM INITIALISATION (smoke only)'}")
    else:
        notes.append("distillation: NONE (no --teacher given); the papers distil from "
                     "RegNetY-16GF, so expect lower accuracy than published")
    return run_variant_table(args, script=SCRIPT, argv=argv, schema=SCHEMA,
                             title="EfficientFormer V1/V2 on ImageNet-1k", variants=variants(ov),
                             data=lambda options: imagenet_data(options, IMAGENET_SAMPLE),
                             extra_columns=[("published_top1", "paper top-1 (%, ImageNet-1k)", 1),
                                            ("top1_ema_pct", "EMA top-1 (%)", 2)],
                             notes=notes, smoke_rows=["efficientformer_l1"])


if __name__ == "__main__":
    sys.exit(main())
