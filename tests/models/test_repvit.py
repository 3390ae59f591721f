"""RepViT family: token mixer fusion, distillation head, structure (registry-wide and parity tests
cover the rest)."""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppnets
from ppnets.layers import BNLinear, SqueezeExcite
from ppnets.models.repvit import RepDWConv, RepViTBlock
from tests.conftest import (
    assert_reparameterize_keeps_output,
    deploy_form_output,
    randomize_bn,
    state_dict_signature,
)

NAMES = ppnets.list_models("repvit_*")


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _model(name="repvit_m0_9", **kw):
    paddle.seed(0)
    model = ppnets.create_model(name, num_classes=10, **kw)
    randomize_bn(model)
    return model


def test_registered_variants():
    assert NAMES == ["repvit_m0_9", "repvit_m1_0", "repvit_m1_1", "repvit_m1_5", "repvit_m2_3"]
    for name in NAMES:
        info = ppnets.model_info(name)
        assert info["reference"] == {"lib": "timm", "name": name}
        for key in ("params_m", "macs_g", "params_m_deploy", "macs_g_deploy", "top1"):
            assert info[key] > 0, (name, key)
        assert info["params_m_deploy"] < info["params_m"]
        assert (info["crop_pct"], info["interpolation"]) == (0.95, "bicubic")


def test_token_mixer_matches_its_definition_and_fuses():
    paddle.seed(3)
    mixer = RepDWConv(6)
    randomize_bn(mixer, seed=3)
    mixer.eval()
    x = _x([2, 6, 7, 7])
    conv = mixer.conv
    bn3 = conv.bn
    y3 = F.conv2d(x, conv.conv.weight, padding=1, groups=6)
    y3 = (y3 - bn3._mean.reshape([1, -1, 1, 1])) / paddle.sqrt(
        bn3._variance.reshape([1, -1, 1, 1]) + bn3._epsilon) * bn3.weight.reshape([1, -1, 1, 1]) \
        + bn3.bias.reshape([1, -1, 1, 1])
    y1 = F.conv2d(x, mixer.conv1.weight, mixer.conv1.bias, groups=6)
    s = y3 + y1 + x
    bn = mixer.bn
    expected = (s - bn._mean.reshape([1, -1, 1, 1])) / paddle.sqrt(
        bn._variance.reshape([1, -1, 1, 1]) + bn._epsilon) * bn.weight.reshape([1, -1, 1, 1]) \
        + bn.bias.reshape([1, -1, 1, 1])
    with paddle.no_grad():
        before = mixer(x).numpy()
    np.testing.assert_allclose(before, expected.numpy(), rtol=1e-5, atol=1e-5)
    mixer.reparameterize()
    assert sorted(mixer.state_dict()) == ["conv.conv.bias", "conv.conv.weight"]
    assert mixer.conv.conv.weight.shape == [6, 1, 3, 3]
    with paddle.no_grad():
        np.testing.assert_allclose(mixer(x).numpy(), before, rtol=1e-5, atol=1e-5)
    mixer.reparameterize()  # idempotent
    assert sorted(mixer.state_dict()) == ["conv.conv.bias", "conv.conv.weight"]


def test_structure_m0_9():
    model = ppnets.create_model("repvit_m0_9", num_classes=10)
    assert model.stem.conv1.conv.weight.shape == [24, 3, 3, 3]
    assert model.stem.conv2.conv.weight.shape == [48, 24, 3, 3]
    assert isinstance(model.stages[0].downsample, nn.Identity)
    for stage, depth in zip(model.stages, (2, 2, 14, 2)):
        blocks = list(stage.blocks)
        assert len(blocks) == depth
        # SE in alternate blocks, starting with the first
        assert [isinstance(b.se, SqueezeExcite) for b in blocks] == \
            [i % 2 == 0 for i in range(depth)]
        dim = blocks[0].token_mixer.dim
        assert blocks[0].channel_mixer.conv1.conv.weight.shape == [2 * dim, dim, 1, 1]
    ds = model.stages[1].downsample
    assert not isinstance(ds.pre_block.se, SqueezeExcite)
    assert ds.spatial_downsample.conv.weight.shape == [48, 1, 3, 3]
    assert ds.spatial_downsample.conv._stride == [2, 2]
    assert ds.channel_downsample.conv.weight.shape == [96, 48, 1, 1]
    # timm SqueezeExcite(dim, 0.25): 48 -> 16 (make_divisible(12, 8))
    assert model.stages[0].blocks[0].se.conv_reduce.weight.shape[:2] == [16, 48]
    assert model.num_features == 384


def test_distillation_head_averages():
    model = _model()
    x = _x([2, 3, 64, 64])
    model.eval()
    with paddle.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        a, b = model.head.head(feats), model.head.head_dist(feats)
        out = model(x)
    np.testing.assert_allclose(out.numpy(), ((a + b) / 2).numpy(), rtol=1e-6, atol=1e-6)

    model.train()
    out = model(x)
    assert isinstance(out, paddle.Tensor) and out.shape == [2, 10]
    model.set_distilled_training(True)
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    model.eval()
    assert isinstance(model(x), paddle.Tensor)  # eval always averages

    plain = _model(distillation=False)
    assert plain.head.head_dist is None


