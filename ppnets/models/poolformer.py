"""PoolFormer: the MetaFormer whose token mixer is plain average pooling.

Paper: "MetaFormer Is Actually What You Need for Vision", Yu et al., CVPR 2022, arXiv:2111.11418.
Official repo: sail-sg/poolformer. Reference for parity: timm ``poolformer_s12/s24/s36``, which
timm implements with the generic MetaFormer of ``timm/models/metaformer.py``; parameter names
follow that layout (``stem.conv``, ``stages.N.downsample.conv``, ``stages.N.blocks.M.{norm1,
token_mixer, layer_scale1, norm2, mlp.fc1, mlp.fc2, layer_scale2}``, ``head.norm``, ``head.fc``).

Structure: 7x7 stride-4 conv stem (padding 2), four stages with a 3x3 stride-2 conv downsampling
in front of stages 2-4, blocks ``x + ls1 * (avgpool3x3(n) - n)`` with ``n = GroupNorm1(x)``
(pooling stride 1, padding 1, padding excluded from the average) and
``x + ls2 * mlp(GroupNorm1(x))`` (1x1 conv MLP, ratio 4, GELU), layer scale initialised at 1e-5
(1e-6 for S36, as in the official code), then global average pooling -> LayerNorm over channels
-> linear classifier.

Deviations: none numerically from timm. Note that timm's MetaFormer head normalises *after*
pooling (LayerNorm over channels, eps 1e-6) while the original PoolFormer code applies a
GroupNorm1 to the feature map before pooling; the two are not equal. We follow timm, whose
converted checkpoints are the ones people load. Layer-scale parameters are named ``gamma``
(ppnets' ``LayerScale``) instead of timm's ``scale``; the timm key map renames them. There are no
BatchNorms and no branches: ``reparameterize()`` changes nothing and ``deploy`` is accepted for
the common constructor contract only.

Features (``ppnets.models.features``), timm's MetaFormer: ``feature_info`` is ``stages.0-3`` at
strides 4/8/16/32, NCHW; ``norm`` has nothing to apply (the head's LayerNorm follows pooling),
and pruning the head drops that LayerNorm with it.
"""
from __future__ import annotations

import re
from typing import Sequence

import paddle.nn as nn

from ppnets.layers import DropPath, LayerScale, create_act
from ppnets.registry import TIMM_WEIGHT, register_models

from .base import ImageClassifier, StageFeatures
from .features import FeatureInfo

__all__ = ["PoolFormer"]


