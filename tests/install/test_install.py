"""ppnets on the user's own Paddle: an install that never replaces it, and a clear message when it
is missing or too old.

* With a stand-in ``paddlepaddle-gpu`` in a fresh venv, pip resolves ``ppnets`` (and ``.[dev]``)
  without ``paddlepaddle``; ``.[cpu]`` asks for it (the control that shows the check can fail).
* With no Paddle, ``import ppnets`` and every ``ppnets`` command name the pip commands for CPU and
  GPU; with a Paddle older than the minimum they name both versions.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.conftest import REPO

PYTHON = sys.executable
PPNETS = os.path.join(os.path.dirname(PYTHON), "ppnets")

# A meta-path finder that makes `paddle` unimportable, as on a machine without Paddle.
NO_PADDLE = textwrap.dedent("""
    import sys

    class _NoPaddle:
        def find_spec(self, name, path=None, target=None):
            if name == "paddle" or name.startswith("paddle."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoPaddle())
""")


def _env_with(path_dir: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([path_dir, REPO])
    return env


def _command_names():
    from ppnets.cli.main import COMMANDS
    return sorted(COMMANDS)


def test_no_paddle_import_and_every_command_say_what_to_install(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_PADDLE)
    env = _env_with(str(tmp_path))

    imp = subprocess.run([PYTHON, "-c", "import ppnets"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert imp.returncode != 0
    assert "PaddleUnavailableError: ppnets needs PaddlePaddle" in imp.stderr
    assert 'pip install "paddlepaddle>=3.0.0"' in imp.stderr
    assert "pip install paddlepaddle-gpu==" in imp.stderr

    for argv in [[PPNETS], [PYTHON, "-m", "ppnets"]]:
        for name in _command_names():
            run = subprocess.run(argv + [name, "--help"], capture_output=True, text=True,
                                 env=env, timeout=120)
            assert run.returncode == 2, (argv, name, run.stdout, run.stderr)
            assert "Traceback" not in run.stderr, run.stderr
            assert run.stderr.startswith("error: ppnets needs PaddlePaddle"), run.stderr
            assert 'pip install "paddlepaddle>=3.0.0"' in run.stderr
            assert "pip install paddlepaddle-gpu==" in run.stderr


def test_old_paddle_names_both_versions(tmp_path):
    # a Paddle 2.6 that must not even be imported: the version is read from its files
    fake = tmp_path / "paddle"
    (fake / "version").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('the stand-in Paddle was imported')\n")
    (fake / "version" / "__init__.py").write_text("full_version     = '2.6.2'\n")
    env = _env_with(str(tmp_path))
    imp = subprocess.run([PYTHON, "-c", "import ppnets"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert "ppnets needs PaddlePaddle >= 3.0.0; this Python has 2.6.2" in imp.stderr
    assert "stand-in Paddle was imported" not in imp.stderr
    cli = subprocess.run([PPNETS, "models"], capture_output=True, text=True, env=env, timeout=120)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "3.0.0" in cli.stderr and "2.6.2" in cli.stderr


@pytest.mark.parametrize("version, accepted", [("3.0.0", True), ("3.3.1", True),
                                               ("0.0.0", True), ("2.6.2", False),
                                               ("3.0.0rc1", True)])
def test_version_rule(tmp_path, monkeypatch, version, accepted):
    import importlib.util

    from ppnets import paddle_check

    folder = tmp_path / "paddle"
    (folder / "version").mkdir(parents=True)
    (folder / "version" / "__init__.py").write_text(f"full_version = '{version}'\n")
    spec = importlib.machinery.ModuleSpec("paddle", None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert (paddle_check.paddle_problem() is None) == accepted


# ---------------------------------------------------------------------------------------------
# the stand-in paddlepaddle-gpu
# ---------------------------------------------------------------------------------------------
def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_standin_wheel(folder: str, name: str = "paddlepaddle_gpu",
                        version: str = "3.3.1") -> str:
    """A minimal wheel of a distribution called ``paddlepaddle-gpu`` that provides ``paddle``."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        "paddle/__init__.py": b"__version__ = '3.3.1'  # ppnets test stand-in\n",
        "paddle/version/__init__.py": b"full_version = '3.3.1'\n",
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: paddlepaddle-gpu\n"
                                  f"Version: {version}\n").encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: ppnets-test\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/top_level.txt": b"paddle\n",
    }
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as whl:
        lines = []
        for arc, data in files.items():
            whl.writestr(arc, data)
            lines.append(_record_line(arc, data))
        lines.append(f"{dist_info}/RECORD,,")
        whl.writestr(f"{dist_info}/RECORD", "\n".join(lines) + "\n")
    return path


def _pip_resolves(venv_python: str, target: str, report: str) -> list:
    """Names pip would install for ``target`` (a dry run against the package index)."""
    run = subprocess.run([venv_python, "-m", "pip", "install", "--dry-run", "--quiet",
                          "--no-build-isolation", "--report", report, target],
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0 and ("No matching distribution" in run.stderr or
                                "Could not fetch" in run.stderr or
                                "NewConnectionError" in run.stderr):
        pytest.skip(f"the package index is unreachable from here: {run.stderr[-300:]}")
    assert run.returncode == 0, run.stderr[-3000:]
    with open(report, encoding="utf-8") as f:
        return sorted(item["metadata"]["name"].lower() for item in json.load(f)["install"])


def test_install_keeps_a_gpu_paddle(tmp_path):
    """pip, asked to install ppnets where a paddlepaddle-gpu is, installs no paddlepaddle."""
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True, timeout=300)
    vpy = str(venv / "bin" / "python")
    wheel = build_standin_wheel(str(tmp_path))
    subprocess.run([vpy, "-m", "pip", "install", "--quiet", "--no-index", wheel], check=True,
                   timeout=300)
    # the build backend of setup.py comes from the venv (no download of a build environment)
    subprocess.run([vpy, "-m", "pip", "install", "--quiet", "setuptools>=61,<81", "wheel"],
                   check=True, timeout=600)

    plain = _pip_resolves(vpy, REPO, str(tmp_path / "plain.json"))
    dev = _pip_resolves(vpy, f"{REPO}[dev]", str(tmp_path / "dev.json"))
    cpu = _pip_resolves(vpy, f"{REPO}[cpu]", str(tmp_path / "cpu.json"))
    for resolved in (plain, dev):
        assert "ppnets" in resolved
        assert not [n for n in resolved if n.startswith("paddlepaddle")], resolved
    # the control: asked for the CPU build, pip does bring it
    assert "paddlepaddle" in cpu
    listed = subprocess.run([vpy, "-m", "pip", "list", "--format=json"], capture_output=True,
                            text=True, check=True).stdout
    assert {"name": "paddlepaddle-gpu", "version": "3.3.1"} in json.loads(listed)
