"""Paddle's SIGCHLD handler is Paddle's only while a loader with workers is alive.

Paddle 3.3.1 installs it with the first multi-process DataLoader and keeps it for the life of the
process; a later subprocess (here: `git rev-parse` for a run record, after `ppnets eval
--num-workers 1`) then crashed the interpreter with SIGSEGV. ppnets' loader puts the previous
handler back when the last loader with workers ends (ppnets/engine/data.py).
"""
from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import paddle

from ppnets.engine.data import FailFastDataLoader


class _Numbers(paddle.io.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return np.full((2,), i, np.float32), np.int64(i)


def _mine(signum, frame):
    pass


def test_the_previous_sigchld_handler_is_back_after_the_loader():
    before = signal.signal(signal.SIGCHLD, _mine)
    try:
        seen = []
        loader = FailFastDataLoader(_Numbers(), batch_size=4, num_workers=2)
        for x, _ in loader:
            seen.append(signal.getsignal(signal.SIGCHLD))
        assert seen and all(h is not _mine for h in seen), \
            "Paddle's handler watches the workers while they run"
        assert signal.getsignal(signal.SIGCHLD) is _mine
        # and the next loader with workers installs Paddle's handler again
        again = [signal.getsignal(signal.SIGCHLD) for _ in FailFastDataLoader(
            _Numbers(), batch_size=8, num_workers=1)]
        assert again and all(h is not _mine for h in again)
        assert signal.getsignal(signal.SIGCHLD) is _mine
        assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0
    finally:
        signal.signal(signal.SIGCHLD, before)
