"""Registry-wide contract of the dense-task API (``ppnets.models.features``): every registered
variant gets all of these automatically.

* ``feature_info``: a non-empty :class:`FeatureInfo` of ``{num_chs, reduction, module}`` dicts,
  reductions non-decreasing, ``module`` a layer of the model;
* ``forward_intermediates``: one NCHW map per entry with those channels and strides, the final
  output equal to ``forward_features`` (timm's rule), and int / list / negative ``indices``,
  ``stop_early`` and ``intermediates_only`` selecting the same maps;
* ``prune_intermediate_layers``: drops layers and keeps the maps;
* ``create_model(name, features_only=True)``: a :class:`FeatureBackbone` whose outputs are the
  model's own maps at ``out_indices``, with ``feature_info``, ``out_shape`` and ``feat_channels``;
* deploy == train: ``reparameterize()`` keeps every map in float64 (the parity float64 rule);
* export: ``deploy=True`` builds the fused structure (the reparameterized state dict fits it key
  for key, same maps), and that deploy form runs in Paddle Inference as a multi-output program,
  every output within the export tolerance of eager.

Spatial sizes: at an input size divisible by the largest reduction every map is exactly
``size / reduction``; otherwise (LeViT's last stage at 224) the floor or the ceiling, as the
model's padding gives.

As in tests/models/test_models.py each variant is built once per module (``built``), inputs
are each variant's ``test_input_size`` (batch 1), and large variants carry the ``slow`` marker.
An export costs seconds, so the default run exports the smallest variant of each architecture
(variants whose configuration differs only in numbers share one); ``-m slow`` exports the rest.
"""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.models.base import ImageClassifier
from ppnets.models.features import FeatureBackbone, FeatureInfo, ShapeSpec
from ppnets.registry import get_entry
from ppnets.runtime import create_predictor, export_program, run_predictor
from tests.conftest import REL64, float64_model, model_param, randomize_bn

NUM_CLASSES = 7
EXPORT_ATOL = 1e-4  # as tests/models/test_models.py: Paddle Inference (oneDNN) vs dygraph
SAME_ATOL = 1e-6    # one computation run twice (relative to max(1, max|map|))

MODELS = [model_param(name) for name in ppnets.list_models()]


def _input_size(name):
    info = ppnets.model_info(name)
    return tuple(info.get("test_input_size") or info["input_size"])


def _input(name, batch=1, seed=0, dtype="float32"):
    rng = np.random.RandomState(seed)
    return paddle.to_tensor(rng.standard_normal([batch, *_input_size(name)]).astype(dtype))


def _numpy(maps):
    return [m.numpy() for m in maps]


def _assert_maps_equal(got, expected, what, atol=SAME_ATOL):
    assert len(got) == len(expected), f"{what}: {len(got)} maps, expected {len(expected)}"
    for i, (a, b) in enumerate(zip(got, expected)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}, map {i}: shape {a.shape} != {b.shape}"
        bound = atol * max(1.0, float(np.abs(b).max()))
        diff = float(np.abs(a.astype(np.float64) - b).max())
        assert diff <= bound, f"{what}, map {i}: max |diff| {diff:.3g} > {bound:.3g}"


