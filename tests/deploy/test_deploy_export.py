"""ppnets.deploy.export: legacy-IR export shims, verified artifacts, CLI (docs/deploy.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

from ppnets.runtime import create_predictor, run_predictor
from ppnets.deploy import export
from ppnets.runtime import compare_outputs, save_legacy

from tests.conftest import REPO


class _COpsNet(nn.Layer):
    """Uses the functions Paddle 3.3 binds straight to _C_ops (no old-IR path of their own)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.act = nn.GELU()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.act(self.conv(x))                       # gelu
        t = paddle.reshape(x, [0, 8, -1])                # N, C, HW
        attn = F.sigmoid(paddle.matmul(t, t, transpose_y=True) * 0.01)  # matmul_v2, sigmoid
        t = paddle.multiply(paddle.matmul(attn, t), paddle.tanh(t))     # elementwise_mul, tanh
        x = paddle.sum(t, axis=-1) / t.shape[-1]         # reduce_sum
        return self.fc(paddle.exp(x * 0.1))


def test_legacy_export_of_c_ops_functions_matches_eager(tmp_path):
    paddle.seed(0)
    model = _COpsNet()
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    ref = model(paddle.to_tensor(x)).numpy()
    mf, pf = save_legacy(model, (3, 8, 8), 2, str(tmp_path))
    assert mf.endswith(".pdmodel") and paddle.in_dynamic_mode()
    from ppnets.deploy.opcheck import program_ops
    ops = program_ops(mf)
    for op in ("gelu", "matmul_v2", "sigmoid", "elementwise_mul", "tanh", "reduce_sum", "exp"):
        assert op in ops, (op, ops)
    out = run_predictor(create_predictor(mf, pf), x)[0]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


class _NoParameters(nn.Layer):
    def forward(self, x):
        return F.softmax(x, axis=1)


def test_a_program_without_parameters_runs_or_says_which_paddle_it_needs(tmp_path):
    """Paddle 3.3 serves a parameter-less program (a LUT block such as a softmax); Paddle 3.0
    writes no parameters file for it and cannot load it, which export_program says."""
    from ppnets.runtime import export_program

    model = _NoParameters()
    model.eval()
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32)
    mf, pf = export_program(model, (4, 5, 5), 1, str(tmp_path))
    assert not os.path.exists(pf)
    try:
        predictor = create_predictor(mf, pf)
    except RuntimeError as exc:
        assert tuple(map(int, paddle.__version__.split(".")[:2])) < (3, 3), exc
        assert f"Paddle {paddle.__version__} cannot load" in str(exc)
        assert "a program without parameters" in str(exc)
        return
    out = run_predictor(predictor, x)[0]
    np.testing.assert_allclose(out, model(paddle.to_tensor(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_compare_outputs_detects_differences():
    ref = np.linspace(-2, 2, 20, dtype=np.float32).reshape(2, 10)
    assert compare_outputs(ref.copy(), ref, 1e-4)["status"] == "passed"
    bad = ref.copy()
    bad[0, 3] += 1e-3
    rec = compare_outputs(bad, ref, 1e-4)
    assert rec["status"] == "failed" and rec["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    # Tiny logits cannot pass on the absolute tolerance alone.
    assert compare_outputs(ref * 1e-6 + 5e-5, ref * 1e-6, 1e-4)["status"] == "failed"
    assert compare_outputs(ref[:1], ref, 1e-4)["status"] == "failed"


def test_compare_outputs_tolerance_scales_with_logits():
    # Logits of ~20 (repvgg_b3, the SPConv VGGs): float32 rounding of 1.2e-4 is within
    # 1e-4 * max|ref| = 2e-3, while an error of 3e-3 is not; logits below 1 keep the absolute 1e-4.
    ref = np.linspace(-20, 20, 20, dtype=np.float32).reshape(2, 10)
    near = ref.copy()
    near[1, 2] += 1.2e-4
    rec = compare_outputs(near, ref, 1e-4)
    assert rec["status"] == "passed" and rec["tolerance"] == pytest.approx(2e-3)
    far = ref.copy()
    far[1, 2] += 3e-3
    assert compare_outputs(far, ref, 1e-4)["status"] == "failed"
    small = ref / 40
    small_near = small.copy()
    small_near[0, 0] += 1.2e-4
    rec = compare_outputs(small_near, small, 1e-4)
    assert rec["status"] == "failed" and rec["tolerance"] == pytest.approx(1e-4)


def test_export_paddle_and_onnx_verified(tmp_path):
    pytest.importorskip("onnxruntime")
    report = export("fasternet_t0", formats=("paddle", "onnx"), out_dir=str(tmp_path),
                    input_size=(3, 64, 64))
    arts = report["artifacts"]
    assert set(arts) == {"paddle", "legacy", "onnx"}
    for key, sub, fname in (("paddle", "paddle", "inference.json"),
                            ("legacy", "legacy", "model.pdmodel"),
                            ("onnx", "onnx", "model.onnx")):
        assert arts[key]["status"] == "passed", arts[key]
        assert os.path.isfile(os.path.join(tmp_path, sub, fname))
        with open(os.path.join(tmp_path, sub, "verify.json")) as f:
            assert json.load(f)["status"] == "passed"
    assert report["all_passed"]
    with open(os.path.join(tmp_path, "export.json")) as f:
        assert json.load(f)["model"] == "fasternet_t0"


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown export formats"):
        export("fasternet_t0", formats=("tflite",), out_dir=str(tmp_path))


def test_cli_exports_paddle(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ppnets", "export", "--model", "fasternet_t0",
                           "--formats", "paddle", "--input-size", "3", "64", "64",
                           "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| legacy | passed |" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "ppnets", "export", "--model", "fasternet_tX",
                          "--formats", "paddle"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "fasternet" in bad.stderr
