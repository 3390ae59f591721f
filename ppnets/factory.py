"""Building registered models: :func:`create_model`, with pretrained weights and deploy form.

Importing this module imports :mod:`ppnets.models`, whose family modules fill the registry.
"""
from __future__ import annotations

from typing import Optional

from ppnets import models  # noqa: F401  (registers every family)
from ppnets.convert import load_pretrained
from ppnets.registry import DATASET_CLASSES, get_entry

__all__ = ["create_model"]


def create_model(name: str, num_classes: Optional[int] = None, pretrained: Optional[str] = None,
                 deploy: bool = False, **overrides):
    """Build a registered model.

    ``num_classes`` defaults to the classes of the data set the variant is defined on
    (``model_info(name)["dataset"]``: 1000 for ImageNet-1k, 10 for the CIFAR-10 models).
    ``pretrained`` is a path to a checkpoint: ppnets ``.pdparams`` or a reference checkpoint
    (``.safetensors``, ``.npz``, ``.pth``) that :mod:`ppnets.convert` maps to our layout.
    ``deploy=True`` builds the reparameterized (inference) structure directly, so a state dict
    saved after ``reparameterize()`` loads into it. ``overrides`` replace the variant's keyword
    configuration (e.g. ``drop_path_rate=0.1``, ``in_chans=1``).
    """
    entry = get_entry(name)
    kwargs = dict(entry.cfg)
    kwargs.update(overrides)
    kwargs["num_classes"] = (DATASET_CLASSES[entry.info["dataset"]] if num_classes is None
                             else num_classes)
    kwargs["deploy"] = deploy
    model = entry.builder(**kwargs)
    model.model_name = entry.name
    if pretrained:
        load_pretrained(model, pretrained, name=entry.name)
    return model
