"""``create_model(name, num_classes=N, pretrained=PATH)``: a checkpoint file loads as published
weights do -- with another class count, everything but the classifier (one log line says so);
any other difference fails, saying what does not fit and nothing about options no command has.
Fine-tuning from a local file (``ppnets train -o model.pretrained=PATH``) is the use."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import paddle
import pytest
from PIL import Image

import ppnets
from ppnets.cli.main import main
from tests.conftest import REPO, SHARED_DATA, require_shared

REAL = os.path.join(SHARED_DATA, "weights", "mobilenetv2_100.tv_qnnpack_dequant.safetensors")
HEAD = ["head.fc.bias", "head.fc.weight"]


def _state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _assert_backbone_equal(model, reference):
    ours, theirs = _state(model), _state(reference)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if key not in HEAD:
            np.testing.assert_array_equal(ours[key], value, err_msg=key)


@pytest.fixture(scope="module")
def imagenet_checkpoint(tmp_path_factory):
    """A 1000-class mobilenetv2_050 state dict (.pdparams) with non-trivial values."""
    paddle.seed(3)
    model = ppnets.create_model("mobilenetv2_050")
    path = str(tmp_path_factory.mktemp("ckpt") / "mobilenetv2_050_in1k.pdparams")
    paddle.save(model.state_dict(), path)
    return path


def test_a_checkpoint_for_another_class_count_loads_all_but_the_classifier(
        imagenet_checkpoint, caplog):
    full = ppnets.create_model("mobilenetv2_050", pretrained=imagenet_checkpoint)
    assert full.loaded_weights.classifier_kept == []
    paddle.seed(0)
    fresh_head = _state(ppnets.create_model("mobilenetv2_050", num_classes=3))
    paddle.seed(0)
    with caplog.at_level(logging.WARNING, logger="ppnets"):
        model = ppnets.create_model("mobilenetv2_050", num_classes=3,
                                    pretrained=imagenet_checkpoint)
    lines = [r.getMessage() for r in caplog.records if "classifier" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "loaded everything but the classifier (head.fc.bias, head.fc.weight)" in lines[0]
    assert "for 1000 classes" in lines[0] and "this model has 3 classes" in lines[0]
    assert model.loaded_weights.classifier_kept == HEAD
    assert model.loaded_weights.source_classes == 1000
    _assert_backbone_equal(model, full)
    for key in HEAD:   # the new classifier is the model's own initialisation
        np.testing.assert_array_equal(_state(model)[key], fresh_head[key])


def test_a_reference_layout_file_for_another_class_count(reference_files):
    path = reference_files["fasternet_t0"]   # timm's layout, 1000 classes
    model = ppnets.create_model("fasternet_t0", num_classes=5, pretrained=path)
    assert _state(model)["head.fc.weight"].shape == (1280, 5)
    _assert_backbone_equal(model, ppnets.create_model("fasternet_t0", pretrained=path))


def test_anything_else_that_does_not_fit_fails_clearly(imagenet_checkpoint, tmp_path):
    state = paddle.load(imagenet_checkpoint)
    key = next(k for k in state if k.endswith(".weight") and len(state[k].shape) == 4)
    state[key] = paddle.zeros([1, *state[key].shape[1:]])
    del state[next(k for k in state if k.endswith("_mean"))]
    bad = str(tmp_path / "bad.pdparams")
    paddle.save(state, bad)
    with pytest.raises(ValueError) as err:
        ppnets.create_model("mobilenetv2_050", num_classes=3, pretrained=bad)
    message = str(err.value)
    assert "does not fit mobilenetv2_050" in message and "only the classifier may differ" in \
        message
    assert f"shape mismatch {key}" in message and "missing in checkpoint (1)" in message
    assert "head.fc" not in message and "strict" not in message.lower()
    with pytest.raises(ValueError, match="does not fit mobilenetv2_100"):
        ppnets.create_model("mobilenetv2_100", num_classes=3, pretrained=imagenet_checkpoint)


def test_the_real_imagenet_weights_into_a_two_class_model():
    path = require_shared(REAL)
    model = ppnets.create_model("mobilenetv2_100", num_classes=2, pretrained=path)
    assert model.loaded_weights.classifier_kept == HEAD
    assert _state(model)["head.fc.weight"].shape == (1280, 2)
    _assert_backbone_equal(model, ppnets.create_model("mobilenetv2_100", pretrained=path))


@pytest.fixture(scope="module")
def two_class_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_classes")
    rng = np.random.RandomState(0)
    for cls in ("cat", "dog"):
        os.makedirs(root / cls)
        for i in range(6):
            Image.fromarray(rng.randint(0, 256, (40, 40, 3)).astype("uint8")).save(
                root / cls / f"{i}.png")
    return str(root)


@pytest.mark.parametrize("weights", ["generated", "real"])
def test_train_fine_tunes_from_a_local_imagenet_file(weights, imagenet_checkpoint,
                                                     two_class_folder, tmp_path, caplog):
    """The README's fine-tuning command with ``model.pretrained=<file>`` and 2 classes."""
    name, path = (("mobilenetv2_050", imagenet_checkpoint) if weights == "generated" else
                  ("mobilenetv2_100", require_shared(REAL)))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="ppnets"):
        rc = main(["train", "-c", os.path.join(REPO, "configs", "finetune", "full.yaml"),
                   "-o", f"model.name={name}", "-o", f"model.pretrained={path}",
                   "-o", f"data.train_dir={two_class_folder}", "-o", "data.image_size=32",
                   "-o", "data.batch_size=4", "-o", "data.num_workers=0",
                   "-o", "train.epochs=1", "-o", "train.max_steps_per_epoch=2",
                   "-o", "train.max_eval_steps=1", "-o", "train.verbose=0",
                   "-o", "export.formats=[]", "--output-dir", str(out)])
    assert rc == 0
    assert "loaded everything but the classifier" in caplog.text
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 1
