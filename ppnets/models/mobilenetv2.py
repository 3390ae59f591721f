"""MobileNetV2.

Paper: "MobileNetV2: Inverted Residuals and Linear Bottlenecks", Sandler et al., arXiv:1801.04381.
Official code: tensorflow/models, research/slim/nets/mobilenet/mobilenet_v2.py.
Reference used for parity: timm 1.0 ``mobilenetv2_050/075/100/140`` (``_gen_mobilenet_v2`` in
timm/models/efficientnet.py).

Architecture (paper Table 2): 3x3/s2 stem conv (32), 17 bottlenecks given as (t, c, n, s) rows,
a 1x1 conv to 1280, global average pool, classifier. A bottleneck expands its input t times with
a 1x1 Conv-BN-ReLU6, filters with a 3x3 depthwise Conv-BN-ReLU6 and projects with a *linear*
1x1 Conv-BN; the residual joins the narrow ends when stride is 1 and widths match.

Width multiplier rules (timm = TF-slim): every width ``make_divisible(c * width_mult, 8)``, the stem
included; the head conv is ``max(1280, make_divisible(1280 * width_mult, 8))``, i.e. it stays 1280
below 1.0 and scales above (paper Sec. 6.1: "for multipliers less than one, we apply width
multiplier to all layers except the very last convolutional layer"). Expansion widths are
``make_divisible(t * c_in, 8)`` of the rounded input width.

Deviations: the first row (t=1) is a depthwise separable block without an expansion conv, as in
TF-slim and timm (a t=1 "expansion" would be a useless 1x1 conv). ReLU6 is
``create_act("relu6")``, a ``clip`` op (Paddle Lite 2.13 aborts on ``relu6``).
"""
from __future__ import annotations

from functools import partial

from ppnets.layers import make_divisible
from ppnets.models.mobilenet import PARITY_INPUT, TIMM_MOBILENET_WEIGHT, MobileNet, timm_key_map
from ppnets.registry import register_models

# Paper Table 2, one stage per (t, c, n, s) row.
MOBILENETV2_STAGES = [
    [dict(block="ds", k=3, s=1, n=1, c=16)],          # t=1: no expansion conv
    [dict(block="ir", k=3, s=2, n=2, c=24, e=6)],
    [dict(block="ir", k=3, s=2, n=3, c=32, e=6)],
    [dict(block="ir", k=3, s=2, n=4, c=64, e=6)],
    [dict(block="ir", k=3, s=1, n=3, c=96, e=6)],
    [dict(block="ir", k=3, s=2, n=3, c=160, e=6)],
    [dict(block="ir", k=3, s=1, n=1, c=320, e=6)],
]
HEAD_CHS = 1280


def mobilenetv2(width_mult: float = 1.0, **kwargs) -> MobileNet:
    """MobileNetV2 with width multiplier ``width_mult`` (timm's ``channel_multiplier``)."""
    head_chs = max(HEAD_CHS, make_divisible(HEAD_CHS * width_mult, 8))
    return MobileNet(MOBILENETV2_STAGES, width_mult=width_mult, stem_chs=32, act="relu6",
                     head="conv", head_chs=head_chs, **kwargs)


_MEASURED_BY = ("timm 1.0.31, random init: sum of parameter sizes; MACs = "
                "torch.utils.flop_counter FLOPs / 2 at 1x3x224x224")
_BN_NOTE = ("The TF-slim checkpoint table counts parameters without the BatchNorm scale and "
            "offset: timm's count minus 2 x {bn} BN channels is {tf:.3f} M, the README's "
            "{readme} M.")
_TF_README = "tensorflow/models research/slim/nets/mobilenet/README.md (official checkpoints)"

