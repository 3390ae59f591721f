"""The committed small-scale search run (results/search/) is what its files say: every prediction
is the sum of the committed table's entries for that network's blocks, a reached target is met
by the table, every measured latency is the median of its predictors, the reported prediction
error follows from the rows, and every network builds through ppnets.create_model."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ppnets.analysis import count_params
from ppnets.factory import create_model
from ppnets.search.lut import LatencyLUT, prediction_error
from ppnets.search.space_v1 import V1Net, V1Space
from ppnets.search.space_v2 import V2Net, V2Space
from tests.conftest import REPO

RUNS = os.path.join(REPO, "results", "search")


def _v1(sup):
    space = V1Space(sup["image_size"], sup["depths"], sup["widths"], sup["num_classes"])
    return space, lambda kw: V1Net(tuple(kw["depths"]), tuple(kw["dims"]), kw["num_vit"])


def _v2(sup):
    space = V2Space(sup["image_size"], sup["depths"], sup["widths"], sup["ratios"],
                    sup["num_classes"])
    return space, lambda kw: V2Net(tuple(kw["depths"]), tuple(kw["dims"]),
                                   tuple(tuple(r) for r in kw["mlp_ratios"]),
                                   tuple(kw["num_vit_per_stage"]))


@pytest.mark.parametrize("folder,space_of", [("efficientformer", _v1),
                                             ("efficientformerv2", _v2)])
def test_committed_run_is_consistent(folder, space_of):
    with open(os.path.join(RUNS, folder, "search.json"), encoding="utf-8") as f:
        payload = json.load(f)
    lut = LatencyLUT(os.path.join(RUNS, folder, "lut_cpu.json"), target="file")
    assert lut.meta["rounds"] == 5 and payload["smoke"] is False
    for key, ms in lut.entries.items():
        assert ms == float(np.median(lut.round_medians[key])), key
    sup = payload["supernet"]
    space, net_of = space_of(sup)
    rows = {}
    for res in payload["results"]:
        if res["reached"]:
            assert res["predicted_ms"] <= res["target_ms"]
        for row in (res, res.get("baseline")):
            if not row:
                continue
            net = net_of(row["model"]["kwargs"])
            assert row["predicted_ms"] == pytest.approx(lut.latency(space.specs(net)), rel=1e-12)
            rounds = row["measurement"]["round_medians_ms"]
            assert len(rounds) == 5 and row["measured_ms"] == float(np.median(rounds))
            rows[row["label"]] = row
    assert any(res["reached"] for res in payload["results"])
    stored = payload["prediction_error"]
    again = prediction_error(list(rows.values()))
    assert stored["n"] == again["n"] == len(rows)
    for key in ("median_abs_rel_error", "max_abs_rel_error", "spearman"):
        assert stored[key] == pytest.approx(again[key], rel=1e-12)
    for row in rows.values():
        model = create_model(row["model"]["name"], num_classes=sup["num_classes"],
                             **row["model"]["kwargs"])
        assert count_params(model) == row["params"]
