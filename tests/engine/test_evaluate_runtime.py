"""Evaluation on a runtime: ``evaluate_export`` runs an export folder (its fixed batch padded) on
the same images with the same preprocessing as the dygraph evaluation and gives the same
predictions; ``ppnets eval --runtime`` reports both; a run's checkpoint is evaluated with the
run's own eval transform."""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
from PIL import Image

import ppnets
from ppnets.cli.main import main
from ppnets.deploy import export
from ppnets.deploy.cache import cached_export
from ppnets.engine.evaluate import evaluate, evaluate_export, weights_preprocessing
from tests.conftest import IMAGENET_SAMPLE, SHARED_DATA, require_shared

MODEL = "mobilenetv2_050"
MNV2_WEIGHTS = os.path.join(SHARED_DATA, "weights",
                            "mobilenetv2_100.tv_qnnpack_dequant.safetensors")


def _folder_tree(root, per_class=3, classes=("a", "b")):
    rng = np.random.RandomState(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.randint(0, 256, (60 + 5 * i, 48, 3), dtype=np.uint8)).save(
                root / c / f"{i}.jpg")
    return str(root)


def test_evaluate_export_matches_dygraph_with_a_padded_last_batch(tmp_path):
    data = _folder_tree(tmp_path / "val")
    paddle.seed(3)
    net = ppnets.create_model(MODEL, num_classes=2)
    weights = str(tmp_path / "w.pdparams")
    paddle.save(net.state_dict(), weights)
    out = str(tmp_path / "export")
    export(ppnets.create_model(MODEL, num_classes=2, pretrained=weights), formats=("onnx",),
           out_dir=out, input_size=(3, 64, 64), batch_size=4,
           weights={"kind": "file", "path": weights, "sha256": "x"})
    rt = evaluate_export(out, "onnxruntime", data_dir=data, num_workers=0, keep_logits=True)
    dy = evaluate(MODEL, weights, data_dir=data, batch_size=4, num_workers=0, num_classes=2,
                  input_size=64, keep_logits=True)
    assert rt["num_images"] == dy["num_images"] == 6   # 4 + 2 padded to 4
    assert rt["batch_size"] == 4 and rt["check"]["status"] == "passed"
    assert rt["preprocessing"] == dy["preprocessing"]
    np.testing.assert_allclose(rt["logits"], dy["logits"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(rt["labels"], dy["labels"])
    assert rt["top1"] == dy["top1"] and rt["session"]["runtime"] == "onnxruntime"


def test_a_runs_checkpoint_is_evaluated_with_the_runs_eval_transform(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "best.pdparams").write_bytes(b"")
    (ckpt / "config.yaml").write_text("data:\n  dataset: folder\n  image_size: 160\n"
                                      "  eval_crop_pct: 0.95\n  interpolation: null\n"
                                      "  mean: [0.5, 0.5, 0.5]\n  std: null\n")
    pre, weight = weights_preprocessing(MODEL, str(ckpt / "best.pdparams"))
    assert weight is None
    assert (pre["input_size"], pre["crop_pct"], pre["mean"]) == (160, 0.95, (0.5, 0.5, 0.5))
    model = ppnets.model_info(MODEL)
    assert pre["interpolation"] == model.get("interpolation", "bilinear")
    (ckpt / "config.yaml").write_text("data:\n  dataset: cifar10\n  image_size: 32\n")
    assert weights_preprocessing(MODEL, str(ckpt / "best.pdparams"))[0]["input_size"] == 224


def test_eval_runtime_options_errors(tmp_path, capsys):
    data = _folder_tree(tmp_path / "val", per_class=1)
    assert main(["eval", "--model", MODEL, "--data-dir", data]) == 2
    assert "--model needs --pretrained" in capsys.readouterr().err
    assert main(["eval", "--model", MODEL, "--pretrained", "w", "--data-dir", data,
                 "--no-dygraph"]) == 2
    assert "add --runtime" in capsys.readouterr().err
    assert main(["eval", "--export", str(tmp_path), "--data-dir", data]) == 2
    assert "not an export folder" in capsys.readouterr().err


def test_eval_on_the_runtime_gives_the_dygraph_top1_on_real_images(tmp_path, tmp_path_factory,
                                                                  monkeypatch, capsys):
    """The real MobileNetV2 weights on 40 sample images: one report, same top-1 and the same
    predicted class for every image. The export is the cached one tests/cli/test_predict.py
    made in this session (batch 8), or made here."""
    require_shared(MNV2_WEIGHTS)
    require_shared(IMAGENET_SAMPLE)
    monkeypatch.setenv("PPNETS_HOME", str(tmp_path_factory.getbasetemp() / "ppnets_home"))
    export_dir = cached_export("mobilenetv2_100", MNV2_WEIGHTS, batch_size=8)
    out = tmp_path / "eval.json"
    runtime = "openvino" if ppnets.runtime.runtime_status()["openvino"]["available"] \
        else "paddle_inference"
    assert main(["eval", "--export", export_dir, "--list",
                 os.path.join(IMAGENET_SAMPLE, "val_list.txt"), "--limit", "40",
                 "--batch-size", "8", "--num-workers", "1", "--runtime", runtime,
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rt, dy, cmp = report["runtime"], report["dygraph"], report["comparison"]
    assert rt["num_images"] == dy["num_images"] == 40
    assert rt["top1"] == dy["top1"] and rt["top5"] == dy["top5"]
    assert cmp["same_top1_prediction"] == 1.0
    assert rt["check"]["status"] == "passed" and rt["precision"] == "fp32"
    assert rt["preprocessing"]["interpolation"] == "bicubic"   # the weights' (timm's)
    printed = capsys.readouterr().out
    assert f"{runtime} fp32: top-1 {100 * rt['top1']:.2f}%" in printed
    assert "same top-1 class as dygraph on 100.00% of the images" in printed


@pytest.mark.slow
def test_int8_eval_calibrates_on_the_first_images_and_reports_the_others(tmp_path, monkeypatch):
    """``--precision int8`` on an export without INT8 artifacts quantizes it, calibrated on the
    first 100 sample images, and gives top-1 on the 40 after them, for the runtime and dygraph."""
    require_shared(MNV2_WEIGHTS)
    require_shared(IMAGENET_SAMPLE)
    monkeypatch.setenv("PPNETS_HOME", str(tmp_path / "home"))
    out = tmp_path / "int8.json"
    assert main(["eval", "--model", "mobilenetv2_100", "--pretrained", MNV2_WEIGHTS, "--list",
                 os.path.join(IMAGENET_SAMPLE, "val_list.txt"), "--limit", "140",
                 "--batch-size", "20", "--runtime", "onnxruntime", "--precision", "int8",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    cmp, rt = report["comparison"], report["runtime"]
    assert rt["precision"] == "int8" and rt["check"]["status"] == "approximate"
    assert cmp["calibration_images"] == 100 and cmp["calibration_images_used"] == 100
    assert report["calibration"]["source"]["images"][0] == "val/ILSVRC2012_val_00000347.JPEG"
    after = cmp["after_calibration"]
    assert after["runtime"]["num_images"] == after["dygraph"]["num_images"] == 40
    assert abs(after["runtime"]["top1"] - after["dygraph"]["top1"]) <= 0.1   # 4 of 40 images
    assert cmp["same_top1_prediction"] >= 0.9
