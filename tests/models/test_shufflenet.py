"""ShuffleNetV2 / ShuffleNetV1 family tests: structure against the papers' tables.

ShuffleNetV2 parity with torchvision is in tests/parity. ShuffleNetV1 has no timm/torchvision
implementation, so its structure, MACs and parameters are checked here against formulas written
from the paper's Table 1 (arXiv:1707.01083), independently of the model code.
"""
from __future__ import annotations

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.analysis import profile_model
from ppnets.layers import channel_shuffle
from ppnets.models.shufflenet import ShuffleNetV2, ShuffleV1Unit, ShuffleV2Unit

# ShuffleNetV2 paper Table 5: stage output widths and conv5 width.
V2_TABLE = {
    "shufflenet_v2_x0_5": ((48, 96, 192), 1024),
    "shufflenet_v2_x1_0": ((116, 232, 464), 1024),
    "shufflenet_v2_x1_5": ((176, 352, 704), 1024),
    "shufflenet_v2_x2_0": ((244, 488, 976), 2048),
}
REPEATS = (4, 8, 4)  # both papers: stage 2/3/4 = 1 stride-2 unit + 3/7/3 stride-1 units


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _stage_shapes(model, x):
    with paddle.no_grad():
        y = model.stem(x)
        shapes = []
        for stage in model.stages:
            y = stage(y)
            shapes.append(tuple(y.shape[1:]))
    return shapes


def test_registered_names():
    assert sorted(ppnets.list_models("shufflenet_v2_*")) == sorted(V2_TABLE)
    assert ppnets.list_models("shufflenet_v1_*") == ["shufflenet_v1_g3_x1_0"]
    assert "reference" not in ppnets.model_info("shufflenet_v1_g3_x1_0")


@pytest.mark.parametrize("name", sorted(V2_TABLE))
def test_v2_widths_match_paper_table(name):
    widths, final = V2_TABLE[name]
    model = ppnets.create_model(name)
    model.eval()
    assert [len(s) for s in model.stages] == list(REPEATS)
    assert _stage_shapes(model, _x([1, 3, 64, 64])) == \
        [(widths[0], 8, 8), (widths[1], 4, 4), (widths[2], 2, 2)]
    assert model.final_conv.conv.weight.shape == [final, widths[2], 1, 1]
    assert model.num_features == final
    # stride-2 units have two branches, stride-1 units one (the other half passes through)
    for stage in model.stages:
        assert stage[0].branch1 is not None
        assert all(unit.branch1 is None for unit in stage[1:])


def test_v2_x2_0_uses_244_not_paddle_vision_224():
    model = ppnets.create_model("shufflenet_v2_x2_0")
    assert model.stages[0][0].branch2[0].conv.weight.shape[0] == 244 // 2


def test_v2_stride1_unit_passes_first_half_through():
    paddle.seed(0)
    unit = ShuffleV2Unit(48, 48, 1)
    unit.eval()
    x = _x([2, 48, 5, 5])
    with paddle.no_grad():
        out = unit(x).numpy()
    # after the 2-group shuffle, even output channels are the untouched first half
    np.testing.assert_array_equal(out[:, 0::2], x.numpy()[:, :24])


def test_v2_refuses_drop_path():
    with pytest.raises(ValueError, match="drop_path_rate"):
        ShuffleNetV2(drop_path_rate=0.1)


# --- ShuffleNetV1 ------------------------------------------------------------------------------

G = 3
V1_WIDTHS = (240, 480, 960)  # paper Table 1, g = 3, 1x
STEM = 24


