"""Registry-wide model tests: every registered variant gets all of them automatically.

Inputs are each variant's ``test_input_size`` (the smallest size its architecture accepts) so the
whole zoo runs on a 2-core CPU; complexity is checked at the published input size.

Building a large model dominates these tests (efficientformer_l7: seconds of random init), so
each variant is built once per module (the ``built`` fixture, module-scoped and parametrized, so
pytest runs all tests of one variant together and then frees it) and every test works on its own
deep copy. Variants above ``tests.conftest.SLOW_PARAMS_M`` carry the ``slow`` marker: the default
run leaves them out, ``python -m pytest -m slow`` (run by CI after the default suite) covers them.
"""
from __future__ import annotations

import copy

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.analysis import profile_model
from ppnets.runtime import create_predictor, run_predictor
from tests.conftest import model_param, randomize_bn

NUM_CLASSES = 7
EXPORT_ATOL = 1e-4  # Paddle Inference (oneDNN kernels) vs dygraph, float32 logits
REPARAM_ATOL = 1e-5


MODELS = [model_param(name) for name in ppnets.list_models()]


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    """(name, model): the variant with NUM_CLASSES outputs, built once; tests deep-copy it."""
    paddle.seed(0)
    model = ppnets.create_model(request.param, num_classes=NUM_CLASSES)
    yield request.param, model
    del model


def _input(name, batch=2, seed=0):
    info = ppnets.model_info(name)
    size = info.get("test_input_size") or info["input_size"]
    rng = np.random.RandomState(seed)
    return paddle.to_tensor(rng.standard_normal([batch] + list(size)).astype("float32"))


def _eval_copy(built):
    name, model = built
    model = copy.deepcopy(model)
    randomize_bn(model)
    model.eval()
    return name, model


def test_forward_backward(built):
    name, model = built
    model = copy.deepcopy(model)
    model.train()
    x = _input(name)
    out = model(x)
    assert isinstance(out, paddle.Tensor), f"{name}: forward must return one tensor in train mode"
    assert out.shape == [2, NUM_CLASSES]
    assert np.isfinite(out.numpy()).all()
    (out ** 2).mean().backward()
    missing = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"


def test_classifier_api(built):
    name, model = _eval_copy(built)
    x = _input(name)
    with paddle.no_grad():
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == [2, model.num_features]
        assert model(x).shape == [2, NUM_CLASSES]
        model.reset_classifier(5)
        assert model(x).shape == [2, 5]
        model.reset_classifier(0)
        assert model(x).shape == [2, model.num_features]


def test_train_eval_switch(built):
    name, model = _eval_copy(built)
    assert all(not layer.training for layer in model.sublayers(include_self=True))
    x = _input(name)
    with paddle.no_grad():
        a, b = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(a, b)
    model.train()
    assert all(layer.training for layer in model.sublayers(include_self=True))


def test_reparameterize_and_deploy(built):
    name, model = _eval_copy(built)
    x = _input(name)
    with paddle.no_grad():
        before = model(x).numpy()
    train_keys = set(model.state_dict())

    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        model.reparameterize()
    model.eval()

    model.reparameterize()
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0,
                               atol=REPARAM_ATOL * max(1.0, np.abs(before).max()),
                               err_msg=f"{name}: reparameterized output differs")
    fused_state = model.state_dict()
    assert set(fused_state) <= train_keys | {k for k in fused_state if k.endswith(".bias")}
    model.reparameterize()  # idempotent
    assert set(model.state_dict()) == set(fused_state)
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), after)

    deployed = ppnets.create_model(name, num_classes=NUM_CLASSES, deploy=True)
    missing, unexpected = deployed.set_state_dict(fused_state)
    assert not missing and not unexpected, f"{name}: deploy=True structure differs: " \
        f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    deployed.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(deployed(x).numpy(), after, rtol=0, atol=1e-6)


def test_export_paddle_inference(built, tmp_path):
    name, model = _eval_copy(built)
    model.reparameterize()
    x = _input(name, batch=1)
    with paddle.no_grad():
        expected = model(x).numpy()
    prefix = str(tmp_path / "model")
    spec = paddle.static.InputSpec([None] + list(x.shape[1:]), "float32", "x")
    paddle.jit.save(model, prefix, input_spec=[spec])
    predictor = create_predictor(prefix + ".json", prefix + ".pdiparams")
    got = run_predictor(predictor, x.numpy())[0]
    np.testing.assert_allclose(got, expected, rtol=0,
                               atol=EXPORT_ATOL * max(1.0, np.abs(expected).max()))


# Where our count is more than 1% off a published figure, something independent of our profiler
# must say ours is right: the reference implementation's own count, taken at test time by
# tests/parity/test_complexity.py, or for the families without a reference the closed-form
# counts of their tests written from the paper's description.
FORMULA_TESTS = {
    "spconv": "tests/models/test_spconv.py::test_counts_match_formula_and_paper",
    "shufflenet_v1": "tests/models/test_shufflenet.py::test_v1_macs_and_params_match_formula",
}


def _check_count(name, what, ours, published):
    if published is None:
        return
    rel = abs(ours - published) / published
    if rel <= 0.01:
        return
    info = ppnets.model_info(name)
    assert info.get("reference") or info["family"] in FORMULA_TESTS, (
        f"{name}: our {what} {ours:.4g} differs from the published {published} by {rel:.1%} and "
        "no reference implementation or closed-form test counts this model")
    assert info.get("notes"), f"{name}: our {what} differs from the published figure by " \
        f"{rel:.1%}; model_info['notes'] must say why"


def test_complexity_matches_published(built):
    name = built[0]
    info = ppnets.model_info(name)
    num_classes = 10 if info.get("dataset") == "cifar10" else 1000
    model = ppnets.create_model(name, num_classes=num_classes)
    model.eval()
    prof = profile_model(model, input_size=tuple(info["input_size"]))
    bn_stats = sum(int(np.prod(p.shape)) for layer in model.sublayers(include_self=True)
                   for key in ("_mean", "_variance")
                   if (p := layer._parameters.get(key)) is not None)
    assert prof.params == sum(int(np.prod(p.shape)) for p in model.parameters()) - bn_stats, \
        f"{name}: the profiler's parameter count must be every parameter except BN statistics"
    _check_count(name, "params_m", prof.params / 1e6, info.get("params_m"))
    _check_count(name, "macs_g", prof.macs / 1e9, info.get("macs_g"))
    if info.get("params_m_deploy") is not None or info.get("macs_g_deploy") is not None:
        model.reparameterize()
        prof = profile_model(model, input_size=tuple(info["input_size"]))
        _check_count(name, "params_m", prof.params / 1e6, info.get("params_m_deploy"))
        _check_count(name, "macs_g", prof.macs / 1e9, info.get("macs_g_deploy"))
