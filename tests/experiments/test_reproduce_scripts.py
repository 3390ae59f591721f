"""The per-paper reproduce scripts end to end (--smoke, in subprocesses) and the engine features
they rely on (weight-decay annealing, model EMA, distillation loss, linear lr decay), the latter
against hand-computed values.

CIFAR scripts run on a tiny synthetic archive written here, with --only a subset of rows to keep
the file to a few minutes on 2 cores (the full row lists run in results/); ImageNet scripts run
on ../shared/data/imagenet-val-sample and skip when it is absent."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from tests.conftest import IMAGENET_SAMPLE, REPO, require_shared, write_cifar_archive

# script -> rows run by the test (--only); None: the script's own smoke rows
CIFAR_SCRIPTS = {
    "fasternet_cifar10_ablation": ["r=1/4", "ReLU (r=1/4)"],
    "repvgg_ablation_cifar10": ["3x3+1x1+identity", "3x3 only (no BN)"],
    "mobileone_ablation_cifar10": ["k=1", "k=1, no scale/skip"],
    "repvit_cifar10": ["1 MobileNetV3-L", "4 RepViT-M1.0"],
    "efficientformerv2_ablation_cifar10": ["no MHSA (num_vit=0)"],
}
IMAGENET_SCRIPTS = {
    "fasternet_imagenet": ["fasternet_t0"],
    "shufflenetv2_imagenet": ["shufflenet_v2_x0_5"],
    "mobilenet_imagenet": ["mobilenetv3_large_100"],
    "efficientformer_imagenet": ["efficientformer_l1"],
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(script, args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, os.path.join(REPO, "reproduce", f"{script}.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _check(out_root, script, labels, n_train, banner):
    results = json.loads(open(os.path.join(out_root, "results.json")).read())
    record = json.loads(open(os.path.join(out_root, "run_record.json")).read())
    md = open(os.path.join(out_root, "results.md")).read()
    assert results["schema"] == f"ppnets.reproduce.{script}/1"
    assert results["smoke"] is True and record["smoke"] is True
    assert "SMOKE RUN, not a reproduction" in md and banner in md
    assert record["script"] == f"reproduce/{script}.py"
    assert record["command"].startswith("python ") and "--smoke" in record["command"]
    assert record["finished_utc"] and record["machine"]["available_cores"] >= 1
    assert record["data"]["train_images"] == n_train
    assert [r["label"] for r in results["rows"]] == labels
    lines = md.splitlines()
    header = next(l for l in lines if l.startswith("| row |"))
    for row in results["rows"]:
        assert row["smoke"] and row["epochs_run"] == 1 and row["epochs_planned"] == 1
        assert row["smoke_overrides"] and row["max_steps_per_epoch"] == 2
        assert 0.0 <= row["top1"] <= row["top5"] <= 1.0
        assert row["params_m"] > 0 and row["macs_m"] > 0 and row["errors"] == [], row
        assert os.path.isfile(os.path.join(row["output_dir"], "checkpoints", "latest.json"))
        line = next(l for l in lines if l.startswith(f"| {row['label']} |"))
        assert line.count("|") == header.count("|")
        assert f"| {100 * row['top1']:.2f} |" in line and f"{row['params_m']:.3f}" in line
    return results, md


@pytest.fixture(scope="module")
def cifar_archive(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "cifar-10-python.tar.gz")
    write_cifar_archive(path, per_batch=8, n_test=16, seed=3)
    return path


@pytest.mark.parametrize("script", sorted(CIFAR_SCRIPTS))
def test_cifar_script_smoke(script, cifar_archive, tmp_path):
    labels = CIFAR_SCRIPTS[script]
    out = str(tmp_path / "out")
    proc = _run(script, ["--smoke", "--data-file", cifar_archive, "--output-dir", out,
                         "--only", *labels], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results, md = _check(os.path.join(out, "smoke"), script, labels, 40,
                         "PARTIAL DATA: 40 training / 16 test images")
    assert results["run"]["data"]["md5"] and results["run"]["data"]["file"] == cifar_archive
    png = results["figure"]
    assert png and f"]({png})" in md
    with open(os.path.join(out, "smoke", png), "rb") as f:
        assert f.read(8) == PNG_MAGIC


@pytest.mark.parametrize("script", sorted(IMAGENET_SCRIPTS))
def test_imagenet_script_smoke_on_sample(script, tmp_path):
    require_shared(IMAGENET_SAMPLE)
    out = str(tmp_path / "out")
    proc = _run(script, ["--smoke", "--output-dir", out], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results, md = _check(os.path.join(out, "smoke"), script, IMAGENET_SCRIPTS[script], 400,
                         "SAMPLE DATA")
    data = results["run"]["data"]
    assert data["dataset"] == "imagenet" and data["train_list"] == data["val_list"]
    assert data["train_list_lines"] == 400
    row = results["rows"][0]
    assert row["image_size"] == 224 and row["published_top1"] > 50
    if script == "efficientformer_imagenet":
        assert "teacher mobilenetv3_small_050 from RANDOM INITIALISATION" in md
        assert "distill.teacher=mobilenetv3_small_050" in row["overrides"]
    if script == "mobilenet_imagenet":   # V3's recipe keeps an EMA: it is evaluated too
        assert row["top1_ema"] is not None


def test_bad_arguments_fail_clearly(tmp_path, cifar_archive):
    proc = _run("fasternet_imagenet", ["--output-dir", str(tmp_path / "o")], cwd=str(tmp_path))
    assert proc.returncode != 0 and "give --data-dir" in proc.stderr
    proc = _run("repvgg_ablation_cifar10", ["--smoke", "--data-file", cifar_archive, "--only",
                                            "nope", "--output-dir", str(tmp_path / "o")],
                cwd=str(tmp_path))
    assert proc.returncode != 0 and "no such row" in proc.stderr
    proc = _run("repvgg_ablation_cifar10", ["--smoke", "--data-file", cifar_archive, "-o",
                                            "optim.weight_decay_ned=1", "--output-dir",
                                            str(tmp_path / "o")], cwd=str(tmp_path))
    assert proc.returncode != 0 and "weight_decay_end" in proc.stderr   # did-you-mean hint
    assert not os.path.exists(str(tmp_path / "o"))


def test_every_recipe_config_resolves():
    from ppnets.engine import load_config
    import ppnets

    for family in ("fasternet", "shufflenetv2", "mobilenet", "repvgg", "mobileone", "repvit",
                   "efficientformer", "efficientformerv2"):
        folder = os.path.join(REPO, "configs", family)
        names = sorted(f for f in os.listdir(folder) if f.endswith(".yaml"))
        assert "cifar10.yaml" in names and any(n.startswith("imagenet") for n in names), family
        for name in names:
            cfg = load_config(os.path.join(folder, name))
            assert cfg["model"]["name"] in ppnets.list_models(), (family, name)
            expected = "imagenet" if name.startswith("imagenet") else "cifar10"
            assert cfg["data"]["dataset"] == expected, (family, name)


# ---- engine features ------------------------------------------------------------------------
def test_wd_at_cosine_end_points():
    from ppnets.engine.wd_schedule import wd_at

    assert wd_at(0, start=1e-4, end=1e-5, total_steps=11) == pytest.approx(1e-4, rel=1e-12)
    assert wd_at(10, start=1e-4, end=1e-5, total_steps=11) == pytest.approx(1e-5, rel=1e-12)
    assert wd_at(5, start=1e-4, end=1e-5, total_steps=11) == pytest.approx(5.5e-5, rel=1e-12)
    # quarter way: end + (start-end) * (1 + cos(pi/4)) / 2
    assert wd_at(25, start=1.0, end=0.0, total_steps=101) == pytest.approx(
        (1 + math.sqrt(0.5)) / 2, rel=1e-12)


@pytest.mark.parametrize("kind", ["adamw", "sgd", "adam"])
def test_set_weight_decay_changes_the_update(kind):
    """One step with a zero gradient, lr 0.1, decay set to 0.5 after construction at 1e-4:
    AdamW decays decoupled, p <- p (1 - lr wd) = 0.95; SGD-momentum adds wd p to the gradient,
    p <- p - lr wd p = 0.95; Adam's first step normalises the L2 gradient to ~1: p ~ 0.9."""
    from ppnets.engine.optim import build_optimizer
    from ppnets.engine.wd_schedule import get_weight_decay, set_weight_decay

    lin = paddle.nn.Linear(1, 1, bias_attr=False)
    lin.weight.set_value(np.ones((1, 1), "float32"))
    opt = build_optimizer({"name": kind, "weight_decay": 1e-4, "momentum": 0.9}, lin.parameters(),
                          0.1)
    set_weight_decay(opt, 0.5)
    assert get_weight_decay(opt) == 0.5
    loss = (lin(paddle.zeros([1, 1])) * 0.0).sum()   # zero gradient
    loss.backward()
    opt.step()
    expected = {"adamw": 0.95, "sgd": 0.95, "adam": 0.9}[kind]
    assert float(lin.weight.numpy()[0, 0]) == pytest.approx(expected, abs=1e-6)


