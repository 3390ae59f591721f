"""EfficientFormerV2: a 4D-only MetaFormer with local-attention-augmented FFNs and cheap MHSA.

Paper: "Rethinking Vision Transformers for MobileNet Size and Speed", Li et al., ICCV 2023,
arXiv:2212.08059. Official repo: snap-research/EfficientFormer. Reference for parity: timm
``efficientformerv2_s0/s1/s2/l`` (timm/models/efficientformer_v2.py); parameter names follow
timm's (``stem.conv1.conv``, ``stages.N.downsample.{conv,attn}``, ``stages.N.blocks.M.{token_mixer,
ls1, mlp.fc1, mlp.mid, mlp.fc2, ls2}``, ``norm``, ``head``, ``head_dist``).

Structure (all NCHW): stem of two 3x3 stride-2 conv-BN-GELU; every block has a unified FFN
(1x1 conv-BN-GELU -> 3x3 depthwise conv-BN-GELU -> 1x1 conv-BN) with a per-block expansion
ratio (timm's ``EfficientFormer_expansion_ratios``), and the last ``num_vit`` blocks of stages 3
and 4 add an ``Attention2d`` in front of it: 1x1 conv-BN q/k/v, local value branch (3x3 depthwise
conv-BN on V added to the attention output), talking heads (1x1 convs across heads before and
after the softmax), learned relative-position biases, GELU, 1x1 conv-BN projection. In stage 3
attention works on a stride-2 grid (a 3x3 stride-2 depthwise conv-BN on the input, bilinear
upsampling of the output). The last downsampling is conv-BN + ``Attention2dDownsample`` whose
query is local-global (stride-2 subsample + stride-2 depthwise conv, then 1x1 conv-BN) and whose
value has a stride-2 depthwise local branch. Layer scale (1e-5) on both residual branches.
Final BN, global average pool, ``head`` and distillation ``head_dist`` averaged.

Attention biases are gathered from ``attention_biases`` through non-persistable index buffers,
cached in eval mode (an export gets a constant) and dropped by ``train()``/``eval()``,
``set_state_dict()`` and any train-mode forward (see ``ppnets.layers.attention_bias``). The
bias tables depend on ``img_size`` (default 224, as timm's ``img_size`` argument); another input
size raises an error that names the size to use.

Ablation switches (the paper's Table 1 design steps; the defaults build the published model):
``talking_heads=False`` drops the two head-mixing layers from every ``Attention2d`` (plain
softmax attention); ``attn_stride=False`` runs the stage-3 attention at the stage's full
resolution (no stride-2 depthwise conv in front of q/k/v, no upsampling, bias tables sized for
the full grid: the "attention at higher resolution" step before "stride attention");
``attn_downsample=False`` makes the last downsampling the plain 3x3 stride-2 conv-BN of the
other stages (no local-global-query attention added to it).

Deviations: ``reparameterize()`` folds every conv-BN (stem, downsampling, q/k/v/local/projection,
FFN) into its conv, then each block's layer scales into the 1x1 conv before them (``ls1`` into
``token_mixer.proj``, ``ls2`` into ``mlp.fc2``): the same function with one kernel fewer per
scale in Paddle Inference. The final BN, which follows no conv, stays. timm's entry points set
``drop_path_rate`` 0.02 (S2) and 0.1 (L), the paper's training recipe; here it defaults to 0 like
every ppnets model (pass ``drop_path_rate=...`` to ``create_model`` to train with it).
``get_classifier()`` returns the main head only. Three numerically equivalent rewrites keep the
exported model correct in Paddle Inference's oneDNN CPU path (which gave wrong attention outputs
for the direct forms, Paddle 3.3): the talking heads are a matmul over the head axis with the
1x1 conv's parameters (``TalkingHeads``), the x2 bilinear upsampling is written with slices and
adds (``Upsample2xBilinear``; the exported ``bilinear_interp`` does not run there at all), and the
q/k/v head split reshapes in two steps.

Features (``ppnets.models.features``), timm's: ``feature_info`` is ``stages.0-3`` at strides
4/8/16/32, all NCHW; ``norm=True`` applies the final BN to the last stage's map only (timm's
``forward_intermediates``; timm's ``features_only`` hooks the same stage outputs).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import (ConvBN, DropPath, LayerScale, create_act, fold_layer_scale,
                           init_trunc_normal, known_size, reparameterize_children, to_2tuple)
from ppnets.layers.attention_bias import AttentionBiasCache, AttentionBiasOwner, relative_bias_index
from ppnets.registry import DISTILLED_WEIGHT, TIMM_WEIGHT, register_models

from .base import DistilledHead, ImageClassifier, StageFeatures
from .features import FeatureInfo

__all__ = ["EfficientFormerV2"]


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
             act=None, deploy: bool = False) -> ConvBN:
    """timm's ConvNorm/ConvNormAct: conv with its own bias, BN (eps 1e-5), optional activation."""
    return ConvBN(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2,
                  groups=groups, act=act, bias=True, deploy=deploy)


