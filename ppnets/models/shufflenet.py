"""ShuffleNetV2 and ShuffleNetV1: channel shuffle networks.

ShuffleNetV2: "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", Ma et
al., ECCV 2018, arXiv:1807.11164. Official code: https://github.com/megvii-model/ShuffleNet-Series
(``ShuffleNetV2/``). Reference for parity: torchvision ``shufflenet_v2_x0_5`` ... ``x2_0``
(``torchvision/models/shufflenetv2.py``); registry names are torchvision's.

* stem: 3x3 conv stride 2 (24 ch) -> BN -> ReLU -> 3x3 max pool stride 2;
* three stages (paper Table 5: 4 / 8 / 4 units, widths 48/96/192, 116/232/464, 176/352/704,
  244/488/976 for 0.5x/1x/1.5x/2x), each opening with a stride-2 unit;
* stride-1 unit: split the channels in halves; the first passes through, the second goes through
  1x1 conv-BN-ReLU -> 3x3 depthwise conv-BN -> 1x1 conv-BN-ReLU; concatenate; shuffle (2 groups);
* stride-2 unit: both branches see the whole input; left: 3x3 depthwise stride-2 conv-BN -> 1x1
  conv-BN-ReLU; right: as the stride-1 branch with a stride-2 depthwise conv; concat; shuffle;
* conv5: 1x1 conv-BN-ReLU to 1024 channels (2048 for 2x) -> global average pool -> Linear.

Weights: ``key_maps['torchvision']`` renames torchvision's state dict (``conv1.0/1``,
``stage{2,3,4}.i.branch{1,2}.k``, ``conv5.0/1``, ``fc``) to ours (``stem.0.conv/bn``,
``stages.{0,1,2}.i.branch{1,2}.j.conv/bn``, ``final_conv.conv/bn``, ``head.fc``).
``reparameterize()`` folds every BN into its conv (all convs are ``ConvBN``). ``drop_rate`` adds
dropout before the classifier (torchvision has none; default 0).

Note: ``paddle.vision.models.shufflenet_v2_x2_0`` (Paddle 3.3) uses stage widths 224/488/976, so
its first stage is narrower than the paper's; the paper (Table 5), the official code and
torchvision use 244/488/976, as here.

ShuffleNetV1: "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", Zhang et al., CVPR 2018, arXiv:1707.01083. Official code: megvii-model/ShuffleNet-Series
(``ShuffleNetV1/``). Only ``shufflenet_v1_g3_x1_0`` (g=3, 1x) is registered; neither timm nor
torchvision implements ShuffleNetV1, so there is no parity reference and its structure is tested
against the paper's Table 1 by formula (tests/models/test_shufflenet.py).

* stem as ShuffleNetV2; stages of 4 / 8 / 4 units with output widths 240/480/960 (g=3, 1x);
* unit: 1x1 group conv-BN-ReLU -> 3x3 depthwise conv-BN (stride 2 in the first unit of a stage)
  -> channel shuffle -> 1x1 group conv-BN; bottleneck width = output width / 4 (paper Sec. 3.3);
  stride 1: ``relu(x + branch)``; stride 2: ``concat(avgpool3x3_s2(x), relu(branch))`` with the
  branch producing ``out - in`` channels;
* the first 1x1 conv of stage 2 is not grouped (its 24 input channels are too few, paper Sec. 3.3);
* global average pool -> Linear (960 -> classes).

ShuffleNetV1 follows the official code where the paper leaves room: the shuffle sits after the
depthwise conv (equivalent to the paper's position before it, since a depthwise conv + BN acts per
channel), it uses the official grid (reshape to (channels / g, g) and transpose, the inverse of
the paper's (g, channels / g) wording; any of the two mixes information across groups), the
shortcut average pool counts the zero padding (PyTorch's default, ``exclusive=False`` here) and
there is one shuffle per unit, also in the first unit of stage 2. Deviation: our classifier has a
bias (the official one has none; 1000 extra parameters).

Features (``feature_info``, ``forward_intermediates``; neither torchvision nor the official code
defines any): timm's convention, one map per resolution, the last layer's at each, in our module
names: the stem conv's output (``stem.0``, stride 2), the stem's max-pool (``stem.1``, stride 4),
then every stage (``stages.0``/``1``/``2``, strides 8, 16, 32). ShuffleNetV2's 1x1 ``final_conv``
(torchvision's ``conv5``) is the head's, as timm treats the conv head of its EfficientNets
(PaddleDetection's ShuffleNetV2 backbone also returns the stage ends by default, its last conv
only with ``with_last_conv=True``): ``forward_intermediates`` returns it as the final features
when every stage ran, and pruning drops it.

``drop_path_rate``: ShuffleNetV1 applies stochastic depth to the residual branch of its stride-1
units; ShuffleNetV2 has no residual additions, so it only accepts 0.
"""
from __future__ import annotations

