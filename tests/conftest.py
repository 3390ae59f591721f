"""Shared test helpers."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading

import numpy as np
import paddle
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
CIFAR_PARTIAL = os.path.join(SHARED_DATA, "cifar-10-python-partial.tar.gz")
IMAGENET_SAMPLE = os.path.join(SHARED_DATA, "imagenet-val-sample")


# The interpreter that runs the reference implementations (torch, torchvision, timm), always in
# a subprocess: torch and paddle never share a process. Without PYTHONPATH, so the subprocess
# cannot pick up paddle from the test process's path.
TORCH_PYTHON = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)
TORCH_PYTHON_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(autouse=True)
def seeded_generators():
    """Every test draws its random weights and inputs from the same seed, whatever ran before it
    on its xdist worker: a numeric failure on an unlucky draw fails again on the next run, in
    any order, instead of passing or failing by chance (the zoo check once failed CI that way)."""
    paddle.seed(0)
    np.random.seed(0)


def torch_python() -> str:
    """``TORCH_PYTHON``, or skip (saying how to install the references) when it lacks them."""
    probe = subprocess.run([TORCH_PYTHON, "-c", "import torch, torchvision, timm, safetensors"],
                           capture_output=True, text=True, env=TORCH_PYTHON_ENV)
    if probe.returncode != 0:
        pytest.skip(f"needs torch, torchvision, timm and safetensors in {TORCH_PYTHON} "
                    f"(pip install -e '.[parity]'): {probe.stderr.strip().splitlines()[-1:]}")
    return TORCH_PYTHON


def in_eval_mode(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """``model`` after ``model.eval()`` (Paddle 3.0's ``eval()`` returns None, not the model)."""
    model.eval()
    return model


def randomize_bn(model: paddle.nn.Layer, seed: int = 0) -> None:
    """Random running statistics and affine parameters for every BatchNorm, so that BN folding is
    actually exercised (fresh BN is the identity up to eps)."""
    rng = np.random.RandomState(seed)
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm)):
            n = layer._mean.shape[0]
            layer._mean.set_value(rng.uniform(-0.2, 0.2, n).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.weight is not None:
                layer.weight.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.bias is not None:
                layer.bias.set_value(rng.uniform(-0.2, 0.2, n).astype("float32"))


# Registry-wide tests of variants above this many parameters (published, else model_info's
# measured count) carry the `slow` marker: the default run leaves them out, CI runs `-m slow`.
SLOW_PARAMS_M = 40.0


def model_param(name: str, xdist_group: bool = True):
    """``pytest.param(name)`` with the `slow` marker for large variants and, optionally, one
    xdist group per variant (so `--dist loadgroup` builds each variant on one worker only)."""
    import ppnets

    info = ppnets.model_info(name)
    params_m = info.get("params_m") or (info.get("measured") or {}).get("params_m") or 0.0
    marks = [pytest.mark.xdist_group(f"model-{name}")] if xdist_group else []
    if params_m > SLOW_PARAMS_M:
        marks.append(pytest.mark.slow)
    return pytest.param(name, id=name, marks=marks)


def state_dict_signature(model: paddle.nn.Layer) -> str:
    """Hash of the state dict's keys and shapes: pins a default architecture while keywords are
    added to its constructor."""
    import hashlib

    lines = "\n".join(f"{k}:{list(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def assert_reparameterize_keeps_output(model: paddle.nn.Layer, x, atol: float = 1e-5):
    """Eval-mode output before and after ``model.reparameterize()`` agree within ``atol`` (scaled
    by the output magnitude beyond 1, as float32 rounding is relative); returns the fused output."""
    model.eval()
    with paddle.no_grad():
        before = model(x).numpy()
    model.reparameterize()
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=atol * max(1.0, np.abs(before).max()))
    return after


def deploy_form_output(deployed: paddle.nn.Layer, fused_state, x) -> np.ndarray:
    """Load a reparameterized state dict into a model built with ``deploy=True`` (every key must
    fit: no missing or unexpected one) and return its eval-mode output on ``x``."""
    missing, unexpected = deployed.set_state_dict(fused_state)
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    deployed.eval()
    with paddle.no_grad():
        return deployed(x).numpy()


# Parity with a reference implementation, in two checks that hold on any CPU:
# - float64 on both sides (same weights, same input): only summation order differs, so the
#   outputs agree to ~1e-12 relative; REL64 leaves room for that and nothing else -- a real
#   defect (an eps, a padding, a GELU variant) is >= 1e-4 relative. This is the evidence of
#   equality.
# - float32 (what users run): held to F32_FACTOR times the reference's own float32-vs-float64
#   gap on this network and input, the measured size of float32 rounding there, which follows
#   the CPU's kernels on both sides alike (a floor of a few float32 ulps of the logit scale
#   keeps a bit-exact reference from demanding a bit-exact us).
REL64 = 1e-6
F32_FACTOR = 10.0


def float64_model(build):
    """``build()`` with float64 as Paddle's default dtype (every parameter and buffer float64)."""
    paddle.set_default_dtype("float64")
    try:
        return build()
    finally:
        paddle.set_default_dtype("float32")


def parity_bounds(ref64: np.ndarray, ref32: np.ndarray):
    """(float64 bound, float32 bound) for outputs compared with ``ref64`` (see above)."""
    scale = max(1.0, float(np.abs(ref64).max()))
    gap = float(np.abs(ref32.astype(np.float64) - ref64).max())
    return REL64 * scale, F32_FACTOR * max(gap, 4 * float(np.finfo(np.float32).eps) * scale)


def assert_parity(ours64: np.ndarray, ours32: np.ndarray, ref64: np.ndarray,
                  ref32: np.ndarray, what: str) -> None:
    """Our float64 and float32 outputs against the reference's float64 output (module note)."""
    assert ours64.dtype == np.float64 and ours32.dtype == np.float32, (ours64.dtype, ours32.dtype)
    assert ours64.shape == ref64.shape and ours32.shape == ref64.shape
    tol64, tol32 = parity_bounds(ref64, ref32)
    diff64 = float(np.abs(ours64 - ref64).max())
    assert diff64 <= tol64, (f"{what}: float64 max |ours - reference| = {diff64:.3g} > "
                             f"{tol64:.3g} (REL64 x max(1, max|ref|))")
    diff32 = float(np.abs(ours32.astype(np.float64) - ref64).max())
    assert diff32 <= tol32, (
        f"{what}: float32 max |ours - reference(float64)| = {diff32:.3g} > {tol32:.3g} "
        f"({F32_FACTOR:g} x the reference's own float32 gap "
        f"{float(np.abs(ref32.astype(np.float64) - ref64).max()):.3g})")


def require_shared(path: str) -> str:
    if not os.path.exists(path):
        pytest.skip(f"real data not found at {path} (the shared data folder ../shared/data beside "
                    "the repository); see its README")
    return path


class TinyCNN(paddle.nn.Layer):
    """Test-only classifier: conv-BN-ReLU stages, global pool, linear; no dropout."""

    def __init__(self, num_classes=10, widths=(8, 16), deploy=False):
        super().__init__()
        nn = paddle.nn
        layers, cin = [], 3
        for i, w in enumerate(widths):
            layers += [nn.Conv2D(cin, w, 3, stride=1 if i == 0 else 2, padding=1,
                                 bias_attr=False), nn.BatchNorm2D(w), nn.ReLU()]
            if i < len(widths) - 1 and len(widths) > 2:
                layers.append(nn.MaxPool2D(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(paddle.reshape(self.pool(self.features(x)), [0, -1]))


@contextlib.contextmanager
def temporary_models(family: str, builder, variants: dict, **info):
    """Register test-only models for the duration of a ``with`` block (never visible to other
    tests: registry-wide tests iterate ``ppnets.list_models()``)."""
    from ppnets.registry import register_models, unregister_models

    register_models(family, builder, variants, paper=f"test-only models ({family})",
                    arxiv=None, defaults=info or None)
    try:
        yield list(variants)
    finally:
        unregister_models(list(variants))


@pytest.fixture(scope="module")
def engine_test_models():
    """Two tiny CNNs registered for one module's tests (the engine trains registry names)."""
    with temporary_models("test_engine", TinyCNN, {
            "test_engine_tiny": {"cfg": {"widths": (8, 16)}},
            "test_engine_small": {"cfg": {"widths": (32, 64, 128)}}}) as names:
        yield names


CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
           b"ship", b"truck"]


def _add_pickle(tar: tarfile.TarFile, name: str, obj) -> None:
    payload = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_images(n: int, seed: int):
    """``n`` random 32x32 RGB images as CIFAR rows (R plane, G plane, B plane) and labels."""
    rng = np.random.RandomState(seed)
    rows = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
    labels = [int(v) for v in rng.randint(0, 10, size=n)]
    return rows, labels


def write_cifar_archive(path: str, per_batch: int = 4, n_test: int = 6, seed: int = 0,
                        rows_labels=None) -> dict:
    """Write a ``cifar-10-python.tar.gz`` look-alike: ``cifar-10-batches-py/data_batch_1..5``,
    ``test_batch``, ``batches.meta``, pickled with protocol 2 and bytes keys as in the official
    file. Returns the rows and labels written, per split. ``rows_labels`` may give
    ``{"train": (rows, labels), "test": (rows, labels)}`` instead of random images."""
    if rows_labels is None:
        train_rows, train_labels = make_images(5 * per_batch, seed)
        test_rows, test_labels = make_images(n_test, seed + 1)
    else:
        train_rows, train_labels = rows_labels["train"]
        test_rows, test_labels = rows_labels["test"]
    n = len(train_labels)
    bounds = np.linspace(0, n, 6).astype(int)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(5):
            lo, hi = bounds[i], bounds[i + 1]
            _add_pickle(tar, f"cifar-10-batches-py/data_batch_{i + 1}", {
                b"batch_label": f"training batch {i + 1} of 5".encode(),
                b"labels": list(train_labels[lo:hi]), b"data": train_rows[lo:hi],
                b"filenames": [f"img_{j}.png".encode() for j in range(lo, hi)]})
        _add_pickle(tar, "cifar-10-batches-py/test_batch", {
            b"batch_label": b"testing batch 1 of 1", b"labels": list(test_labels),
            b"data": test_rows, b"filenames": [f"t_{j}.png".encode()
                                               for j in range(len(test_labels))]})
        _add_pickle(tar, "cifar-10-batches-py/batches.meta", {
            b"label_names": CLASSES, b"num_cases_per_batch": int(bounds[1]), b"num_vis": 3072})
    return {"train": (train_rows, list(train_labels)), "test": (test_rows, list(test_labels))}


def tiny_config(archive, out, **sections):
    cfg = {
        "model": {"name": "test_engine_tiny"},
        "data": {"data_file": archive, "batch_size": 8, "num_workers": 0},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                  "weight_decay": 5e-4},
        "sched": {"name": "cosine", "warmup_epochs": 0.5},
        "train": {"epochs": 2, "seed": 7, "verbose": 0, "log_freq": 100},
        "output_dir": str(out),
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values} if isinstance(values, dict) else values
    return cfg


# ---------------------------------------------------------------------------------------------
# resume, checkpoints
# ---------------------------------------------------------------------------------------------
def checkpoint_weights(path):
    return {k: np.asarray(v) for k, v in paddle.load(path).items()}


class FileServer:
    """A loopback (127.0.0.1) HTTP server answering HEAD and GET (with ``Range``) for the files
    put in ``files`` (URL path -> bytes), with the headers the Hugging Face hub sends
    (``ETag`` = the SHA-256 of the file, ``X-Repo-Commit``, ``Content-Length``,
    ``Accept-Ranges``), so ``huggingface_hub`` and plain-URL downloads run for real against it.
    ``cut_after`` (bytes) makes GET responses stop early, as a dropped connection does;
    ``requests`` logs (method, path, range header)."""

    def __init__(self):
        self.files: dict = {}
        self.requests: list = []
        self.cut_after = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _head(self):
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                body = server.files.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None, 0
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                self.send_response(206 if start else 200)
                self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
                self.send_header("X-Repo-Commit", hashlib.sha1(body).hexdigest())
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                return body, start

            def do_HEAD(self):  # noqa: N802 (http.server's naming)
                self._head()

            def do_GET(self):  # noqa: N802
                body, start = self._head()
                if body is None:
                    return
                payload = body[start:]
                if server.cut_after is not None:
                    payload = payload[:server.cut_after]
                self.wfile.write(payload)
                if server.cut_after is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()
