"""RepVGG family and the shared RepConvBN block (registry-wide and parity tests cover the rest)."""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppnets
from ppnets.layers import RepConvBN
from tests.conftest import (
    assert_reparameterize_keeps_output,
    deploy_form_output,
    randomize_bn,
    state_dict_signature,
)

NAMES = ppnets.list_models("repvgg_*")


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _bn_eval(bn, x):
    return ((x - bn._mean.reshape([1, -1, 1, 1])) / paddle.sqrt(bn._variance.reshape([1, -1, 1, 1])
            + bn._epsilon)) * bn.weight.reshape([1, -1, 1, 1]) + bn.bias.reshape([1, -1, 1, 1])


def test_registered_variants():
    assert NAMES == sorted(["repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1",
                            "repvgg_b1g2", "repvgg_b1g4", "repvgg_b2", "repvgg_b2g2", "repvgg_b2g4",
                            "repvgg_b3", "repvgg_b3g2", "repvgg_b3g4"])
    unpublished = {"repvgg_b2g2", "repvgg_b3g2"}  # official builders only: no weights, no figures
    for name in NAMES:
        info = ppnets.model_info(name)
        assert info["test_input_size"] == (3, 64, 64)
        if name.endswith("g2"):
            # timm has no g2 models: its RepVGG blocks at groups=2, sized like the g4 sibling
            assert info["reference"] == {"lib": "timm_repvgg_groups", "name": name[:-1] + "4",
                                         "kwargs": {"groups": 2}}
        else:
            assert info["reference"] == {"lib": "timm", "name": name}
        if name in unpublished:
            assert info.get("params_m") is None and info.get("top1") is None
            continue
        for key in ("params_m", "macs_g", "params_m_deploy", "macs_g_deploy", "top1"):
            assert info[key] > 0, (name, key)
        assert info["params_m_deploy"] < info["params_m"]
        assert info["macs_g_deploy"] < info["macs_g"]


def test_block_branches_follow_the_paper():
    # identity branch only where input and output shapes agree
    assert RepConvBN(8, 8, 3, stride=1).identity is not None
    assert RepConvBN(8, 8, 3, stride=2).identity is None
    assert RepConvBN(8, 16, 3, stride=1).identity is None
    # no 1x1 "scale" branch on a 1x1 conv
    assert RepConvBN(8, 16, 1).conv_scale is None
    assert RepConvBN(8, 16, 3, use_scale=False).conv_scale is None
    assert len(RepConvBN(8, 8, 3, num_conv_branches=3).conv_kxk) == 3
    with pytest.raises(ValueError, match="num_conv_branches"):
        RepConvBN(8, 8, 3, num_conv_branches=0)


def test_block_train_form_is_the_sum_of_its_branches():
    paddle.seed(1)
    block = RepConvBN(4, 4, 3, groups=2, act=None)
    randomize_bn(block, seed=1)
    block.eval()
    x = _x([2, 4, 9, 9])
    conv = lambda c, k: F.conv2d(x, c.conv.weight, padding=k // 2, groups=2)  # noqa: E731
    expected = (_bn_eval(block.conv_kxk[0].bn, conv(block.conv_kxk[0], 3))
                + _bn_eval(block.conv_scale.bn, conv(block.conv_scale, 1))
                + _bn_eval(block.identity, x))
    with paddle.no_grad():
        np.testing.assert_allclose(block(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups,stride,branches", [(1, 1, 1), (2, 1, 3), (4, 2, 1), (8, 1, 2)])
def test_block_fuses_into_one_conv(groups, stride, branches):
    paddle.seed(2)
    block = RepConvBN(8, 8, 3, stride=stride, groups=groups, num_conv_branches=branches)
    randomize_bn(block, seed=2)
    block.eval()
    x = _x([2, 8, 11, 11])
    with paddle.no_grad():
        before = block(x).numpy()
    block.reparameterize()
    assert len(block.conv_kxk) == 1 and block.conv_scale is None and block.identity is None
    assert isinstance(block.conv_kxk[0].bn, nn.Identity)
    assert sorted(block.state_dict()) == ["conv_kxk.0.conv.bias", "conv_kxk.0.conv.weight"]
    with paddle.no_grad():
        np.testing.assert_allclose(block(x).numpy(), before, rtol=1e-5, atol=1e-5)
    state = block.state_dict()
    block.reparameterize()  # idempotent
    for key, value in block.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key].numpy())


@pytest.mark.parametrize("name,groups", [("repvgg_b1g4", 4), ("repvgg_b1g2", 2)])
def test_grouped_layers_are_every_other_layer(name, groups):
    model = ppnets.create_model(name, num_classes=10)
    for stage in model.stages:
        for j, layer in enumerate(stage):
            assert layer.groups == (groups if j % 2 == 1 else 1), (j, layer.groups)
    # The official g2_map/g4_map: global layer indices 2, 4, ..., 26 (stem = 0), 13 layers
    assert sum(layer.groups == groups for stage in model.stages for layer in stage) == 13


def test_widths_match_paper_table():
    model = ppnets.create_model("repvgg_a0", num_classes=10)
    assert model.stem.out_channels == 48
    assert [stage[0].out_channels for stage in model.stages] == [48, 96, 192, 1280]
    assert [len(stage) for stage in model.stages] == [2, 4, 14, 1]
    model = ppnets.create_model("repvgg_b2", num_classes=10)
    assert model.stem.out_channels == 64
    assert [stage[0].out_channels for stage in model.stages] == [160, 320, 640, 2560]
    assert [len(stage) for stage in model.stages] == [4, 6, 16, 1]
    assert model.num_features == 2560


def test_reparameterized_model_is_a_plain_3x3_stack():
    paddle.seed(0)
    model = ppnets.create_model("repvgg_a0", num_classes=10)
    randomize_bn(model)
    model.eval()
    x = _x([2, 3, 64, 64])
    with paddle.no_grad():
        before = model(x).numpy()
    train_keys = set(model.state_dict())
    model.reparameterize()
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * np.abs(before).max())
    layers = model.sublayers()
    assert not any(isinstance(m, nn.BatchNorm2D) for m in layers)
    convs = [m for m in layers if isinstance(m, nn.Conv2D)]
    assert len(convs) == 1 + 2 + 4 + 14 + 1
    assert all(tuple(c.weight.shape[2:]) == (3, 3) and c.bias is not None for c in convs)
    fused = set(model.state_dict())
    assert fused < train_keys | {k for k in fused if k.endswith(".bias")}
    assert not any("conv_scale" in k or "identity" in k or ".bn." in k for k in fused)

    deployed = ppnets.create_model("repvgg_a0", num_classes=10, deploy=True)
    np.testing.assert_array_equal(deploy_form_output(deployed, model.state_dict(), x), after)


