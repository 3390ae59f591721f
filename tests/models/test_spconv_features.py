"""The CIFAR VGG's features (timm's VGG rule, ppnets.models.spconv): the last layer before each
max-pool and the last layer, each map the output of the layer ``feature_info`` names. The
registry-wide contract (tests/models/test_features.py) checks channels and strides; this checks
which layers those are, on a layout whose last layer is a conv as well as VGG-16's."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.models.spconv import VGGCifar

# timm 1.0.31 ``vgg16`` feature_info (num_chs, reduction): the same layout as our VGG-16
TIMM_VGG16 = [(64, 1), (128, 2), (256, 4), (512, 8), (512, 16), (512, 32)]


def _maps_by_hook(model, x):
    layers = dict(model.named_sublayers())
    seen = {}
    hooks = [layers[e["module"]].register_forward_post_hook(
        lambda layer, inputs, out, key=e["module"]: seen.__setitem__(key, out.numpy()))
        for e in model.feature_info]
    with paddle.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)
    for hook in hooks:
        hook.remove()
    return [m.numpy() for m in maps], [seen[e["module"]] for e in model.feature_info]


@pytest.mark.parametrize("cfg,expected", [
    ((8, 8, "M", 16, "M", 16), [(8, 1, "features.1"), (16, 2, "features.3"),
                                (16, 4, "features.5")]),
    ((8, "M", 16, 16, "M"), [(8, 1, "features.0"), (16, 2, "features.3"),
                             (16, 4, "features.4")]),
])
def test_vgg_features_are_the_layers_before_each_pool_and_the_last(cfg, expected):
    paddle.seed(0)
    model = VGGCifar(cfg=cfg, hidden=8, num_classes=3, alpha=0.5)
    model.eval()
    info = [(e["num_chs"], e["reduction"], e["module"]) for e in model.feature_info]
    assert info == expected
    maps, hooked = _maps_by_hook(model, paddle.randn([2, 3, 16, 16]))
    for i, (a, b) in enumerate(zip(maps, hooked)):
        np.testing.assert_array_equal(a, b, err_msg=f"map {i} is not {info[i][2]}'s output")

    model.prune_intermediate_layers([0, 1])
    assert len(model.features) == int(expected[1][2].split(".")[1]) + 1
    with paddle.no_grad():
        pruned = model.forward_intermediates(paddle.randn([1, 3, 16, 16]), indices=[0, 1],
                                             intermediates_only=True)
    assert [list(m.shape) for m in pruned] == [[1, 8, 16, 16], [1, 16, 8, 8]]


def test_vgg16_cifar_feature_info_follows_timm_vgg16():
    model = VGGCifar(num_classes=10)
    assert [(e["num_chs"], e["reduction"]) for e in model.feature_info] == TIMM_VGG16
    assert model.feature_info.module_name() == [f"features.{i}" for i in (1, 4, 8, 12, 16, 17)]
