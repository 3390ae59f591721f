"""MobileNetV3 Large and Small.

Paper: "Searching for MobileNetV3", Howard et al., arXiv:1905.02244 (ICCV 2019).
Official code: tensorflow/models, research/slim/nets/mobilenet/mobilenet_v3.py.
Reference used for parity: timm 1.0 ``mobilenetv3_large_075/100``, ``mobilenetv3_small_050/075/100``
(``_gen_mobilenet_v3`` and ``MobileNetV3`` in timm/models/mobilenetv3.py).

Architecture (paper Table 1 = Large, Table 2 = Small): 3x3/s2 stem conv (16, h-swish), bottlenecks
given as (kernel, exp size, out, SE, NL, stride) rows, a 1x1 Conv-BN-h-swish (960 / 576), then
the "efficient last stage" (Sec. 5.3): global pool -> 1x1 conv to 1280 / 1024 with bias and no BN
-> h-swish -> classifier. SE (Sec. 5.3) sits after the depthwise conv, squeezes the expanded width
to ``make_divisible(C_exp / 4, 8)`` with ReLU and gates with the hard sigmoid ``relu6(x + 3) / 6``
(slope exactly 1/6). h-swish is ``x * relu6(x + 3) / 6``.

timm details matched for parity (and so our definition):

* bottleneck rows carry expansion *ratios* (e.g. 2.3 for 80 -> 184); the expanded width is
  ``make_divisible(ratio * C_in, 8)`` of the rounded input, which reproduces the paper's exp sizes
  at width 1.0 and differs from ``exp * width`` at other widths.
* the first row is a depthwise separable block (no expansion conv, the paper's exp size equals
  its input width); Small's first block has SE on it.
* stem width is 16 and is not scaled when ``width_mult < 0.75``; the head widths 1280 / 1024 are
  never scaled; every other width is ``make_divisible(c * width_mult, 8)``.
* ``num_features`` is the head conv's width (1280 / 1024): it is what ``pre_logits`` returns.
  timm calls that ``head_hidden_size`` and uses ``num_features`` for the last stage's width
  (960 / 576 at 1.0), which we expose as ``feature_chs``.

Features (``feature_info``, ``forward_intermediates``): timm's, by its EfficientNet builder rule
(``ppnets.models.mobilenet``): Large ``blocks.0/1/2/4/6``, Small the stem and ``blocks.0/1/3/5``
(strides 2 to 32; the last is the 1x1 Conv-BN-h-swish stage). Small's first map is the output of
timm's ``bn1`` (BN + h-swish after ``conv_stem``), which is our ``stem``.

Differences from PaddleClas' MobileNetV3 (ppcls legendary_models/mobilenet_v3.py, read for
comparison): its SE gate is ``hardsigmoid(slope=0.2, offset=0.5)``, not the paper's 1/6 slope, and
its SE squeezes to ``C // 4`` without rounding; its head conv has no bias; its expansion widths
are ``make_divisible(exp * scale)`` of the paper's absolute exp sizes; it flattens with
``nn.Flatten`` (which Paddle Lite 2.13 cannot run). Its weights therefore do not load here.
Widths here are keyword arguments of one builder (``width_mult``), not per-width functions.
"""
from __future__ import annotations

from functools import partial

from ppnets.models.mobilenet import (PARITY_INPUT, TIMM_MOBILENET_WEIGHT, TIMM_RA4_WEIGHT,
                                     MobileNet, timm_key_map)
from ppnets.registry import TIMM_WEIGHT, register_models

