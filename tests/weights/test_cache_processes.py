"""Many processes, one weight cache: ``paddle.distributed.launch`` with N ranks is N processes
calling ``create_model(name, pretrained=True)`` at once on a cold cache. Every one must get the
same weights with one download between them, leave no partial file, and a download killed
half-way (SIGKILL: no cleanup runs) must not block the next run, which completes it (resuming a
plain-URL download) and leaves no partial file either.

The server throttles its answers (chunks with a pause) so that the downloads overlap; the
processes (tests/weights/cache_worker.py) are started together and released at one moment.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import filelock
import pytest

import ppnets
from ppnets.weights import pretrained
from ppnets.weights.sources import default_weight
from tests.conftest import REPO
from tests.weights.cache_worker import state_hash, url_weight

WORKER = os.path.join(REPO, "tests", "weights", "cache_worker.py")
URL = "https://download.example.org/models/fasternet_t0-test.safetensors"
PARTIAL = (".tmp", ".part", ".incomplete")


def throttle(server, chunk: int, pause: float) -> None:
    """Make ``server`` send GET bodies ``chunk`` bytes at a time with ``pause`` s between them,
    counting in ``server.sent`` the bytes sent per path (a client that goes away ends its
    answer quietly)."""
    server.throttle = (chunk, pause)
    server.sent = collections.Counter()
    base = server.httpd.RequestHandlerClass

    class Throttled(base):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body, start = self._head()
            if body is None:
                return
            path = self.path.split("?")[0]
            size, wait = server.throttle
            try:
                for i in range(start, len(body), size):
                    self.wfile.write(body[i:i + size])
                    self.wfile.flush()
                    server.sent[path] += len(body[i:i + size])
                    time.sleep(wait)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    server.httpd.RequestHandlerClass = Throttled


def _start(specs, logs):
    """A worker per spec, released together once every one has imported ppnets; their stderr
    goes to files under ``logs`` (``proc.log``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = REPO
    procs = []
    for i, spec in enumerate(specs):
        log = logs / f"worker{i}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen([sys.executable, WORKER, json.dumps(spec)], cwd=REPO,
                                    env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, text=True)
        proc.log = log
        procs.append(proc)
    for proc in procs:
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        else:
            pytest.fail(f"a worker ended before it was ready: {proc.log.read_text()[-3000:]}")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def _serve(hub, reference_files, monkeypatch):
    """fasternet_t0's reference file where the hub has its default weights (the hub fixture)
    and at a plain URL, mirrored on the loopback server; returns (url path, spec, bytes)."""
    data = open(reference_files["fasternet_t0"], "rb").read()
    path = "/models/fasternet_t0-test.safetensors"
    hub.files[path] = data
    monkeypatch.setenv("PPNETS_DOWNLOAD_MIRROR", hub.url)
    spec = {"url_source": {"model": "fasternet_t0", "url": URL,
                           "sha256": hashlib.sha256(data).hexdigest()}}
    return path, spec, data


def _hub_path(src) -> str:
    return f"/{src.hf_hub_id}/resolve/{src.revision}/{src.filename}"


def _leftovers(home) -> list:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(home) for f in files
                  if f.endswith(PARTIAL))


def _gets(server, path):
    return [r for r in server.requests if r[0] == "GET" and r[1].split("?")[0] == path]


def test_processes_at_once_share_one_download_and_get_the_same_weights(
        hub, reference_files, monkeypatch, tmp_path):
    url_path, spec, data = _serve(hub, reference_files, monkeypatch)
    hub_src = default_weight("fasternet_t0")
    throttle(hub, 256 << 10, 0.02)  # ~13 MB/s: each download takes more than a second
    spec["models"] = [["fasternet_t0", True], ["fasternet_t0", "test_url"]]
    procs = _start([spec] * 4, tmp_path)
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, p.log.read_text()[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    expected = state_hash(ppnets.create_model("fasternet_t0",
                                              pretrained=reference_files["fasternet_t0"]))
    for result in results:
        assert result == {"fasternet_t0:True": expected, "fasternet_t0:test_url": expected}
    assert len(_gets(hub, _hub_path(hub_src))) == 1, hub.requests
    assert len(_gets(hub, url_path)) == 1, hub.requests
    assert hub.sent[url_path] == len(data)
    assert _leftovers(os.environ["PPNETS_HOME"]) == []
    entry = pretrained.cached_entry(hub_src)
    assert entry is not None and sorted(os.listdir(os.path.dirname(entry["weights_path"]))) \
        == ["meta.json", "model.pdparams"]


def test_a_download_killed_half_way_resumes_and_leaves_no_partial_file(
        hub, reference_files, monkeypatch, tmp_path):
    url_path, spec, data = _serve(hub, reference_files, monkeypatch)
    hub_src = default_weight("fasternet_t0")
    hub_path = _hub_path(hub_src)
    throttle(hub, 64 << 10, 0.02)   # ~3 MB/s: several seconds per file
    # one process downloads from the hub, the other from the URL; both killed half-way
    procs = _start([dict(spec, models=[["fasternet_t0", weights]])
                    for weights in (True, "test_url")], tmp_path)
    deadline = time.monotonic() + 120
    running = dict(zip((hub_path, url_path), procs))
    while running:   # each killed once the server has sent a third of its file
        for path, proc in list(running.items()):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (hub.sent, proc.log.read_text()[-2000:])
            if hub.sent[path] >= len(data) // 3:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()
                del running[path]
        time.sleep(0.02)
    assert all(hub.sent[p] < len(data) for p in (hub_path, url_path))

    # the killed holders' locks are free again (the kernel released them with the processes)
    url_src = url_weight(spec["url_source"])
    for src in (hub_src, url_src):
        with filelock.FileLock(pretrained.lock_path(src), timeout=5):
            pass
    throttle(hub, 1 << 20, 0)
    monkeypatch.setattr(pretrained, "find_weight", lambda name, tag: url_src)
    expected = state_hash(ppnets.create_model("fasternet_t0",
                                              pretrained=reference_files["fasternet_t0"]))
    assert state_hash(ppnets.create_model("fasternet_t0", pretrained=True)) == expected
    assert state_hash(ppnets.create_model("fasternet_t0", pretrained="test_url")) == expected
    first, second = _gets(hub, url_path)   # the URL's second GET asked for the rest only
    assert first[2] is None and second[2] is not None, (first, second)
    assert 0 < int(second[2][len("bytes="):].split("-")[0]) < len(data), second
    # (huggingface_hub >= 2 starts a hub file over: its temporaries are never resumed)
    assert len(_gets(hub, hub_path)) == 2, hub.requests
    assert _leftovers(os.environ["PPNETS_HOME"]) == []
    for src in (hub_src, url_src):
        assert sorted(os.listdir(pretrained.cache_dir(src))) == ["meta.json", "model.pdparams"]
