"""SIGKILL in the middle of epoch 2, then the same command again: training resumes after epoch 1,
loses no completed epoch, and ends with the weights of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.conftest import REPO, write_cifar_archive

SCRIPT = os.path.join(REPO, "tests", "engine", "tiny_train.py")


def _config(archive, out):
    # 3 s per epoch: the kill, sent at a step line of epoch 2, lands before the run ends even
    # when a loaded machine delays our reading of the output
    return {"model": {"name": "test_tiny_sleepy", "kwargs": {"sleep_s": 0.15}},
            "data": {"data_file": archive, "batch_size": 4, "num_workers": 0},
            "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "sched": {"name": "cosine", "warmup_epochs": 0.5},
            "train": {"epochs": 3, "seed": 11, "verbose": 2, "log_freq": 1},
            "output_dir": str(out)}


def _run(cfg_path, dump):
    cmd = [sys.executable, "-u", SCRIPT, str(cfg_path), "--dump-weights", str(dump)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((dump / "rank0.json").read_text())


def test_sigkill_mid_epoch_then_rerun_resumes_exactly(tmp_path):
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(archive, per_batch=16, n_test=8, seed=5)   # 80 images: 20 steps/epoch
    out = tmp_path / "run"
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(_config(archive, out)))
    latest = out / "checkpoints" / "latest.json"

    cmd = [sys.executable, "-u", SCRIPT, str(cfg_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, in_epoch2, killed = [], False, False
    deadline = time.time() + 240
    try:
        for line in proc.stdout:
            seen.append(line)
            if "[ppnets.engine] epoch 1/3" in line:
                in_epoch2 = True     # epoch 1 finished, evaluated and checkpointed
            elif in_epoch2 and line.startswith("step") and "/20" in line:
                # a training step of epoch 2 has run: kill without any chance to clean up
                assert json.loads(latest.read_text())["epoch"] == 1
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            assert time.time() < deadline, "".join(seen[-50:])
    finally:
        proc.wait(timeout=60)
    log = "".join(seen)
    assert killed, f"never reached epoch 2:\n{log[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert "[ppnets.engine] epoch 2/3" not in log
    assert json.loads(latest.read_text())["epoch"] == 1

    stdout, res = _run(cfg_path, tmp_path / "resumed")
    assert "resuming" in stdout and "after epoch 1/3" in stdout
    assert res["resumed_from_epoch"] == 1
    assert res["epochs_run"] == res["epochs_planned"] == 3 and res["complete"]
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3]

    # the same config trained without interruption, in another output folder
    ref_cfg = tmp_path / "ref.json"
    ref_cfg.write_text(json.dumps(_config(archive, tmp_path / "ref")))
    _, ref = _run(ref_cfg, tmp_path / "uninterrupted")
    assert ref["resumed_from_epoch"] is None
    assert res["history"][0] == {**ref["history"][0], **{k: res["history"][0][k] for k in
                                                          ("train_time_s", "images_per_s",
                                                           "eval_time_s")}}
    assert [h["val_top1"] for h in res["history"]] == [h["val_top1"] for h in ref["history"]]
    assert [h["train_loss"] for h in res["history"]] == [h["train_loss"] for h in ref["history"]]
    a = np.load(tmp_path / "resumed" / "rank0.npz")
    b = np.load(tmp_path / "uninterrupted" / "rank0.npz")
    for key in b.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