def _layer_scale(dim: int, init_value: float, deploy: bool) -> nn.Layer:
    """Layer scale on a residual branch; folded into the branch's last conv in the deploy form."""
    return nn.Identity() if deploy else LayerScale(dim, init_value, data_format="NCHW")


def _split_heads(x, num_heads: int, num_tokens: int):
    """(N, heads * d, H, W) -> (N, heads, d, H * W).

    Two reshapes on purpose: flattening the grid first keeps Paddle Inference's oneDNN CPU path
    correct. A single reshape of a conv output straight into heads, followed by transpose and
    matmul, gives wrong attention logits there (Paddle 3.3, checked against dygraph).
    """
    x = paddle.reshape(x, [0, 0, num_tokens])
    return paddle.reshape(x, [0, num_heads, -1, num_tokens])


def _resolution_error(kind: str, expected: Tuple[int, int], got: Tuple[int, int],
                      img_size: Tuple[int, int]) -> ValueError:
    return ValueError(
        f"EfficientFormerV2 {kind} has attention bias tables for a {expected[0]}x{expected[1]} "
        f"grid, i.e. a {img_size[0]}x{img_size[1]} input (the model's img_size); this input "
        f"gives a {got[0]}x{got[1]} grid. Resize the images to {img_size[0]}x{img_size[1]}, or "
        "build the model for your size with create_model(name, img_size=...) (bias tables of "
        "pretrained weights only fit the size they were trained at).")


class Upsample2xBilinear(nn.Layer):
    """x2 bilinear upsampling with half-pixel centres (torch's ``align_corners=False``), written
    with slices, adds and a reshape: Paddle Inference's oneDNN CPU path cannot run the exported
    ``bilinear_interp`` op (its float ``scale`` attribute is unsupported there).

    Output ``2i`` is ``0.75 x[i] + 0.25 x[i-1]``, output ``2i+1`` is ``0.75 x[i] + 0.25 x[i+1]``,
    with the border sample repeated, along H and then W (bilinear is separable).
    """

    def __init__(self, resolution: Tuple[int, int]):
        super().__init__()
        self.resolution = tuple(resolution)

    @staticmethod
    def _along(x, axis: int, size: int, out_shape):
        first = paddle.slice(x, [axis], [0], [1])
        last = paddle.slice(x, [axis], [size - 1], [size])
        before = paddle.concat([first, paddle.slice(x, [axis], [0], [size - 1])], axis=axis)
        after = paddle.concat([paddle.slice(x, [axis], [1], [size]), last], axis=axis)
        even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
        # stack right after `axis` and merge: even and odd samples interleave
        return paddle.reshape(paddle.stack([even, odd], axis=axis + 1), out_shape)

    def forward(self, x):
        h, w = self.resolution
        x = self._along(x, 2, h, [0, 0, 2 * h, w])
        return self._along(x, 3, w, [0, 0, 2 * h, 2 * w])


