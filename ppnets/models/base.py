"""What every classifier in the zoo shares: the timm-compatible head API and the deploy verb."""
from __future__ import annotations

import paddle
import paddle.nn as nn

from ppnets.layers import ReparamMixin

from .features import check_output_fmt, feature_take_indices

__all__ = ["ClassifierHead", "DistilledHead", "ImageClassifier", "NoHead", "flatten_tokens"]


def flatten_tokens(x):
    """(N, C, 1, 1) or (N, C) -> (N, C) with a reshape, never ``flatten`` (Paddle Lite 2.13
    segfaults on it)."""
    return paddle.reshape(x, [0, -1])


class ClassifierHead(nn.Layer):
    """Global average pool -> dropout -> Linear, the default head (``fc`` is timm's name)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0,
                 pool: bool = True):
        super().__init__()
        self.in_features = in_features
        self.pool = nn.AdaptiveAvgPool2D(1) if pool else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = flatten_tokens(self.pool(x))
        x = self.drop(x)
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int):
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()


class DistilledHead:
    """The DeiT-style pair of classifiers of timm's distilled models (EfficientFormer V1/V2,
    LeViT, RepViT): ``head`` and, when ``distillation`` is on, ``head_dist`` on the same pooled
    features. Their logits are averaged in eval mode and, unless ``set_distilled_training(True)``,
    in train mode too; with it, train mode returns ``(head, head_dist)`` for a distillation loss.

    Mixed into the layer that owns the two heads (the model for EfficientFormer and LeViT, whose
    checkpoints name them ``head``/``head_dist``; the classifier layer for RepViT), which sets
    ``distillation`` and implements ``new_head(num_classes)`` (one head: a Linear, a BN-Linear,
    ...) and ``head_features(x)`` (pooling, normalisation, dropout down to ``[N, C]``).
    """

    distillation: bool = True
    distilled_training: bool = False

    def new_head(self, num_classes: int) -> nn.Layer:
        raise NotImplementedError

    def head_features(self, x):
        raise NotImplementedError

    def init_heads(self, num_classes: int) -> None:
        """(Re)build ``head`` and ``head_dist`` for ``num_classes`` (0: features only)."""
        self.head = self.new_head(num_classes) if num_classes > 0 else nn.Identity()
        self.head_dist = (self.new_head(num_classes)
                          if self.distillation and num_classes > 0 else None)
        if not self.training:  # a head rebuilt on an eval-mode model stays in eval mode
            self.head.eval()
            if self.head_dist is not None:
                self.head_dist.eval()

    def set_distilled_training(self, enable: bool = True):
        """In train mode, return ``(head, head_dist)`` logits for distillation training."""
        self.distilled_training = enable

    def classify(self, x):
        if self.head_dist is None:
            return self.head(x)
        logits, logits_dist = self.head(x), self.head_dist(x)
        if self.distilled_training and self.training:
            return logits, logits_dist
        return (logits + logits_dist) / 2

    def forward_head(self, x, pre_logits: bool = False):
        if isinstance(self.head, NoHead):  # pruned to a backbone: no pooling either, as timm
            return x
        x = self.head_features(x)
        return x if pre_logits else self.classify(x)

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int):
        if isinstance(self.head, NoHead):
            return self.head.reset(num_classes)
        self.num_classes = num_classes
        self.init_heads(num_classes)


class NoHead(nn.Layer):
    """What ``prune_intermediate_layers(prune_head=True)`` leaves of a classifier head: the
    features pass through unchanged."""

    def forward(self, x, pre_logits: bool = False):
        return x

    def reset(self, num_classes: int):
        if num_classes:
            raise ValueError("this model's classifier was pruned (a features-only backbone): "
                             "build a new model to classify")


class ImageClassifier(ReparamMixin, nn.Layer):
    """Base class: ``forward = forward_head(forward_features(x))``.

    Subclasses set ``num_classes``, ``num_features``, ``head`` (anything with
    ``forward(x, pre_logits)`` and ``reset(num_classes)``) and ``feature_info``, and implement
    ``forward_features``, ``forward_intermediates`` and ``prune_intermediate_layers``
    (:mod:`ppnets.models.features` says what they return).
    """

    num_classes: int
    num_features: int
    feature_info: list

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        raise NotImplementedError(f"{type(self).__name__} does not return intermediate "
                                  "features yet")

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        raise NotImplementedError(f"{type(self).__name__} cannot prune its layers yet")

    def forward_features(self, x):
        raise NotImplementedError

    def forward_head(self, x, pre_logits: bool = False):
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self):
        return getattr(self.head, "fc", self.head)

    def reset_classifier(self, num_classes: int):
        self.num_classes = num_classes
        self.head.reset(num_classes)


class StageFeatures:
    """``forward_intermediates`` / ``prune_intermediate_layers`` of a network that is an
    embedding followed by ``stages``, one feature map per stage (FasterNet, RepViT, PoolFormer,
    EfficientFormer V1/V2, LeViT). Mixed into an :class:`ImageClassifier`.

    A family says how it differs through three hooks and one name: :meth:`embed` (the layers
    before the first stage; default: the layer named ``stem_name``), :meth:`stage_map` (a stage's
    output as an NCHW map; default: as it is) and :meth:`final_features`; ``final_norm_name``
    names a norm sized for the last stage only (``None``: no final norm), which ``norm=True``
    applies to the last stage's map and which goes when that stage is pruned."""

    stem_name = "stem"
    final_norm_name = None

    def embed(self, x):
        return getattr(self, self.stem_name)(x)

    def stage_map(self, index: int, x):
        """Stage ``index``'s output as an NCHW map."""
        return x

    def final_features(self, x, last_stage_ran: bool):
        """The features ``forward_intermediates`` returns beside the maps: the final norm's
        output when the last stage ran, else the last stage output computed."""
        if last_stage_ran and self.final_norm_name is not None:
            return getattr(self, self.final_norm_name)(x)
        return x

    def forward_intermediates(self, x, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """The output of each stage taken (``ppnets.models.features``), as an NCHW map;
        ``norm`` applies the final norm, when there is one, to the last stage's map (the only
        one it is sized for)."""
        check_output_fmt(output_fmt)
        taken, last = feature_take_indices(len(self.stages), indices)
        last_stage = len(self.feature_info) - 1
        stages = list(self.stages)[:last + 1] if stop_early else list(self.stages)
        x = self.embed(x)
        maps = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in taken:
                normed = norm and i == last_stage and self.final_norm_name is not None
                maps.append(self.stage_map(i, getattr(self, self.final_norm_name)(x)
                                           if normed else x))
        if intermediates_only:
            return maps
        return self.final_features(x, len(stages) - 1 == last_stage), maps

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the stages after the last one taken; the final norm with ``prune_norm`` or when
        the last stage goes; the head(s) with ``prune_head`` or when the last stage goes."""
        taken, last = feature_take_indices(len(self.stages), indices)
        prune_end = last < len(self.feature_info) - 1
        self.stages = nn.Sequential(*list(self.stages)[:last + 1])
        if self.final_norm_name is not None and (prune_norm or prune_end):
            setattr(self, self.final_norm_name, nn.Identity())
        if prune_head or prune_end:
            self.head, self.num_classes = NoHead(), 0
            if isinstance(self, DistilledHead):
                self.head_dist = None
            self.num_features = self.feature_info[last]["num_chs"]
        return taken