VARIANTS = {
    "mobilenetv2_050": dict(
        cfg=dict(width_mult=0.5),
        info=dict(
            params_m=1.95, macs_g=0.097, top1=65.4,
            source=dict(params_m=_TF_README + ", mobilenet_v2_0.5_224",
                        macs_g=_TF_README + ", mobilenet_v2_0.5_224",
                        top1=_TF_README + ", mobilenet_v2_0.5_224"),
            measured=dict(params_m=1.968680, macs_g=0.097132, by=_MEASURED_BY),
            notes="Width 0.5 is only plotted in the paper (Fig. 5); figures from the official "
                  "checkpoint table. " + _BN_NOTE.format(bn=9272, tf=1.950136, readme=1.95),
            reference=dict(lib="timm", name="mobilenetv2_050", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_MOBILENET_WEIGHT, tag="lamb_in1k", top1=65.928, top5=86.114)]),
    "mobilenetv2_075": dict(
        cfg=dict(width_mult=0.75),
        info=dict(
            params_m=2.61, macs_g=0.209, top1=69.8,
            source=dict(params_m=_TF_README + ", mobilenet_v2_0.75_224",
                        macs_g=_TF_README + ", mobilenet_v2_0.75_224",
                        top1=_TF_README + ", mobilenet_v2_0.75_224"),
            measured=dict(params_m=2.636424, macs_g=0.209070, by=_MEASURED_BY),
            notes="Width 0.75 is only plotted in the paper (Fig. 5); figures from the official "
                  "checkpoint table (timm has no trained weights for it). "
                  + _BN_NOTE.format(bn=13320, tf=2.609784, readme=2.61),
            reference=dict(lib="timm", name="mobilenetv2_075", input_size=PARITY_INPUT),
            interpolation="bicubic"),
        no_weights=("timm 1.0.31 registers mobilenetv2_075 without trained weights (its only tag "
                    "is 'untrained') and torchvision has MobileNetV2 at width 1.0 only. The "
                    "official width-0.75 checkpoint (tensorflow/models research/slim, "
                    "mobilenet_v2_0.75_224, the source of model_info's figures) is a TensorFlow "
                    "checkpoint, not a state dict of this layout.")),
    "mobilenetv2_100": dict(
        cfg=dict(width_mult=1.0),
        info=dict(
            params_m=3.4, macs_g=0.300, top1=72.0,
            source=dict(params_m="paper Table 4", macs_g="paper Table 4", top1="paper Table 4"),
            measured=dict(params_m=3.504872, macs_g=0.300774, by=_MEASURED_BY),
            notes="timm (and torchvision, and we) count 3.50 M parameters; the paper's 3.4 M and "
                  "the official README's 3.47 M leave out the BatchNorm scale and offset: "
                  + _BN_NOTE.format(bn=17056, tf=3.470760, readme=3.47)
                  + " The architecture is the same.",
            reference=dict(lib="timm", name="mobilenetv2_100", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_MOBILENET_WEIGHT, tag="ra_in1k", top1=72.91, top5=91.0)]),
    "mobilenetv2_140": dict(
        cfg=dict(width_mult=1.4),
        info=dict(
            params_m=6.9, macs_g=0.585, top1=74.7,
            source=dict(params_m="paper Table 4 (MobileNetV2 (1.4))",
                        macs_g="paper Table 4 (MobileNetV2 (1.4))",
                        top1="paper Table 4 (MobileNetV2 (1.4))"),
            measured=dict(params_m=6.108776, macs_g=0.582196, by=_MEASURED_BY),
            notes="The paper's 6.9 M parameters disagree with its own official checkpoint table "
                  "(6.06 M, 582 M MACs for mobilenet_v2_1.4_224) and with timm's 6.11 M; "
                  + _BN_NOTE.format(bn=23968, tf=6.060840, readme=6.06),
            reference=dict(lib="timm", name="mobilenetv2_140", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_MOBILENET_WEIGHT, tag="ra_in1k", top1=76.528, top5=93.008)]),
}

register_models(
    family="mobilenetv2", builder=mobilenetv2, variants=VARIANTS,
    paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks", arxiv="1801.04381",
    defaults=dict(test_input_size=(3, 64, 64)),
    key_maps={"timm": partial(timm_key_map, efficient_head=False)},
)
