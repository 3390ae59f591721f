"""Does a runtime compute what the eager model computes? One verification record per output
(:func:`compare_outputs`), and one record for every output of a multi-output program -- a
features-only backbone's maps -- (:func:`compare_all_outputs`).

Used by every export check (``ppnets.deploy``: Paddle Inference, legacy program, ONNX Runtime,
Paddle Lite) and the zoo-wide Lite check.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

__all__ = ["DEFAULT_ATOL", "RTOL", "compare_outputs", "compare_all_outputs"]

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
    bad = int((~np.isfinite(out)).sum())
    if bad:  # NaN/inf compare as nothing; say so instead of writing NaN into the record
        return {"status": "failed", "error": f"{bad} of {out.size} output values are NaN or "
                "infinite where the eager model's are finite" if np.isfinite(ref).all() else
                f"{bad} of {out.size} output values are NaN or infinite", "atol": atol}
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


def compare_all_outputs(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray],
                        atol: float) -> Dict[str, Any]:
    """Verification record of a runtime's outputs against the eager model's, in order.

    One output: :func:`compare_outputs`' record. Several (a features-only backbone's maps):
    each is held to :func:`compare_outputs` on its own scale; the record passes when every one
    does, carries the largest differences and magnitudes, and lists each output's record under
    ``outputs``.
    """
    if len(outs) != len(refs):
        return {"status": "failed", "error": f"the runtime returned {len(outs)} outputs, the "
                f"eager model {len(refs)}", "atol": atol}
    if len(refs) == 1:
        return compare_outputs(outs[0], refs[0], atol)
    records = [compare_outputs(o, r, atol) for o, r in zip(outs, refs)]
    merged: Dict[str, Any] = {
        "status": "passed" if all(r["status"] == "passed" for r in records) else "failed",
        "num_outputs": len(records), "atol": atol, "rtol": RTOL, "outputs": records}
    errors = [f"output {i}: {r['error']}" for i, r in enumerate(records) if "error" in r]
    if errors:
        merged["error"] = "; ".join(errors)
        return merged
    for key in ("max_abs_diff", "ref_abs_max", "max_rel_diff"):
        values = [r[key] for r in records if r.get(key) is not None]
        merged[key] = max(values) if values else None
    return merged
