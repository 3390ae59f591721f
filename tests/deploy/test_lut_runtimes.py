"""The latency lookup table per runtime: a table is measured in one runtime (``--runtime``),
records it, and refuses to be extended or read as another runtime's (no timing asserts)."""
from __future__ import annotations

import json

import paddle.nn as nn
import pytest

import ppnets.bench.harness as bench_harness
import ppnets.cli.lut as lut_cli
from ppnets.cli.main import main as ppnets_main
from ppnets.deploy.lut import TABLE_RUNTIMES, LatencyTable
from ppnets.runtime import RuntimeUnavailableError


def _block(width: int = 8):
    return {"key": f"Conv|{width}", "layer": nn.Conv2D(width, width, 3, padding=1),
            "input_size": (width, 8, 8)}


class _Harness:
    """benchmark_model stand-in: records the runtime of every call."""

    def __init__(self, unavailable=False):
        self.runtimes, self.unavailable = [], unavailable

    def __call__(self, layer, input_size, runtime="paddle_inference", **bench):
        self.runtimes.append(runtime)
        if self.unavailable:
            return {"backend": runtime, "status": "unavailable", "reason": "not installed"}
        return {"latency_ms": {"median": 2.0, "iqr": 0.0}, "backend": runtime,
                "machine": {"load_avg": [0.5, 0.5, 0.5]}}


def test_a_table_is_measured_in_its_runtime_and_refuses_another(tmp_path, monkeypatch):
    harness = _Harness()
    monkeypatch.setattr(bench_harness, "benchmark_model", harness)
    path = str(tmp_path / "lut_ort.json")
    table = LatencyTable(path, rounds=2, runtime="onnxruntime")
    assert table.fill([_block(8), _block(16)]) == 2
    assert harness.runtimes == ["onnxruntime"] * 4
    saved = json.loads(open(path, encoding="utf-8").read())
    assert saved["meta"]["runtime"] == "onnxruntime" == saved["meta"]["backend"]
    assert table.settings()["runtime"] == "onnxruntime"
    again = LatencyTable(path, runtime="onnxruntime")
    assert again.entries == table.entries and again.latency([_block(8)]) == 2.0
    assert harness.runtimes == ["onnxruntime"] * 4   # read, not re-measured
    with pytest.raises(ValueError, match="measured in onnxruntime, not paddle_inference.*"
                                         "--runtime onnxruntime"):
        LatencyTable(path)
    # a device's table reports the runtime its meta names
    assert LatencyTable(path, device="file").settings()["runtime"] == "onnxruntime"


def test_a_table_written_before_runtimes_were_recorded_is_paddle_inference(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "ppnets.lut/1", "entries": {"k": 1.0},
                               "meta": {"backend": "paddle_inference", "device": "cpu"}}))
    assert LatencyTable(str(old)).saved_runtime() == "paddle_inference"
    with pytest.raises(ValueError, match="measured in paddle_inference, not openvino"):
        LatencyTable(str(old), runtime="openvino")


def test_runtime_choices_and_an_unavailable_runtime(tmp_path, monkeypatch):
    assert "paddle_lite" not in TABLE_RUNTIMES and "openvino" in TABLE_RUNTIMES
    with pytest.raises(ValueError, match="export-grid"):
        LatencyTable(runtime="paddle_lite")
    with pytest.raises(ValueError, match="gpu table"):
        LatencyTable(device="gpu", runtime="onnxruntime")
    monkeypatch.setattr(bench_harness, "benchmark_model", _Harness(unavailable=True))
    with pytest.raises(RuntimeUnavailableError, match="onnxruntime: not installed"):
        LatencyTable(runtime="onnxruntime", rounds=1).fill([_block()])


def test_the_cli_measures_in_the_runtime_and_says_when_it_is_missing(tmp_path, monkeypatch,
                                                                     capsys):
    harness = _Harness()
    monkeypatch.setattr(bench_harness, "benchmark_model", harness)
    table = tmp_path / "t.json"
    assert ppnets_main(["lut", "validate", "--models", "resnet20_cifar", "--table", str(table),
                        "--runtime", "onnxruntime", "--rounds", "1"]) == 0
    assert set(harness.runtimes) == {"onnxruntime"}
    assert json.loads(table.read_text())["meta"]["runtime"] == "onnxruntime"
    assert "runtime onnxruntime, device cpu" in capsys.readouterr().out
    # the same table asked for as another runtime's: an error, nothing measured
    calls = len(harness.runtimes)
    assert ppnets_main(["lut", "validate", "--models", "resnet20_cifar", "--table", str(table),
                        "--runtime", "openvino"]) == 2
    assert "measured in onnxruntime, not openvino" in capsys.readouterr().err
    assert len(harness.runtimes) == calls
    reason = "No module named 'openvino'; pip install \"ppnets[openvino]\""
    monkeypatch.setattr(lut_cli, "runtime_status",
                        lambda: {"openvino": {"available": False, "reason": reason}})
    assert ppnets_main(["lut", "validate", "--models", "resnet20_cifar", "--table",
                        str(tmp_path / "ov.json"), "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --runtime openvino is not available") and "pip install" in err


def test_an_entry_is_really_measured_in_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                              "\"ppnets[onnx]\")")
    table = LatencyTable(str(tmp_path / "ort.json"), warmup=1, repeats=2, rounds=1,
                         runtime="onnxruntime")
    assert table.measure(_block()) > 0
    assert table.meta["runtime"] == "onnxruntime" == table.meta["backend"]
