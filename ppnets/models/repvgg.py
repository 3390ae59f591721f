"""RepVGG.

Paper: "RepVGG: Making VGG-style ConvNets Great Again", Ding et al., CVPR 2021, arXiv:2101.03697.
Official code: https://github.com/DingXiaoH/RepVGG.
Reference implementation used for parity: timm 1.0.31 ``byobnet.py`` (``repvgg_*``), which loads
the official weights remapped.

Every layer is a :class:`ppnets.layers.RepConvBN`: a 3x3 conv-BN, a 1x1 conv-BN and (where the
shapes allow) a BN-only identity branch, summed and passed through ReLU. ``reparameterize()``
folds the three branches into one 3x3 conv with bias, leaving a plain VGG-style stack of
3x3 conv + ReLU. ``deploy=True`` builds that fused form directly.

Architecture (paper Sec. 3.4): a stride-2 stem layer of width ``min(64, 64a)`` and four stages of
widths ``64a, 128a, 256a, 512b``, each starting with a stride-2 layer; A models have
(2, 4, 14, 1) layers per stage, B models (4, 6, 16, 1). ``g4`` models use groups=4 in every
other layer (the paper's layers 2, 4, 6, ... counted from the stem; with even stage depths that
is every odd-indexed layer inside a stage, which is how we index it).

Deviations / notes:
- Parameter names follow our shared block (``conv_kxk.0``, ``conv_scale``) rather than timm's
  (``conv_kxk``, ``conv_1x1``); the timm key map translates, including timm's reparameterized
  ``reparam_conv`` checkpoints.
- ``drop_path_rate`` (stochastic depth on layers with an identity branch) comes from timm; the
  official code has none. Default 0.
- The grouped ``g2`` models of the official repo (B1g2, B2g2, B3g2; its ``g2_map``) are not in
  timm. Their parity reference is timm's own RepVGG definition (``_rep_vgg_bcfg``) at groups=2,
  built in the torch subprocess from the g4 sibling's depths and widths. Only B1g2 has published
  figures and weights (120 epochs); B2g2 and B3g2 exist in the official code as builders only, so
  their model_info carries no published counts or accuracy.
- The timm-only ``repvgg_d2se`` (SE, 320px) is not part of this family file.

Features (:mod:`ppnets.models.features`), as timm's ``ByobNet``: five maps, the stem (stride 2)
and stages 0-3 (strides 4-32). timm names the last one ``final_conv``: its ByobNet applies a
``final_conv`` after the last stage, an identity for RepVGG (and MobileOne); ours holds the same
identity so that ``feature_info`` (num_chs, reduction, module) equals timm's entry for entry.
timm's extra ``stage`` field is not kept.

Ablation knobs (the paper's branch ablation, Sec. 4.2): ``use_identity`` and ``use_1x1`` drop
the BN-only identity branch and the 1x1 conv-BN branch from every layer (the same
:class:`RepConvBN` switches MobileOne's ``use_skip_branch``/``use_scale_branch`` set; with both
off every layer is a single 3x3 conv-BN). ``reparameterize()`` folds whatever branches exist, so
every setting deploys to the same plain 3x3-conv model. Defaults build the paper's RepVGG.
"""
from __future__ import annotations

import re
from typing import Sequence

import paddle.nn as nn

from ppnets.layers import RepConvBN, init_weights_fan_out
from ppnets.models.base import ClassifierHead, ImageClassifier, NoHead
from ppnets.models.features import FeatureInfo, check_output_fmt, feature_take_indices
from ppnets.registry import TIMM_WEIGHT, register_models

__all__ = ["RepVGG", "StemStagesFeatures"]


