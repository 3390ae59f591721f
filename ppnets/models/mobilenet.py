"""Shared building blocks of the MobileNet V1/V2/V3 families (no registration here).

The three generations are one network template that differs only in its stage table, stem,
activation and head, so they share this module the way timm builds all three from one
EfficientNet-style builder (``timm/models/_efficientnet_builder.py``). Each generation has its own
file with its paper's table and its one ``register_models`` call: ``mobilenetv1.py``,
``mobilenetv2.py``, ``mobilenetv3.py``.

A stage table is a list of stages; a stage is a list of row dicts, each expanded into ``n``
blocks (only the first one strided), exactly like timm's block strings:

* ``block="ds"``: depthwise separable (V1; V2's and V3's first block): dw kxk -> [SE] -> pw 1x1.
  ``pw_act`` puts the activation after the pointwise conv too (V1), ``skip=False`` forbids the
  residual (V1 has none).
* ``block="ir"``: inverted residual with linear bottleneck (V2, V3): pw 1x1 expand (``e`` times the
  block's input width, rounded to a multiple of 8) -> dw kxk -> [SE] -> pw 1x1 linear projection.
* ``block="cn"``: a plain kxk Conv-BN-act (V3's last 1x1 conv before the pool).

Every row takes ``c`` (output channels before the width multiplier), ``k``, ``s``, ``n``, and
optionally ``se`` (squeeze ratio of the SE on the expanded width), ``act`` (overrides the model's
activation).

Width multiplier (``width_mult``, timm's ``channel_multiplier``): every stage width is
``make_divisible(c * width_mult, 8)``; expansion widths are computed from the already rounded input
width, as timm does, so they are not the paper's "exp size" column times the multiplier. Stem and
head rules are per generation and documented in their files.

Parameter names follow timm's leaf names (``blocks.<stage>.<block>.conv_dw`` ...), with each conv
and its BN held by one ``ConvBN`` (``conv_dw.conv``/``conv_dw.bn``) so BN folds for deploy;
:func:`timm_key_map` converts timm state dicts.

Features (``feature_info``, ``forward_intermediates``) follow timm's EfficientNet builder: a
feature is the output of a stage whose successor starts with a stride (or of the last stage), and
the stem's output when the first stage starts with a stride (MobileNetV3-Small). The maps are
those of timm's ``features_only`` models (``EfficientNetFeatures`` / ``MobileNetV3Features``:
stem and stage outputs, so timm's ``blocks.<i>`` names are ours). Only the stem's name differs:
timm's ``bn1`` (its BN + activation after ``conv_stem``) is our ``stem`` (one ``ConvBN``).
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Dict, List, Sequence, Tuple

import paddle.nn as nn

from ppnets.layers import ConvBN, DropPath, SqueezeExcite, create_act, make_divisible
from ppnets.models.base import ClassifierHead, ImageClassifier, NoHead, flatten_tokens
from ppnets.models.features import FeatureInfo, check_output_fmt, feature_take_indices
from ppnets.registry import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD, TIMM_WEIGHT

__all__ = ["DepthwiseSeparable", "InvertedResidual", "ConvBNBlock", "EfficientHead", "MobileNet",
           "timm_key_map", "PARITY_INPUT", "TIMM_MOBILENET_WEIGHT", "TIMM_RA4_WEIGHT"]

# Input of the parity check against timm (info["reference"]["input_size"]): at 64x64 the last maps
# are 2x2, BN statistics calibrated on them by the parity harness push the reference's logits to
# ~20 and float32 noise to ~1e-4; at 96x96 logits stay of order 1 (measured: max |diff| <= 2.1e-5).
PARITY_INPUT = (3, 96, 96)

# The two kinds of timm MobileNet weights the family files list: its older ones (ImageNet
# statistics, crop 0.875, bicubic) and "ra4" (3600 epochs at 224 px, inputs in [-1, 1]; timm also
# evaluates them at 256).
TIMM_MOBILENET_WEIGHT = MappingProxyType(dict(TIMM_WEIGHT, crop_pct=0.875,
                                              interpolation="bicubic"))
TIMM_RA4_WEIGHT = MappingProxyType(dict(
    TIMM_WEIGHT, mean=IMAGENET_INCEPTION_MEAN, std=IMAGENET_INCEPTION_STD,
    interpolation="bicubic", test_input_size=(3, 256, 256)))


def _mobilenet_se(channels: int, ratio: float) -> SqueezeExcite:
    # MobileNetV3's SE: reduce to make_divisible(C * ratio, 8) of the expanded width, ReLU,
    # hard-sigmoid gate relu6(x + 3) / 6 (timm forces ReLU inside the SE whatever the block act).
    return SqueezeExcite(channels, rd_ratio=ratio, rd_divisor=8, act="relu", gate="hard_sigmoid")


class DepthwiseSeparable(nn.Layer):
    """Depthwise kxk Conv-BN-act -> [SE] -> pointwise 1x1 Conv-BN[-act] (+ identity skip).

    MobileNetV1 uses it with ``pw_act=True, skip=False``; MobileNetV2/V3 as their first block with a
    linear pointwise conv and a skip when shapes allow.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 act="relu", pw_act: bool = False, se_ratio: float = 0.0, skip: bool = True,
                 drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.conv_dw = ConvBN(in_chs, in_chs, kernel_size, stride, groups=in_chs, act=act,
                              deploy=deploy)
        self.se = _mobilenet_se(in_chs, se_ratio) if se_ratio else nn.Identity()
        self.conv_pw = ConvBN(in_chs, out_chs, 1, act=act if pw_act else None, deploy=deploy)
        self.drop_path = DropPath(drop_path) if (drop_path and self.has_skip) else nn.Identity()

    def forward(self, x):
        out = self.conv_pw(self.se(self.conv_dw(x)))
        return x + self.drop_path(out) if self.has_skip else out


