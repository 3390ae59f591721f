"""``ppnets predict``: images (files, folders, lists) classified by a model exported on the fly or
an export folder, on every runtime, with the weights' eval preprocessing and class names
(ImageNet's, or a fine-tune's own), printed and written as JSON; clear errors."""
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
from ppnets.engine.data import DataUnavailableError, load_image
from ppnets.engine.predict import (collect_images, fixed_batch, predict_export, softmax,
                                   topk_records)
from ppnets.engine.transforms import eval_transform
from ppnets.runtime import open_session, runtime_status
from ppnets.weights.imagenet_classes import IMAGENET_CLASSES
from tests.conftest import IMAGENET_SAMPLE, SHARED_DATA, TinyCNN, require_shared, temporary_models

MNV2_WEIGHTS = os.path.join(SHARED_DATA, "weights",
                            "mobilenetv2_100.tv_qnnpack_dequant.safetensors")
TINY = "mobilenetv2_050"
CLASSES = ["cat", "dog", "fox"]


def _image(path, size=(40, 52), seed=0):
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_collect_images_from_files_folders_and_lists(tmp_path):
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    b = _image(tmp_path / "photos" / "sub" / "b.PNG")
    a = _image(tmp_path / "photos" / "a.jpg")
    (tmp_path / "photos" / "notes.md").write_text("not an image")
    single = _image(tmp_path / "single.jpeg")
    (tmp_path / "list.txt").write_text("# mine\nphotos/a.jpg 3\n\nsingle.jpeg\n")
    assert collect_images([str(tmp_path / "photos"), single, str(tmp_path / "list.txt")]) == [
        a, b, single, a, single]
    with pytest.raises(DataUnavailableError, match="does not exist"):
        collect_images([str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataUnavailableError, match="holds no image files"):
        collect_images([str(tmp_path / "empty")])


def test_topk_records_and_fixed_batch_padding():
    logits = np.array([[0.0, 3.0, 1.0], [2.0, 2.0, -1.0]], dtype=np.float32)
    recs = topk_records(logits, 2, CLASSES)
    assert [[r["index"] for r in row] for row in recs] == [[1, 2], [0, 1]]   # ties: lower first
    assert recs[0][0]["label"] == "dog" and recs[1][1]["label"] == "dog"
    np.testing.assert_allclose(recs[0][0]["prob"], softmax(logits)[0, 1])
    assert softmax(logits).sum(1) == pytest.approx([1, 1])
    assert topk_records(logits, 1)[0][0]["label"] is None

    seen = []

    def run(x):   # a program exported for exactly 4 images
        assert x.shape[0] == 4
        seen.append(x.copy())
        return x.reshape(4, -1).sum(1, keepdims=True)
    x = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    out = fixed_batch(run, 4)(x)
    np.testing.assert_array_equal(out[:, 0], x.sum(1))
    np.testing.assert_array_equal(seen[1][2:], np.repeat(x[-1:], 2, axis=0))   # padded


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    """A 3-class checkpoint as ``ppnets train`` leaves it: ``classes.json`` (the class folders)
    and ``config.yaml`` (its eval transform: 64 px, crop 1.0, bilinear) beside it."""
    run = tmp_path_factory.mktemp("ft") / "checkpoints"
    run.mkdir()
    paddle.seed(0)
    net = ppnets.create_model(TINY, num_classes=3)
    paddle.save(net.state_dict(), str(run / "best.pdparams"))
    (run / "classes.json").write_text(json.dumps({"class_names": CLASSES}))
    (run / "config.yaml").write_text(
        "data:\n  dataset: folder\n  image_size: 64\n  eval_crop_pct: 1.0\n"
        "  interpolation: bilinear\n  mean: null\n  std: null\n")
    return str(run / "best.pdparams"), net


def test_a_finetune_predicts_with_its_class_names_and_json(finetune_run, tmp_path, monkeypatch,
                                                            capsys):
    weights, net = finetune_run
    monkeypatch.setenv("PPNETS_HOME", str(tmp_path / "home"))
    images = [_image(tmp_path / f"{i}.jpg", (50 + 9 * i, 70), seed=i) for i in range(3)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "preds.json"
    rc = main(["predict", images[0], str(broken), *images[1:], "--model", TINY, "--pretrained",
               weights, "--num-classes", "3", "--topk", "2", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 1, captured.err   # one image could not be read
    records = json.loads(out.read_text())
    assert [r["path"] for r in records] == [images[0], str(broken), *images[1:]]
    assert records[1]["topk"] == [] and "unreadable image" in records[1]["error"]
    assert f"{broken}: error: unreadable image" in captured.out
    good = [records[i] for i in (0, 2, 3)]
    assert all(set(r) == {"path", "topk"} and len(r["topk"]) == 2 for r in good)
    assert all(set(t) == {"index", "label", "prob"} for r in good for t in r["topk"])

    # the dygraph model on the run's own eval transform gives the same classes and probabilities
    net.eval()
    x = np.stack([eval_transform(64, 1.0, "bilinear")(Image.open(p).convert("RGB"))
                  for p in images])
    with paddle.no_grad():
        probs = softmax(net(paddle.to_tensor(x)).numpy())
    for rec, p in zip(good, probs):
        top = np.argsort(-p)[:2]
        assert [t["index"] for t in rec["topk"]] == list(top)
        assert [t["label"] for t in rec["topk"]] == [CLASSES[i] for i in top]
        np.testing.assert_allclose([t["prob"] for t in rec["topk"]], p[top], atol=1e-5)
    assert f"  1. {100 * probs[0].max():6.2f}%  {CLASSES[int(probs[0].argmax())]}" in captured.out

    # the export it made records the names and the preprocessing, and is reused from the cache
    export_dir = cached_export(TINY, weights, num_classes=3)
    report = json.loads(open(os.path.join(export_dir, "export.json")).read())
    assert report["class_names"] == CLASSES and report["preprocessing"]["input_size"] == 64
    assert report["preprocessing"]["crop_pct"] == 1.0
    assert report["preprocessing"]["interpolation"] == "bilinear"
    assert main(["predict", images[0], "--export", export_dir, "--runtime", "onnxruntime",
                 "--topk", "1"]) == 0
    assert CLASSES[int(probs[0].argmax())] in capsys.readouterr().out


def test_a_model_trained_on_class_folders_predicts_with_its_folder_names(tmp_path, monkeypatch):
    """``ppnets train`` records the class folders beside its checkpoints; the export of its
    checkpoint carries them and predict prints them."""
    from ppnets.engine import fit

    monkeypatch.setenv("PPNETS_HOME", str(tmp_path / "home"))
    for c, name in enumerate(("zebra", "apple", "moon")):   # sorted: apple, moon, zebra
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(2):
            _image(tmp_path / "train" / name / f"{i}.jpg", (36, 36), seed=3 * c + i)
    with temporary_models("test_predict", TinyCNN, {"test_predict_tiny": {"cfg": {}}}):
        fit({"model": {"name": "test_predict_tiny"},
             "data": {"dataset": "folder", "train_dir": str(tmp_path / "train"),
                      "val_dir": str(tmp_path / "train"), "image_size": 32, "batch_size": 6,
                      "num_workers": 0, "mean": None, "std": None},
             "optim": {"name": "sgd", "lr": 0.01}, "sched": {"name": "constant"},
             "train": {"epochs": 1, "seed": 0, "verbose": 0},
             "output_dir": str(tmp_path / "run")})
        weights = str(tmp_path / "run" / "checkpoints" / "best.pdparams")
        export_dir = cached_export("test_predict_tiny", weights, num_classes=3)
        records, _ = predict_export(export_dir, [str(tmp_path / "train" / "moon" / "0.jpg")],
                                    "paddle_inference", topk=3)
    report = json.loads(open(os.path.join(export_dir, "export.json")).read())
    assert report["class_names"] == ["apple", "moon", "zebra"]
    assert report["preprocessing"]["input_size"] == 32   # the run's image size
    assert sorted(t["label"] for t in records[0].topk) == ["apple", "moon", "zebra"]


def test_an_export_without_class_names_prints_indices(tmp_path, capsys):
    """A checkpoint with 3 classes and no run beside it: no names, the index only."""
    paddle.seed(1)
    net = ppnets.create_model(TINY, num_classes=3)
    out = str(tmp_path / "export")
    export(net, formats=("onnx",), out_dir=out, input_size=(3, 64, 64),
                         weights={"kind": "file", "path": str(tmp_path / "w.pdparams"),
                                  "sha256": "0"})
    report = json.loads(open(os.path.join(out, "export.json")).read())
    assert report["class_names"] is None and report["preprocessing"]["input_size"] == 64
    image = _image(tmp_path / "a.jpg", (64, 64))
    records, info = predict_export(out, [image], "onnxruntime", topk=3)
    assert [t["label"] for t in records[0].topk] == [None] * 3
    assert info["session"]["runtime"] == "onnxruntime"
    assert main(["predict", image, "--export", out, "--topk", "1"]) == 0
    assert "class " in capsys.readouterr().out


def test_errors_say_what_to_do(tmp_path, capsys):
    image = _image(tmp_path / "a.jpg")
    with pytest.raises(SystemExit) as exc:   # neither a model nor an export folder
        main(["predict", image])
    assert exc.value.code == 2
    assert "one of the arguments --model --export" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["predict", image, "--model", TINY, "--runtime", "tensorrt"])
    assert exc.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        open_session(str(tmp_path), "tensorrt")
    assert main(["predict", image, "--export", str(tmp_path)]) == 2
    assert "is not an export folder (no export.json)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing"), "--model", TINY]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", image, "--model", "no_such_net"]) == 2
    assert "error:" in capsys.readouterr().err


# ------------------------------------------------------------------ real weights, real images
@pytest.fixture(scope="module")
def mnv2_export(tmp_path_factory):
    """The real MobileNetV2 weights exported at batch 8 into a cache shared by this session's
    modules (tests/engine/test_evaluate_runtime.py finds it made)."""
    require_shared(MNV2_WEIGHTS)
    require_shared(IMAGENET_SAMPLE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PPNETS_HOME", str(tmp_path_factory.getbasetemp() / "ppnets_home"))
        yield cached_export("mobilenetv2_100", MNV2_WEIGHTS, batch_size=8)


def _sample_images(n):
    with open(os.path.join(IMAGENET_SAMPLE, "val_list.txt")) as f:
        return [os.path.join(IMAGENET_SAMPLE, line.split()[0]) for line in f][:n]


def test_real_weights_give_the_same_top5_on_every_runtime_and_in_dygraph(mnv2_export):
    images = _sample_images(5)
    installed = [r for r in ("paddle_inference", "onnxruntime", "openvino")
                 if runtime_status()[r]["available"]]
    tops = {}
    for runtime in installed:
        records, info = predict_export(mnv2_export, images, runtime, threads=1, topk=5)
        assert info["class_names_source"] == "imagenet-1k"
        tops[runtime] = [[t["index"] for t in r.topk] for r in records]
        labels = [[t["label"] for t in r.topk] for r in records]
    missing = sorted({"paddle_inference", "onnxruntime", "openvino"} - set(installed))

    net = ppnets.create_model("mobilenetv2_100", pretrained=MNV2_WEIGHTS)
    net.eval()
    transform = eval_transform(224, 0.875, "bicubic")   # timm's mobilenetv2_100 transform
    x = np.stack([transform(load_image(p)) for p in images])
    with paddle.no_grad():
        logits = net(paddle.to_tensor(x)).numpy()
    dygraph = np.argsort(-logits, axis=1, kind="stable")[:, :5].tolist()
    for runtime, top in tops.items():
        assert top == dygraph, f"{runtime} top-5 differs from dygraph"
    assert labels[0][0] == IMAGENET_CLASSES[dygraph[0][0]]
    if missing:
        pytest.skip(f"checked {installed}; not installed here: {missing}")