class StemStagesFeatures:
    """A ``stem`` + ``stages`` + ``final_conv`` network laid out as timm's ``ByobNet`` (RepVGG,
    MobileOne), and its features: the stem's map, then each stage's, the last one after
    ``final_conv``. Mixed into an :class:`ImageClassifier` that builds ``stem`` and calls
    :meth:`init_stages_and_head` with its stages."""

    def init_stages_and_head(self, stages: Sequence[nn.Layer], stem_chs: int,
                             stage_chs: Sequence[int], num_classes: int,
                             drop_rate: float) -> None:
        """``stages``, timm's ``final_conv`` (an identity here, named because timm's last
        feature is), the classifier head and ``feature_info``."""
        self.stages = nn.Sequential(*stages)
        self.final_conv = nn.Identity()
        self.num_features = stage_chs[-1]
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        names = ["stem"] + [f"stages.{i}" for i in range(len(stage_chs) - 1)] + ["final_conv"]
        self.feature_info = FeatureInfo(
            dict(num_chs=chs, reduction=2 ** (i + 1), module=name)
            for i, (chs, name) in enumerate(zip([stem_chs, *stage_chs], names)))

    def forward_features(self, x):
        return self.final_conv(self.stages(self.stem(x)))

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """The stem's output and each stage's taken (``ppnets.models.features``); ``norm`` has
        nothing to apply: there is no final norm."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.stages) + 1, indices)
        x = self.stem(x)
        maps = [x] if 0 in taken else []
        for i, stage in enumerate(self.stages, start=1):
            if stop_early and i > last:
                break
            x = stage(x)
            if i == len(self.feature_info) - 1:  # the last stage (not a pruned model's)
                x = self.final_conv(x)
            if i in taken:
                maps.append(x)
        return maps if intermediates_only else (x, maps)

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the stages after the last feature taken and, with ``prune_head``, the head."""
        taken, last = feature_take_indices(len(self.stages) + 1, indices)
        self.stages = nn.Sequential(*list(self.stages)[:last])
        if prune_head or last < len(self.feature_info) - 1:
            self.head, self.num_classes = NoHead(), 0
            self.num_features = self.feature_info[last]["num_chs"]
        return taken


class RepVGG(StemStagesFeatures, ImageClassifier):
    """RepVGG: a stem layer and four stages of :class:`RepConvBN` layers, then pool + Linear.

    Args:
        depths: layers per stage (the paper's stages 2-5; stage 1 is the stem).
        width_multipliers: the paper's (a, b): stages 1-4 have 64a, 128a, 256a, 512b channels.
        groups: groups of the grouped layers (every odd-indexed layer of a stage); 1 = dense.
        use_identity: the BN-only identity branch where input and output shapes agree.
        use_1x1: the 1x1 conv-BN branch.
    """

    def __init__(self, depths: Sequence[int] = (2, 4, 14, 1),
                 width_multipliers: Sequence[float] = (0.75, 2.5), groups: int = 1,
                 use_identity: bool = True, use_1x1: bool = True,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, deploy: bool = False):
        super().__init__()
        a, b = width_multipliers
        widths = [int(64 * a), int(128 * a), int(256 * a), int(512 * b)]
        self.num_classes = num_classes
        self.deploy = deploy
        stem_chs = min(64, int(64 * a))
        branches = dict(use_identity=use_identity, use_scale=use_1x1, deploy=deploy)
        self.stem = RepConvBN(in_chans, stem_chs, 3, stride=2, **branches)

        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, prev, idx = [], stem_chs, 0
        for depth, width in zip(depths, widths):
            layers = []
            for j in range(depth):
                layers.append(RepConvBN(prev, width, 3, stride=2 if j == 0 else 1,
                                        groups=groups if j % 2 == 1 else 1,
                                        drop_path_rate=rates[idx], **branches))
                prev = width
                idx += 1
            stages.append(nn.Sequential(*layers))
        self.init_stages_and_head(stages, stem_chs, widths, num_classes, drop_rate)
        init_weights_fan_out(self)


