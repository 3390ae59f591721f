"""The search latency table (ppnets.search.lut): a network's prediction is the sum of its blocks'
entries, a table from another device is read only and names what it lacks, and the block specs
of both search spaces cover the whole model (their parameters add up to the model's)."""
from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

from ppnets.analysis import count_params
from ppnets.factory import create_model
from ppnets.search.lut import LatencyLUT, ParamCounter, median_over_predictors, prediction_error
from ppnets.search.space_v1 import FAMILY as V1_FAMILY
from ppnets.search.space_v1 import V1Net, V1Space
from ppnets.search.space_v2 import FAMILY as V2_FAMILY
from ppnets.search.space_v2 import V2Net, V2Space

V1 = V1Space(32, depths=(2, 2, 3, 3), widths=(32, 64, 96, 128), num_classes=10)
V2 = V2Space(32, depths=(2, 2, 3, 3), widths=(32, 48, 96, 128), ratios=(2, 3, 4), num_classes=10)
NET1 = V1Net((2, 1, 3, 3), (32, 48, 96, 112), 2)
NET2 = V2Net((2, 1, 3, 2), (32, 48, 80, 128), ((4, 2), (3,), (4, 4, 2), (3, 4)), (0, 0, 1, 2))


def _table(tmp_path, specs, skip=()):
    keys = sorted({s["key"] for s in specs} - set(skip))
    entries = {k: 0.125 * (i + 1) for i, k in enumerate(keys)}   # exact binary fractions
    path = tmp_path / "lut_arm.json"
    path.write_text(json.dumps({"schema": "ppnets.lut/1", "meta": {"device": "arm"},
                                "entries": entries}))
    return str(path), entries


@pytest.mark.parametrize("space,net", [(V1, NET1), (V2, NET2)], ids=["v1", "v2"])
def test_prediction_is_the_sum_of_the_entries(tmp_path, space, net):
    specs = space.specs(net)
    path, entries = _table(tmp_path, specs)
    lut = LatencyLUT(path, target="file")
    expected = sum(entries[s["key"]] for s in specs)   # repeated blocks count every time
    assert lut.latency(specs) == expected
    assert len(specs) > len(set(s["key"] for s in specs))   # the net repeats blocks
    assert lut.describe()["target"] == "file" and lut.describe()["entries"] == len(entries)


def test_a_device_table_is_read_only_and_names_a_missing_entry(tmp_path):
    specs = V1.specs(NET1)
    missing = specs[3]["key"]
    path, _ = _table(tmp_path, specs, skip=[missing])
    lut = LatencyLUT(path, target="file")
    assert lut.missing(specs) == [missing]
    with pytest.raises(KeyError, match="lut_device.py"):
        lut.latency(specs)
    with pytest.raises(FileNotFoundError, match="--lut"):
        LatencyLUT(str(tmp_path / "absent.json"), target="file")
    with pytest.raises(ValueError, match="target must be one of"):
        LatencyLUT(None, target="npu")


def test_cpu_target_measures_a_missing_entry_with_the_bench_harness(tmp_path):
    lut = LatencyLUT(str(tmp_path / "lut_cpu.json"), target="cpu", warmup=1, repeats=3,
                     rounds=3)
    spec = V1.specs(V1Net((1, 1, 1, 1), (16, 16, 16, 16), 1))[-1]   # the head
    ms = lut.measure(spec)
    assert ms > 0 and lut.entries == {spec["key"]: ms}
    rounds = lut.round_medians[spec["key"]]
    assert len(rounds) == 3 and ms == float(np.median(rounds))
    assert lut.meta["device"] == "cpu" and lut.meta["repeats"] == 3 and lut.meta["rounds"] == 3
    lut.save()
    again = LatencyLUT(str(tmp_path / "lut_cpu.json"), target="cpu")
    assert again.measure(spec) == ms   # read back, not re-measured
    assert again.round_medians == {spec["key"]: rounds}


