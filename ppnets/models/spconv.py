"""SPConv: split-based 3x3 convolution, and the networks of its paper.

Paper: "Split to Be Slim: An Overlooked Redundancy in Vanilla Convolution", Zhang et al.,
IJCAI 2020, arXiv:2006.12085. Official code: github.com/qiulinzhang/SPConv.pytorch
(``code/resnet_sp.py``: the ``SPConv_3x3`` operator and the ImageNet ResNets built with it). The
official repository has no CIFAR code; the CIFAR networks here follow the paper's text and are
pinned down by its published parameter counts (see below). There is no pretrained
checkpoint, so parity is checked against a torch re-typing of ``SPConv_3x3``
(``tests/parity/spconv_ref.py``).

The operator (:class:`SPConv3x3`), for ``C_in`` input channels and ratio ``alpha``:

* the first ``int(alpha * C_in)`` channels (representative part) go through a group-wise 3x3
  conv (GWC) and a point-wise 1x1 conv (PWC), summed, then BN;
* the remaining channels (redundant part) go through a cheap 1x1 conv (with bias, as in the
  official code), then BN;
* parameter-free fusion: each branch is global-average-pooled into a channel descriptor, the two
  descriptors are softmax-normalised against each other per channel, and the output is the
  weighted sum of the two branches;
* stride 2: GWC runs with stride 2; the PWC and 1x1 inputs are 2x2/2 average-pooled first.

Choices and deviations, with the reasons:

* ``gwc_groups=2`` by default: the paper writes the GWC with a group count but (in the text we
  could check) fixes none per experiment; the official code hard-codes ``groups=2`` whatever
  ``alpha`` is (it also computes ``groups = 1/alpha`` but never uses it), and the paper's
  parameter counts match groups=2 (checked in ``tests/models/test_spconv.py``). Configurable.
* ``extra_bn=True`` by default: the official ResNet blocks put their usual BN after the SPConv
  (``conv1 = SPConv_3x3``, then ``bn1``) although SPConv already ends in BNs; the published
  parameter counts include those BNs. ``extra_bn=False`` drops them.
* The 2x2 average pools use ``ceil_mode=True``: identical to the official pools on even sizes
  (every size in the paper), and keeps GWC and PWC outputs the same size on odd inputs, where
  the official code fails.
* The official stride-2 branch of one published revision refers to an undefined variable
  (``x_1x1_se``); the later revision (pooling the redundant part) is the one implemented.
* ``reparameterize()`` folds the two internal BNs exactly (the GWC+PWC sum's BN into both
  kernels, the GWC taking the bias; the redundant BN into the 1x1 conv). The extra BN after the
  operator stays: the softmax fusion is not scale-equivariant, so it cannot be folded without
  an extra per-channel op.

Networks (all registered in this file):

* ``spconv_resnet18``: torchvision ResNet-18 with both 3x3 convs of every basic block replaced
  by SPConv (alpha=1/2) + BN, as in the official ``resnet_sp.py``; the 7x7 stem and the 1x1
  projection shortcuts stay vanilla. No published ImageNet figures (the paper reports ImageNet
  only for ResNet-50).
* ``resnet20_cifar`` / ``spconv_resnet20_cifar_a{2,4}``: the CIFAR ResNet-20 (He et al., 3x3
  stem of 16 channels, 3 stages of 3 basic blocks at 16/32/64 channels) with 1x1 conv + BN
  projection shortcuts (option B): thop 0.1.1 on this network gives the paper's 41.62 M
  "FLOPs" exactly, and option B's projections are needed to reach the paper's 0.071 M for
  alpha=1/4. SPConv replaces every 3x3 conv except the stem (3 input channels cannot be split).
  The paper's CIFAR-10 table has ResNet-20 rows for alpha 1/2 and 1/4 only. alpha=1/16 cannot
  be built (the first stage's 16 channels leave 1 representative channel, which a 2-group GWC
  cannot split); alpha=1/8 can (2 channels, one per group: ``spconv_net("resnet20",
  alpha=1/8)``) but has no published figures, so neither is registered.
* ``vgg16_cifar`` / ``spconv_vgg16_cifar_a{2,4,8,16}``: the CIFAR VGG-16 of Li et al.
  ("Pruning Filters for Efficient ConvNets", arXiv:1608.08710), the baseline of HetConv and
  GhostNet that the paper compares with: 13 conv-BN-ReLU (64, 64, M, 128, 128, M, 256 x3, M,
  512 x3, M, 512 x3, M) and the classifier Linear(512, 512) - BN - ReLU - Linear(512, classes).
  SPConv replaces every 3x3 conv but the first.

Features (:mod:`ppnets.models.features`; no timm reference, so timm's convention for the same
layouts): the ResNets' are :class:`ppnets.models.resnet.ResNet`'s (``spconv_resnet18``: the stem
at stride 2, then ``layer1`` ... ``layer4``; the CIFAR ResNet-20s: ``layer1`` ... ``layer3`` at
strides 1, 2, 4, the stem keeping the input's resolution). The CIFAR VGGs' are timm's VGG rule:
the last layer before each max-pool (strides 1 to 16) and the last layer (the final max-pool,
stride 32) -- for VGG-16 the channels and strides of timm's ``vgg16`` feature_info.

Published counts (their "FLOPs" are MACs, counted with a thop-like profiler that adds BN,
pooling and bias operations; ours count convolutions and linear layers only, see
``ppnets.analysis``): every published parameter count equals ours truncated to the published
digits, except the VGG-16 baseline: its 16.62 M parameters are exactly our 14.99 M plus one
1x1 conv beside each of the 12 later 3x3 convs (+1.634 M; those convs also add 34.6 M MACs to
our 313.5 M, within 0.4% of its 349.51 M), i.e. the baseline was measured on a different
network than a vanilla VGG-16. Each variant's ``notes`` gives the numbers.
"""
from __future__ import annotations

