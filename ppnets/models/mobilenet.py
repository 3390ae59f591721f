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
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Dict, Sequence

import paddle.nn as nn

from ppnets.layers import ConvBN, DropPath, SqueezeExcite, create_act, make_divisible
from ppnets.models.base import ClassifierHead, ImageClassifier, flatten_tokens
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

