"""V1 supernet (ppnets.search.supernet_v1): Gumbel sampling, the temperature schedule, the
architecture parameters alpha learning which candidate is better, joint training, and every
slimming state inheriting the supernet's weights into a model that create_model builds."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.engine import load_config
from ppnets.factory import create_model
from ppnets.search.data import SearchData
from ppnets.search.sharing import inherit, recalibrate_bn
from ppnets.search.space_v1 import FAMILY, V1Space
from ppnets.search.supernet_v1 import (
    GumbelMix,
    V1Supernet,
    gumbel_noise,
    temperature,
    train_supernet_v1,
)
from tests.conftest import REPO

CONFIG = f"{REPO}/configs/search/efficientformer_cifar10.yaml"


class Scale(paddle.nn.Layer):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_gumbel_noise_is_standard_gumbel():
    paddle.seed(0)
    g = gumbel_noise([200_000]).numpy().astype(np.float64)
    # Gumbel(0, 1): mean = Euler-Mascheroni constant, variance = pi^2 / 6
    assert g.mean() == pytest.approx(0.5772, abs=0.01)
    assert g.var() == pytest.approx(np.pi ** 2 / 6, rel=0.02)
    assert np.isfinite(g).all()


def test_temperature_anneals_exponentially():
    assert temperature(0.0, 5.0, 0.5) == pytest.approx(5.0)
    assert temperature(1.0, 5.0, 0.5) == pytest.approx(0.5)
    assert temperature(0.5, 5.0, 0.5) == pytest.approx(np.sqrt(2.5))
    assert temperature(2.0, 5.0, 0.5) == pytest.approx(0.5)   # clamped


def test_mix_weights_sample_in_training_and_are_softmax_in_eval():
    paddle.seed(1)
    mix = GumbelMix({"double": Scale(2.0), "identity": None})
    mix.alpha.set_value(paddle.to_tensor([1.0, -1.0]))
    w1, w2 = mix.weights(1.0, noise=True).numpy(), mix.weights(1.0, noise=True).numpy()
    assert w1.sum() == pytest.approx(1.0) and not np.allclose(w1, w2)
    # the sampled choice follows softmax(alpha): P(double) = e / (e + 1/e) = 0.881
    picks = [int(np.argmax(mix.weights(1.0, noise=True).numpy())) for _ in range(2000)]
    assert picks.count(0) / 2000 == pytest.approx(1 / (1 + np.exp(-2.0)), abs=0.03)
    x = paddle.ones([1, 3])
    mix.eval()
    p = np.exp([2.0, -2.0]) / np.exp([2.0, -2.0]).sum()   # tau 0.5
    np.testing.assert_allclose(mix(x, tau=0.5).numpy(), (2 * p[0] + p[1]) * np.ones((1, 3)),
                               rtol=1e-5)
    np.testing.assert_allclose(mix.probabilities(), np.exp([1, -1]) / np.exp([1, -1]).sum())


def test_alpha_learns_the_candidate_that_fits():
    paddle.seed(2)
    mix = GumbelMix({"double": Scale(2.0), "identity": None})
    opt = paddle.optimizer.Adam(learning_rate=0.05, parameters=[mix.alpha])
    x = paddle.randn([16, 4])
    for step in range(150):
        loss = ((mix(x, tau=1.0) - 2 * x) ** 2).mean()   # the doubling candidate is right
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert mix.probabilities()[0] > 0.95


class _Random(paddle.io.Dataset):
    def __init__(self, n, size, seed):
        rng = np.random.RandomState(seed)
        self.x = rng.standard_normal((n, 3, size, size)).astype("float32")
        self.y = rng.randint(0, 10, (n, 1)).astype("int64")

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _tiny():
    space = V1Space(32, depths=(1, 1, 2, 2), widths=(16, 32, 32, 48), num_classes=10)
    data = SearchData(_Random(16, 32, 0), _Random(8, 32, 1), 10)
    return space, data


def test_joint_training_updates_weights_and_alpha():
    paddle.seed(3)
    space, data = _tiny()
    supernet = V1Supernet(space)
    cfg = load_config(CONFIG)
    before = [p.numpy().copy() for p in supernet.arch_parameters()]
    w_before = [p.numpy().copy() for p in supernet.weight_parameters()]
    recipe = dict(epochs=1, batch_size=4, alpha_lr=0.01, tau_start=5.0, tau_end=0.5)
    info = train_supernet_v1(supernet, cfg, data, recipe, seed=0, verbose=False)
    after = [p.numpy() for p in supernet.arch_parameters()]
    assert info["steps"] == 4 and info["tau_start"] == pytest.approx(5.0)
    assert info["tau_end"] < 5.0
    assert all(not np.allclose(a, b) for a, b in zip(before, after))
    changed = [not np.allclose(a, p.numpy()) for a, p in zip(w_before,
                                                             supernet.weight_parameters())]
    assert sum(changed) > len(changed) // 2
    # 3 candidates in the last stage (MB4D, MB3D, identity), 2 elsewhere
    assert [len(s) for s in info["probabilities"][-1]] == [3, 3]
    assert [len(s) for s in info["probabilities"][0]] == [2]


def test_every_action_gives_a_model_that_inherits_the_supernet():
    paddle.seed(4)
    space, data = _tiny()
    supernet = V1Supernet(space)
    source = supernet.state_dict()
    probs = supernet.probabilities()
    scores = space.mp_scores(probs)
    arch = space.largest()
    seen = 0
    for _ in range(6):
        actions = space.actions(arch, scores)
        if not actions:
            break
        for _, child in actions:
            model = create_model(FAMILY, num_classes=10, **child.net.kwargs(32))
            inherit(model, source, space.name_map(child))
            recalibrate_bn(model, [np.stack([data.train[i][0] for i in range(2)])])
            assert model(paddle.to_tensor(data.heldout[0][0][None])).shape == [1, 10]
            seen += 1
        arch = actions[-1][1]
    assert seen >= 6
    # a Meta4D block of the model holds exactly the supernet MP's weights (sliced)
    arch = space.largest()
    model = create_model(FAMILY, num_classes=10, **arch.net.kwargs(32))
    inherit(model, source, space.name_map(arch))
    np.testing.assert_array_equal(
        model.stages[1].blocks[0].mlp.fc1.weight.numpy(),
        source["stages.1.mps.0.ops.mb4d.mlp.fc1.weight"].numpy())


def test_narrowing_skips_a_stage_the_table_prices_as_no_faster():
    space = V1Space(32, depths=(1, 1, 2, 2), widths=(16, 32, 32, 48), num_classes=10)
    arch = space.largest()
    scores = [[1.0], [0.1], [5.0, 5.0], [5.0, 5.0]]   # stage 2 the least important
    assert space.actions(arch, scores)[-1][0].startswith("stage 2 width 32 -> 16")

    def latency(a):   # narrower stage 2 priced slower (table noise); stage 3 no faster
        return 10.0 + (a.widths[1] < 32) - 0.5 * (a.widths[3] < 48)

    label, child = space.actions(arch, scores, latency)[-1]
    assert label.startswith("stage 4 width 48 -> 32") and child.widths == (16, 32, 32, 32)
