"""ResNet features: timm's (the ImageNet stem before its max-pool, then every stage; equality
with timm's maps is in tests/parity), the CIFAR stem's stages-only list, and pruning down to the
stem."""
from __future__ import annotations

import numpy as np
import paddle

from ppnets.models.base import NoHead
from ppnets.models.resnet import ResNet


def _model(stem_type):
    model = ResNet(layers=(1, 1, 1), channels=(8, 16, 32), stem_width=8, stem_type=stem_type,
                   num_classes=5)
    model.eval()
    return model


def _x(size=32):
    return paddle.to_tensor(np.random.RandomState(0).standard_normal([2, 3, size, size])
                            .astype("float32"))


def test_imagenet_stem_is_a_feature_before_the_max_pool():
    model = _model("imagenet")
    assert [dict(info) for info in model.feature_info] == [
        dict(num_chs=8, reduction=2, module="conv1"), dict(num_chs=8, reduction=4, module="layer1"),
        dict(num_chs=16, reduction=8, module="layer2"),
        dict(num_chs=32, reduction=16, module="layer3")]
    x = _x()
    final, maps = model.forward_intermediates(x)
    stem = model.conv1(x)
    layer1 = model.layer1(model.maxpool(stem))
    for got, want in zip(maps, [stem, layer1, model.layer2(layer1)]):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(final.numpy(), model.forward_features(x).numpy())
    np.testing.assert_array_equal(maps[-1].numpy(), final.numpy())


def test_cifar_stem_keeps_the_resolution_so_the_stages_are_the_features():
    model = _model("cifar")
    assert [(i["num_chs"], i["reduction"], i["module"]) for i in model.feature_info] == [
        (8, 1, "layer1"), (16, 2, "layer2"), (32, 4, "layer3")]
    maps = model.forward_intermediates(_x(), intermediates_only=True)
    assert [m.shape[1:] for m in maps] == [[8, 32, 32], [16, 16, 16], [32, 8, 8]]


def test_prune_to_the_stem_drops_the_stages_pool_and_head():
    model = _model("imagenet")
    x = _x()
    logits = model(x).numpy()
    assert model.prune_intermediate_layers(indices=1, prune_head=False) == [3]
    np.testing.assert_array_equal(model(x).numpy(), logits)
    stem = model.conv1(x).numpy()
    assert model.prune_intermediate_layers([0]) == [0]
    assert not any(hasattr(model, name) for name in ("layer1", "layer2", "layer3"))
    assert isinstance(model.maxpool, paddle.nn.Identity) and isinstance(model.head, NoHead)
    assert model.num_features == 8 and model.num_classes == 0
    assert all(key.startswith("conv1.") for key in model.state_dict())
    final, maps = model.forward_intermediates(x, indices=[0])
    np.testing.assert_array_equal(maps[0].numpy(), stem)
    np.testing.assert_array_equal(final.numpy(), stem)
