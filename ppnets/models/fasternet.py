"""FasterNet: partial convolution (PConv) + pointwise MLP blocks.

Paper: "Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks", Chen et al., CVPR 2023,
arXiv:2303.03667. Official code: https://github.com/JierunChen/FasterNet (``models/fasternet.py``,
variant hyper-parameters in ``cfg/fasternet_*.yaml``).
Reference for parity: timm ``fasternet_t0`` ... ``fasternet_l`` (``timm/models/fasternet.py``).

Architecture (timm/official, reproduced exactly):

* patch embedding: 4x4 conv, stride 4, no bias -> BN;
* four stages of widths ``embed_dim * 2**i``; stages 2-4 start with a patch merging layer
  (2x2 conv, stride 2, no bias -> BN) that doubles the width;
* block: ``x + drop_path(layer_scale(pw2(act(bn(pw1(pconv(x)))))))`` where ``pconv`` is a 3x3
  conv on the first ``dim // n_div`` channels (n_div=4: a quarter) with the other channels passed
  through untouched, ``pw1`` a 1x1 expansion by ``mlp_ratio`` (2) and ``pw2`` a 1x1 projection;
* head: global average pool -> 1x1 conv (no bias) to ``feature_dim`` (1280) -> act -> dropout ->
  Linear. GELU for T0/T1, ReLU for T2/S/M/L (official cfg files).

PConv forward modes: ``'split_cat'`` (split the channels, convolve the first part, concatenate)
and ``'slicing'`` (convolve a slice and write it back into a copy of the input, the official
inference form). Both compute the same function (tested to 1e-6). The mode is chosen at
construction (``pconv_forward=``) and can be switched with :meth:`FasterNet.set_pconv_forward` or
``reparameterize(pconv_forward='slicing')``.

Deliberate choices / deviations:

* ``reparameterize()`` folds every conv+BN pair (patch embedding, patch merging, the MLP's first
  1x1 conv) but keeps the PConv mode it was built with (``'split_cat'`` by default). The
  ``'slicing'`` form exports with ``paddle.jit.save`` and runs in Paddle Inference, but its slice
  assignment becomes a ``set_value`` op (plus an ``assign`` for the copy), which Paddle Lite
  lacks (the project's deployment notes; no Lite runtime was available to re-check);
  ``split_cat`` exports as ``split`` + ``concat`` (tests/models/test_fasternet.py checks both graphs).
  Pass ``pconv_forward='slicing'`` to ``reparameterize()`` for Paddle Inference-only deployment.
* ``num_features`` is the width of the pre-logits vector (``feature_dim``, 1280), which is what
  ``forward_head(pre_logits=True)`` and a zero-class head return; timm calls that
  ``head_hidden_size`` and uses ``num_features`` for the last stage width (here
  ``stage_dims[-1]``).
* ``drop_path_rate`` in the variant table is the official per-variant value (0 / 0.02 / 0.05 /
  0.1 / 0.2 / 0.3), linearly increasing over all blocks as in the official code.
* ``norm_layer='ln'`` (the paper's "BN vs LN" ablation, Table 7) swaps every BatchNorm (patch
  embedding, patch merging, MLP) for a LayerNorm over the channels of each pixel
  (:class:`LayerNorm2d`, eps 1e-5), held as ``norm`` in a :class:`ConvLN` instead of ``bn`` in a
  ``ConvBN``. LN normalises with per-sample statistics, so it cannot be folded into the conv:
  ``reparameterize()`` folds nothing in such a model (the PConv mode switch still applies) and
  ``deploy=True`` builds the same layers. The default ``'bn'`` is the published FasterNet.
* Weight layouts: ``key_maps`` has ``'timm'`` (timm's state dict) and ``'official'`` (the
  official repo's checkpoints, whose ``stages`` interleave blocks and merging layers:
  ``stages.{2k}`` are the blocks of stage k, ``stages.{2k+1}`` the merging layer in front of stage
  k+1, and the head is ``avgpool_pre_head.1`` (the 1x1 conv) + ``head`` (the Linear)).
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from ppnets.layers import (ConvBN, DropPath, LayerScale, create_act, init_trunc_normal,
                           reparameterize_model)
from ppnets.registry import TIMM_WEIGHT, register_models

from .base import ImageClassifier, StageFeatures, flatten_tokens
from .features import FeatureInfo

__all__ = ["PartialConv", "LayerNorm2d", "ConvLN", "FasterNetBlock", "FasterNetStage",
           "FasterNetHead", "FasterNet"]

PCONV_FORWARD_MODES = ("split_cat", "slicing")
NORM_LAYERS = ("bn", "ln")


def _check_pconv_mode(mode: str) -> str:
    if mode not in PCONV_FORWARD_MODES:
        raise ValueError(f"pconv_forward must be one of {PCONV_FORWARD_MODES}, got {mode!r}: "
                         "'split_cat' for training and any export target, 'slicing' for Paddle "
                         "Inference only (it exports a set_value op that Paddle Lite lacks)")
    return mode


def _check_norm_layer(norm_layer: str) -> str:
    if norm_layer not in NORM_LAYERS:
        raise ValueError(f"norm_layer must be one of {NORM_LAYERS}, got {norm_layer!r}: 'bn' "
                         "(BatchNorm2D, the published FasterNet) or 'ln' (LayerNorm over "
                         "channels, the paper's normalisation ablation)")
    return norm_layer


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map, separately at every pixel."""

    def forward(self, x):
        return super().forward(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


class ConvLN(nn.Layer):
    """Conv2D (no bias) -> :class:`LayerNorm2d` -> activation, the ``norm_layer='ln'`` form of
    ``ConvBN``. Nothing to fold: LN's statistics depend on the input (see the module docstring).
    Parameter names: ``conv.weight``, ``norm.weight``, ``norm.bias``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: Optional[int] = None, act=None):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias_attr=False)
        self.norm = LayerNorm2d(out_channels, epsilon=1e-5)
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


def _conv_norm(norm_layer: str, in_channels: int, out_channels: int, kernel_size: int,
               stride: int = 1, padding: Optional[int] = None, act=None, deploy: bool = False):
    if norm_layer == "ln":
        return ConvLN(in_channels, out_channels, kernel_size, stride, padding, act=act)
    return ConvBN(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  act=act, deploy=deploy)


class PartialConv(nn.Layer):
    """PConv: a 3x3 conv on the first ``dim // n_div`` channels; the rest pass through.

    Costs ``(1 / n_div)**2`` of a full 3x3 conv's MACs. ``forward_mode`` selects how the untouched
    channels are carried (see the module docstring); both give identical outputs.
    """

    def __init__(self, dim: int, n_div: int = 4, forward_mode: str = "split_cat"):
        super().__init__()
        if dim // n_div < 1:
            raise ValueError(f"PartialConv: dim={dim} is too small for n_div={n_div}; "
                             "need at least one convolved channel")
        self.dim_conv = dim // n_div
        self.dim_untouched = dim - self.dim_conv
        self.conv = nn.Conv2D(self.dim_conv, self.dim_conv, 3, padding=1, bias_attr=False)
        self.forward_mode = _check_pconv_mode(forward_mode)

    def set_forward_mode(self, mode: str) -> None:
        self.forward_mode = _check_pconv_mode(mode)

    def forward(self, x):
        # forward_mode is a Python string, so this branch is resolved when tracing for export.
        if self.forward_mode == "slicing":
            out = x.clone()  # keep the block input intact: it is also the residual
            out[:, :self.dim_conv] = self.conv(x[:, :self.dim_conv])
            return out
        x1, x2 = paddle.split(x, [self.dim_conv, self.dim_untouched], axis=1)
        return paddle.concat([self.conv(x1), x2], axis=1)

    def extra_repr(self):
        return f"dim_conv={self.dim_conv}, dim_untouched={self.dim_untouched}, " \
               f"forward_mode={self.forward_mode}"


class FasterNetBlock(nn.Layer):
    """PConv -> 1x1 expand + norm + act -> 1x1 project -> (layer scale) -> drop path, residual."""

    def __init__(self, dim: int, n_div: int = 4, mlp_ratio: float = 2.0, drop_path: float = 0.0,
                 layer_scale_init_value: float = 0.0, act="relu",
                 pconv_forward: str = "split_cat", norm_layer: str = "bn", deploy: bool = False):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.spatial_mixing = PartialConv(dim, n_div, pconv_forward)
        self.mlp_expand = _conv_norm(norm_layer, dim, hidden, 1, act=act, deploy=deploy)
        self.mlp_project = nn.Conv2D(hidden, dim, 1, bias_attr=False)
        self.layer_scale = (LayerScale(dim, layer_scale_init_value, data_format="NCHW")
                            if layer_scale_init_value > 0 else nn.Identity())
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        y = self.mlp_project(self.mlp_expand(self.spatial_mixing(x)))
        return x + self.drop_path(self.layer_scale(y))


class FasterNetStage(nn.Layer):
    """Optional patch merging (k x k conv, stride k -> norm, doubling the width), then blocks."""

    def __init__(self, in_dim: int, dim: int, depth: int, downsample: bool, merge_size: int = 2,
                 drop_paths: Sequence[float] = (), norm_layer: str = "bn", deploy: bool = False,
                 **block_kwargs):
        super().__init__()
        self.downsample = (_conv_norm(norm_layer, in_dim, dim, merge_size, stride=merge_size,
                                      padding=0, deploy=deploy) if downsample else nn.Identity())
        drop_paths = list(drop_paths) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            FasterNetBlock(dim, drop_path=drop_paths[i], norm_layer=norm_layer, deploy=deploy,
                           **block_kwargs)
            for i in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class FasterNetHead(nn.Layer):
    """Global average pool -> 1x1 conv (no bias) to ``hidden_dim`` -> act -> dropout -> Linear.

    The conv runs after pooling, so it costs ``in_features * hidden_dim`` MACs at any input size.
    """

    def __init__(self, in_features: int, hidden_dim: int, num_classes: int, act="relu",
                 drop_rate: float = 0.0):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.conv = nn.Conv2D(in_features, hidden_dim, 1, bias_attr=False)
        self.act = create_act(act)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = flatten_tokens(self.act(self.conv(self.pool(x))))
        x = self.drop(x)
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int):
        self.fc = nn.Linear(self.hidden_dim, num_classes) if num_classes > 0 else nn.Identity()


class FasterNet(StageFeatures, ImageClassifier):
    """FasterNet backbone + classifier (see the module docstring). ``norm_layer``: ``'bn'``
    (published) or ``'ln'`` (the paper's normalisation ablation)."""

    stem_name = "patch_embed"  # the embedding the stages follow

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (1, 2, 8, 2), mlp_ratio: float = 2.0, n_div: int = 4,
                 patch_size: int = 4, merge_size: int = 2, feature_dim: int = 1280, act="relu",
                 layer_scale_init_value: float = 0.0, pconv_forward: str = "split_cat",
                 norm_layer: str = "bn", drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.deploy = deploy
        self.pconv_forward = _check_pconv_mode(pconv_forward)
        self.norm_layer = _check_norm_layer(norm_layer)
        self.stage_dims = [int(embed_dim * 2 ** i) for i in range(len(depths))]
        self.num_features = feature_dim

        self.patch_embed = _conv_norm(norm_layer, in_chans, embed_dim, patch_size,
                                      stride=patch_size, padding=0, deploy=deploy)
        # Stochastic depth grows linearly over all blocks (official rule).
        dpr = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        stages, in_dim, start = [], embed_dim, 0
        for i, (dim, depth) in enumerate(zip(self.stage_dims, depths)):
            stages.append(FasterNetStage(
                in_dim, dim, depth, downsample=i > 0, merge_size=merge_size,
                drop_paths=dpr[start:start + depth], norm_layer=norm_layer, deploy=deploy,
                n_div=n_div,
                mlp_ratio=mlp_ratio, layer_scale_init_value=layer_scale_init_value, act=act,
                pconv_forward=pconv_forward))
            in_dim, start = dim, start + depth
        self.stages = nn.Sequential(*stages)
        self.head = FasterNetHead(self.stage_dims[-1], feature_dim, num_classes, act=act,
                                  drop_rate=drop_rate)
        self.feature_info = FeatureInfo(
            dict(num_chs=dim, reduction=patch_size * merge_size ** i, module=f"stages.{i}")
            for i, dim in enumerate(self.stage_dims))
        # official/timm init: truncated normal (std 0.02) for convs and linears, zero biases
        init_trunc_normal(self, layer_types=(nn.Conv2D, nn.Linear))

    def forward_features(self, x):
        return self.stages(self.patch_embed(x))

    def set_pconv_forward(self, mode: str) -> None:
        """Switch every PConv between ``'split_cat'`` and ``'slicing'`` (same outputs)."""
        self.pconv_forward = _check_pconv_mode(mode)
        for layer in self.sublayers():
            if isinstance(layer, PartialConv):
                layer.set_forward_mode(mode)

    def reparameterize(self, pconv_forward: Optional[str] = None):
        """Fold every BN into its conv (eval mode only, idempotent; a ``norm_layer='ln'`` model
        keeps its LayerNorms). The PConv mode stays as built unless ``pconv_forward`` is given
        ('slicing' only suits Paddle Inference, not Lite)."""
        reparameterize_model(self)
        if pconv_forward is not None:
            self.set_pconv_forward(pconv_forward)
        return self


# --- weight layouts ----------------------------------------------------------------------------

_TIMM_RENAMES = [
    (r"^patch_embed\.proj\.", "patch_embed.conv."),
    (r"^patch_embed\.norm\.", "patch_embed.bn."),
    (r"\.downsample\.reduction\.", ".downsample.conv."),
    (r"\.downsample\.norm\.", ".downsample.bn."),
    (r"\.spatial_mixing\.partial_conv3\.", ".spatial_mixing.conv."),
    (r"\.mlp\.0\.", ".mlp_expand.conv."),
    (r"\.mlp\.1\.", ".mlp_expand.bn."),
    (r"\.mlp\.3\.", ".mlp_project."),
    (r"\.layer_scale$", ".layer_scale.gamma"),
    (r"^conv_head\.", "head.conv."),
    (r"^classifier\.", "head.fc."),
]


def _from_timm(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """timm ``fasternet_*`` state dict -> ours."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _TIMM_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _official_to_timm_key(key: str) -> str:
    match = re.match(r"^stages\.(\d+)\.(.*)$", key)
    if match:
        idx, rest = int(match.group(1)), match.group(2)
        if idx % 2 == 0:  # blocks of stage idx / 2
            return f"stages.{idx // 2}.{rest}"
        return f"stages.{(idx + 1) // 2}.downsample.{rest}"  # merging in front of the next stage
    if key.startswith("avgpool_pre_head.1."):
        return "conv_head." + key[len("avgpool_pre_head.1."):]
    if key.startswith("head."):
        return "classifier." + key[len("head."):]
    return key


def _from_official(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Official JierunChen/FasterNet checkpoint -> ours (via timm's names)."""
    return _from_timm({_official_to_timm_key(k): v for k, v in state.items()})


# --- variants ----------------------------------------------------------------------------------

_PAPER_TABLE = ("paper, appendix Table 8 (arXiv:2303.03667v3; Table 3 rounds differently: "
                "L 93.5M, MACs 1.91/4.56/8.74/15.52G for T2-L); FLOPs there are multiply-adds "
                "(paper footnote 1)")
_PAPER_TOP1 = "paper Table 3 (arXiv:2303.03667v3)"


# timm's published weights (its pretrained_cfg); each variant's in1k = (top-1, top-5) of timm's
# results table (TIMM_RESULTS).
_WEIGHT = dict(TIMM_WEIGHT, crop_pct=1.0, test_crop_pct=0.9, interpolation="bicubic")


def _variant(*, embed_dim, depths, act, drop_path_rate, params_m, macs_g, top1,
             measured_params_m, measured_macs_g, in1k):
    return dict(
        cfg=dict(embed_dim=embed_dim, depths=depths, act=act, drop_path_rate=drop_path_rate),
        weights=[dict(_WEIGHT, tag="in1k", top1=in1k[0], top5=in1k[1])],
        info=dict(params_m=params_m, macs_g=macs_g, top1=top1,
                  measured=dict(params_m=measured_params_m, macs_g=measured_macs_g,
                                by="timm reference, torch.utils.flop_counter at 224x224 "
                                   "(conv + linear MACs), timm 1.0.31 / torch 2.14.1"),
                  source=dict(params_m=_PAPER_TABLE, macs_g=_PAPER_TABLE,
                              top1=_PAPER_TOP1 + "; the official release checkpoints' file "
                                   "names give val_acc1 71.918 / 76.218 / 78.886 / 81.284 / "
                                   "82.962 / 83.506 for T0-L (timm default_cfgs comments)")))


# Paper table (embed_dim, depths, act) + official cfg drop_path_rate; published and exact counts.
_VARIANTS = {
    "fasternet_t0": _variant(embed_dim=40, depths=(1, 2, 8, 2), act="gelu", drop_path_rate=0.0,
                             params_m=3.9, macs_g=0.34, top1=71.9,
                             measured_params_m=3.905500, measured_macs_g=0.335423,
                             in1k=(71.732, 90.074)),
    "fasternet_t1": _variant(embed_dim=64, depths=(1, 2, 8, 2), act="gelu", drop_path_rate=0.02,
                             params_m=7.6, macs_g=0.85, top1=76.2,
                             measured_params_m=7.595368, measured_macs_g=0.850512,
                             in1k=(75.922, 92.808)),
    "fasternet_t2": _variant(embed_dim=96, depths=(1, 2, 8, 2), act="relu", drop_path_rate=0.05,
                             params_m=15.0, macs_g=1.90, top1=78.9,
                             measured_params_m=14.982888, measured_macs_g=1.904335,
                             in1k=(78.738, 94.332)),
    "fasternet_s": _variant(embed_dim=128, depths=(1, 2, 13, 2), act="relu", drop_path_rate=0.1,
                            params_m=31.1, macs_g=4.55, top1=81.3,
                            measured_params_m=31.181032, measured_macs_g=4.549741,
                            in1k=(81.328, 95.678)),
    "fasternet_m": _variant(embed_dim=144, depths=(3, 4, 18, 3), act="relu", drop_path_rate=0.2,
                            params_m=53.5, macs_g=8.72, top1=83.0,
                            measured_params_m=53.521464, measured_macs_g=8.721938,
                            in1k=(82.848, 96.388)),
    "fasternet_l": _variant(embed_dim=192, depths=(3, 4, 18, 3), act="relu", drop_path_rate=0.3,
                            params_m=93.4, macs_g=15.49, top1=83.5,
                            measured_params_m=93.465192, measured_macs_g=15.494384,
                            in1k=(83.516, 96.658)),
}
for _name, _spec in _VARIANTS.items():
    _spec["info"]["reference"] = dict(lib="timm", name=_name, input_size=(3, 64, 64))
_NOTES = ("The network downsamples by 32 (parity and tests use 64x64 inputs). timm's "
          "pretrained_cfg: crop_pct 1.0, test_crop_pct 0.9; the official evaluation uses "
          "test_crop_ratio 0.9. Published params/MACs are rounded; 'measured' holds the exact "
          "timm counts, which ours equal.")
for _name, _spec in _VARIANTS.items():
    _spec["info"]["notes"] = _NOTES
_VARIANTS["fasternet_t0"]["info"]["notes"] += (
    " T0: the published 0.34 GMACs is 0.3354 G rounded, 1.3% above the exact count.")

register_models(
    family="fasternet",
    builder=FasterNet,
    variants=_VARIANTS,
    paper="Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks (CVPR 2023)",
    arxiv="2303.03667",
    defaults=dict(test_input_size=(3, 64, 64)),
    key_maps={"timm": _from_timm, "official": _from_official},
)
