"""EfficientFormerV2 specifics. The attention-bias cache (shared with V1) is tested in
tests/models/test_efficientformer.py for both families; parity with timm in tests/parity; the
registry-wide contract in tests/models/test_models.py."""
from __future__ import annotations


import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppnets
from ppnets.models.efficientformerv2 import (Attention2d, Attention2dDownsample, TalkingHeads,
                                             Upsample2xBilinear)
from ppnets.registry import get_entry
from ppnets.runtime import create_predictor, run_predictor
from tests.conftest import randomize_bn, state_dict_signature


def _x(shape=(1, 3, 224, 224), seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _run(layer, x):
    with paddle.no_grad():
        return layer(x).numpy()


def test_expansion_ratios_per_block():
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5)
    dims = (32, 48, 96, 176)
    ratios = (4, 4, (4, 3, 3, 3, 4, 4), (4, 3, 3, 4))  # timm's EfficientFormer_expansion_ratios
    for stage, dim, r in zip(model.stages, dims, ratios):
        per_block = r if isinstance(r, tuple) else (r,) * len(stage.blocks)
        hidden = [b.mlp.fc1.conv.weight.shape[0] for b in stage.blocks]
        assert hidden == [dim * x for x in per_block]
        # unified FFN: 1x1 -> 3x3 depthwise -> 1x1, each conv with its own bias before BN
        mid = stage.blocks[0].mlp.mid.conv
        assert mid.weight.shape[1:] == [1, 3, 3] and mid._groups == mid.weight.shape[0]
        assert stage.blocks[0].mlp.fc1.conv.bias is not None


@pytest.mark.parametrize("name", ["efficientformerv2_s0", "efficientformerv2_s1",
                                  "efficientformerv2_s2", "efficientformerv2_l"])
def test_attention_placement(name):
    cfg = get_entry(name).cfg
    model = ppnets.create_model(name, num_classes=5)
    for i, (stage, depth) in enumerate(zip(model.stages, cfg["depths"])):
        has_attn = [b.token_mixer is not None for b in stage.blocks]
        expected = [i >= 2 and j >= depth - cfg["num_vit"] for j in range(depth)]
        assert has_attn == expected, f"stage {i}"
        for b in stage.blocks:
            if b.token_mixer is not None:  # strided attention (and upsampling) only in stage 3
                assert (b.token_mixer.stride_conv is not None) == (i == 2)
                assert (b.token_mixer.upsample is not None) == (i == 2)
        down_attn = getattr(stage.downsample, "attn", None)
        assert (down_attn is not None) == (i == 3)


def test_bias_tables_follow_img_size():
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5)
    a2 = model.stages[2].blocks[-1].token_mixer
    a3 = model.stages[3].blocks[-1].token_mixer
    down = model.stages[3].downsample.attn
    assert isinstance(a2, Attention2d) and isinstance(down, Attention2dDownsample)
    # 224: stage 3 runs at 14x14 and attends on the stride-2 7x7 grid; stage 4 at 7x7;
    # the downsampling attention has 14x14 keys and 7x7 queries.
    assert a2.attention_biases.shape == [8, 49] and a2.attention_bias_idxs.shape == [49, 49]
    assert a3.attention_biases.shape == [8, 49]
    assert down.attention_biases.shape == [8, 196] and down.attention_bias_idxs.shape == [49, 196]

    big = ppnets.create_model("efficientformerv2_s0", num_classes=5, img_size=256)
    assert big.stages[2].blocks[-1].token_mixer.attention_biases.shape == [8, 64]
    assert big.stages[3].downsample.attn.attention_bias_idxs.shape == [64, 256]
    big.eval()
    assert _run(big, _x((1, 3, 256, 256))).shape == (1, 5)
    with pytest.raises(ValueError, match=r"256x256.*img_size"):
        _run(big, _x((1, 3, 224, 224)))


def test_wrong_resolution_raises_a_clear_error():
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5)
    model.eval()
    with pytest.raises(ValueError, match=r"7x7 grid, i.e. a 224x224 input.*8x8 grid"):
        _run(model, _x((1, 3, 256, 256)))