def _from_timm(state: dict) -> dict:
    """timm ``repvgg_*`` names -> ours: the single kxk branch is ``conv_kxk.0``, the 1x1 branch
    ``conv_scale``; a reparameterized ``reparam_conv`` is the folded ``conv_kxk.0.conv``."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"\.conv_kxk\.(conv|bn)\.", r".conv_kxk.0.\1.", key)
        key = key.replace(".conv_1x1.", ".conv_scale.")
        key = key.replace(".reparam_conv.", ".conv_kxk.0.conv.")
        out[key] = value
    return out


_A = (2, 4, 14, 1)
_B = (4, 6, 16, 1)
_MM = "open-mmlab/mmpretrain configs/repvgg/README.md (official weights; train|deploy figures)"
_SOURCE = dict(params_m=_MM, macs_g=_MM + ", 'Flops' = MACs (mmcv counter, includes BN/ReLU)",
               params_m_deploy="paper's ImageNet results tables, 'Params (M)' / " + _MM,
               macs_g_deploy="paper's ImageNet results tables, 'Theo FLOPs (B)', which are MACs: "
                             "our conv+linear MAC count of the fused model reproduces them",
               top1="official DingXiaoH/RepVGG README (" + _MM + ")")
_BY = "timm 1.0.31 model, conv+linear MAC hook at 224x224 (train form; 'deploy' after " \
      "timm.models.reparameterize_model)"


def _measured(timm):
    deploy = dict(params_m=timm["params_m_deploy"], macs_g=timm["macs_g_deploy"], by=_BY)
    return dict(params_m=timm["params_m"], macs_g=timm["macs_g"], by=_BY, deploy=deploy)


# timm's port of the official weights; top-1/top-5: timm's results table (TIMM_RESULTS)
_WEIGHT = dict(TIMM_WEIGHT, tag="rvgg_in1k", crop_pct=0.875, interpolation="bilinear",
               license="mit")
_NO_G2_WEIGHTS = (
    "timm 1.0.31 has no RepVGG g2 variant. The official RepVGG-{}g2-train.pth "
    "(github.com/DingXiaoH/RepVGG README) is published only in a Google Drive folder and on Baidu "
    "Cloud: no stable URL or published hash to record; its key layout "
    "(stage1.0.rbr_dense.conv...) is also not one of this family's key maps (timm).")


def _variant(name, cfg, published, timm=None, epochs=120, reference=None, counted=None,
             in1k=None, no_weights=None):
    weights = (dict(weights=[dict(_WEIGHT, top1=in1k[0], top5=in1k[1])]) if in1k else
               dict(no_weights=no_weights))
    if not published:
        notes = ("Not published: the official repository defines this model (its g2_map) but "
                 "released neither weights nor accuracy, and neither the paper nor mmpretrain "
                 "lists it. model_info['measured'] has the counts of its reference, timm's "
                 "RepVGG blocks at groups=2.")
        by = ("timm 1.0.31 RepVGG blocks at groups=2 (tests/parity/torch_reference.py, "
              "lib timm_repvgg_groups), torch.utils.flop_counter at 224x224 (train form; "
              "'deploy' after timm's reparameterize_model); tests/parity/test_complexity.py "
              "counts it again at test time")
        measured = dict(params_m=counted["params_m"], macs_g=counted["macs_g"], by=by,
                        deploy=dict(params_m=counted["params_m_deploy"],
                                    macs_g=counted["macs_g_deploy"], by=by))
        # None, not absent: every model_info carries the count fields
        # (tests/models/test_registry.py)
        return dict(cfg=cfg, info=dict(params_m=None, macs_g=None, notes=notes,
                                       measured=measured, reference=reference), **weights)
    notes = ("Published train-time MACs come from the mmcv counter, which also counts BN and "
             "ReLU, hence ~0.5% above our conv+linear count. ")
    if epochs != 120:
        notes += (f"Top-1 is the official {epochs}-epoch result (autoaugment, mixup, label "
                  "smoothing). ")
    notes += "The paper's 'FLOPs' column counts multiply-accumulates."
    info = dict(**published, notes=notes, reference=reference or dict(lib="timm", name=name))
    if timm is not None:
        info["measured"] = _measured(timm)
    return dict(cfg=cfg, info=info, **weights)


def _g2(g4_sibling):
    # timm's RepVGG blocks at groups=2 (see the module docstring)
    return dict(lib="timm_repvgg_groups", name=g4_sibling, kwargs=dict(groups=2))


# cfg: paper Sec. 3.4 (layers per stage, width multipliers a and b, groups of the g2/g4 models);
# published: train/deploy params (M) and MACs (G), top-1 (%); timm: the reference's own counts;
# in1k: top-1/top-5 of its timm weights, or no_weights: why it has none.
_TABLE = {
    "repvgg_a0": dict(
        cfg=dict(depths=_A, width_multipliers=(0.75, 2.5)),
        published=dict(params_m=9.11, macs_g=1.52, params_m_deploy=8.31, macs_g_deploy=1.36,
                       top1=72.41),
        timm=dict(params_m=9.108968, macs_g=1.512581, params_m_deploy=8.309384,
                  macs_g_deploy=1.361451),
        in1k=(72.426, 90.506)),
    "repvgg_a1": dict(
        cfg=dict(depths=_A, width_multipliers=(1.0, 2.5)),
        published=dict(params_m=14.09, macs_g=2.64, params_m_deploy=12.79, macs_g_deploy=2.37,
                       top1=74.46),
        timm=dict(params_m=14.092264, macs_g=2.626488, params_m_deploy=12.789864,
                  macs_g_deploy=2.363967),
        in1k=(74.474, 91.852)),
    "repvgg_a2": dict(
        cfg=dict(depths=_A, width_multipliers=(1.5, 2.75)),
        published=dict(params_m=28.21, macs_g=5.70, params_m_deploy=25.50, macs_g_deploy=5.12,
                       top1=76.48),
        timm=dict(params_m=28.2106, macs_g=5.685345, params_m_deploy=25.499944,
                  macs_g_deploy=5.116952),
        in1k=(76.488, 93.016)),
    "repvgg_b0": dict(
        cfg=dict(depths=_B, width_multipliers=(1.0, 2.5)),
        published=dict(params_m=15.82, macs_g=3.42, params_m_deploy=14.34, macs_g_deploy=3.06,
                       top1=75.14),
        timm=dict(params_m=15.81796, macs_g=3.397192, params_m_deploy=14.339048,
                  macs_g_deploy=3.057601),
        in1k=(75.158, 92.41)),
    "repvgg_b1": dict(
        cfg=dict(depths=_B, width_multipliers=(2.0, 4.0)),
        published=dict(params_m=57.42, macs_g=13.16, params_m_deploy=51.83, macs_g_deploy=11.82,
                       top1=78.37),
        timm=dict(params_m=57.415016, macs_g=13.12809, params_m_deploy=51.82948,
                  macs_g_deploy=11.815485),
        in1k=(78.37, 94.106)),
    "repvgg_b1g2": dict(
        cfg=dict(depths=_B, width_multipliers=(2.0, 4.0), groups=2),
        published=dict(params_m=45.78, macs_g=9.82, params_m_deploy=41.36, macs_g_deploy=8.82,
                       top1=77.79),
        reference=_g2("repvgg_b1g4"),
        no_weights=_NO_G2_WEIGHTS.format("B1")),
    "repvgg_b1g4": dict(
        cfg=dict(depths=_B, width_multipliers=(2.0, 4.0), groups=4),
        published=dict(params_m=39.97, macs_g=8.15, params_m_deploy=36.13, macs_g_deploy=7.31,
                       top1=77.58),
        timm=dict(params_m=39.966056, macs_g=8.118518, params_m_deploy=36.125416,
                  macs_g_deploy=7.306871),
        in1k=(77.608, 93.846)),
    "repvgg_b2": dict(
        cfg=dict(depths=_B, width_multipliers=(2.5, 5.0)),
        published=dict(params_m=89.02, macs_g=20.46, params_m_deploy=80.32, macs_g_deploy=18.38,
                       top1=78.78),
        timm=dict(params_m=89.022376, macs_g=20.418171, params_m_deploy=80.315112,
                  macs_g_deploy=18.37661),
        in1k=(78.788, 94.414)),
    "repvgg_b2g4": dict(
        cfg=dict(depths=_B, width_multipliers=(2.5, 5.0), groups=4), epochs=200,
        published=dict(params_m=61.76, macs_g=12.63, params_m_deploy=55.78, macs_g_deploy=11.34,
                       top1=79.38),
        timm=dict(params_m=61.758376, macs_g=12.590715, params_m_deploy=55.777512,
                  macs_g_deploy=11.331899),
        in1k=(79.396, 94.68)),
    "repvgg_b2g2": dict(
        cfg=dict(depths=_B, width_multipliers=(2.5, 5.0), groups=2), published={},
        reference=_g2("repvgg_b2g4"),
        counted=dict(params_m=70.846376, macs_g=15.199867, params_m_deploy=63.956712,
                  macs_g_deploy=13.680136),
        no_weights=_NO_G2_WEIGHTS.format("B2")),
    "repvgg_b3": dict(
        cfg=dict(depths=_B, width_multipliers=(3.0, 5.0)), epochs=200,
        published=dict(params_m=123.09, macs_g=29.17, params_m_deploy=110.96,
                       macs_g_deploy=26.21, top1=80.52),
        timm=dict(params_m=123.085288, macs_g=29.120696, params_m_deploy=110.960872,
                  macs_g_deploy=26.208883),
        in1k=(80.528, 95.254)),
    "repvgg_b3g2": dict(
        cfg=dict(depths=_B, width_multipliers=(3.0, 5.0), groups=2), published={},
        reference=_g2("repvgg_b3g4"),
        counted=dict(params_m=96.911848, macs_g=21.606339, params_m_deploy=87.404776,
                  macs_g_deploy=19.445961),
        no_weights=_NO_G2_WEIGHTS.format("B3")),
    "repvgg_b3g4": dict(
        cfg=dict(depths=_B, width_multipliers=(3.0, 5.0), groups=4), epochs=200,
        published=dict(params_m=83.83, macs_g=17.90, params_m_deploy=75.63, macs_g_deploy=16.07,
                       top1=80.22),
        timm=dict(params_m=83.825128, macs_g=17.84916, params_m_deploy=75.626728,
                  macs_g_deploy=16.0645),
        in1k=(80.224, 95.1)),
}
VARIANTS = {name: _variant(name, **row) for name, row in _TABLE.items()}

register_models(
    family="repvgg",
    builder=RepVGG,
    variants=VARIANTS,
    paper="RepVGG: Making VGG-style ConvNets Great Again (CVPR 2021)",
    arxiv="2101.03697",
    defaults=dict(source=_SOURCE, test_input_size=(3, 64, 64)),
    key_maps={"timm": _from_timm},
)
