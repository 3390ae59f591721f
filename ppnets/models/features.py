"""Backbones for dense tasks: the multi-scale features of every model, as timm and
PaddleDetection/PaddleSeg take them.

Every model has

* ``feature_info``: one dict per feature map it can return, in forward order, with timm's fields
  ``num_chs`` (channels), ``reduction`` (stride w.r.t. the input) and ``module`` (the layer that
  produces it); for a variant with a timm reference the list equals timm's ``feature_info`` of the
  same variant;
* ``forward_intermediates(x, indices=None, norm=False, stop_early=False, output_fmt='NCHW',
  intermediates_only=False)``, as timm defines it: ``indices`` None takes every feature, an int the
  last n, a sequence those positions (negative from the end); it returns ``(final features,
  [maps])`` or, with ``intermediates_only``, the maps;
* ``prune_intermediate_layers(indices=1, prune_norm=False, prune_head=True)``: drops what follows
  the last feature taken (and the classifier), returns the positions taken.

``create_model(name, features_only=True, out_indices=...)`` returns a :class:`FeatureBackbone`:
``forward(x)`` is the list of maps at ``out_indices`` (default: what timm's ``features_only``
returns for the variant), with ``feature_info`` (a :class:`FeatureInfo` of those maps), and
PaddleDetection's backbone protocol ``out_shape`` (a list of :class:`ShapeSpec`) and PaddleSeg's
``feat_channels``.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Dict, List, Optional, Sequence, Tuple, Union

import paddle.nn as nn

from ppnets.layers import ReparamMixin

__all__ = ["feature_take_indices", "FeatureInfo", "ShapeSpec", "FeatureBackbone",
           "OUTPUT_FORMATS"]

# PaddleDetection's ppdet.modeling.shape_spec.ShapeSpec, field for field, so that a ppnets
# backbone's ``out_shape`` is what a PaddleDetection neck reads (``[s.channels for s in ...]``).
ShapeSpec = namedtuple("ShapeSpec", ["channels", "height", "width", "stride"],
                       defaults=(None, None, None, None))

OUTPUT_FORMATS = ("NCHW", "NLC")


def feature_take_indices(num_features: int,
                         indices: Union[None, int, Sequence[int]] = None) -> Tuple[List[int], int]:
    """``(positions, largest position)`` that ``indices`` selects among ``num_features``
    features: None all, an int the last n, a sequence those positions (negative from the end)."""
    if indices is None:
        indices = num_features
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"indices={indices} asks for the last {indices} features of "
                             f"{num_features}: expected 1 to {num_features}")
        taken = list(range(num_features - indices, num_features))
    else:
        taken = []
        for i in indices:
            position = num_features + int(i) if int(i) < 0 else int(i)
            if not 0 <= position < num_features:
                raise ValueError(f"feature index {i} is out of range: this model has "
                                 f"{num_features} features (0 to {num_features - 1}, or negative "
                                 "from the end)")
            taken.append(position)
        if not taken:
            raise ValueError("indices is empty: name at least one feature")
    return taken, max(taken)


def check_output_fmt(output_fmt: str, supported: Sequence[str] = ("NCHW",)) -> str:
    """``output_fmt`` when the model can return it, else a ValueError saying what it can."""
    if output_fmt not in supported:
        raise ValueError(f"output_fmt={output_fmt!r}: this model returns "
                         f"{' or '.join(supported)} feature maps")
    return output_fmt


class FeatureInfo(list):
    """A list of ``{num_chs, reduction, module}`` dicts with timm's accessors."""

    def _pick(self, key: str, idx: Optional[Union[int, Sequence[int]]]):
        if idx is None:
            return [info[key] for info in self]
        if isinstance(idx, int):
            return self[idx][key]
        return [self[i][key] for i in idx]

    def channels(self, idx=None):
        return self._pick("num_chs", idx)

    def reduction(self, idx=None):
        return self._pick("reduction", idx)

    def module_name(self, idx=None):
        return self._pick("module", idx)

    def get_dicts(self, keys: Optional[Sequence[str]] = None, idx=None) -> List[Dict]:
        rows = list(self) if idx is None else [self[i] for i in
                                               ([idx] if isinstance(idx, int) else idx)]
        return [dict(r) if keys is None else {k: r[k] for k in keys} for r in rows]

    def out_shape(self) -> List[ShapeSpec]:
        return [ShapeSpec(channels=info["num_chs"], stride=info["reduction"]) for info in self]


class FeatureBackbone(ReparamMixin, nn.Layer):
    """``create_model(name, features_only=True)``: the model without its classifier, returning
    the list of feature maps at ``out_indices`` (positions in the model's ``feature_info``).

    ``reparameterize()`` fuses the wrapped model's branches as for the classifier; the feature
    maps stay the same.
    """

    def __init__(self, model: nn.Layer, out_indices: Optional[Sequence[int]] = None):
        super().__init__()
        available = len(model.feature_info)
        if out_indices is None:
            out_indices = getattr(model, "default_out_indices", None) or range(available)
        taken, _ = feature_take_indices(available, list(out_indices))
        self.out_indices = tuple(taken)
        self.feature_info = FeatureInfo(dict(model.feature_info[i]) for i in taken)
        self.model_name = getattr(model, "model_name", None)
        model.prune_intermediate_layers(list(taken), prune_head=True)
        self.model = model

    def forward(self, x):
        return self.model.forward_intermediates(x, indices=list(self.out_indices),
                                                stop_early=True, intermediates_only=True)

    @property
    def out_shape(self) -> List[ShapeSpec]:
        """PaddleDetection's backbone protocol: ``(channels, stride)`` of each output."""
        return self.feature_info.out_shape()

    @property
    def feat_channels(self) -> List[int]:
        """PaddleSeg's backbone protocol: the channels of each output."""
        return self.feature_info.channels()
