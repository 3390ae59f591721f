"""EfficientFormer (V1) specifics and the attention-bias cache shared with EfficientFormerV2.

Parity with timm is in tests/parity; the registry-wide contract in tests/models/test_models.py.
"""
from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.convert import convert_state_dict
from ppnets.layers import LayerScale
from ppnets.layers.attention_bias import AttentionBiasCache, relative_bias_index
from ppnets.models.efficientformer import Flat, Meta3D, Meta4D
from ppnets.registry import get_entry
from tests.conftest import float64_model, randomize_bn, state_dict_signature

BIAS_MODELS = ["efficientformer_l1", "efficientformerv2_s0"]


def _x(shape=(1, 3, 224, 224), seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _model(name, seed=0, **kw):
    paddle.seed(seed)
    model = ppnets.create_model(name, num_classes=5, **kw)
    randomize_bn(model, seed)
    rng = np.random.RandomState(seed + 1)
    for layer in _attn_layers(model):  # zero-initialised tables would hide every bias bug
        b = layer.attention_biases
        b.set_value(rng.standard_normal(b.shape).astype("float32"))
    # Layer scale at 1e-5 and Linear weights at std 0.02 (timm's init) make the attention
    # branch invisible in the logits: open the attention branches (only them, the pooling
    # blocks would blow the activations up) and give the Linears unit gain.
    for layer in model.sublayers():
        if isinstance(getattr(layer, "token_mixer", None), AttentionBiasCache):
            g = layer.ls1.gamma
            g.set_value(rng.uniform(0.5, 1.5, g.shape).astype("float32"))
        elif isinstance(layer, paddle.nn.Linear):
            w = layer.weight
            w.set_value((rng.standard_normal(w.shape) / np.sqrt(w.shape[0])).astype("float32"))
    return model


def _attn_layers(model):
    return [l for l in model.sublayers() if isinstance(l, AttentionBiasCache)]


def _run(model, x):
    with paddle.no_grad():
        return model(x).numpy()


# ---------------------------------------------------------------- relative position index

def test_relative_bias_index_by_hand():
    # 2x2 grid, tokens (0,0) (0,1) (1,0) (1,1); entry = |dy| * 2 + |dx|
    np.testing.assert_array_equal(relative_bias_index((2, 2)),
                                  [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
    # Strided queries (EfficientFormerV2 downsampling attention): 3x3 keys, queries at
    # (0,0) (0,2) (2,0) (2,2); key (1,1) is one step away on both axes from every query.
    idx = relative_bias_index((3, 3), query_step=2)
    assert idx.shape == (4, 9)
    np.testing.assert_array_equal(idx[:, 4], [4, 4, 4, 4])
    np.testing.assert_array_equal(idx[3], [8, 7, 6, 5, 4, 3, 2, 1, 0])


# ---------------------------------------------------------------- bias cache

@pytest.mark.parametrize("name", BIAS_MODELS)
def test_bias_cache_used_in_eval_and_dropped_by_train(name):
    model = _model(name)
    model.eval()
    x = _x()
    first = _run(model, x)
    layers = _attn_layers(model)
    assert layers and all(l.attention_bias_cache is not None for l in layers)
    # Change the table behind the cache's back: eval keeps using the cached gather...
    rng = np.random.RandomState(7)  # not a constant shift: softmax would ignore that
    for l in layers:
        b = l.attention_biases
        b.set_value(b.numpy() + rng.standard_normal(b.shape).astype("float32"))
    np.testing.assert_array_equal(_run(model, x), first)
    # ...until train() invalidates it; the next eval sees the new table.
    model.train()
    assert all(l.attention_bias_cache is None for l in layers)
    model.eval()
    changed = _run(model, x)
    assert np.abs(changed - first).max() > 1e-3


@pytest.mark.parametrize("name", BIAS_MODELS)
def test_train_mode_forward_never_uses_the_cache(name):
    model = _model(name)
    model.eval()
    _run(model, _x())
    layer = _attn_layers(model)[0]
    layer.training = True  # a sublayer flipped alone, as Paddle's Layer.train() does
    bias = layer.attention_bias()
    assert layer.attention_bias_cache is None
    layer.attention_biases.set_value(layer.attention_biases.numpy() * 0 + 3.0)
    np.testing.assert_array_equal(layer.attention_bias().numpy(), np.full(bias.shape, 3.0))


@pytest.mark.parametrize("name", BIAS_MODELS)
def test_bias_cache_dropped_by_set_state_dict(name):
    model = _model(name, seed=0)
    model.eval()
    x = _x()
    _run(model, x)  # warm cache holds model 0's biases
    other = _model(name, seed=1)
    other.eval()
    expected = _run(other, x)
    model.set_state_dict(other.state_dict())
    np.testing.assert_allclose(_run(model, x), expected, rtol=0, atol=1e-6)
    # Loading into the attention layer itself invalidates too.
    layer = _attn_layers(model)[0]
    state = layer.state_dict()
    state["attention_biases"] = paddle.zeros_like(state["attention_biases"])
    layer.set_state_dict(state)
    assert layer.attention_bias_cache is None


@pytest.mark.parametrize("name", BIAS_MODELS)
def test_bias_buffers_are_not_persistable(name):
    model = _model(name)
    model.eval()
    _run(model, _x())
    keys = list(model.state_dict())
    assert any(k.endswith("attention_biases") for k in keys)
    assert not any("attention_bias_idxs" in k or "cache" in k for k in keys)


@pytest.mark.parametrize("name", BIAS_MODELS)
def test_export_bakes_the_bias_as_a_constant(name, tmp_path):
    model = _model(name)
    model.eval()
    x = _x()
    expected = _run(model, x)
    prefix = str(tmp_path / "model")
    paddle.jit.save(model, prefix,
                    input_spec=[paddle.static.InputSpec([None, 3, 224, 224], "float32", "x")])
    with open(prefix + ".json") as f:
        program = json.dumps(json.load(f))
    # No gather runs at inference: the eval-mode bias went in as a constant tensor.
    assert '"1.gather"' not in program and "gather" not in program.replace("all_gather", "")
    loaded = paddle.jit.load(prefix)
    loaded.eval()
    with paddle.no_grad():
        got = loaded(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_wrong_resolution_error_names_the_input_size():
    model = _model("efficientformer_l1")
    model.eval()
    with pytest.raises(ValueError, match=r"7x7 token grid.*224x224.*8x8"):
        _run(model, _x((1, 3, 256, 256)))
    # 193..224 all give the 7x7 grid the tables were built for
    assert _run(model, _x((1, 3, 200, 200))).shape == (1, 5)


# ---------------------------------------------------------------- V1 structure

@pytest.mark.parametrize("name,layout", [
    # timm's blocks of the last stage: Meta4D (4), the Flat reshape (F), Meta3D (3)
    ("efficientformer_l1", "444F3"),
    ("efficientformer_l3", "44F3333"),
    ("efficientformer_l7", "F33333333"),
])
def test_last_stage_layout_and_attention_shapes(name, layout):
    model = ppnets.create_model(name, num_classes=5)
    kinds = {Meta4D: "4", Flat: "F", Meta3D: "3"}
    assert "".join(kinds[type(b)] for b in model.stages[-1].blocks) == layout
    attn = model.stages[-1].blocks[-1].token_mixer
    dim = get_entry(name).cfg["dims"][-1]
    assert attn.qkv.weight.shape == [dim, 8 * (32 + 32 + 128)]
    assert attn.attention_biases.shape == [8, 49]
    assert attn.attention_bias_idxs.shape == [49, 49]
    assert all(len(s.blocks) == d for s, d in zip(model.stages[:-1], get_entry(name).cfg["depths"]))


def test_distillation_heads():
    model = _model("efficientformer_l1")
    model.eval()
    x = _x()
    with paddle.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        avg = ((model.head(pooled) + model.head_dist(pooled)) / 2).numpy()
        np.testing.assert_allclose(model(x).numpy(), avg, rtol=0, atol=1e-6)
    model.train()
    assert isinstance(model(x), paddle.Tensor)  # default: the average in train mode too
    model.set_distilled_training(True)
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    model.eval()
    assert isinstance(model(x), paddle.Tensor)


def test_reparameterize_folds_every_conv_bn():
    model = _model("efficientformer_l1")
    model.eval()
    x = _x()
    before = _run(model, x)
    model.reparameterize()
    assert not [l for l in model.sublayers() if isinstance(l, paddle.nn.BatchNorm2D)]
    keys = list(model.state_dict())
    assert not [k for k in keys if k.endswith("_mean")]
    assert "stem.conv1.bias" in keys and "stages.0.blocks.0.mlp.fc1.bias" in keys
    np.testing.assert_allclose(_run(model, x), before, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(before).max()))


def test_timm_key_map_drops_persistent_index_buffers():
    model = ppnets.create_model("efficientformer_l1", num_classes=5)
    ours = {k: v.numpy() for k, v in model.state_dict().items()}
    linear = {f"{n}.weight" for n, l in model.named_sublayers() if isinstance(l, paddle.nn.Linear)}
    timm_like = {k: (v.T if k in linear else v) for k, v in ours.items()}
    # timm v1 registers attention_bias_idxs as a persistent buffer
    timm_like["stages.3.blocks.4.token_mixer.attention_bias_idxs"] = relative_bias_index((7, 7))
    _, report = convert_state_dict(model, timm_like, kind="torch",
                                   key_maps=get_entry("efficientformer_l1").key_maps)
    assert report.ok, str(report)
    assert report.layout == "timm"


# ---------------------------------------------------------------- img_size

def test_default_state_dict_unchanged_by_img_size():
    # recorded from efficientformer_l1(num_classes=10) before img_size existed
    default = ppnets.create_model("efficientformer_l1", num_classes=10)
    assert len(default.state_dict()) == 247
    assert state_dict_signature(default) == "e018b6d6c3870c5b"


# L1's layout, narrower: keeps the builds below fast
_TINY_V1 = dict(depths=(1, 1, 1, 2), dims=(8, 16, 24, 32), num_vit=1, num_classes=5)


@pytest.mark.parametrize("img_size,grid", [(64, (2, 2)), ((64, 96), (2, 3)), (72, (3, 3))])
def test_img_size_sizes_the_bias_tables(img_size, grid):
    from ppnets.models.efficientformer import EfficientFormer

    paddle.seed(0)
    model = EfficientFormer(img_size=img_size, **_TINY_V1)
    attn = model.stages[-1].blocks[-1].token_mixer
    n = grid[0] * grid[1]
    assert attn.attention_biases.shape == [8, n] and attn.attention_bias_idxs.shape == [n, n]
    np.testing.assert_array_equal(attn.attention_bias_idxs.numpy(), relative_bias_index(grid))
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    x = _x((2, 3, h, w))
    out = model(x)
    assert out.shape == [2, 5]
    out.sum().backward()
    assert attn.attention_biases.grad is not None
    expected = rf"{grid[0]}x{grid[1]} token grid.*{h}x{w} input.*img_size"
    with pytest.raises(ValueError, match=expected):
        _run(model, _x((1, 3, 224, 224)))


def test_img_size_64_cache_reparameterize_and_deploy():
    from ppnets.models.efficientformer import EfficientFormer

    paddle.seed(0)
    model = EfficientFormer(img_size=64, **_TINY_V1)
    randomize_bn(model)
    attn = _attn_layers(model)[0]
    rng = np.random.RandomState(0)
    attn.attention_biases.set_value(rng.standard_normal([8, 4]).astype("float32"))
    model.stages[-1].blocks[-1].ls1.gamma.set_value(np.ones([32], "float32"))  # open the branch
    model.eval()
    x = _x((2, 3, 64, 64))
    before = _run(model, x)
    assert attn.attention_bias_cache is not None and attn.attention_bias_cache.shape == [8, 4, 4]
    attn.attention_biases.set_value(rng.standard_normal([8, 4]).astype("float32"))
    np.testing.assert_array_equal(_run(model, x), before)  # cached in eval...
    model.train()
    assert attn.attention_bias_cache is None                # ...dropped by train()
    model.eval()
    after_change = _run(model, x)
    assert np.abs(after_change - before).max() > 1e-4      # the new table is used now
    before = after_change
    model.reparameterize()
    np.testing.assert_allclose(_run(model, x), before, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(before).max()))
    deployed = EfficientFormer(img_size=64, deploy=True, **_TINY_V1)
    missing, unexpected = deployed.set_state_dict(model.state_dict())
    assert not missing and not unexpected
    deployed.eval()
    np.testing.assert_allclose(_run(deployed, x), _run(model, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", BIAS_MODELS)
def test_reparameterize_folds_layer_scales_exactly(name):
    """Layer scales after a linear layer fold into it (V1: Meta4D ls2, Meta3D ls1/ls2; V2: all):
    with random gammas and BN statistics the fused model computes the same function (float64)."""
    paddle.seed(0)
    model = float64_model(lambda: ppnets.create_model(name, num_classes=5))
    rng = np.random.RandomState(0)
    for layer in model.sublayers():
        if isinstance(layer, LayerScale):  # trained gammas are O(0.1-1), far from the 1e-5 init
            layer.gamma.set_value(rng.uniform(0.1, 0.5, layer.gamma.shape))
        for param in (layer.parameters() if isinstance(layer, paddle.nn.BatchNorm2D) else []):
            param.set_value(rng.uniform(0.5, 1.5, param.shape))
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer._mean.set_value(rng.uniform(-0.2, 0.2, layer._mean.shape))
            layer._variance.set_value(rng.uniform(0.5, 1.5, layer._variance.shape))
    model.eval()
    x = paddle.to_tensor(np.random.RandomState(1).standard_normal((1, 3, 224, 224)))
    before = model(x).numpy()
    model.reparameterize()
    kept = [n for n, l in model.named_sublayers() if isinstance(l, LayerScale)]
    expected = [n for n in kept if n.endswith(".ls1") and isinstance(
        model.stages[int(n.split(".")[1])].blocks[int(n.split(".")[3])], Meta4D)]
    assert kept == expected  # only V1's Meta4D ls1 (it scales pool(x) - x, not a linear output)
    after = model(x).numpy()
    assert after.dtype == np.float64
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-10 * max(1.0, np.abs(before).max()))
    model.reparameterize()  # idempotent
    np.testing.assert_array_equal(model(x).numpy(), after)
