"""``ppnets study x86-precision`` (ppnets.studies.precision): a smoke run on the real MobileNetV2
weights and images writes well-formed JSON / Markdown with every runtime x precision measured or
its failure's reason; the targets are judged from the numbers (met and not met). No timing is
asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ppnets.cli.main import main as ppnets_main
from ppnets.studies.precision import SCHEMA, PrecisionOptions, judge
from tests.conftest import IMAGENET_SAMPLE, REPO, SHARED_DATA, require_shared

WEIGHTS = os.path.join(SHARED_DATA, "weights", "mobilenetv2_100.tv_qnnpack_dequant.safetensors")


def _real_data():
    require_shared(WEIGHTS)
    return WEIGHTS, os.path.join(require_shared(IMAGENET_SAMPLE), "val_list.txt")


def _check_outputs(out_dir: str, runtimes, command_start: str):
    with open(os.path.join(out_dir, "precision_x86.json"), encoding="utf-8") as f:
        doc = json.load(f)   # strict JSON: written with allow_nan=False
    with open(os.path.join(out_dir, "precision_x86.md"), encoding="utf-8") as f:
        md = f.read()
    assert doc["schema"] == SCHEMA and doc["smoke"] is True
    assert doc["command"].startswith(command_start)
    assert doc["machine"]["cpu_model"] and len(doc["load_avg_start"]) == 3
    assert doc["started_utc"] <= doc["finished_utc"]
    assert doc["images"]["preprocessing"]["interpolation"] == "bicubic"
    assert doc["calibration_images"] == 4 and doc["images"]["count"] == 12
    rows = {(r["runtime"], r["precision"]): r for r in doc["results"]}
    assert set(rows) == {(r, p) for r in runtimes for p in ("fp32", "bf16", "int8")}
    for (runtime, precision), row in rows.items():
        if "error" in row:   # recorded with its reason, never a crash
            assert row["error"] and {"runtime": runtime, "precision": precision,
                                     "error": row["error"]} in doc["failures"]
            continue
        assert row["accuracy"]["images"] == 12 and row["accuracy"]["held_out_images"] == 8
        assert set(row["latency"]) == {"1", "2"}
        assert row["check"]["status"] == ("passed" if precision == "fp32" else "approximate")
        assert 0.0 <= row["vs_fp32"]["prediction_agreement"] <= 1.0
    # onnxruntime has no bf16 on CPU: a failure with the reason, the study went on
    assert "bfloat16" in rows[("onnxruntime", "bf16")]["error"]
    assert "error" not in rows[("onnxruntime", "int8")]
    for precision in ("bf16", "int8"):
        verdict = doc["targets"][precision]
        assert isinstance(verdict["met"], bool) and verdict["reason"]
        assert f"**{verdict['goal']}**: {'MET' if verdict['met'] else 'NOT MET'}" in md
    assert "SMOKE RUN" in md and "| onnxruntime | int8 |" in md
    assert "## Runtimes and precisions that did not run" in md
    return doc


def test_smoke_run_writes_json_and_markdown(tmp_path):
    weights, list_file = _real_data()
    runtimes = ["onnxruntime", "openvino"]
    pytest.importorskip("onnxruntime", reason='needs onnxruntime (pip install "ppnets[onnx]")')
    pytest.importorskip("openvino", reason='needs openvino (pip install "ppnets[openvino]")')
    out = str(tmp_path / "out")
    assert ppnets_main(["study", "x86-precision", "--smoke", "--pretrained", weights,
                        "--list-file", list_file, "--runtimes", *runtimes,
                        "--output-dir", out]) == 0
    doc = _check_outputs(out, runtimes, "ppnets study x86-precision --smoke")
    assert doc["int8"]["targets"].keys() == {"onnx"}   # no PaddleSlim without paddle_inference
    assert doc["run_record"]["script"] == "ppnets study x86-precision"


@pytest.mark.slow
def test_reproduce_script_runs_every_runtime(tmp_path):
    weights, list_file = _real_data()
    out = str(tmp_path / "out")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "reproduce", "x86_precision.py"),
                           "--smoke", "--pretrained", weights, "--list-file", list_file,
                           "--output-dir", out], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = _check_outputs(out, ["paddle_inference", "onnxruntime", "openvino"],
                         "python reproduce/x86_precision.py --smoke")
    assert doc["int8"]["targets"]["paddle"]["status"] == "written"


def test_missing_inputs_are_a_short_error(tmp_path, capsys):
    assert ppnets_main(["study", "x86-precision", "--pretrained", str(tmp_path / "none"),
                        "--list-file", str(tmp_path / "none.txt"),
                        "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pretrained") and "--pretrained" in err
    assert not os.path.exists(tmp_path / "precision_x86.json")


def _row(runtime, precision, top1, held_out, ms, predictions):
    return {"runtime": runtime, "precision": precision, "predictions": predictions,
            "accuracy": {"top1": top1, "held_out_top1": held_out},
            "latency": {"1": {"median": ms}}}


def test_targets_are_judged_from_accuracy_and_speed():
    opts = PrecisionOptions(pretrained="w", list_file="l", threads=(1,))
    rows = [_row("openvino", "fp32", 0.78, 0.78, 3.0, [1, 2, 3, 4]),
            _row("openvino", "bf16", 0.7775, 0.78, 1.8, [1, 2, 3, 4]),    # -0.25 pt, 1.67x: met
            _row("openvino", "int8", 0.79, 0.765, 1.0, [1, 2, 3, 5]),     # held-out -1.5 pt
            _row("onnxruntime", "fp32", 0.78, 0.78, 3.0, [1, 2, 3, 4]),
            _row("onnxruntime", "int8", 0.78, 0.78, 2.5, [1, 2, 3, 4]),   # 1.2x: too slow
            {"runtime": "paddle_inference", "precision": "int8", "error": "no paddleslim"}]
    judged = judge(opts, {"rows": rows, "threads": [1]})
    assert judged["targets"]["bf16"]["met"] is True
    assert judged["targets"]["bf16"]["per_threads"]["1"]["runtimes_meeting"] == ["openvino"]
    int8 = judged["targets"]["int8"]
    assert int8["met"] is False   # accurate runtime too slow, fast runtime too inaccurate
    assert "openvino: top-1 -1.50 points" in int8["reason"] and "1.20x fp32" in int8["reason"]
    assert rows[2]["vs_fp32"]["prediction_agreement"] == 0.75
    assert judged["failures"] == [{"runtime": "paddle_inference", "precision": "int8",
                                   "error": "no paddleslim"}]


class _Session:
    def __init__(self, fail: bool):
        self.fail = fail

    def run(self, x):
        if self.fail:
            raise RuntimeError("oneDNN primitive creation failed")
        return [x]


def test_a_runtime_failing_while_timed_is_recorded_and_the_others_timed():
    from ppnets.studies.precision import _time_rounds

    opts = PrecisionOptions(pretrained="w", list_file="l", warmup=0, repeats=2, rounds=2)
    rows = [{"runtime": "openvino", "precision": "int8"},
            {"runtime": "onnxruntime", "precision": "fp32"}]
    sessions = {("openvino", "int8", 1): _Session(fail=True),
                ("onnxruntime", "fp32", 1): _Session(fail=False)}
    _time_rounds(rows, sessions, np.zeros((1, 3, 4, 4), np.float32), opts, lambda text: None)
    assert rows[0]["error"].startswith("timing at threads 1 failed: RuntimeError: oneDNN")
    assert "latency" not in rows[0]
    assert rows[1]["latency"]["1"]["repeats"] == 2
    assert len(rows[1]["latency"]["1"]["round_medians_ms"]) == 2
