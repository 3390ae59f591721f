"""The device path of the zoo latency table (docs/deploy.md, "Latency lookup table"), end to end
with Paddle Lite's x86 target standing in for the phone: the host exports every block and every
whole model of two zoo models (``ppnets lut export-grid``), the device-side runner -- in the Lite
Python, without ppnets -- times them from the copied folder, and the host reads the table back
(``ppnets lut validate --lut``) to compare each model's sum of blocks with its own entry.

Skips unless Paddle Lite is available (scripts/prepare_paddlelite_env.sh; CI's Lite job runs it).
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from ppnets.cli.main import main as ppnets_main
from ppnets.deploy import lite
from ppnets.deploy import lut as lut_module

needs_lite = pytest.mark.skipif(
    not lite.lite_available(),
    reason="Paddle Lite not available: paddlelite is not importable in this Python and "
           "PPNETS_PADDLELITE_PYTHON is unset (run scripts/prepare_paddlelite_env.sh)")

# resnet20_cifar: image blocks only; efficientformer_l1: a LayerNorm on (T, C) tokens and a
# Dropout/Linear head on (C,) vectors, which the grid wraps to 4D for the Lite exporter
MODELS = ["resnet20_cifar", "efficientformer_l1"]


@needs_lite
def test_zoo_models_are_timed_on_the_device_and_validated_from_its_table(capsys):
    grid = lut_module.zoo_grid(MODELS)
    keys = [e["key"] for e in lut_module.unique_blocks(lut_module.grid_entries(grid))]
    assert any(len(b["input_size"]) == 2 for b in grid["efficientformer_l1"]["blocks"])
    assert any(len(b["input_size"]) == 1 for b in grid["efficientformer_l1"]["blocks"])
    with lite.lite_session() as folder:   # both sides see this folder at the same path
        grid_dir = os.path.join(folder, "grid")
        assert ppnets_main(["lut", "export-grid", "--models", *MODELS, "--output-dir", grid_dir,
                            "--lite-target", "x86"]) == 0
        manifest = json.loads(open(os.path.join(grid_dir, "manifest.json")).read())
        assert manifest["failed"] == [] and [e["key"] for e in manifest["entries"]] == keys
        assert all(len(e["input_size"]) == 3 for e in manifest["entries"])
        assert "lut_device.py" in capsys.readouterr().out

        out = os.path.join(folder, "lut_x86.json")
        proc = subprocess.run([lite.find_lite_python(), os.path.join(grid_dir, "lut_device.py"),
                               "--grid", grid_dir, "--out", out, "--warmup", "1", "--repeats",
                               "3", "--rounds", "2"], cwd=grid_dir, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        table = json.loads(open(out, encoding="utf-8").read())
        assert sorted(table["entries"]) == sorted(keys)
        assert table["meta"]["backend"] == "paddle_lite" and table["meta"]["rounds"] == 2

        report_path = os.path.join(folder, "report.json")
        assert ppnets_main(["lut", "validate", "--models", *MODELS, "--lut", out, "--json",
                            report_path]) == 0
        report = json.loads(open(report_path, encoding="utf-8").read())
        entries = table["entries"]
        for name, row in zip(MODELS, report["rows"]):
            assert row["measured_ms"] == entries[f"model:{name}"] > 0
            assert row["predicted_ms"] == pytest.approx(
                sum(entries[b["key"]] for b in grid[name]["blocks"]), rel=1e-12)
        assert report["table"]["meta"]["backend"] == "paddle_lite"
        assert json.loads(open(out, encoding="utf-8").read()) == table   # read only
