"""``ppnets export --formats onnx`` must not pip-install anything into the user's environment.

paddle2onnx 2.1 folds constants with Polygraphy and sets ``POLYGRAPHY_AUTOINSTALL_DEPS=1``
first, so every module Polygraphy imports lazily on that path (onnx>=1.8.1,
onnx_graphsurgeon>=0.3.27, onnxruntime>=1.10.0, sympy for onnxruntime's symbolic shape
inference, numpy) is pip-installed -- or upgraded -- at run time when it is missing or older.
ppnets' ``onnx`` extra declares them, and ppnets' export keeps Polygraphy's installs off.
Real ONNX exports run in fresh processes with Polygraphy's install command replaced by a
recorder: ppnets' export asks for nothing, as installed or with sympy missing (the export still
passes, unfolded); paddle2onnx called directly with sympy missing does ask (the control: the
recorder sees installs).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

RECORDER = """
import os, sys
with open(os.environ["INSTALL_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
sys.exit(1)
"""

EXPORT = """
import os, sys
if "hide_sympy" in sys.argv[2]:
    sys.modules["sympy"] = None   # import sympy raises ImportError
import paddle
from ppnets.deploy import export
paddle.seed(0)
net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.ReLU(), paddle.nn.Flatten(),
                           paddle.nn.Linear(4 * 6 * 6, 3))
net.eval()
if sys.argv[2].startswith("paddle2onnx"):
    spec = paddle.static.InputSpec([1, 3, 8, 8], dtype="float32", name="x")
    paddle.onnx.export(net, os.path.join(sys.argv[1], "model"), input_spec=[spec])
    print("exported")
else:
    net.model_name = "tiny"
    report = export(net, formats=("onnx",), out_dir=sys.argv[1], input_size=(3, 8, 8))
    print(report["artifacts"]["onnx"]["status"])
"""


def test_onnx_export_installs_nothing_at_run_time(tmp_path):
    for module in ("paddle2onnx", "polygraphy", "onnxruntime"):
        pytest.importorskip(module)
    (tmp_path / "recorder.py").write_text(RECORDER)
    runs = {}
    for case in ("ppnets_as_installed", "ppnets_hide_sympy", "paddle2onnx_hide_sympy"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYGRAPHY_")}
        env.update(PYTHONPATH=REPO, INSTALL_LOG=str(tmp_path / f"{case}.log"),
                   POLYGRAPHY_INSTALL_CMD=f"{sys.executable} {tmp_path / 'recorder.py'}")
        (tmp_path / case).mkdir()
        runs[case] = subprocess.Popen(
            [sys.executable, "-c", EXPORT, str(tmp_path / case), case], cwd=str(tmp_path),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for case, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        expected = "exported" if case.startswith("paddle2onnx") else "passed"
        assert proc.returncode == 0 and out.split()[-1] == expected, (case, err[-3000:])
    for case in ("ppnets_as_installed", "ppnets_hide_sympy"):
        log = tmp_path / f"{case}.log"
        assert not log.exists(), f"{case}: pip-installed at run time: {log.read_text()}"
    control = tmp_path / "paddle2onnx_hide_sympy.log"
    assert control.exists() and "sympy" in control.read_text(), \
        "the recorder saw no install attempt from paddle2onnx itself with sympy missing"
