"""PoolFormer-specific behaviour. Parity with timm is in tests/parity; the registry-wide contract
(forward/backward, export, reparameterize, complexity) in tests/models/test_models.py."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.convert import convert_state_dict
from ppnets.models.poolformer import Pooling, PoolFormerBlock


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def test_pooling_mixer_excludes_padding():
    x = _x([1, 2, 5, 6])
    got = Pooling(3)(x).numpy()
    xn = x.numpy()
    # Hand-computed 3x3 average over the in-bounds neighbours only, minus the centre.
    expected = np.zeros_like(xn)
    for i in range(5):
        for j in range(6):
            win = xn[:, :, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            expected[:, :, i, j] = win.mean(axis=(2, 3)) - xn[:, :, i, j]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_block_uses_groupnorm_over_all_of_chw():
    block = PoolFormerBlock(4, layer_scale_init=1.0)
    block.eval()
    x = _x([2, 4, 3, 3], seed=1)
    xn = x.numpy()
    mean = xn.mean(axis=(1, 2, 3), keepdims=True)
    var = xn.var(axis=(1, 2, 3), keepdims=True)
    normed = (xn - mean) / np.sqrt(var + 1e-5)  # GroupNorm(1) with identity affine
    np.testing.assert_allclose(block.norm1(x).numpy(), normed, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,depths,ls_init", [
    ("poolformer_s12", (2, 2, 6, 2), 1e-5),
    ("poolformer_s24", (4, 4, 12, 4), 1e-5),
    ("poolformer_s36", (6, 6, 18, 6), 1e-6),
])
def test_structure(name, depths, ls_init):
    model = ppnets.create_model(name, num_classes=3)
    assert tuple(len(s.blocks) for s in model.stages) == depths
    assert isinstance(model.stages[0].downsample, paddle.nn.Identity)
    for i, dim in enumerate((128, 320, 512), start=1):
        conv = model.stages[i].downsample.conv
        assert conv.weight.shape == [dim, (64, 128, 320)[i - 1], 3, 3]
        assert conv._stride == [2, 2] and conv._padding == 1
    stem = model.stem.conv
    assert stem.weight.shape == [64, 3, 7, 7] and stem._stride == [4, 4] and stem._padding == 2
    gamma = model.stages[0].blocks[0].layer_scale1.gamma.numpy()
    np.testing.assert_allclose(gamma, np.full_like(gamma, ls_init), rtol=1e-6)


def test_head_normalises_after_pooling_and_any_size_runs():
    model = ppnets.create_model("poolformer_s12", num_classes=5)
    model.eval()
    for size in (64, 96):
        x = _x([1, 3, size, size], seed=size)
        with paddle.no_grad():
            feats = model.forward_features(x)
            assert feats.shape == [1, 512, size // 32, size // 32]
            pooled = model.forward_head(feats, pre_logits=True).numpy()
            assert model(x).shape == [1, 5]
        m = feats.numpy().mean(axis=(2, 3))
        norm = model.head.norm
        expected = (m - m.mean(-1, keepdims=True)) / np.sqrt(m.var(-1, keepdims=True) + 1e-6)
        expected = expected * norm.weight.numpy() + norm.bias.numpy()
        np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-4)


def test_timm_key_map_renames_layer_scale():
    model = ppnets.create_model("poolformer_s12", num_classes=3)
    ours = {k: v.numpy() for k, v in model.state_dict().items()}
    # The same tensors under timm's names: layer scale is `scale`, Linear weights [out, in].
    timm_like = {}
    for k, v in ours.items():
        k = k.replace(".layer_scale1.gamma", ".layer_scale1.scale")
        k = k.replace(".layer_scale2.gamma", ".layer_scale2.scale")
        timm_like[k] = v.T if k == "head.fc.weight" else v
    assert any(k.endswith("layer_scale1.scale") for k in timm_like)
    from ppnets.registry import get_entry
    out, report = convert_state_dict(model, timm_like, kind="torch",
                                     key_maps=get_entry("poolformer_s12").key_maps)
    assert report.ok, str(report)
    assert report.layout == "timm"
    for k, v in ours.items():
        np.testing.assert_array_equal(out[k], v)


def test_reparameterize_changes_nothing():
    model = ppnets.create_model("poolformer_s12", num_classes=3)
    model.eval()
    x = _x([1, 3, 64, 64])
    with paddle.no_grad():
        before = model(x).numpy()
    keys = set(model.state_dict())
    model.reparameterize()
    assert set(model.state_dict()) == keys
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), before)
