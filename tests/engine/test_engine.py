"""Training engine: configs, optimizers and schedules, exact resume, atomic checkpoints, and a short
real training run on the partial CIFAR-10 archive."""
from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest
import yaml

from tests.conftest import (CIFAR_PARTIAL, REPO, checkpoint_weights, require_shared, tiny_config,
                            write_cifar_archive)


@pytest.fixture(autouse=True, scope="module")
def _engine_models(engine_test_models):
    """Every test of this module trains the registered tiny models."""
    yield


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz")
    write_cifar_archive(path, per_batch=8, n_test=12, seed=3)
    return path


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------
def _write(path, obj):
    path.write_text(yaml.safe_dump(obj) if not isinstance(obj, str) else obj)
    return str(path)


def test_config_inheritance_lists_and_overrides(tmp_path):
    from ppnets.engine import DEFAULTS, load_config

    (tmp_path / "base").mkdir()
    (tmp_path / "exp").mkdir()
    _write(tmp_path / "base" / "a.yaml", {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.8},
                                         "sched": {"milestones": [1, 2, 3]},
                                         "train": {"epochs": 5}})
    _write(tmp_path / "base" / "b.yaml", {"optim": {"momentum": 0.95},
                                         "data": {"augment": {"hflip": False}}})
    child = _write(tmp_path / "exp" / "c.yaml", {
        "_base_": ["../base/a.yaml", "../base/b.yaml"],
        "model": {"name": "resnet20_cifar", "kwargs": {"drop_rate": 0.1}},
        "sched": {"name": "multistep", "milestones": [10]},
        "output_dir": "x"})
    cfg = load_config(child, ["train.epochs=3", "optim.lr=1e-3", "optim.betas=[0.8, 0.9]",
                              "data.data_file=null", "train.amp=true", "model.kwargs.width=2",
                              "experiment.note=hello world"])
    assert cfg["optim"] == {**cfg["optim"], "name": "sgd", "lr": 1e-3, "momentum": 0.95,
                            "betas": [0.8, 0.9]}
    assert isinstance(cfg["optim"]["lr"], float) and cfg["train"]["epochs"] == 3
    assert cfg["sched"]["milestones"] == [10]           # lists are replaced, not merged
    assert cfg["data"]["augment"] == {**DEFAULTS["data"]["augment"], "hflip": False}  # deep merge
    assert cfg["data"]["data_file"] is None and cfg["train"]["amp"] is True
    assert cfg["model"]["kwargs"] == {"drop_rate": 0.1, "width": 2}
    assert cfg["experiment"] == {"note": "hello world"}
    assert cfg["train"]["seed"] == 42                   # untouched default
    # A single base given as a string works too; the file wins over its base.
    single = _write(tmp_path / "exp" / "d.yaml", "_base_: ../base/a.yaml\n"
                    "model: {name: m}\ntrain: {epochs: 9}\n")
    assert load_config(single)["train"]["epochs"] == 9
    assert load_config(single)["optim"]["momentum"] == 0.8


def test_config_errors_are_clear(tmp_path):
    from ppnets.engine import ConfigError, load_config

    ok = {"model": {"name": "m"}}
    with pytest.raises(ConfigError, match=r"unknown config key 'trian'.*Did you mean 'train'"):
        load_config(_write(tmp_path / "a.yaml", {**ok, "trian": {"epochs": 1}}))
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.momentun'.*"
                                          r"Did you mean 'momentum'"):
        load_config(_write(tmp_path / "b.yaml", ok), ["optim.momentun=0.9"])
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        load_config(_write(tmp_path / "c.yaml", ok), ["train.epochs"])
    with pytest.raises(ConfigError, match="optim.name='lamb' is not one of"):
        load_config(_write(tmp_path / "d.yaml", ok), ["optim.name=lamb"])
    with pytest.raises(ConfigError, match="model.name is required"):
        load_config(_write(tmp_path / "e.yaml", {"train": {"epochs": 1}}))
    with pytest.raises(ConfigError, match="train.epochs must be a positive integer"):
        load_config(_write(tmp_path / "f.yaml", ok), ["train.epochs=0"])
    with pytest.raises(ConfigError, match="_base_ 'missing.yaml' is neither a file"):
        load_config(_write(tmp_path / "g.yaml", {**ok, "_base_": "missing.yaml"}))
    _write(tmp_path / "h.yaml", {**ok, "_base_": "i.yaml"})
    with pytest.raises(ConfigError, match="circular _base_ chain"):
        load_config(_write(tmp_path / "i.yaml", {**ok, "_base_": "h.yaml"}))
    with pytest.raises(ConfigError, match="'data' must be a section"):
        load_config(_write(tmp_path / "j.yaml", ok), ["data=3"])


