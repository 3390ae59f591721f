"""Which Paddle ppnets runs on: the user's own build, checked before anything imports it.

ppnets' requirements name no Paddle build, as PaddleClas, PaddleOCR and PaddleDetection leave
that choice to the user: ``paddlepaddle`` (CPU), ``paddlepaddle-gpu`` (CUDA), a nightly or a
source build all provide the module ``paddle``. ``pip install ppnets[cpu]`` brings the CPU build
for a machine that has none.

Standard library only: this module runs first in ``import ppnets`` and in every ``ppnets``
command, where Paddle may be missing or too old, and says what to install.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from typing import Optional, Tuple

__all__ = ["MIN_PADDLE", "TESTED_PADDLE", "install_hint", "paddle_problem", "require_paddle",
           "PaddleUnavailableError"]

# The oldest Paddle CI runs ppnets' smoke subset on, and the newest it runs the full suite on
# (README "Set up"). Raise MIN_PADDLE only with a measured break on it.
MIN_PADDLE = "3.0.0"
TESTED_PADDLE = "3.3.1"


class PaddleUnavailableError(ImportError):
    """Paddle is missing, too old, or does not import."""


def install_hint() -> str:
    """The pip commands for a CPU and for a GPU Paddle."""
    return ("  CPU:  pip install \"paddlepaddle>=" + MIN_PADDLE + "\"   (or: pip install "
            "\"ppnets[cpu]\")\n"
            "  GPU:  pip install paddlepaddle-gpu==" + TESTED_PADDLE + " -i "
            "https://www.paddlepaddle.org.cn/packages/stable/cu118/   (pick the CUDA version "
            "of your driver: https://www.paddlepaddle.org.cn/install/quick)")


def _version_tuple(version: str) -> Optional[Tuple[int, int, int]]:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _installed_version(spec) -> Optional[str]:
    """The version of the ``paddle`` module that ``import paddle`` would load, read without
    importing it: its ``paddle/version/__init__.py`` (every build writes ``full_version`` there),
    else the metadata of a distribution that provides ``paddle``."""
    for folder in spec.submodule_search_locations or []:
        try:
            with open(os.path.join(folder, "version", "__init__.py"), encoding="utf-8") as f:
                match = re.search(r"^full_version\s*=\s*['\"]([^'\"]+)['\"]", f.read(), re.M)
        except OSError:
            continue
        if match:
            return match.group(1)
    try:
        providers = importlib.metadata.packages_distributions().get("paddle", [])
    except Exception:  # noqa: BLE001 - a broken dist-info elsewhere must not hide Paddle
        providers = []
    for dist in providers:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def paddle_problem() -> Optional[str]:
    """None when a supported Paddle is importable, else what is wrong and what to run.

    Reads the installed version without importing Paddle (importing it takes seconds). A
    development build reports 0.0.0 (nightlies, source builds): it is accepted as it is.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("paddle")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return ("ppnets needs PaddlePaddle, and no Paddle is installed in this Python "
                f"({sys.executable}). Install the build for your machine, then run again:\n"
                + install_hint())
    version = _installed_version(spec)
    parsed = _version_tuple(version) if version else None
    if parsed is not None and parsed != (0, 0, 0) and parsed < _version_tuple(MIN_PADDLE):
        return (f"ppnets needs PaddlePaddle >= {MIN_PADDLE}; this Python has {version}. "
                "Upgrade it (the same build: CPU or GPU), then run again:\n" + install_hint())
    return None


def _running_as_command() -> bool:
    """True inside the ``ppnets`` console script or ``python -m ppnets...``."""
    if os.path.basename(sys.argv[0] if sys.argv else "").split(".")[0] in ("ppnets",
                                                                           "ppnets-script"):
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(a == "-m" and i + 1 < len(argv) and argv[i + 1].split(".")[0] == "ppnets"
               for i, a in enumerate(argv))


def require_paddle() -> None:
    """Raise :class:`PaddleUnavailableError` saying what to install; inside a ``ppnets``
    command, print it and exit with status 2 instead (no traceback)."""
    problem = paddle_problem()
    if problem is None:
        return
    if _running_as_command():
        sys.stderr.write(f"error: {problem}\n")
        raise SystemExit(2)
    raise PaddleUnavailableError(problem)
