"""V2 slimmable supernet (ppnets.search.space_v2, supernet_v2, sharing.WeightBank): the model's
per-stage MHSA counts, the bank reproducing the network it was built from, sandwich training
updating shared weights and per-width BatchNorms, every action giving a loadable ppnets model."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.engine import TrainParts, build_loss, load_config
from ppnets.factory import create_model
from ppnets.search.sharing import WeightBank
from ppnets.search.space_v2 import V2Space
from ppnets.search.supernet_v2 import SlimmableSupernet
from tests.conftest import REPO, randomize_bn

CONFIG = f"{REPO}/configs/search/efficientformerv2_cifar10.yaml"


def _space():
    return V2Space(32, depths=(1, 1, 2, 2), widths=(16, 32, 32, 48), ratios=(2, 4),
                   num_classes=10, min_widths=(16, 16, 16, 16))


def _attention_blocks(model):
    return [sum(b.token_mixer is not None for b in stage.blocks) for stage in model.stages]


def test_num_vit_per_stage():
    model = create_model("efficientformerv2_s0", num_classes=10, img_size=32,
                         num_vit_per_stage=[0, 0, 1, 3])
    assert _attention_blocks(model) == [0, 0, 1, 3]
    assert model(paddle.randn([1, 3, 32, 32])).shape == [1, 10]
    default = create_model("efficientformerv2_s0", num_classes=10, img_size=32)
    assert _attention_blocks(default) == [0, 0, 2, 2]
    for bad in ([0, 1, 2, 2], [0, 0, 7, 2], [0, 0, 2]):
        with pytest.raises(ValueError, match="num_vit_per_stage"):
            create_model("efficientformerv2_s0", num_vit_per_stage=bad)


def test_bank_reproduces_the_network_it_was_built_from():
    paddle.seed(0)
    space = _space()
    largest = space.build(space.largest().net)
    randomize_bn(largest, seed=1)   # so that the per-width BN copies must carry the statistics
    bank = WeightBank(largest, space.bn_widths())
    model = space.build(space.largest().net)
    bank.load(model, space.name_map(space.largest()))
    x = paddle.randn([2, 3, 32, 32])
    largest.eval()
    model.eval()
    np.testing.assert_allclose(model(x).numpy(), largest(x).numpy(), rtol=1e-5, atol=1e-6)
    # a narrower subnet takes the leading channels of the same tensors
    small = space.smallest()
    sub = space.build(small.net)
    bank.load(sub, space.name_map(small))
    w = largest.state_dict()["stem.conv1.conv.weight"].numpy()
    np.testing.assert_array_equal(sub.state_dict()["stem.conv1.conv.weight"].numpy(),
                                  w[:sub.state_dict()["stem.conv1.conv.weight"].shape[0]])


def test_sandwich_step_updates_shared_weights_and_per_width_bn():
    paddle.seed(1)
    space = _space()
    supernet = SlimmableSupernet(space)
    cfg = load_config(CONFIG)
    params = [p for p in supernet.bank.parameters() if not p.stop_gradient]
    opt = paddle.optimizer.AdamW(learning_rate=1e-2, parameters=params)
    before = {n: supernet.bank.state_of(n).numpy().copy() for n in supernet.bank._names}
    x, y = paddle.randn([4, 3, 32, 32]), paddle.to_tensor([1, 2, 3, 4])
    archs = [space.largest(), space.smallest(), space.sample(np.random.RandomState(0))]
    parts = TrainParts(supernet.bank, build_loss(cfg["train"]), opt)
    loss = supernet.train_step(archs, x, y, parts)
    opt.step()
    assert np.isfinite(loss)
    changed = {n for n in before if not np.array_equal(before[n],
                                                       supernet.bank.state_of(n).numpy())}
    # the stem conv is shared by every subnet; the smallest subnet's BN copy at 16 channels
    # and the largest's at full width are separate entries, both updated
    assert any(n.startswith("stem.") and n.endswith("weight") for n in changed)
    small = [n for n in changed if "@16." in n and n.endswith("_mean")]
    large = [n for n in changed if "@48." in n and n.endswith("_mean")]
    assert small and large


def test_every_action_loads_from_the_bank_and_runs():
    paddle.seed(2)
    space = _space()
    supernet = SlimmableSupernet(space)
    x = paddle.randn([1, 3, 32, 32])
    arch = space.largest()
    kinds = set()
    for _ in range(3):
        actions = space.actions(arch, pool="full")
        for label, child in actions:
            kinds.add(label.split(":")[1].split()[0])
            model = supernet.model(child)
            model.eval()
            assert model(x).shape == [1, 10]
            n = child.net
            assert len(n.ratios[2]) == n.depths[2] and n.vits[2] <= n.depths[2]
        arch = actions[0][1]
    assert kinds == {"remove", "width", "FFN"}
    rng = np.random.RandomState(3)
    for _ in range(5):
        a = space.sample(rng)
        assert supernet.model(a)(x).shape == [1, 10]
