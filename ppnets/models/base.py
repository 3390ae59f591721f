"""What every classifier in the zoo shares: the timm-compatible head API and the deploy verb."""
from __future__ import annotations

import paddle
import paddle.nn as nn

from ppnets.layers import ReparamMixin

__all__ = ["ClassifierHead", "ImageClassifier", "flatten_tokens"]


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


class ImageClassifier(ReparamMixin, nn.Layer):
    """Base class: ``forward = forward_head(forward_features(x))``.

    Subclasses set ``num_classes``, ``num_features`` and ``head`` (anything with
    ``forward(x, pre_logits)`` and ``reset(num_classes)``), and implement ``forward_features``.
    """

    num_classes: int
    num_features: int

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