class Pooling(nn.Layer):
    """PoolFormer's token mixer: ``avgpool(x) - x``; subtracting the input keeps only the
    neighbourhood information because the block already adds ``x`` through its shortcut."""

    def __init__(self, pool_size: int = 3):
        super().__init__()
        # exclusive=True: padded zeros are not counted in the average (count_include_pad=False)
        self.pool = nn.AvgPool2D(pool_size, stride=1, padding=pool_size // 2, exclusive=True)

    def forward(self, x):
        return self.pool(x) - x


class ConvMlp(nn.Layer):
    """1x1 conv -> act -> dropout -> 1x1 conv -> dropout (a per-pixel MLP on an NCHW map)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv2D(dim, hidden, 1)
        self.act = create_act(act)
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Conv2D(hidden, dim, 1)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def group_norm1(dim: int) -> nn.GroupNorm:
    """GroupNorm with one group: normalises over (C, H, W) per sample, affine per channel."""
    return nn.GroupNorm(num_groups=1, num_channels=dim, epsilon=1e-5)


class PoolFormerBlock(nn.Layer):
    def __init__(self, dim: int, pool_size: int = 3, mlp_ratio: float = 4.0, act: str = "gelu",
                 proj_drop: float = 0.0, drop_path: float = 0.0, layer_scale_init: float = 1e-5):
        super().__init__()
        self.norm1 = group_norm1(dim)
        self.token_mixer = Pooling(pool_size)
        self.layer_scale1 = LayerScale(dim, layer_scale_init, data_format="NCHW")
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = group_norm1(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act=act, drop=proj_drop)
        self.layer_scale2 = LayerScale(dim, layer_scale_init, data_format="NCHW")
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.layer_scale1(self.token_mixer(self.norm1(x))))
        return x + self.drop_path2(self.layer_scale2(self.mlp(self.norm2(x))))


class Downsampling(nn.Layer):
    """3x3 stride-2 conv between stages (timm's ``Downsampling`` without a norm, as PoolFormer)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.conv = nn.Conv2D(in_chs, out_chs, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class PoolFormerStage(nn.Layer):
    def __init__(self, in_chs: int, out_chs: int, depth: int, drop_path_rates: Sequence[float],
                 **block_kwargs):
        super().__init__()
        self.downsample = Downsampling(in_chs, out_chs) if in_chs != out_chs else nn.Identity()
        self.blocks = nn.Sequential(*[PoolFormerBlock(out_chs, drop_path=drop_path_rates[i],
                                                      **block_kwargs) for i in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class PoolNormHead(nn.Layer):
    """Global average pool -> LayerNorm over channels -> dropout -> Linear (timm's MetaFormer
    head)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.norm = nn.LayerNorm(in_features, epsilon=1e-6)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = self.drop(self.norm(x.mean(axis=[2, 3])))
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int):
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()


class PoolFormer(StageFeatures, ImageClassifier):
    """PoolFormer; ``depths``/``dims`` per stage as in the paper's Table 1."""

    def __init__(self, depths: Sequence[int] = (2, 2, 6, 2),
                 dims: Sequence[int] = (64, 128, 320, 512), mlp_ratio: float = 4.0,
                 pool_size: int = 3, layer_scale_init: float = 1e-5, act: str = "gelu",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 proj_drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        if len(depths) != len(dims):
            raise ValueError(f"depths {tuple(depths)} and dims {tuple(dims)} must have one entry "
                             "per stage")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.deploy = deploy  # nothing to fuse; kept for the common constructor contract
        self.stem = nn.Sequential()
        self.stem.add_sublayer("conv", nn.Conv2D(in_chans, dims[0], 7, stride=4, padding=2))
        total = sum(depths)
        # Stochastic depth grows linearly with the block index over the whole network.
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, prev, start = [], dims[0], 0
        for depth, dim in zip(depths, dims):
            stages.append(PoolFormerStage(prev, dim, depth, rates[start:start + depth],
                                          pool_size=pool_size, mlp_ratio=mlp_ratio, act=act,
                                          proj_drop=proj_drop_rate,
                                          layer_scale_init=layer_scale_init))
            prev, start = dim, start + depth
        self.stages = nn.Sequential(*stages)
        self.head = PoolNormHead(dims[-1], num_classes, drop_rate)
        # a stage halves the map when it changes the width (PoolFormerStage's downsampling)
        reductions = [4 * 2 ** sum(a != b for a, b in zip(dims[:i], dims[1:i + 1]))
                      for i in range(len(dims))]
        self.feature_info = FeatureInfo(
            dict(num_chs=dim, reduction=r, module=f"stages.{i}")
            for i, (dim, r) in enumerate(zip(dims, reductions)))

    def forward_features(self, x):
        return self.stages(self.stem(x))


def _from_timm(state: dict) -> dict:
    """timm MetaFormer keys -> ours: only the layer-scale parameter name differs."""
    return {re.sub(r"(layer_scale\d)\.scale$", r"\1.gamma", k): v for k, v in state.items()}


# Paper Table 1 / official README: S12 12M params, 1.8G MACs, 77.2 top-1; S24 21M, 3.4G, 80.3;
# S36 31M, 5.0G, 81.4. The more precise parameter counts (11.9/21.4/30.9 M) are timm's model cards.
# timm's port of the official (Sea AI Lab) weights; top-1/top-5: timm's results table
_WEIGHT = dict(TIMM_WEIGHT, tag="sail_in1k", crop_pct=0.9, interpolation="bicubic")
_COMMON_SOURCE = dict(params_m="timm model card (paper Table 1 rounds to 12/21/31 M)",
                      macs_g="paper Table 1 (MACs)", top1="paper Table 1 (ImageNet-1k, 224)")

VARIANTS = {
    "poolformer_s12": dict(
        cfg=dict(depths=(2, 2, 6, 2), dims=(64, 128, 320, 512), layer_scale_init=1e-5),
        info=dict(params_m=11.9, macs_g=1.8, top1=77.2, source=_COMMON_SOURCE,
                  reference=dict(lib="timm", name="poolformer_s12", input_size=(3, 64, 64))),
        weights=[dict(_WEIGHT, top1=77.238, top5=93.538)]),
    "poolformer_s24": dict(
        cfg=dict(depths=(4, 4, 12, 4), dims=(64, 128, 320, 512), layer_scale_init=1e-5),
        info=dict(params_m=21.4, macs_g=3.4, top1=80.3, source=_COMMON_SOURCE,
                  reference=dict(lib="timm", name="poolformer_s24", input_size=(3, 64, 64))),
        weights=[dict(_WEIGHT, top1=80.294, top5=95.06)]),
    "poolformer_s36": dict(
        cfg=dict(depths=(6, 6, 18, 6), dims=(64, 128, 320, 512), layer_scale_init=1e-6),
        info=dict(params_m=30.9, macs_g=5.0, top1=81.4, source=_COMMON_SOURCE,
                  reference=dict(lib="timm", name="poolformer_s36", input_size=(3, 64, 64))),
        weights=[dict(_WEIGHT, top1=81.428, top5=95.442)]),
}

register_models("poolformer", PoolFormer, VARIANTS,
                paper="MetaFormer Is Actually What You Need for Vision", arxiv="2111.11418",
                defaults=dict(test_input_size=(3, 64, 64)),
                key_maps={"timm": _from_timm})
