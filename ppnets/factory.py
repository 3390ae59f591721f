"""Building registered models: :func:`create_model`, with pretrained weights and deploy form.

Importing this module imports :mod:`ppnets.models`, whose family modules fill the registry.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from ppnets import models  # noqa: F401  (registers every family)
from ppnets.convert import CHECKPOINT_SUFFIXES
from ppnets.models.features import FeatureBackbone
from ppnets.registry import DATASET_CLASSES, get_entry
from ppnets.weights.pretrained import load_published, load_weights, resolve_weight

__all__ = ["create_model"]


def _is_path(pretrained: str) -> bool:
    return (os.path.exists(pretrained) or os.sep in pretrained
            or pretrained.lower().endswith(CHECKPOINT_SUFFIXES))


def create_model(name: str, num_classes: Optional[int] = None,
                 pretrained: Union[None, bool, str] = None, deploy: bool = False,
                 features_only: bool = False, out_indices: Optional[Sequence[int]] = None,
                 **overrides):
    """Build a registered model.

    ``num_classes`` defaults to the classes of the data set the variant is defined on
    (``model_info(name)["dataset"]``: 1000 for ImageNet-1k, 10 for the CIFAR-10 models).

    ``pretrained``:

    * ``True`` or a weight tag (``"in1k"``, ``"dist_in1k"``, ...; ``ppnets weights list NAME``):
      the published weights of the reference (the variant's ``weights`` in its family file),
      downloaded once (Hugging Face hub through ``HF_ENDPOINT``, or the release URL), converted
      into the model and cached under ``PPNETS_HOME``; later calls need no network. With
      another ``num_classes`` everything but the classifier loads (a log line says so). With
      ``deploy=True`` the weights are loaded into the train form, which is then reparameterized
      (the returned model is in eval mode).
    * a path: a ppnets ``.pdparams`` or a reference checkpoint (``.safetensors``, ``.npz``,
      ``.pth``) that :mod:`ppnets.convert` maps to our layout; ``deploy=True`` then builds the
      fused structure first, so a state dict saved after ``reparameterize()`` loads into it.
      As for published weights, only the classifier may differ: with another ``num_classes``
      everything else loads (a log line says so); any other difference raises ValueError.

    ``model.loaded_weights`` records what was loaded (None: random weights).

    ``features_only=True`` returns a :class:`ppnets.models.features.FeatureBackbone`: the
    model without its classifier, whose ``forward`` returns the feature maps at ``out_indices``
    (positions in ``model.feature_info``; default: what timm's ``features_only`` returns for the
    variant). Weights load into it as into a model with ``num_classes=0``: everything but the
    classifier, and a log line says so.

    ``overrides`` replace the variant's keyword configuration (``drop_path_rate=0.1``, ...).
    """
    if features_only:
        return _features_only(name, num_classes, pretrained, deploy, out_indices, overrides)
    if out_indices is not None:
        raise ValueError("out_indices selects the maps of a features-only backbone: pass "
                         "features_only=True with it")
    entry = get_entry(name)
    kwargs = dict(entry.cfg)
    kwargs.update(overrides)
    kwargs["num_classes"] = (DATASET_CLASSES[entry.info["dataset"]] if num_classes is None
                             else num_classes)
    published = pretrained is True or (isinstance(pretrained, str) and not _is_path(pretrained))
    kwargs["deploy"] = deploy and not published
    model = entry.builder(**kwargs)
    model.model_name = entry.name
    model.loaded_weights = None
    if published:
        src = resolve_weight(entry.name, pretrained)
        model.loaded_weights = load_published(model, src, entry.key_maps)
        model.pretrained_cfg = src
        if deploy:
            model.eval()
            model.reparameterize()
    elif pretrained:
        model.loaded_weights = load_weights(model, pretrained, name=entry.name)
    return model


def _features_only(name, num_classes, pretrained, deploy, out_indices, overrides):
    if num_classes:
        raise ValueError(f"features_only=True builds {name} without a classifier: leave "
                         f"num_classes unset (got {num_classes})")
    backbone = create_model(name, num_classes=0, pretrained=pretrained, deploy=deploy,
                            **overrides)
    return FeatureBackbone(backbone, out_indices)
