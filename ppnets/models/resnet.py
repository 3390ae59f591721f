"""ResNet-18/34/50.

Paper: "Deep Residual Learning for Image Recognition", He et al., CVPR 2016, arXiv:1512.03385.
Official code: none for PyTorch; the reference used for parity is timm's ``resnet`` (timm
``resnet18``/``resnet34``/``resnet50``), whose default form is the torchvision one: 7x7 stem +
max-pool, stride on the 3x3 conv of the bottleneck ("ResNet v1.5"), 1x1 conv + BN projection
shortcuts when the shape changes (option B).

Structure and names: every conv is followed by its BN inside one :class:`ppnets.layers.ConvBN`
(``conv1.conv``/``conv1.bn`` where timm has ``conv1``/``bn1``), so ``reparameterize()`` folds all
BNs and ``deploy=True`` builds the folded convs directly; :func:`timm_keys` maps timm state dicts to
these names (``downsample.0/1`` -> ``downsample.conv/bn``, ``fc`` -> ``head.fc``).

The 3x3 convolution of the blocks is pluggable (``conv3x3_layer``): a factory
``fn(in_chs, out_chs, stride=..., act=..., deploy=...)`` returning a conv + norm (+ act) layer.
SPConv-ResNet (``ppnets.models.spconv``) reuses this ResNet with its SPConv operator there, and
also uses the CIFAR stem (``stem_type="cifar"``: one 3x3 conv, no max-pool).

Features (``feature_info``, ``forward_intermediates``): timm's, one map per resolution, the last
layer's at each: with the ImageNet stem the stem's activation before the max-pool (stride 2; timm
names it ``act1``, ours is ``conv1``, the ConvBN holding timm's ``conv1``/``bn1``/``act1``), then
``layer1`` ... ``layer4`` (strides 4 to 32, timm's names). The CIFAR stem keeps the input's
resolution and ``layer1`` follows it there, so that ResNet's features are its stages alone
(strides 1, 2, 4, ...).

Deviations: none in the computed function. Initialisation follows timm (Kaiming-normal fan-out
convs, zero-initialised last BN of each residual branch with ``zero_init_last=True``), except
that the Linear classifier keeps Paddle's default initialiser.
"""
from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

import paddle.nn as nn

from ppnets.layers import ConvBN, DropPath
from ppnets.registry import (IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD, TIMM_WEIGHT,
                             register_models)

from .base import ClassifierHead, ImageClassifier, NoHead
from .features import FeatureInfo, check_output_fmt, feature_take_indices

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "conv3x3_bn", "timm_keys"]


def conv3x3_bn(in_chs: int, out_chs: int, stride: int = 1, act=None, deploy: bool = False):
    """The vanilla 3x3 conv + BN (+ act): the default ``conv3x3_layer`` of the blocks."""
    return ConvBN(in_chs, out_chs, 3, stride=stride, act=act, deploy=deploy)


def _last_bn(layer: nn.Layer):
    bn = getattr(layer, "bn", None)
    return bn if isinstance(bn, (nn.BatchNorm2D, nn.BatchNorm)) else None


class BasicBlock(nn.Layer):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_chs: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Layer] = None, drop_path: float = 0.0,
                 conv3x3_layer: Callable = conv3x3_bn, deploy: bool = False):
        super().__init__()
        self.conv1 = conv3x3_layer(in_chs, planes, stride=stride, act="relu", deploy=deploy)
        self.conv2 = conv3x3_layer(planes, planes, stride=1, act=None, deploy=deploy)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = nn.ReLU()

    def last_norm(self):
        return _last_bn(self.conv2)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.drop_path(self.conv2(self.conv1(x))) + shortcut)