class InvertedResidual(nn.Layer):
    """pw 1x1 expand Conv-BN-act -> dw kxk Conv-BN-act -> [SE] -> pw 1x1 Conv-BN (linear) (+ skip).

    The residual connects the narrow ends and exists iff stride is 1 and input and output widths
    are equal (MobileNetV2, Sec. 3.3/Fig. 2); the projection has no activation (linear bottleneck).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 exp_ratio: float = 6.0, act="relu6", se_ratio: float = 0.0, skip: bool = True,
                 drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        mid_chs = make_divisible(in_chs * exp_ratio, 8)
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.conv_pw = ConvBN(in_chs, mid_chs, 1, act=act, deploy=deploy)
        self.conv_dw = ConvBN(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, act=act,
                              deploy=deploy)
        self.se = _mobilenet_se(mid_chs, se_ratio) if se_ratio else nn.Identity()
        self.conv_pwl = ConvBN(mid_chs, out_chs, 1, act=None, deploy=deploy)
        self.drop_path = DropPath(drop_path) if (drop_path and self.has_skip) else nn.Identity()

    def forward(self, x):
        out = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return x + self.drop_path(out) if self.has_skip else out


class ConvBNBlock(nn.Layer):
    """A plain kxk Conv-BN-act as a stage of its own (MobileNetV3's final 1x1 conv)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1,
                 act="relu", deploy: bool = False):
        super().__init__()
        self.conv = ConvBN(in_chs, out_chs, kernel_size, stride, act=act, deploy=deploy)

    def forward(self, x):
        return self.conv(x)


