"""Fine-tuning a pretrained backbone on your own images, the short path of the README:
``ppnets train -c configs/finetune/... -o model.name=... -o data.train_dir=...`` with the weights
from the (loopback) hub, a dataset of class sub-folders, the best checkpoint exported at the
end; plus the controls it uses (frozen parts, layer-wise learning rates)."""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
from PIL import Image

import ppnets
from ppnets.cli.main import main
from ppnets.engine import load_config
from ppnets.engine.data import build_folder
from ppnets.engine.finetune import apply_layer_decay, freeze, layer_ids
from tests.conftest import IMAGENET_SAMPLE, REPO, require_shared


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes made of the 400 real ImageNet validation JPEGs: half kept in colour, the
    other half turned grey -- a regrouping any network can learn from a few epochs, so a run
    that does not beat chance is broken."""
    root = require_shared(IMAGENET_SAMPLE)
    files = sorted(os.listdir(os.path.join(root, "val")))
    out = tmp_path_factory.mktemp("my_images")
    for i, name in enumerate(files):
        cls = "colour" if i % 2 == 0 else "grey"
        os.makedirs(out / cls, exist_ok=True)
        img = Image.open(os.path.join(root, "val", name)).convert("RGB").resize((72, 72))
        if cls == "grey":
            img = img.convert("L").convert("RGB")
        img.save(out / cls / name, quality=90)
    return str(out)


def test_folder_dataset_classes_and_held_out_split(image_folder):
    cfg = load_config(os.path.join(REPO, "configs", "finetune", "full.yaml"),
                      ["model.name=fasternet_t0", f"data.train_dir={image_folder}",
                       "data.image_size=64"])
    train, val, num_classes = build_folder(cfg["data"], "fasternet_t0", seed=0)
    assert num_classes == 2 and train.classes == ["colour", "grey"]
    assert len(train) + len(val) == 400 and abs(len(val) - 40) <= 2
    assert not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    x, y = train[0]
    assert x.shape == (3, 64, 64) and x.dtype == np.float32 and y in (0, 1)


def test_full_finetune_from_the_hub_beats_chance_and_exports(hub, image_folder,
                                                            tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "-c", os.path.join(REPO, "configs", "finetune", "full.yaml"),
               "-o", "model.name=fasternet_t0", "-o", f"data.train_dir={image_folder}",
               "-o", "data.image_size=64", "-o", "data.batch_size=16", "-o", "train.epochs=3",
               "-o", "data.num_workers=0", "-o", "train.verbose=0", "--output-dir", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    n_val = 40
    # chance is 0.5; three binomial standard deviations above it on the held-out images
    assert res["best_top1"] > 0.5 + 3 * (0.25 / n_val) ** 0.5, res["best_top1"]
    report = json.loads((out / "export" / "export.json").read_text())
    assert report["all_passed"] and report["input_size"] == [3, 64, 64]
    assert os.path.exists(out / "checkpoints" / "best.pdparams")
    assert os.listdir(out / "vdl")   # VisualDL logs


def test_linear_probe_changes_only_the_classifier(hub):
    model = ppnets.create_model("fasternet_t0", num_classes=3, pretrained=True)
    frozen = freeze(model, "backbone")
    assert frozen and not any(n.startswith("head.fc.") for n in frozen)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    opt = paddle.optimizer.SGD(0.5, parameters=[p for p in model.parameters()
                                                if not p.stop_gradient])
    model.train()
    x = paddle.randn([4, 3, 64, 64])
    loss = paddle.nn.functional.cross_entropy(model(x), paddle.to_tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = {k: v.numpy() for k, v in model.state_dict().items()}
    changed = sorted(k for k in after if not np.array_equal(after[k], before[k]))
    assert changed == ["head.fc.bias", "head.fc.weight"], changed   # BN statistics included


def test_freeze_names_and_layer_decay():
    model = ppnets.create_model("repvgg_a0", num_classes=5)
    with pytest.raises(ValueError, match="top-level parts are"):
        freeze(model, ["stages.9"])
    assert freeze(model, ["stem", "stages.0"])
    ids = layer_ids(model)
    assert ids["stem.conv_kxk.0.conv.weight"] == 0 and ids["head.fc.weight"] == 5
    assert ids["stages.3.0.conv_kxk.0.conv.weight"] == 4
    scales = apply_layer_decay(model, 0.5)
    assert scales["head.fc.weight"] == 1.0 and scales["stem.conv_kxk.0.conv.weight"] == 0.5 ** 5
    params = dict(model.named_parameters())
    assert params["stages.0.0.conv_kxk.0.conv.weight"].optimize_attr["learning_rate"] == 0.5 ** 4