def test_fill_interleaves_the_rounds_and_takes_each_median(tmp_path, monkeypatch):
    # a slow phase of the machine must hit one round of many entries, not every round of one
    import ppnets.bench.harness as lut_module   # where interleaved_runs calls the harness
    calls = []
    speed = {4: [0.2, 0.9, 0.21], 5: [0.5, 0.52, 0.49], 6: [1.0, 1.1, 0.3]}   # by channels

    def fake_benchmark(layer, input_size, **kwargs):
        calls.append(input_size[0])
        return {"latency_ms": {"median": speed[input_size[0]][calls.count(input_size[0]) - 1]},
                "backend": "fake", "machine": {"load_avg": [0.1, 0.1, 0.1]}}

    monkeypatch.setattr(lut_module, "benchmark_model", fake_benchmark)
    specs = [{"key": f"k{c}", "input_size": (c, 2, 2), "build": lambda c=c: paddle.nn.Conv2D(
        c, c, 1)} for c in (4, 5, 6)]
    lut = LatencyLUT(str(tmp_path / "lut.json"), target="cpu", rounds=3)
    assert lut.fill(specs + specs[:1]) == 3    # a repeated block is measured once
    assert calls == [4, 5, 6] * 3
    assert lut.entries == {"k4": 0.21, "k5": 0.5, "k6": 1.0}
    assert lut.round_medians["k6"] == [1.0, 1.1, 0.3] and lut.meta["rounds"] == 3
    assert json.loads((tmp_path / "lut.json").read_text())["entries"] == lut.entries
    assert lut.fill(specs) == 0 and len(calls) == 9
    device = LatencyLUT(str(tmp_path / "lut.json"), target="file")
    with pytest.raises(KeyError, match="lacks 1 entries"):
        device.fill(specs + [dict(specs[0], key="k7")])


def test_an_entry_is_the_median_over_fresh_predictors(monkeypatch):
    # one predictor can run a block steadily ~2x slower than the next: the median over
    # predictors takes the common speed, not the first predictor's
    import ppnets.bench.harness as lut_module   # where interleaved_runs calls the harness
    speeds = iter([0.64, 0.37, 0.38, 0.66, 0.36])
    calls = []

    def fake_benchmark(layer, **kwargs):
        calls.append(kwargs)
        return {"latency_ms": {"median": next(speeds), "iqr": 0.01}, "backend": "fake",
                "machine": {"load_avg": [0.1, 0.1, 0.1]}}

    monkeypatch.setattr(lut_module, "benchmark_model", fake_benchmark)
    res = median_over_predictors(paddle.nn.Linear(2, 2), (2,), rounds=5, repeats=7)
    assert res["median_ms"] == 0.38 and res["round_medians_ms"] == [0.64, 0.37, 0.38, 0.66, 0.36]
    assert len(calls) == 5 and all(c["repeats"] == 7 for c in calls)
    with pytest.raises(ValueError, match="rounds"):
        median_over_predictors(paddle.nn.Linear(2, 2), (2,), rounds=0)


@pytest.mark.parametrize("space,net,family,kwargs", [
    (V1, NET1, V1_FAMILY, lambda n: n.kwargs(32)),
    (V2, NET2, V2_FAMILY, lambda n: n.kwargs(32, False))], ids=["v1", "v2"])
def test_block_specs_cover_the_model(space, net, family, kwargs):
    model = create_model(family, num_classes=10, **kwargs(net))
    assert ParamCounter()(space.specs(net)) == count_params(model)


def test_prediction_error():
    rows = [{"predicted_ms": 1.1, "measured_ms": 1.0}, {"predicted_ms": 1.8, "measured_ms": 2.0},
            {"predicted_ms": 3.0, "measured_ms": 3.0}, {"predicted_ms": 1.0, "measured_ms": None}]
    err = prediction_error(rows)
    assert err["n"] == 3
    assert err["rel_errors"] == pytest.approx([0.1, -0.1, 0.0])
    assert err["median_abs_rel_error"] == pytest.approx(0.1)
    assert err["max_abs_rel_error"] == pytest.approx(0.1)
    assert err["spearman"] == pytest.approx(1.0)
