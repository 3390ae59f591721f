"""Describe the machine a result was measured on.

Standard library only at import (paddle is imported inside :func:`machine_info`): the Paddle
Lite runner copies this file onto boards that have no paddle.


A latency without its machine is not a result: every benchmark record carries
:func:`machine_info`, so numbers from different hosts (x86 servers, ARM boards, GPUs) can be told
apart and compared only where comparable.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Dict, Optional

__all__ = ["machine_info", "cpu_model", "gpu_name", "available_cores", "cpu_governor",
           "memory_gib"]


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it, else the best identifier available.

    x86 Linux reports ``model name`` in /proc/cpuinfo; many ARM kernels report only ``Hardware``
    or the implementer/part codes, and boards (Raspberry Pi, Jetson) name themselves in the
    device tree.
    """
    text = _read("/proc/cpuinfo") or ""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "hardware", "cpu model", "processor"):
        value = fields.get(key, "")
        # On ARM, "processor" is just the core index ("0"); skip such non-names.
        if value and not value.isdigit():
            return value
    board = (_read("/sys/firmware/devicetree/base/model") or "").strip("\x00\n ")
    if "cpu implementer" in fields:
        codes = f"implementer {fields['cpu implementer']}, part {fields.get('cpu part', '?')}"
        return f"{board} ({codes})" if board else f"{platform.machine()} ({codes})"
    if board:
        return board
    return platform.processor() or platform.machine() or "unknown"


def available_cores() -> Optional[int]:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_governor() -> Optional[str]:
    value = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return value.strip() if value else None


def memory_gib() -> Optional[float]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def _ppnets_version() -> Optional[str]:
    # by package metadata: this file must also run alone, copied beside the Lite runner
    from importlib import metadata
    try:
        return metadata.version("ppnets")
    except metadata.PackageNotFoundError:
        return None


def gpu_name(device_id: int = 0) -> Optional[str]:
    """Name of the visible GPU ``device_id``, or None when Paddle has no CUDA or sees no GPU."""
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        return None
    try:
        if paddle.device.cuda.device_count() <= device_id:
            return None
        return paddle.device.cuda.get_device_name(device_id)
    except Exception:  # a CUDA build on a host without a driver raises here
        return None


def machine_info(device: str = "cpu", threads: Optional[int] = None,
                 mkldnn: Optional[bool] = None) -> Dict[str, Any]:
    """A JSON-serialisable description of this machine and of the run settings.

    ``threads`` and ``mkldnn`` are the settings the measurement used (recorded here so the
    machine block alone says how the CPU was driven). ``load_avg`` is sampled now: a high value
    means other processes competed for the cores during the measurement.
    """
    import numpy
    import paddle

    core = getattr(paddle.base, "core", None)
    with_onednn = None
    for attr in ("is_compiled_with_onednn", "is_compiled_with_mkldnn"):
        if core is not None and hasattr(core, attr):
            with_onednn = bool(getattr(core, attr)())
            break
    cuda = paddle.device.is_compiled_with_cuda()
    try:
        load_avg = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load_avg = None
    info: Dict[str, Any] = {
        "cpu_model": cpu_model(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "available_cores": available_cores(),
        "cpu_governor": cpu_governor(),
        "memory_gib": memory_gib(),
        "load_avg": load_avg,
        "device": device,
        "threads": threads,
        "mkldnn": mkldnn,
        "paddle_version": paddle.__version__,
        "paddle_commit": getattr(paddle.version, "commit", None),
        "paddle_with_onednn": with_onednn,
        "paddle_with_cuda": cuda,
        "cuda_version": paddle.version.cuda() if cuda else None,
        "cudnn_version": paddle.version.cudnn() if cuda else None,
        "gpu": gpu_name() if cuda else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "ppnets_version": _ppnets_version(),
    }
    return info
