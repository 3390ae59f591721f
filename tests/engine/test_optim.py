"""Training-recipe optimizer pieces: RMSProp with TensorFlow semantics against timm's RMSpropTF,
the fractional step-decay schedule against timm's StepLRScheduler (torch in a subprocess), and
gradient clipping by the global norm."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppnets.engine import build_optimizer, load_config, lr_at
from ppnets.engine.optim import RMSPropTF, build_grad_clip
from tests.conftest import checkpoint_weights, tiny_config, write_cifar_archive

# A tiny least-squares problem: loss = mean((X @ W + b - T)^2) + 0.5 * sum(v^2), run for a few
# steps with a changing learning rate (warm-up then decay, as a schedule would set it).
_STEPS_LR = [0.01, 0.02, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01]


def _problem(seed=0):
    rng = np.random.RandomState(seed)
    return {"X": rng.randn(8, 4), "T": rng.randn(8, 3), "W": rng.randn(4, 3) * 0.5,
            "b": rng.randn(3) * 0.1, "v": rng.randn(5)}


_TORCH_SIDE = r"""
import json, sys
import numpy as np
import torch
from timm.optim import RMSpropTF
from timm.scheduler import StepLRScheduler

out = sys.argv[1]
spec = json.load(open(out + "/spec.json"))
data = dict(np.load(out + "/problem.npz"))
X, T = torch.tensor(data["X"]), torch.tensor(data["T"])
results = {}
for key, hp in spec["rmsprop"].items():
    W = torch.nn.Parameter(torch.tensor(data["W"]))
    b = torch.nn.Parameter(torch.tensor(data["b"]))
    v = torch.nn.Parameter(torch.tensor(data["v"]))
    opt = RMSpropTF([W, b, v], lr=0.1, alpha=hp["rho"], eps=hp["eps"], momentum=hp["momentum"],
                    weight_decay=hp["weight_decay"])
    traj = []
    for lr in spec["lrs"]:
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = ((X @ W + b - T) ** 2).mean() + 0.5 * (v ** 2).sum()
        loss.backward()
        opt.step()
        traj.append(np.concatenate([W.detach().numpy().ravel(), b.detach().numpy(),
                                    v.detach().numpy()]))
    results[key] = np.stack(traj)

# timm's StepLRScheduler, stepped once per epoch, as timm's train.py builds it
# (create_scheduler_v2: warmup_prefix=False, the decay counts epochs from the start)
s = spec["step"]
p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=s["base_lr"])
sched = StepLRScheduler(opt, decay_t=s["decay_t"], decay_rate=s["decay_rate"],
                        warmup_t=s["warmup_t"], warmup_lr_init=s["warmup_lr_init"],
                        warmup_prefix=False)
lrs = []
for epoch in range(s["epochs"]):
    sched.step(epoch)
    lrs.append(opt.param_groups[0]["lr"])