import re
from functools import partial

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnets.layers import ConvBN, bn_scale_shift, create_act, fuse_bn, fuse_linear_bn, new_conv_like
from ppnets.registry import IMAGENET_MEAN, IMAGENET_STD, register_models

from .base import ImageClassifier, NoHead, flatten_tokens
from .features import FeatureInfo, check_output_fmt, feature_take_indices
from .resnet import ResNet, timm_keys

__all__ = ["SPConv3x3", "SPConvBN", "VGGCifar", "spconv_resnet", "spconv_net", "spconv_factory",
           "CIFAR_MEAN", "CIFAR_STD"]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class SPConv3x3(nn.Layer):
    """Split-based 3x3 convolution (see the module docstring).

    Parameter names: ``gwc``, ``pwc`` (representative part), ``conv1x1`` (redundant part),
    ``bn1`` (after GWC + PWC), ``bn2`` (after the 1x1), as in the official ``SPConv_3x3``.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, alpha: float = 0.5,
                 gwc_groups: int = 2, deploy: bool = False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"SPConv supports stride 1 or 2, got {stride}")
        self.rep_chs = int(in_chs * alpha)  # the official split: int(C_in * ratio)
        self.red_chs = in_chs - self.rep_chs
        if self.rep_chs < 1 or self.red_chs < 1:
            raise ValueError(f"alpha={alpha} splits {in_chs} input channels into "
                             f"{self.rep_chs} + {self.red_chs}; both parts need at least one "
                             "channel: use a larger layer or an alpha in (0, 1)")
        if self.rep_chs % gwc_groups or out_chs % gwc_groups:
            raise ValueError(f"the GWC has {self.rep_chs} input and {out_chs} output channels, "
                             f"not divisible by gwc_groups={gwc_groups}; pick another alpha or "
                             "gwc_groups")
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.alpha, self.gwc_groups = alpha, gwc_groups
        self.deploy = deploy
        self.gwc = nn.Conv2D(self.rep_chs, out_chs, 3, stride=stride, padding=1, groups=gwc_groups,
                             bias_attr=None if deploy else False)
        self.pwc = nn.Conv2D(self.rep_chs, out_chs, 1, bias_attr=False)
        self.conv1x1 = nn.Conv2D(self.red_chs, out_chs, 1)
        # The PWC and the cheap 1x1 see a 2x2-averaged input when striding ("to reduce the
        # information lost", official code) instead of a strided 1x1 conv.
        self.pool = (nn.AvgPool2D(2, 2, ceil_mode=True) if stride == 2 else nn.Identity())
        self.bn1 = nn.Identity() if deploy else nn.BatchNorm2D(out_chs)
        self.bn2 = nn.Identity() if deploy else nn.BatchNorm2D(out_chs)

    def branches(self, x):
        """The two BN'd branch outputs (representative, redundant), before the fusion."""
        x_rep, x_red = paddle.split(x, [self.rep_chs, self.red_chs], axis=1)
        out_rep = self.bn1(self.gwc(x_rep) + self.pwc(self.pool(x_rep)))
        out_red = self.bn2(self.conv1x1(self.pool(x_red)))
        return out_rep, out_red

    @staticmethod
    def fusion_weights(out_rep, out_red):
        """Per-sample, per-channel softmax of the two branches' global averages:
        (w_rep, w_red), each (N, C, 1, 1), summing to 1."""
        desc = paddle.concat([F.adaptive_avg_pool2d(out_rep, 1),
                              F.adaptive_avg_pool2d(out_red, 1)], axis=3)  # (N, C, 1, 2)
        w = F.softmax(desc, axis=3)
        w_rep, w_red = paddle.split(w, 2, axis=3)
        return w_rep, w_red

    def forward(self, x):
        out_rep, out_red = self.branches(x)
        w_rep, w_red = self.fusion_weights(out_rep, out_red)
        return out_rep * w_rep + out_red * w_red

    def reparameterize(self):
        """Fold ``bn1`` into GWC and PWC and ``bn2`` into the 1x1 conv (exact in eval mode)."""
        if isinstance(self.bn1, nn.Identity):
            return
        scale, shift = bn_scale_shift(self.bn1)
        # BN(gwc(x) + pwc(x)) = (scale * gwc)(x) + shift + (scale * pwc)(x)
        gwc_w = self.gwc.weight.numpy().astype(np.float64) * scale[:, None, None, None]
        pwc_w = self.pwc.weight.numpy().astype(np.float64) * scale[:, None, None, None]
        self.gwc = new_conv_like(self.gwc, gwc_w, shift)
        self.pwc = new_conv_like(self.pwc, pwc_w, None)
        kernel, bias = fuse_bn(self.conv1x1.weight, self.conv1x1.bias, self.bn2)
        self.conv1x1 = new_conv_like(self.conv1x1, kernel, bias)
        self.bn1, self.bn2 = nn.Identity(), nn.Identity()
        self.deploy = True

    def extra_repr(self):
        return (f"{self.in_chs}->{self.out_chs}, stride={self.stride}, alpha={self.alpha}, "
                f"split={self.rep_chs}+{self.red_chs}, gwc_groups={self.gwc_groups}")