@pytest.mark.parametrize("hw", [(7, 7), (4, 5), (1, 3)])
def test_upsample_matches_bilinear_half_pixel(hw):
    x = _x((2, 3) + hw)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(_run(Upsample2xBilinear(hw), x), ref, rtol=0, atol=1e-6)


def test_talking_heads_is_a_1x1_conv_over_heads():
    th = TalkingHeads(8)
    attn = _x((2, 8, 5, 6))
    ref = F.conv2d(attn, th.weight, th.bias).numpy()
    np.testing.assert_allclose(_run(th, attn), ref, rtol=0, atol=1e-5)


def test_local_global_query_pool_is_subsampling():
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5)
    q = model.stages[3].downsample.attn.q
    x = _x((1, 96, 14, 14))
    np.testing.assert_array_equal(_run(q.pool, x), x.numpy()[:, :, ::2, ::2])


def test_reparameterize_folds_every_conv_bn():
    paddle.seed(0)
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5)
    randomize_bn(model)
    model.eval()
    x = _x()
    before = _run(model, x)
    model.reparameterize()
    bns = [n for n, l in model.named_sublayers() if isinstance(l, paddle.nn.BatchNorm2D)]
    assert bns == ["norm"]  # the final BN follows no conv
    np.testing.assert_allclose(_run(model, x), before, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(before).max()))
    deployed = ppnets.create_model("efficientformerv2_s0", num_classes=5, deploy=True)
    missing, unexpected = deployed.set_state_dict(model.state_dict())
    assert not missing and not unexpected


def test_without_distillation_head():
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5, distillation=False)
    assert model.head_dist is None
    assert not [k for k in model.state_dict() if k.startswith("head_dist")]
    model.eval()
    x = _x()
    with paddle.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        np.testing.assert_allclose(model(x).numpy(), model.head(pooled).numpy(), atol=1e-6)


def test_attention_runs_correctly_in_paddle_inference(tmp_path):
    """Regression: with a conv producing the talking-heads map or feeding a one-step head split,
    Paddle Inference's oneDNN path returned wrong attention outputs."""
    paddle.seed(0)
    model = ppnets.create_model("efficientformerv2_s0", num_classes=5)
    randomize_bn(model)
    model.eval()
    rng = np.random.RandomState(0)
    for layer in (model.stages[2].blocks[-1].token_mixer, model.stages[3].downsample.attn):
        b = layer.attention_biases
        b.set_value(rng.standard_normal(b.shape).astype("float32"))
        layer.build_attention_bias_cache()
        x = _x((1, 96, 14, 14))
        expected = _run(layer, x)
        prefix = str(tmp_path / type(layer).__name__)
        paddle.jit.save(layer, prefix,
                        input_spec=[paddle.static.InputSpec([None, 96, 14, 14], "float32", "x")])
        predictor = create_predictor(prefix + ".json", prefix + ".pdiparams")   # oneDNN on
        got = run_predictor(predictor, x.numpy())[0]
        np.testing.assert_allclose(got, expected, rtol=0,
                                   atol=1e-4 * max(1.0, np.abs(expected).max()))


# ---- the paper's Table 1 design switches ------------------------------------------------------

def test_default_state_dict_unchanged_by_ablation_switches():
    # recorded from efficientformerv2_s0(num_classes=10) before the switches existed
    default = ppnets.create_model("efficientformerv2_s0", num_classes=10)
    assert len(default.state_dict()) == 493
    assert state_dict_signature(default) == "55dcf7150dfef2b6"


