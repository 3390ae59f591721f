"""MobileNet V1/V2/V3 features: timm's EfficientNet-builder rule for which stage outputs are
features, on stage tables typed here; the conv head in the final features; pruning; export of the
maps. Equality with timm's ``features_only`` maps and ``feature_info`` for the registered
variants is in tests/parity."""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from ppnets.models.base import NoHead
from ppnets.models.features import FeatureBackbone
from ppnets.models.mobilenet import MobileNet

_IR = dict(block="ir", k=3, e=2)
# A first stage with a stride makes the stem a feature (MobileNetV3-Small); a stage followed by
# a stride-1 stage is not one (MobileNetV2's blocks.3 and blocks.5).
STRIDED_FIRST = [[dict(block="ds", k=3, s=2, n=1, c=8)], [dict(_IR, s=1, n=1, c=8)],
                 [dict(_IR, s=2, n=1, c=16)], [dict(_IR, s=1, n=2, c=16)]]
STRIDED_FIRST_INFO = [dict(num_chs=8, reduction=2, module="stem"),
                      dict(num_chs=8, reduction=4, module="blocks.1"),
                      dict(num_chs=16, reduction=8, module="blocks.3")]
# A first stage at the stem's resolution (MobileNetV1/V2, V3-Large): the stem is no feature.
PLAIN_FIRST = [[dict(block="ds", k=3, s=1, n=1, c=8)], [dict(_IR, s=2, n=1, c=16)],
               [dict(_IR, s=1, n=1, c=24)]]
PLAIN_FIRST_INFO = [dict(num_chs=8, reduction=2, module="blocks.0"),
                    dict(num_chs=24, reduction=4, module="blocks.2")]


def _model(stages):
    model = MobileNet(stages, stem_chs=8, act="relu", head="conv", head_chs=32, num_classes=5)
    model.eval()
    return model


def _x(size=32):
    return paddle.to_tensor(np.random.RandomState(0).standard_normal([2, 3, size, size])
                            .astype("float32"))


def _run(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("stages,expected", [(STRIDED_FIRST, STRIDED_FIRST_INFO),
                                             (PLAIN_FIRST, PLAIN_FIRST_INFO)])
def test_features_follow_the_builder_rule(stages, expected):
    model = _model(stages)
    assert [dict(info) for info in model.feature_info] == expected
    x = _x()
    final, maps = model.forward_intermediates(x)
    stem = model.stem(x)
    if expected[0]["module"] == "stem":
        by_hand = [stem, _run(model.blocks[:2], stem)]
        by_hand.append(_run(model.blocks[2:], by_hand[-1]))
    else:
        by_hand = [model.blocks[0](stem)]
        by_hand.append(_run(model.blocks[1:], by_hand[-1]))
    assert len(maps) == len(by_hand)
    for got, want, info in zip(maps, by_hand, expected):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert got.shape[1:] == [info["num_chs"], 32 // info["reduction"],
                                 32 // info["reduction"]]
    # the final features pass the conv head, as forward_features (timm's EfficientNet)
    np.testing.assert_array_equal(final.numpy(), model.forward_features(x).numpy())
    assert final.shape[1] == 32


def test_prune_keeps_the_maps_and_drops_what_follows():
    model = _model(STRIDED_FIRST)
    x = _x()
    logits = model(x).numpy()
    _, maps = model.forward_intermediates(x)
    # the last feature with the head kept: nothing goes
    assert model.prune_intermediate_layers(indices=1, prune_head=False) == [2]
    np.testing.assert_array_equal(model(x).numpy(), logits)
    assert model.prune_intermediate_layers([0, 1]) == [0, 1]
    assert len(model.blocks) == 2 and isinstance(model.head, NoHead)
    assert isinstance(model.conv_head, paddle.nn.Identity)
    assert model.num_features == 8 and model.num_classes == 0
    final, pruned = model.forward_intermediates(x, indices=[0, 1])
    for got, want in zip(pruned, maps[:2]):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(final.numpy(), maps[1].numpy())


def test_features_only_export_keeps_every_map(tmp_path):
    backbone = FeatureBackbone(_model(STRIDED_FIRST))
    backbone.eval()
    x = _x()
    want = [t.numpy() for t in backbone(x)]
    path = os.path.join(str(tmp_path), "backbone")
    paddle.jit.save(backbone, path,
                    input_spec=[paddle.static.InputSpec([None, 3, 32, 32], "float32")])
    got = paddle.jit.load(path)(x)
    assert [tuple(t.shape) for t in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-6)
