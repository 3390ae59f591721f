"""MobileOne.

Paper: "MobileOne: An Improved One millisecond Mobile Backbone", Vasu et al., CVPR 2023,
arXiv:2206.04040.
Official code: https://github.com/apple/ml-mobileone.
Reference implementation used for parity: timm 1.0.31 ``byobnet.py`` (``mobileone_s*``), which
loads the official weights remapped.

MobileOne is a MobileNetV1-like stack of depthwise 3x3 and pointwise 1x1 layers in which every
layer is over-parameterized at train time (:class:`ppnets.layers.RepConvBN`): ``k`` parallel
conv-BN branches (``num_conv_branches``; k=4 for S0, 1 otherwise), a 1x1 conv-BN "scale" branch
on the depthwise 3x3 layers and a BN-only "skip" branch where the shapes allow, summed, then
(S4 only) squeeze-excitation, then ReLU. ``reparameterize()`` fuses each layer into one conv.

Architecture (the paper's network specification table): a stride-2 stem layer (3x3, one conv
branch, as the official code) of width ``min(64, 64 a_1)`` and four stages of (2, 8, 10, 1)
depthwise+pointwise block pairs of widths ``64 a_1, 128 a_2, 256 a_3, 512 a_4``, each stage
starting with a stride-2 depthwise layer.
S4 puts SE in the last 5 blocks of stage 3 and in stage 4 (both layers of each block).

Ablation knobs (the paper's over-parameterization ablations): ``num_conv_branches`` (k, stage
layers; the stem keeps one branch as in the official code), ``use_scale_branch`` (all 3x3 layers
including the stem) and ``use_skip_branch``.

Deviations / notes:
- SE's reduced width is ``make_divisible(C / 16, 8)`` as timm; the official code uses
  ``int(C * 0.0625)`` (the same for S4's widths 896 and 2048).
- SE parameters are named ``conv_reduce``/``conv_expand`` (timm: ``fc1``/``fc2``); the timm key
  map translates, including timm's reparameterized ``reparam_conv`` checkpoints.
- ``drop_path_rate`` on layers with a skip branch comes from timm; the official code has none.

Features (:mod:`ppnets.models.features`), as timm's ``ByobNet``: five maps, the stem (stride 2)
and stages 0-3 (strides 4-32), the last named ``final_conv`` after timm's identity
``final_conv`` (:class:`ppnets.models.repvgg.StemStagesFeatures`), so that ``feature_info``
equals timm's (without its extra ``stage`` field).
"""
from __future__ import annotations

from typing import Sequence

import paddle.nn as nn

from ppnets.layers import RepConvBN, SqueezeExcite, init_weights_fan_out, make_divisible
from ppnets.models.base import ImageClassifier
from ppnets.models.repvgg import StemStagesFeatures
from ppnets.registry import TIMM_WEIGHT, register_models

__all__ = ["MobileOne"]

_BASE_WIDTHS = (64, 128, 256, 512)


def _se(channels: int) -> SqueezeExcite:
    return SqueezeExcite(channels, rd_channels=make_divisible(channels / 16, 8, round_limit=0.0))


