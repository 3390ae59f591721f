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
import shutil
import subprocess
from typing import Tuple

import pytest

from tests.parity.conftest import TORCH_PYTHON, _reference_versions

HERE = os.path.dirname(os.path.abspath(__file__))


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
