"""Without a network, ``pretrained=True`` fails at once, in a few lines that say what to do.

huggingface_hub retries an endpoint that does not answer five times with backoff (~25 s), and
every warning it logs appeared twice (its own handler, and the root logger's that importing
Paddle adds): 67 lines before the one that helps. Each case runs in a fresh process, as a user
meets it: against an endpoint nothing listens on, and against a server that drops every
download half-way (huggingface_hub warns at each of its resume attempts). The time bound is a
behaviour bound (fail without retrying), generous for any CPU; it covers the call only.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

from ppnets.weights.sources import default_weight
from tests.conftest import REPO

CREATE = """
import time, traceback
import ppnets
start = time.perf_counter()
try:
    ppnets.create_model("fasternet_t0", pretrained=True)
except Exception:
    traceback.print_exc()
print(f"{time.perf_counter() - start:.3f}")
"""

COMMAND = """
import sys, time
from ppnets.cli.main import main
start = time.perf_counter()
rc = main(["export", "--model", "fasternet_t0", "--pretrained", "--formats", "paddle",
           "--output-dir", sys.argv[1]])
print(f"{time.perf_counter() - start:.3f} {rc}")
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(script, tmp_path, endpoint, home):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HF_HUB_OFFLINE", "PPNETS_OFFLINE")}
    env.update(PYTHONPATH=REPO, PPNETS_HOME=str(home), HF_ENDPOINT=endpoint)
    return subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out")],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _doubled(lines):
    """Messages printed twice: once as they are (huggingface_hub's own handler) and once
    behind the prefix of the root logger's handler (which importing Paddle installs)."""
    prefix = re.compile(r"^\[[^]]*\] \[ *[A-Z]+\] \S+:\d+ - ")
    plain = {line for line in lines if not prefix.match(line)}
    return [line for line in lines if prefix.match(line) and prefix.sub("", line) in plain]


def test_without_network_pretrained_fails_fast_and_prints_each_line_once(tmp_path,
                                                                         file_server):
    src = default_weight("fasternet_t0")
    file_server.files[f"/{src.hf_hub_id}/resolve/{src.revision}/{src.filename}"] = \
        bytes(range(256)) * 4096
    file_server.cut_after = 300_000    # every answer stops there: the download never completes
    closed = f"http://127.0.0.1:{_closed_port()}"
    home = tmp_path / "home"
    runs = {"create_model": _run(CREATE, tmp_path, closed, home),
            "ppnets export": _run(COMMAND, tmp_path, closed, home),
            "dropped": _run(CREATE, tmp_path, file_server.url, tmp_path / "home_dropped")}
    for what, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        lines = [line for line in err.splitlines() if line.strip()]
        assert not _doubled(lines), (what, err)
        useful = [line for line in lines if "cannot be downloaded" in line]
        assert len(useful) == 1 and useful[0] == lines[-1], (what, err)
        if what == "dropped":
            assert [line for line in lines if "resume" in line], err   # it did warn
            continue
        seconds, *rc = out.split()[-2:] if what == "ppnets export" else out.split()[-1:]
        assert not [line for line in lines if "Retry" in line], (what, err)
        assert len(lines) <= 20, (what, len(lines), err)
        assert float(seconds) < 10, (what, seconds, err)
        assert f"({closed}: " in useful[0]                     # why: what the endpoint said
        assert os.path.join(str(home), "manual", "fasternet_t0.in1k") in useful[0]
        assert "pretrained=<path" in useful[0]
        if rc:
            assert rc == ["2"] and useful[0].startswith("error: "), (what, out, err)
    assert not os.path.exists(tmp_path / "out")   # nothing exported