class SPConvBN(nn.Layer):
    """SPConv -> BN (``extra_bn``, as the official blocks) -> act: the drop-in replacement of a
    conv3x3 + BN (+ act) unit (the ``conv3x3_layer`` of :class:`ppnets.models.resnet.ResNet`)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, act=None,
                 deploy: bool = False, alpha: float = 0.5, gwc_groups: int = 2,
                 extra_bn: bool = True):
        super().__init__()
        self.spconv = SPConv3x3(in_chs, out_chs, stride=stride, alpha=alpha,
                                gwc_groups=gwc_groups, deploy=deploy)
        # Kept in deploy form too: it cannot be folded through the softmax fusion.
        self.bn = nn.BatchNorm2D(out_chs) if extra_bn else nn.Identity()
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.spconv(x)))

    def reparameterize(self):
        self.spconv.reparameterize()


def spconv_factory(alpha: float, gwc_groups: int = 2, extra_bn: bool = True):
    """A ``conv3x3_layer`` factory building :class:`SPConvBN` with these settings."""
    return partial(SPConvBN, alpha=alpha, gwc_groups=gwc_groups, extra_bn=extra_bn)


def spconv_resnet(alpha: float = 0.5, gwc_groups: int = 2, extra_bn: bool = True,
                  vanilla: bool = False, zero_init_last: bool = False, **kwargs) -> ResNet:
    """A :class:`ResNet` whose 3x3 block convs are SPConv (``vanilla=True``: plain convs, the
    baseline). The official code does not zero-initialise the last BN, hence the default."""
    conv = None if vanilla else spconv_factory(alpha, gwc_groups, extra_bn)
    return ResNet(conv3x3_layer=conv, zero_init_last=zero_init_last, **kwargs)


class VGGCifarHead(nn.Layer):
    """Global pool -> Linear(C, hidden) -> BN -> ReLU -> dropout -> Linear(hidden, classes).

    ``pre_logits`` returns the hidden features. ``reparameterize()`` folds the BN into the first
    Linear."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, drop_rate: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        self.hidden = hidden
        self.pool = nn.AdaptiveAvgPool2D(1)  # the identity at 32x32, where features are 1x1
        self.fc1 = nn.Linear(in_features, hidden)
        self.bn = nn.Identity() if deploy else nn.BatchNorm1D(hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = self.drop(self.act(self.bn(self.fc1(flatten_tokens(self.pool(x))))))
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int):
        self.fc = nn.Linear(self.hidden, num_classes) if num_classes > 0 else nn.Identity()

    def reparameterize(self):
        if isinstance(self.bn, nn.Identity):
            return
        fused = fuse_linear_bn(self.fc1, self.bn)
        self.fc1, self.bn = fused, nn.Identity()


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M")