class MobileOne(StemStagesFeatures, ImageClassifier):
    """MobileOne S0-S4.

    Args:
        width_multipliers: the paper's alpha per stage.
        depths: depthwise+pointwise block pairs per stage.
        num_se_blocks: per stage, how many of the last blocks carry SE.
        num_conv_branches: k, the parallel conv-BN branches of every stage layer.
        use_scale_branch: add the 1x1 conv-BN branch to the 3x3 (stem and depthwise) layers.
        use_skip_branch: add the BN skip branch where input and output shapes agree.
    """

    def __init__(self, width_multipliers: Sequence[float] = (0.75, 1.0, 1.0, 2.0),
                 depths: Sequence[int] = (2, 8, 10, 1),
                 num_se_blocks: Sequence[int] = (0, 0, 0, 0), num_conv_branches: int = 1,
                 use_scale_branch: bool = True, use_skip_branch: bool = True,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.deploy = deploy
        widths = [int(round(c * w)) for c, w in zip(_BASE_WIDTHS, width_multipliers)]
        stem_chs = min(64, widths[0])
        self.stem = RepConvBN(in_chans, stem_chs, 3, stride=2, use_scale=use_scale_branch,
                              use_identity=use_skip_branch, deploy=deploy)

        total = 2 * sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        branch = dict(num_conv_branches=num_conv_branches, use_identity=use_skip_branch,
                      deploy=deploy)
        stages, prev, idx = [], stem_chs, 0
        for depth, width, n_se in zip(depths, widths, num_se_blocks):
            layers = []
            for j in range(depth):
                se = j >= depth - n_se
                layers.append(RepConvBN(prev, prev, 3, stride=2 if j == 0 else 1, groups=prev,
                                        use_scale=use_scale_branch,
                                        attn=_se(prev) if se else None,
                                        drop_path_rate=rates[idx], **branch))
                layers.append(RepConvBN(prev, width, 1, attn=_se(width) if se else None,
                                        drop_path_rate=rates[idx + 1], **branch))
                prev = width
                idx += 2
            stages.append(nn.Sequential(*layers))
        self.init_stages_and_head(stages, stem_chs, widths, num_classes, drop_rate)
        init_weights_fan_out(self)


def _from_timm(state: dict) -> dict:
    """timm ``mobileone_*`` names -> ours (SE ``fc1/fc2``; reparameterized ``reparam_conv``)."""
    out = {}
    for key, value in state.items():
        key = key.replace(".attn.fc1.", ".attn.conv_reduce.")
        key = key.replace(".attn.fc2.", ".attn.conv_expand.")
        key = key.replace(".reparam_conv.", ".conv_kxk.0.conv.")
        out[key] = value
    return out


_PAPER = "paper's ImageNet-1k comparison table (MobileOne-S0..S4 rows)"
_CARD = "timm model card {}.apple_in1k (train-time, unfused model)"
_BY = "timm 1.0.31 model, conv+linear MAC hook at 224x224 (train form; 'deploy' after " \
      "timm.models.reparameterize_model)"
_NOTES = ("The paper reports only the fused (deploy) model: its 'FLOPs' (275M ... 2978M) "
          "are multiply-accumulates, reproduced by our conv+linear MAC count after "
          "reparameterize(). Train-time figures are the timm model card's (1-decimal rounding; "
          "exact counts in 'measured').")


def _variant(name, cfg, published, timm, in1k, crop_pct=0.9, parity_input_size=None):
    source = dict(params_m=_CARD.format(name), macs_g=_CARD.format(name),
                  params_m_deploy=_PAPER + " 'Params (M)'",
                  macs_g_deploy=_PAPER + " 'FLOPs (M)' (MACs)", top1=_PAPER + " 'Top-1'")
    deploy = dict(params_m=timm["params_m_deploy"], macs_g=timm["macs_g_deploy"], by=_BY)
    measured = dict(params_m=timm["params_m"], macs_g=timm["macs_g"], by=_BY, deploy=deploy)
    reference = dict(lib="timm", name=name)
    if parity_input_size is not None:
        reference.update(input_size=parity_input_size, batch=1)
    # timm's port of Apple's weights; in1k: (top-1, top-5) of timm's results table
    weight = dict(TIMM_WEIGHT, tag="apple_in1k", crop_pct=crop_pct, interpolation="bilinear",
                  license="mobileone-license", top1=in1k[0], top5=in1k[1])
    return dict(cfg=cfg, info=dict(**published, notes=_NOTES, source=source, measured=measured,
                                   reference=reference),
                weights=[weight])


# cfg: the paper's specification table (width multipliers alpha, k) and the S4 SE placement;
# published: train params/MACs (timm cards), deploy params/MACs and top-1 (paper's ImageNet
# table); timm: the reference's own counts; in1k and crop_pct: its weight's top-1/top-5 and crop.
_TABLE = {
    "mobileone_s0": dict(
        cfg=dict(width_multipliers=(0.75, 1.0, 1.0, 2.0), num_conv_branches=4), crop_pct=0.875,
        published=dict(params_m=5.3, macs_g=1.1, params_m_deploy=2.1, macs_g_deploy=0.275,
                       top1=71.4),
        timm=dict(params_m=5.293272, macs_g=1.051935, params_m_deploy=2.078504,
                  macs_g_deploy=0.275110), in1k=(71.398, 89.864)),
    "mobileone_s1": dict(
        cfg=dict(width_multipliers=(1.5, 1.5, 2.0, 2.5)),
        published=dict(params_m=4.8, macs_g=0.8, params_m_deploy=4.8, macs_g_deploy=0.825,
                       top1=75.9),
        timm=dict(params_m=4.825192, macs_g=0.830062, params_m_deploy=4.76484,
                  macs_g_deploy=0.825057), in1k=(75.76, 92.788)),
    "mobileone_s2": dict(
        cfg=dict(width_multipliers=(1.5, 2.0, 2.5, 4.0)),
        published=dict(params_m=7.9, macs_g=1.3, params_m_deploy=7.8, macs_g_deploy=1.299,
                       top1=77.4),
        timm=dict(params_m=7.884648, macs_g=1.304027, params_m_deploy=7.808168,
                  macs_g_deploy=1.298426), in1k=(77.504, 93.664)),
    "mobileone_s3": dict(
        cfg=dict(width_multipliers=(2.0, 2.5, 3.0, 4.0)),
        published=dict(params_m=10.2, macs_g=1.9, params_m_deploy=10.1, macs_g_deploy=1.896,
                       top1=78.1),
        timm=dict(params_m=10.1706, macs_g=1.902113, params_m_deploy=10.078312,
                  macs_g_deploy=1.895791), in1k=(78.002, 93.864)),
    "mobileone_s4": dict(
        cfg=dict(width_multipliers=(3.0, 3.5, 3.5, 4.0), num_se_blocks=(0, 0, 5, 1)),
        # With random weights at 64x64 (2x2 final maps) timm's own float32 output is 0.62 off
        # its float64 output (logits ~49): too ill-conditioned to compare; at 224x224 it is
        # 3.6e-6 (logits ~0.5).
        parity_input_size=(3, 224, 224),
        published=dict(params_m=15.0, macs_g=3.0, params_m_deploy=14.8, macs_g_deploy=2.978,
                       top1=79.4),
        timm=dict(params_m=14.951248, macs_g=2.986802, params_m_deploy=14.838352,
                  macs_g_deploy=2.97927), in1k=(79.446, 94.49)),
}
VARIANTS = {name: _variant(name, **row) for name, row in _TABLE.items()}

register_models(
    family="mobileone",
    builder=MobileOne,
    variants=VARIANTS,
    paper="MobileOne: An Improved One millisecond Mobile Backbone (CVPR 2023)",
    arxiv="2206.04040",
    # deploy_check_input_size: with random weights and BN calibrated on one random batch the
    # 64x64 logits reach 10-420 and float32 itself is then off by more than a 1e-4-relative band
    # (S4: float32 vs float64 eager differ by 2.9), so deploy checks (zoo_check) run at 224x224.
    defaults=dict(test_input_size=(3, 64, 64), deploy_check_input_size=(3, 224, 224)),
    key_maps={"timm": _from_timm},
)
