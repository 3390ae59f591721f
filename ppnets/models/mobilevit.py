"""MobileViT (v1) XXS / XS / S: MobileNetV2 blocks with "transformers as convolutions".

Paper: "MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer",
Mehta & Rastegari, ICLR 2022, arXiv:2110.02178. Official repo: apple/ml-cvnets. Reference for
parity: timm ``mobilevit_xxs`` / ``mobilevit_xs`` / ``mobilevit_s`` (timm/models/mobilevit.py,
built by timm's ByobNet); parameter names follow timm's, so no key map is needed.

Structure (paper Fig. 1b and the architecture table of Appendix A): 3x3 stride-2 conv-BN-SiLU stem; five stages. Stage 1 is one
MobileNetV2 inverted residual (1x1 expand conv-BN-SiLU, 3x3 depthwise conv-BN-SiLU, 1x1 linear
projection conv-BN; identity shortcut when the shape is kept), stage 2 three of them (first with
stride 2), stages 3-5 one stride-2 inverted residual followed by a MobileViT block: local 3x3
conv-BN-SiLU and a 1x1 conv to the transformer width d, unfold into 2x2 patches (the P=4 pixel
positions become the batch, the N patches the sequence), L pre-norm transformer layers
(LayerNorm, 4-head self-attention, SiLU MLP with ratio 2), LayerNorm, fold back, 1x1 conv-BN-SiLU
to the stage width, concatenation with the block input and a 3x3 conv-BN-SiLU fusion. A final 1x1
conv-BN-SiLU to 320/384/640 channels, global average pooling and a linear classifier.

Input size: any. When a MobileViT block's feature map is not a multiple of the 2x2 patch, it is
resized bilinearly (``align_corners=False``) up to the next multiple before unfolding and back
after folding, as timm and ml-cvnets do; the resize is written as two matrix products with
constant weights (Paddle Inference's oneDNN ``bilinear_interp`` kernel cannot run the exported
op), and those products count as MACs in ``ppnets.analysis`` (none at 256x256, where every map
is a whole number of patches). Unfold/fold are 4D reshapes/transposes only
(no ``flatten``, Paddle Lite friendly); they need the spatial size at trace time, so export with
a static H and W (``InputSpec([None, 3, 256, 256])``).

Deviations: stochastic depth follows timm's per-block linear ramp over the 10 blocks (a MobileViT
block gives its rate to all its transformer layers), but is applied only to residual branches;
timm also applies it to the output of inverted residuals without a shortcut, which would zero the
whole signal of a sample. ``reparameterize()`` folds every conv-BN pair; LayerNorms and the
bias-free 1x1 conv into the transformer stay as they are.

Features (``ppnets.models.features``), timm's ByobNet: ``feature_info`` is ``stages.0-3`` at
strides 2/4/8/16 and ``final_conv`` at 32 (the stem's map is not listed because stage 1 keeps
its stride; ``stage`` counts the stages run, timm's field); all NCHW (the MobileViT blocks fold
their tokens back themselves). ``forward_intermediates`` also takes timm's
``exclude_final_conv`` (the last stage's output as the last map). ``norm`` has nothing to apply.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import ConvBN, DropPath, create_act, dtype_name, make_divisible
from ppnets.registry import TIMM_WEIGHT, register_models

from .base import ClassifierHead, ImageClassifier, NoHead
from .features import FeatureInfo, check_output_fmt, feature_take_indices

__all__ = ["MobileViT", "MobileViTBlock", "InvertedResidual"]


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of a 1D bilinear resize with ``align_corners=False`` (torch's and
    Paddle's half-pixel rule, no antialiasing): ``resize(x) = A_h @ x @ A_w.T`` per channel."""
    scale = n_in / n_out
    a = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(src), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        a[i, i0] += 1.0 - frac
        a[i, i1] += frac
    return a