_SE = 0.25
# Paper Table 1 (Large): rows grouped by timm's stages. "e" = exp size / input width.
MOBILENETV3_LARGE_STAGES = [
    [dict(block="ds", k=3, s=1, n=1, c=16, act="relu")],                      # exp 16
    [dict(block="ir", k=3, s=2, n=1, c=24, e=4, act="relu"),                  # exp 64
     dict(block="ir", k=3, s=1, n=1, c=24, e=3, act="relu")],                 # exp 72
    [dict(block="ir", k=5, s=2, n=3, c=40, e=3, se=_SE, act="relu")],         # exp 72, 120, 120
    [dict(block="ir", k=3, s=2, n=1, c=80, e=6),                              # exp 240
     dict(block="ir", k=3, s=1, n=1, c=80, e=2.5),                            # exp 200
     dict(block="ir", k=3, s=1, n=2, c=80, e=2.3)],                           # exp 184, 184
    [dict(block="ir", k=3, s=1, n=2, c=112, e=6, se=_SE)],                    # exp 480, 672
    [dict(block="ir", k=5, s=2, n=3, c=160, e=6, se=_SE)],                    # exp 672, 960, 960
    [dict(block="cn", k=1, s=1, n=1, c=960)],
]
# Paper Table 2 (Small).
MOBILENETV3_SMALL_STAGES = [
    [dict(block="ds", k=3, s=2, n=1, c=16, se=_SE, act="relu")],              # exp 16
    [dict(block="ir", k=3, s=2, n=1, c=24, e=4.5, act="relu"),                # exp 72
     dict(block="ir", k=3, s=1, n=1, c=24, e=3.67, act="relu")],              # exp 88
    [dict(block="ir", k=5, s=2, n=1, c=40, e=4, se=_SE),                      # exp 96
     dict(block="ir", k=5, s=1, n=2, c=40, e=6, se=_SE)],                     # exp 240, 240
    [dict(block="ir", k=5, s=1, n=2, c=48, e=3, se=_SE)],                     # exp 120, 144
    [dict(block="ir", k=5, s=2, n=3, c=96, e=6, se=_SE)],                     # exp 288, 576, 576
    [dict(block="cn", k=1, s=1, n=1, c=576)],
]
ARCHS = {
    "large": dict(stages=MOBILENETV3_LARGE_STAGES, head_chs=1280),
    "small": dict(stages=MOBILENETV3_SMALL_STAGES, head_chs=1024),
}


