"""Our models, given the reference implementation's weights, must produce its outputs.

For every registered model whose ``model_info`` names a reference (timm or torchvision), the
reference is built in a torch subprocess with random weights and randomised BN statistics
(``torch_reference.py``); we convert its state dict with ``create_model(pretrained=...)`` and
compare eval-mode logits in the train structure and after ``reparameterize()``.
"""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

import ppnets

ATOL = 1e-4
PARITY_MODELS = [n for n in ppnets.list_models() if ppnets.model_info(n).get("reference")]


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_parity_with_reference(name, reference_dir):
    cache, keyed = reference_dir
    key = keyed[name]
    error = os.path.join(cache, key + ".error")
    if os.path.exists(error):
        pytest.fail(f"reference model for {name} failed to build:\n{open(error).read()}")
    data = np.load(os.path.join(cache, key + ".npz"))
    model = ppnets.create_model(name, pretrained=os.path.join(cache, key + ".safetensors"))
    model.eval()
    x = paddle.to_tensor(data["input"])
    with paddle.no_grad():
        ours = model(x).numpy()
    ref = data["output"]
    assert ours.shape == ref.shape
    diff = float(np.abs(ours - ref).max())
    assert diff <= ATOL, f"{name}: max |ours - reference| = {diff:.3g} > {ATOL}"

    model.reparameterize()
    with paddle.no_grad():
        fused = model(x).numpy()
    diff = float(np.abs(fused - ref).max())
    assert diff <= ATOL, f"{name} after reparameterize(): max |Δ| = {diff:.3g} > {ATOL}"