def resize_bilinear(x, size):
    """Bilinear resize of [B, C, H, W] as two matrix products with constant weights: equal to
    ``F.interpolate(mode="bilinear", align_corners=False)``, but it exports everywhere (Paddle
    Inference's oneDNN ``bilinear_interp`` rejects the op's attributes, Lite needs no extra op)."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    ho, wo = size
    dtype = dtype_name(x)
    a_wt = paddle.to_tensor(bilinear_matrix(w, wo).T.astype(dtype))  # [W, Wo]
    a_ht = paddle.to_tensor(bilinear_matrix(h, ho).T.astype(dtype))  # [H, Ho]
    # Plain 2D products: the broadcast form (A_h @ x @ A_w.T on the 4D map) exported fine alone
    # but gave wrong outputs inside this model under Paddle Inference's oneDNN (paddle 3.3).
    x = paddle.matmul(x.reshape([-1, w]), a_wt).reshape([-1, c, h, wo])
    x = paddle.matmul(x.transpose([0, 1, 3, 2]).reshape([-1, h]), a_ht)  # [B*C*Wo, Ho]
    return x.reshape([-1, c, wo, ho]).transpose([0, 1, 3, 2])


class InvertedResidual(nn.Layer):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection.
    Names follow timm's ByobNet ``BottleneckBlock``."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expansion: float = 4.0,
                 act: str = "silu", drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        mid = make_divisible(in_chs * expansion)
        self.conv1_1x1 = ConvBN(in_chs, mid, 1, act=act, deploy=deploy)
        self.conv2_kxk = ConvBN(mid, mid, 3, stride=stride, groups=mid, act=act, deploy=deploy)
        self.conv3_1x1 = ConvBN(mid, out_chs, 1, deploy=deploy)
        self.has_shortcut = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path if self.has_shortcut else 0.0)

    def forward(self, x):
        out = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return x + self.drop_path(out) if self.has_shortcut else out


class Attention(nn.Layer):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"transformer width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, c = x.shape[1], x.shape[2]
        # [B, N, 3C] -> [B, 3*heads, N, hd]: 4D transposes only (export targets)
        qkv = self.qkv(x).reshape([0, n, 3 * self.num_heads, self.head_dim])
        q, k, v = paddle.split(qkv.transpose([0, 2, 1, 3]), 3, axis=1)
        attn = F.softmax(paddle.matmul(q * self.scale, k, transpose_y=True), axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, n, c])
        return self.proj(x)


class Mlp(nn.Layer):
    def __init__(self, dim: int, hidden: int, act: str = "silu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = create_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TransformerLayer(nn.Layer):
    """Pre-norm transformer layer (LayerNorm eps 1e-5, as torch's default that timm uses)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, act: str = "silu",
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.attn = Attention(dim, num_heads)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class MobileViTBlock(nn.Layer):
    """Local conv -> unfold into patches -> transformer -> fold -> 1x1 conv -> concat with the
    input -> 3x3 fusion conv. Input and output: [B, C, H, W] with C = ``channels``."""

    def __init__(self, channels: int, transformer_dim: int, depth: int, patch_size: int = 2,
                 num_heads: int = 4, mlp_ratio: float = 2.0, act: str = "silu",
                 drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        self.conv_kxk = ConvBN(channels, channels, 3, act=act, deploy=deploy)
        self.conv_1x1 = nn.Conv2D(channels, transformer_dim, 1, bias_attr=False)
        self.transformer = nn.Sequential(*[
            TransformerLayer(transformer_dim, num_heads, mlp_ratio, act, drop_path)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(transformer_dim, epsilon=1e-5)
        self.conv_proj = ConvBN(transformer_dim, channels, 1, act=act, deploy=deploy)
        self.conv_fusion = ConvBN(2 * channels, channels, 3, act=act, deploy=deploy)
        self.patch_size = patch_size

    def _unfold(self, x, nh: int, nw: int):
        """[B, C, nh*p, nw*p] -> [B*P, N, C]; P = p*p pixel positions, N = nh*nw patches."""
        p, c = self.patch_size, x.shape[1]
        x = x.reshape([-1, p, nw, p]).transpose([0, 2, 1, 3])      # [B*C*nh, nw, p, p]
        x = x.reshape([-1, c, nh * nw, p * p]).transpose([0, 3, 2, 1])  # [B, P, N, C]
        return x.reshape([-1, nh * nw, c])

    def _fold(self, x, nh: int, nw: int):
        """Inverse of :meth:`_unfold`: [B*P, N, C] -> [B, C, nh*p, nw*p]."""
        p, c = self.patch_size, x.shape[2]
        x = x.reshape([-1, p * p, nh * nw, c]).transpose([0, 3, 2, 1])  # [B, C, N, P]
        x = x.reshape([-1, nw, p, p]).transpose([0, 2, 1, 3])      # [B*C*nh, p, nw, p]
        return x.reshape([-1, c, nh * p, nw * p])

    def forward(self, x):
        shortcut = x
        x = self.conv_1x1(self.conv_kxk(x))
        h, w = x.shape[2], x.shape[3]
        if h < 0 or w < 0:
            raise ValueError(
                "MobileViT unfolds feature maps into patches with reshapes that need the spatial "
                "size when the graph is traced; export with a static input height and width, "
                "e.g. paddle.static.InputSpec([None, 3, 256, 256]).")
        p = self.patch_size
        nh, nw = math.ceil(h / p), math.ceil(w / p)
        resized = (nh * p, nw * p) != (h, w)
        if resized:  # as timm / ml-cvnets: resize up to whole patches, and back after folding
            x = resize_bilinear(x, (nh * p, nw * p))
        x = self.norm(self.transformer(self._unfold(x, nh, nw)))
        x = self._fold(x, nh, nw)
        if resized:
            x = resize_bilinear(x, (h, w))
        x = self.conv_proj(x)
        return self.conv_fusion(paddle.concat([shortcut, x], axis=1))


class MobileViT(ImageClassifier):
    """MobileViT v1. ``widths`` are the five stage widths, ``mv2_depths`` the inverted residuals
    per stage, ``transformer_dims``/``transformer_depths`` the d and L of the MobileViT blocks that
    end stages 3-5, ``expansion`` the inverted-residual expansion factor (paper Appendix A)."""

    def __init__(self, widths: Sequence[int] = (32, 64, 96, 128, 160),
                 transformer_dims: Sequence[int] = (144, 192, 240),
                 transformer_depths: Sequence[int] = (2, 4, 3),
                 mv2_depths: Sequence[int] = (1, 3, 1, 1, 1), expansion: float = 4.0,
                 stem_chs: int = 16, num_features: int = 640, patch_size: int = 2,
                 num_heads: int = 4, mlp_ratio: float = 2.0, act: str = "silu",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        num_vit = len(transformer_dims)
        if len(widths) != len(mv2_depths) or len(transformer_depths) != num_vit or \
                num_vit > len(widths):
            raise ValueError(
                f"widths and mv2_depths need one entry per stage ({len(widths)} vs "
                f"{len(mv2_depths)}); transformer_dims and transformer_depths one per MobileViT "
                f"block, at most one per stage ({num_vit} vs {len(transformer_depths)})")
        self.num_classes = num_classes
        self.num_features = num_features
        self.deploy = deploy
        self.stem = ConvBN(in_chans, stem_chs, 3, stride=2, act=act, deploy=deploy)
        first_vit = len(widths) - num_vit
        # timm's ramp: one rate per block (a MobileViT block counts as one), linear from 0.
        blocks_per_stage = [d + (i >= first_vit) for i, d in enumerate(mv2_depths)]
        total = sum(blocks_per_stage)
        rates = iter([drop_path_rate * i / max(total - 1, 1) for i in range(total)])
        stages, prev = [], stem_chs
        for i, (width, depth) in enumerate(zip(widths, mv2_depths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(InvertedResidual(prev, width, stride, expansion, act, next(rates),
                                               deploy))
                prev = width
            if i >= first_vit:
                k = i - first_vit
                blocks.append(MobileViTBlock(width, transformer_dims[k], transformer_depths[k],
                                             patch_size, num_heads, mlp_ratio, act, next(rates),
                                             deploy))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_conv = ConvBN(prev, num_features, 1, act=act, deploy=deploy)
        self.head = ClassifierHead(num_features, num_classes, drop_rate)
        # timm's ByobNet list: each stage whose successor downsamples (the stem's map is not
        # listed: stage 1 keeps its stride), then final_conv in place of the last stage.
        # ``stage``: how many stages have run when the map is taken.
        self.feature_info = FeatureInfo(
            [dict(num_chs=width, reduction=2 ** (i + 1), module=f"stages.{i}", stage=i + 1)
             for i, width in enumerate(widths[:-1])]
            + [dict(num_chs=num_features, reduction=2 ** len(widths), module="final_conv",
                    stage=len(widths))])

    def forward_features(self, x):
        return self.final_conv(self.stages(self.stem(x)))

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False,
                              exclude_final_conv: bool = False):
        """The maps of ``feature_info`` taken (NCHW), as timm's ByobNet: the output of stages
        1-4 and, last, of ``final_conv`` (the last stage's output instead with
        ``exclude_final_conv``; then the final features still get ``final_conv``). ``norm`` has
        nothing to apply (no final norm)."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.feature_info), indices)
        stage_ends = [info["stage"] for info in self.feature_info]
        take = [stage_ends[position] for position in taken]
        last_end = stage_ends[-1]
        stages = list(self.stages)[:stage_ends[last]] if stop_early else list(self.stages)
        x = self.stem(x)
        maps = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i + 1 == last_end and not exclude_final_conv:
                x = self.final_conv(x)
            if i + 1 in take:
                maps.append(x)
        if intermediates_only:
            return maps
        if exclude_final_conv and len(stages) == last_end:
            x = self.final_conv(x)
        return x, maps

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the stages after the last map taken, ``final_conv`` unless that map is its
        output, and the head with ``prune_head`` or when ``final_conv`` goes."""
        taken, last = feature_take_indices(len(self.feature_info), indices)
        end = self.feature_info[last]["stage"]
        prune_end = end < self.feature_info[-1]["stage"]
        self.stages = nn.Sequential(*list(self.stages)[:end])
        if prune_end:
            self.final_conv = nn.Identity()
            self.num_features = self.feature_info[last]["num_chs"]
        if prune_head or prune_end:
            self.head, self.num_classes = NoHead(), 0
        return taken


# Paper Appendix A (architecture) and Sec. 4.1 ImageNet-1k results (1.3M / 2.3M / 5.6M params;
# top-1 69.0 / 74.8 / 78.4 at 256x256). The paper gives no MAC counts for the three; the timm model cards give
# 0.4 / 1.1 / 2.0 GMACs at 256x256 (rounded).
_COMMON = dict(
    test_input_size=(3, 64, 64),
    notes="MACs: the paper gives none for MobileViT v1; the published figure is the timm model "
          "card's (rounded to 0.1 G; its 1.1 for XS is above timm's own count). Our count "
          "(conv/linear/matmul MACs at 256x256, the bilinear resizes and LayerNorms count 0) "
          "equals timm's own count in 'measured'. Params: paper rounds 1.272M to 1.3M.")
# timm's port of Apple's CVNets weights: 256x256 inputs in [0, 1].
_WEIGHT = dict(TIMM_WEIGHT, tag="cvnets_in1k", input_size=(3, 256, 256), mean=(0.0, 0.0, 0.0),
               std=(1.0, 1.0, 1.0), crop_pct=0.9, interpolation="bicubic",
               license="cvnets-license")
_BY = ("timm {} at 256x256: parameter count, torch.utils.flop_counter FLOPs / 2 with "
       "TIMM_FUSED_ATTN=0 (the fused attention kernel is not counted by the flop counter)")

VARIANTS = {
    "mobilevit_xxs": dict(
        cfg=dict(widths=(16, 24, 48, 64, 80), transformer_dims=(64, 80, 96),
                 transformer_depths=(2, 4, 3), expansion=2.0, num_features=320),
        info=dict(params_m=1.3, macs_g=0.4, top1=69.0,
                  measured=dict(params_m=1.272, macs_g=0.4074, by=_BY.format("mobilevit_xxs")),
                  source=dict(params_m="MobileViT paper Sec. 4.1 (1.3M); timm card 1.3M",
                              macs_g="timm model card mobilevit_xxs.cvnets_in1k (0.4 GMACs)",
                              top1="MobileViT paper Sec. 4.1 (69.0)"),
                  reference=dict(lib="timm", name="mobilevit_xxs", input_size=(3, 96, 96))),
        weights=[dict(_WEIGHT, top1=68.936, top5=88.942)]),
    "mobilevit_xs": dict(
        cfg=dict(widths=(32, 48, 64, 80, 96), transformer_dims=(96, 120, 144),
                 transformer_depths=(2, 4, 3), expansion=4.0, num_features=384),
        info=dict(params_m=2.3, macs_g=1.1, top1=74.8,
                  measured=dict(params_m=2.318, macs_g=1.0259, by=_BY.format("mobilevit_xs")),
                  source=dict(params_m="MobileViT paper Sec. 4.1 (2.3M); timm card 2.3M",
                              macs_g="timm model card mobilevit_xs.cvnets_in1k (1.1 GMACs)",
                              top1="MobileViT paper Sec. 4.1 (74.8)"),
                  reference=dict(lib="timm", name="mobilevit_xs", input_size=(3, 96, 96))),
        weights=[dict(_WEIGHT, top1=74.618, top5=92.35)]),
    "mobilevit_s": dict(
        cfg=dict(widths=(32, 64, 96, 128, 160), transformer_dims=(144, 192, 240),
                 transformer_depths=(2, 4, 3), expansion=4.0, num_features=640),
        info=dict(params_m=5.6, macs_g=2.0, top1=78.4,
                  measured=dict(params_m=5.579, macs_g=2.0008, by=_BY.format("mobilevit_s")),
                  source=dict(params_m="MobileViT paper Sec. 4.1 (5.6M); timm card 5.6M",
                              macs_g="timm model card mobilevit_s.cvnets_in1k (2.0 GMACs)",
                              top1="MobileViT paper Sec. 4.1 (78.4)"),
                  reference=dict(lib="timm", name="mobilevit_s", input_size=(3, 96, 96))),
        weights=[dict(_WEIGHT, top1=78.298, top5=94.168)]),
}

register_models("mobilevit", MobileViT, VARIANTS,
                paper="MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision "
                      "Transformer",
                arxiv="2110.02178", defaults=_COMMON)
