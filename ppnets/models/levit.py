"""LeViT-256: the hybrid convolution/attention baseline with BatchNorm everywhere.

Paper: "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference", Graham et al.,
ICCV 2021, arXiv:2104.01136. Official repo: facebookresearch/LeViT. Reference for parity: timm
``levit_256`` (timm/models/levit.py, the linear-token ``LevitDistilled``, not ``levit_conv_256``).

Structure: a stride-16 convolutional stem (four 3x3 stride-2 conv-BN, hardswish between them),
then three stages on the flattened 14x14 / 7x7 / 4x4 token grids. A block is a residual attention
(``LinearBN`` qkv projection, per head ``[q | k | v]``, a learned bias per head and relative 2D
offset added to the logits, hardswish, ``LinearBN`` projection) and a residual MLP
(``LinearBN``-hardswish-``LinearBN``, ratio 2). ``LinearBN`` is a bias-free Linear followed by a
BatchNorm1D over all tokens. Between stages an attention downsampling block (queries from the
2x-subsampled grid, keys/values from the full grid, value ratio 4, no residual) is followed by a
residual MLP. The head averages the tokens and feeds two ``BN -> Linear`` classifiers (``head``
and the distillation head ``head_dist``); their logits are averaged.

Attention biases: shared machinery with EfficientFormer
(:class:`ppnets.models.efficientformer.AttentionBiasCache`): the table ``attention_biases``
([heads, kh*kw]) is gathered through a non-persistable index buffer; in eval mode the gathered
bias is cached (not in ``state_dict()``), and the cache is dropped by ``train()``, ``eval()``,
``set_state_dict()`` and any train-mode forward. While ``paddle.jit.save`` traces the model the
bias is gathered from the table through the index embedded as a graph constant (a cached eager
tensor cannot become part of the exported program). The tables are built for a 224x224 input
(14x14 tokens after the stem), as timm fixes the input size; another size raises a clear error.

Reparameterization: every ``LinearBN`` becomes one Linear with a bias, every stem conv-BN one
conv, and each ``BN -> Linear`` head one Linear (:class:`ppnets.layers.BNLinear`). timm's
``fuse`` methods do the same arithmetic.

Initialisation follows timm's: PyTorch's default uniform init for the stem and block
Linear/conv weights (Paddle's Xavier/Kaiming defaults are ~1.7x larger per layer, which
compounds through the residual stream into saturated attention), zero attention biases, zero BN
gamma on the last ``LinearBN`` of each residual branch, truncated-normal (0.02) heads.

Heads: ``forward`` returns the average of the two heads in train mode as well, unless
``set_distilled_training(True)`` (then ``(head, head_dist)`` in train mode), as timm's
``LevitDistilled``. ``get_classifier()`` returns the main head (``head_dist`` is its twin).

Deviations: none in the computation. Parameter names follow timm's except: stem
``convN.linear`` -> ``convN.conv``, attention ``proj.ln`` -> ``proj`` and ``q.ln`` -> ``q``
(the activation / subsampling are not layers here), head ``linear`` -> ``l``; the timm key map
renames them.

Features (``ppnets.models.features``), timm's ``levit_256`` (a getter over
``forward_intermediates``): ``feature_info`` is ``stages.0-2`` at strides 16/32/64, each map the
stage's tokens reshaped to NCHW on its grid (14, 7, 4 at 224); ``norm`` has nothing to apply and
``output_fmt='NLC'`` is refused, as in timm. Pruning drops both heads; a pruned model's
``forward`` returns its last tokens unpooled, as timm's.
"""
from __future__ import annotations

import re
from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import (BNLinear, ConvBN, DropPath, create_act, fuse_linear_bn,
                           torch_default_init)
from ppnets.layers.attention_bias import AttentionBiasCache, AttentionBiasOwner, relative_bias_index
from ppnets.registry import DISTILLED_WEIGHT, TIMM_WEIGHT, register_models

from .base import DistilledHead, ImageClassifier, StageFeatures
from .features import FeatureInfo

__all__ = ["LeViT", "LinearBN"]


