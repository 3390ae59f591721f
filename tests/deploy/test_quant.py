"""ppnets.deploy.quant: PaddleSlim PTQ on real CIFAR-10 images and QAT through the engine.

Each case runs in a subprocess: a failed PaddleSlim call can leave Paddle in static mode.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import CIFAR_PARTIAL, REPO, require_shared

PTQ = textwrap.dedent("""
    import json, sys
    import numpy as np, paddle
    import ppnets
    from ppnets.runtime import save_legacy
    from ppnets.deploy import quant
    from ppnets.deploy.opcheck import program_ops
    data, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
    paddle.seed(0)
    x_cal, _ = quant.cifar10_arrays("train", data, limit=64)
    x, y = quant.cifar10_arrays("test", data, limit=64)
    m = ppnets.create_model(name, num_classes=10)
    m.train()   # BN statistics from real images, so activations have a realistic range
    with paddle.no_grad():
        for i in range(0, 64, 16):
            m(paddle.to_tensor(x_cal[i:i + 16]))
    m.eval()
    with paddle.no_grad():
        ref = m(paddle.to_tensor(x[:16])).numpy()
    mf, pf = save_legacy(m, (3, 32, 32), 16, out + "/fp32")
    fp32 = quant.evaluate_program(out + "/fp32", "model.pdmodel", "model.pdiparams", x, y, 16)
    q = quant.ptq(mf, pf, out + "/int8", x_cal, 16)
    ops = program_ops(out + "/int8/model.pdmodel")
    with paddle.pir_utils.OldIrGuard():
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        prog, feeds, fetches = paddle.static.load_inference_model(
            out + "/int8", exe, model_filename="model.pdmodel", params_filename="model.pdiparams")
        qout = exe.run(prog, feed={feeds[0]: x[:16]}, fetch_list=fetches)[0]
        paddle.disable_static()
    rel = float(np.linalg.norm(qout - ref) / np.linalg.norm(ref))
    json.dump({"ops": ops, "rel_err": rel, "fp32_top1_eager_vs_program": fp32,
               "dynamic": paddle.in_dynamic_mode(), "calib": q["calibration_images"]},
              open(out + "/res.json", "w"))
""")

QAT = textwrap.dedent("""
    import json, sys
    import paddle, ppnets
    from ppnets.deploy import quant
    from ppnets.engine import load_config
    data, out = sys.argv[1], sys.argv[2]
    cfg = load_config(None, ["model.name=resnet20_cifar", "data.data_file=" + data,
                             "data.batch_size=16", "data.eval_batch_size=64",
                             "data.num_workers=0", "train.epochs=1",
                             "train.max_steps_per_epoch=2", "train.max_eval_steps=1",
                             "train.verbose=0", "optim.lr=0.01", "output_dir=" + out + "/run"])
    state = ppnets.create_model("resnet20_cifar", num_classes=10).state_dict()
    res, model = quant.qat_fit(cfg, state)
    names = sorted({type(l).__name__ for l in model.sublayers()})
    json.dump({"layers": names, "top1": res["final_top1"], "epochs_run": res["epochs_run"]},
              open(out + "/res.json", "w"))
