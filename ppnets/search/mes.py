"""Mobile Efficiency Score (MES), the search objective of EfficientFormerV2 (arXiv:2212.08059, §4).

    MES = Score * prod_i (M_i / U_i) ** (-alpha_i),   i in {size, latency}

``M_i`` is the network's metric and ``U_i`` its unit: size is the number of parameters, latency
the running time on the target device. Score is a base score of 100. Fewer parameters and a
lower latency give a higher MES; ``alpha_i`` sets how much each metric matters.

What was checked, and against what (docs/search.md, "MES constants"):

* checked against a secondary source only -- a Chinese-language summary of the paper's §4 in a
  public repository, found with this project's reference search; the paper's own text (arXiv
  2212.08059) could not be opened from this machine: the form ``Score * prod_i (M_i / U_i) **
  (+/-alpha_i)`` (eq. 7), ``Score`` "a pre-defined base score set to 100 for simplicity", size =
  the number of parameters, latency = the running time when the model is deployed on the
  device, and that the search looks for Pareto optimality in MES and accuracy. That summary
  prints the exponent as ``alpha_i`` without a sign; a negative exponent is what makes a
  smaller and faster network score higher, which is the metric's stated purpose, so ``-alpha``
  is used -- an inference, not a quotation;
* NOT checked against any text: ``U_size = 3 M`` parameters and ``U_latency = 1 ms``
  (MobileNetV2's size and iPhone 12 latency as the unit), ``alpha_latency = 1.0`` and
  ``alpha_size = 0.5`` ("to emphasize speed"). They are what the author of this module recalls
  of the paper and are flagged as unverified wherever they are used. Every constant is an
  argument (and a config key, ``experiment.search.mes``) so a user can set the printed ones.

The units do not change a search's decisions: another ``U`` multiplies every MES by one
constant, so the ratio "accuracy drop per MES gained" keeps its order. The exponents do.
"""
from __future__ import annotations

from typing import Dict

__all__ = ["SCORE", "SIZE_UNIT", "LATENCY_UNIT_MS", "ALPHA_SIZE", "ALPHA_LATENCY", "mes",
           "mes_terms"]

SCORE = 100.0
SIZE_UNIT = 3.0e6        # parameters; unverified (see the module docstring)
LATENCY_UNIT_MS = 1.0    # ms; unverified
ALPHA_SIZE = 0.5         # unverified
ALPHA_LATENCY = 1.0      # unverified


def mes_terms(params: float, latency_ms: float, *, size_unit: float = SIZE_UNIT,
              latency_unit_ms: float = LATENCY_UNIT_MS, alpha_size: float = ALPHA_SIZE,
              alpha_latency: float = ALPHA_LATENCY) -> Dict[str, float]:
    """The two factors of the product, ``(M_i / U_i) ** -alpha_i``, by metric."""
    if params <= 0 or latency_ms <= 0:
        raise ValueError(f"MES needs a positive parameter count and latency, got params={params}, "
                         f"latency_ms={latency_ms}")
    for name, alpha in (("alpha_size", alpha_size), ("alpha_latency", alpha_latency)):
        if not alpha > 0:
            raise ValueError(f"{name} must be positive (a larger or slower network must score "
                             f"lower), got {alpha}")
    return {"size": (params / size_unit) ** -alpha_size,
            "latency": (latency_ms / latency_unit_ms) ** -alpha_latency}


def mes(params: float, latency_ms: float, *, score: float = SCORE, **units) -> float:
    """MES of a network with ``params`` parameters and ``latency_ms`` latency (eq. 7)."""
    terms = mes_terms(params, latency_ms, **units)
    return score * terms["size"] * terms["latency"]
