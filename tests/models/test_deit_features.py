"""DeiT's features (timm's VisionTransformer.forward_intermediates): block outputs without the
class token, as an NCHW map of the patch grid or as tokens; ``norm`` applies the final
LayerNorm; features_only takes the last three blocks. The registry-wide feature tests and
tests/parity cover shapes, export and timm equality."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.models.base import NoHead
from ppnets.models.deit import VisionTransformer
from ppnets.models.features import FeatureBackbone


def _x(shape=(2, 3, 32, 32), seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _tiny(depth=4):
    """32x32 inputs, 8x8 patches: a 4x4 grid of 24-channel tokens after the class token."""
    paddle.seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=24, depth=depth, num_heads=2,
                             num_classes=5).eval()


def _pass_through(model):
    """Zero every residual branch and the position embedding: each block returns its input,
    so the patch tokens stay the patch embedding's conv output."""
    for block in model.blocks:
        for linear in (block.attn.proj, block.mlp.fc2):
            linear.weight.set_value(paddle.zeros_like(linear.weight))
            linear.bias.set_value(paddle.zeros_like(linear.bias))
    model.pos_embed.set_value(paddle.zeros_like(model.pos_embed))
    return model


def test_patch_tokens_come_back_on_the_patch_grid():
    model, x = _pass_through(_tiny()), _x()
    with paddle.no_grad():
        conv = model.patch_embed.proj(x).numpy()  # [2, 24, 4, 4]
        nchw = model.forward_intermediates(x, indices=[0, 3], intermediates_only=True)
        nlc = model.forward_intermediates(x, indices=[0, 3], output_fmt="NLC",
                                          intermediates_only=True)
        paired = model.forward_intermediates(x, indices=[1], return_prefix_tokens=True,
                                             intermediates_only=True)
    for m in nchw:
        np.testing.assert_allclose(m.numpy(), conv, rtol=0, atol=1e-6)
    for t in nlc:
        np.testing.assert_allclose(t.numpy(), conv.reshape(2, 24, 16).transpose(0, 2, 1),
                                   rtol=0, atol=1e-6)
    (grid, prefix), = paired
    np.testing.assert_allclose(grid.numpy(), conv, rtol=0, atol=1e-6)
    np.testing.assert_allclose(prefix.numpy(), np.broadcast_to(model.cls_token.numpy(),
                                                                [2, 1, 24]), rtol=0, atol=1e-6)


def test_norm_and_final_features():
    model, x = _tiny(), _x()
    with paddle.no_grad():
        final, maps = model.forward_intermediates(x, indices=2, norm=True, output_fmt="NLC")
        tokens = model.blocks(model._embed(x))
        _, raw = model.forward_intermediates(x, indices=[3], output_fmt="NLC")
        features = model.forward_features(x).numpy()
    assert [m.shape for m in maps] == [[2, 16, 24], [2, 16, 24]]
    np.testing.assert_allclose(final.numpy(), features, rtol=0, atol=1e-6)
    np.testing.assert_allclose(maps[1].numpy(), model.norm(tokens)[:, 1:].numpy(), rtol=0,
                               atol=1e-6)
    np.testing.assert_allclose(raw[0].numpy(), tokens[:, 1:].numpy(), rtol=0, atol=1e-6)


def test_features_only_takes_the_last_three_blocks_and_prunes_after_them():
    model = _tiny(depth=6)
    assert model.default_out_indices == (3, 4, 5)
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in model.feature_info] == \
        [(f"blocks.{i}", 24, 8) for i in range(6)]
    backbone = FeatureBackbone(_tiny(depth=6))
    assert backbone.out_indices == (3, 4, 5)
    x = _x()
    with paddle.no_grad():
        expected = model.forward_intermediates(x, indices=[3, 4, 5], intermediates_only=True)
        got = backbone(x)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)

    assert model.prune_intermediate_layers([1], prune_head=True) == [1]
    assert len(model.blocks) == 2 and isinstance(model.head, NoHead)
    with paddle.no_grad():
        out = model(x)  # every token after the final norm, as timm's pruned model
    assert out.shape == [2, 17, 24]
    with pytest.raises(ValueError, match="classifier was pruned"):
        model.reset_classifier(3)


def test_output_formats():
    with pytest.raises(ValueError, match="NCHW or NLC"):
        _tiny().forward_intermediates(_x(), output_fmt="NHWC")
