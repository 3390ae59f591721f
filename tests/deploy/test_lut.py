"""ppnets.deploy.lut and ``ppnets lut``: block decomposition, the table and its validation (no
timing asserts: the order and arithmetic of the measurements are checked with a scripted
harness)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import ppnets
import ppnets.bench.harness as bench_harness
import ppnets.deploy.lut as lut_module
from ppnets.cli.main import main as ppnets_main
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
    for that layer, told apart by its input size and parameter count."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def __call__(self, layer, input_size, **bench):
        key = _shape_key(layer, input_size)
        self.calls.append(key)
        return {"latency_ms": {"median": self.script[key][self.calls.count(key) - 1],
                               "iqr": 0.01},
                "backend": "scripted", "machine": {"load_avg": [0.5, 0.5, 0.5]}}


def _shape_key(layer, input_size):
    return tuple(input_size), sum(int(p.size) for p in layer.parameters())


def test_validate_measures_blocks_and_models_round_robin_and_compares_them(
        tmp_path, monkeypatch):
    names = ["resnet20_cifar", "repvgg_a0"]
    grid = lut_module.zoo_grid(names)
    entries = lut_module.unique_blocks(lut_module.grid_entries(grid))
    shapes = [_shape_key(lut_module._measurable(e["layer"]), e["input_size"]) for e in entries]
    assert len(set(shapes)) == len(entries)    # the script can tell every entry apart
    models = {_shape_key(lut_module._measurable(g["model"]["layer"]), g["model"]["input_size"])
              for g in grid.values()}
    # every block: 1.0 ms twice and one slow predictor; every model: 10, 30 (slow), 11 ms
    script = {k: [10.0, 30.0, 11.0] if k in models else [1.0, 4.0, 1.0] for k in shapes}
    harness = _ScriptedHarness(script)
    monkeypatch.setattr(bench_harness, "benchmark_model", harness)
    table = LatencyTable(str(tmp_path / "lut.json"), rounds=3, warmup=2, repeats=4)
    report = validate(names, table)

    assert harness.calls == shapes * 3     # round r times every entry before round r + 1
    assert entries[-2:] == [grid[n]["model"] for n in names]     # the models come last
    for n, row in zip(names, report["rows"]):
        n_blocks = len(grid[n]["blocks"])
        assert row["model"] == n and row["blocks"] == n_blocks
        assert row["predicted_ms"] == float(n_blocks)   # the sum of its entries, slow rounds out
        assert row["measured_ms"] == 11.0 and row["round_medians_ms"] == [10.0, 30.0, 11.0]
        assert row["rel_error"] == pytest.approx((n_blocks - 11.0) / 11.0)
    errors = [abs(r["rel_error"]) for r in report["rows"]]
    assert report["median_abs_rel_error"] == pytest.approx(float(np.median(errors)))
    assert report["max_abs_rel_error"] == pytest.approx(max(errors))
    assert report["rounds"] == 3 and report["repeats"] == 4 and report["device"] == "cpu"
    saved = json.loads((tmp_path / "lut.json").read_text())   # fill() saved it
    assert saved["entries"] == table.entries and saved["meta"]["rounds"] == 3
    assert saved["entries"]["model:repvgg_a0"] == 11.0

    # the same table read as a device's table: nothing measured, the same report
    device = LatencyTable(str(tmp_path / "lut.json"), device="file")
    again = validate(names, device)
    assert len(harness.calls) == 3 * len(shapes)
    assert [r["predicted_ms"] for r in again["rows"]] == [r["predicted_ms"]
                                                          for r in report["rows"]]
    assert (again["rounds"], again["repeats"]) == (3, 4)   # as measured, not this reader's
    device.save()
    assert json.loads((tmp_path / "lut.json").read_text()) == saved   # a device table stays
    short = dict(saved, entries={k: v for k, v in saved["entries"].items()
                                 if k != "model:resnet20_cifar"})
    (tmp_path / "short.json").write_text(json.dumps(short))
    with pytest.raises(KeyError, match=r"lacks 1 entries.*model:resnet20_cifar.*lut_device\.py"):
        validate(names, LatencyTable(str(tmp_path / "short.json"), device="file"))
    with pytest.raises(FileNotFoundError, match="--lut"):
        LatencyTable(str(tmp_path / "absent.json"), device="file")


def test_the_cli_writes_the_report_and_the_table(tmp_path, monkeypatch, capsys):
    calls = []

    def flat(layer, input_size, **bench):
        calls.append(bench)
        return {"latency_ms": {"median": 2.0, "iqr": 0.0}, "backend": "scripted",
                "machine": {"load_avg": [0.5, 0.5, 0.5]}}

    monkeypatch.setattr(bench_harness, "benchmark_model", flat)
    table, report = tmp_path / "t.json", tmp_path / "r.json"
    assert ppnets_main(["lut", "validate", "--models", "resnet20_cifar", "--table", str(table),
                        "--json", str(report), "--rounds", "2", "--repeats", "3"]) == 0
    out = json.loads(report.read_text())
    assert out["rows"][0]["model"] == "resnet20_cifar" and out["rounds"] == 2
    assert out["rows"][0]["measured_ms"] == 2.0 and out["rows"][0]["round_medians_ms"] == [2.0,
                                                                                          2.0]
    assert out["command"].startswith("ppnets lut validate --models resnet20_cifar")
    assert out["table"]["entries"] == len(json.loads(table.read_text())["entries"])
    assert all(c["repeats"] == 3 and c["device"] == "cpu" for c in calls)
    assert "| resnet20_cifar |" in capsys.readouterr().out


def test_a_model_at_another_input_size_is_another_entry():
    own = lut_module.zoo_grid(["resnet20_cifar"])["resnet20_cifar"]
    other = lut_module.zoo_grid(["resnet20_cifar"], (3, 64, 64))["resnet20_cifar"]
    assert own["model"]["key"] == "model:resnet20_cifar"
    assert own["model"]["input_size"] == (3, 32, 32)
    assert other["model"]["key"] == "model:resnet20_cifar@3x64x64"
    assert other["blocks"][0]["input_size"] == (3, 64, 64)
    assert {b["key"] for b in own["blocks"]}.isdisjoint(b["key"] for b in other["blocks"])


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path, capsys):
    """An unknown model, a device table that does not exist, one that lacks entries: exit 2 and
    one ``error:`` line each, nothing measured."""
    assert ppnets_main(["lut", "validate", "--models", "resnet19", "--table",
                        str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "resnet18" in err and len(err.splitlines()) == 1
    assert ppnets_main(["lut", "validate", "--models", "resnet20_cifar", "--lut",
                        str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "lut export-grid" in err and "Traceback" not in err
    (tmp_path / "empty.json").write_text(json.dumps({"schema": "ppnets.lut/1", "meta": {},
                                                     "entries": {}}))
    assert ppnets_main(["lut", "validate", "--models", "resnet20_cifar", "--lut",
                        str(tmp_path / "empty.json")]) == 2
    assert "lacks" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
