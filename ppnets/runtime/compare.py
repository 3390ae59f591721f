"""Does a runtime compute what the eager model computes? One verification record per output.

Used by every export check (``ppnets.deploy``: Paddle Inference, legacy program, ONNX Runtime,
Paddle Lite) and the zoo-wide Lite check.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

__all__ = ["DEFAULT_ATOL", "RTOL", "compare_outputs"]

DEFAULT_ATOL = 1e-4


# Also required: max_abs_diff / max|reference| <= RTOL, so a model whose logits are tiny (e.g.
# a zero-initialised head) cannot pass on the absolute tolerance alone.
RTOL = 1e-3


def compare_outputs(out: np.ndarray, ref: np.ndarray, atol: float) -> Dict[str, Any]:
    """Verification record of one runtime output against the eager reference.

    Passes when ``max|out - ref| <= atol * max(1, max|ref|)`` (float32 rounding grows with the logits, so logits of 10-30 get a proportionally wider band
    while logits below 1 keep the absolute ``atol``) and ``max|out - ref| / max|ref| <= RTOL``.
    """
    out = np.asarray(out)
    if out.shape != ref.shape:
        return {"status": "failed", "error": f"output shape {list(out.shape)} != eager "
                f"{list(ref.shape)}", "atol": atol}
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    max_abs = float(diff.max())
    top1_equal = bool((out.reshape(out.shape[0], -1).argmax(1)
                       == ref.reshape(ref.shape[0], -1).argmax(1)).all())
    ref_max = float(np.abs(ref).max())
    tolerance = atol * max(1.0, ref_max)
    rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    passed = max_abs <= tolerance and rel <= RTOL
    return {"status": "passed" if passed else "failed", "max_abs_diff": max_abs,
            "mean_abs_diff": float(diff.mean()), "ref_abs_max": ref_max,
            "max_rel_diff": rel if np.isfinite(rel) else None, "atol": atol,
            "tolerance": tolerance, "rtol": RTOL, "top1_equal": top1_equal}