class VGGCifar(ImageClassifier):
    """CIFAR VGG (Li et al., arXiv:1608.08710): conv3x3-BN-ReLU stacks and 2x2 max-pools, then
    :class:`VGGCifarHead`. The first conv is always vanilla; the others are SPConv + BN
    (``vanilla=True``: conv3x3 + BN, the baseline)."""

    def __init__(self, cfg=_VGG16_CFG, hidden: int = 512, num_classes: int = 10,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 deploy: bool = False, alpha: float = 0.5, gwc_groups: int = 2,
                 extra_bn: bool = True, vanilla: bool = False):
        super().__init__()
        if drop_path_rate:
            raise ValueError("VGG has no residual branches: drop_path_rate must be 0")
        self.num_classes = num_classes
        self.deploy = deploy
        conv3x3 = (partial(ConvBN, kernel_size=3) if vanilla
                   else spconv_factory(alpha, gwc_groups, extra_bn))
        layers, in_chs = [], in_chans
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2D(2, 2))
                continue
            if not layers:  # the stem sees the image's channels: nothing to split
                layers.append(ConvBN(in_chs, v, 3, act="relu", deploy=deploy))
            else:
                layers.append(conv3x3(in_chs, v, stride=1, act="relu", deploy=deploy))
            in_chs = v
        self.features = nn.Sequential(*layers)
        self.num_features = in_chs
        self.head = VGGCifarHead(in_chs, hidden, num_classes, drop_rate=drop_rate, deploy=deploy)
        self._init_feature_info(cfg)
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                w = layer.weight
                fan_out = w.shape[0] * w.shape[2] * w.shape[3]  # torch's fan_out
                nn.initializer.KaimingNormal(fan_in=fan_out, nonlinearity="relu")(w)

    def _init_feature_info(self, cfg) -> None:
        """timm's VGG convention: the last layer before each max-pool, and the last layer."""
        self.feature_ends, info, chs, reduction = [], [], None, 1
        for index, v in enumerate(cfg):
            if v == "M":
                self.feature_ends.append(index - 1)
                info.append(dict(num_chs=chs, reduction=reduction, module=f"features.{index - 1}"))
                reduction *= 2
            else:
                chs = v
        last = len(cfg) - 1
        self.feature_ends.append(last)
        info.append(dict(num_chs=chs, reduction=reduction, module=f"features.{last}"))
        self.feature_info = FeatureInfo(info)

    def forward_features(self, x):
        return self.features(x)

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """The maps of ``feature_info`` taken (``ppnets.models.features``); ``norm`` has nothing
        to apply: there is no final norm."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.feature_ends), indices)
        taken_ends = {self.feature_ends[i] for i in taken}
        maps = []
        for index, layer in enumerate(self.features):
            if stop_early and index > self.feature_ends[last]:
                break
            x = layer(x)
            if index in taken_ends:
                maps.append(x)
        return maps if intermediates_only else (x, maps)

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the layers after the last feature taken and, with ``prune_head``, the head."""
        taken, last = feature_take_indices(len(self.feature_ends), indices)
        self.features = nn.Sequential(*list(self.features)[:self.feature_ends[last] + 1])
        self.feature_ends = self.feature_ends[:last + 1]
        if prune_head or last < len(self.feature_info) - 1:
            self.head, self.num_classes = NoHead(), 0
            self.num_features = self.feature_info[last]["num_chs"]
        return taken


