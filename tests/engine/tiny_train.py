"""Run ``ppnets.engine.fit`` on a test-only tiny model, as a separate process.

    python tests/engine/tiny_train.py CONFIG.json [--stop-after K] [--dump-weights DIR]
    python -m paddle.distributed.launch --nproc_per_node 2 tests/engine/tiny_train.py CONFIG.json ...

Used by tests/engine/test_distributed.py (two CPU processes under Paddle's launcher) and
tests/engine/test_kill_resume.py (SIGKILL in the middle of an epoch). ``CONFIG.json`` is a config dict
(``load_config(None, base=...)``); the model ``test_tiny_sleepy`` is a conv-BN-ReLU-pool-linear
net whose training forward sleeps ``model.kwargs.sleep_s`` seconds, so an epoch lasts long
enough to be interrupted. ``--dump-weights DIR`` saves each rank's final weights to
``DIR/rank<r>.npz`` and its results to ``DIR/rank<r>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402

from ppnets.registry import list_models, register_models  # noqa: E402


# The network the engine builds in this process (for --dump-weights).
_LAST_NET = {}


class SleepyTinyCNN(nn.Layer):
    def __init__(self, num_classes=10, width=8, sleep_s=0.0, deploy=False):
        super().__init__()
        _LAST_NET["net"] = self
        self.sleep_s = float(sleep_s)
        self.features = nn.Sequential(nn.Conv2D(3, width, 3, padding=1, bias_attr=False),
                                      nn.BatchNorm2D(width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        if self.training and self.sleep_s:
            time.sleep(self.sleep_s)
        return self.fc(paddle.reshape(self.pool(self.features(x)), [0, -1]))


if "test_tiny_sleepy" not in list_models():
    register_models("test_tiny", SleepyTinyCNN, {"test_tiny_sleepy": {"cfg": {}}},
                    paper="test-only model of tests/engine/tiny_train.py", arxiv=None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--stop-after", type=int, default=None)
    p.add_argument("--dump-weights", default=None)
    args = p.parse_args(argv)
    from ppnets.engine import fit

    with open(args.config) as f:
        cfg = json.load(f)
    res = fit(cfg, stop_after_epoch=args.stop_after)
    if args.dump_weights:
        rank = paddle.distributed.get_rank()
        os.makedirs(args.dump_weights, exist_ok=True)
        # this process's live weights, not a checkpoint: a rank that drifted must show
        net = _LAST_NET.get("net")
        if net is not None:
            np.savez(os.path.join(args.dump_weights, f"rank{rank}.npz"),
                     **{k: v.numpy() for k, v in net.state_dict().items()})
        with open(os.path.join(args.dump_weights, f"rank{rank}.json"), "w") as f:
            json.dump(res, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