def mobilenetv3(arch: str = "large", width_mult: float = 1.0, **kwargs) -> MobileNet:
    """MobileNetV3 ``arch`` in {"large", "small"} with width multiplier ``width_mult``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown MobileNetV3 arch {arch!r}; expected one of {sorted(ARCHS)}")
    spec = ARCHS[arch]
    return MobileNet(spec["stages"], width_mult=width_mult, stem_chs=16,
                     fix_stem=width_mult < 0.75, act="hard_swish", head="efficient",
                     head_chs=spec["head_chs"], **kwargs)


_MEASURED_BY = ("timm 1.0.31, random init: sum of parameter sizes; MACs = "
                "torch.utils.flop_counter FLOPs / 2 at 1x3x224x224")
_PAPER_T3 = "paper Table 3"
_ROUNDING = ("The structure is the paper's Table 1/2; the paper's counts are rounded, and the "
             "official TF checkpoint table lists {tf} for this model.")
# Alibaba MIIL's ImageNet-21K-P weights, ported by timm: inputs in [0, 1], crop 0.875, bilinear.
_MIIL_WEIGHT = dict(TIMM_WEIGHT, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_pct=0.875,
                    interpolation="bilinear")

VARIANTS = {
    "mobilenetv3_large_075": dict(
        cfg=dict(arch="large", width_mult=0.75),
        info=dict(
            params_m=4.0, macs_g=0.155, top1=73.3,
            source=dict(params_m=_PAPER_T3 + " (Large 0.75)", macs_g=_PAPER_T3 + " (Large 0.75)",
                        top1=_PAPER_T3 + " (Large 0.75)"),
            notes="timm has no trained weights for this width (its default config is untrained).",
            reference=dict(lib="timm", name="mobilenetv3_large_075", input_size=PARITY_INPUT),
            interpolation="bilinear"),
        no_weights=("timm 1.0.31 registers mobilenetv3_large_075 without trained weights (its "
                    "only tag is 'untrained') and torchvision has MobileNetV3 at width 1.0 only. "
                    "timm's tf_mobilenetv3_large_075.in1k (ported from the official TF "
                    "checkpoint) is another network: TF 'same' padding and BatchNorm eps 1e-3.")),
    "mobilenetv3_large_100": dict(
        cfg=dict(arch="large", width_mult=1.0),
        info=dict(
            params_m=5.4, macs_g=0.219, top1=75.2,
            source=dict(params_m=_PAPER_T3 + " (Large 1.0)", macs_g=_PAPER_T3 + " (Large 1.0)",
                        top1=_PAPER_T3 + " (Large 1.0)"),
            measured=dict(params_m=5.483032, macs_g=0.216590, by=_MEASURED_BY),
            notes="Our count equals timm's: 5.48 M parameters (1.5% above the paper's 5.4 M) and "
                  "216.6 M MACs (1.1% below the paper's 219 M). "
                  + _ROUNDING.format(tf="217 M MACs, 5.4 M parameters"),
            reference=dict(lib="timm", name="mobilenetv3_large_100", input_size=PARITY_INPUT)),
        weights=[
            dict(TIMM_MOBILENET_WEIGHT, tag="ra_in1k", top1=75.784, top5=92.528),
            dict(TIMM_RA4_WEIGHT, tag="ra4_e3600_r224_in1k", crop_pct=0.95, test_crop_pct=1.0,
                 top1=76.31, top5=92.842),
            dict(_MIIL_WEIGHT, tag="miil_in21k_ft_in1k", top1=77.92, top5=92.894,
                 notes="Alibaba MIIL ImageNet-21K-P pre-training, fine-tuned on ImageNet-1k "
                       "(arXiv:2104.10972)."),
            dict(_MIIL_WEIGHT, tag="miil_in21k", num_classes=11221, top1=None, top5=None,
                 top1_source="none: an ImageNet-21K-P classifier (11221 classes)",
                 notes="Alibaba MIIL ImageNet-21K-P (winter 2021) classifier, not fine-tuned on "
                       "ImageNet-1k: build with num_classes=11221 (arXiv:2104.10972)."),
        ]),
    "mobilenetv3_small_050": dict(
        cfg=dict(arch="small", width_mult=0.5),
        info=dict(
            params_m=1.59, macs_g=None, top1=57.91,
            source=dict(params_m="timm results-imagenet.csv (mobilenetv3_small_050.lamb_in1k)",
                        macs_g="none published (timm's model card rounds it to 0.0 GMACs)",
                        top1="timm results-imagenet.csv (mobilenetv3_small_050.lamb_in1k)"),
            measured=dict(params_m=1.593224, macs_g=0.024189, by=_MEASURED_BY),
            notes="Width 0.5 is not in the paper; figures from timm's evaluation of its "
                  "lamb_in1k weights (no published MACs: timm's count is in measured).",
            reference=dict(lib="timm", name="mobilenetv3_small_050", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_MOBILENET_WEIGHT, tag="lamb_in1k", top1=57.918, top5=80.144)]),
    "mobilenetv3_small_075": dict(
        cfg=dict(arch="small", width_mult=0.75),
        info=dict(
            params_m=2.0, macs_g=0.044, top1=65.4,
            source=dict(params_m=_PAPER_T3 + " (Small 0.75)", macs_g=_PAPER_T3 + " (Small 0.75)",
                        top1=_PAPER_T3 + " (Small 0.75)"),
            measured=dict(params_m=2.041872, macs_g=0.043399, by=_MEASURED_BY),
            notes="Our count equals timm's: 2.04 M parameters and 43.4 M MACs vs the paper's "
                  "rounded 2.0 M / 44 M. "
                  + _ROUNDING.format(tf="44 M MACs, 2.4 M parameters"),
            reference=dict(lib="timm", name="mobilenetv3_small_075", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_MOBILENET_WEIGHT, tag="lamb_in1k", top1=65.284, top5=85.462)]),
    "mobilenetv3_small_100": dict(
        cfg=dict(arch="small", width_mult=1.0),
        info=dict(
            params_m=2.5, macs_g=0.056, top1=67.4,
            source=dict(params_m=_PAPER_T3 + " (Small 1.0)", macs_g=_PAPER_T3 + " (Small 1.0)",
                        top1=_PAPER_T3 + " (Small 1.0)"),
            measured=dict(params_m=2.542856, macs_g=0.056510, by=_MEASURED_BY),
            notes="Our count equals timm's: 2.54 M parameters (1.7% above the paper's 2.5 M) and "
                  "56.5 M MACs. " + _ROUNDING.format(tf="66 M MACs, 2.9 M parameters"),
            reference=dict(lib="timm", name="mobilenetv3_small_100", input_size=PARITY_INPUT)),
        weights=[dict(TIMM_MOBILENET_WEIGHT, tag="lamb_in1k", top1=67.636, top5=87.638)]),
}

register_models(
    family="mobilenetv3", builder=mobilenetv3, variants=VARIANTS,
    paper="Searching for MobileNetV3", arxiv="1905.02244",
    defaults=dict(test_input_size=(3, 64, 64)),
    key_maps={"timm": partial(timm_key_map, efficient_head=True)},
)