def _official_keys(state: dict) -> dict:
    """Official ``resnet_sp.py`` keys -> ours: a block's ``convN`` (SPConv_3x3 or a plain conv)
    and ``bnN`` become ``convN.spconv``/``convN.conv`` and ``convN.bn``; the rest as timm."""
    out = {}
    for key, value in state.items():
        m = re.match(r"^(.*\.)?conv(\d)\.(gwc|pwc|conv1x1|bn1|bn2)\.(.*)$", key)
        if m:
            out[f"{m.group(1) or ''}conv{m.group(2)}.spconv.{m.group(3)}.{m.group(4)}"] = value
        else:
            out.update(timm_keys({key: value}))
    return out


# Block layouts of the two ResNets of this family (the rest is ResNet's defaults).
_RESNETS = {
    "resnet18": dict(block="basic", layers=(2, 2, 2, 2)),
    "resnet20": dict(block="basic", layers=(3, 3, 3), channels=(16, 32, 64), stem_width=16,
                     stem_type="cifar"),
}


def spconv_net(arch: str, **kwargs):
    """The family's builder: ``arch`` is ``"vgg16"`` or a key of ``_RESNETS``."""
    if arch == "vgg16":
        return VGGCifar(**kwargs)
    if arch not in _RESNETS:
        raise ValueError(f"unknown SPConv network {arch!r}; expected 'vgg16' or one of "
                         f"{sorted(_RESNETS)}")
    return spconv_resnet(**_RESNETS[arch], **kwargs)


# --- published figures (paper Table 1 = README of the official repository) ------------------
_T1 = "arXiv:2006.12085 Table 1 (CIFAR-10; also the official README), 'FLOPs' column = MACs"
_THOP = ("thop 0.1.1 (conv/linear MACs + 2 per BN element + pooling + biases) on the torch "
         "re-typing (`python tests/parity/spconv_ref.py --count` with thop installed) gives {}")


def _cifar_info(params_m, macs_m, top1, ours_params_m, ours_macs_m, thop, extra="",
                truncated=True):
    info = dict(params_m=params_m, macs_g=macs_m / 1e3, top1=top1,
                source=dict(params_m=_T1, macs_g=_T1, top1=_T1),
                measured=dict(params_m=ours_params_m, macs_g=ours_macs_m / 1e3,
                              how="independent torch re-typing (tests/parity/spconv_ref.py): "
                                  "parameters without BN running statistics; MACs of convs and "
                                  "linear layers only, at 32x32"),
                notes=(f"Ours: {ours_params_m:.6f} M params, {ours_macs_m:.3f} M MACs (conv + "
                       "linear). "
                       + ("The paper's parameter count is ours truncated to its digits. "
                          if truncated else "")
                       + "Its MACs include BN/pooling/bias operations: " + _THOP.format(thop)
                       + ". " + extra).strip())
    if top1 is None:
        info.pop("top1")
        info["source"].pop("top1")
    return info


_CIFAR_DEFAULTS = dict(input_size=(3, 32, 32), mean=CIFAR_MEAN, std=CIFAR_STD, crop_pct=1.0,
                       dataset="cifar10")

_NO_CIFAR_REFERENCE = ("timm and torchvision have no CIFAR models. Third-party CIFAR-10 "
                       "checkpoints of this name exist (other trainings, other key layouts); none "
                       "was checked against this architecture, so none is recorded.")
# why the CIFAR-10 models have no published weights
_NO_SPCONV_WEIGHTS = ("CIFAR-10 model of the SPConv paper (arXiv:2006.12085): its official "
                      "repository (github.com/qiulinzhang/SPConv.pytorch) publishes no trained "
                      "weights (its README links none). " + _NO_CIFAR_REFERENCE)
_NO_BASELINE_WEIGHTS = ("CIFAR-10 baseline of the SPConv paper (arXiv:2006.12085); its official "
                        "repository publishes no weights. " + _NO_CIFAR_REFERENCE)

_RESNET20 = ("The paper's 0.27 M / 41.62 M baseline is the option-B ResNet-20 (thop: "
             "41.620 M); the remaining SPConv gap to thop (~0.19 M) is in ops thop 0.1.1 does "
             "not count the way the authors' profiler did.")

