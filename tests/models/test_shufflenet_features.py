"""ShuffleNet V1/V2 features (no reference defines any; timm's convention, module docstring):
the stem conv, its max-pool, then every stage; ShuffleNetV2's conv5 (``final_conv``) belongs to
the head. The maps are the outputs of the modules that torchvision's ``conv1``, ``maxpool`` and
``stage2``-``stage4`` load into (key map checked by the parity tests)."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.models.base import NoHead

STAGES = {"shufflenet_v2_x0_5": (48, 96, 192), "shufflenet_v1_g3_x1_0": (240, 480, 960)}


def _x(size=64):
    return paddle.to_tensor(np.random.RandomState(0).standard_normal([2, 3, size, size])
                            .astype("float32"))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_maps_are_the_stem_conv_the_pool_and_the_stages(name):
    model = ppnets.create_model(name)
    model.eval()
    widths = STAGES[name]
    assert [dict(info) for info in model.feature_info] == [
        dict(num_chs=24, reduction=2, module="stem.0"),
        dict(num_chs=24, reduction=4, module="stem.1"),
        dict(num_chs=widths[0], reduction=8, module="stages.0"),
        dict(num_chs=widths[1], reduction=16, module="stages.1"),
        dict(num_chs=widths[2], reduction=32, module="stages.2")]
    x = _x()
    final, maps = model.forward_intermediates(x)
    by_hand = [model.stem[0](x)]
    for layer in [model.stem[1]] + list(model.stages):
        by_hand.append(layer(by_hand[-1]))
    assert len(maps) == 5
    for got, want in zip(maps, by_hand):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    # the final features pass ShuffleNetV2's conv5, as forward_features
    np.testing.assert_array_equal(final.numpy(), model.forward_features(x).numpy())


def test_prune_drops_the_stages_conv5_and_head():
    model = ppnets.create_model("shufflenet_v2_x0_5")
    model.eval()
    x = _x()
    logits = model(x).numpy()
    _, maps = model.forward_intermediates(x)
    assert model.prune_intermediate_layers(indices=1, prune_head=False) == [4]
    np.testing.assert_array_equal(model(x).numpy(), logits)
    assert model.prune_intermediate_layers([1]) == [1]
    assert len(model.stem) == 2 and len(model.stages) == 0
    assert isinstance(model.final_conv, paddle.nn.Identity) and isinstance(model.head, NoHead)
    assert model.num_features == 24
    final, pruned = model.forward_intermediates(x, indices=[1])
    np.testing.assert_array_equal(pruned[0].numpy(), maps[1].numpy())
    np.testing.assert_array_equal(final.numpy(), maps[1].numpy())
    model.prune_intermediate_layers([0])  # the stem conv alone: the max-pool goes too
    assert len(model.stem) == 1
    np.testing.assert_array_equal(model.forward_intermediates(x, [0])[1][0].numpy(),
                                  maps[0].numpy())
