"""Data-parallel training with Paddle's own launcher, two CPU processes (gloo backend).

`python -m paddle.distributed.launch --nproc_per_node 2 tests/engine/tiny_train.py cfg.json` runs
``ppnets.engine.fit`` unchanged in two processes: the first launch stops after epoch 1, the
second resumes and finishes epoch 2. Checked: both ranks end with identical weights (gradients
were averaged, BN statistics adopted from rank 0), each rank trained on half of the data,
the learning rate follows ``optim.lr_scale_batch`` with the global batch, only rank 0 logged and
wrote checkpoints, and the second launch resumed after epoch 1.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, write_cifar_archive

SCRIPT = os.path.join(REPO, "tests", "engine", "tiny_train.py")


def _launch(tmp_path, cfg_path, log_dir, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(log_dir), SCRIPT, str(cfg_path), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300,
                          cwd=str(tmp_path))
    logs = {r: (log_dir / f"workerlog.{r}").read_text() if (log_dir / f"workerlog.{r}").exists()
            else "" for r in (0, 1)}
    assert proc.returncode == 0, (f"launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                  f"{proc.stderr[-3000:]}\nrank 0:\n{logs[0][-3000:]}\n"
                                  f"rank 1:\n{logs[1][-3000:]}")
    return logs


def test_two_cpu_processes_train_checkpoint_on_rank0_and_resume(tmp_path):
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(archive, per_batch=16, n_test=12, seed=3)   # 80 train, 12 test images
    out = tmp_path / "run"
    cfg = {"model": {"name": "test_tiny_sleepy"},
           "data": {"data_file": archive, "batch_size": 4, "eval_batch_size": 5,
                    "num_workers": 0},
           "optim": {"name": "sgd", "lr": 0.1, "lr_scale_batch": 16},
           "sched": {"name": "constant"},
           "train": {"epochs": 2, "seed": 7, "verbose": 2, "log_freq": 5},
           "output_dir": str(out)}
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))

    logs = _launch(tmp_path, cfg_path, tmp_path / "log1", "--stop-after", "1")
    ckpt = out / "checkpoints"
    assert json.loads((ckpt / "latest.json").read_text())["epoch"] == 1
    assert "[ppnets.engine] epoch 1/2" in logs[0]
    assert "[ppnets.engine]" not in logs[1], "rank 1 must not log"
    assert not [n for n in os.listdir(ckpt) if n.endswith(".tmp")]

    dump = tmp_path / "weights"
    logs = _launch(tmp_path, cfg_path, tmp_path / "log2", "--dump-weights", str(dump))
    assert "resuming" in logs[0] and "after epoch 1/2" in logs[0]
    assert "[ppnets.engine]" not in logs[1]
    assert sorted(n for n in os.listdir(ckpt) if n.startswith("epoch_")) == [
        f"epoch_000{e}.{s}" for e in (1, 2) for s in ("json", "pdopt", "pdparams")]

    r0 = json.loads((dump / "rank0.json").read_text())
    r1 = json.loads((dump / "rank1.json").read_text())
    for res in (r0, r1):
        assert res["world_size"] == 2 and res["global_batch_size"] == 8
        assert res["base_lr"] == pytest.approx(0.1 * 8 / 16)
        assert res["steps_per_epoch"] == 10     # 80 images / 2 ranks / batch 4
        assert res["resumed_from_epoch"] == 1 and res["epochs_run"] == 2
        assert [h["epoch"] for h in res["history"]] == [1, 2]
        assert res["history"][1]["lr"] == pytest.approx(0.05)
    # both ranks computed the metrics of all 12 test images from the same model
    assert r0["final_top1"] == r1["final_top1"]
    assert r0["final_top1"] * 12 == pytest.approx(round(r0["final_top1"] * 12))
    w0, w1 = np.load(dump / "rank0.npz"), np.load(dump / "rank1.npz")
    assert sorted(w0.files) == sorted(w1.files)
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
    saved = json.loads((ckpt / "epoch_0002.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert saved["train_images"] == 2 * 80   # all ranks together, each image once per epoch
    # results.json comes from rank 0 only and matches its return value
    assert json.loads((out / "results.json").read_text())["final_top1"] == r0["final_top1"]
