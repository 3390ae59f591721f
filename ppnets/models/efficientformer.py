"""EfficientFormer (V1): a MetaFormer with 4D pooling blocks and a final 3D attention stage.

Paper: "EfficientFormer: Vision Transformers at MobileNet Speed", Li et al., NeurIPS 2022,
arXiv:2206.01191. Official repo: snap-research/EfficientFormer. Reference for parity: timm
``efficientformer_l1/l3/l7`` (timm/models/efficientformer.py); parameter names follow timm's.

Structure: conv stem (two 3x3 stride-2 conv-BN-ReLU), four stages of Meta4D blocks
(``x + ls1 * (avgpool3x3(x) - x)``, ``x + ls2 * convmlp(x)`` with a conv-BN-GELU-conv-BN MLP),
conv-BN stride-2 downsampling between stages; in the last stage the final ``num_vit`` blocks are
Meta3D blocks working on the flattened 7x7 tokens: pre-LayerNorm multi-head self-attention with
a learned attention bias per head and relative offset (``attention_biases[:, idxs]``) and a
pre-LayerNorm Linear-GELU-Linear MLP, each with layer scale. Final LayerNorm, token mean, and two
linear heads (``head`` and the distillation head ``head_dist``) whose outputs are averaged.

Attention biases: the table is gathered through the relative-position index buffer
``attention_bias_idxs`` (non-persistable: not in ``state_dict()``, rebuilt from the geometry). In
eval mode the gathered bias is computed once and cached (so ``paddle.jit.save`` exports it as a
constant and no gather runs at inference); the cache is dropped by ``train()``/``eval()``,
``set_state_dict()`` and any train-mode forward. The tables cover the token grid of the last
stage for the model's ``img_size`` (default 224: 7x7, as timm, which fixes the input size);
``img_size`` (an int or (h, w)) builds the tables for another size, e.g. 64 for CIFAR (2x2
tokens). An input giving another grid raises an error naming the size to use.

Deviations: ``reparameterize()`` folds every conv-BN pair (stem, downsampling, Meta4D MLPs) into
the conv, and every layer scale that follows a linear layer into it (Meta4D ``ls2`` into
``mlp.fc2``; Meta3D ``ls1`` into ``token_mixer.proj`` and ``ls2`` into ``mlp.fc2``): the same
function with fewer ops (Paddle Inference runs each per-channel multiply as its own kernel).
Meta4D ``ls1`` scales ``pool(x) - x`` and stays. ``forward`` returns the average of the two
heads in train mode too, unless ``set_distilled_training(True)`` (then ``(head, head_dist)`` in train mode), as timm.
``get_classifier()`` returns the main head only (``head_dist`` is its twin). The checkpoint's
persistent ``attention_bias_idxs`` buffers are dropped by the timm key map.

Features (``ppnets.models.features``), timm's: ``feature_info`` is ``stages.0-3`` at strides
4/8/16/32; ``forward_intermediates`` returns NCHW maps, the last stage's tokens reshaped to its
``h x w`` grid (7x7 at 224), and ``norm=True`` applies the final LayerNorm to that map only
(it is sized for the last stage); ``output_fmt='NLC'`` is refused, as in timm.
``prune_intermediate_layers`` drops the final norm and both heads with the last stage; a pruned
model's ``forward`` returns its last features unpooled, as timm's.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import (DropPath, LayerScale, create_act, fold_layer_scale, fuse_bn,
                           init_trunc_normal, known_size, new_conv_like, reparameterize_children,
                           to_2tuple)
from ppnets.layers.attention_bias import AttentionBiasCache, AttentionBiasOwner, relative_bias_index
from ppnets.registry import DISTILLED_WEIGHT, TIMM_WEIGHT, register_models

from .base import DistilledHead, ImageClassifier, StageFeatures
from .features import FeatureInfo

__all__ = ["EfficientFormer"]


class FoldBN:
    """Mixin for layers holding ``(conv, bn)`` attribute pairs named in ``_conv_bn_pairs``:
    ``reparameterize()`` folds each BN into its conv (the conv already has a bias) and replaces
    the BN by Identity, so the fused state dict keeps timm's conv names."""

    _conv_bn_pairs: Tuple[Tuple[str, str], ...] = ()

    def reparameterize(self):
        for conv_name, bn_name in self._conv_bn_pairs:
            bn = getattr(self, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            conv = getattr(self, conv_name)
            kernel, bias = fuse_bn(conv.weight, conv.bias, bn)
            setattr(self, conv_name, new_conv_like(conv, kernel, bias))
            setattr(self, bn_name, nn.Identity())


def _bn(channels: int, deploy: bool) -> nn.Layer:
    return nn.Identity() if deploy else nn.BatchNorm2D(channels, momentum=0.9, epsilon=1e-5)


class Stem(FoldBN, nn.Layer):
    """Two 3x3 stride-2 conv-BN-ReLU layers: H/4 x W/4."""

    _conv_bn_pairs = (("conv1", "norm1"), ("conv2", "norm2"))

    def __init__(self, in_chs: int, out_chs: int, deploy: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2D(in_chs, out_chs // 2, 3, stride=2, padding=1)
        self.norm1 = _bn(out_chs // 2, deploy)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2D(out_chs // 2, out_chs, 3, stride=2, padding=1)
        self.norm2 = _bn(out_chs, deploy)
        self.act2 = nn.ReLU()

    def forward(self, x):
        x = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(x)))


class Downsample(FoldBN, nn.Layer):
    """3x3 stride-2 conv + BN between stages."""

    _conv_bn_pairs = (("conv", "norm"),)

    def __init__(self, in_chs: int, out_chs: int, deploy: bool = False):
        super().__init__()
        self.conv = nn.Conv2D(in_chs, out_chs, 3, stride=2, padding=1)
        self.norm = _bn(out_chs, deploy)

    def forward(self, x):
        return self.norm(self.conv(x))


class Pooling(nn.Layer):
    """PoolFormer token mixer ``avgpool3x3(x) - x`` (padding excluded from the average)."""

    def __init__(self, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2D(pool_size, stride=1, padding=pool_size // 2, exclusive=True)

    def forward(self, x):
        return self.pool(x) - x


class ConvMlpBN(FoldBN, nn.Layer):
    """1x1 conv-BN -> GELU -> 1x1 conv-BN, the Meta4D MLP."""

    _conv_bn_pairs = (("fc1", "norm1"), ("fc2", "norm2"))

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.fc1 = nn.Conv2D(dim, hidden, 1)
        self.norm1 = _bn(hidden, deploy)
        self.act = create_act(act)
        self.fc2 = nn.Conv2D(hidden, dim, 1)
        self.norm2 = _bn(dim, deploy)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.norm1(self.fc1(x))))
        return self.drop(self.norm2(self.fc2(x)))


class Meta4D(nn.Layer):
    def __init__(self, dim: int, pool_size: int = 3, mlp_ratio: float = 4.0, act: str = "gelu",
                 proj_drop: float = 0.0, drop_path: float = 0.0, layer_scale_init: float = 1e-5,
                 deploy: bool = False):
        super().__init__()
        self.token_mixer = Pooling(pool_size)
        self.ls1 = LayerScale(dim, layer_scale_init, data_format="NCHW")
        self.drop_path1 = DropPath(drop_path)
        self.mlp = ConvMlpBN(dim, int(dim * mlp_ratio), act=act, drop=proj_drop, deploy=deploy)
        self.ls2 = (nn.Identity() if deploy
                    else LayerScale(dim, layer_scale_init, data_format="NCHW"))
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.token_mixer(x)))
        return x + self.drop_path2(self.ls2(self.mlp(x)))

    def reparameterize(self):
        reparameterize_children(self)
        fold_layer_scale(self, "ls2", "mlp.fc2")