class LinearBN(nn.Layer):
    """Bias-free Linear followed by BatchNorm1D over all tokens of [N, L, C] (timm's
    ``LinearNorm``). ``reparameterize()`` folds the BN into a Linear with a bias."""

    def __init__(self, in_features: int, out_features: int, bn_weight_init: float = 1.0,
                 deploy: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias_attr=None if deploy else False)
        if deploy:
            self.bn = nn.Identity()
        else:
            self.bn = nn.BatchNorm1D(out_features, momentum=0.9, epsilon=1e-5)
            nn.initializer.Constant(bn_weight_init)(self.bn.weight)

    def forward(self, x):
        x = self.linear(x)
        if isinstance(self.bn, nn.Identity):
            return x
        n, c = x.shape[1], x.shape[2]
        return paddle.reshape(self.bn(paddle.reshape(x, [-1, c])), [-1, n, c])

    def reparameterize(self):
        if isinstance(self.bn, nn.Identity):
            return
        fused = fuse_linear_bn(self.linear, self.bn)
        self.linear = fused
        self.bn = nn.Identity()


class NormLinear(BNLinear):
    """BN1D -> dropout -> Linear classifier; folds into one Linear like ``BNLinear``."""

    def __init__(self, in_features: int, out_features: int, drop: float = 0.0,
                 deploy: bool = False):
        super().__init__(in_features, out_features, deploy=deploy)
        self.drop = nn.Dropout(drop)
        nn.initializer.TruncatedNormal(std=0.02)(self.l.weight)
        nn.initializer.Constant(0.0)(self.l.bias)

    def forward(self, x):
        return self.l(self.drop(self.bn(x)))