def _assert_map_shapes(name, maps, infos, input_size, batch):
    """NCHW, the entry's channels, and the stride rule of the module docstring."""
    height, width = input_size[1:]
    largest = max(info["reduction"] for info in infos)
    exact = height % largest == 0 and width % largest == 0
    assert len(maps) == len(infos), f"{name}: {len(maps)} maps for {len(infos)} entries"
    for i, (m, info) in enumerate(zip(maps, infos)):
        shape = list(m.shape)
        assert len(shape) == 4, f"{name}, map {i} ({info['module']}): {shape} is not NCHW"
        assert shape[:2] == [batch, info["num_chs"]], \
            f"{name}, map {i} ({info['module']}): shape {shape}, feature_info says " \
            f"{info['num_chs']} channels"
        r = info["reduction"]
        for got, size in zip(shape[2:], (height, width)):
            allowed = {size // r} if exact else {size // r, math.ceil(size / r)}
            assert got in allowed, \
                f"{name}, map {i} ({info['module']}): spatial {shape[2:]} at input " \
                f"{height}x{width}, feature_info says reduction {r} (expected {sorted(allowed)})"


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    """(name, model): the variant with random BN statistics, eval mode; tests copy it."""
    paddle.seed(0)
    model = ppnets.create_model(request.param, num_classes=NUM_CLASSES)
    randomize_bn(model)
    model.eval()
    yield request.param, model
    del model


def reference_of(built):
    """(x, final output, every map) of ``built.forward_intermediates(x)`` at batch 1: what the
    other calls must reproduce."""
    name, model = built
    x = _input(name)
    with paddle.no_grad():
        final, maps = model.forward_intermediates(x)
    _assert_map_shapes(name, maps, model.feature_info, _input_size(name), 1)
    return x, final.numpy(), _numpy(maps)


def backbone_of(built):
    """``create_model(name, features_only=True)`` holding ``built``'s weights (every key of the
    backbone is a key of the full model: nothing is renamed), eval mode."""
    name, model = built
    fb = ppnets.create_model(name, features_only=True)
    full = model.state_dict()
    own = fb.model.state_dict()
    renamed = [k for k in own if k not in full or list(full[k].shape) != list(own[k].shape)]
    assert not renamed, f"{name}: the features-only model has keys the full model lacks " \
                        f"(or other shapes): {renamed[:5]}"
    fb.model.set_state_dict({k: full[k] for k in own})
    fb.eval()
    return fb


@pytest.fixture(scope="module")
def reference(built):
    return reference_of(built)


@pytest.fixture(scope="module")
def backbone(built):
    fb = backbone_of(built)
    yield fb
    del fb


def _a_later_map(n: int) -> int:
    """A negative index of a map after the first: the one before the last, or the last of two."""
    assert n > 1, "a backbone for dense tasks has at least two feature maps"
    return -2 if n > 2 else -1


def test_feature_info(built):
    name, model = built
    info = model.feature_info
    assert isinstance(info, FeatureInfo) and len(info) > 0, \
        f"{name}: feature_info must be a non-empty ppnets.models.features.FeatureInfo"
    layers = dict(model.named_sublayers())
    for i, entry in enumerate(info):
        assert isinstance(entry, dict) and {"num_chs", "reduction", "module"} <= set(entry), \
            f"{name}: feature_info[{i}] = {entry!r} lacks num_chs/reduction/module"
        for key in ("num_chs", "reduction"):
            value = entry[key]
            assert isinstance(value, int) and not isinstance(value, bool) and value > 0, \
                f"{name}: feature_info[{i}][{key!r}] = {value!r} is not a positive int"
        assert entry["module"] in layers, \
            f"{name}: feature_info[{i}]['module'] = {entry['module']!r} is not a layer of the model"
    reductions = info.reduction()
    assert reductions == sorted(reductions), f"{name}: reductions {reductions} decrease"
    default = getattr(model, "default_out_indices", None)
    if default is not None:
        assert isinstance(default, tuple) and all(-len(info) <= i < len(info) for i in default)
    for method in ("forward_intermediates", "prune_intermediate_layers"):
        assert getattr(type(model), method) is not getattr(ImageClassifier, method), \
            f"{name}: {type(model).__name__} does not implement {method}"


def test_forward_intermediates(built, reference):
    name, model = built
    x, final, maps = reference
    n = len(maps)
    with paddle.no_grad():
        # timm's rule: the final output is forward_features'
        _assert_maps_equal([final], [model.forward_features(x).numpy()],
                           f"{name}: forward_intermediates' final output vs forward_features")
        last_two = model.forward_intermediates(x, indices=min(2, n), intermediates_only=True)
        _assert_maps_equal(_numpy(last_two), maps[-min(2, n):], f"{name}: indices={min(2, n)}")
        later = _a_later_map(n)
        first_and_later = model.forward_intermediates(
            x, indices=[0, later], stop_early=True, intermediates_only=True)
        _assert_maps_equal(_numpy(first_and_later), [maps[0], maps[later]],
                           f"{name}: indices=[0, {later}], stop_early")
        for bad in ([n], n + 1, [-n - 1]):
            with pytest.raises(ValueError):
                model.forward_intermediates(x, indices=bad)


def test_prune_intermediate_layers(built, reference):
    name, full = built
    x, _, maps = reference
    n = len(maps)
    indices = sorted({0, max(0, n - 2)})
    model = copy.deepcopy(full)
    taken = model.prune_intermediate_layers(indices)
    assert list(taken) == indices
    with paddle.no_grad():
        got = _numpy(model.forward_intermediates(x, indices=indices, intermediates_only=True))
    _assert_maps_equal(got, [maps[i] for i in indices],
                       f"{name}: after prune_intermediate_layers({indices})")
    if n > 1:
        count = lambda m: sum(int(np.prod(p.shape)) for p in m.parameters())  # noqa: E731
        assert count(model) < count(full), \
            f"{name}: prune_intermediate_layers({indices}) dropped no parameter"


def test_features_only(built, reference, backbone):
    name, model = built
    x, _, maps = reference
    fb = backbone
    info = model.feature_info
    assert isinstance(fb, FeatureBackbone)
    default = getattr(model, "default_out_indices", None) or tuple(range(len(info)))
    assert fb.out_indices == tuple(i % len(info) for i in default)
    assert fb.feature_info == [info[i] for i in fb.out_indices]
    assert fb.out_shape == [ShapeSpec(channels=e["num_chs"], stride=e["reduction"])
                            for e in fb.feature_info]
    assert fb.feat_channels == fb.feature_info.channels()
    with paddle.no_grad():
        outs = fb(x)
    assert isinstance(outs, list)
    _assert_maps_equal(_numpy(outs), [maps[i] for i in fb.out_indices],
                       f"{name}: features_only output vs the model's forward_intermediates")

    # another selection, negative from the end, on a copy of the full model
    n = len(info)
    later = _a_later_map(n)
    chosen = FeatureBackbone(copy.deepcopy(model), out_indices=(0, later))
    assert chosen.out_indices == (0, n + later)
    assert chosen.feature_info == [info[0], info[later]]
    with paddle.no_grad():
        _assert_maps_equal(_numpy(chosen(x)), [maps[0], maps[later]],
                           f"{name}: out_indices=(0, {later})")


def test_deploy_equals_train_float64(built, backbone):
    """The float64 rule of the parity tests: only summation order may differ."""
    name = built[0]
    state = {k: (v.numpy().astype("float64") if v.dtype == paddle.float32 else v.numpy())
             for k, v in backbone.state_dict().items()}
    model = float64_model(lambda: ppnets.create_model(name, features_only=True))
    model.set_state_dict(state)
    model.eval()
    x = _input(name, dtype="float64")
    with paddle.no_grad():
        before = _numpy(model(x))
        model.reparameterize()
        after = _numpy(model(x))
    _assert_maps_equal(after, before, f"{name}: features after reparameterize() (float64)",
                       atol=REL64)


def _architecture(name):
    """Variants whose configuration differs only in numbers (widths, depths, ratios) share one
    architecture and export through the same code: (family, configuration keys, the values
    that are words or switches)."""
    entry = get_entry(name)
    switches = sorted((k, v) for k, v in entry.cfg.items() if isinstance(v, (str, bool)))
    return entry.family, tuple(sorted(entry.cfg)), tuple(switches)


def _export_params():
    """Every variant; in the default run only the smallest of each architecture exports (an
    export costs seconds), the others carry the ``slow`` marker."""
    smallest = {}
    for name in ppnets.list_models():
        info = ppnets.model_info(name)
        size = info.get("params_m") or (info.get("measured") or {}).get("params_m") or 0.0
        key = _architecture(name)
        if key not in smallest or size < smallest[key][0]:
            smallest[key] = (size, name)
    chosen = {name for _, name in smallest.values()}
    params = []
    for name in ppnets.list_models():
        param = model_param(name)
        if name not in chosen and pytest.mark.slow not in param.marks:
            param = pytest.param(name, id=name, marks=[*param.marks, pytest.mark.slow])
        params.append(param)
    return params


@pytest.mark.parametrize("name", _export_params())
def test_export_paddle_inference(name, tmp_path):
    """The deploy form (``deploy=True`` holding the fused weights) as a multi-output Paddle
    Inference program, every output against eager."""
    trained = ppnets.create_model(name, features_only=True)
    randomize_bn(trained)
    trained.eval()
    trained.reparameterize()
    model = ppnets.create_model(name, features_only=True, deploy=True)
    missing, unexpected = model.set_state_dict(trained.state_dict())
    assert not missing and not unexpected, f"{name}: deploy=True features-only structure " \
        f"differs: missing {missing[:5]}, unexpected {unexpected[:5]}"
    model.eval()
    x = _input(name)
    with paddle.no_grad():
        expected = _numpy(model(x))
        _assert_maps_equal(expected, _numpy(trained(x)),
                           f"{name}: deploy=True vs reparameterize()")
    model_file, params_file = export_program(model, _input_size(name), 1, str(tmp_path))
    got = run_predictor(create_predictor(model_file, params_file), x.numpy())
    _assert_maps_equal(got, expected, f"{name}: Paddle Inference vs eager", atol=EXPORT_ATOL)


# --- the factory's options (one small variant) -----------------------------------------------

def test_create_model_option_errors():
    with pytest.raises(ValueError, match="num_classes"):
        ppnets.create_model("fasternet_t0", features_only=True, num_classes=5)
    with pytest.raises(ValueError, match="features_only=True"):
        ppnets.create_model("fasternet_t0", out_indices=(1, 2))
    with pytest.raises(ValueError, match="out of range"):
        ppnets.create_model("fasternet_t0", features_only=True, out_indices=(0, 4))
    with pytest.raises(ValueError, match="empty"):
        ppnets.create_model("fasternet_t0", features_only=True, out_indices=())


def test_features_only_loads_everything_but_the_classifier(tmp_path, caplog):
    paddle.seed(1)
    full = ppnets.create_model("fasternet_t0")
    path = str(tmp_path / "full.pdparams")
    paddle.save(full.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="ppnets"):
        fb = ppnets.create_model("fasternet_t0", features_only=True, out_indices=(1, 3),
                                 pretrained=path)
    assert "classifier" in caplog.text
    assert fb.out_indices == (1, 3) and fb.feat_channels == [80, 320]
    full_state = full.state_dict()
    for key, value in fb.model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), full_state[key].numpy(), err_msg=key)