def _v1_formula(size=224, num_classes=1000):
    """MACs and parameters of ShuffleNet 1x (g=3) from the paper's Table 1 and Sec. 3.3 (the
    bottleneck is 1/4 of the unit's output width; stage 2's first 1x1 conv is not grouped; a
    stride-2 unit's branch outputs ``out - in`` channels, the rest coming from the avg-pool
    shortcut). BN parameters: 2 per channel."""
    macs = params = 0
    h = size // 2  # conv1 3x3/2
    macs += h * h * STEM * 3 * 9
    params += STEM * 3 * 9 + 2 * STEM
    h //= 2  # max pool 3x3/2
    c_in = STEM
    for s, (c_out, reps) in enumerate(zip(V1_WIDTHS, REPEATS)):
        mid = c_out // 4
        for u in range(reps):
            stride = 2 if u == 0 else 1
            g1 = 1 if (s == 0 and u == 0) else G
            branch_out = c_out - c_in if stride == 2 else c_out
            h_out = h // stride
            macs += h * h * mid * (c_in // g1)  # 1x1 group conv at the input resolution
            macs += h_out * h_out * mid * 9  # 3x3 depthwise
            macs += h_out * h_out * branch_out * (mid // G)  # 1x1 group conv
            params += mid * (c_in // g1) + mid * 9 + branch_out * (mid // G)
            params += 2 * (mid + mid + branch_out)
            c_in, h = c_out, h_out
    macs += c_in * num_classes
    params += c_in * num_classes + num_classes
    return macs, params


def test_v1_stage_shapes_match_paper_table():
    model = ppnets.create_model("shufflenet_v1_g3_x1_0")
    model.eval()
    assert [len(s) for s in model.stages] == list(REPEATS)
    # Table 1: stage 2/3/4 outputs at 28x28, 14x14, 7x7 for a 224x224 input
    assert _stage_shapes(model, _x([1, 3, 224, 224])) == \
        [(240, 28, 28), (480, 14, 14), (960, 7, 7)]
    first = model.stages[0][0]
    assert first.pw1.conv._groups == 1  # not grouped (paper Sec. 3.3)
    assert first.pw1.conv.weight.shape == [60, 24, 1, 1]
    assert first.pw2.conv.weight.shape == [216, 20, 1, 1]  # 240 - 24 outputs, 3 groups
    for s, stage in enumerate(model.stages):
        for u, unit in enumerate(stage):
            if (s, u) != (0, 0):
                assert unit.pw1.conv._groups == G
            assert unit.pw2.conv._groups == G
            assert unit.dw.conv._groups == V1_WIDTHS[s] // 4


def test_v1_macs_and_params_match_formula():
    macs, params = _v1_formula()
    model = ppnets.create_model("shufflenet_v1_g3_x1_0")
    prof = profile_model(model, input_size=(3, 224, 224))
    assert prof.macs == macs
    assert prof.params == params
    # Published: 137 MFLOPs (Table 1, multiply-adds), rounded to 140 M in the later tables;
    # 1.9 M params (official README). Rounding to 1 M / 0.1 M leaves us within these bounds.
    assert abs(macs / 1e6 - 137) <= 0.5
    assert abs(macs / 1e6 - 140) <= 140 * 0.02
    assert abs(params / 1e6 - 1.9) <= 0.05
    info = ppnets.model_info("shufflenet_v1_g3_x1_0")
    assert info["macs_g"] == 0.137 and info["params_m"] == 1.9


def test_v1_stride2_shortcut_is_padded_avg_pool():
    paddle.seed(0)
    unit = ShuffleV1Unit(24, 240, 2, G, 60, group_first_conv=False)
    unit.eval()
    x = _x([1, 24, 8, 8])
    with paddle.no_grad():
        out = unit(x).numpy()
    xn = x.numpy()
    # corner output: a 3x3 window with 5 zero-padded taps, divided by 9 (padding counted)
    np.testing.assert_allclose(out[0, :24, 0, 0], xn[0, :, :2, :2].sum(axis=(1, 2)) / 9,
                               rtol=0, atol=1e-6)
    assert (out[:, 24:] >= 0).all()  # ReLU after the concat branch only
    assert out.shape == (1, 240, 4, 4)


def test_v1_shuffle_grid_is_official():
    """The official code reshapes to (c / g, g) and transposes: output channel k*(c/g) + j is
    input channel j*g + k."""
    c = 12
    x = paddle.arange(c, dtype="float32").reshape([1, c, 1, 1])
    got = channel_shuffle(x, c // G).numpy().reshape(-1)
    expected = np.arange(c).reshape(c // G, G).T.reshape(-1)
    np.testing.assert_array_equal(got, expected)


def test_v1_stride1_residual_and_drop_path():
    paddle.seed(0)
    unit = ShuffleV1Unit(48, 48, 1, G, 12, drop_path=1.0)
    x = _x([2, 48, 4, 4])
    unit.train()
    # the whole branch is dropped: relu(x + 0)
    np.testing.assert_array_equal(unit(x).numpy(), np.maximum(x.numpy(), 0))
    model = ppnets.create_model("shufflenet_v1_g3_x1_0", drop_path_rate=0.2)
    probs = [getattr(u.drop_path, "drop_prob", 0.0) for s in model.stages for u in s[1:]]
    np.testing.assert_allclose(probs, np.linspace(0, 0.2, 13), atol=1e-7)