class Flat(nn.Layer):
    """(N, C, H, W) -> (N, H*W, C) tokens for the Meta3D blocks; checks that the grid is the one
    the attention bias tables were built for."""

    def __init__(self, resolution: Tuple[int, int], img_size: Tuple[int, int]):
        super().__init__()
        self.resolution = tuple(resolution)
        self.img_size = to_2tuple(img_size)

    def forward(self, x):
        h, w = known_size(x.shape[2]), known_size(x.shape[3])
        if h is not None and w is not None and (h, w) != self.resolution:
            (rh, rw), (ih, iw) = self.resolution, self.img_size
            raise ValueError(
                f"EfficientFormer's attention bias tables cover a {rh}x{rw} token grid, which a "
                f"{ih}x{iw} input gives (the model's img_size); this input gives a {h}x{w} grid. "
                f"Resize or centre-crop the images to {ih}x{iw}, or build the model for your size "
                "with create_model(name, img_size=...) (bias tables of pretrained weights only "
                "fit the size they were trained at).")
        # The grid size is fixed by the bias tables: an explicit token count keeps the traced
        # shape static even with a dynamic batch.
        tokens = self.resolution[0] * self.resolution[1]
        return paddle.reshape(x, [0, 0, tokens]).transpose([0, 2, 1])


