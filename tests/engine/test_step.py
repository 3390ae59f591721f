"""The engine's training step (ppnets.engine.step), its one evaluation loop
(ppnets.engine.evaluate_network) and ``fit(cfg, model=...)``."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from tests.conftest import TinyCNN, tiny_config, write_cifar_archive


def test_train_step_order_optimizer_then_schedule_then_ema():
    from ppnets.engine import TrainParts, WarmupSchedule, build_loss, train_step
    from ppnets.engine.ema import ModelEma

    paddle.seed(0)
    net = paddle.nn.Linear(3, 4)
    sched = WarmupSchedule(0.5, steps_per_epoch=2, epochs=1, name="linear")   # 0.5, then 0.25
    parts = TrainParts(net, build_loss({"label_smoothing": 0.0}),
                       paddle.optimizer.SGD(learning_rate=sched, parameters=net.parameters()),
                       sched, ema=ModelEma(net, 0.75))
    x = paddle.to_tensor(np.random.RandomState(1).randn(5, 3).astype("float32"))
    y = paddle.to_tensor([0, 1, 2, 3, 0])
    w0 = net.weight.numpy().copy()
    loss = paddle.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    grad = net.weight.grad.numpy().copy()
    net.clear_gradients()

    out = train_step(parts, x, y)
    assert out.loss == pytest.approx(float(loss), rel=1e-6)
    w1 = w0 - 0.5 * grad     # the step ran at the iteration's lr, then the schedule advanced
    np.testing.assert_allclose(net.weight.numpy(), w1, rtol=1e-5, atol=1e-6)
    assert sched.last_epoch == 1 and sched() == pytest.approx(0.25)
    # the average took the updated weights (EMA after the optimizer step)
    np.testing.assert_allclose(parts.ema.state_dict()["weight"].numpy(),
                               0.75 * w0 + 0.25 * w1, rtol=1e-5, atol=1e-6)
    assert net.weight.grad is None or not np.any(net.weight.grad.numpy())   # cleared
    assert len(out.metrics) == 1 and len(out.metrics[0]) == 2   # running top-1, top-5


def test_evaluate_network_on_a_layer_arrays_and_a_callable():
    from ppnets.engine import evaluate_network

    logits = np.array([[0, 3, 2, 1, 0, 0], [5, 1, 0, 0, 0, 0], [9, 0, 1, 2, 3, 4]], "float32")
    labels = np.array([2, 0, 1])   # second-best, best, sixth: top-1 1/3, top-5 2/3
    res = evaluate_network(lambda images: logits[images], [(np.arange(2), labels[:2]),
                                                           (np.arange(2, 3), labels[2:])],
                           keep_logits=True)
    assert (res.top1_correct, res.top5_correct, res.num_images) == (1, 2, 3)
    assert res.top1 == pytest.approx(1 / 3) and res.top5 == pytest.approx(2 / 3)
    np.testing.assert_array_equal(res.logits, logits)
    np.testing.assert_array_equal(res.labels, labels)

    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.Dropout(0.9))
    net.train()
    x = np.random.RandomState(0).randn(7, 4).astype("float32")
    y = np.random.RandomState(1).randint(0, 3, 7)
    res = evaluate_network(net, [(x[:4], y[:4]),
                                 (paddle.to_tensor(x[4:]), paddle.to_tensor(y[4:]))])
    assert not net.training    # evaluated in eval mode: no dropout
    expected = (net(paddle.to_tensor(x)).numpy().argmax(1) == y).mean()
    assert res.top1 == pytest.approx(expected) and res.num_images == 7 and res.top5 == 1.0


def test_unpadded_eval_sampler_gives_every_sample_to_one_rank():
    from ppnets.engine import EpochBatchSampler

    for n, world in ((13, 2), (12, 2), (10, 3), (2, 4)):
        seen = []
        for rank in range(world):
            sampler = EpochBatchSampler(n, 4, shuffle=False, num_replicas=world, rank=rank,
                                        pad=False)
            batches = list(sampler)
            assert len(batches) == len(sampler)
            seen += [i for b in batches for i in b]
        assert sorted(seen) == list(range(n)), (n, world)
    # training keeps padding: every rank the same number of steps
    padded = [len(list(EpochBatchSampler(13, 4, num_replicas=2, rank=r))) for r in (0, 1)]
    assert padded == [2, 2]


def test_fit_trains_the_model_it_is_given(tmp_path):
    from ppnets.engine import fit

    archive = str(tmp_path / "c.tar.gz")
    write_cifar_archive(archive, per_batch=4, n_test=6, seed=0)
    paddle.seed(0)
    net = TinyCNN(num_classes=10)
    net.num_classes = 10
    before = net.fc.weight.numpy().copy()
    # the config names a model that does not exist: the given one is trained instead
    cfg = tiny_config(archive, tmp_path / "run", model={"name": "not_a_registered_model"},
                      train={"epochs": 1})
    res = fit(cfg, model=net)
    assert res["epochs_run"] == 1 and res["final_top1"] is not None
    assert not np.array_equal(before, net.fc.weight.numpy())
    wrong = TinyCNN(num_classes=5)
    wrong.num_classes = 5
    with pytest.raises(ValueError, match="the model has 5 classes, the data 10"):
        fit(tiny_config(archive, tmp_path / "other", train={"epochs": 1}), model=wrong)
