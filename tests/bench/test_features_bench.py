"""The latency harness on features-only backbones (docs/features.md): every map is an output of
the timed program, copied to host and checked against eager. No test asserts a speed."""
from __future__ import annotations

import json

import pytest

import ppnets
from ppnets.bench import benchmark_model
from ppnets.cli.bench import main
from ppnets.models.features import FeatureBackbone

FAST = dict(warmup=1, repeats=2, input_size=(3, 64, 64))


def test_benchmark_model_features_only():
    rec = benchmark_model("fasternet_t0", features_only=True, out_indices=(1, -1), **FAST)
    assert rec["features_only"] and rec["out_indices"] == [1, 3] and rec["outputs"] == 2
    assert rec["max_abs_diff_vs_dygraph"] < 1e-4


def test_benchmark_model_takes_a_backbone_or_wraps_a_classifier():
    backbone = ppnets.create_model("fasternet_t0", features_only=True, out_indices=(0, 2))
    rec = benchmark_model(backbone, **FAST)
    assert rec["features_only"] and rec["out_indices"] == [0, 2] and rec["outputs"] == 2
    assert isinstance(backbone, FeatureBackbone) and backbone.training  # not modified
    full = ppnets.create_model("fasternet_t0")
    rec = benchmark_model(full, features_only=True, out_indices=(3,), **FAST)
    assert rec["out_indices"] == [3] and rec["outputs"] == 1
    assert full.num_classes == 1000  # the caller's model keeps its head
    with pytest.raises(ValueError, match="features-only backbone already"):
        benchmark_model(backbone, features_only=True, out_indices=(1,), **FAST)
    with pytest.raises(ValueError, match="features_only=True"):
        benchmark_model("fasternet_t0", out_indices=(1,), **FAST)


def test_cli_features_only(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--models", "fasternet_t0", "--features-only", "--out-indices", "1", "3",
                 "--input-size", "3", "64", "64", "--warmup", "1", "--repeats", "2",
                 "--rounds", "1", "--json", str(out)]) == 0
    (rec,) = json.loads(out.read_text())["results"]
    assert rec["features_only"] and rec["out_indices"] == [1, 3] and rec["outputs"] == 2
    assert "features-only backbones" in capsys.readouterr().out
    assert main(["--models", "fasternet_t0", "--out-indices", "1"]) == 2
    assert "add --features-only" in capsys.readouterr().err
    assert main(["--models", "fasternet_t0", "--features-only", "--out-indices", "7",
                 "--input-size", "3", "64", "64", "--warmup", "1", "--repeats", "1",
                 "--rounds", "1"]) == 2
    assert "out of range" in capsys.readouterr().err