class TalkingHeads(nn.Layer):
    """A 1x1 conv across the heads of an attention map (N, heads, Nq, Nk), computed as a matmul
    on the head axis. Parameters have the conv's shapes and names (``weight`` [h, h, 1, 1],
    ``bias`` [h]), so timm's ``talking_head1/2`` load as they are.

    Not an ``nn.Conv2D`` because Paddle Inference's oneDNN CPU path returns wrong results when a
    conv output (in oneDNN's blocked layout) feeds the attention matmul (Paddle 3.3, checked
    against dygraph).
    """

    def __init__(self, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        bound = 1.0 / math.sqrt(num_heads)  # the default init of a 1x1 conv with h inputs
        init = nn.initializer.Uniform(-bound, bound)
        self.weight = self.create_parameter([num_heads, num_heads, 1, 1], default_initializer=init)
        self.bias = self.create_parameter([num_heads], is_bias=True, default_initializer=init)

    def forward(self, attn):
        w = paddle.reshape(self.weight, [self.num_heads, self.num_heads])
        mixed = paddle.matmul(attn.transpose([0, 2, 3, 1]), w, transpose_y=True) + self.bias
        return mixed.transpose([0, 3, 1, 2])


class Attention2d(AttentionBiasCache, nn.Layer):
    """MHSA on a 4D map with talking heads, a local value branch and relative-position biases;
    with ``stride`` it attends on a strided grid and upsamples the result back."""

    def __init__(self, dim: int, key_dim: int = 32, num_heads: int = 8, attn_ratio: float = 4,
                 resolution=7, stride: Optional[int] = None, act: str = "gelu",
                 img_size=(224, 224), talking_heads: bool = True, deploy: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.img_size = to_2tuple(img_size)
        resolution = to_2tuple(resolution)
        if stride is not None:
            resolution = tuple(math.ceil(r / stride) for r in resolution)
            self.stride_conv = _conv_bn(dim, dim, 3, stride=stride, groups=dim, deploy=deploy)
            if stride != 2:
                raise ValueError(f"strided attention supports stride 2 (the paper's), got {stride}")
            self.upsample = Upsample2xBilinear(resolution)
        else:
            self.stride_conv = None
            self.upsample = None
        self.resolution = resolution
        self.num_tokens = resolution[0] * resolution[1]
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        key_attn_dim = key_dim * num_heads
        self.q = _conv_bn(dim, key_attn_dim, deploy=deploy)
        self.k = _conv_bn(dim, key_attn_dim, deploy=deploy)
        self.v = _conv_bn(dim, self.val_attn_dim, deploy=deploy)
        self.v_local = _conv_bn(self.val_attn_dim, self.val_attn_dim, 3,
                                groups=self.val_attn_dim, deploy=deploy)
        # "Talking heads": mix the attention maps across heads before and after the softmax.
        self.talking_head1 = TalkingHeads(num_heads) if talking_heads else None
        self.talking_head2 = TalkingHeads(num_heads) if talking_heads else None
        self.act = create_act(act)
        self.proj = _conv_bn(self.val_attn_dim, dim, deploy=deploy)
        self._init_attention_bias(num_heads, self.num_tokens, relative_bias_index(resolution))

    def forward(self, x):
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        h, w = known_size(x.shape[2]), known_size(x.shape[3])
        if h is not None and w is not None and (h, w) != self.resolution:
            raise _resolution_error("attention" + (" (strided)" if self.upsample else ""),
                                    self.resolution, (h, w), self.img_size)
        n = self.num_tokens
        q = _split_heads(self.q(x), self.num_heads, n).transpose([0, 1, 3, 2])
        k = _split_heads(self.k(x), self.num_heads, n)
        v = self.v(x)
        v_local = self.v_local(v)
        v = _split_heads(v, self.num_heads, n).transpose([0, 1, 3, 2])

        attn = paddle.matmul(q, k) * self.scale + self.attention_bias()
        if self.talking_head1 is None:
            attn = F.softmax(attn, axis=-1)
        else:
            attn = self.talking_head2(F.softmax(self.talking_head1(attn), axis=-1))
        x = paddle.matmul(attn, v).transpose([0, 1, 3, 2])
        x = x.reshape([0, self.val_attn_dim, self.resolution[0], self.resolution[1]]) + v_local
        if self.upsample is not None:
            x = self.upsample(x)
        return self.proj(self.act(x))


class LocalGlobalQuery(nn.Layer):
    """Stride-2 query for the downsampling attention: subsampled input (global) plus a stride-2
    3x3 depthwise conv (local), then a 1x1 conv-BN."""

    def __init__(self, in_dim: int, out_dim: int, deploy: bool = False):
        super().__init__()
        self.pool = nn.AvgPool2D(1, stride=2, padding=0)  # a 1x1 pool: plain subsampling
        self.local = nn.Conv2D(in_dim, in_dim, 3, stride=2, padding=1, groups=in_dim)
        self.proj = _conv_bn(in_dim, out_dim, deploy=deploy)

    def forward(self, x):
        return self.proj(self.local(x) + self.pool(x))


class Attention2dDownsample(AttentionBiasCache, nn.Layer):
    """Attention whose queries live on the stride-2 grid: full-resolution keys/values, half-
    resolution output (added to the strided conv of ``Downsample``)."""

    def __init__(self, dim: int, key_dim: int = 16, num_heads: int = 8, attn_ratio: float = 4,
                 resolution=7, out_dim: Optional[int] = None, act: str = "gelu",
                 img_size=(224, 224), deploy: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.img_size = to_2tuple(img_size)
        self.resolution = to_2tuple(resolution)
        self.resolution2 = tuple(math.ceil(r / 2) for r in self.resolution)
        self.num_tokens = self.resolution[0] * self.resolution[1]
        self.num_queries = self.resolution2[0] * self.resolution2[1]
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        key_attn_dim = key_dim * num_heads
        out_dim = out_dim or dim
        self.q = LocalGlobalQuery(dim, key_attn_dim, deploy=deploy)
        self.k = _conv_bn(dim, key_attn_dim, deploy=deploy)
        self.v = _conv_bn(dim, self.val_attn_dim, deploy=deploy)
        self.v_local = _conv_bn(self.val_attn_dim, self.val_attn_dim, 3, stride=2,
                                groups=self.val_attn_dim, deploy=deploy)
        self.act = create_act(act)
        self.proj = _conv_bn(self.val_attn_dim, out_dim, deploy=deploy)
        self._init_attention_bias(num_heads, self.num_tokens,
                                  relative_bias_index(self.resolution, query_step=2))

    def forward(self, x):
        h, w = known_size(x.shape[2]), known_size(x.shape[3])
        if h is not None and w is not None and (h, w) != self.resolution:
            raise _resolution_error("downsampling attention", self.resolution, (h, w),
                                    self.img_size)
        q = _split_heads(self.q(x), self.num_heads, self.num_queries).transpose([0, 1, 3, 2])
        k = _split_heads(self.k(x), self.num_heads, self.num_tokens)
        v = self.v(x)
        v_local = self.v_local(v)
        v = _split_heads(v, self.num_heads, self.num_tokens).transpose([0, 1, 3, 2])

        attn = F.softmax(paddle.matmul(q, k) * self.scale + self.attention_bias(), axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 1, 3, 2])
        x = x.reshape([0, self.val_attn_dim, self.resolution2[0], self.resolution2[1]]) + v_local
        return self.proj(self.act(x))


class Downsample(nn.Layer):
    """3x3 stride-2 conv-BN, plus (last stage) the downsampling attention added to it."""

    def __init__(self, in_chs: int, out_chs: int, resolution=7, use_attn: bool = False,
                 act: str = "gelu", img_size=(224, 224), deploy: bool = False):
        super().__init__()
        self.conv = _conv_bn(in_chs, out_chs, 3, stride=2, deploy=deploy)
        self.attn = Attention2dDownsample(in_chs, out_dim=out_chs, resolution=resolution,
                                          act=act, img_size=img_size,
                                          deploy=deploy) if use_attn else None

    def forward(self, x):
        out = self.conv(x)
        return out if self.attn is None else self.attn(x) + out


class UnifiedFFN(nn.Layer):
    """1x1 conv-BN-act -> 3x3 depthwise conv-BN-act -> 1x1 conv-BN (timm's ConvMlpWithNorm with
    ``mid_conv``)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.fc1 = _conv_bn(dim, hidden, act=act, deploy=deploy)
        self.mid = _conv_bn(hidden, hidden, 3, groups=hidden, act=act, deploy=deploy)
        self.drop1 = nn.Dropout(drop)
        self.fc2 = _conv_bn(hidden, dim, deploy=deploy)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.mid(self.fc1(x)))))


class EfficientFormerV2Block(nn.Layer):
    def __init__(self, dim: int, mlp_ratio: float = 4.0, act: str = "gelu",
                 proj_drop: float = 0.0, drop_path: float = 0.0, layer_scale_init: float = 1e-5,
                 resolution=7, stride: Optional[int] = None, use_attn: bool = True,
                 img_size=(224, 224), talking_heads: bool = True, deploy: bool = False):
        super().__init__()
        if use_attn:
            self.token_mixer = Attention2d(dim, resolution=resolution, act=act, stride=stride,
                                           img_size=img_size, talking_heads=talking_heads,
                                           deploy=deploy)
            self.ls1 = _layer_scale(dim, layer_scale_init, deploy)
            self.drop_path1 = DropPath(drop_path)
        else:
            self.token_mixer = None
        self.mlp = UnifiedFFN(dim, int(dim * mlp_ratio), act=act, drop=proj_drop, deploy=deploy)
        self.ls2 = _layer_scale(dim, layer_scale_init, deploy)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        if self.token_mixer is not None:
            x = x + self.drop_path1(self.ls1(self.token_mixer(x)))
        return x + self.drop_path2(self.ls2(self.mlp(x)))

    def reparameterize(self):
        reparameterize_children(self)
        if self.token_mixer is not None:
            fold_layer_scale(self, "ls1", "token_mixer.proj.conv")
        fold_layer_scale(self, "ls2", "mlp.fc2.conv")


class Stem(nn.Layer):
    """Two 3x3 stride-2 conv-BN-GELU layers: H/4 x W/4."""

    def __init__(self, in_chs: int, out_chs: int, act: str = "gelu", deploy: bool = False):
        super().__init__()
        self.conv1 = _conv_bn(in_chs, out_chs // 2, 3, stride=2, act=act, deploy=deploy)
        self.conv2 = _conv_bn(out_chs // 2, out_chs, 3, stride=2, act=act, deploy=deploy)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class EfficientFormerV2Stage(nn.Layer):
    def __init__(self, in_chs: int, out_chs: int, depth: int, resolution: Tuple[int, int],
                 downsample: bool, downsample_use_attn: bool, block_use_attn: bool,
                 block_stride: Optional[int], num_vit: int, mlp_ratios: Sequence[float],
                 drop_path_rates: Sequence[float], img_size=(224, 224), deploy: bool = False,
                 **block_kwargs):
        super().__init__()
        if downsample:
            self.downsample = Downsample(in_chs, out_chs, resolution=resolution,
                                         use_attn=downsample_use_attn, act=block_kwargs["act"],
                                         img_size=img_size, deploy=deploy)
            resolution = tuple(math.ceil(r / 2) for r in resolution)
        elif in_chs != out_chs:
            raise ValueError(f"a stage without downsampling keeps its width: {in_chs} != {out_chs}")
        else:
            self.downsample = nn.Identity()
        first_attn = depth - num_vit  # attention in the last num_vit blocks
        self.blocks = nn.Sequential(*[EfficientFormerV2Block(
            out_chs, mlp_ratio=mlp_ratios[i], drop_path=drop_path_rates[i],
            resolution=resolution, stride=block_stride,
            use_attn=block_use_attn and i >= first_attn, img_size=img_size, deploy=deploy,
            **block_kwargs) for i in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class EfficientFormerV2(StageFeatures, AttentionBiasOwner, DistilledHead, ImageClassifier):
    """EfficientFormerV2; ``depths``/``dims``/``mlp_ratios`` per stage (a number or one ratio
    per block) and ``num_vit`` (attention blocks at the end of stages 3 and 4).
    ``num_vit_per_stage`` (one count per stage, 0 for stages 1 and 2) replaces ``num_vit`` when
    the two attention stages need different counts, as networks found by the joint search of
    ``ppnets.search`` do. ``talking_heads``, ``attn_stride`` and ``attn_downsample`` switch the
    paper's Table 1 design steps off (see the module docstring)."""

    final_norm_name = "norm"   # BatchNorm over the last stage's map

    def __init__(self, depths: Sequence[int] = (2, 2, 6, 4),
                 dims: Sequence[int] = (32, 48, 96, 176),
                 mlp_ratios: Sequence[Union[float, Sequence[float]]] = (4, 4, 4, 4),
                 num_vit: int = 2, img_size: Union[int, Tuple[int, int]] = 224,
                 layer_scale_init: float = 1e-5, act: str = "gelu", distillation: bool = True,
                 talking_heads: bool = True, attn_stride: bool = True,
                 attn_downsample: bool = True, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, deploy: bool = False,
                 num_vit_per_stage: Optional[Sequence[int]] = None):
        super().__init__()
        if not len(depths) == len(dims) == len(mlp_ratios):
            raise ValueError(f"depths {tuple(depths)}, dims {tuple(dims)} and mlp_ratios need one "
                             "entry per stage")
        if num_vit_per_stage is None:
            num_vit_per_stage = [num_vit if i >= 2 else 0 for i in range(len(depths))]
        elif (len(num_vit_per_stage) != len(depths) or any(num_vit_per_stage[:2])
              or not all(0 <= n <= d for n, d in zip(num_vit_per_stage, depths))):
            raise ValueError(f"num_vit_per_stage {tuple(num_vit_per_stage)}: expected one count "
                             f"per stage of depths {tuple(depths)}, 0 for stages 1 and 2 (no "
                             "attention there) and at most the stage's depth elsewhere")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.deploy = deploy
        self.distillation = distillation
        img_size = to_2tuple(img_size)
        self.stem = Stem(in_chans, dims[0], act=act, deploy=deploy)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, prev, start, stride = [], dims[0], 0, 4
        feature_info = []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            ratios = mlp_ratios[i]
            ratios = tuple(ratios) if isinstance(ratios, (list, tuple)) else (ratios,) * depth
            if len(ratios) != depth:
                raise ValueError(f"stage {i}: {len(ratios)} expansion ratios for {depth} blocks")
            stages.append(EfficientFormerV2Stage(
                prev, dim, depth, resolution=tuple(math.ceil(s / stride) for s in img_size),
                downsample=i > 0, downsample_use_attn=attn_downsample and i >= 3,
                block_use_attn=i >= 2, block_stride=2 if attn_stride and i == 2 else None,
                num_vit=num_vit_per_stage[i], mlp_ratios=ratios,
                drop_path_rates=rates[start:start + depth],
                img_size=img_size, deploy=deploy, act=act, proj_drop=proj_drop_rate,
                layer_scale_init=layer_scale_init, talking_heads=talking_heads))
            stride = stride * 2 if i > 0 else stride
            feature_info.append(dict(num_chs=dim, reduction=stride, module=f"stages.{i}"))
            prev, start = dim, start + depth
        self.stages = nn.Sequential(*stages)
        self.feature_info = FeatureInfo(feature_info)
        self.norm = nn.BatchNorm2D(dims[-1], momentum=0.9, epsilon=1e-5)
        self.head_drop = nn.Dropout(drop_rate)
        self.init_heads(num_classes)
        init_trunc_normal(self)

    def new_head(self, num_classes: int) -> nn.Layer:
        return nn.Linear(self.num_features, num_classes)

    def head_features(self, x):
        return self.head_drop(x.mean(axis=[2, 3]))

    def forward_features(self, x):
        return self.norm(self.stages(self.stem(x)))


def _from_timm(state: dict) -> dict:
    """timm keys are ours; timm's index buffers are non-persistent already, drop any copy."""
    return {k: v for k, v in state.items() if not k.endswith("attention_bias_idxs")}


_REF = dict(lib="timm", input_size=(3, 224, 224))
_SOURCE = dict(params_m="paper Table 1 (also timm's config comments)",
               macs_g="paper Table 1 (GMACs)", top1="paper Table 1 (ImageNet-1k, 224x224)")
_NOTES = ("The paper's parameter counts are 1-3% below the official/timm model (measured: "
          "timm's own count, both heads included; the paper's figure is not reproducible from "
          "the released code, with or without head_dist). MACs: the paper rounds; timm's model "
          "measured with torch's FlopCounterMode (matmul/conv only, FLOPs / 2) equals ours, "
          "1.0% under the paper's 0.40 G for S0.")


# timm's weights (the official distilled ones); top-1/top-5: timm's results table
_WEIGHT = dict(TIMM_WEIGHT, **DISTILLED_WEIGHT, tag="snap_dist_in1k", crop_pct=0.95,
               interpolation="bicubic")


def _info(params_m, macs_g, top1, measured, name, **ref):
    return dict(params_m=params_m, macs_g=macs_g, top1=top1, source=_SOURCE, notes=_NOTES,
                measured=dict(params_m=measured[0], macs_g=measured[1],
                              by=f"timm 1.0.31 {name}: sum of parameter numel; "
                                 "torch.utils.flop_counter.FlopCounterMode at 224x224, / 2"),
                reference=dict(_REF, name=name, **ref))


VARIANTS = {
    "efficientformerv2_s0": dict(
        cfg=dict(depths=(2, 2, 6, 4), dims=(32, 48, 96, 176), num_vit=2,
                 mlp_ratios=(4, 4, (4, 3, 3, 3, 4, 4), (4, 3, 3, 4))),
        info=_info(3.5, 0.40, 75.7, (3.600256, 0.395893), "efficientformerv2_s0"),
        weights=[dict(_WEIGHT, top1=76.102, top5=92.85)]),
    "efficientformerv2_s1": dict(
        cfg=dict(depths=(3, 3, 9, 6), dims=(32, 48, 120, 224), num_vit=2,
                 mlp_ratios=(4, 4, (4, 4, 3, 3, 3, 3, 4, 4, 4), (4, 4, 3, 3, 4, 4))),
        info=_info(6.1, 0.65, 79.0, (6.185560, 0.651970), "efficientformerv2_s1"),
        weights=[dict(_WEIGHT, top1=79.684, top5=94.712)]),
    "efficientformerv2_s2": dict(
        cfg=dict(depths=(4, 4, 12, 8), dims=(32, 64, 144, 288), num_vit=4,
                 mlp_ratios=(4, 4, (4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
                             (4, 4, 3, 3, 3, 3, 4, 4))),
        info=_info(12.6, 1.25, 81.6, (12.710112, 1.246864), "efficientformerv2_s2"),
        weights=[dict(_WEIGHT, top1=82.156, top5=95.912)]),
    "efficientformerv2_l": dict(
        cfg=dict(depths=(5, 5, 15, 10), dims=(40, 80, 192, 384), num_vit=6,
                 mlp_ratios=(4, 4, (4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
                             (4, 4, 4, 3, 3, 3, 3, 4, 4, 4))),
        info=_info(26.1, 2.56, 83.3, (26.322288, 2.552547), "efficientformerv2_l", batch=1),
        weights=[dict(_WEIGHT, top1=83.642, top5=96.546)]),
}

register_models("efficientformerv2", EfficientFormerV2, VARIANTS,
                paper="Rethinking Vision Transformers for MobileNet Size and Speed",
                arxiv="2212.08059",
                defaults=dict(test_input_size=(3, 224, 224)),
                key_maps={"timm": _from_timm})