def test_values_of_the_wrong_type_name_the_key(tmp_path):
    from ppnets.engine import ConfigError, load_config

    ok = _write(tmp_path / "ok.yaml", {"model": {"name": "m"}})
    # a decimal comma: YAML reads the string '0,01', which used to reach the optimizer
    with pytest.raises(ConfigError, match=r"optim.lr='0,01' is not valid: expected a number "
                                          r"\(with a dot as the decimal separator"):
        load_config(ok, ["optim.lr=0,01"])
    with pytest.raises(ConfigError, match=r"train.amp='yes please' is not valid: expected true"):
        load_config(ok, ["train.amp=yes please"])
    with pytest.raises(ConfigError, match=r"optim.betas=.* expected a list of numbers"):
        load_config(ok, ["optim.betas=[0.9, x]"])
    with pytest.raises(ConfigError, match=r"value '\[0.9' is not valid YAML"):
        load_config(ok, ["optim.betas=[0.9"])
    cfg = load_config(ok, ["optim.lr=0.01", "data.mean=null", "train.max_steps_per_epoch=null"])
    assert cfg["optim"]["lr"] == 0.01 and cfg["data"]["mean"] is None


def test_yaml_syntax_error_is_one_line_with_file_line_column_and_key(tmp_path):
    from ppnets.engine import ConfigError, load_config

    path = _write(tmp_path / "bad.yaml", "model:\n  name: fasternet_t0\n optim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:3:2: not valid YAML (key 'optim')"), message


def test_recipes_resolve_by_name_and_path_with_inheritance(tmp_path, monkeypatch):
    from ppnets.engine import ConfigError, load_config
    from ppnets.engine.config import CONFIG_DIR, list_configs, resolve_config

    monkeypatch.chdir(tmp_path)  # no checkout here: names resolve inside the package
    by_file = load_config(os.path.join(CONFIG_DIR, "fasternet", "cifar10.yaml"))
    for spec in ("fasternet/cifar10", "fasternet/cifar10.yaml", "configs/fasternet/cifar10.yaml"):
        assert resolve_config(spec) == os.path.join(CONFIG_DIR, "fasternet", "cifar10.yaml")
        assert load_config(spec) == by_file
    # the recipe's own bases came through (optimizer from base/adamw_cosine_cifar.yaml)
    assert by_file["optim"]["name"] == "adamw" and by_file["model"]["name"] == "fasternet_t0"
    # a user's file builds on a shipped recipe by name; a local file of that name would win
    mine = _write(tmp_path / "mine.yaml", {"_base_": "fasternet/cifar10", "train": {"epochs": 3}})
    cfg = load_config(mine)
    assert cfg["train"]["epochs"] == 3 and cfg["optim"] == by_file["optim"]
    with pytest.raises(ConfigError, match=r"'fasternet/cifar1' is neither a file nor a shipped "
                                          r"recipe\. Did you mean fasternet/cifar10"):
        load_config("fasternet/cifar1")
    names = [r.name for r in list_configs()]
    assert "finetune/full" in names and "base/runtime" in names and names == sorted(names)
    assert [r.name for r in list_configs("finetune")] == [n for n in names if "finetune" in n]
    assert [r.name for r in list_configs("*/cifar10")] == [n for n in names
                                                           if n.endswith("/cifar10")]
    shipped = sorted(glob.glob(os.path.join(REPO, "configs", "*", "*.yaml")))
    assert len(shipped) == len(names), "a recipe in configs/ is not listed"


