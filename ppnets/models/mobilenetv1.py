"""MobileNetV1.

Paper: "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
Howard et al., arXiv:1704.04861.
Official code: tensorflow/models, research/slim/nets/mobilenet_v1.py.
Reference used for parity: timm 1.0 ``mobilenetv1_100`` / ``mobilenetv1_125``
(``_gen_mobilenet_v1`` in timm/models/efficientnet.py, built by the EfficientNet builder; weights
``ra4_e3600_r224_in1k`` trained by timm, not converted from TF).

Architecture (paper Table 1): 3x3/s2 stem conv with 32 channels, then 13 depthwise separable
layers (3x3 depthwise Conv-BN-act, 1x1 pointwise Conv-BN-act, no residual) with widths
64, 128x2, 256x2, 512x6, 1024x2, global average pool, one fully connected layer.

Deviations of timm's model (and so ours) from the paper:

* activation is ReLU6 (as in the TF-slim release), the paper says ReLU. ReLU6 here is
  ``create_act("relu6")``, a ``clip`` op, because Paddle Lite 2.13 aborts on ``relu6``.
* the paper's Table 1 marks the last depthwise layer (7x7x1024 input) as stride 2 although the
  next layer still sees 7x7; timm and TF-slim use stride 1 there, as do we.
* width multipliers round every width to a multiple of 8 (``make_divisible``), the stem
  included; the paper writes plain ``alpha * M`` channels (the 1.0 model is unaffected).

As in the paper there is no conv head: the classifier follows the pool (timm's
``mobilenetv1_100h``, with a 1x1 head conv, is not registered). Dropout before the classifier is
``drop_rate`` (0 by default).
"""
from __future__ import annotations

from functools import partial

from ppnets.models.mobilenet import PARITY_INPUT, TIMM_RA4_WEIGHT, MobileNet, timm_key_map
from ppnets.registry import register_models

# Paper Table 1 grouped by output resolution; every row is a depthwise separable layer whose
# pointwise conv is also followed by BN + activation and which has no residual.
_DS = dict(block="ds", k=3, pw_act=True, skip=False)
MOBILENETV1_STAGES = [
    [dict(_DS, n=1, s=1, c=64)],    # 112x112
    [dict(_DS, n=2, s=2, c=128)],   # 56x56
    [dict(_DS, n=2, s=2, c=256)],   # 28x28
    [dict(_DS, n=6, s=2, c=512)],   # 14x14
    [dict(_DS, n=2, s=2, c=1024)],  # 7x7
]


def mobilenetv1(width_mult: float = 1.0, **kwargs) -> MobileNet:
    """MobileNetV1 with width multiplier ``width_mult`` (paper's alpha, timm's
    ``channel_multiplier``)."""
    return MobileNet(MOBILENETV1_STAGES, width_mult=width_mult, stem_chs=32, act="relu6",
                     head="none", **kwargs)


_MEASURED_BY = ("timm 1.0.31, random init: sum of parameter sizes; MACs = "
                "torch.utils.flop_counter FLOPs / 2 at 1x3x224x224")

VARIANTS = {
    "mobilenetv1_100": dict(
        cfg=dict(width_mult=1.0),
        info=dict(
            params_m=4.2, macs_g=0.569, top1=70.6,
            source=dict(params_m="paper Table 8 (1.0 MobileNet-224)",
                        macs_g="paper Table 8 (569 M mult-adds)",
                        top1="paper Table 8"),
            notes="Published params (4.2 M) and MACs (569 M) agree with timm's structure within "
                  "1%; timm's ra4 weights reach a higher top-1 with a modern recipe.",
            reference=dict(lib="timm", name="mobilenetv1_100", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_RA4_WEIGHT, tag="ra4_e3600_r224_in1k", crop_pct=0.875,
                      test_crop_pct=0.95, top1=75.388, top5=92.31)]),
    "mobilenetv1_125": dict(
        cfg=dict(width_mult=1.25),
        info=dict(
            params_m=6.3, macs_g=0.9,
            source=dict(params_m="timm model card mobilenetv1_125.ra4_e3600_r224_in1k (rounded)",
                        macs_g="timm model card mobilenetv1_125.ra4_e3600_r224_in1k (rounded)"),
            measured=dict(params_m=6.270840, macs_g=0.879517, by=_MEASURED_BY),
            notes="Width 1.25 is not in the paper (Table 6 has 1.0/0.75/0.5/0.25); figures from "
                  "timm's model card, which rounds to one decimal (0.9 GMACs for timm's exact "
                  "0.8795 G, see measured). No top-1 is recorded here.",
            reference=dict(lib="timm", name="mobilenetv1_125", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_RA4_WEIGHT, tag="ra4_e3600_r224_in1k", crop_pct=0.9,
                      test_crop_pct=1.0, top1=76.92, top5=93.232)]),
}

register_models(
    family="mobilenetv1", builder=mobilenetv1, variants=VARIANTS,
    paper="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    arxiv="1704.04861",
    defaults=dict(test_input_size=(3, 64, 64)),
    key_maps={"timm": partial(timm_key_map, efficient_head=False)},
)