""")


def _run(code, tmp_path, *extra):
    data = require_shared(CIFAR_PARTIAL)
    proc = subprocess.run([sys.executable, "-c", code, data, str(tmp_path), *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "res.json") as f:
        return json.load(f)


# mobilenetv2_050: the family whose INT8 run once failed ("BoolDType has no attribute bits",
# an environment problem: see ppnets.deploy.quant); clip-ReLU6 and depthwise convs quantize.
@pytest.mark.parametrize("name", ["resnet20_cifar", "mobilenetv2_050"])
def test_ptq_on_real_images(tmp_path, name):
    res = _run(PTQ, tmp_path, name)
    assert res["calib"] == 64 and res["dynamic"]
    assert any("quantize" in op for op in res["ops"]), res["ops"]  # quant/dequant inserted
    # INT8 simulation stays close to FP32 (a wrong scale gives errors of order 1)
    assert res["rel_err"] < 0.2, res


def test_qat_through_engine(tmp_path):
    res = _run(QAT, tmp_path)
    assert res["epochs_run"] == 1
    assert any(n.startswith("Quantized") for n in res["layers"]), res["layers"]
    assert 0.0 <= res["top1"] <= 1.0


def test_numpy_swapped_under_a_running_process_is_reported(monkeypatch):
    """The MobileNetV2 INT8 'BoolDType has no attribute bits' failure came from numpy being
    reinstalled while the process ran; quant refuses to start PaddleSlim in that state."""
    from importlib import metadata

    import numpy as np

    from ppnets.deploy import quant

    quant.check_numpy_unchanged()  # the test environment itself is consistent
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "0.0.0" if name == "numpy" else real(name))
    with pytest.raises(RuntimeError, match=f"numpy {np.__version__} is loaded .* numpy 0.0.0"):
        quant.check_numpy_unchanged()
    with pytest.raises(RuntimeError, match="environment changed"):
        quant.ptq("no.pdmodel", "no.pdiparams", "out", np.zeros((4, 3, 8, 8), np.float32), 4)


def test_int8_study_records_provenance_and_labels_from_fields(tmp_path):
    """The study as users run it: each per-model JSON says where, when and how it was made, and
    the table's schedule label and degenerate marking come from those fields."""
    data = require_shared(CIFAR_PARTIAL)
    out = tmp_path / "int8"
    proc = subprocess.run([sys.executable, "reproduce/int8_quantization.py", "--data-file", data,
                           "--models", "resnet20_cifar", "--epochs", "1", "--max-steps", "2",
                           "--qat-epochs", "0", "--calib-images", "16", "--output-dir",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((out / "resnet20_cifar.json").read_text())
    assert rec["run"]["command"].startswith("python reproduce/int8_quantization.py --data-file")
    assert "--one" not in rec["run"]["command"]
    assert rec["run"]["machine"]["cpu_model"] and rec["run"]["git"]["commit"]
    assert rec["run"]["finished_utc"] >= rec["run"]["started_utc"]
    assert rec["data"]["md5"] == "a6be1c163d03e78e6be75fa2398bd300"  # shared/data/README.md
    assert (rec["data"]["train_images"], rec["data"]["test_images"]) == (4829, 932)
    assert (rec["epochs"], rec["max_steps_per_epoch"], rec["steps_per_epoch"],
            rec["full_steps_per_epoch"]) == (1, 2, 2, 76)   # ceil(4829 / 64)
    spread = rec["fp32_predictions"]
    assert 1 <= spread["distinct_classes"] <= 10 and 0.1 <= spread["top_class_share"] <= 1.0
    assert rec["degenerate"] == (spread["distinct_classes"] == 1)
    md = (out / "int8_results.md").read_text()
    assert "| resnet20_cifar | 1 + 0 (2 of 76 steps/epoch) |" in md


def test_int8_table_labels():
    from ppnets.experiments import int8 as study

    base = {"model": "m", "epochs": 4, "qat_epochs": 1, "steps_per_epoch": 76,
            "full_steps_per_epoch": 76, "fp32_top1": 0.5, "degenerate": False,
            "ptq_deploy_per_channel": {"top1": 0.49, "delta_vs_fp32": -0.01}}
    assert "| m | 4 + 1 (full epochs, 76 steps each) | 50.0 | 49.0 (-1.0) |" in study.table([base])
    capped = dict(base, steps_per_epoch=40, max_steps_per_epoch=40)
    assert "(40 of 76 steps/epoch)" in study.table([capped])
    constant = dict(base, fp32_top1=0.104, degenerate=True)
    assert "degenerate (constant prediction): deltas meaningless" in study.table([constant])
    assert "10.4 (near chance)" not in study.table([constant])  # the row says degenerate instead
    assert "12.0 (near chance)" in study.table([dict(base, fp32_top1=0.12)])
    with pytest.raises(ValueError, match="predates the provenance fields"):
        study.table([{k: v for k, v in base.items() if k != "full_steps_per_epoch"}])