results["step_lrs"] = np.array(lrs)
np.savez(out + "/ref.npz", **results)
"""

_RMSPROP_CASES = {
    # the MobileNetV3 / EfficientNet recipe values (timm: --opt rmsproptf --opt-eps .001)
    "tf_recipe": {"rho": 0.9, "eps": 1e-3, "momentum": 0.9, "weight_decay": 1e-5},
    "no_momentum": {"rho": 0.8, "eps": 1e-2, "momentum": 0.0, "weight_decay": 0.0},
}
_STEP = {"base_lr": 0.064, "decay_t": 2.4, "decay_rate": 0.973, "warmup_t": 3,
         "warmup_lr_init": 1e-6, "epochs": 40}


@pytest.fixture(scope="module")
def torch_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("optim_ref")
    np.savez(out / "problem.npz", **_problem())
    (out / "spec.json").write_text(json.dumps({"rmsprop": _RMSPROP_CASES, "lrs": _STEPS_LR,
                                               "step": _STEP}))
    python = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([python, "-c", _TORCH_SIDE, str(out)], capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"torch/timm not available in {python}: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    return dict(np.load(out / "ref.npz"))


def _run_paddle(make_opt):
    data = _problem()
    X, T = paddle.to_tensor(data["X"]), paddle.to_tensor(data["T"])
    params = [paddle.create_parameter(list(data[k].shape), "float64",
                                      default_initializer=paddle.nn.initializer.Assign(data[k]))
              for k in ("W", "b", "v")]
    W, b, v = params
    opt = make_opt(params)
    traj = []
    for lr in _STEPS_LR:
        opt.set_lr(lr)
        loss = ((paddle.matmul(X, W) + b - T) ** 2).mean() + 0.5 * (v ** 2).sum()
        loss.backward()
        opt.step()
        opt.clear_grad()
        traj.append(np.concatenate([p.numpy().ravel() for p in params]))
    return np.stack(traj)


@pytest.mark.parametrize("case", sorted(_RMSPROP_CASES))
def test_rmsprop_tf_matches_timm(torch_reference, case):
    hp = _RMSPROP_CASES[case]
    cfg = {"name": "rmsprop_tf", "rho": hp["rho"], "eps": hp["eps"], "momentum": hp["momentum"],
           "weight_decay": hp["weight_decay"]}
    got = _run_paddle(lambda params: build_optimizer(cfg, params, 0.1))
    ref = torch_reference[case]
    assert np.abs(ref[-1] - ref[0]).max() > 1e-2   # the parameters really moved
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_stock_paddle_rmsprop_is_not_tf_semantics(torch_reference):
    """Control: paddle.optimizer.RMSProp starts the mean square at 0, not 1, so its first steps
    are ~3x larger than TF's; this is why RMSPropTF exists (and shows the test above can fail)."""
    hp = _RMSPROP_CASES["tf_recipe"]
    got = _run_paddle(lambda params: paddle.optimizer.RMSProp(
        0.1, rho=hp["rho"], epsilon=hp["eps"], momentum=hp["momentum"], parameters=params,
        weight_decay=hp["weight_decay"]))
    assert np.abs(got - torch_reference["tf_recipe"]).max() > 1e-2


def test_fractional_step_schedule_matches_timm(torch_reference):
    """MobileNetV3's recipe: x0.973 every 2.4 epochs after 3 warm-up epochs. Our warm-up is per
    iteration; at epoch starts it equals timm's per-epoch warm-up."""
    spe = 7
    ours = [lr_at(e * spe, name="step", base_lr=_STEP["base_lr"], steps_per_epoch=spe,
                  epochs=_STEP["epochs"], warmup_epochs=_STEP["warmup_t"],
                  warmup_start_lr=_STEP["warmup_lr_init"], step_size=_STEP["decay_t"],
                  gamma=_STEP["decay_rate"]) for e in range(_STEP["epochs"])]
    np.testing.assert_allclose(ours, torch_reference["step_lrs"], rtol=1e-12)
    # floor(epoch / 2.4) from the start of training: epochs 3-4 share one decay, 5-7 the next
    assert ours[3] == ours[4] != ours[5] == ours[7] != ours[8]


def test_rmsprop_config_keys_and_weight_decay_schedule():
    cfg = load_config(None, base={"model": {"name": "m"}, "optim": {
        "name": "rmsprop_tf", "eps": 1e-3, "rho": 0.9, "weight_decay": 1e-5,
        "weight_decay_end": 1e-6, "clip_grad_norm": 5.0}})
    layer = paddle.nn.Linear(3, 2)
    opt = build_optimizer(cfg["optim"], layer.parameters(), 0.01)
    assert isinstance(opt, RMSPropTF) and opt._epsilon == 1e-3 and opt._rho == 0.9
    assert opt._momentum == 0.9   # the default optim.momentum
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    assert opt._grad_clip.clip_norm == 5.0
    from ppnets.engine.wd_schedule import get_weight_decay, set_weight_decay
    set_weight_decay(opt, 3e-6)    # optim.weight_decay_end works with it (L2 regulariser)
    assert get_weight_decay(opt) == pytest.approx(3e-6)
    with pytest.raises(ValueError, match="sched.step_size"):
        from ppnets.engine import build_scheduler
        build_scheduler({"name": "step", "step_size": 0}, 0.1, 2, 3)


