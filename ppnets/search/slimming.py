"""Greedy slimming under latency budgets: the search loop shared by EfficientFormer's
latency-driven slimming (V1, arXiv:2206.01191 §4) and EfficientFormerV2's joint MES search (V2,
arXiv:2212.08059 §4).

From a start state (the trained supernet's largest network), each step lists the actions of the
action pool (each gives a child state), predicts every child's latency from the lookup table,
measures its accuracy on a held-out split and its efficiency gain over the current state, and
takes the action with the smallest accuracy drop per unit of gain:

* V1: gain = milliseconds saved, so the rule is "accuracy drop per ms" (-%/ms, §4);
* V2: gain = MES gained (``ppnets.search.mes``), "accuracy drop per MES gain".

Steps repeat until the predicted latency is at or below the smallest target. The first state
at or below each target is that target's result, so several targets come from one run.
Candidates that do not improve efficiency (gain <= 0) are skipped; ties in the ratio go to the
larger gain, then to the first action in the pool's order (deterministic).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

__all__ = ["greedy_slimming"]

Proposal = Tuple[str, Hashable]   # (action description, child state)


def _score_children(state: Hashable, lat: float, acc: float,
                    propose: Callable[[Hashable], List[Proposal]],
                    latency_ms: Callable[[Hashable], float],
                    efficiency: Callable[[Hashable, float], float],
                    acc_of: Callable[[Hashable], float]) -> Tuple[List[Dict[str, Any]], list]:
    """One row per action of the pool, and the candidates: ``(ratio, -gain, order, row,
    child)`` for each action that pays (gain > 0), so the smallest is the action to take."""
    eff = efficiency(state, lat)
    rows, candidates = [], []
    for order, (action, child) in enumerate(propose(state)):
        child_lat = float(latency_ms(child))
        gain = float(efficiency(child, child_lat) - eff)
        row = {"action": action, "latency_ms": child_lat, "gain": gain, "accuracy": None}
        if gain > 0:  # an action that does not pay is neither evaluated nor taken
            child_acc = acc_of(child)
            row.update(accuracy=child_acc, drop=acc - child_acc,
                       ratio=(acc - child_acc) / gain)
            candidates.append((row["ratio"], -gain, order, row, child))
        rows.append(row)
    return rows, candidates


def _target_result(target: float, reached: bool, step: int, state: Dict[str, Any], lat: float,
                   acc: float) -> Dict[str, Any]:
    return {"target_ms": float(target), "reached": reached, "step": step, "state": state,
            "latency_ms": lat, "accuracy": acc}


def greedy_slimming(start: Hashable, targets_ms: Sequence[float], *,
                    propose: Callable[[Hashable], List[Proposal]],
                    latency_ms: Callable[[Hashable], float],
                    accuracy: Callable[[Hashable], float],
                    efficiency: Callable[[Hashable, float], float],
                    describe: Callable[[Hashable], Dict[str, Any]],
                    max_steps: int = 10_000,
                    progress: Optional[Callable[[Dict[str, Any]], None]] = None
                    ) -> Dict[str, Any]:
    """Run the slimming loop; returns ``{"start", "steps", "results"}``.

    ``efficiency(state, latency_ms)`` is the score whose increase is the gain (``-latency`` for
    V1, MES for V2). ``describe(state)`` turns a state into JSON. ``results`` has one entry per
    target (in the order given): ``{"target_ms", "reached", "step", "state", "latency_ms",
    "accuracy"}``; ``reached`` is False when the pool ran dry first (then the last state).
    """
    if not targets_ms:
        raise ValueError("give at least one latency target (ms)")
    acc_cache: Dict[Hashable, float] = {}

    def acc_of(state):
        if state not in acc_cache:
            acc_cache[state] = float(accuracy(state))
        return acc_cache[state]

    state, lat = start, float(latency_ms(start))
    acc = acc_of(state)
    record = {"state": describe(state), "latency_ms": lat, "accuracy": acc}
    steps: List[Dict[str, Any]] = []
    results: Dict[float, Dict[str, Any]] = {}

    def settle(step: int) -> None:   # the first state at or below a target is its result
        for target in targets_ms:
            if target not in results and lat <= target:
                results[target] = _target_result(target, True, step, describe(state), lat, acc)

    settle(0)
    while len(results) < len(targets_ms) and len(steps) < max_steps:
        rows, candidates = _score_children(state, lat, acc, propose, latency_ms, efficiency,
                                           acc_of)
        if not candidates:
            break
        _, _, _, best, child = min(candidates, key=lambda c: c[:3])
        state, lat, acc = child, best["latency_ms"], best["accuracy"]
        steps.append({"step": len(steps) + 1, "action": best["action"], "latency_ms": lat,
                      "accuracy": acc, "gain": best["gain"], "drop": best["drop"],
                      "ratio": best["ratio"], "state": describe(state), "candidates": rows})
        if progress is not None:
            progress(steps[-1])
        settle(len(steps))
    for target in targets_ms:
        results.setdefault(target, _target_result(target, False, len(steps), describe(state),
                                                  lat, acc))
    return {"start": record, "steps": steps, "results": [results[t] for t in targets_ms]}