def test_weight_decay_schedule_sets_step_values():
    from ppnets.engine.optim import WarmupSchedule, build_optimizer
    from ppnets.engine.wd_schedule import WeightDecaySchedule

    lin = paddle.nn.Linear(2, 2)
    sched = WarmupSchedule(0.1, steps_per_epoch=5, epochs=2)
    opt = build_optimizer({"name": "adamw", "weight_decay": 1e-4}, lin.parameters(), sched)
    wd = WeightDecaySchedule(opt, sched, 1e-4, 1e-5, total_steps=10)
    seen = []
    for _ in range(10):
        wd.apply()
        seen.append(opt._weight_decay)
        sched.step()
    expected = [1e-5 + 9e-5 * 0.5 * (1 + math.cos(math.pi * s / 9)) for s in range(10)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)


def test_model_ema_update_and_swap():
    from ppnets.engine.ema import ModelEma

    net = paddle.nn.Sequential(paddle.nn.Linear(2, 2), paddle.nn.BatchNorm1D(2))
    w0 = net[0].weight.numpy().copy()
    ema = ModelEma(net, decay=0.75)
    net[0].weight.set_value(w0 + 4.0)
    net[1]._mean.set_value(np.array([8.0, -8.0], "float32"))
    ema.update()
    shadow = ema.state_dict()
    np.testing.assert_allclose(shadow["0.weight"].numpy(), w0 + 1.0, rtol=1e-6)  # 0.25 * 4
    np.testing.assert_allclose(shadow["1._mean"].numpy(), [2.0, -2.0], rtol=1e-6)
    with ema.applied():
        np.testing.assert_allclose(net[0].weight.numpy(), w0 + 1.0, rtol=1e-6)
    np.testing.assert_allclose(net[0].weight.numpy(), w0 + 4.0, rtol=1e-6)  # restored
    with pytest.raises(ValueError, match="ema_decay"):
        ModelEma(net, decay=1.0)