# ---- gradient clipping ----------------------------------------------------------------------
def _clipped_step(scale, clip, optim_name="sgd"):
    paddle.seed(0)
    layer = paddle.nn.Linear(4, 3)
    for p in layer.parameters():   # from zero, the step -w1 carries no rounding of w0
        p.set_value(np.zeros(p.shape, "float32"))
    w0 = [p.numpy().copy() for p in layer.parameters()]
    cfg = {"name": optim_name, "momentum": 0.0, "weight_decay": 0.0, "clip_grad_norm": clip}
    opt = build_optimizer(cfg, layer.parameters(), 1.0)
    x = paddle.to_tensor(np.random.RandomState(0).randn(5, 4).astype("float32"))
    (layer(x).sum() * scale).backward()
    grads = [p.grad.numpy().copy() for p in layer.parameters()]
    opt.step()
    steps = [w - p.numpy() for w, p in zip(w0, layer.parameters())]   # = lr * clipped grad
    return grads, steps


def test_clip_grad_norm_scales_a_huge_gradient_to_the_norm():
    grads, steps = _clipped_step(1e6, 1.0)
    gnorm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    assert gnorm > 1e5
    step_norm = np.sqrt(sum((s.astype(np.float64) ** 2).sum() for s in steps))
    assert step_norm == pytest.approx(1.0, rel=1e-4)   # global norm, weight and bias together
    for g, s in zip(grads, steps):    # same direction: every gradient scaled by 1 / norm
        np.testing.assert_allclose(s, g / gnorm, rtol=1e-3, atol=1e-7)
    # a gradient already inside the ball is untouched
    grads, steps = _clipped_step(1e-3, 1.0)
    for g, s in zip(grads, steps):
        np.testing.assert_allclose(s, g, rtol=1e-5, atol=1e-9)
    # off (null / 0): the huge step goes through
    grads, steps = _clipped_step(1e6, None)
    np.testing.assert_allclose(steps[0], grads[0], rtol=1e-5)
    assert build_grad_clip({"clip_grad_norm": 0}) is None
    with pytest.raises(ValueError, match="clip_grad_norm"):
        build_grad_clip({"clip_grad_norm": -1.0})


@pytest.mark.parametrize("name", ["adamw", "rmsprop_tf"])
def test_clip_grad_norm_is_passed_to_every_optimizer(name):
    cfg = {"name": name, "weight_decay": 0.0, "clip_grad_norm": 2.5, "momentum": 0.9}
    opt = build_optimizer(cfg, paddle.nn.Linear(2, 2).parameters(), 0.1)
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    assert opt._grad_clip.clip_norm == 2.5


def test_rmsprop_tf_and_clipping_resume_exactly(tmp_path, engine_test_models):
    """The ones-initialised mean square travels through checkpoints: stop after epoch 1 and
    resume gives the weights of an uninterrupted run."""
    from ppnets.engine import fit
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(archive, per_batch=8, n_test=12, seed=3)
    optim = {"name": "rmsprop_tf", "lr": 0.01, "eps": 1e-3, "momentum": 0.9,
             "weight_decay": 1e-5, "clip_grad_norm": 1.0, "nesterov": False}
    sched = {"name": "step", "step_size": 0.5, "gamma": 0.9, "warmup_epochs": 0.5}
    fit(tiny_config(archive, tmp_path / "full", optim=optim, sched=sched))
    cfg = tiny_config(archive, tmp_path / "split", optim=optim, sched=sched)
    fit(cfg, stop_after_epoch=1)
    fit(cfg)
    a = checkpoint_weights(str(tmp_path / "full" / "checkpoints" / "epoch_0002.pdparams"))
    b = checkpoint_weights(str(tmp_path / "split" / "checkpoints" / "epoch_0002.pdparams"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