class Bottleneck(nn.Layer):
    """1x1 -> 3x3(stride) -> 1x1 (x4 channels), each with BN; ReLU after the sum."""

    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Layer] = None, drop_path: float = 0.0,
                 conv3x3_layer: Callable = conv3x3_bn, deploy: bool = False):
        super().__init__()
        out_chs = planes * self.expansion
        self.conv1 = ConvBN(in_chs, planes, 1, act="relu", deploy=deploy)
        self.conv2 = conv3x3_layer(planes, planes, stride=stride, act="relu", deploy=deploy)
        self.conv3 = ConvBN(planes, out_chs, 1, act=None, deploy=deploy)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = nn.ReLU()

    def last_norm(self):
        return _last_bn(self.conv3)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(out) + shortcut)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(ImageClassifier):
    """ResNet with timm's stage names (``layer1``...) and a pluggable 3x3 conv.

    ``layers``: blocks per stage; ``channels``: planes per stage (block output is
    ``planes * expansion``); the first stage keeps the stem's resolution, every later one halves
    it. ``stem_type="imagenet"``: 7x7/2 conv + 3x3/2 max-pool; ``"cifar"``: one 3x3/1 conv.
    """

    def __init__(self, block: str = "basic", layers: Sequence[int] = (2, 2, 2, 2),
                 channels: Sequence[int] = (64, 128, 256, 512), stem_width: int = 64,
                 stem_type: str = "imagenet", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, deploy: bool = False,
                 conv3x3_layer: Optional[Callable] = None, zero_init_last: bool = True):
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"block must be one of {sorted(_BLOCKS)}, got {block!r}")
        if len(layers) != len(channels):
            raise ValueError(f"layers {tuple(layers)} and channels {tuple(channels)} must have "
                             "one entry per stage")
        block_cls = _BLOCKS[block]
        conv3x3_layer = conv3x3_layer or conv3x3_bn
        self.num_classes = num_classes
        self.deploy = deploy
        self.drop_rate = drop_rate

        if stem_type == "imagenet":
            self.conv1 = ConvBN(in_chans, stem_width, 7, stride=2, padding=3, act="relu",
                                deploy=deploy)
            self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        elif stem_type == "cifar":
            self.conv1 = ConvBN(in_chans, stem_width, 3, stride=1, act="relu", deploy=deploy)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem_type must be 'imagenet' or 'cifar', got {stem_type!r}")

        # The stem is a feature when the max-pool follows it (the last layer at stride 2).
        self.stem_is_feature = stem_type == "imagenet"
        features = ([dict(num_chs=stem_width, reduction=2, module="conv1")]
                    if self.stem_is_feature else [])
        reduction = 4 if self.stem_is_feature else 1
        # timm's stochastic-depth schedule: linear in the block index, 0 for the first block.
        total = sum(layers)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        in_chs, idx = stem_width, 0
        self.stage_names = []
        for s, (n, planes) in enumerate(zip(layers, channels)):
            stride = 1 if s == 0 else 2
            out_chs = planes * block_cls.expansion
            blocks = []
            for b in range(n):
                st = stride if b == 0 else 1
                down = None
                if st != 1 or in_chs != out_chs:
                    down = ConvBN(in_chs, out_chs, 1, stride=st, act=None, deploy=deploy)
                blocks.append(block_cls(in_chs, planes, stride=st, downsample=down,
                                        drop_path=rates[idx], conv3x3_layer=conv3x3_layer,
                                        deploy=deploy))
                in_chs, idx = out_chs, idx + 1
            name = f"layer{s + 1}"
            setattr(self, name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            reduction *= stride
            features.append(dict(num_chs=out_chs, reduction=reduction, module=name))
        self.feature_info = FeatureInfo(features)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate=drop_rate)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool):
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                w = layer.weight
                fan_out = w.shape[0] * w.shape[2] * w.shape[3]  # torch's fan_out
                nn.initializer.KaimingNormal(fan_in=fan_out, nonlinearity="relu")(w)
        if zero_init_last:
            for layer in self.sublayers():
                if isinstance(layer, (BasicBlock, Bottleneck)) and layer.last_norm() is not None:
                    nn.initializer.Constant(0.0)(layer.last_norm().weight)

    def forward_features(self, x):
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """The stem's (ImageNet stem) and stages' outputs in ``feature_info``
        (:mod:`ppnets.models.features`); ``norm`` has nothing to apply: ResNet has no final
        norm."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.feature_info), indices)
        offset = int(self.stem_is_feature)  # position of layer1 in feature_info
        x = self.conv1(x)
        maps = [x] if self.stem_is_feature and 0 in taken else []
        x = self.maxpool(x)
        for i, name in enumerate(self.stage_names):
            if stop_early and i + offset > last:
                break
            x = getattr(self, name)(x)
            if i + offset in taken:
                maps.append(x)
        return maps if intermediates_only else (x, maps)

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the stages (and the max-pool) after the last feature taken and, with
        ``prune_head`` or when stages go, the head."""
        taken, last = feature_take_indices(len(self.feature_info), indices)
        keep = last + 1 - int(self.stem_is_feature)  # stages up to the last feature
        for name in self.stage_names[keep:]:
            delattr(self, name)
        truncated = keep < len(self.stage_names)
        self.stage_names = self.stage_names[:keep]
        if keep == 0:
            self.maxpool = nn.Identity()
        if prune_head or truncated:
            self.head, self.num_classes = NoHead(), 0
            self.num_features = self.feature_info[last]["num_chs"]
        return taken