def test_ema_and_wd_annealing_resume_exactly(tmp_path, cifar_archive):
    """2 epochs in one call == 1 epoch, stop, resume 1 more: weights and EMA bitwise equal."""
    from ppnets.engine import fit, load_config

    def cfg(out):
        return load_config(os.path.join(REPO, "configs", "mobileone", "cifar10.yaml"), [
            "model.name=resnet20_cifar", "model.kwargs={}", f"data.data_file={cifar_archive}",
            "data.image_size=32", "data.batch_size=8", "data.num_workers=0", "train.epochs=2",
            "train.max_steps_per_epoch=2", "train.max_eval_steps=1", "train.verbose=0",
            "train.ema_decay=0.5", f"output_dir={out}"])

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    ra = fit(cfg(a))
    fit(cfg(b), stop_after_epoch=1)
    rb = fit(cfg(b))
    assert rb["resumed_from_epoch"] == 1 and ra["final_top1_ema"] == rb["final_top1_ema"]
    for name in ("epoch_0002.pdparams", "ema.pdparams"):
        sa = paddle.load(os.path.join(a, "checkpoints", name))
        sb = paddle.load(os.path.join(b, "checkpoints", name))
        for k in sa:
            np.testing.assert_array_equal(np.asarray(sa[k]), np.asarray(sb[k]), err_msg=k)
    assert "val_top1_ema" in ra["history"][-1]