def test_timm_key_map():
    entry = ppnets.registry.get_entry("repvgg_a0")
    mapped = entry.key_maps["timm"]({
        "stem.conv_kxk.conv.weight": 0, "stem.conv_kxk.bn._mean": 0, "stem.conv_1x1.bn.bias": 0,
        "stages.0.1.identity._variance": 0, "stages.3.0.reparam_conv.bias": 0,
        "head.fc.weight": 0})
    assert sorted(mapped) == sorted([
        "stem.conv_kxk.0.conv.weight", "stem.conv_kxk.0.bn._mean", "stem.conv_scale.bn.bias",
        "stages.0.1.identity._variance", "stages.3.0.conv_kxk.0.conv.bias", "head.fc.weight"])
    model = ppnets.create_model("repvgg_a0")
    ours = set(model.state_dict())
    assert {"stem.conv_kxk.0.conv.weight", "stem.conv_scale.bn.bias",
            "stages.0.1.identity._variance", "head.fc.weight"} <= ours


def test_drop_path_only_on_layers_with_identity():
    model = ppnets.create_model("repvgg_a0", num_classes=10, drop_path_rate=0.1)
    for stage in model.stages:
        for j, layer in enumerate(stage):
            has_drop = not isinstance(layer.drop_path, nn.Identity)
            assert has_drop == (layer.identity is not None and layer.drop_path.drop_prob > 0)


# ---- the paper's branch ablation (Sec. 4.2): use_identity / use_1x1 ---------------------------

def test_default_state_dict_unchanged_by_branch_keywords():
    # recorded from repvgg_a0(num_classes=10) before use_identity/use_1x1 existed
    default = ppnets.create_model("repvgg_a0", num_classes=10)
    assert len(default.state_dict()) == 290
    assert state_dict_signature(default) == "d1d11ffb19b23310"


_SMALL = dict(depths=(1, 2, 2, 1), width_multipliers=(0.25, 0.25), num_classes=5)


@pytest.mark.parametrize("use_identity,use_1x1", [(True, True), (True, False), (False, True),
                                                  (False, False)])
def test_branch_ablation_builds_trains_and_fuses(use_identity, use_1x1):
    from ppnets.models.repvgg import RepVGG

    paddle.seed(3)
    model = RepVGG(use_identity=use_identity, use_1x1=use_1x1, drop_path_rate=0.1, **_SMALL)
    layers = [model.stem] + [layer for stage in model.stages for layer in stage]
    assert all((layer.conv_scale is not None) == use_1x1 for layer in layers)
    same_shape = [layer.in_channels == layer.out_channels and layer.stride == 1
                  for layer in layers]
    assert any(same_shape)
    assert [layer.identity is not None for layer in layers] == \
        [s and use_identity for s in same_shape]
    keys = set(model.state_dict())
    assert any("conv_scale" in k for k in keys) == use_1x1
    assert any(".identity." in k for k in keys) == use_identity
    x = _x([2, 3, 32, 32])
    out = model(x)
    out.sum().backward()
    assert model.stem.conv_kxk[0].conv.weight.grad is not None

    randomize_bn(model, seed=3)
    after = assert_reparameterize_keeps_output(model, x)
    assert not any(isinstance(m, nn.BatchNorm2D) for m in model.sublayers())
    # every branch setting deploys to the same plain 3x3 model
    deployed = RepVGG(deploy=True, **_SMALL)
    np.testing.assert_array_equal(deploy_form_output(deployed, model.state_dict(), x), after)
