"""One table per variant: a published weight is written once, in its family file beside the
variant it belongs to; ``ppnets/weights/sources.py`` only looks weights up and names no family,
and ``model_info`` reads a variant's preprocessing from its weight instead of repeating it."""
from __future__ import annotations

import glob
import inspect
import os
import re

import pytest

import ppnets
from ppnets import weights
from ppnets.registry import TIMM_WEIGHT, get_entry, register_models
from ppnets.weights import SOURCES, find_weight

PACKAGE = os.path.dirname(ppnets.__file__)
SOURCE_FILES = {path: open(path, encoding="utf-8").read()
                for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True)}


def _family_file(model: str) -> str:
    return inspect.getsourcefile(get_entry(model).builder)


def _written(weight) -> re.Pattern:
    """The text that states ``weight``: its top-1 and top-5 side by side, or (a weight that
    claims none) the start of its notes."""
    if weight.top1 is None:
        return re.compile(re.escape(weight.notes[:40]))
    return re.compile(rf"(?<![\d.]){re.escape(repr(weight.top1))}\b[^\n]{{0,16}}"
                      rf"(?<![\d.]){re.escape(repr(weight.top5))}\b")


@pytest.mark.parametrize("model", sorted(SOURCES))
def test_each_weight_is_written_in_its_family_file_only(model):
    for weight in SOURCES[model]:
        pattern = _written(weight)
        files = sorted(os.path.relpath(path, PACKAGE) for path, text in SOURCE_FILES.items()
                       if pattern.search(text))
        assert files == [os.path.relpath(_family_file(model), PACKAGE)], \
            f"{model}.{weight.tag} is written in {files}"


def test_sources_module_names_no_family():
    with open(weights.sources.__file__, encoding="utf-8") as f:
        text = f.read().lower()
    names = {get_entry(m).family for m in ppnets.list_models()} | set(ppnets.list_models())
    named = sorted(n for n in names if re.search(rf"\b{re.escape(n.lower())}\b", text))
    assert not named, f"ppnets/weights/sources.py names {named}"


@pytest.mark.parametrize("model", sorted(SOURCES))
def test_model_info_preprocessing_is_its_weights(model):
    info = ppnets.model_info(model)
    # ResNets show the figures of torchvision's weights (timm's tag tv_in1k), not timm's default
    shown = find_weight(model, "tv_in1k") if model.startswith("resnet") else SOURCES[model][0]
    for key in ("input_size", "crop_pct", "interpolation", "mean", "std"):
        assert info[key] == getattr(shown, key), (model, key)


def test_a_variant_with_weights_cannot_repeat_their_preprocessing():
    class Never:  # never built
        pass

    weight = dict(TIMM_WEIGHT, tag="in1k", crop_pct=0.9, interpolation="bicubic", top1=None,
                  top5=None)
    with pytest.raises(ValueError, match="crop_pct.*write them in its weight entries only"):
        register_models("t_weights", Never, {"t_weights_a": dict(
            cfg={}, info=dict(crop_pct=0.9), weights=[weight])}, paper="p", arxiv=None)
    with pytest.raises(ValueError, match="crop_pct.*write them in its weight entries only"):
        register_models("t_weights", Never, {"t_weights_b": dict(cfg={}, weights=[weight])},
                        paper="p", arxiv=None, defaults=dict(crop_pct=0.9))
    with pytest.raises(ValueError, match="weight 0 of variant 't_weights_c'.*fields are"):
        register_models("t_weights", Never, {"t_weights_c": dict(
            cfg={}, weights=[dict(weight, crop=0.9)])}, paper="p", arxiv=None)
    assert not [m for m in ppnets.list_models() if m.startswith("t_weights")]