class Attention(AttentionBiasCache, nn.Layer):
    """Multi-head self-attention on tokens with a learned relative-position bias per head."""

    def __init__(self, dim: int, key_dim: int = 32, num_heads: int = 8, attn_ratio: float = 4.0,
                 resolution=7):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        # One projection, laid out per head as [q (key_dim) | k (key_dim) | v (val_dim)].
        self.qkv = nn.Linear(dim, (2 * key_dim + self.val_dim) * num_heads)
        self.proj = nn.Linear(self.val_attn_dim, dim)
        res = to_2tuple(resolution)
        self.num_tokens = res[0] * res[1]
        self._init_attention_bias(num_heads, self.num_tokens, relative_bias_index(res))

    def forward(self, x):
        n = self.num_tokens
        got = known_size(x.shape[1])
        if got is not None and got != n:
            raise ValueError(f"this attention has biases for {n} tokens, got {got}")
        qkv = self.qkv(x).reshape([0, n, self.num_heads, -1]).transpose([0, 2, 1, 3])
        q, k, v = paddle.split(qkv, [self.key_dim, self.key_dim, self.val_dim], axis=3)
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale + self.attention_bias()
        attn = F.softmax(attn, axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, n, self.val_attn_dim])
        return self.proj(x)


class Mlp(nn.Layer):
    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = create_act(act)
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Meta3D(nn.Layer):
    def __init__(self, dim: int, mlp_ratio: float = 4.0, act: str = "gelu",
                 proj_drop: float = 0.0, drop_path: float = 0.0, layer_scale_init: float = 1e-5,
                 resolution=7, deploy: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.token_mixer = Attention(dim, resolution=resolution)
        self.ls1 = nn.Identity() if deploy else LayerScale(dim, layer_scale_init, data_format="NLC")
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act, drop=proj_drop)
        self.ls2 = nn.Identity() if deploy else LayerScale(dim, layer_scale_init, data_format="NLC")
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.token_mixer(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def reparameterize(self):
        fold_layer_scale(self, "ls1", "token_mixer.proj")
        fold_layer_scale(self, "ls2", "mlp.fc2")


class EfficientFormerStage(nn.Layer):
    """Optional downsampling, then blocks; the last ``num_vit`` blocks are Meta3D, preceded by
    a ``Flat`` (it takes a slot in ``blocks``, as in timm, so block indices match)."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, downsample: bool,
                 drop_path_rates: Sequence[float], num_vit: int = 0, resolution=7,
                 img_size=224, pool_size: int = 3, deploy: bool = False, **block_kwargs):
        super().__init__()
        if downsample:
            self.downsample = Downsample(in_chs, out_chs, deploy=deploy)
        elif in_chs != out_chs:
            raise ValueError(f"a stage without downsampling keeps its width: {in_chs} != {out_chs}")
        else:
            self.downsample = nn.Identity()
        first_vit = max(depth - num_vit, 0) if num_vit else depth
        blocks = []
        for i in range(depth):
            if i == first_vit:
                blocks.append(Flat(to_2tuple(resolution), img_size))
            if i >= first_vit:
                blocks.append(Meta3D(out_chs, drop_path=drop_path_rates[i],
                                     resolution=resolution, deploy=deploy, **block_kwargs))
            else:
                blocks.append(Meta4D(out_chs, pool_size=pool_size, drop_path=drop_path_rates[i],
                                     deploy=deploy, **block_kwargs))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(self.downsample(x))


class EfficientFormer(StageFeatures, AttentionBiasOwner, DistilledHead, ImageClassifier):
    """EfficientFormer V1; ``depths``/``dims`` per stage and ``num_vit`` (Meta3D blocks at the
    end of the last stage) as in the paper's Table 1 and the official configs; ``img_size``
    (int or (h, w)) sizes the attention bias tables (the last stage sees ``ceil(img_size / 32)``
    tokens per side)."""

    final_norm_name = "norm"   # LayerNorm over the last stage's tokens

    def __init__(self, depths: Sequence[int] = (3, 2, 6, 4),
                 dims: Sequence[int] = (48, 96, 224, 448), num_vit: int = 1,
                 mlp_ratio: float = 4.0, pool_size: int = 3, layer_scale_init: float = 1e-5,
                 act: str = "gelu", img_size: Union[int, Tuple[int, int]] = 224,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 proj_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        if not 1 <= num_vit:
            raise ValueError(f"num_vit must be >= 1 (the model ends in attention blocks whose "
                             f"tokens are pooled), got {num_vit}")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.deploy = deploy
        img_size = to_2tuple(img_size)
        # tokens of the last stage: five stride-2 3x3 convs (padding 1) give ceil(size / 32);
        # 7x7 at 224 as timm's
        resolution = tuple(math.ceil(s / 32) for s in img_size)
        self.token_grid = resolution
        self.stem = Stem(in_chans, dims[0], deploy=deploy)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, prev, start = [], dims[0], 0
        last = len(depths) - 1
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(EfficientFormerStage(
                prev, dim, depth, downsample=i > 0, drop_path_rates=rates[start:start + depth],
                num_vit=num_vit if i == last else 0, resolution=resolution, img_size=img_size,
                pool_size=pool_size, deploy=deploy, mlp_ratio=mlp_ratio, act=act,
                proj_drop=proj_drop_rate, layer_scale_init=layer_scale_init))
            prev, start = dim, start + depth
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], epsilon=1e-5)
        self.head_drop = nn.Dropout(drop_rate)
        self.init_heads(num_classes)
        self.feature_info = FeatureInfo(
            dict(num_chs=dim, reduction=2 ** (i + 2), module=f"stages.{i}")
            for i, dim in enumerate(dims))
        init_trunc_normal(self)

    def new_head(self, num_classes: int) -> nn.Layer:
        return nn.Linear(self.num_features, num_classes)

    def head_features(self, x):
        return self.head_drop(x.mean(axis=1))

    def forward_features(self, x):
        return self.norm(self.stages(self.stem(x)))

    def stage_map(self, index: int, x):
        """As timm: the 4D stages' maps as they are, the last (3D) stage's tokens [N, h*w, C]
        reshaped to the grid the bias tables fix. The final features stay normalised tokens."""
        if index < len(self.feature_info) - 1:
            return x
        h, w = self.token_grid
        return paddle.reshape(x.transpose([0, 2, 1]), [0, 0, h, w])


def _from_timm(state: dict) -> dict:
    """timm keys are ours; only the (persistent in timm) relative-index buffers are dropped."""
    return {k: v for k, v in state.items() if not k.endswith("attention_bias_idxs")}


_REF = dict(lib="timm", input_size=(3, 224, 224))
# params/MACs: mmpretrain's model zoo for the converted official weights (its "Flops" are MACs),
# equal to timm's counts (both heads included); top-1: the paper (Table 1, ImageNet-1k, 224).
_SOURCE = dict(params_m="mmpretrain EfficientFormer model zoo (official weights); = timm's count",
               macs_g="mmpretrain EfficientFormer model zoo ('Flops', counted as MACs)",
               top1="paper Table 1 (ImageNet-1k, 224x224, distillation)")
_NOTES = ("Parameters include both heads (head, head_dist). Our MACs count convs, linears and "
          "the attention matmuls only (ppnets.analysis), which puts us 0.4-0.7% under the "
          "published MACs.")
# timm's weights (the official distilled ones); top-1/top-5: timm's results table
_WEIGHT = dict(TIMM_WEIGHT, **DISTILLED_WEIGHT, tag="snap_dist_in1k", crop_pct=0.95,
               interpolation="bicubic")

VARIANTS = {
    "efficientformer_l1": dict(
        cfg=dict(depths=(3, 2, 6, 4), dims=(48, 96, 224, 448), num_vit=1),
        info=dict(params_m=12.29, macs_g=1.30, top1=79.2, source=_SOURCE, notes=_NOTES,
                  reference=dict(_REF, name="efficientformer_l1")),
        weights=[dict(_WEIGHT, top1=80.502, top5=94.992)]),
    "efficientformer_l3": dict(
        cfg=dict(depths=(4, 4, 12, 6), dims=(64, 128, 320, 512), num_vit=4),
        info=dict(params_m=31.41, macs_g=3.93, top1=82.4, source=_SOURCE, notes=_NOTES,
                  reference=dict(_REF, name="efficientformer_l3")),
        weights=[dict(_WEIGHT, top1=82.562, top5=96.25)]),
    "efficientformer_l7": dict(
        cfg=dict(depths=(6, 6, 18, 8), dims=(96, 192, 384, 768), num_vit=8),
        info=dict(params_m=82.23, macs_g=10.16, top1=83.3, source=_SOURCE, notes=_NOTES,
                  reference=dict(_REF, name="efficientformer_l7", batch=1)),
        weights=[dict(_WEIGHT, top1=83.396, top5=96.532)]),
}

register_models("efficientformer", EfficientFormer, VARIANTS,
                paper="EfficientFormer: Vision Transformers at MobileNet Speed", arxiv="2206.01191",
                defaults=dict(test_input_size=(3, 224, 224)),
                key_maps={"timm": _from_timm})