def test_reparameterize_full_model():
    model = _model()
    model.eval()
    x = _x([2, 3, 64, 64])
    train_keys = set(model.state_dict())
    after = assert_reparameterize_keeps_output(model, x)
    fused = set(model.state_dict())
    assert fused <= train_keys | {k for k in fused if k.endswith(".bias")}
    assert not any("head_dist" in k or "conv1.weight" in k and "token_mixer" in k for k in fused)
    assert not any(isinstance(m, (nn.BatchNorm2D, nn.BatchNorm1D)) for m in model.sublayers())
    assert isinstance(model.head.head, BNLinear) and isinstance(model.head.head.bn, nn.Identity)
    model.reparameterize()
    assert set(model.state_dict()) == fused
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), after)

    deployed = ppnets.create_model("repvit_m0_9", num_classes=10, deploy=True)
    np.testing.assert_array_equal(deploy_form_output(deployed, model.state_dict(), x), after)


def test_reset_classifier_keeps_head_type():
    model = _model()
    model.reset_classifier(5)
    assert model.head.head_dist is not None
    model.eval()
    assert model(_x([1, 3, 64, 64])).shape == [1, 5]
    model.reset_classifier(0)
    assert model(_x([1, 3, 64, 64])).shape == [1, model.num_features]


def test_drop_path_schedule():
    model = ppnets.create_model("repvit_m0_9", num_classes=10, drop_path_rate=0.2)
    rates = []
    for stage in model.stages:
        if not isinstance(stage.downsample, nn.Identity):
            rates.append(getattr(stage.downsample.drop_path, "drop_prob", 0.0))
        rates += [getattr(b.drop_path, "drop_prob", 0.0) for b in stage.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert all(b >= a for a, b in zip(rates, rates[1:]))


def test_block_residual():
    paddle.seed(0)
    block = RepViTBlock(8, use_se=False)
    block.eval()
    x = _x([1, 8, 5, 5])
    # FFN's last BN starts at weight 0: the block is the token mixer at init
    with paddle.no_grad():
        np.testing.assert_allclose(block(x).numpy(), block.token_mixer(x).numpy(), atol=1e-6)


def test_timm_key_map():
    fn = ppnets.registry.get_entry("repvit_m0_9").key_maps["timm"]
    mapped = fn({"stem.conv1.c.weight": 0, "stem.conv1.bn._mean": 0,
                 "stages.0.blocks.0.token_mixer.conv.c.weight": 0,
                 "stages.0.blocks.0.token_mixer.conv1.weight": 0,
                 "stages.0.blocks.0.se.fc1.weight": 0, "stages.0.blocks.0.se.fc2.bias": 0,
                 "head.head_dist.l.weight": 0})
    assert sorted(mapped) == sorted([
        "stem.conv1.conv.weight", "stem.conv1.bn._mean",
        "stages.0.blocks.0.token_mixer.conv.conv.weight",
        "stages.0.blocks.0.token_mixer.conv1.weight",
        "stages.0.blocks.0.se.conv_reduce.weight", "stages.0.blocks.0.se.conv_expand.bias",
        "head.head_dist.l.weight"])
    ours = set(ppnets.create_model("repvit_m0_9").state_dict())
    assert set(mapped) <= ours


# ---- roadmap knobs: deep_downsample, se_layout ------------------------------------------------

def test_default_state_dict_unchanged_by_roadmap_keywords():
    # recorded from repvit_m0_9(num_classes=10) before deep_downsample/se_layout existed
    default = ppnets.create_model("repvit_m0_9", num_classes=10)
    assert len(default.state_dict()) == 605
    assert state_dict_signature(default) == "8230b07483441488"
    with pytest.raises(ValueError, match="se_layout"):
        ppnets.create_model("repvit_m0_9", se_layout="every")


_TINY = dict(embed_dims=(8, 16, 24, 32), depths=(1, 3, 2, 1), num_classes=5)


@pytest.mark.parametrize("deep,se_layout", [(False, "alternate"), (True, "all"),
                                            (True, "none"), (False, "none")])
def test_roadmap_knobs_build_train_and_fuse(deep, se_layout):
    from ppnets.models.repvit import RepViT

    kw = dict(_TINY, deep_downsample=deep, se_layout=se_layout, kernel_size=5, mlp_ratio=4)
    paddle.seed(0)
    model = RepViT(drop_path_rate=0.1, **kw)
    for stage in model.stages[1:]:
        down = stage.downsample
        assert (down.pre_block is not None) == deep and (down.ffn is not None) == deep
        assert down.spatial_downsample.conv._stride == [2, 2]
        assert down.spatial_downsample.conv.weight.shape[2:] == [5, 5]
    expected = {"alternate": lambda i: i % 2 == 0, "all": lambda i: True,
                "none": lambda i: False}[se_layout]
    for stage in model.stages:
        assert [isinstance(b.se, SqueezeExcite) for b in stage.blocks] == \
            [expected(i) for i in range(len(stage.blocks))]
    keys = set(model.state_dict())
    assert any(".downsample.pre_block." in k for k in keys) == deep
    assert any(".downsample.ffn." in k for k in keys) == deep
    x = _x([2, 3, 32, 32])
    out = model(x)
    out.sum().backward()
    assert model.stem.conv1.conv.weight.grad is not None

    model = RepViT(**kw)
    randomize_bn(model)
    after = assert_reparameterize_keeps_output(model, x)
    deployed = RepViT(deploy=True, **kw)
    np.testing.assert_array_equal(deploy_form_output(deployed, model.state_dict(), x), after)