def test_without_talking_heads_is_plain_softmax_attention():
    """An Attention2d without talking heads equals one whose head mixers are the identity."""
    paddle.seed(0)
    plain = Attention2d(16, key_dim=4, num_heads=2, resolution=4, talking_heads=False)
    talking = Attention2d(16, key_dim=4, num_heads=2, resolution=4)
    assert plain.talking_head1 is None and plain.talking_head2 is None
    state = plain.state_dict()
    assert not [k for k in state if "talking" in k]
    rng = np.random.RandomState(0)
    state["attention_biases"] = paddle.to_tensor(rng.standard_normal([2, 16]).astype("float32"))
    plain.set_state_dict(state)
    missing, _ = talking.set_state_dict(state)
    assert sorted(missing) == ["talking_head1.bias", "talking_head1.weight",
                               "talking_head2.bias", "talking_head2.weight"]
    for th in (talking.talking_head1, talking.talking_head2):
        th.weight.set_value(np.eye(2, dtype="float32").reshape(2, 2, 1, 1))
        th.bias.set_value(np.zeros(2, "float32"))
    plain.eval()
    talking.eval()
    x = _x((2, 16, 4, 4))
    np.testing.assert_allclose(_run(plain, x), _run(talking, x), rtol=0, atol=1e-6)


_SWITCHES = [dict(talking_heads=False), dict(attn_stride=False), dict(attn_downsample=False),
             dict(talking_heads=False, attn_stride=False, attn_downsample=False)]


# a small V2 (S0's layout, narrower and shallower) keeps the four builds fast
_TINY = dict(depths=(1, 1, 2, 2), dims=(8, 16, 32, 48), mlp_ratios=(2, 2, 2, 2), num_vit=1,
             num_classes=5, img_size=64, distillation=False)


@pytest.mark.parametrize("switches", _SWITCHES, ids=lambda d: "-".join(sorted(d)))
def test_ablation_switches_build_train_and_fuse(switches):
    from ppnets.models.efficientformerv2 import EfficientFormerV2

    kw = dict(_TINY, **switches)
    paddle.seed(0)
    model = EfficientFormerV2(**kw)
    stage3_attn = model.stages[2].blocks[-1].token_mixer
    stage4_attn = model.stages[3].blocks[-1].token_mixer
    keys = list(model.state_dict())
    # talking heads
    th = switches.get("talking_heads", True)
    for attn in (stage3_attn, stage4_attn):
        assert (attn.talking_head1 is not None) == th and (attn.talking_head2 is not None) == th
    assert any("talking_head" in k for k in keys) == th
    # stride attention in stage 3: 64 -> stage 3 at 4x4, attention on 2x2 with the stride
    strided = switches.get("attn_stride", True)
    assert (stage3_attn.stride_conv is not None) == strided
    assert (stage3_attn.upsample is not None) == strided
    assert stage3_attn.attention_biases.shape == ([8, 4] if strided else [8, 16])
    assert stage3_attn.attention_bias_idxs.shape == ([4, 4] if strided else [16, 16])
    # attention downsampling: otherwise the plain strided conv-BN of the earlier stages
    down = model.stages[3].downsample
    assert (down.attn is not None) == switches.get("attn_downsample", True)
    assert down.conv.conv._stride == [2, 2] and down.conv.conv.weight.shape == [48, 32, 3, 3]

    randomize_bn(model)
    rng = np.random.RandomState(1)
    for layer in model.sublayers():
        if isinstance(layer, (Attention2d, Attention2dDownsample)):
            b = layer.attention_biases
            b.set_value(rng.standard_normal(b.shape).astype("float32"))
    x = _x((2, 3, 64, 64))
    out = model(x)
    assert out.shape == [2, 5]
    out.sum().backward()
    assert stage3_attn.q.conv.weight.grad is not None
    model.eval()
    before = _run(model, x)
    model.reparameterize()
    np.testing.assert_allclose(_run(model, x), before, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(before).max()))
    deployed = EfficientFormerV2(deploy=True, **kw)
    missing, unexpected = deployed.set_state_dict(model.state_dict())
    assert not missing and not unexpected
    deployed.eval()
    np.testing.assert_allclose(_run(deployed, x), _run(model, x), rtol=0, atol=1e-6)
    if not strided:  # the full-resolution tables only fit the stage-3 grid of img_size
        with pytest.raises(ValueError, match=r"4x4 grid, i.e. a 64x64 input"):
            _run(model, _x((1, 3, 96, 96)))