class EfficientHead(nn.Layer):
    """MobileNetV3's head: global pool -> 1x1 conv (with bias, no BN) -> act -> dropout -> fc.

    Pooling first makes the wide 1x1 conv cost only C_in x C_hidden MACs (paper Sec. 5.3). The
    1x1 conv on the pooled map is kept a Conv2D (timm's layout), the reshape replaces flatten.
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, act="hard_swish",
                 drop_rate: float = 0.0):
        super().__init__()
        self.hidden = hidden
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.conv_head = nn.Conv2D(in_features, hidden, 1)
        self.act = create_act(act)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = flatten_tokens(self.act(self.conv_head(self.pool(x))))
        x = self.drop(x)
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int):
        self.fc = nn.Linear(self.hidden, num_classes) if num_classes > 0 else nn.Identity()


def _timm_features(stages, stem_chs: int,
                   stage_chs: Sequence[int]) -> Tuple[List[int], FeatureInfo]:
    """timm's EfficientNet builder rule: the stem when the first stage strides, and every stage
    followed by a strided one or last; returns ``(stage ends, feature_info)``, a stage end being
    0 for the stem and s + 1 for stage s."""
    strides = [stage[0]["s"] for stage in stages]
    ends, info, reduction = [], [], 2
    if strides[0] > 1:
        ends.append(0)
        info.append(dict(num_chs=stem_chs, reduction=reduction, module="stem"))
    for s, chs in enumerate(stage_chs):
        reduction *= strides[s]
        if s + 1 == len(stages) or strides[s + 1] > 1:
            ends.append(s + 1)
            info.append(dict(num_chs=chs, reduction=reduction, module=f"blocks.{s}"))
    return ends, FeatureInfo(info)


_BLOCKS = {"ds": DepthwiseSeparable, "ir": InvertedResidual, "cn": ConvBNBlock}
_ROW_KEYS = {"block", "n", "k", "s", "c", "e", "se", "act", "pw_act", "skip"}


class MobileNet(ImageClassifier):
    """Stem Conv-BN-act -> stages of blocks -> [conv head] -> classifier.

    Args:
        stages: the stage table (see the module docstring).
        width_mult: channel multiplier applied to every stage width (timm's
            ``channel_multiplier``).
        stem_chs: stem width before the multiplier; ``fix_stem`` keeps it unscaled.
        act: default activation name (``create_act``), e.g. ``"relu6"`` (clip) or
            ``"hard_swish"``.
        head: ``"none"`` (classifier right after the pool, V1), ``"conv"`` (1x1 Conv-BN-act of
            ``head_chs`` channels before the pool, V2) or ``"efficient"`` (pool before a 1x1 conv
            with bias and ``act``, V3).
        head_chs: width of the head conv (ignored for ``head="none"``).
    """

    def __init__(self, stages: Sequence[Sequence[dict]], width_mult: float = 1.0,
                 stem_chs: int = 32, fix_stem: bool = False, act="relu6", head: str = "none",
                 head_chs: int = 0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        if head not in ("none", "conv", "efficient"):
            raise ValueError(f"head must be 'none', 'conv' or 'efficient', got {head!r}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.num_classes = num_classes
        self.width_mult = width_mult
        self.deploy = deploy

        def round_chs(c):
            return make_divisible(c * width_mult, 8)

        chs = stem_chs if fix_stem else round_chs(stem_chs)
        self.stem = ConvBN(in_chans, chs, 3, stride=2, act=act, deploy=deploy)

        rows = [dict(r) for stage in stages for r in stage]
        for r in rows:
            unknown = set(r) - _ROW_KEYS
            if unknown or r.get("block") not in _BLOCKS:
                raise ValueError(f"bad stage row {r}: block must be one of {sorted(_BLOCKS)} and "
                                 f"keys among {sorted(_ROW_KEYS)}")
        total = sum(r.get("n", 1) for r in rows)
        # timm's stage_ends: feature i is the stem's output (0) or that of blocks[stage_ends[i] - 1]
        self.stage_ends, self.feature_info = _timm_features(
            stages, chs, [round_chs(stage[-1]["c"]) for stage in stages])
        # Stochastic depth grows linearly with the global block index from 0 (timm's rule).
        idx = 0
        built = []
        for stage in stages:
            blocks = []
            for row in stage:
                out_chs = round_chs(row["c"])
                for i in range(row.get("n", 1)):
                    blocks.append(self._make_block(row, chs, out_chs, row["s"] if i == 0 else 1,
                                                   act, drop_path_rate * idx / total, deploy))
                    chs = out_chs
                    idx += 1
            built.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*built)

        if head == "conv":
            self.conv_head = ConvBN(chs, head_chs, 1, act=act, deploy=deploy)
            self.num_features = head_chs
            self.head = ClassifierHead(head_chs, num_classes, drop_rate)
        elif head == "efficient":
            self.conv_head = nn.Identity()
            # pre_logits is the head conv's output, so num_features is its width (timm calls it
            # head_hidden_size and keeps num_features for the last stage's width).
            self.num_features = head_chs
            self.head = EfficientHead(chs, head_chs, num_classes, act=act, drop_rate=drop_rate)
        else:
            self.conv_head = nn.Identity()
            self.num_features = chs
            self.head = ClassifierHead(chs, num_classes, drop_rate)
        self.feature_chs = chs  # channels of the last stage (input of the head)
        self._init_weights()

    @staticmethod
    def _make_block(row, in_chs, out_chs, stride, default_act, drop_path, deploy):
        kind = row["block"]
        act = row.get("act") or default_act
        k = row.get("k", 3)
        if kind == "cn":
            return ConvBNBlock(in_chs, out_chs, k, stride, act=act, deploy=deploy)
        common = dict(kernel_size=k, stride=stride, act=act, se_ratio=row.get("se", 0.0),
                      skip=row.get("skip", True), drop_path=drop_path, deploy=deploy)
        if kind == "ds":
            return DepthwiseSeparable(in_chs, out_chs, pw_act=row.get("pw_act", False), **common)
        return InvertedResidual(in_chs, out_chs, exp_ratio=row["e"], **common)

    def _init_weights(self):
        # The TF MobileNet/EfficientNet initialisation that timm uses: conv weights N(0, 2/fan_out)
        # with fan_out = k*k*C_out/groups, Linear U(-1/sqrt(out), 1/sqrt(out)), zero biases.
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                k = layer.weight.shape
                fan_out = k[0] * k[2] * k[3]  # weight is [C_out, C_in/groups, kh, kw]
                nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_out))(layer.weight)
                if layer.bias is not None:
                    nn.initializer.Constant(0.0)(layer.bias)
            elif isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.weight.shape[1])  # Paddle Linear weight is [in, out]
                nn.initializer.Uniform(-bound, bound)(layer.weight)
                nn.initializer.Constant(0.0)(layer.bias)

    def forward_features(self, x):
        return self.conv_head(self.blocks(self.stem(x)))

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """The stem's and stages' outputs in ``feature_info`` (:mod:`ppnets.models.features`);
        as timm, the final features are the last stage's through the conv head (MobileNetV2)
        when every stage ran, and ``norm`` has nothing to apply (no final norm)."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.feature_info), indices)
        take_ends = [self.stage_ends[i] for i in taken]
        last_end = self.stage_ends[last]
        x = self.stem(x)
        maps = [x] if 0 in take_ends else []
        end = 0
        # no enumerate(start=1): Paddle 3.3 dy2static rejects ``start`` or, in a loop with a
        # break, silently drops it when exporting
        for i, stage in enumerate(self.blocks):
            end = i + 1
            if stop_early and end > last_end:
                break
            x = stage(x)
            if end in take_ends:
                maps.append(x)
        if intermediates_only:
            return maps
        if end == self.stage_ends[-1]:
            x = self.conv_head(x)
        return x, maps

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the stages after the last feature taken and, with ``prune_head`` or when stages
        go, the conv head and the classifier (timm's rule); ``prune_norm`` has no final norm to
        drop."""
        taken, last = feature_take_indices(len(self.feature_info), indices)
        last_end = self.stage_ends[last]
        truncated = last_end < len(self.blocks)
        self.blocks = nn.Sequential(*list(self.blocks)[:last_end])
        if prune_head or truncated:
            self.conv_head = nn.Identity()
            self.head, self.num_classes = NoHead(), 0
            self.num_features = self.feature_chs = self.feature_info[last]["num_chs"]
        return taken


# ---------------------------------------------------------------------------------------------
# timm checkpoint layout -> ours
# ---------------------------------------------------------------------------------------------

# Order of the convs inside each timm block type: timm numbers the BNs bn1, bn2, bn3 in this order.
_TIMM_CONV_ORDER = {"ir": ("conv_pw", "conv_dw", "conv_pwl"), "ds": ("conv_dw", "conv_pw"),
                    "cn": ("conv",)}


def timm_key_map(state: Dict[str, "object"], efficient_head: bool = False) -> Dict[str, "object"]:
    """timm's EfficientNet/MobileNetV3 state dict (BN stats already renamed) -> our names.

    timm keeps ``conv_x``/``bnN`` siblings; we hold each pair in one ``ConvBN``. Which conv ``bnN``
    belongs to depends on the block type, read from which convs the block has.
    """
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "conv_stem":
            new = "stem.conv." + ".".join(parts[1:])
        elif parts[0] == "bn1":
            new = "stem.bn." + ".".join(parts[1:])
        elif parts[0] == "conv_head":
            new = ("head." if efficient_head else "conv_head.conv.") + ".".join(
                parts if efficient_head else parts[1:])
        elif parts[0] == "bn2":
            new = "conv_head.bn." + ".".join(parts[1:])
        elif parts[0] == "classifier":
            new = "head.fc." + ".".join(parts[1:])
        elif parts[0] == "blocks" and len(parts) > 4:
            prefix = ".".join(parts[:3])
            if prefix + ".conv_pwl.weight" in state:
                kind = "ir"
            elif prefix + ".conv_dw.weight" in state:
                kind = "ds"
            else:
                kind = "cn"
            leaf = parts[3]
            if leaf.startswith("bn") and leaf[2:].isdigit():
                conv = _TIMM_CONV_ORDER[kind][int(leaf[2:]) - 1]
                new = f"{prefix}.{conv}.bn." + ".".join(parts[4:])
            elif leaf in _TIMM_CONV_ORDER[kind]:
                new = f"{prefix}.{leaf}.conv." + ".".join(parts[4:])
            else:  # se.conv_reduce / se.conv_expand keep timm's names
                new = key
        else:
            new = key
        out[new] = value
    return out

