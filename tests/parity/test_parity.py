"""Our models, given the reference implementation's weights, must produce its outputs.

For every registered model whose ``model_info`` names a reference (timm or torchvision), the
reference is built in a torch subprocess with random weights and randomised BN statistics
(``torch_reference.py``), which writes its state dict and its eval-mode outputs in float64 and
float32. We load the state dict with ``create_model(pretrained=...)`` and compare, in the train
structure and after ``reparameterize()``, our float64 output (model built in float64: the
exact check) and our float32 output (held to the reference's own float32 rounding) with the
reference's float64 output -- ``tests.conftest.assert_parity``.
"""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

import ppnets
from tests.conftest import assert_parity, float64_model, model_param, parity_bounds

# One worker runs every parity test under pytest-xdist (--dist loadgroup), so the torch-side
# references are generated once, in one subprocess, rather than once per worker.
pytestmark = pytest.mark.xdist_group("parity")

# Large variants are `slow` (run by CI's second call, `-m slow`), as in tests/models/test_models.py.
PARITY_MODELS = [model_param(n, xdist_group=False) for n in ppnets.list_models()
                 if ppnets.model_info(n).get("reference")]


def _reference(reference_dir, name):
    cache, keyed = reference_dir
    key = keyed[name]
    error = os.path.join(cache, key + ".error")
    if os.path.exists(error):
        pytest.fail(f"reference model for {name} failed to build:\n{open(error).read()}")
    return np.load(os.path.join(cache, key + ".npz")), os.path.join(cache, key + ".safetensors")


def _run(model, x):
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_parity_with_reference(name, reference_dir):
    data, weights = _reference(reference_dir, name)
    x, ref64, ref32 = data["input"], data["output"], data["output32"]
    model32 = ppnets.create_model(name, pretrained=weights)
    model64 = float64_model(lambda: ppnets.create_model(name, pretrained=weights))
    for model in (model32, model64):
        model.eval()
    assert_parity(_run(model64, x.astype(np.float64)), _run(model32, x), ref64, ref32, name)

    model32.reparameterize()
    model64.reparameterize()
    assert_parity(_run(model64, x.astype(np.float64)), _run(model32, x), ref64, ref32,
                  f"{name} after reparameterize()")


def test_parity_check_catches_a_small_defect(reference_dir):
    """The bounds must not hide real defects: a LayerNorm eps of 1e-5 instead of DeiT's 1e-6
    (the kind of slip a re-implementation makes) must fail both the float64 and the float32
    comparison."""
    name = "deit_small_patch16_224"
    if name not in reference_dir[1]:
        pytest.skip(f"{name} not selected in this run")
    data, weights = _reference(reference_dir, name)
    x, ref64, ref32 = data["input"], data["output"], data["output32"]
    outputs = []
    for model in (float64_model(lambda: ppnets.create_model(name, pretrained=weights)),
                  ppnets.create_model(name, pretrained=weights)):
        model.eval()
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.LayerNorm):
                layer._epsilon = 1e-5
        outputs.append(_run(model, x.astype(str(model.parameters()[0].dtype).split(".")[-1])))
    tol64, tol32 = parity_bounds(ref64, ref32)
    assert float(np.abs(outputs[0] - ref64).max()) > tol64
    assert float(np.abs(outputs[1].astype(np.float64) - ref64).max()) > tol32
