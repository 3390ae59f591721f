"""LeViT-specific behaviour (registry-wide tests and tests/parity cover forward, export, parity)."""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppnets
from ppnets.models.levit import AttentionDownsample, LeViT, LinearBN, NormLinear
from tests.conftest import randomize_bn


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _tiny(**kw):
    """A 3-stage LeViT on 64x64 inputs (4x4 -> 2x2 -> 1x1 tokens), fast on CPU."""
    paddle.seed(0)
    cfg = dict(embed_dims=(32, 48, 64), key_dim=16, num_heads=(2, 3, 4), depths=(1, 1, 1),
               img_size=64, num_classes=5)
    cfg.update(kw)
    return LeViT(**cfg)


def _randomize_biases(model, seed=0):
    rng = np.random.RandomState(seed)
    for name, p in model.named_parameters():
        if name.endswith("attention_biases"):
            p.set_value(rng.uniform(-1, 1, p.shape).astype("float32"))


def test_registered_variant():
    assert ppnets.list_models("levit*") == ["levit_256"]
    info = ppnets.model_info("levit_256")
    assert info["reference"] == {"lib": "timm", "name": "levit_256"}
    assert (info["params_m"], info["macs_g"], info["top1"]) == (18.9, 1.12, 81.6)
    assert tuple(info["test_input_size"]) == (3, 224, 224)
    assert info["crop_pct"] == 0.9 and info["interpolation"] == "bicubic"


def test_levit_256_geometry_matches_the_paper():
    model = ppnets.create_model("levit_256")
    # paper Table 2 / timm: 14x14 -> 7x7 -> 4x4 tokens, widths 256/384/512, heads 4/6/8, D=32
    assert [s.resolution for s in model.stages] == [14, 7, 4]
    assert [len(s.blocks) for s in model.stages] == [4, 4, 4]
    attn = model.stages[0].blocks[0].attn
    assert (attn.num_heads, attn.key_dim, attn.val_dim) == (4, 32, 64)
    down = model.stages[1].downsample.attn_downsample
    assert (down.num_heads, down.val_dim) == (256 // 32, 4 * 32)  # heads = C/D, value ratio 4
    assert down.attention_bias_idxs.shape == [49, 196]
    assert model.stages[2].downsample.attn_downsample.attention_bias_idxs.shape == [16, 49]


def test_relative_bias_index_is_the_absolute_2d_offset():
    down = AttentionDownsample(8, 8, key_dim=4, num_heads=2, attn_ratio=2, resolution=5,
                               act="hardswish")
    idx = down.attention_bias_idxs.numpy()
    queries = [(y, x) for y in range(0, 5, 2) for x in range(0, 5, 2)]
    keys = [(y, x) for y in range(5) for x in range(5)]
    for i, (qy, qx) in enumerate(queries):
        for j, (ky, kx) in enumerate(keys):
            assert idx[i, j] == abs(qy - ky) * 5 + abs(qx - kx)


def test_linear_bn_folds_exactly():
    paddle.seed(0)
    layer = LinearBN(6, 5)
    randomize_bn(layer, seed=3)
    layer.eval()
    x = _x([2, 7, 6])
    bn = layer.bn
    y = x.numpy() @ layer.linear.weight.numpy()
    expected = (y - bn._mean.numpy()) / np.sqrt(bn._variance.numpy() + 1e-5) * bn.weight.numpy() \
        + bn.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=0, atol=1e-5)
    layer.reparameterize()
    assert set(layer.state_dict()) == {"linear.weight", "linear.bias"}
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=0, atol=1e-5)


def test_norm_linear_head_folds_exactly():
    paddle.seed(0)
    head = NormLinear(6, 3)
    randomize_bn(head, seed=4)
    head.eval()
    x = _x([4, 6])
    before = head(x).numpy()
    head.reparameterize()
    assert isinstance(head.bn, nn.Identity)
    np.testing.assert_allclose(head(x).numpy(), before, rtol=0, atol=1e-5)