_VARIANTS = {
    "resnet20_cifar": dict(
        cfg=dict(arch="resnet20", vanilla=True),
        info=_cifar_info(0.27, 41.62, 92.0, 0.272474, 40.813, "41.620 M", _RESNET20),
        no_weights=_NO_BASELINE_WEIGHTS),
    "spconv_resnet20_cifar_a2": dict(
        cfg=dict(arch="resnet20", alpha=1 / 2),
        info=_cifar_info(0.10, 17.91, 92.23, 0.105082, 15.189, "17.723 M", _RESNET20),
        no_weights=_NO_SPCONV_WEIGHTS),
    "spconv_resnet20_cifar_a4": dict(
        cfg=dict(arch="resnet20", alpha=1 / 4),
        info=_cifar_info(0.071, 12.89, 91.15, 0.071674, 10.175, "12.710 M", _RESNET20),
        no_weights=_NO_SPCONV_WEIGHTS),
    "vgg16_cifar": dict(
        cfg=dict(arch="vgg16", vanilla=True),
        info=_cifar_info(16.62, 349.51, 94.00, 14.987722, 313.464, "314.572 M",
                         "The published baseline (16.62 M, 349.51 M) is not a vanilla VGG-16: it "
                         "equals ours plus one 1x1 conv beside each of the 12 SPConv-able 3x3 "
                         "convs (+sum C_in*C_out = 1.634 M params, +34.6 M MACs); the vanilla "
                         "VGG-16 of Li et al./HetConv/GhostNet is 15.0 M / 313 M, as ours.",
                         truncated=False),
        no_weights=_NO_BASELINE_WEIGHTS),
    "spconv_vgg16_cifar_a2": dict(
        cfg=dict(arch="vgg16", alpha=1 / 2),
        info=_cifar_info(5.6, 118.27, 94.40, 5.611274, 114.497, "117.722 M",
                         "The remaining 0.55 M MACs gap to thop is the same for alpha 1/2, 1/4, "
                         "1/8."),
        no_weights=_NO_SPCONV_WEIGHTS),
    "spconv_vgg16_cifar_a4": dict(
        cfg=dict(arch="vgg16", alpha=1 / 4),
        info=_cifar_info(3.77, 79.34, 93.94, 3.772682, 75.568, "78.794 M"),
        no_weights=_NO_SPCONV_WEIGHTS),
    "spconv_vgg16_cifar_a8": dict(
        cfg=dict(arch="vgg16", alpha=1 / 8),
        info=_cifar_info(2.85, 59.87, 93.77, 2.853386, 56.104, "59.330 M"),
        no_weights=_NO_SPCONV_WEIGHTS),
    "spconv_vgg16_cifar_a16": dict(
        cfg=dict(arch="vgg16", alpha=1 / 16),
        info=_cifar_info(2.39, 55.14, 93.43, 2.393738, 46.372, "49.598 M",
                         "The published 55.14 M is 5.0 M above what the other three alphas' "
                         "constant offset predicts (~50.1 M) while its parameter count matches: "
                         "unexplained, probably a measurement slip in the paper."),
        no_weights=_NO_SPCONV_WEIGHTS),
    "spconv_resnet18": dict(
        cfg=dict(arch="resnet18", alpha=1 / 2),
        info=dict(input_size=(3, 224, 224), test_input_size=(3, 64, 64), mean=IMAGENET_MEAN,
                  std=IMAGENET_STD, crop_pct=0.875, dataset="imagenet-1k",
                  params_m=None, macs_g=None, top1=None,
                  notes="ResNet-18 with SPConv (alpha=1/2, GWC groups=2) + BN in place of both "
                        "3x3 convs of every block, as the official code/resnet_sp.py. The paper "
                        "publishes no ResNet-18 figures (its ImageNet results are for "
                        "ResNet-50).",
                  source=dict(architecture="github.com/qiulinzhang/SPConv.pytorch "
                                           "code/resnet_sp.py (BasicBlock with SPConv_3x3)")),
        no_weights=("The SPConv paper (arXiv:2006.12085) reports no ResNet-18 and its official "
                    "repository (github.com/qiulinzhang/SPConv.pytorch) publishes no trained "
                    "weights (its README links none); timm and torchvision have no SPConv "
                    "models.")),
}

register_models("spconv", spconv_net, _VARIANTS,
                paper="Split to Be Slim: An Overlooked Redundancy in Vanilla Convolution",
                arxiv="2006.12085", defaults=_CIFAR_DEFAULTS,
                key_maps={"official": _official_keys})
