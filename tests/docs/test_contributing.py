"""CONTRIBUTING.md's "Adding a model (with its weights)" works as written: its template family
file, saved as a module, registers a model that passes the registry-wide contracts
(tests/models/test_models.py, tests/models/test_features.py), reports its weight's preprocessing, appears in the model table,
and loads its published weights (served by a loopback hub) exactly."""
from __future__ import annotations

import importlib.util
import os
import re
import sys

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.registry import unregister_models
from tests.conftest import REPO

MARK = "<!-- template:add-a-model:{}"


def _template() -> str:
    with open(os.path.join(REPO, "CONTRIBUTING.md"), encoding="utf-8") as f:
        text = f.read()
    block = text[text.index(MARK.format("begin")):text.index(MARK.format("end"))]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


@pytest.fixture
def toynet(tmp_path):
    """The template saved as a family file and imported: what registering a new family does."""
    path = tmp_path / "toynet.py"
    path.write_text(_template())
    spec = importlib.util.spec_from_file_location("ppnets_template_toynet", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        unregister_models(["toynet_s"])
        sys.modules.pop(spec.name, None)


def test_the_template_family_passes_the_registry_wide_contract(toynet, tmp_path):
    from tests.models import test_models as contract

    assert ppnets.list_models("toynet*") == ["toynet_s"]
    info = ppnets.model_info("toynet_s")
    assert info["crop_pct"] == 0.95 and info["interpolation"] == "bicubic"  # from its weight
    paddle.seed(0)
    built = ("toynet_s", ppnets.create_model("toynet_s", num_classes=contract.NUM_CLASSES))
    contract.test_forward_backward(built)
    contract.test_classifier_api(built)
    contract.test_train_eval_switch(built)
    contract.test_reparameterize_and_deploy(built)
    contract.test_export_paddle_inference(built, tmp_path)
    contract.test_complexity_matches_published(built)

    from tests.conftest import randomize_bn
    from tests.models import test_features as features
    paddle.seed(0)
    built = ("toynet_s", ppnets.create_model("toynet_s", num_classes=features.NUM_CLASSES))
    randomize_bn(built[1])   # as the contract's fixture: random BN statistics, eval mode
    built[1].eval()
    reference = features.reference_of(built)
    features.test_feature_info(built)
    features.test_forward_intermediates(built, reference)
    features.test_prune_intermediate_layers(built, reference)
    features.test_features_only(built, reference, features.backbone_of(built))
    features.test_deploy_equals_train_float64(built, features.backbone_of(built))

    from ppnets.tools import model_table
    assert "| `toynet_s` | toynet | ToyNet: the template family |" in model_table.render()


def test_the_template_family_loads_its_published_weights(toynet, file_server, monkeypatch,
                                                         tmp_path):
    from safetensors.numpy import save_file

    from ppnets.weights.sources import default_weight
    from tests.weights.conftest import serve_as_hub

    paddle.seed(1)
    published = ppnets.create_model("toynet_s")
    published.eval()
    # the file as timm would publish it: torch names and layouts
    state = {}
    for key, value in published.state_dict().items():
        array = value.numpy()
        if key.endswith("fc.weight"):
            array = array.T                  # torch's Linear is [out, in]
        key = key.replace("._mean", ".running_mean").replace("._variance", ".running_var")
        state[key] = np.ascontiguousarray(array)
    save_file(state, str(tmp_path / "model.safetensors"))
    src = default_weight("toynet_s")
    assert src.hf_hub_id == "timm/toynet_s.in1k"
    serve_as_hub(file_server, monkeypatch, tmp_path / "home",
                 {src: (tmp_path / "model.safetensors").read_bytes()})

    model = ppnets.create_model("toynet_s", pretrained=True)
    model.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_array_equal(model(x).numpy(), published(x).numpy())
    assert model.loaded_weights.published and model.loaded_weights.source == "toynet_s.in1k"
