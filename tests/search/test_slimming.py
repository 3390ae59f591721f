"""The greedy slimming loop (ppnets.search.slimming) on synthetic problems whose optimum is known
by brute force: accuracy and latency additive over removable parts."""
from __future__ import annotations

import itertools

import pytest

from ppnets.search.slimming import greedy_slimming

# part -> (latency saved in ms, accuracy lost) when it is removed. Drop per ms: c 0.01, a 0.02,
# e 0.025, b 0.03, d 0.05; the parts are removed in that order.
PARTS = {"a": (2.0, 0.04), "b": (1.0, 0.03), "c": (3.0, 0.03), "d": (2.0, 0.10),
         "e": (4.0, 0.10)}
FULL_MS, FULL_ACC = 20.0, 0.90


def latency(state):
    return FULL_MS - sum(PARTS[p][0] for p in state)


def accuracy(state):
    return FULL_ACC - sum(PARTS[p][1] for p in state)


def propose(state):
    return [(f"remove {p}", state | {p}) for p in sorted(PARTS) if p not in state]


def run(targets, **kw):
    return greedy_slimming(frozenset(), targets, propose=propose, latency_ms=latency,
                           accuracy=accuracy, efficiency=lambda s, lat: -lat,
                           describe=lambda s: sorted(s), **kw)


def best_subset(target):
    """Brute force: the removed set with the highest accuracy under ``target``."""
    feasible = [frozenset(c) for n in range(len(PARTS) + 1)
                for c in itertools.combinations(PARTS, n) if latency(frozenset(c)) <= target]
    return max(feasible, key=accuracy)


def test_takes_the_smallest_drop_per_ms_and_reaches_the_known_optimum():
    # Each target sits on a prefix of the ratio order, where the greedy order is optimal.
    targets = [17.0, 15.0, 11.0]
    out = run(targets)
    assert [s["action"] for s in out["steps"]] == ["remove c", "remove a", "remove e"]
    for res, target in zip(out["results"], targets):
        assert res["reached"] and res["latency_ms"] <= target
        assert res["state"] == sorted(best_subset(target))
        assert res["accuracy"] == pytest.approx(accuracy(best_subset(target)))
    assert [r["step"] for r in out["results"]] == [1, 2, 3]
    # the log carries every candidate with its drop, gain and ratio
    first = out["steps"][0]
    assert first["ratio"] == pytest.approx(0.01) and first["gain"] == pytest.approx(3.0)
    assert len(first["candidates"]) == 5
    assert out["start"] == {"state": [], "latency_ms": FULL_MS, "accuracy": FULL_ACC}


def test_target_already_met_and_order_of_targets_kept():
    out = run([25.0, 14.0])
    assert out["results"][0]["step"] == 0 and out["results"][0]["state"] == []
    assert out["results"][1]["latency_ms"] <= 14.0
    assert [r["target_ms"] for r in out["results"]] == [25.0, 14.0]


def test_unreachable_target_ends_when_the_pool_runs_dry():
    out = run([1.0])
    res = out["results"][0]
    assert not res["reached"] and res["state"] == sorted(PARTS)
    assert res["latency_ms"] == pytest.approx(latency(frozenset(PARTS)))


def test_actions_without_gain_are_neither_evaluated_nor_taken():
    evaluated = []

    def acc(state):
        evaluated.append(state)
        return accuracy(state)

    def propose_with_noop(state):
        return [("no-op", state)] + propose(state)

    out = greedy_slimming(frozenset(), [17.0], propose=propose_with_noop, latency_ms=latency,
                          accuracy=acc, efficiency=lambda s, lat: -lat,
                          describe=lambda s: sorted(s))
    assert out["steps"][0]["action"] == "remove c"
    assert out["steps"][0]["candidates"][0]["accuracy"] is None   # the no-op
    assert evaluated.count(frozenset()) == 1   # only the start


def test_ties_go_to_the_larger_gain_then_to_the_pool_order():
    # equal ratios, exactly (binary fractions)
    parts = {"x": (1.0, 0.125), "y": (2.0, 0.25), "z": (2.0, 0.25)}

    def lat(s):
        return 10.0 - sum(parts[p][0] for p in s)

    def acc(s):
        return 0.75 - sum(parts[p][1] for p in s)

    out = greedy_slimming(frozenset(), [7.5], latency_ms=lat, accuracy=acc,
                          propose=lambda s: [(p, s | {p}) for p in "xyz" if p not in s],
                          efficiency=lambda s, l: -l, describe=lambda s: sorted(s))
    assert [s["action"] for s in out["steps"]] == ["y", "z"]


def test_needs_a_target():
    with pytest.raises(ValueError, match="at least one latency target"):
        run([])
