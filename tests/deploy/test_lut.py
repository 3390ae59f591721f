"""ppnets.deploy.lut: block decomposition, the table and its validation (no timing asserts:
the order and arithmetic of the measurements are checked with a scripted harness)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import ppnets
import ppnets.deploy.lut as lut_module
from ppnets.deploy.lut import LatencyTable, blocks_of, validate


def _model(name):
    m = ppnets.create_model(name, num_classes=10)
    m.eval()
    ppnets.reparameterize_model(m)
    return m


def test_blocks_cover_the_model_in_order():
    m = _model("resnet20_cifar")
    blocks = blocks_of(m, (3, 32, 32))
    assert len(blocks) >= 9  # 3 stages x 3 basic blocks, plus stem/head layers
    n_params = sum(int(p.size) for p in m.parameters())
    covered = {id(b["layer"]): sum(int(p.size) for p in b["layer"].parameters())
               for b in blocks}
    assert sum(covered.values()) == n_params  # every parameter sits in exactly one block
    assert blocks[0]["input_size"] == (3, 32, 32)


def test_table_measures_each_key_once_and_round_trips(tmp_path):
    m = _model("resnet20_cifar")
    path = str(tmp_path / "lut.json")
    table = LatencyTable(path, warmup=1, repeats=2, rounds=2)
    pred = table.predict(m, (3, 32, 32))
    assert all(len(table.round_medians[k]) == 2 and table.entries[k] == float(
        np.median(table.round_medians[k])) for k in table.entries)
    keys = {k for k, _ in pred["per_block_ms"]}
    assert len(table.entries) == len(keys) < pred["blocks"]  # repeated blocks share an entry
    assert pred["predicted_ms"] == sum(v for _, v in pred["per_block_ms"]) > 0
    table.save()
    again = LatencyTable(path)
    assert again.entries == table.entries and again.round_medians == table.round_medians
    assert again.predict(m, (3, 32, 32))["predicted_ms"] == pred["predicted_ms"]  # no re-timing


class _ScriptedHarness:
    """Stands in for ppnets.bench.benchmark_model: each call returns the next latency scripted
    for that layer (a block by its input size and parameter count, a model by its tag)."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def __call__(self, layer, input_size, **bench):
        key = getattr(layer, "_script_key", None) or _shape_key(layer, input_size)
        self.calls.append(key)
        return {"latency_ms": {"median": self.script[key][self.calls.count(key) - 1],
                               "iqr": 0.01},
                "backend": "scripted", "machine": {"load_avg": [0.5, 0.5, 0.5]},
                "bench": bench}


def _shape_key(layer, input_size):
    return tuple(input_size), sum(int(p.size) for p in layer.parameters())


def test_validate_fills_every_block_first_then_times_the_models_round_robin(
        tmp_path, monkeypatch):
    names = ["resnet20_cifar", "repvgg_a0"]
    blocks = {n: blocks_of(lut_module._deploy_model(n), ppnets.model_info(n)["input_size"])
              for n in names}
    by_shape = {}
    for n in names:
        for b in blocks[n]:
            by_shape.setdefault(_shape_key(lut_module._measurable(b["layer"]), b["input_size"]),
                                set()).add(b["key"])
    assert all(len(keys) == 1 for keys in by_shape.values())  # the script can tell them apart
    # every block: 1.0 ms twice and one slow predictor; every model: 10, 30 (slow), 11 ms
    script = {k: [1.0, 4.0, 1.0] for k in by_shape}
    script.update({n: [10.0, 30.0, 11.0] for n in names})
    harness = _ScriptedHarness(script)

    real_deploy_model = lut_module._deploy_model

    def tagged_model(name):
        model = real_deploy_model(name)
        model._script_key = name
        return model

    monkeypatch.setattr(lut_module, "benchmark_model", harness)
    monkeypatch.setattr(lut_module, "_deploy_model", tagged_model)
    table = LatencyTable(str(tmp_path / "lut.json"), rounds=3, warmup=2, repeats=4)
    report = validate(names, table)

    n_keys = len(by_shape)
    assert len(harness.calls) == 3 * n_keys + 3 * len(names)
    block_calls, model_calls = harness.calls[:3 * n_keys], harness.calls[3 * n_keys:]
    assert block_calls == block_calls[:n_keys] * 3          # round-robin over the whole grid
    assert model_calls == names * 3                          # then over the models
    assert set(table.entries.values()) == {1.0}              # the slow predictor is dropped
    for n, row in zip(names, report["rows"]):
        assert row["model"] == n and row["blocks"] == len(blocks[n])
        assert row["predicted_ms"] == float(len(blocks[n]))  # the sum of its entries
        assert row["measured_ms"] == 11.0 and row["measurement"]["round_medians_ms"] == [
            10.0, 30.0, 11.0]
        assert row["rel_error"] == pytest.approx((len(blocks[n]) - 11.0) / 11.0)
    assert report["median_abs_rel_error"] == pytest.approx(float(np.median(
        [abs(r["rel_error"]) for r in report["rows"]])))
    assert report["rounds"] == 3 and report["repeats"] == 4
    saved = json.loads((tmp_path / "lut.json").read_text())   # fill() saved it
    assert saved["entries"] == table.entries and saved["meta"]["rounds"] == 3
    assert saved["round_medians_ms"] == {k: [1.0, 4.0, 1.0] for k in table.entries}


def test_the_cli_writes_the_report_and_the_table(tmp_path, monkeypatch, capsys):
    calls = []

    def flat(layer, input_size, **bench):
        calls.append(bench)
        return {"latency_ms": {"median": 2.0, "iqr": 0.0}, "backend": "scripted",
                "machine": {"load_avg": [0.5, 0.5, 0.5]}}

    monkeypatch.setattr(lut_module, "benchmark_model", flat)
    table, report = tmp_path / "t.json", tmp_path / "r.json"
    assert lut_module.main(["--models", "resnet20_cifar", "--table", str(table), "--json",
                            str(report), "--rounds", "2", "--repeats", "3"]) == 0
    out = json.loads(report.read_text())
    assert out["rows"][0]["model"] == "resnet20_cifar" and out["rounds"] == 2
    assert out["command"].startswith("python -m ppnets.deploy.lut --models resnet20_cifar")
    assert out["table"]["entries"] == len(json.loads(table.read_text())["entries"])
    assert all(c["repeats"] == 3 and c["device"] == "cpu" for c in calls)
    assert "| resnet20_cifar |" in capsys.readouterr().out