class _TwoHead(paddle.nn.Layer):
    """A student with a distillation head: (cls, dist) in distilled training."""

    def __init__(self):
        super().__init__()
        self.lin = paddle.nn.Linear(2, 2)
        self.distilled_training = False

    def set_distilled_training(self, enable=True):
        self.distilled_training = enable

    def forward(self, x):
        if self.training and self.distilled_training:
            return self.lin(x), self.lin(x) * 2.0
        return self.lin(x)


def _log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    return z - np.log(np.exp(z).sum())


def test_distillation_loss_hard_and_soft_by_hand():
    from ppnets.engine.distill import DistillationLoss

    class Src:
        teacher_logits = paddle.to_tensor([[2.0, 0.0]])
        dist_logits = paddle.to_tensor([[0.0, 2.0]])

    cls = paddle.to_tensor([[1.0, 0.0]])
    y = paddle.to_tensor([[1]], dtype="int64")
    ce_cls = -_log_softmax([1.0, 0.0])[1]                   # log(1 + e)
    hard = DistillationLoss(paddle.nn.CrossEntropyLoss(), Src, "hard", alpha=0.5)
    ce_kd = -_log_softmax([0.0, 2.0])[0]                    # teacher argmax = class 0
    assert float(hard(cls, y)) == pytest.approx(0.5 * ce_cls + 0.5 * ce_kd, rel=1e-6)
    soft = DistillationLoss(paddle.nn.CrossEntropyLoss(), Src, "soft", alpha=0.25, tau=2.0)
    lt, ls = _log_softmax([1.0, 0.0]), _log_softmax([0.0, 1.0])
    kl = float((np.exp(lt) * (lt - ls)).sum()) * 4.0 / 2     # tau^2 / number of logits
    assert float(soft(cls, y)) == pytest.approx(0.75 * ce_cls + 0.25 * kl, rel=1e-6)
    Src.teacher_logits = None                                # eval batch: plain loss
    assert float(hard(cls, y)) == pytest.approx(ce_cls, rel=1e-6)


def test_distillation_net_keeps_teacher_frozen():
    from ppnets.engine.distill import DistillationNet

    student, teacher = _TwoHead(), paddle.nn.Sequential(paddle.nn.Linear(2, 2),
                                                        paddle.nn.Dropout(0.9))
    net = DistillationNet(student, teacher)
    net.train()
    assert student.training and not teacher.training and not teacher[1].training
    x = paddle.to_tensor([[1.0, -1.0]])
    out = net(x)
    np.testing.assert_allclose(out.numpy(), student.lin(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(net.dist_logits.numpy(), 2 * student.lin(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(net.teacher_logits.numpy(), teacher[0](x).numpy(), rtol=1e-6)
    assert net.teacher_logits.stop_gradient
    assert all(p.stop_gradient for p in teacher.parameters())
    net.eval()
    net(x)
    assert net.teacher_logits is None


def test_linear_lr_schedule():
    from ppnets.engine.optim import lr_at

    kw = dict(name="linear", base_lr=0.5, steps_per_epoch=10, epochs=10)
    assert lr_at(0, **kw) == 0.5
    assert lr_at(50, **kw) == pytest.approx(0.25)
    assert lr_at(100, **kw) == pytest.approx(0.0)
    assert lr_at(30, warmup_epochs=2, **kw) == pytest.approx(0.5 * (1 - 10 / 80))
