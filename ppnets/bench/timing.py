"""The timing loop and its statistics, free of any framework import.

:mod:`ppnets.bench.harness` times Paddle predictors with these; the peer runners
(:mod:`ppnets.bench.peers`) load this file by path inside the subprocesses that run PyTorch or
a bare numpy SGEMM, so that every backend is timed by the same loop and summarised by the same
statistics, and paddle is never imported beside torch. Keep this module stdlib + numpy only.
"""
from __future__ import annotations

import gc
import time
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

__all__ = ["time_calls", "latency_stats"]


def time_calls(step: Callable[[], Any], warmup: int, repeats: int) -> List[float]:
    """Seconds of each of ``repeats`` calls of ``step``, after ``warmup`` untimed calls.

    Every repeat is timed on its own with ``time.perf_counter``; the garbage collector is
    paused during the timed loop (a collection inside one repeat is noise, not latency).
    """
    for _ in range(warmup):
        step()
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            samples.append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def latency_stats(samples_s: Sequence[float]) -> Dict[str, Any]:
    """Summary of per-repeat latencies given in seconds, reported in milliseconds.

    Percentiles use numpy's default (linear interpolation between order statistics).
    """
    if len(samples_s) == 0:
        raise ValueError("latency_stats needs at least one sample")
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    p25, median, p75 = np.percentile(ms, [25, 50, 75])
    return {
        "median": float(median), "p25": float(p25), "p75": float(p75),
        "iqr": float(p75 - p25), "min": float(ms.min()), "max": float(ms.max()),
        "mean": float(ms.mean()), "std": float(ms.std()), "repeats": int(ms.size),
        "samples": [round(float(v), 6) for v in ms],
    }