def timm_keys(state: dict) -> dict:
    """timm/torchvision ResNet keys -> ours (``convN``+``bnN`` pairs live in one ConvBN); the
    key map of this family's ``timm`` layout, which SPConv-ResNet's reuses."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"(^|\.)conv(\d)\.weight$", r"\1conv\2.conv.weight", key)
        key = re.sub(r"(^|\.)bn(\d)\.", r"\1conv\2.bn.", key)
        key = key.replace("downsample.0.", "downsample.conv.").replace("downsample.1.",
                                                                        "downsample.bn.")
        key = re.sub(r"^fc\.", "head.fc.", key)
        out[key] = value
    return out


# timm's ResNet weights by their evaluation settings: its "ResNet strikes back" release
# (arXiv:2110.00476; a1/a2/b1k/b2k/c1/c2/d, and a3 trained at 160 px), its earlier ra/ram/bt
# weights, and ports of torchvision, GluonCV and FAIR weights. top-1/top-5: timm's results table.
_RSB = dict(TIMM_WEIGHT, crop_pct=0.95, interpolation="bicubic", test_input_size=(3, 288, 288),
            test_crop_pct=1.0)
_RSB_A3 = dict(_RSB, input_size=(3, 160, 160), test_input_size=(3, 224, 224), test_crop_pct=0.95)
_TIMM_RA = dict(TIMM_WEIGHT, crop_pct=0.875, interpolation="bicubic",
                test_input_size=(3, 288, 288), test_crop_pct=0.95)
_TV_V1 = dict(TIMM_WEIGHT, crop_pct=0.875, interpolation="bilinear", license="bsd-3-clause",
              notes="torchvision's IMAGENET1K_V1 weights, re-hosted by timm.")
_GLUON = dict(TIMM_WEIGHT, crop_pct=0.875, interpolation="bicubic",
              notes="GluonCV ResNet-v1b weights, ported by timm.")
_FB_SEMI = dict(TIMM_WEIGHT, crop_pct=0.875, interpolation="bilinear", license="cc-by-nc-4.0",
                notes="FAIR semi-supervised (YFCC100M) / semi-weakly supervised (IG-1B) "
                      "pre-training, fine-tuned on ImageNet-1k (arXiv:1905.00546); "
                      "non-commercial license.")

# Published figures: torchvision's IMAGENET1K_V1 weights (timm ships them as `<name>.tv_in1k`,
# the eval_weight: model_info's preprocessing is theirs), whose model pages give top-1, parameter
# count and "GFLOPS" (which are in fact GMACs); timm's model cards give 1.8/3.7/4.1 GMACs.
_TV = "torchvision.models.{} docs, {}_Weights.IMAGENET1K_V1 (acc@1, num_params, GFLOPS = GMACs)"
_VARIANTS = {
    "resnet18": dict(
        cfg=dict(block="basic", layers=(2, 2, 2, 2)),
        info=dict(params_m=11.69, macs_g=1.81, top1=69.758,
                  source=dict(top1=_TV.format("resnet18", "ResNet18"),
                              params_m=_TV.format("resnet18", "ResNet18") + ": 11,689,512",
                              macs_g=_TV.format("resnet18", "ResNet18") + ": 1.81; timm's "
                                     "model card resnet18.a1_in1k says 1.8"),
                  notes="timm's default tag resnet18.a1_in1k (ResNet Strikes Back A1 recipe, "
                        "arXiv:2110.00476) is trained differently and evaluated at crop 0.95 "
                        "bicubic; the figures here are those of the torchvision weights.",
                  reference=dict(lib="timm", name="resnet18")),
        weights=[
            dict(_RSB, tag="a1_in1k", top1=71.504, top5=90.086),
            dict(_RSB, tag="a2_in1k", top1=70.634, top5=89.486),
            dict(_RSB_A3, tag="a3_in1k", top1=65.67, top5=86.268),
            dict(_TV_V1, tag="tv_in1k", top1=69.752, top5=89.082),
            dict(_FB_SEMI, tag="fb_ssl_yfcc100m_ft_in1k", top1=72.636, top5=91.416),
            dict(_FB_SEMI, tag="fb_swsl_ig1b_ft_in1k", top1=73.286, top5=91.754),
            dict(_GLUON, tag="gluon_in1k", top1=70.844, top5=89.75),
        ], eval_weight="tv_in1k"),
    "resnet34": dict(
        cfg=dict(block="basic", layers=(3, 4, 6, 3)),
        info=dict(params_m=21.80, macs_g=3.66, top1=73.314,
                  source=dict(top1=_TV.format("resnet34", "ResNet34"),
                              params_m=_TV.format("resnet34", "ResNet34") + ": 21,797,672",
                              macs_g=_TV.format("resnet34", "ResNet34")),
                  reference=dict(lib="timm", name="resnet34")),
        weights=[
            dict(_RSB, tag="a1_in1k", top1=76.42, top5=92.896),
            dict(_RSB, tag="a2_in1k", top1=75.52, top5=92.454),
            dict(_RSB_A3, tag="a3_in1k", top1=70.58, top5=89.54),
            dict(_TIMM_RA, tag="bt_in1k", top1=75.176, top5=92.166),
            dict(_RSB, mean=IMAGENET_INCEPTION_MEAN, std=IMAGENET_INCEPTION_STD,
                 tag="ra4_e3600_r224_in1k", crop_pct=0.9, top1=77.492, top5=93.498),
            dict(_TV_V1, tag="tv_in1k", top1=73.298, top5=91.422),
            dict(_GLUON, tag="gluon_in1k", top1=74.574, top5=91.988),
        ], eval_weight="tv_in1k"),
    "resnet50": dict(
        cfg=dict(block="bottleneck", layers=(3, 4, 6, 3)),
        info=dict(params_m=25.56, macs_g=4.09, top1=76.13,
                  source=dict(top1=_TV.format("resnet50", "ResNet50"),
                              params_m=_TV.format("resnet50", "ResNet50") + ": 25,557,032",
                              macs_g=_TV.format("resnet50", "ResNet50") + "; timm's model card "
                                     "says 4.1"),
                  notes="ResNet v1.5 (stride on the 3x3 conv), as timm and torchvision. With the "
                        "ResNet Strikes Back A1 recipe (timm resnet50.a1_in1k, arXiv:2110.00476 "
                        "Table 1) the same architecture reaches 80.4 top-1 at 224.",
                  reference=dict(lib="timm", name="resnet50")),
        weights=[
            dict(_RSB, tag="a1_in1k", top1=80.382, top5=94.598),
            dict(_RSB, tag="a1h_in1k", input_size=(3, 176, 176), test_input_size=(3, 224, 224),
                 crop_pct=0.9, top1=79.264, top5=94.498),
            dict(_RSB, tag="a2_in1k", top1=79.828, top5=94.56),
            dict(_RSB_A3, tag="a3_in1k", top1=75.994, top5=92.494),
            dict(_RSB, tag="b1k_in1k", top1=79.564, top5=94.622),
            dict(_RSB, tag="b2k_in1k", top1=79.388, top5=94.58),
            dict(_RSB, tag="c1_in1k", top1=79.766, top5=94.954),
            dict(_RSB, tag="c2_in1k", top1=79.868, top5=94.862),
            dict(_RSB, tag="d_in1k", top1=79.904, top5=94.666),
            dict(_TIMM_RA, tag="ram_in1k", top1=79.034, top5=94.386),
            dict(TIMM_WEIGHT, tag="am_in1k", crop_pct=0.875, interpolation="bicubic",
                 top1=79.004, top5=94.392),
            dict(_TIMM_RA, tag="ra_in1k", top1=78.82, top5=94.314),
            dict(_TIMM_RA, tag="bt_in1k", top1=78.444, top5=94.274),
            dict(_TV_V1, tag="tv_in1k", top1=76.156, top5=92.866),
            dict(_TV_V1, tag="tv2_in1k", input_size=(3, 176, 176), test_input_size=(3, 224, 224),
                 test_crop_pct=0.965, top1=79.434, top5=94.64,
                 notes="torchvision's IMAGENET1K_V2 weights (its 2021 recipe), re-hosted by timm."),
            dict(TIMM_WEIGHT, tag="bamboo", num_classes=0, crop_pct=1.0, interpolation="bicubic",
                 license=None, top1=None, top5=None,
                 top1_source="none: a backbone without classifier",
                 notes="Bamboo pre-training (arXiv:2203.07845), no classifier (timm's cfg: "
                       "num_classes=0): build with num_classes=0 and fine-tune a head. timm's "
                       "cfg names no license."),
            dict(_FB_SEMI, tag="fb_ssl_yfcc100m_ft_in1k", top1=79.252, top5=94.826),
            dict(_FB_SEMI, tag="fb_swsl_ig1b_ft_in1k", top1=81.146, top5=95.98),
            dict(_GLUON, tag="gluon_in1k", top1=77.58, top5=93.704),
        ], eval_weight="tv_in1k"),
}

register_models("resnet", ResNet, _VARIANTS,
                paper="Deep Residual Learning for Image Recognition", arxiv="1512.03385",
                defaults=dict(test_input_size=(3, 64, 64)),
                key_maps={"timm": timm_keys})
