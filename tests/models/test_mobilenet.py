"""MobileNet V1/V2/V3: structure against the papers' tables, the V3 gates, export ops, BN folding.

The expected tables below are typed from the papers (V1 Table 1, V2 Table 2, V3 Tables 1 and 2),
not derived from ppnets' own stage tables. Numerical agreement with timm is in tests/parity; the
generic model contract (backward, export, reparameterize, counts) in tests/models/test_models.py.
"""
from __future__ import annotations

import json

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppnets
from ppnets.layers import HardSigmoid, HardSwish, ReLU6
from ppnets.models.mobilenet import ConvBNBlock, DepthwiseSeparable, InvertedResidual
from tests.conftest import randomize_bn


def _blocks(model):
    return [b for stage in model.blocks for b in stage]


def _act_kind(layer):
    return {nn.ReLU: "RE", ReLU6: "RE6", HardSwish: "HS", nn.Identity: None}[type(layer)]


# ------------------------------------------------------------------------------------------
# MobileNetV1 (paper Table 1)
# ------------------------------------------------------------------------------------------

# (output channels, stride) of the 13 depthwise separable layers.
V1_TABLE = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
    [(1024, 2), (1024, 1)]


def test_mobilenetv1_structure():
    model = ppnets.create_model("mobilenetv1_100")
    assert model.stem.conv.weight.shape == [32, 3, 3, 3] and model.stem.conv._stride == [2, 2]
    blocks = _blocks(model)
    assert len(blocks) == 13
    in_chs = 32
    for block, (out_chs, stride) in zip(blocks, V1_TABLE):
        assert isinstance(block, DepthwiseSeparable)
        assert block.conv_dw.conv.weight.shape == [in_chs, 1, 3, 3]
        assert block.conv_dw.conv._stride == [stride, stride]
        assert block.conv_pw.conv.weight.shape == [out_chs, in_chs, 1, 1]
        # BN + ReLU(6) after both convs, and no residual anywhere in V1.
        assert _act_kind(block.conv_dw.act) == "RE6" and _act_kind(block.conv_pw.act) == "RE6"
        assert not block.has_skip
        in_chs = out_chs
    assert model.num_features == 1024 and isinstance(model.conv_head, nn.Identity)
    assert ppnets.create_model("mobilenetv1_125").num_features == 1280


# ------------------------------------------------------------------------------------------
# MobileNetV2 (paper Table 2)
# ------------------------------------------------------------------------------------------

# (t, c, n, s) rows of Table 2 between the stem (32) and the 1x1 conv to 1280.
V2_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]


def test_mobilenetv2_bottlenecks_follow_table2():
    model = ppnets.create_model("mobilenetv2_100")
    assert [len(stage) for stage in model.blocks] == [n for _, _, n, _ in V2_TABLE]
    in_chs = 32
    n_residual = 0
    for stage, (t, c, n, s) in zip(model.blocks, V2_TABLE):
        for i, block in enumerate(stage):
            stride = s if i == 0 else 1
            if t == 1:  # no expansion conv: depthwise, then the linear projection
                assert isinstance(block, DepthwiseSeparable)
                dw, proj = block.conv_dw, block.conv_pw
            else:
                assert isinstance(block, InvertedResidual)
                assert block.conv_pw.conv.weight.shape == [t * in_chs, in_chs, 1, 1]
                assert _act_kind(block.conv_pw.act) == "RE6"
                dw, proj = block.conv_dw, block.conv_pwl
            assert dw.conv.weight.shape == [t * in_chs, 1, 3, 3]
            assert dw.conv._stride == [stride, stride]
            assert _act_kind(dw.act) == "RE6"
            assert proj.conv.weight.shape == [c, t * in_chs, 1, 1]
            assert _act_kind(proj.act) is None, "the bottleneck projection must be linear"
            # Residual between bottlenecks iff the shapes match.
            assert block.has_skip == (stride == 1 and in_chs == c)
            n_residual += block.has_skip
            in_chs = c
    assert n_residual == 10
    assert model.conv_head.conv.weight.shape == [1280, 320, 1, 1]
    assert _act_kind(model.conv_head.act) == "RE6"