def test_shipped_configs_load():
    from ppnets.engine import load_config

    paths = sorted(glob.glob(os.path.join(REPO, "configs", "spconv", "*.yaml")))
    assert paths, "configs/spconv/*.yaml missing"
    for path in paths:
        cfg = load_config(path)
        assert cfg["data"]["dataset"] == "cifar10"
        assert cfg["experiment"].get("models"), f"{path}: experiment.models is empty"


# ---------------------------------------------------------------------------------------------
# optimizers and schedules
# ---------------------------------------------------------------------------------------------
def test_schedules_shape():
    from ppnets.engine import WarmupSchedule, lr_at

    spe, epochs, base = 10, 6, 0.4
    lrs = [lr_at(s, name="cosine", base_lr=base, steps_per_epoch=spe, epochs=epochs,
                 warmup_epochs=1, warmup_start_lr=0.0, eta_min=0.01) for s in range(spe * epochs)]
    # Linear warm-up over the first epoch: 0, 0.04, ..., 0.36, then the peak.
    np.testing.assert_allclose(lrs[:11], [base * s / 10 for s in range(11)], rtol=1e-12)
    # Cosine from the peak to eta_min over the remaining 50 iterations.
    expect = [0.01 + (base - 0.01) * 0.5 * (1 + math.cos(math.pi * t / 50)) for t in range(50)]
    np.testing.assert_allclose(lrs[10:], expect, rtol=1e-12)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))

    ms = [lr_at(s, name="multistep", base_lr=0.1, steps_per_epoch=spe, epochs=epochs,
                milestones=[2, 4], gamma=0.1) for s in range(spe * epochs)]
    np.testing.assert_allclose(ms, [0.1] * 20 + [0.01] * 20 + [0.001] * 20, rtol=1e-12)
    st = [lr_at(s, name="step", base_lr=1.0, steps_per_epoch=spe, epochs=epochs, step_size=4,
                gamma=0.5) for s in range(spe * epochs)]
    np.testing.assert_allclose(st, [1.0] * 40 + [0.5] * 20)
    assert {lr_at(s, name="constant", base_lr=0.3, steps_per_epoch=spe, epochs=epochs)
            for s in range(60)} == {0.3}
    with pytest.raises(ValueError, match="unknown schedule"):
        WarmupSchedule(0.1, 10, 2, name="poly")

    # The Paddle scheduler walks the same curve one iteration per step() (as Model.fit does).
    sched = WarmupSchedule(base, spe, epochs, name="cosine", warmup_epochs=1, eta_min=0.01)
    got = []
    for _ in range(spe * epochs):
        got.append(sched())
        sched.step()
    np.testing.assert_allclose(got, lrs, rtol=1e-12)
    # Its state restores mid-curve.
    fresh = WarmupSchedule(base, spe, epochs, name="cosine", warmup_epochs=1, eta_min=0.01)
    partial = WarmupSchedule(base, spe, epochs, name="cosine", warmup_epochs=1, eta_min=0.01)
    for _ in range(17):
        partial.step()
    fresh.set_state_dict(partial.state_dict())
    assert fresh() == lrs[17]


def _one_step(optim_cfg, lr=0.1):
    from ppnets.engine import build_optimizer

    paddle.seed(0)
    layer = nn.Linear(4, 3)
    w0 = layer.weight.numpy().copy()
    opt = build_optimizer(optim_cfg, layer.parameters(), lr)
    x = paddle.to_tensor(np.random.RandomState(0).randn(5, 4).astype("float32"))
    loss = (layer(x) ** 2).sum()
    loss.backward()
    g = layer.weight.grad.numpy().copy()
    opt.step()
    return type(opt).__name__, w0, g, layer.weight.numpy()


