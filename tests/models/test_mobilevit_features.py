"""MobileViT's features (timm's ByobNet.forward_intermediates): the outputs of stages 1-4, then
``final_conv``'s in place of the last stage's (``exclude_final_conv`` takes the stage's). The
registry-wide feature tests and tests/parity cover shapes, export and timm equality."""
from __future__ import annotations

import numpy as np
import paddle

from ppnets.models.base import NoHead
from ppnets.models.mobilevit import MobileViT
from tests.conftest import randomize_bn


def _x(shape=(2, 3, 64, 64), seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _tiny():
    paddle.seed(0)
    model = MobileViT(widths=(8, 8, 16, 16, 24), transformer_dims=(16, 16, 16),
                      transformer_depths=(1, 1, 1), expansion=2.0, stem_chs=8, num_features=32,
                      num_classes=5)
    randomize_bn(model)
    return model.eval()


def test_feature_info_follows_timm_byobnet():
    assert [(f["module"], f["num_chs"], f["reduction"], f["stage"])
            for f in _tiny().feature_info] == [
        ("stages.0", 8, 2, 1), ("stages.1", 8, 4, 2), ("stages.2", 16, 8, 3),
        ("stages.3", 16, 16, 4), ("final_conv", 32, 32, 5)]


def test_last_map_is_final_conv_unless_excluded():
    model, x = _tiny(), _x()
    with paddle.no_grad():
        final, maps = model.forward_intermediates(x)
        final_ex, maps_ex = model.forward_intermediates(x, exclude_final_conv=True)
        stage5 = model.stages(model.stem(x))
        features = model.forward_features(x).numpy()
    assert [m.shape for m in maps] == [[2, 8, 32, 32], [2, 8, 16, 16], [2, 16, 8, 8],
                                       [2, 16, 4, 4], [2, 32, 2, 2]]
    np.testing.assert_array_equal(maps[-1].numpy(), features)
    np.testing.assert_array_equal(final.numpy(), features)
    np.testing.assert_array_equal(maps_ex[-1].numpy(), stage5.numpy())
    np.testing.assert_array_equal(final_ex.numpy(), features)  # final features keep final_conv
    for a, b in zip(maps[:-1], maps_ex[:-1]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_prune_drops_later_stages_final_conv_and_head():
    model, x = _tiny(), _x()
    with paddle.no_grad():
        full = model.forward_intermediates(x, intermediates_only=True)
    assert model.prune_intermediate_layers([1, 2], prune_head=False) == [1, 2]
    assert len(model.stages) == 3 and model.num_features == 16
    assert isinstance(model.final_conv, paddle.nn.Identity) and isinstance(model.head, NoHead)
    with paddle.no_grad():
        pruned = model.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
        out = model(x)
    for a, b in zip(pruned, full[1:3]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(out.numpy(), full[2].numpy())
