"""ppnets.deploy.x86_int8: INT8 artifacts of an export folder (ONNX Runtime QDQ, PaddleSlim PTQ)
that run in ppnets.runtime and stay close to fp32, on a small model and on the real MobileNetV2
weights with real images."""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest

from tests.conftest import IMAGENET_SAMPLE, SHARED_DATA, TinyCNN, randomize_bn, require_shared

pytest.importorskip("onnxruntime", reason='needs onnxruntime (pip install "ppnets[onnx]")')

from ppnets.deploy import export  # noqa: E402
from ppnets.deploy.x86_int8 import eval_images, quantize_export  # noqa: E402
from ppnets.runtime import open_session  # noqa: E402

WEIGHTS = os.path.join(SHARED_DATA, "weights", "mobilenetv2_100.tv_qnnpack_dequant.safetensors")
SIZE = (3, 32, 32)


def _relative_l2(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def _outputs(session, x: np.ndarray) -> np.ndarray:
    return np.concatenate([session.run(x[i:i + 1])[0] for i in range(len(x))])


class BiasedCNN(TinyCNN):
    """TinyCNN whose convolutions carry a bias after the BN-ReLU stages, as deploy forms do (BN
    folded into the convolution)."""

    def __init__(self):
        super().__init__(widths=(16, 32))
        nn = paddle.nn
        self.head = nn.Sequential(nn.Conv2D(32, 32, 3, padding=1), nn.ReLU(),
                                  nn.Conv2D(32, 32, 1))

    def forward(self, x):
        return self.fc(paddle.reshape(self.pool(self.head(self.features(x))), [0, -1]))


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    paddle.seed(0)
    model = BiasedCNN()
    randomize_bn(model)
    out = str(tmp_path_factory.mktemp("int8") / "tiny")
    export(model, formats=("paddle", "onnx"), out_dir=out, input_size=SIZE,
           weights={"kind": "test", "note": "random weights, randomized BN"})
    return out


def test_quantize_export_writes_int8_artifacts_close_to_fp32(small_export):
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((16, *SIZE)).astype(np.float32)
    entry = quantize_export(small_export, list(calibration), {"kind": "random normal, test"})

    onnx_rec, paddle_rec = entry["targets"]["onnx"], entry["targets"]["paddle"]
    assert onnx_rec["status"] == "written", onnx_rec
    assert paddle_rec["status"] == "written", paddle_rec
    for rel in ("int8/onnx/model.onnx", "int8/paddle/model.pdmodel",
                "int8/paddle/model.pdiparams", "int8/calibration.json"):
        assert os.path.isfile(os.path.join(small_export, rel)), rel
    with open(os.path.join(small_export, "export.json")) as f:
        report = json.load(f)
    assert report["int8"] == entry and report["all_passed"]   # the fp32 entries are kept
    with open(os.path.join(small_export, "int8", "calibration.json")) as f:
        calib = json.load(f)
    assert calib["count"] == 16 and calib["source"] == {"kind": "random normal, test"}

    # each convolution bias reaches its addition unreshaped, so oneDNN fuses it (module doc)
    from ppnets.deploy.opcheck import program_ops
    assert paddle_rec["bias_reshapes_folded"] == 2
    legacy_ops = program_ops(os.path.join(small_export, "legacy", "model.pdmodel"))
    int8_ops = program_ops(os.path.join(small_export, paddle_rec["file"]))
    assert legacy_ops["reshape2"] - int8_ops.get("reshape2", 0) == 2

    import onnx
    ops = {n.op_type for n in onnx.load(os.path.join(small_export, onnx_rec["file"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops

    # images the calibration did not see, from the same distribution
    x = rng.standard_normal((8, *SIZE)).astype(np.float32)
    ref = _outputs(open_session(small_export, "onnxruntime"), x)
    for runtime in ("onnxruntime", "paddle_inference"):
        session = open_session(small_export, runtime, precision="int8")
        out = _outputs(session, x)
        assert out.shape == ref.shape
        assert _relative_l2(out, ref) < 0.1, runtime
        assert _relative_l2(out, ref) > 0.0, f"{runtime} int8 equals fp32: not quantized"


def test_a_missing_source_is_recorded_and_the_other_target_written(small_export, tmp_path):
    import shutil

    folder = str(tmp_path / "no_legacy")
    shutil.copytree(small_export, folder)
    shutil.rmtree(os.path.join(folder, "legacy"))
    # present only when the quantizing test ran first on this worker
    shutil.rmtree(os.path.join(folder, "int8"), ignore_errors=True)
    x = np.random.default_rng(1).standard_normal((4, *SIZE)).astype(np.float32)
    entry = quantize_export(folder, x, {"kind": "test"})
    assert entry["targets"]["onnx"]["status"] == "written"
    assert entry["targets"]["paddle"]["status"] == "not_run"
    assert "ppnets export" in entry["targets"]["paddle"]["reason"]


def test_bad_calibration_and_folders_say_what_to_do(small_export, tmp_path):
    with pytest.raises(ValueError, match=r"\[N, 3, 32, 32\]"):
        quantize_export(small_export, np.zeros((4, 3, 16, 16), np.float32), {}, ("onnx",))
    with pytest.raises(ValueError, match="unknown INT8 targets"):
        quantize_export(small_export, np.zeros((4, *SIZE), np.float32), {}, ("tensorrt",))
    with pytest.raises(FileNotFoundError, match="ppnets export"):
        quantize_export(str(tmp_path), np.zeros((4, *SIZE), np.float32), {})


# Real weights and images: calibrated on 10 images, the int8 model must predict like fp32 on
# 30 others. Measured: 29/30 agree, relative L2 0.08; calibrated on random noise instead,
# 2/30 agree and the difference is 0.25 -- the bounds fail a broken calibration.
MIN_AGREEMENT, MAX_RELATIVE_L2 = 0.8, 0.15


@pytest.fixture(scope="module")
def mobilenetv2_export(tmp_path_factory):
    require_shared(WEIGHTS)
    list_file = os.path.join(require_shared(IMAGENET_SAMPLE), "val_list.txt")
    import ppnets

    model = ppnets.create_model("mobilenetv2_100", pretrained=WEIGHTS)
    out = str(tmp_path_factory.mktemp("int8") / "mnv2")
    export(model, formats=("onnx",), out_dir=out, weights=model.loaded_weights.record())
    x, _, source = eval_images(out, list_file, limit=40)
    fp32 = _outputs(open_session(out, "onnxruntime"), x[10:])
    return out, x, source, fp32


def _int8_vs_fp32(folder: str, calibration: np.ndarray, x: np.ndarray, fp32: np.ndarray):
    entry = quantize_export(folder, calibration, {"kind": "test"}, targets=("onnx",))
    assert entry["targets"]["onnx"]["status"] == "written", entry
    out = _outputs(open_session(folder, "onnxruntime", precision="int8"), x)
    return float((out.argmax(1) == fp32.argmax(1)).mean()), _relative_l2(out, fp32)


def test_real_mobilenetv2_int8_predicts_like_fp32(mobilenetv2_export):
    folder, x, source, fp32 = mobilenetv2_export
    assert source["preprocessing"]["interpolation"] == "bicubic"   # the weights' eval transform
    agreement, diff = _int8_vs_fp32(folder, x[:10], x[10:], fp32)
    assert agreement >= MIN_AGREEMENT and diff <= MAX_RELATIVE_L2, (agreement, diff)


def test_the_bound_fails_a_broken_calibration(mobilenetv2_export):
    folder, x, _, fp32 = mobilenetv2_export
    noise = np.random.default_rng(0).standard_normal((10, *x.shape[1:])).astype(np.float32)
    agreement, diff = _int8_vs_fp32(folder, noise, x[10:], fp32)
    assert agreement < MIN_AGREEMENT and diff > MAX_RELATIVE_L2, (agreement, diff)
