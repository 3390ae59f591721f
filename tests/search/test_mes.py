"""MES (ppnets.search.mes). The paper's form (eq. 7: Score x prod (M_i / U_i)^(-alpha_i), Score
100, size = parameters, latency = on-device time) with the constants of ppnets.search.mes.
The paper's own table of MES values could not be checked here (docs/search.md), so the tests
check the formula's properties, not printed values."""
from __future__ import annotations

import pytest

from ppnets.search.mes import ALPHA_LATENCY, ALPHA_SIZE, LATENCY_UNIT_MS, SIZE_UNIT, mes, mes_terms


def test_the_unit_network_scores_the_base_score():
    assert mes(SIZE_UNIT, LATENCY_UNIT_MS) == pytest.approx(100.0)
    assert mes(3.0e6, 1.0) == pytest.approx(100.0)


def test_exponents():
    assert (ALPHA_SIZE, ALPHA_LATENCY) == (0.5, 1.0)
    # latency exponent 1: half the latency doubles the score; size exponent 0.5: four times
    # the parameters halve it
    assert mes(3e6, 0.5) == pytest.approx(200.0)
    assert mes(12e6, 1.0) == pytest.approx(50.0)
    assert mes(12e6, 0.5) == pytest.approx(100.0)
    terms = mes_terms(6e6, 2.0)
    assert terms["size"] == pytest.approx(2 ** -0.5) and terms["latency"] == pytest.approx(0.5)


def test_smaller_and_faster_scores_higher():
    assert mes(2e6, 1.0) > mes(3e6, 1.0) > mes(3e6, 1.2)


def test_units_scale_every_score_alike():
    # the search compares MES gains: another latency unit multiplies every MES by one constant,
    # so the ratio drop / gain keeps its order
    a = [mes(p, l) for p, l in ((3e6, 1.0), (2e6, 0.8), (4e6, 0.6))]
    b = [mes(p, l, latency_unit_ms=7.0) for p, l in ((3e6, 1.0), (2e6, 0.8), (4e6, 0.6))]
    assert [y / x for x, y in zip(a, b)] == pytest.approx([7.0] * 3)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="positive parameter count and latency"):
        mes(0, 1.0)
    with pytest.raises(ValueError, match="alpha_size must be positive"):
        mes(1e6, 1.0, alpha_size=0.0)
