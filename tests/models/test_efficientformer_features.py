"""EfficientFormer's features (timm's forward_intermediates): the last stage works on 3D tokens,
which come back as an NCHW map of the grid they were flattened from; ``norm`` touches only that
map. The registry-wide feature tests and tests/parity cover shapes, export and timm equality."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.models.base import NoHead
from ppnets.models.efficientformer import EfficientFormer, Meta3D
from tests.conftest import randomize_bn


def _x(shape=(2, 3, 64, 96), seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _tiny():
    """A 64x96 input: the last stage holds a 2x3 token grid (not square, so a swapped h/w or a
    reshape without the transpose shows)."""
    paddle.seed(0)
    model = EfficientFormer(depths=(1, 1, 1, 2), dims=(8, 16, 24, 32), num_vit=1,
                            img_size=(64, 96), num_classes=5)
    randomize_bn(model)
    return model.eval()


def _meta4d_part_of_last_stage(model, x):
    """The last stage's 4D map just before its ``Flat``: stem, stages 0-2, the downsampling and
    the Meta4D blocks of stage 3."""
    x = model.stem(x)
    for stage in list(model.stages)[:3]:
        x = stage(x)
    last = model.stages[3]
    x = last.downsample(x)
    return last.blocks[0](x)


def test_last_stage_tokens_come_back_on_their_grid():
    model = _tiny()
    for layer in model.sublayers():
        if isinstance(layer, Meta3D):  # zero layer scales: the attention blocks pass tokens on
            layer.ls1.gamma.set_value(paddle.zeros_like(layer.ls1.gamma))
            layer.ls2.gamma.set_value(paddle.zeros_like(layer.ls2.gamma))
    x = _x()
    with paddle.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)
        expected = _meta4d_part_of_last_stage(model, x).numpy()
    assert [m.shape for m in maps] == [[2, 8, 16, 24], [2, 16, 8, 12], [2, 24, 4, 6],
                                       [2, 32, 2, 3]]
    np.testing.assert_allclose(maps[3].numpy(), expected, rtol=0, atol=1e-6)


def test_norm_applies_to_the_last_map_only():
    model, x = _tiny(), _x()
    with paddle.no_grad():
        _, plain = model.forward_intermediates(x)
        final, normed = model.forward_intermediates(x, norm=True)
        features = model.forward_features(x).numpy()
    np.testing.assert_allclose(final.numpy(), features, rtol=0, atol=1e-6)
    for a, b in zip(plain[:3], normed[:3]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the final features are the normalised tokens [N, 6, C]; the last map is them on the grid
    grid = features.reshape(2, 2, 3, 32).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(normed[3].numpy(), grid, rtol=0, atol=1e-6)
    assert float(np.abs(plain[3].numpy() - grid).max()) > 1e-2


def test_stop_early_prune_and_the_pruned_heads():
    model, x = _tiny(), _x()
    with paddle.no_grad():
        full = model.forward_intermediates(x, intermediates_only=True)
        final, maps = model.forward_intermediates(x, indices=[1], stop_early=True)
    # stopped before the last stage: the final features are stage 1's map, not normalised
    np.testing.assert_array_equal(final.numpy(), full[1].numpy())
    np.testing.assert_array_equal(maps[0].numpy(), full[1].numpy())

    assert model.prune_intermediate_layers([0, -3]) == [0, 1]
    assert len(model.stages) == 2 and model.num_features == 16
    assert isinstance(model.norm, paddle.nn.Identity)
    assert isinstance(model.head, NoHead) and model.head_dist is None
    with paddle.no_grad():
        pruned = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        out = model(x)  # no head, no pooling: the last kept map, as timm's pruned model
    for a, b in zip(pruned, full[:2]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(out.numpy(), full[1].numpy())
    with pytest.raises(ValueError, match="classifier was pruned"):
        model.reset_classifier(10)


def test_only_nchw_maps():
    with pytest.raises(ValueError, match="NCHW"):
        _tiny().forward_intermediates(_x(), output_fmt="NLC")