import re
from typing import Dict, Sequence

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import ConvBN, DropPath, channel_shuffle
from ppnets.registry import IMAGENET_MEAN, IMAGENET_STD, register_models

from .base import ClassifierHead, ImageClassifier, NoHead
from .features import FeatureInfo, check_output_fmt, feature_take_indices

__all__ = ["ShuffleV2Unit", "ShuffleNetV2", "ShuffleV1Unit", "ShuffleNetV1"]


def _stem(in_chans: int, stem_channels: int, deploy: bool) -> nn.Sequential:
    """3x3 stride-2 Conv-BN-ReLU, 3x3 stride-2 max-pool (both ShuffleNets)."""
    return nn.Sequential(ConvBN(in_chans, stem_channels, 3, stride=2, act="relu", deploy=deploy),
                         nn.MaxPool2D(3, stride=2, padding=1))


def _feature_info(stem_channels: int, stage_channels: Sequence[int]) -> FeatureInfo:
    """The stem conv (stride 2), the max-pool (4), then each stage (8, 16, ...)."""
    info = [dict(num_chs=stem_channels, reduction=2, module="stem.0"),
            dict(num_chs=stem_channels, reduction=4, module="stem.1")]
    info += [dict(num_chs=ch, reduction=8 * 2 ** i, module=f"stages.{i}")
             for i, ch in enumerate(stage_channels)]
    return FeatureInfo(info)


class _ShuffleFeatures:
    """``forward_intermediates`` / ``prune_intermediate_layers`` of both ShuffleNets, whose
    features are the outputs of ``stem[0]``, ``stem[1]``, ``stages[0]``, ... in turn; the
    model sets ``final_conv`` (the head's conv, Identity for V1)."""

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """The maps in ``feature_info`` (:mod:`ppnets.models.features`); the final features
        go through ``final_conv`` when every stage ran; ``norm`` has nothing to apply."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.feature_info), indices)
        layers = list(self.stem) + list(self.stages)
        maps, ran = [], 0
        for i, layer in enumerate(layers):
            if stop_early and i > last:
                break
            x = layer(x)
            ran = i + 1
            if i in taken:
                maps.append(x)
        if intermediates_only:
            return maps
        if ran == len(self.feature_info):
            x = self.final_conv(x)
        return x, maps

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the layers after the last feature taken and, with ``prune_head`` or when
        stages go, ``final_conv`` and the classifier."""
        taken, last = feature_take_indices(len(self.feature_info), indices)
        layers = list(self.stem) + list(self.stages)
        truncated = last + 1 < len(layers)
        self.stem = nn.Sequential(*layers[:min(last + 1, 2)])
        self.stages = nn.Sequential(*layers[2:last + 1])
        if prune_head or truncated:
            self.final_conv = nn.Identity()
            self.head, self.num_classes = NoHead(), 0
            self.num_features = self.feature_info[last]["num_chs"]
        return taken


