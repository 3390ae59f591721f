"""RepViT.

Paper: "RepViT: Revisiting Mobile CNN From ViT Perspective", Wang et al., CVPR 2024,
arXiv:2307.09283. Official code: https://github.com/THU-MIG/RepViT.
Reference implementation used for parity: timm 1.0.31 ``repvit.py`` (``repvit_m0_9`` ...
``repvit_m2_3``, the non-legacy models that load the official M0.9-M2.3 weights).

A MobileNetV3-style CNN restructured like a ViT block: a token mixer (3x3 depthwise conv with a
RepVGG-style structural reparameterization), optional squeeze-excitation (every other block), and
a channel-mixer FFN (1x1 conv-BN expand x2, GELU, 1x1 conv-BN) with a residual connection. An
early-convolution stem (two stride-2 3x3 conv-BN with GELU between), separate downsampling layers
(a block, a stride-2 depthwise conv-BN, a 1x1 conv-BN and an FFN) and a BN-Linear classifier with a
distillation head complete it.

Reparameterization (``reparameterize()``; ``deploy=True`` builds the result):
- token mixer: ``BN(DWConvBN_3x3(x) + DWConv_1x1(x) + x)`` -> one depthwise 3x3 conv with bias;
- every conv-BN folds its BN;
- classifier: both BN-Linear heads fold their BN and are averaged into one Linear (eval output
  is the average of the two heads, so this is exact).

Roadmap knobs (the paper's MobileNetV3 -> RepViT steps, Sec. 3; defaults build RepViT):
``kernel_size`` (3; MobileNetV3 mixes 3x3 and 5x5), ``mlp_ratio`` (2; MobileNetV3's expansion
is larger), ``deep_downsample`` (True: the "deeper downsampling layers" step, a RepViT block
before and an FFN after the stride-2 depthwise + 1x1 conv pair; False keeps only that pair) and
``se_layout`` (``'alternate'``: SE in the 1st, 3rd, 5th ... block of each stage, the paper's
cross-block placement; ``'all'``: every block; ``'none'``: no SE).

Deviations / notes:
- The token mixer follows timm and the released official code (the 1x1 depthwise branch is a plain
  conv with bias and one BN follows the three-branch sum); the "legacy" form with a BN on each
  branch (timm ``repvit_m1/m2/m3``) is not implemented.
- Conv-BN convs are named ``conv`` (timm ``c``) and SE convs ``conv_reduce``/``conv_expand``
  (timm ``fc1``/``fc2``); the timm key map translates.
- ``drop_path_rate`` (stochastic depth on the FFN residuals, linear over depth) is ours; the
  reference has none. Default 0.
- ``reset_classifier`` keeps the model's distillation setting (timm's drops the distillation head
  unless asked); pass ``distillation=`` to the constructor to choose.

Features (:mod:`ppnets.models.features`), as timm: the output of each of the four stages
(strides 4, 8, 16, 32); the stem is not a feature. There is no final norm for ``norm=True``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import paddle.nn as nn

from ppnets.layers import (BNLinear, ConvBN, DropPath, SqueezeExcite, assign, create_act,
                           default_dtype_like, fuse_bn, identity_kernel, make_divisible,
                           pad_1x1_to_kxk, torch_default_init)
from ppnets.models.base import (DistilledHead, ImageClassifier, StageFeatures,
                                flatten_tokens)
from ppnets.models.features import FeatureInfo
from ppnets.registry import DISTILLED_WEIGHT, TIMM_WEIGHT, register_models

__all__ = ["RepViT"]


class RepDWConv(nn.Layer):
    """Token mixer ``BN(DWConvBN_kxk(x) + DWConv_1x1(x) + x)``, fusable into one DW kxk conv.

    The fused conv replaces ``conv`` (a folded :class:`ConvBN`), so the deploy state dict is
    ``conv.conv.weight/bias``.
    """

    def __init__(self, dim: int, kernel_size: int = 3, deploy: bool = False):
        super().__init__()
        self.dim = dim
        self.kernel_size = kernel_size
        self.conv = ConvBN(dim, dim, kernel_size, groups=dim, deploy=deploy)
        if deploy:
            self.conv1 = None
            self.bn = None
        else:
            self.conv1 = nn.Conv2D(dim, dim, 1, groups=dim)
            self.bn = nn.BatchNorm2D(dim)

    def forward(self, x):
        if self.bn is None:
            return self.conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    def reparameterize(self):
        if self.bn is None:
            return
        k = self.kernel_size
        kernel, bias = self.conv.fused_kernel_bias()
        kernel = (kernel.astype(np.float64) + pad_1x1_to_kxk(self.conv1.weight.numpy(), k)
                  + identity_kernel(self.dim, self.dim, k))
        bias = bias.astype(np.float64) + self.conv1.bias.numpy()
        kernel, bias = fuse_bn(kernel, bias, self.bn)
        with default_dtype_like(self.conv1.weight):
            fused = ConvBN(self.dim, self.dim, k, groups=self.dim, deploy=True)
        assign(fused.conv.weight, kernel)
        assign(fused.conv.bias, bias)
        self.conv = fused
        for name in ("conv1", "bn"):
            delattr(self, name)
            setattr(self, name, None)


class ConvFFN(nn.Layer):
    """Channel mixer: 1x1 conv-BN -> act -> 1x1 conv-BN (BN weight 0 at init, as timm)."""

    def __init__(self, dim: int, hidden_dim: int, act="gelu", deploy: bool = False):
        super().__init__()
        self.conv1 = ConvBN(dim, hidden_dim, 1, deploy=deploy)
        self.act = create_act(act)
        self.conv2 = ConvBN(hidden_dim, dim, 1, deploy=deploy, bn_weight_init=0.0)

    def forward(self, x):
        return self.conv2(self.act(self.conv1(x)))


def _se(dim: int) -> SqueezeExcite:
    # timm's SqueezeExcite(dim, 0.25): make_divisible(dim / 4, 8) without the 90% round-up rule
    return SqueezeExcite(dim, rd_channels=make_divisible(dim * 0.25, 8, round_limit=0.0))


class RepViTBlock(nn.Layer):
    """token mixer -> SE (optional) -> x + FFN(x)."""

    def __init__(self, dim: int, mlp_ratio: float = 2.0, kernel_size: int = 3,
                 use_se: bool = False, act="gelu", drop_path_rate: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.token_mixer = RepDWConv(dim, kernel_size, deploy=deploy)
        self.se = _se(dim) if use_se else nn.Identity()
        self.channel_mixer = ConvFFN(dim, int(dim * mlp_ratio), act, deploy=deploy)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x):
        x = self.se(self.token_mixer(x))
        return x + self.drop_path(self.channel_mixer(x))


class RepViTDownsample(nn.Layer):
    """Block -> stride-2 DW conv-BN -> 1x1 conv-BN (channels) -> x + FFN(x); with
    ``deep=False`` only the two convs (no block before, no FFN after)."""

    def __init__(self, in_dim: int, out_dim: int, mlp_ratio: float = 2.0, kernel_size: int = 3,
                 act="gelu", drop_path_rate: float = 0.0, deep: bool = True,
                 deploy: bool = False):
        super().__init__()
        self.pre_block = RepViTBlock(in_dim, mlp_ratio, kernel_size, use_se=False, act=act,
                                     drop_path_rate=drop_path_rate,
                                     deploy=deploy) if deep else None
        self.spatial_downsample = ConvBN(in_dim, in_dim, kernel_size, stride=2, groups=in_dim,
                                         deploy=deploy)
        self.channel_downsample = ConvBN(in_dim, out_dim, 1, deploy=deploy)
        self.ffn = ConvFFN(out_dim, int(out_dim * mlp_ratio), act, deploy=deploy) if deep else None
        self.drop_path = (DropPath(drop_path_rate) if drop_path_rate > 0 and deep
                          else nn.Identity())

    def forward(self, x):
        if self.pre_block is not None:
            x = self.pre_block(x)
        x = self.channel_downsample(self.spatial_downsample(x))
        return x if self.ffn is None else x + self.drop_path(self.ffn(x))


class RepViTStem(nn.Layer):
    """Early convolutions: 3x3 s2 conv-BN -> act -> 3x3 s2 conv-BN (no act after, as timm)."""

    def __init__(self, in_chans: int, out_chs: int, act="gelu", deploy: bool = False):
        super().__init__()
        self.conv1 = ConvBN(in_chans, out_chs // 2, 3, stride=2, deploy=deploy)
        self.act1 = create_act(act)
        self.conv2 = ConvBN(out_chs // 2, out_chs, 3, stride=2, deploy=deploy)

    def forward(self, x):
        return self.conv2(self.act1(self.conv1(x)))


SE_LAYOUTS = ("alternate", "all", "none")


def _has_se(layout: str, index: int) -> bool:
    if layout not in SE_LAYOUTS:
        raise ValueError(f"se_layout must be one of {SE_LAYOUTS}, got {layout!r}: 'alternate' "
                         "(SE in the 1st, 3rd, 5th ... block of a stage, RepViT's), 'all' or "
                         "'none'")
    return layout == "all" or (layout == "alternate" and index % 2 == 0)


class RepViTStage(nn.Layer):
    def __init__(self, in_dim: int, out_dim: int, depth: int, downsample: bool,
                 drop_path_rates: Sequence[float], deep_downsample: bool = True,
                 se_layout: str = "alternate", deploy: bool = False, **block_kw):
        super().__init__()
        rates = list(drop_path_rates)
        if downsample:
            self.downsample = RepViTDownsample(in_dim, out_dim, drop_path_rate=rates.pop(0),
                                               deep=deep_downsample, deploy=deploy, **block_kw)
        else:
            self.downsample = nn.Identity()
        # SE by se_layout; RepViT's: the 1st, 3rd, 5th ... block of every stage
        self.blocks = nn.Sequential(*[
            RepViTBlock(out_dim, use_se=_has_se(se_layout, i), drop_path_rate=rates[i],
                        deploy=deploy, **block_kw) for i in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class RepViTClassifier(DistilledHead, nn.Layer):
    """Pool -> dropout -> BN-Linear head (+ BN-Linear distillation head).

    With distillation, the output is the average of the two heads, in eval and (unless
    ``distilled_training``) in train mode; ``distilled_training`` makes train mode return the
    pair for a distillation loss. ``reparameterize()`` folds the BNs and averages the two heads
    into ``head`` (``head.l``), dropping ``head_dist``.
    """

    def __init__(self, in_features: int, num_classes: int, distillation: bool = True,
                 drop_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        self.in_features = in_features
        # the deploy form has one head: reparameterize() averages the pair into it
        self.distillation = distillation and not deploy
        self.deploy = deploy
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.drop = nn.Dropout(drop_rate)
        self.init_heads(num_classes)

    def new_head(self, num_classes: int) -> nn.Layer:
        layer = BNLinear(self.in_features, num_classes, deploy=self.deploy)
        nn.initializer.TruncatedNormal(std=0.02)(layer.l.weight)
        nn.initializer.Constant(0.0)(layer.l.bias)
        return layer

    def head_features(self, x):
        return self.drop(flatten_tokens(self.pool(x)))

    def forward(self, x, pre_logits: bool = False):
        return self.forward_head(x, pre_logits)

    def reset(self, num_classes: int):
        self.init_heads(num_classes)

    def reparameterize(self):
        if isinstance(self.head, BNLinear):
            self.head.reparameterize()
        if self.head_dist is not None:
            self.head_dist.reparameterize()
            self.head.l.weight.set_value((self.head.l.weight + self.head_dist.l.weight) / 2)
            self.head.l.bias.set_value((self.head.l.bias + self.head_dist.l.bias) / 2)
            delattr(self, "head_dist")
            self.head_dist = None
        self.distillation = False
        self.deploy = True


class RepViT(StageFeatures, ImageClassifier):
    """RepViT M0.9-M2.3.

    Args:
        embed_dims: channels per stage.
        depths: blocks per stage (stages 2-4 are preceded by a downsampling layer).
        mlp_ratio: FFN expansion.
        kernel_size: depthwise kernel of the token mixers and downsampling layers.
        deep_downsample: a block before and an FFN after each downsampling conv pair.
        se_layout: 'alternate' (RepViT's), 'all' or 'none' (see the module docstring).
        distillation: add the distillation head (the released models have it).
        distilled_training: in train mode return (head, head_dist) logits instead of their mean.
    """

    def __init__(self, embed_dims: Sequence[int] = (48, 96, 192, 384),
                 depths: Sequence[int] = (2, 2, 14, 2), mlp_ratio: float = 2.0,
                 kernel_size: int = 3, act="gelu", deep_downsample: bool = True,
                 se_layout: str = "alternate", distillation: bool = True,
                 distilled_training: bool = False, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.deploy = deploy
        self.stem = RepViTStem(in_chans, embed_dims[0], act, deploy=deploy)
        # one rate per residual unit: each downsampling layer counts as one, then the blocks
        units = sum(depths) + len(depths) - 1
        rates = [drop_path_rate * i / max(units - 1, 1) for i in range(units)]
        stages, prev, start = [], embed_dims[0], 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            n = depth + (1 if i > 0 else 0)
            stages.append(RepViTStage(prev, dim, depth, downsample=i > 0,
                                      drop_path_rates=rates[start:start + n],
                                      deep_downsample=deep_downsample, se_layout=se_layout,
                                      deploy=deploy, mlp_ratio=mlp_ratio,
                                      kernel_size=kernel_size, act=act))
            start += n
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.num_features = prev
        self.head = RepViTClassifier(prev, num_classes, distillation, drop_rate, deploy=deploy)
        self.set_distilled_training(distilled_training)
        # the stem reduces by 4, every later stage by 2 more
        self.feature_info = FeatureInfo(
            dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}")
            for i, dim in enumerate(embed_dims))
        torch_default_init(self, layer_types=(nn.Conv2D,))

    def set_distilled_training(self, enable: bool = True):
        self.head.distilled_training = enable

    def get_classifier(self):
        return self.head

    def forward_features(self, x):
        return self.stages(self.stem(x))

def _from_timm(state: dict) -> dict:
    """timm ``repvit_m*`` names -> ours: ConvNorm ``c`` -> ``conv``, SE ``fc1/fc2`` ->
    ``conv_reduce/conv_expand``."""
    out = {}
    for key, value in state.items():
        if key.endswith(".c.weight"):
            key = key[:-len(".c.weight")] + ".conv.weight"
        key = key.replace(".se.fc1.", ".se.conv_reduce.").replace(".se.fc2.", ".se.conv_expand.")
        out[key] = value
    return out


_README = "official THU-MIG/RepViT README table (fused model)"
_BY = "timm 1.0.31 model, conv+linear MAC hook at 224x224 (train form; 'deploy' after " \
      "timm.models.reparameterize_model, i.e. RepVit.fuse())"
_NOTES = ("Published params/MACs are for the fused model with one averaged head; train-time "
          "params (both BN-Linear heads, unfused token mixers) are the timm model cards'. "
          "Train and deploy MACs differ only by the 1x1 branch and BN-Linear. Top-1 is the "
          "300-epoch distilled model (450 epochs: {}).")


# timm's ports of the official distilled weights (300 and 450 epochs)
_WEIGHT = dict(TIMM_WEIGHT, **DISTILLED_WEIGHT, crop_pct=0.95, interpolation="bicubic")


def _variant(name, cfg, published, top1_450e, timm, in1k_300e, in1k_450e):
    source = dict(params_m=f"timm model card {name}.dist_300e_in1k (unfused)",
                  macs_g=_README + " 'MACs'", params_m_deploy=_README + " '#params'",
                  macs_g_deploy=_README + " 'MACs'", top1=_README + " 'Top-1 (300 / 450)'")
    deploy = dict(params_m=timm["params_m_deploy"], macs_g=timm["macs_g_deploy"], by=_BY)
    measured = dict(params_m=timm["params_m"], macs_g=timm["macs_g"], by=_BY, deploy=deploy)
    weights = [dict(_WEIGHT, tag="dist_300e_in1k", top1=in1k_300e[0], top5=in1k_300e[1]),
               dict(_WEIGHT, tag="dist_450e_in1k", top1=in1k_450e[0], top5=in1k_450e[1])]
    return dict(cfg=cfg, info=dict(**published, notes=_NOTES.format(top1_450e), source=source,
                                   measured=measured, reference=dict(lib="timm", name=name)),
                weights=weights)


# cfg: embed dims and depths of the official model definitions; published: train params (timm
# cards), fused params, MACs and 300-epoch top-1 (official README); timm: its own counts;
# in1k_300e/in1k_450e: top-1/top-5 of its two timm weights (TIMM_RESULTS).
_TABLE = {
    "repvit_m0_9": dict(
        cfg=dict(embed_dims=(48, 96, 192, 384), depths=(2, 2, 14, 2)),
        published=dict(params_m=5.5, macs_g=0.8, params_m_deploy=5.1, macs_g_deploy=0.8,
                       top1=78.7), top1_450e=79.1,
        timm=dict(params_m=5.489328, macs_g=0.817281, params_m_deploy=5.067056,
                  macs_g_deploy=0.815617),
        in1k_300e=(78.652, 94.114), in1k_450e=(79.058, 94.388)),
    "repvit_m1_0": dict(
        cfg=dict(embed_dims=(56, 112, 224, 448), depths=(2, 2, 14, 2)),
        published=dict(params_m=7.3, macs_g=1.1, params_m_deploy=6.8, macs_g_deploy=1.1,
                       top1=80.0), top1_450e=80.3,
        timm=dict(params_m=7.302796, macs_g=1.108078, params_m_deploy=6.810312,
                  macs_g_deploy=1.106137),
        in1k_300e=(80.152, 94.77), in1k_450e=(80.43, 94.922)),
    "repvit_m1_1": dict(
        cfg=dict(embed_dims=(64, 128, 256, 512), depths=(2, 2, 12, 2)),
        published=dict(params_m=8.8, macs_g=1.3, params_m_deploy=8.2, macs_g_deploy=1.3,
                       top1=80.7), top1_450e=81.2,
        timm=dict(params_m=8.802912, macs_g=1.339242, params_m_deploy=8.244312,
                  macs_g_deploy=1.337125),
        in1k_300e=(80.826, 95.174), in1k_450e=(81.314, 95.568)),
    "repvit_m1_5": dict(
        cfg=dict(embed_dims=(64, 128, 256, 512), depths=(4, 4, 24, 4)),
        published=dict(params_m=14.6, macs_g=2.3, params_m_deploy=14.0, macs_g_deploy=2.3,
                       top1=82.3), top1_450e=82.5,
        timm=dict(params_m=14.644432, macs_g=2.276968, params_m_deploy=14.049992,
                  macs_g_deploy=2.273596),
        in1k_300e=(82.382, 96.026), in1k_450e=(82.52, 96.112)),
    "repvit_m2_3": dict(
        cfg=dict(embed_dims=(80, 160, 320, 640), depths=(6, 6, 34, 2)),
        published=dict(params_m=23.7, macs_g=4.5, params_m_deploy=22.9, macs_g_deploy=4.5,
                       top1=83.3), top1_450e=83.7,
        timm=dict(params_m=23.688792, macs_g=4.521491, params_m_deploy=22.926792,
                  macs_g_deploy=4.515959),
        in1k_300e=(83.524, 96.532), in1k_450e=(83.746, 96.65)),
}
VARIANTS = {name: _variant(name, **row) for name, row in _TABLE.items()}

register_models(
    family="repvit",
    builder=RepViT,
    variants=VARIANTS,
    paper="RepViT: Revisiting Mobile CNN From ViT Perspective (CVPR 2024)",
    arxiv="2307.09283",
    defaults=dict(test_input_size=(3, 64, 64)),
    key_maps={"timm": _from_timm},
)
