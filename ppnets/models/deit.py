"""DeiT-S: the plain vision transformer baseline of EfficientFormer's latency analysis.

Paper: "Training data-efficient image transformers & distillation through attention",
Touvron et al., ICML 2021, arXiv:2012.12877. Official repo: facebookresearch/deit.
Reference for parity: timm ``deit_small_patch16_224`` (the non-distilled DeiT-S, a ViT-S/16).

Structure: 16x16/16 patch embedding (conv), class token + learned position embedding, 12
pre-norm blocks (LayerNorm eps 1e-6, multi-head self-attention with a fused qkv projection, GELU
MLP with ratio 4), final LayerNorm, linear head on the class token.

Deviations: the position embedding is fixed to the 14x14 grid of a 224x224 input; another input
size raises a clear error instead of being interpolated (timm interpolates only when asked to,
with ``dynamic_img_size``). There is nothing to reparameterize; ``reparameterize()`` is a no-op.

Features (``ppnets.models.features``), timm's VisionTransformer: ``feature_info`` is
``blocks.0-11``, all at stride 16; ``features_only`` takes the last three (``default_out_indices``
(9, 10, 11)). ``forward_intermediates`` drops the class token and returns NCHW maps of the 14x14
grid, or tokens with ``output_fmt='NLC'``; ``norm=True`` applies the final LayerNorm to each;
``return_prefix_tokens`` pairs each with its class token. timm's ``output_dict`` and attention
masks are not offered (a classification ViT has no use for them). Pruning with ``prune_head``
leaves a ``forward`` that returns every token after the final norm, as timm's.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import DropPath
from ppnets.registry import TIMM_WEIGHT, register_models

from .base import ImageClassifier, NoHead
from .features import FeatureInfo, check_output_fmt, feature_take_indices

__all__ = ["VisionTransformer"]


class Attention(nn.Layer):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([0, n, 3, self.num_heads, self.head_dim])
        qkv = qkv.transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.softmax(paddle.matmul(q * self.scale, k, transpose_y=True), axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, n, c])
        return self.proj(x)


class Mlp(nn.Layer):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Layer):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.grid = img_size // patch_size
        self.img_size = img_size
        self.proj = nn.Conv2D(in_chans, dim, patch_size, stride=patch_size)

    def forward(self, x):
        if x.shape[2] != self.img_size or x.shape[3] != self.img_size:
            raise ValueError(
                f"this DeiT has a position embedding for {self.img_size}x{self.img_size} inputs "
                f"({self.grid}x{self.grid} patches); got {x.shape[2]}x{x.shape[3]}. Resize the "
                f"input to {self.img_size}, or build the model with img_size=<your size>.")
        x = self.proj(x)  # N, C, H', W'
        return x.reshape([0, x.shape[1], -1]).transpose([0, 2, 1])


class VisionTransformer(ImageClassifier):
    num_prefix_tokens = 1  # the class token

    def __init__(self, img_size: int = 224, patch_size: int = 16, embed_dim: int = 384,
                 depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.deploy = deploy
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.grid ** 2
        init = nn.initializer.TruncatedNormal(std=0.02)
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=init)
        self.pos_embed = self.create_parameter([1, num_patches + 1, embed_dim],
                                               default_initializer=init)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, r) for r in rates])
        self.norm = nn.LayerNorm(embed_dim, epsilon=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = FeatureInfo(
            dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}")
            for i in range(depth))
        # timm's features_only default for a ViT: the last three blocks
        self.default_out_indices = tuple(range(max(depth - 3, 0), depth))

    def _embed(self, x):
        """Patch tokens, the class token in front, plus the position embedding."""
        x = self.patch_embed(x)
        cls = self.cls_token.expand([x.shape[0], -1, -1])
        return paddle.concat([cls, x], axis=1) + self.pos_embed

    def forward_features(self, x):
        return self.norm(self.blocks(self._embed(x)))

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False,
                              return_prefix_tokens: bool = False):
        """The output of each block taken, as timm's VisionTransformer: ``norm`` applies the
        final LayerNorm to every one; the class token is dropped and the patch tokens are an
        NCHW map of the 14x14 grid (``output_fmt='NCHW'``) or stay tokens [N, 196, C]
        (``'NLC'``); ``return_prefix_tokens`` pairs each with its class token [N, 1, C]. The
        final features are the normalised tokens [N, 197, C] of the last block run."""
        check_output_fmt(output_fmt, ("NCHW", "NLC"))
        taken, last = feature_take_indices(len(self.blocks), indices)
        blocks = list(self.blocks)[:last + 1] if stop_early else list(self.blocks)
        x = self._embed(x)
        tokens = []
        for i, block in enumerate(blocks):
            x = block(x)
            if i in taken:
                tokens.append(self.norm(x) if norm else x)
        p, grid = self.num_prefix_tokens, self.patch_embed.grid
        maps = [y[:, p:] for y in tokens]
        if output_fmt == "NCHW":
            maps = [paddle.reshape(y, [0, grid, grid, y.shape[2]]).transpose([0, 3, 1, 2])
                    for y in maps]
        if return_prefix_tokens:
            maps = [(y, t[:, :p]) for y, t in zip(maps, tokens)]
        return maps if intermediates_only else (self.norm(x), maps)

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the blocks after the last one taken, the final norm with ``prune_norm`` and the
        head with ``prune_head`` (then ``forward`` returns all tokens, as timm's)."""
        taken, last = feature_take_indices(len(self.blocks), indices)
        self.blocks = nn.Sequential(*list(self.blocks)[:last + 1])
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.head, self.num_classes = NoHead(), 0
        return taken

    def forward_head(self, x, pre_logits: bool = False):
        if isinstance(self.head, NoHead):  # pruned to a backbone: no token pooling either
            return x
        x = self.head_drop(x[:, 0])
        return x if pre_logits else self.head(x)

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int):
        if isinstance(self.head, NoHead):
            return self.head.reset(num_classes)
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


# DeiT paper Table 1 (DeiT-S: 22M params, 4.6 GFLOPs — FLOPs there are MACs, 79.8 top-1);
# timm's model card: 22.05M params, 4.61 GMACs, 79.86 top-1.
VARIANTS = {
    "deit_small_patch16_224": dict(
        cfg=dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6),
        info=dict(params_m=22.1, macs_g=4.6, top1=79.8,
                  source=dict(params_m="DeiT paper Table 1 (22M); timm card 22.05M",
                              macs_g="DeiT paper Table 1 (4.6 GFLOPs, counted as MACs); "
                                     "timm card 4.61 GMACs",
                              top1="DeiT paper Table 1 (79.8); timm card 79.86"),
                  reference=dict(lib="timm", name="deit_small_patch16_224", batch=1)),
        weights=[dict(TIMM_WEIGHT, tag="fb_in1k", crop_pct=0.9, interpolation="bicubic",
                      top1=79.856, top5=95.056,
                      notes="Not distilled: the distilled DeiT-S is timm's "
                            "deit_small_distilled_patch16_224, another architecture "
                            "(distillation token).")]),
}

register_models("deit", VisionTransformer, VARIANTS,
                paper="Training data-efficient image transformers & distillation through attention",
                arxiv="2012.12877")