def test_reparameterize_leaves_no_batchnorm():
    model = _tiny()
    randomize_bn(model)
    _randomize_biases(model)
    model.eval()
    x = _x([2, 3, 64, 64])
    with paddle.no_grad():
        before = model(x).numpy()
    model.reparameterize()
    assert not [n for n, l in model.named_sublayers()
                if isinstance(l, (nn.BatchNorm1D, nn.BatchNorm2D))]
    with paddle.no_grad():
        np.testing.assert_allclose(model(x).numpy(), before, rtol=0, atol=1e-5)


def _features(model, x):
    with paddle.no_grad():
        return model.forward_features(x).numpy()


def _fresh_features(state, x):
    fresh = _tiny()
    fresh.set_state_dict(state)
    fresh.eval()
    return _features(fresh, x)


def _state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_attention_bias_cache_is_eval_only_and_not_state():
    model = _tiny()
    randomize_bn(model)
    model.eval()
    x = _x([2, 3, 64, 64])
    _features(model, x)  # warm the eval-mode caches
    assert not [k for k in model.state_dict() if "cache" in k or "idxs" in k]
    model.train()
    model(x).mean().backward()
    for name, p in model.named_parameters():
        if name.endswith("attention_biases"):
            assert p.grad is not None, f"train mode must gather from the table: {name}"
    # an optimizer step in train mode, then eval: the eval output must use the new table
    _randomize_biases(model, seed=2)
    model.eval()
    np.testing.assert_allclose(_features(model, x), _fresh_features(_state(model), x),
                               rtol=0, atol=1e-6)


def test_set_state_dict_invalidates_the_cache():
    model = _tiny()
    randomize_bn(model)
    model.eval()
    x = _x([2, 3, 64, 64])
    stale = _features(model, x)  # caches hold the zero-initialised biases
    state = _state(model)
    rng = np.random.RandomState(1)
    for k in state:
        if k.endswith("attention_biases"):
            state[k] = rng.uniform(-3, 3, state[k].shape).astype("float32")
    attn, tokens = model.stages[0].blocks[0].attn, _x([2, 16, 32], seed=5)
    with paddle.no_grad():
        stale_attn = attn(tokens).numpy()
    model.set_state_dict(state)
    np.testing.assert_allclose(_features(model, x), _fresh_features(state, x), rtol=0, atol=1e-6)
    assert np.abs(_features(model, x) - stale).max() > 0
    with paddle.no_grad():
        new_attn = attn(tokens).numpy()
    assert np.abs(new_attn - stale_attn).max() > 1e-2  # the biases matter: a stale cache shows


def test_wrong_resolution_raises_clearly():
    model = ppnets.create_model("levit_256", num_classes=3)
    model.eval()
    with pytest.raises(ValueError, match="224x224"):
        model(_x([1, 3, 192, 192]))


def test_distillation_heads():
    model = _tiny()
    randomize_bn(model)
    x = _x([3, 3, 64, 64])
    model.eval()
    with paddle.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        avg = (model.head(feats) + model.head_dist(feats)) / 2
        np.testing.assert_allclose(model(x).numpy(), avg.numpy(), rtol=0, atol=1e-6)
    model.train()
    assert isinstance(model(x), paddle.Tensor)
    model.set_distilled_training(True)
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    model.eval()
    assert isinstance(model(x), paddle.Tensor)  # eval always averages


def test_timm_key_map():
    from ppnets.models.levit import _from_timm
    mapped = _from_timm({"stem.conv1.linear.weight": 1, "stages.1.downsample.attn_downsample."
                         "q.ln.linear.weight": 2, "stages.0.blocks.0.attn.proj.ln.bn.weight": 3,
                         "head_dist.linear.bias": 4,
                         "stages.0.blocks.0.attn.attention_bias_idxs": 5,
                         "stages.0.blocks.0.attn.qkv.linear.weight": 6})
    assert mapped == {"stem.conv1.conv.weight": 1,
                      "stages.1.downsample.attn_downsample.q.linear.weight": 2,
                      "stages.0.blocks.0.attn.proj.bn.weight": 3, "head_dist.l.bias": 4,
                      "stages.0.blocks.0.attn.qkv.linear.weight": 6}
