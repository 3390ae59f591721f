"""Export of features-only backbones (docs/features.md): multi-output programs for Paddle
Inference (PIR and legacy), ONNX Runtime and Paddle Lite, every output verified against eager;
the zoo-wide Lite check and the board runner on them.

The Paddle Lite tests skip unless paddlelite is importable or PPNETS_PADDLELITE_PYTHON names a
Python that has it (scripts/prepare_paddlelite_env.sh builds one).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ppnets.cli.main import main as ppnets_main
from ppnets.deploy import export, lite
from ppnets.runtime import compare_all_outputs, compare_outputs

needs_lite = pytest.mark.skipif(
    not lite.lite_available(),
    reason="Paddle Lite not available: paddlelite is not importable in this Python and "
           "PPNETS_PADDLELITE_PYTHON is unset (run scripts/prepare_paddlelite_env.sh)")

SIZE = (3, 64, 64)


def _maps():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, c, s, s)).astype(np.float32)
            for c, s in ((8, 16), (16, 8), (32, 4))]


def test_compare_all_outputs_checks_every_output():
    refs = _maps()
    assert compare_all_outputs([refs[0]], [refs[0]], 1e-4) == \
        compare_outputs(refs[0], refs[0], 1e-4)  # one output: the single-output record
    rec = compare_all_outputs([r.copy() for r in refs], refs, 1e-4)
    assert rec["status"] == "passed" and rec["num_outputs"] == 3
    assert [r["status"] for r in rec["outputs"]] == ["passed"] * 3
    off = [r.copy() for r in refs]
    off[2][0, 5, 1, 1] += 1e-2  # only the last map is off
    rec = compare_all_outputs(off, refs, 1e-4)
    assert rec["status"] == "failed"
    assert [r["status"] for r in rec["outputs"]] == ["passed", "passed", "failed"]
    assert rec["max_abs_diff"] == pytest.approx(1e-2, rel=1e-3)
    assert compare_all_outputs(refs[:2], refs, 1e-4)["status"] == "failed"
    swapped = compare_all_outputs([refs[1], refs[0], refs[2]], refs, 1e-4)
    assert swapped["status"] == "failed" and "output 0" in swapped["error"]


def test_export_features_only_paddle_and_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    report = export("fasternet_t0", formats=("paddle", "onnx"), out_dir=str(tmp_path),
                    input_size=SIZE, features_only=True, out_indices=(1, -1))
    assert report["features_only"] and report["out_indices"] == [1, 3]
    assert report["outputs"] == [[1, 80, 8, 8], [1, 320, 2, 2]]
    assert [i["reduction"] for i in report["feature_info"]] == [8, 32]
    arts = report["artifacts"]
    assert set(arts) == {"paddle", "legacy", "onnx"} and report["all_passed"]
    for art in arts.values():
        assert art["status"] == "passed" and art["num_outputs"] == 2, art
        assert [o["status"] for o in art["outputs"]] == ["passed", "passed"]
    io = np.load(tmp_path / "reference_io.npz")
    assert io["y_0"].shape == (1, 80, 8, 8) and io["y_1"].shape == (1, 320, 2, 2)
    np.testing.assert_array_equal(io["y"], io["y_0"])


def test_cli_export_features_only(tmp_path, capsys):
    out = tmp_path / "t0"
    assert ppnets_main(["export", "--model", "fasternet_t0", "--formats", "paddle",
                        "--features-only", "--out-indices", "2", "3", "--input-size", "3", "64",
                        "64", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "features-only backbone: out_indices [2, 3]" in printed
    assert "| legacy | passed |" in printed
    with open(out / "export.json") as f:
        assert json.load(f)["outputs"] == [[1, 160, 4, 4], [1, 320, 2, 2]]
    for bad, message in ((["--out-indices", "1"], "add --features-only"),
                         (["--features-only", "--num-classes", "5"], "drop --num-classes"),
                         (["--features-only", "--out-indices", "9"], "out of range")):
        assert ppnets_main(["export", "--model", "fasternet_t0", "--formats", "paddle",
                            "--out-dir", str(tmp_path / "bad"), *bad]) == 2
        assert message in capsys.readouterr().err


@needs_lite
def test_export_features_only_lite_and_runner(tmp_path):
    from ppnets.cli.device.lite_runner import benchmark_nb

    report = export("mobilenetv3_small_050", formats=("lite",), out_dir=str(tmp_path),
                    input_size=SIZE, features_only=True)
    x86 = report["artifacts"]["lite_x86"]
    assert x86["status"] == "passed" and x86["num_outputs"] == len(report["out_indices"]), x86
    rec = benchmark_nb(x86["file"], "mobilenetv3_small_050", warmup=1, repeats=2,
                       reference_npz=str(tmp_path / "reference_io.npz"))
    assert rec["outputs"] == len(report["out_indices"])
    assert rec["max_abs_diff_vs_dygraph"] < 1e-4


@needs_lite
def test_zoo_check_features_only():
    from ppnets.deploy.zoo_check import format_table, row_ok, run

    report = run(["fasternet_t0", "repvgg_a0"], batch_size=2, features_only=True)
    assert report["features_only"]
    for row in report["rows"]:
        assert row_ok(row), format_table([row])
        parity = row["targets"]["x86"]["parity"]
        assert parity["num_outputs"] in (4, 5) and len(parity["outputs"]) == parity["num_outputs"]
