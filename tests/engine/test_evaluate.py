"""reproduce/evaluate.py: the command line on a folder tree, and parity with timm's evaluation of
the same weights on the 400 real validation images (torch in a subprocess)."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from tests.conftest import IMAGENET_SAMPLE, REPO, require_shared

EVALUATE = os.path.join(REPO, "reproduce", "evaluate.py")
TIMM_EVAL = os.path.join(REPO, "tests", "parity", "timm_eval_reference.py")
PARITY_MODEL = "mobilenetv3_small_100"   # small and with bicubic resizing: a sharper check


def _evaluate_module():
    spec = importlib.util.spec_from_file_location("ppnets_reproduce_evaluate", EVALUATE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_on_a_folder_tree_writes_json_with_run_record(tmp_path, capsys):
    import ppnets

    rng = np.random.RandomState(0)
    for c, wnid in enumerate(("n01440764", "n01443537", "n01484850")):
        d = tmp_path / "imagenet" / "val" / wnid
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.randint(0, 256, (50 + 7 * i, 40, 3), dtype=np.uint8)).save(
                d / f"ILSVRC2012_val_{c}{i}.JPEG")
    paddle.seed(0)
    net = ppnets.create_model(PARITY_MODEL, num_classes=3)
    weights = tmp_path / "w.pdparams"
    paddle.save(net.state_dict(), str(weights))
    out = tmp_path / "res" / "eval.json"
    logits_file = tmp_path / "logits.npz"
    mod = _evaluate_module()
    rc = mod.main(["--model", PARITY_MODEL, "--pretrained", str(weights), "--data-dir",
                   str(tmp_path / "imagenet"), "--num-classes", "3", "--input-size", "64",
                   "--crop-pct", "0.9", "--batch-size", "4", "--num-workers", "0",
                   "--limit", "8", "--json", str(out), "--save-logits", str(logits_file)])
    assert rc == 0
    assert "top-1" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["num_images"] == 8 and res["data"]["classes"] == 3
    assert res["preprocessing"]["resize_shorter_to"] == 71   # floor(64 / 0.9)
    assert res["preprocessing"]["interpolation"] == "bicubic"
    assert res["run"]["script"] == "reproduce/evaluate.py" and res["run"]["finished_utc"]
    assert "--limit 8" in res["run"]["command"]
    assert res["pretrained_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    saved = np.load(logits_file)
    assert saved["logits"].shape == (8, 3)
    np.testing.assert_array_equal(saved["labels"], [0, 0, 0, 1, 1, 1, 2, 2])
    top1 = (saved["logits"].argmax(1) == saved["labels"]).mean()
    assert res["top1"] == pytest.approx(top1) and res["top5"] == 1.0   # 3 classes < 5

    # the logits are the model's on our preprocessing of each image
    from ppnets.engine.data import ImageListDataset
    from ppnets.engine.transforms import eval_transform
    ds = ImageListDataset.from_folder(str(tmp_path / "imagenet" / "val"),
                                      eval_transform(64, 0.9, "bicubic"))
    net.eval()
    x = paddle.to_tensor(np.stack([ds[i][0] for i in range(8)]))
    np.testing.assert_allclose(saved["logits"], net(x).numpy(), rtol=1e-4, atol=1e-4)

    # the same 3-class weights evaluated as a 1000-class model: create_model would keep a fresh
    # classifier (fine-tuning); the evaluation refuses and says which --num-classes fits
    with pytest.raises(SystemExit, match="has a classifier for 3 classes, not 1000: pass "
                                         "--num-classes 3"):
        mod.main(["--model", PARITY_MODEL, "--pretrained", str(weights), "--data-dir",
                  str(tmp_path / "imagenet"), "--num-workers", "0", "--limit", "2"])


def _torch_reference(cache_dir, root):
    """timm's evaluation of a random-weight model on the sample (cached per script/library)."""
    probe = subprocess.run([sys.executable, "-c", "import timm, torch, torchvision; "
                            "print(timm.__version__, torch.__version__)"],
                           capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if probe.returncode != 0:
        pytest.skip("evaluation parity needs torch and timm in this interpreter "
                    f"(pip install -e '.[parity]'): {probe.stderr.strip().splitlines()[-1:]}")
    with open(TIMM_EVAL, "rb") as f:
        digest = hashlib.sha1(f.read() + probe.stdout.encode()).hexdigest()[:12]
    out = os.path.join(cache_dir, f"{PARITY_MODEL}-{digest}")
    if not os.path.isfile(os.path.join(out, "reference.json")):
        cmd = [sys.executable, TIMM_EVAL, "--model", PARITY_MODEL,
               "--list", os.path.join(root, "val_list.txt"), "--root", root, "--out", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                              env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_parity_with_timm_evaluation_on_real_images(tmp_path, request):
    import ppnets
    from ppnets.engine.data import load_image
    from ppnets.engine.transforms import model_eval_transform

    root = require_shared(IMAGENET_SAMPLE)
    ref_dir = _torch_reference(str(request.config.cache.mkdir("ppnets_eval_parity")), root)
    ref_info = json.loads(open(os.path.join(ref_dir, "reference.json")).read())
    ref = np.load(os.path.join(ref_dir, "reference.npz"))

    # timm's resolved pretrained config of the model is the one our registry gives
    info = ppnets.model_info(PARITY_MODEL)
    timm_cfg = ref_info["resolved_data_config"]
    assert timm_cfg["crop_mode"] == "center"
    assert tuple(timm_cfg["input_size"]) == tuple(info["input_size"])
    assert timm_cfg["crop_pct"] == info["crop_pct"]
    assert timm_cfg["interpolation"] == info["interpolation"]
    np.testing.assert_allclose(timm_cfg["mean"], info["mean"])
    np.testing.assert_allclose(timm_cfg["std"], info["std"])

    # same preprocessed tensors (PIL decode and resize on both sides)
    paths = [line.split()[0] for line in open(os.path.join(root, "val_list.txt")) if line.strip()]
    transform = model_eval_transform(PARITY_MODEL)
    ours = np.stack([transform(load_image(os.path.join(root, p)))
                     for p in paths[:len(ref["inputs"])]])
    assert ours.shape == ref["inputs"].shape
    assert float(np.abs(ours - ref["inputs"]).max()) <= 1e-6

    # our evaluate on the converted weights
    out = tmp_path / "eval.json"
    logits_file = tmp_path / "logits.npz"
    cmd = [sys.executable, EVALUATE, "--model", PARITY_MODEL,
           "--pretrained", os.path.join(ref_dir, "weights.safetensors"),
           "--list", os.path.join(root, "val_list.txt"), "--root", root, "--batch-size", "50",
           "--num-workers", "2", "--json", str(out), "--save-logits", str(logits_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    got = np.load(logits_file)
    assert res["num_images"] == ref_info["num_images"] == 400
    np.testing.assert_array_equal(got["labels"], ref["labels"])
    assert abs(res["top1"] - ref_info["top1"]) * 100 <= 0.5
    assert abs(res["top5"] - ref_info["top5"]) * 100 <= 0.5
    # per image: same prediction, same logits up to float32 summation order
    scale = float(np.abs(ref["logits"]).max())
    assert float(np.abs(got["logits"] - ref["logits"]).max()) <= 1e-4 * scale + 1e-4
    assert (got["logits"].argmax(1) == ref["logits"].argmax(1)).mean() >= 0.99