def test_drop_path_schedule():
    """Stochastic depth only on residual blocks, rate = drop_path_rate * global index / 17."""
    from ppnets.layers import DropPath
    model = ppnets.create_model("mobilenetv2_100", drop_path_rate=0.17)
    rates = []
    for idx, block in enumerate(_blocks(model)):
        if isinstance(block.drop_path, DropPath):
            assert block.has_skip
            rates.append((idx, block.drop_path.drop_prob))
        else:
            assert not block.has_skip
    assert [i for i, _ in rates] == [2, 4, 5, 7, 8, 9, 11, 12, 14, 15]
    np.testing.assert_allclose([r for _, r in rates], [0.01 * i for i, _ in rates], rtol=1e-12)


def test_mobilenetv2_residual_is_used():
    """The skip really adds the input: zeroing the projection leaves the identity."""
    model = ppnets.create_model("mobilenetv2_100")
    model.eval()
    block = model.blocks[1][1]
    assert block.has_skip
    block.conv_pwl.bn.weight.set_value(np.zeros(24, "float32"))
    block.conv_pwl.bn.bias.set_value(np.zeros(24, "float32"))
    x = paddle.randn([1, 24, 8, 8])
    np.testing.assert_allclose(block(x).numpy(), x.numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("name, stem, widths, head", [
    # timm / TF-slim: make_divisible(c * w, 8) everywhere, head max(1280, make_divisible(1280 w)).
    ("mobilenetv2_050", 16, [8, 16, 16, 32, 48, 80, 160], 1280),
    ("mobilenetv2_075", 24, [16, 24, 24, 48, 72, 120, 240], 1280),
    ("mobilenetv2_140", 48, [24, 32, 48, 88, 136, 224, 448], 1792),
])
def test_mobilenetv2_width_rules(name, stem, widths, head):
    model = ppnets.create_model(name)
    assert model.stem.conv.weight.shape[0] == stem
    last = [stage[-1] for stage in model.blocks]
    outs = [(b.conv_pw if isinstance(b, DepthwiseSeparable) else b.conv_pwl).conv.weight.shape[0]
            for b in last]
    assert outs == widths
    assert model.num_features == head == model.conv_head.conv.weight.shape[0]


# ------------------------------------------------------------------------------------------
# MobileNetV3 (paper Tables 1 and 2)
# ------------------------------------------------------------------------------------------

# (kernel, exp size, out, SE, NL, stride) per bneck row, as printed in the paper; plus the SE's
# reduced width make_divisible(exp / 4, 8) worked out by hand.
V3_LARGE = [
    (3, 16, 16, False, "RE", 1, None), (3, 64, 24, False, "RE", 2, None),
    (3, 72, 24, False, "RE", 1, None), (5, 72, 40, True, "RE", 2, 24),
    (5, 120, 40, True, "RE", 1, 32), (5, 120, 40, True, "RE", 1, 32),
    (3, 240, 80, False, "HS", 2, None), (3, 200, 80, False, "HS", 1, None),
    (3, 184, 80, False, "HS", 1, None), (3, 184, 80, False, "HS", 1, None),
    (3, 480, 112, True, "HS", 1, 120), (3, 672, 112, True, "HS", 1, 168),
    (5, 672, 160, True, "HS", 2, 168), (5, 960, 160, True, "HS", 1, 240),
    (5, 960, 160, True, "HS", 1, 240),
]
V3_SMALL = [
    (3, 16, 16, True, "RE", 2, 8), (3, 72, 24, False, "RE", 2, None),
    (3, 88, 24, False, "RE", 1, None), (5, 96, 40, True, "HS", 2, 24),
    (5, 240, 40, True, "HS", 1, 64), (5, 240, 40, True, "HS", 1, 64),
    (5, 120, 48, True, "HS", 1, 32), (5, 144, 48, True, "HS", 1, 40),
    (5, 288, 96, True, "HS", 2, 72), (5, 576, 96, True, "HS", 1, 144),
    (5, 576, 96, True, "HS", 1, 144),
]


@pytest.mark.parametrize("name, table, last_conv, head", [
    ("mobilenetv3_large_100", V3_LARGE, 960, 1280),
    ("mobilenetv3_small_100", V3_SMALL, 576, 1024),
])
def test_mobilenetv3_layers_follow_paper_table(name, table, last_conv, head):
    model = ppnets.create_model(name)
    assert model.stem.conv.weight.shape == [16, 3, 3, 3]
    assert _act_kind(model.stem.act) == "HS"
    blocks = _blocks(model)
    assert len(blocks) == len(table) + 1
    in_chs = 16
    for i, (block, (k, exp, out, se, nl, s, rd)) in enumerate(zip(blocks, table)):
        if isinstance(block, DepthwiseSeparable):  # exp size == input width: no expansion conv
            assert exp == in_chs and i == 0
            proj = block.conv_pw
        else:
            assert block.conv_pw.conv.weight.shape == [exp, in_chs, 1, 1]
            assert _act_kind(block.conv_pw.act) == nl
            proj = block.conv_pwl
        assert block.conv_dw.conv.weight.shape == [exp, 1, k, k], f"row {i}"
        assert block.conv_dw.conv._stride == [s, s], f"row {i}"
        assert _act_kind(block.conv_dw.act) == nl, f"row {i}"
        assert proj.conv.weight.shape == [out, exp, 1, 1] and _act_kind(proj.act) is None
        if se:
            assert block.se.conv_reduce.weight.shape == [rd, exp, 1, 1], f"row {i}"
            assert isinstance(block.se.act, nn.ReLU) and isinstance(block.se.gate, HardSigmoid)
        else:
            assert isinstance(block.se, nn.Identity), f"row {i}: unexpected SE"
        assert block.has_skip == (s == 1 and in_chs == out)
        in_chs = out
    final = blocks[-1]
    assert isinstance(final, ConvBNBlock)
    assert final.conv.conv.weight.shape == [last_conv, in_chs, 1, 1]
    assert _act_kind(final.conv.act) == "HS"
    # Efficient last stage: pool -> 1x1 conv with bias and no BN -> h-swish -> classifier.
    assert model.head.conv_head.weight.shape == [head, last_conv, 1, 1]
    assert model.head.conv_head.bias is not None
    assert _act_kind(model.head.act) == "HS"
    assert model.num_features == head and model.feature_chs == last_conv


def test_mobilenetv3_width_rules():
    # Head widths never scale; the stem is fixed at 16 below 0.75.
    small = ppnets.create_model("mobilenetv3_small_050")
    assert small.stem.conv.weight.shape[0] == 16 and small.num_features == 1024
    assert small.feature_chs == 288  # make_divisible(576 * 0.5, 8)
    large = ppnets.create_model("mobilenetv3_large_075")
    assert large.stem.conv.weight.shape[0] == 16 and large.num_features == 1280
    assert large.feature_chs == 720


def test_width_is_a_keyword_not_a_copy():
    """A registered width is the base builder with ``width_mult``: overriding it reproduces the
    other variant exactly (the table cannot drift like per-width copy-pasted builders)."""
    a = ppnets.create_model("mobilenetv3_large_100", width_mult=0.75)
    b = ppnets.create_model("mobilenetv3_large_075")
    assert {k: v.shape for k, v in a.state_dict().items()} == \
        {k: v.shape for k, v in b.state_dict().items()}
    with pytest.raises(ValueError, match="arch"):
        ppnets.create_model("mobilenetv3_large_100", arch="medium")


def test_hard_sigmoid_slope_is_one_sixth():
    model = ppnets.create_model("mobilenetv3_small_100")
    gates = [layer for layer in model.sublayers() if isinstance(layer, HardSigmoid)]
    assert len(gates) == 9  # one per SE of Table 2
    x = np.concatenate([np.linspace(-5, 5, 1001), [-3.0, 0.0, 1.0, 3.0]]).astype("float32")
    expected = np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0  # relu6(x + 3) / 6
    got = gates[0](paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    # 0.2 (PaddleClas' slope) would give 0.7 here.
    assert abs(float(got[-2]) - 4.0 / 6.0) < 1e-7


def test_squeeze_excite_matches_numpy():
    model = ppnets.create_model("mobilenetv3_large_100")
    se = model.blocks[2][0].se
    rng = np.random.RandomState(0)
    x = rng.standard_normal((2, 72, 5, 5)).astype("float32")
    w1 = se.conv_reduce.weight.numpy()[:, :, 0, 0]
    b1 = rng.standard_normal(w1.shape[0]).astype("float32")
    se.conv_reduce.bias.set_value(b1)
    w2 = se.conv_expand.weight.numpy()[:, :, 0, 0]
    b2 = rng.standard_normal(w2.shape[0]).astype("float32")
    se.conv_expand.bias.set_value(b2)
    s = x.mean(axis=(2, 3))
    s = np.maximum(s @ w1.T + b1, 0.0) @ w2.T + b2
    gate = np.clip(s + 3.0, 0.0, 6.0) / 6.0
    np.testing.assert_allclose(se(paddle.to_tensor(x)).numpy(), x * gate[:, :, None, None],
                               rtol=1e-5, atol=1e-6)


def test_hard_swish_matches_numpy():
    x = np.linspace(-6, 6, 241).astype("float32")
    got = HardSwish()(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, x * np.clip(x + 3.0, 0.0, 6.0) / 6.0, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Published figures, deploy, export
# ------------------------------------------------------------------------------------------

PUBLISHED = {  # name: (params_m, macs_g, top1) from the papers' tables
    "mobilenetv1_100": (4.2, 0.569, 70.6),      # V1 Table 8
    "mobilenetv2_100": (3.4, 0.300, 72.0),      # V2 Table 4
    "mobilenetv2_140": (6.9, 0.585, 74.7),      # V2 Table 4
    "mobilenetv3_large_100": (5.4, 0.219, 75.2),  # V3 Table 3
    "mobilenetv3_large_075": (4.0, 0.155, 73.3),
    "mobilenetv3_small_100": (2.5, 0.056, 67.4),
    "mobilenetv3_small_075": (2.0, 0.044, 65.4),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_figures_in_info(name):
    info = ppnets.model_info(name)
    assert (info["params_m"], info["macs_g"], info["top1"]) == PUBLISHED[name]
    assert {"params_m", "macs_g", "top1"} <= set(info["source"])
    assert info["reference"]["lib"] == "timm" and info["reference"]["name"] == name


def test_bn_folds_into_every_conv():
    paddle.seed(0)
    model = ppnets.create_model("mobilenetv3_small_050", num_classes=10)
    randomize_bn(model)
    model.eval()
    x = paddle.randn([2, 3, 64, 64])
    before = model(x).numpy()
    model.reparameterize()
    assert not [l for l in model.sublayers() if isinstance(l, nn.BatchNorm2D)]
    assert not [k for k in model.state_dict() if k.endswith(("_mean", "_variance"))]
    assert all(l.bias is not None for l in model.sublayers() if isinstance(l, nn.Conv2D))
    np.testing.assert_allclose(model(x).numpy(), before, rtol=0, atol=1e-5)


def _legacy_ops(prefix):
    from paddle.base.proto import framework_pb2
    desc = framework_pb2.ProgramDesc()
    with open(prefix + ".pdmodel", "rb") as f:
        desc.ParseFromString(f.read())
    return [op for block in desc.blocks for op in block.ops]


def _pir_op_names(path):
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for op in node.get("ops", []):
                names.add(str(op.get("#", "")).split(".")[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with open(path) as f:
        walk(json.load(f))
    return names


@pytest.mark.parametrize("name", ["mobilenetv2_050", "mobilenetv3_small_050"])
def test_exported_program_has_no_relu6_or_flatten(name, tmp_path):
    """Paddle Lite 2.13 aborts on relu6 and segfaults on flatten: neither may reach the graph,
    in the legacy program (Paddle Lite's input) nor in the PIR program."""
    model = ppnets.create_model(name, num_classes=10)
    model.eval()
    model.reparameterize()
    spec = [paddle.static.InputSpec([None, 3, 64, 64], "float32", "x")]
    legacy = str(tmp_path / "legacy" / "model")
    with paddle.pir_utils.OldIrGuard():
        paddle.jit.save(model, legacy, input_spec=spec)
    ops = _legacy_ops(legacy)
    types = {op.type for op in ops}
    assert types and "conv2d" in types, types
    assert not {t for t in types if t == "relu6" or t.startswith("flatten")}, types
    assert "reshape2" in types
    if name.startswith("mobilenetv2"):
        assert "clip" in types, "ReLU6 should be exported as clip"
    else:
        slopes = [attr.f for op in ops if op.type == "hard_sigmoid"
                  for attr in op.attrs if attr.name == "slope"]
        assert len(slopes) == 9 and np.allclose(slopes, 1.0 / 6.0, rtol=0, atol=1e-7), slopes
        assert "hard_swish" in types

    pir = str(tmp_path / "pir" / "model")
    paddle.jit.save(model, pir, input_spec=spec)
    names = _pir_op_names(pir + ".json")
    assert "conv2d" in names, names
    assert not {n for n in names if n == "relu6" or n.startswith("flatten")}, names