class Stem16(nn.Layer):
    """Four 3x3 stride-2 conv-BN layers with hardswish between them: 224 -> 14."""

    def __init__(self, in_chans: int, out_chs: int, act: str, deploy: bool = False):
        super().__init__()
        chs = [in_chans, out_chs // 8, out_chs // 4, out_chs // 2, out_chs]
        for i in range(4):
            setattr(self, f"conv{i + 1}",
                    ConvBN(chs[i], chs[i + 1], 3, stride=2, padding=1,
                           act=act if i < 3 else None, deploy=deploy))

    def forward(self, x):
        return self.conv4(self.conv3(self.conv2(self.conv1(x))))


class TraceableBiasCache(AttentionBiasCache):
    """The shared eval-mode bias cache, except while ``paddle.jit.save`` traces the model: a cached
    eager tensor is not a parameter of the traced program (export fails), so the bias is gathered
    from ``attention_biases`` through the index embedded as a constant of the graph."""

    def attention_bias(self):
        if paddle.in_dynamic_mode():
            return super().attention_bias()
        heads = self.attention_biases.shape[0]
        nq, nk = self._bias_index.shape
        index = paddle.to_tensor(self._bias_index.reshape(-1))
        return paddle.reshape(paddle.gather(self.attention_biases, index, axis=1), [heads, nq, nk])


class Attention(TraceableBiasCache, nn.Layer):
    """Multi-head attention on a fixed token grid with a learned relative-position bias."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float,
                 resolution: int, act: str, deploy: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        self.qkv = LinearBN(dim, (2 * key_dim + self.val_dim) * num_heads, deploy=deploy)
        self.act = create_act(act)
        self.proj = LinearBN(self.val_attn_dim, dim, bn_weight_init=0.0, deploy=deploy)
        self.num_tokens = resolution * resolution
        self._bias_index = relative_bias_index((resolution, resolution))
        self._init_attention_bias(num_heads, self.num_tokens, self._bias_index)

    def forward(self, x):
        n = x.shape[1]
        qkv = self.qkv(x).reshape([0, n, self.num_heads, -1]).transpose([0, 2, 1, 3])
        q, k, v = paddle.split(qkv, [self.key_dim, self.key_dim, self.val_dim], axis=3)
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale + self.attention_bias()
        attn = F.softmax(attn, axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, n, self.val_attn_dim])
        return self.proj(self.act(x))


class AttentionDownsample(TraceableBiasCache, nn.Layer):
    """Attention whose queries come from every ``stride``-th row/column of the token grid:
    (res x res, in_dim) -> (ceil(res/stride)^2, out_dim). No residual (the shapes change)."""

    def __init__(self, in_dim: int, out_dim: int, key_dim: int, num_heads: int,
                 attn_ratio: float, resolution: int, act: str, stride: int = 2,
                 deploy: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        self.resolution = resolution
        self.stride = stride
        self.kv = LinearBN(in_dim, (key_dim + self.val_dim) * num_heads, deploy=deploy)
        self.q = LinearBN(in_dim, key_dim * num_heads, deploy=deploy)
        self.act = create_act(act)
        self.proj = LinearBN(self.val_attn_dim, out_dim, deploy=deploy)
        self._bias_index = relative_bias_index((resolution, resolution), stride)
        self._init_attention_bias(num_heads, resolution * resolution, self._bias_index)

    def forward(self, x):
        n, c = x.shape[1], x.shape[2]
        kv = self.kv(x).reshape([0, n, self.num_heads, -1]).transpose([0, 2, 1, 3])
        k, v = paddle.split(kv, [self.key_dim, self.val_dim], axis=3)
        r, s = self.resolution, self.stride
        sub = x.reshape([0, r, r, c])[:, ::s, ::s, :].reshape([0, -1, c])
        nq = sub.shape[1]
        q = self.q(sub).reshape([0, nq, self.num_heads, self.key_dim]).transpose([0, 2, 1, 3])
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale + self.attention_bias()
        attn = F.softmax(attn, axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, nq, self.val_attn_dim])
        return self.proj(self.act(x))


class Mlp(nn.Layer):
    """LinearBN -> act -> dropout -> LinearBN (the residual branch of every LeViT block)."""

    def __init__(self, dim: int, hidden: int, act: str, drop: float = 0.0, deploy: bool = False):
        super().__init__()
        self.ln1 = LinearBN(dim, hidden, deploy=deploy)
        self.act = create_act(act)
        self.drop = nn.Dropout(drop)
        self.ln2 = LinearBN(hidden, dim, bn_weight_init=0.0, deploy=deploy)

    def forward(self, x):
        return self.ln2(self.drop(self.act(self.ln1(x))))


class LeViTBlock(nn.Layer):
    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float,
                 mlp_ratio: float, resolution: int, act: str, drop_path: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, attn_ratio, resolution, act, deploy)
        self.drop_path1 = DropPath(drop_path)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act, deploy=deploy)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.attn(x))
        return x + self.drop_path2(self.mlp(x))


class LeViTDownsample(nn.Layer):
    """Attention downsampling then a residual MLP (timm's ``LevitDownsample``)."""

    def __init__(self, in_dim: int, out_dim: int, key_dim: int, resolution: int, act: str,
                 attn_ratio: float = 4.0, mlp_ratio: float = 2.0, drop_path: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.attn_downsample = AttentionDownsample(
            in_dim, out_dim, key_dim, num_heads=in_dim // key_dim, attn_ratio=attn_ratio,
            resolution=resolution, act=act, deploy=deploy)
        self.mlp = Mlp(out_dim, int(out_dim * mlp_ratio), act, deploy=deploy)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = self.attn_downsample(x)
        return x + self.drop_path(self.mlp(x))


class LeViTStage(nn.Layer):
    def __init__(self, in_dim: int, out_dim: int, depth: int, key_dim: int, num_heads: int,
                 attn_ratio: float, mlp_ratio: float, resolution: int, downsample: bool,
                 act: str, drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        if downsample:
            self.downsample = LeViTDownsample(in_dim, out_dim, key_dim, resolution, act,
                                              drop_path=drop_path, deploy=deploy)
            resolution = (resolution - 1) // 2 + 1
        elif in_dim != out_dim:
            raise ValueError(f"a LeViT stage without downsampling keeps its width: "
                             f"{in_dim} != {out_dim}")
        else:
            self.downsample = nn.Identity()
        self.resolution = resolution
        self.blocks = nn.Sequential(*[
            LeViTBlock(out_dim, key_dim, num_heads, attn_ratio, mlp_ratio, resolution, act,
                       drop_path, deploy) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class LeViT(StageFeatures, AttentionBiasOwner, DistilledHead, ImageClassifier):
    """LeViT with the distillation head (timm's ``LevitDistilled``).

    ``embed_dims``, ``num_heads`` and ``depths`` are per stage (paper Table 2 / Appendix A);
    ``key_dim`` is D in the paper. ``img_size`` fixes the token grids of the bias tables.
    """

    def __init__(self, embed_dims: Sequence[int] = (256, 384, 512), key_dim: int = 32,
                 num_heads: Sequence[int] = (4, 6, 8), depths: Sequence[int] = (4, 4, 4),
                 attn_ratio: float = 2.0, mlp_ratio: float = 2.0, act: str = "hardswish",
                 img_size: int = 224, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        if not len(embed_dims) == len(num_heads) == len(depths):
            raise ValueError(f"embed_dims, num_heads and depths need one entry per stage, got "
                             f"{len(embed_dims)}, {len(num_heads)} and {len(depths)}")
        if img_size % 16:
            raise ValueError(f"img_size must be a multiple of 16 (the stem's stride), "
                             f"got {img_size}")
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        self.drop_rate = drop_rate
        self.deploy = deploy
        self.img_size = img_size
        self.grid = img_size // 16
        self.stem = Stem16(in_chans, embed_dims[0], act, deploy=deploy)
        resolution, prev, stages, feature_info = self.grid, embed_dims[0], [], []
        for i, (dim, heads, depth) in enumerate(zip(embed_dims, num_heads, depths)):
            # timm gives every residual branch the full drop_path_rate (no linear ramp).
            stage = LeViTStage(prev, dim, depth, key_dim, heads, attn_ratio, mlp_ratio,
                               resolution, downsample=i > 0, act=act, drop_path=drop_path_rate,
                               deploy=deploy)
            stages.append(stage)
            feature_info.append(dict(num_chs=dim, reduction=16 * 2 ** i, module=f"stages.{i}"))
            resolution, prev = stage.resolution, dim
        self.stages = nn.Sequential(*stages)
        self.feature_info = FeatureInfo(feature_info)
        torch_default_init(self.stem)
        torch_default_init(self.stages)
        self.init_heads(num_classes)

    def new_head(self, num_classes: int) -> nn.Layer:
        return NormLinear(self.num_features, num_classes, drop=self.drop_rate, deploy=self.deploy)

    def head_features(self, x):
        return x.mean(axis=1)

    def forward_features(self, x):
        return self.stages(self.embed(x))

    def stage_map(self, index: int, x):
        """Stage ``index``'s tokens as an NCHW map of its grid (14, 7, 4 at 224), as timm's
        linear-token LeViT. There is no final norm; the final features stay tokens [N, L, C]."""
        r = self.stages[index].resolution
        return paddle.reshape(x.transpose([0, 2, 1]), [0, 0, r, r])

    def embed(self, x):
        """Stem, then its 14x14 (``img_size / 16``) map flattened to tokens [N, L, C]."""
        x = self.stem(x)
        h, w = x.shape[2], x.shape[3]
        # -1: a dynamic size while tracing; the reshapes then check the size at run time.
        if h > 0 and w > 0 and (h, w) != (self.grid, self.grid):
            raise ValueError(
                f"LeViT's attention bias tables cover a {self.grid}x{self.grid} token grid, which "
                f"a {self.img_size}x{self.img_size} input gives; this input gives {h}x{w}. Resize "
                f"or centre-crop the images to {self.img_size}x{self.img_size} (timm's LeViT has "
                "the same fixed input size), or build the model with img_size=<your size>.")
        return paddle.reshape(x, [0, x.shape[1], -1]).transpose([0, 2, 1])


_TIMM_RENAMES = (
    (re.compile(r"^stem\.(conv\d)\.linear\."), r"stem.\1.conv."),
    (re.compile(r"\.proj\.ln\."), ".proj."),
    (re.compile(r"\.q\.ln\."), ".q."),
    (re.compile(r"^(head|head_dist)\.linear\."), r"\1.l."),
)


def _from_timm(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        if key.endswith("attention_bias_idxs"):  # persistent in old checkpoints; ours is rebuilt
            continue
        for pattern, repl in _TIMM_RENAMES:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


# LeViT paper, results table: LeViT-256 has 18.9M params, 1120M FLOPs (counted as multiply-adds)
# and 81.6 top-1 (distilled, 1000 epochs). timm's implementation counts 18.894M / 1.1273 GMACs.
VARIANTS = {
    "levit_256": dict(
        cfg=dict(embed_dims=(256, 384, 512), key_dim=32, num_heads=(4, 6, 8), depths=(4, 4, 4)),
        info=dict(params_m=18.9, macs_g=1.12, top1=81.6,
                  source=dict(params_m="LeViT paper, results table (18.9M)",
                              macs_g="LeViT paper, results table (1120M FLOPs, counted as "
                                     "multiply-adds)",
                              top1="LeViT paper, results table (81.6, distilled)"),
                  measured=dict(params_m=18.894, macs_g=1.1273,
                                by="timm levit_256 at 224x224: parameter count (both heads), "
                                   "torch.utils.flop_counter FLOPs / 2"),
                  notes="Our count (18.894M params, 1.1273 GMACs: conv/linear/matmul incl. "
                        "both heads) equals timm's; the paper's 1120M FLOPs are multiply-adds "
                        "and round the same network.",
                  reference=dict(lib="timm", name="levit_256"),
                  test_input_size=(3, 224, 224)),
        weights=[dict(TIMM_WEIGHT, **DISTILLED_WEIGHT, tag="fb_dist_in1k", crop_pct=0.9,
                      interpolation="bicubic", top1=81.506, top5=95.466)]),
}

register_models("levit", LeViT, VARIANTS,
                paper="LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference",
                arxiv="2104.01136", key_maps={"timm": _from_timm})