def test_optimizers_and_weight_decay_semantics():
    base = {"momentum": 0.9, "nesterov": False, "betas": [0.9, 0.999], "eps": 1e-8}
    name, w0, g, w1 = _one_step({**base, "name": "sgd", "weight_decay": 0.01})
    assert name == "Momentum"   # first step: velocity = g + wd * w, w -= lr * velocity
    np.testing.assert_allclose(w1, w0 - 0.1 * (g + 0.01 * w0), rtol=1e-5, atol=1e-7)
    name, w0, g, w1 = _one_step({**base, "name": "sgd", "nesterov": True, "weight_decay": 0.0})
    assert name == "Momentum"   # nesterov: w -= lr * (g + mu * (mu * 0 + g))
    np.testing.assert_allclose(w1, w0 - 0.1 * (g + 0.9 * g), rtol=1e-5, atol=1e-7)
    name, *_ = _one_step({**base, "name": "sgd", "momentum": 0.0, "weight_decay": 0.0})
    assert name == "SGD"
    # Adam's first step moves every weight by ~lr * sign(gradient + wd * w) (L2 coupled).
    name, w0, g, w1 = _one_step({**base, "name": "adam", "weight_decay": 0.0}, lr=1e-3)
    assert name == "Adam"
    np.testing.assert_allclose(w1, w0 - 1e-3 * np.sign(g), rtol=1e-4, atol=1e-6)
    # AdamW decays decoupled from the gradient: w -= lr * (sign(g) + wd * w).
    name, w0, g, w1 = _one_step({**base, "name": "adamw", "weight_decay": 0.5}, lr=1e-3)
    assert name == "AdamW"
    np.testing.assert_allclose(w1, w0 - 1e-3 * np.sign(g) - 1e-3 * 0.5 * w0, rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("optim,sched", [
    ({}, {}),   # SGD + nesterov + weight decay, cosine with half an epoch of warm-up
    ({"name": "adamw", "lr": 3e-3, "weight_decay": 0.05},
     {"name": "multistep", "milestones": [1], "warmup_epochs": 0}),
])
def test_resume_equals_uninterrupted(tmp_path, tiny_archive, optim, sched):
    from ppnets.engine import fit

    full = fit(tiny_config(tiny_archive, tmp_path / "full", optim=optim, sched=sched))
    cfg = tiny_config(tiny_archive, tmp_path / "split", optim=optim, sched=sched)
    first = fit(cfg, stop_after_epoch=1)
    assert first["epochs_run"] == 1 and not first["complete"]
    second = fit(cfg)
    assert second["resumed_from_epoch"] == 1 and second["epochs_run"] == 2 and second["complete"]
    assert full["resumed_from_epoch"] is None

    a = checkpoint_weights(str(tmp_path / "full" / "checkpoints" / "epoch_0002.pdparams"))
    b = checkpoint_weights(str(tmp_path / "split" / "checkpoints" / "epoch_0002.pdparams"))
    assert a.keys() == b.keys()
    for k in a:   # bitwise: same batches, same augmentation draws, same optimizer state
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Training actually moved the weights away from the epoch-1 state.
    e1 = checkpoint_weights(str(tmp_path / "split" / "checkpoints" / "epoch_0001.pdparams"))
    assert any(not np.array_equal(a[k], e1[k]) for k in a)
    for ha, hb in zip(full["history"], second["history"]):
        assert ha["lr"] == hb["lr"] and ha["val_top1"] == hb["val_top1"]
        assert ha["train_loss"] == hb["train_loss"]
    assert full["final_top1"] == second["final_top1"]

    # A finished run re-run with the same command does nothing and reports the same results.
    again = fit(cfg)
    assert again["epochs_run"] == 2 and again["final_top1"] == second["final_top1"]


def test_reseeding_matters(tmp_path, tiny_archive):
    """Control for the test above: a different seed gives different weights, so bitwise equality
    there is not trivially true."""
    from ppnets.engine import fit

    fit(tiny_config(tiny_archive, tmp_path / "a", train={"epochs": 1}))
    fit(tiny_config(tiny_archive, tmp_path / "b", train={"epochs": 1, "seed": 8}))
    a = checkpoint_weights(str(tmp_path / "a" / "checkpoints" / "epoch_0001.pdparams"))
    b = checkpoint_weights(str(tmp_path / "b" / "checkpoints" / "epoch_0001.pdparams"))
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_checkpoints_atomic_pointer_and_outputs(tmp_path, tiny_archive):
    from ppnets.engine import fit, load_config

    out = tmp_path / "run"
    cfg = tiny_config(tiny_archive, out, train={"epochs": 3, "keep_checkpoints": 2})
    res = fit(cfg)
    ckpt = out / "checkpoints"
    assert not [p for p in glob.glob(str(out / "**" / "*"), recursive=True)
                if p.endswith(".tmp")] and not list(out.rglob(".*.tmp"))
    pointer = json.loads((ckpt / "latest.json").read_text())
    assert pointer == {"epoch": 3, "params": "epoch_0003.pdparams", "opt": "epoch_0003.pdopt",
                       "state": "epoch_0003.json"}
    assert sorted(p.name for p in ckpt.glob("epoch_*.pdparams")) == [
        "epoch_0002.pdparams", "epoch_0003.pdparams"]       # keep_checkpoints=2
    assert (ckpt / "best.pdparams").is_file()
    opt_state = paddle.load(str(ckpt / "epoch_0003.pdopt"))
    assert opt_state["LR_Scheduler"]["last_epoch"] == 3 * res["steps_per_epoch"]
    saved = yaml.safe_load((ckpt / "config.yaml").read_text())
    assert saved == load_config(None, base=cfg)
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 3 and len(results["history"]) == 3
    for key in ("final_top1", "final_top5", "best_top1", "best_top5", "wall_time_s",
                "train_images_per_s"):
        assert results[key] is not None, key
    assert 0.0 <= results["final_top1"] <= results["final_top5"] <= 1.0
    assert glob.glob(str(out / "vdl" / "*")), "no VisualDL log written"


def test_interrupted_checkpoint_write_keeps_previous(tmp_path, tiny_archive, monkeypatch):
    from ppnets.engine import checkpoint, fit

    out = tmp_path / "run"
    cfg = tiny_config(tiny_archive, out, train={"epochs": 2})
    fit(cfg, stop_after_epoch=1)
    real_save = paddle.save

    def failing_save(obj, path, *a, **k):
        if "pdopt" in os.path.basename(path):
            with open(path, "wb") as f:
                f.write(b"half")    # a partial write, then the "crash"
            raise KeyboardInterrupt("simulated kill while writing the optimizer state")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(checkpoint.paddle, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg)
    monkeypatch.setattr(checkpoint.paddle, "save", real_save)
    ckpt = out / "checkpoints"
    assert json.loads((ckpt / "latest.json").read_text())["epoch"] == 1
    assert not (ckpt / "epoch_0002.pdopt").exists() and not list(ckpt.glob(".*.tmp"))
    res = fit(cfg)    # resumes from the intact epoch-1 checkpoint
    assert res["resumed_from_epoch"] == 1 and res["epochs_run"] == 2


def test_resume_refuses_changed_config_and_restart_keeps_old_run(tmp_path, tiny_archive):
    from ppnets.engine import ResumeMismatchError, fit

    out = tmp_path / "run"
    fit(tiny_config(tiny_archive, out, train={"epochs": 1}))
    with pytest.raises(ResumeMismatchError, match=r"optim.lr: 0.05 -> 0.01"):
        fit(tiny_config(tiny_archive, out, train={"epochs": 1}, optim={"lr": 0.01}))
    # Allowed changes (workers, logging) resume fine.
    res = fit(tiny_config(tiny_archive, out, train={"epochs": 1, "log_freq": 3}))
    assert res["resumed_from_epoch"] == 1
    res = fit(tiny_config(tiny_archive, out, train={"epochs": 1, "resume": False},
                          optim={"lr": 0.01}))
    assert res["resumed_from_epoch"] is None and res["epochs_run"] == 1
    previous = list(out.glob("previous-*"))
    assert len(previous) == 1
    assert (previous[0] / "checkpoints" / "epoch_0001.pdparams").is_file()


# ---------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------
def test_short_real_training_beats_chance(tmp_path):
    from ppnets.engine import fit

    path = require_shared(CIFAR_PARTIAL)
    cfg = {
        "model": {"name": "test_engine_small"},
        "data": {"data_file": path, "batch_size": 64, "eval_batch_size": 256},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        "sched": {"name": "cosine", "warmup_epochs": 0.2},
        "train": {"epochs": 2, "seed": 0, "verbose": 0},
        "output_dir": str(tmp_path / "real"),
    }
    res = fit(cfg)
    assert res["num_train_images"] == 4829 and res["num_test_images"] == 932
    assert res["final_top1"] > 0.25, res["history"]
    assert res["final_top5"] > res["final_top1"]