class ShuffleV2Unit(nn.Layer):
    """ShuffleNetV2 unit (paper Fig. 3c for stride 1, Fig. 3d for stride 2).

    ``branch1`` (stride 2 only): depthwise 3x3 conv-BN -> 1x1 conv-BN-ReLU.
    ``branch2``: 1x1 conv-BN-ReLU -> depthwise 3x3 conv-BN -> 1x1 conv-BN-ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, deploy: bool = False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV2Unit: stride must be 1 or 2, got {stride}")
        if out_channels % 2:
            raise ValueError(f"ShuffleV2Unit: out_channels must be even, got {out_channels}")
        branch = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"ShuffleV2Unit: a stride-1 unit keeps its width, got in_channels="
                             f"{in_channels} and out_channels={out_channels}")
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(
                ConvBN(in_channels, in_channels, 3, stride=2, groups=in_channels, deploy=deploy),
                ConvBN(in_channels, branch, 1, act="relu", deploy=deploy))
        else:
            self.branch1 = None
        self.branch2 = nn.Sequential(
            ConvBN(in_channels if stride == 2 else branch, branch, 1, act="relu", deploy=deploy),
            ConvBN(branch, branch, 3, stride=stride, groups=branch, deploy=deploy),
            ConvBN(branch, branch, 1, act="relu", deploy=deploy))

    def forward(self, x):
        if self.branch1 is None:
            x1, x2 = paddle.split(x, 2, axis=1)
            out = paddle.concat([x1, self.branch2(x2)], axis=1)
        else:
            out = paddle.concat([self.branch1(x), self.branch2(x)], axis=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(_ShuffleFeatures, ImageClassifier):
    """ShuffleNetV2 (see the module docstring). ``stage_channels`` are the three stage widths,
    ``final_channels`` the conv5 width."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3,
                 stage_channels: Sequence[int] = (116, 232, 464),
                 stage_repeats: Sequence[int] = (4, 8, 4), stem_channels: int = 24,
                 final_channels: int = 1024, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        if drop_path_rate:
            raise ValueError(f"ShuffleNetV2 has no residual additions for stochastic depth to "
                             f"drop; got drop_path_rate={drop_path_rate}, expected 0")
        if len(stage_channels) != len(stage_repeats):
            raise ValueError(f"stage_channels {tuple(stage_channels)} and stage_repeats "
                             f"{tuple(stage_repeats)} must have the same length")
        self.num_classes = num_classes
        self.deploy = deploy
        self.stem = _stem(in_chans, stem_channels, deploy)
        stages, in_ch = [], stem_channels
        for out_ch, repeats in zip(stage_channels, stage_repeats):
            units = [ShuffleV2Unit(in_ch, out_ch, 2, deploy=deploy)]
            units += [ShuffleV2Unit(out_ch, out_ch, 1, deploy=deploy) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.final_conv = ConvBN(in_ch, final_channels, 1, act="relu", deploy=deploy)
        self.num_features = final_channels
        self.head = ClassifierHead(final_channels, num_classes, drop_rate=drop_rate)
        self.feature_info = _feature_info(stem_channels, stage_channels)

    def forward_features(self, x):
        return self.final_conv(self.stages(self.stem(x)))


class ShuffleV1Unit(nn.Layer):
    """ShuffleNetV1 unit (paper Fig. 2b for stride 1, Fig. 2c for stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int,
                 mid_channels: int, group_first_conv: bool = True, drop_path: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV1Unit: stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"ShuffleV1Unit: a stride-1 unit keeps its width, got in_channels="
                             f"{in_channels} and out_channels={out_channels}")
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        for what, ch in (("bottleneck", mid_channels), ("branch output", branch_out)):
            if ch % groups:
                raise ValueError(f"ShuffleV1Unit: {what} width {ch} is not divisible by "
                                 f"groups={groups}")
        self.stride = stride
        self.groups = groups
        self.mid_channels = mid_channels
        self.pw1 = ConvBN(in_channels, mid_channels, 1, groups=groups if group_first_conv else 1,
                          act="relu", deploy=deploy)
        self.dw = ConvBN(mid_channels, mid_channels, 3, stride=stride, groups=mid_channels,
                         deploy=deploy)
        self.pw2 = ConvBN(mid_channels, branch_out, 1, groups=groups, deploy=deploy)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # count_include_pad as in the official PyTorch code (Paddle's exclusive=False)
        self.shortcut_pool = (nn.AvgPool2D(3, stride=2, padding=1, exclusive=False)
                              if stride == 2 else None)

    def forward(self, x):
        y = self.dw(self.pw1(x))
        if self.groups > 1:
            # Official grid: (mid / g, g) -> transposed, i.e. channel_shuffle with mid / g groups.
            y = channel_shuffle(y, self.mid_channels // self.groups)
        y = self.pw2(y)
        if self.shortcut_pool is None:
            return F.relu(x + self.drop_path(y))
        return paddle.concat([self.shortcut_pool(x), F.relu(y)], axis=1)


class ShuffleNetV1(_ShuffleFeatures, ImageClassifier):
    """ShuffleNetV1 (see the module docstring). Bottleneck width = stage width / 4."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, groups: int = 3,
                 stage_channels: Sequence[int] = (240, 480, 960),
                 stage_repeats: Sequence[int] = (4, 8, 4), stem_channels: int = 24,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        if len(stage_channels) != len(stage_repeats):
            raise ValueError(f"stage_channels {tuple(stage_channels)} and stage_repeats "
                             f"{tuple(stage_repeats)} must have the same length")
        self.num_classes = num_classes
        self.deploy = deploy
        self.groups = groups
        self.stem = _stem(in_chans, stem_channels, deploy)
        # Stochastic depth grows linearly over the stride-1 (residual) units.
        n_residual = sum(r - 1 for r in stage_repeats)
        dpr = iter(np.linspace(0.0, drop_path_rate, max(n_residual, 1)).tolist())
        stages, in_ch = [], stem_channels
        for s, (out_ch, repeats) in enumerate(zip(stage_channels, stage_repeats)):
            mid = out_ch // 4
            units = [ShuffleV1Unit(in_ch, out_ch, 2, groups, mid, group_first_conv=s > 0,
                                   deploy=deploy)]
            units += [ShuffleV1Unit(out_ch, out_ch, 1, groups, mid, drop_path=next(dpr),
                                    deploy=deploy) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.final_conv = nn.Identity()  # no conv before the pool (torchvision V2's conv5)
        self.num_features = in_ch
        self.head = ClassifierHead(in_ch, num_classes, drop_rate=drop_rate)
        self.feature_info = _feature_info(stem_channels, stage_channels)

    def forward_features(self, x):
        return self.final_conv(self.stages(self.stem(x)))


# --- weight layouts ----------------------------------------------------------------------------

# torchvision Sequential indices -> our ConvBN layers (index 2 of branch2 is a ReLU).
_TV_BRANCH = {("branch1", "0"): "0.conv", ("branch1", "1"): "0.bn",
              ("branch1", "2"): "1.conv", ("branch1", "3"): "1.bn",
              ("branch2", "0"): "0.conv", ("branch2", "1"): "0.bn",
              ("branch2", "3"): "1.conv", ("branch2", "4"): "1.bn",
              ("branch2", "5"): "2.conv", ("branch2", "6"): "2.bn"}
_TV_UNIT = re.compile(r"^stage(\d)\.(\d+)\.(branch[12])\.(\d+)\.(.*)$")


def _from_torchvision(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """torchvision ``shufflenet_v2_*`` state dict -> ours."""
    out = {}
    for key, value in state.items():
        match = _TV_UNIT.match(key)
        if match:
            stage, unit, branch, idx, leaf = match.groups()
            sub = _TV_BRANCH.get((branch, idx))
            if sub is not None:
                key = f"stages.{int(stage) - 2}.{unit}.{branch}.{sub}.{leaf}"
        else:
            key = re.sub(r"^conv1\.0\.", "stem.0.conv.", key)
            key = re.sub(r"^conv1\.1\.", "stem.0.bn.", key)
            key = re.sub(r"^conv5\.0\.", "final_conv.conv.", key)
            key = re.sub(r"^conv5\.1\.", "final_conv.bn.", key)
            key = re.sub(r"^fc\.", "head.fc.", key)
        out[key] = value
    return out


# --- variants ----------------------------------------------------------------------------------

_V2_PAPER = "ShuffleNetV2 paper (arXiv:1807.11164)"
_TV_BY = ("torchvision 0.29.1 reference: parameter count (= weights meta num_params) and "
          "torch.utils.flop_counter MACs (conv + linear) at 224x224, torch 2.14.1")


# torchvision's IMAGENET1K_V1 weights: its release URL, the sha256 prefix in the file name (what
# torch.hub checks), its transforms (resize the short side to 256 or 232, centre crop 224) and
# meta['_metrics'] (top-1/top-5).
_TORCHVISION = dict(library="torchvision", kind="url", file_format="pth", num_classes=1000,
                    input_size=(3, 224, 224), interpolation="bilinear", mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, tag="IMAGENET1K_V1")
_TV_SOURCE = "torchvision 0.29.1 {}.IMAGENET1K_V1.meta['_metrics']['ImageNet-1K'] (acc@1, acc@5)"
_TV_ERICSUN = dict(_TORCHVISION, crop_pct=224 / 256,
                   notes="torchvision: trained from scratch to reproduce the paper closely "
                         "(recipe: github.com/ericsun99/Shufflenet-v2-Pytorch).")
_TV_NEW_RECIPE = dict(_TORCHVISION, crop_pct=224 / 232,
                      notes="torchvision's new training recipe (pytorch/vision#5906).")


def _v2(*, stage_channels, final_channels, params_m, macs_g, top1, top1_official,
        measured_params_m, measured_macs_g, weight):
    top1_tv, crop_pct = weight["top1"], weight["crop_pct"]
    return dict(
        cfg=dict(stage_channels=stage_channels, final_channels=final_channels),
        weights=[weight],
        info=dict(
            params_m=params_m, macs_g=macs_g, top1=top1,
            measured=dict(params_m=measured_params_m, macs_g=measured_macs_g, by=_TV_BY),
            source=dict(params_m=f"{_V2_PAPER}, Table 5 (# of weights)",
                        macs_g=f"{_V2_PAPER}, Table 5 / Table 8 (FLOPs = multiply-adds)",
                        top1=f"{_V2_PAPER}, Table 8 (100 - top-1 error); the official "
                             f"megvii ShuffleNet-Series README reports {top1_official} for its "
                             f"released weights; torchvision's IMAGENET1K_V1 weights reach "
                             f"{top1_tv} (weights meta acc@1)"),
            notes=(f"top1 is the paper's; torchvision's pretrained weights (the parity reference)"
                   f" report {top1_tv}. Published params/MACs are rounded to 0.1 M / 1 MMACs and "
                   f"differ from the exact counts by up to 2.4%; 'measured' holds torchvision's "
                   f"exact counts, which ours equal. crop_pct from torchvision's transforms "
                   f"(crop 224 of a {round(224 / crop_pct)} resize)."),
            reference=dict(lib="torchvision", name=None, input_size=(3, 64, 64))))


# Paper Table 5 widths; published figures (paper), official top-1, exact counts; torchvision's
# weights.
_V2_VARIANTS = {
    "shufflenet_v2_x0_5": _v2(stage_channels=(48, 96, 192), final_channels=1024,
                              params_m=1.4, macs_g=0.041, top1=60.3,
                              top1_official=61.1,
                              measured_params_m=1.366792, measured_macs_g=0.040476,
                              weight=dict(
                                  _TV_ERICSUN, url="https://download.pytorch.org/models/"
                                                   "shufflenetv2_x0.5-f707e7126e.pth",
                                  sha256_prefix="f707e7126e", top1=60.552, top5=81.746,
                                  top1_source=_TV_SOURCE.format("ShuffleNet_V2_X0_5_Weights"))),
    "shufflenet_v2_x1_0": _v2(stage_channels=(116, 232, 464), final_channels=1024,
                              params_m=2.3, macs_g=0.146, top1=69.4,
                              top1_official=69.4,
                              measured_params_m=2.278604, measured_macs_g=0.144908,
                              weight=dict(
                                  _TV_ERICSUN, url="https://download.pytorch.org/models/"
                                                   "shufflenetv2_x1-5666bf0f80.pth",
                                  sha256_prefix="5666bf0f80", top1=69.362, top5=88.316,
                                  top1_source=_TV_SOURCE.format("ShuffleNet_V2_X1_0_Weights"))),
    "shufflenet_v2_x1_5": _v2(stage_channels=(176, 352, 704), final_channels=1024,
                              params_m=3.5, macs_g=0.299, top1=72.6,
                              top1_official=72.6,
                              measured_params_m=3.503624, measured_macs_g=0.295759,
                              weight=dict(
                                  _TV_NEW_RECIPE, url="https://download.pytorch.org/models/"
                                                      "shufflenetv2_x1_5-3c479a10.pth",
                                  sha256_prefix="3c479a10", top1=72.996, top5=91.086,
                                  top1_source=_TV_SOURCE.format("ShuffleNet_V2_X1_5_Weights"))),
    "shufflenet_v2_x2_0": _v2(stage_channels=(244, 488, 976), final_channels=2048,
                              params_m=7.4, macs_g=0.591, top1=74.9,
                              top1_official=75.0,
                              measured_params_m=7.393996, measured_macs_g=0.583253,
                              weight=dict(
                                  _TV_NEW_RECIPE, url="https://download.pytorch.org/models/"
                                                      "shufflenetv2_x2_0-8be3c8ee.pth",
                                  sha256_prefix="8be3c8ee", top1=76.23, top5=93.006,
                                  top1_source=_TV_SOURCE.format("ShuffleNet_V2_X2_0_Weights"))),
}
for _name, _spec in _V2_VARIANTS.items():
    _spec["info"]["reference"]["name"] = _name

register_models(
    family="shufflenet_v2",
    builder=ShuffleNetV2,
    variants=_V2_VARIANTS,
    paper="ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design (ECCV 2018)",
    arxiv="1807.11164",
    defaults=dict(test_input_size=(3, 64, 64)),
    key_maps={"torchvision": _from_torchvision},
)

_V1_PAPER = "ShuffleNetV1 paper (arXiv:1707.01083)"
_V1_OFFICIAL = "megvii-model/ShuffleNet-Series ShuffleNetV1/README.md"

register_models(
    family="shufflenet_v1",
    builder=ShuffleNetV1,
    variants={
        "shufflenet_v1_g3_x1_0": dict(
            cfg=dict(groups=3, stage_channels=(240, 480, 960)),
            info=dict(
                params_m=1.9, macs_g=0.137, top1=67.4,
                measured=dict(params_m=1.864728, macs_g=0.137461,
                              by="official megvii ShuffleNetV1 code (network.py/blocks.py, "
                                 "group=3, 1.0x) re-typed in a scratch torch script, "
                                 "torch.utils.flop_counter at 224x224 (conv + linear MACs); "
                                 "tests/models/test_shufflenet.py re-derives the MACs from Table 1"),
                source=dict(
                    params_m=f"{_V1_OFFICIAL} (1.9M for 1.0x, group=3); the paper lists none",
                    macs_g=f"{_V1_PAPER}, Table 1 (g=3: 137 MFLOPs, multiply-adds); the "
                           f"later tables list ShuffleNet 1x (g=3) at 140 MFLOPs (rounded); "
                           f"the official README says 138M",
                    top1=f"{_V1_PAPER}, Table 2 (1x, g=3: 32.6% top-1 error); the official "
                         f"README reports 67.8 (32.2% error) for its released weights"),
                notes=("No timm/torchvision implementation, so no parity reference. Our count at "
                       "224x224: 137.46 M MACs (as the official code; paper Table 1: 137 M, "
                       "later tables: 140 M) and 1,865,728 params = the official code's "
                       "1,864,728 + 1000 for our classifier bias (the official Linear has "
                       "none); the README's 1.9 M is that count rounded."),
                test_input_size=(3, 64, 64)),
            no_weights=(
                "Neither timm nor torchvision implements ShuffleNetV1. The official weights "
                "(github.com/megvii-model/ShuffleNet-Series README, 'Trained Models') are one "
                "OneDrive folder link: no per-file URL or published hash that could be verified, "
                "so none is recorded; this family has no key map for the official layout "
                "either.")),
    },
    paper="ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices "
          "(CVPR 2018)",
    arxiv="1707.01083",
    defaults=dict(interpolation="bilinear"),
)
