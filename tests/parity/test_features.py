"""Our features-only backbones, given the reference's weights, return timm's feature maps.

For every variant whose reference is timm's (``model_info(name)["reference"]["lib"]`` is
``timm``, or ``timm_repvgg_groups``: a timm ByobNet at another group count), the torch
subprocess (``torch_reference.py``, the same run and the same seeded weights as the logits
parity) also builds timm's ``features_only=True`` model, loads the full model's state dict into
it, and writes its maps in float64 and float32 on the logits input, with timm's
``feature_info``. We load the same ``.safetensors`` into ``create_model(name,
features_only=True, pretrained=...)`` and compare

* every map under the float64 rule of the logits (``tests.conftest.assert_parity``: our
  float64 maps within ``REL64 x max(1, max|map|)`` of timm's float64 maps, our float32 maps
  within ``F32_FACTOR`` times timm's own float32 gap);
* ``feature_info`` of the full model and of the features-only one (with its default
  ``out_indices``): ``num_chs`` and ``reduction`` always; ``module`` wherever timm's module path
  is a layer of our model too (where our layout differs, our entry names our own layer, which
  tests/models/test_features.py checks).
"""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.tools.feature_table import layout_model
from tests.conftest import assert_parity, float64_model, model_param, parity_bounds
from tests.parity.conftest import FEATURE_LIBS

# One worker runs every parity test (--dist loadgroup): one torch subprocess for the references.
pytestmark = pytest.mark.xdist_group("parity")

FEATURE_MODELS = [model_param(n, xdist_group=False) for n in ppnets.list_models()
                  if (ppnets.model_info(n).get("reference") or {}).get("lib") in FEATURE_LIBS]


def _features_reference(reference_dir, name):
    """(timm's maps npz, timm's feature_info json, input, weights file) for ``name``."""
    cache, keyed = reference_dir
    base = os.path.join(cache, keyed[name])
    for suffix, what in ((".error", "reference model"), (".features.error", "features_only model")):
        if os.path.exists(base + suffix):
            with open(base + suffix) as f:
                pytest.fail(f"timm's {what} for {name} failed to build:\n{f.read()}")
    with open(base + ".features.json") as f:
        info = json.load(f)
    return (np.load(base + ".features.npz"), info, np.load(base + ".npz")["input"],
            base + ".safetensors")


def _assert_info_matches(name, what, ours, theirs, layers):
    assert len(ours) == len(theirs), \
        f"{name}: {what} has {len(ours)} entries, timm's {len(theirs)}:\n ours {ours}\n " \
        f"timm {theirs}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert (a["num_chs"], a["reduction"]) == (b["num_chs"], b["reduction"]), \
            f"{name}: {what}[{i}] is {a}, timm's {b}"
        if b["module"] in layers:
            assert a["module"] == b["module"], \
                f"{name}: {what}[{i}] names {a['module']!r}; timm names {b['module']!r}, which " \
                "is a layer of ours too: use timm's name"


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_features_match_timm(name, reference_dir):
    data, info, x, weights = _features_reference(reference_dir, name)
    full = layout_model(name)
    layers = dict(full.named_sublayers())
    _assert_info_matches(name, "feature_info", full.feature_info, info["feature_info"], layers)

    model32 = ppnets.create_model(name, features_only=True, pretrained=weights)
    model64 = float64_model(lambda: ppnets.create_model(name, features_only=True,
                                                        pretrained=weights))
    assert list(model32.out_indices) == info["out_indices"], \
        f"{name}: default out_indices {model32.out_indices}, timm's features_only takes " \
        f"{info['out_indices']}"
    _assert_info_matches(name, "features_only feature_info", model32.feature_info,
                         info["features_only_info"], layers)
    for model in (model32, model64):
        model.eval()
    with paddle.no_grad():
        ours32 = [m.numpy() for m in model32(paddle.to_tensor(x))]
        ours64 = [m.numpy() for m in model64(paddle.to_tensor(x.astype(np.float64)))]
    assert len(ours32) == len(info["out_indices"])
    for i in range(len(ours32)):
        assert_parity(ours64[i], ours32[i], data[f"f{i}"], data[f"f{i}_32"],
                      f"{name} feature map {i} ({model32.feature_info[i]['module']})")


def test_feature_parity_catches_a_small_defect(reference_dir):
    """The bounds do not hide real defects in the maps either: DeiT's LayerNorms with eps 1e-5
    instead of 1e-6 fail both the float64 and the float32 comparison of the last map."""
    name = "deit_small_patch16_224"
    if name not in reference_dir[1]:
        pytest.skip(f"{name} not selected in this run")
    data, _, x, weights = _features_reference(reference_dir, name)
    maps = []
    for dtype, model in (("float64", float64_model(lambda: ppnets.create_model(
            name, features_only=True, pretrained=weights))),
            ("float32", ppnets.create_model(name, features_only=True, pretrained=weights))):
        model.eval()
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.LayerNorm):
                layer._epsilon = 1e-5
        with paddle.no_grad():
            maps.append(model(paddle.to_tensor(x.astype(dtype)))[-1].numpy())
    last = max(int(key[1:]) for key in data.files if key[1:].isdigit())
    ref64, ref32 = data[f"f{last}"], data[f"f{last}_32"]
    tol64, tol32 = parity_bounds(ref64, ref32)
    assert float(np.abs(maps[0] - ref64).max()) > tol64
    assert float(np.abs(maps[1].astype(np.float64) - ref64).max()) > tol32
