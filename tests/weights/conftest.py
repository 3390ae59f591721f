"""Fixtures of tests/weights: what torch, timm and torchvision write and say, from a subprocess.

Nothing here imports torch: the torch side runs in ``PPNETS_TORCH_PYTHON`` (default: this
interpreter), as in tests/parity, and hands over files, cached under pytest's cache keyed by the
reference library versions, the script and its input. Each fixture runs its script at most once
a session, and not at all when the cache already holds what the selected tests need.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from typing import Tuple

import pytest

from ppnets.weights import NO_WEIGHTS, SOURCES
from ppnets.weights.sources import default_weight
from tests.conftest import REPO, TORCH_PYTHON_ENV, torch_python
from tests.parity.conftest import TORCH_PYTHON, _reference_versions

HERE = os.path.dirname(os.path.abspath(__file__))


def serve_as_hub(file_server, monkeypatch, home, files) -> None:
    """Serve ``{WeightSource: bytes}`` where the hub has them, point ``HF_ENDPOINT`` at the
    loopback server and ``PPNETS_HOME`` at ``home``, with the network allowed."""
    for src, data in files.items():
        file_server.files[f"/{src.hf_hub_id}/resolve/{src.revision}/{src.filename}"] = data
    monkeypatch.setenv("HF_ENDPOINT", file_server.url)
    monkeypatch.setenv("PPNETS_HOME", str(home))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PPNETS_OFFLINE", raising=False)


def _run(script: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([TORCH_PYTHON, os.path.join(HERE, script), *args], check=True, env=env)


@functools.lru_cache(maxsize=None)
def _versions() -> Tuple[str, ...]:
    """torch, torchvision and timm versions of the torch side; skips the test without them."""
    versions, err = _reference_versions()
    if versions is None:
        pytest.skip(f"needs torch, torchvision and timm in {TORCH_PYTHON} "
                    f"(pip install -e '.[parity]'): {err[0]}")
    return tuple(versions)


def _cached_dir(request, script: str, payload) -> str:
    """Pytest-cache directory for ``script`` run on ``payload`` with this session's reference
    versions; stale directories of the same script are removed."""
    with open(os.path.join(HERE, script), "rb") as f:
        source = f.read()
    digest = hashlib.sha1(source + json.dumps([payload, _versions()]).encode()).hexdigest()[:16]
    stem = f"{os.path.splitext(script)[0]}-{payload['mode']}"
    root = str(request.config.cache.mkdir("ppnets_weights"))
    for old in os.listdir(root):
        if old.startswith(f"{stem}-") and old != f"{stem}-{digest}":
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    path = os.path.join(root, f"{stem}-{digest}")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def torch_checkpoints(request) -> str:
    """Directory of ``torch.save`` files and the arrays torch reads back (torch_checkpoints.py)."""
    path = _cached_dir(request, "torch_checkpoints.py", {"mode": "all"})
    if not os.path.exists(os.path.join(path, "done")):
        _run("torch_checkpoints.py", path)
        open(os.path.join(path, "done"), "w").close()
    return path


@pytest.fixture(scope="session")
def reference_cfgs(request) -> dict:
    """timm's and torchvision's metadata for every model of the weight table
    (reference_sources.py cfgs)."""
    spec = {"mode": "cfgs",
            "timm": sorted(m for m, ws in SOURCES.items() if ws[0].library == "timm"),
            "torchvision": sorted(m for m, ws in SOURCES.items()
                                  if ws[0].library == "torchvision"),
            "absent": sorted(NO_WEIGHTS)}
    path = _cached_dir(request, "reference_sources.py", spec)
    out = os.path.join(path, "cfgs.json")
    if not os.path.exists(out):
        with open(os.path.join(path, "spec.json"), "w") as f:
            json.dump(spec, f)
        _run("reference_sources.py", "cfgs", os.path.join(path, "spec.json"), out + ".tmp")
        os.replace(out + ".tmp", out)
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def layout_files(request) -> pathlib.Path:
    """Directory with the reference state dict layout (``<name>.<tag>.safetensors``, ``.same``
    or ``.error``) of every weight a selected test of test_sources.py loads; the files are
    sparse, so the cache keeps every layout made so far (reference_sources.py layouts)."""
    path = pathlib.Path(_cached_dir(request, "reference_sources.py", {"mode": "layouts"}))
    weights = [item.callspec.params["weight"] for item in request.session.items
               if hasattr(item, "callspec") and "weight" in item.callspec.params
               and item.module.__name__ == "tests.weights.test_sources"]
    todo = [dict(key=f"{w.model}.{w.tag}", library=w.library, arch=w.model, tag=w.tag)
            for w in weights
            if not any((path / f"{w.model}.{w.tag}{ext}").exists()
                       for ext in (".safetensors", ".same", ".error"))]
    if todo:
        spec = path / f"spec-{os.getpid()}.json"
        spec.write_text(json.dumps(todo))
        _run("reference_sources.py", "layouts", str(spec), str(path))
        spec.unlink()
    return path


SPECS = [  # ppnets name, reference library and name (random weights, see torch_reference.py)
    {"key": "fasternet_t0", "lib": "timm", "name": "fasternet_t0"},
    {"key": "repvgg_a0", "lib": "timm", "name": "repvgg_a0"},
]


@pytest.fixture(scope="session")
def reference_files(tmp_path_factory):
    """{key: safetensors path} of reference models, written by the torch subprocess."""
    python = torch_python()
    out = tmp_path_factory.mktemp("weights_ref")
    specs = [dict(s, input_size=[3, 64, 64], batch=1, seed=0, kwargs={}) for s in SPECS]
    (out / "specs.json").write_text(json.dumps(specs))
    subprocess.run([python, os.path.join(REPO, "tests", "parity", "torch_reference.py"),
                    "--specs", str(out / "specs.json"), "--out", str(out)], check=True,
                   env=TORCH_PYTHON_ENV)
    return {s["key"]: str(out / f"{s['key']}.safetensors") for s in SPECS}


@pytest.fixture
def hub(file_server, reference_files, tmp_path, monkeypatch):
    """The reference files served where the weight table says the hub has them; HF_ENDPOINT
    points at the server and PPNETS_HOME at an empty folder."""
    files = {}
    for name, path in reference_files.items():
        with open(path, "rb") as f:
            files[default_weight(name)] = f.read()
    serve_as_hub(file_server, monkeypatch, tmp_path / "home", files)
    return file_server
