"""ImageNet pipeline: folder and list data sets, timm's evaluation geometry, training
augmentation (random resized crop, RandAugment, random erasing), Mixup/CutMix soft targets and
their loss, and ``fit`` on the real validation sample with ``data.dataset: imagenet``."""
from __future__ import annotations

import math
import os
import random
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from PIL import Image

from tests.conftest import IMAGENET_SAMPLE, require_shared

from ppnets.engine.augment import RandAugment, RandomErasing
from ppnets.engine.data import ImageListDataset, read_image_list, scan_image_folder
from ppnets.engine.transforms import (CenterCrop, RandomResizedCrop, ResizeShorter,
                                      eval_transform, model_eval_transform, train_transform)
from ppnets.engine.augment import MixupCutmixCollate, SoftTargetCrossEntropy, smooth_one_hot


def _img(w, h, seed=0):
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8))


def _tree(root, layout):
    for split, classes in layout.items():
        for cls, n in classes.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                _img(40, 30, seed=i).save(d / f"{cls}_{i}.JPEG")
    return root


# ---- data sets -------------------------------------------------------------------------------
def test_folder_layout_classes_sorted_by_wnid(tmp_path):
    _tree(tmp_path, {"val": {"n02": 2, "n01": 1, "n10": 1}})
    (tmp_path / "val" / "n01" / "notes.txt").write_text("not an image")
    samples, classes = scan_image_folder(str(tmp_path / "val"))
    assert classes == ["n01", "n02", "n10"]
    assert [(os.path.basename(p), y) for p, y in samples] == [
        ("n01_0.JPEG", 0), ("n02_0.JPEG", 1), ("n02_1.JPEG", 1), ("n10_0.JPEG", 2)]
    ds = ImageListDataset.from_folder(str(tmp_path / "val"), eval_transform(16, 1.0))
    x, y = ds[3]
    assert x.shape == (3, 16, 16) and x.dtype == np.float32 and y == 2


def test_list_file_format_and_errors(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "list.txt").write_text("# comment\nsub dir/a b.jpg 7\n\nc.jpg 0\n")
    assert read_image_list(str(tmp_path / "list.txt"), "/data") == [
        ("/data/sub dir/a b.jpg", 7), ("/data/c.jpg", 0)]
    assert read_image_list(str(tmp_path / "list.txt"))[1] == (str(tmp_path / "c.jpg"), 0)
    (tmp_path / "bad.txt").write_text("a.jpg seven\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_image_list(str(tmp_path / "bad.txt"))


def test_real_validation_sample_list():
    root = require_shared(IMAGENET_SAMPLE)
    samples = read_image_list(os.path.join(root, "val_list.txt"), root)
    assert len(samples) == 400
    assert all(os.path.isfile(p) for p, _ in samples)
    labels = [y for _, y in samples]
    assert min(labels) >= 0 and max(labels) <= 999 and len(set(labels)) == 325
    ds = ImageListDataset(samples[:2], model_eval_transform("mobilenetv3_small_100"))
    x, _ = ds[0]
    assert x.shape == (3, 224, 224)


# ---- evaluation geometry -----------------------------------------------------------------------
def test_resize_shorter_and_center_crop_follow_torchvision_rounding():
    # 300x200 -> shorter side 256: long side int(256 * 300 / 200) = 384
    assert ResizeShorter(256)(_img(300, 200)).size == (384, 256)
    assert ResizeShorter(256)(_img(200, 333)).size == (256, int(256 * 333 / 200))
    # offsets int(round((h - 224) / 2)): (341 - 224) / 2 = 58.5 rounds half to even -> 58
    img = _img(256, 341)
    arr = np.asarray(img)
    np.testing.assert_array_equal(np.asarray(CenterCrop(224)(img)), arr[58:282, 16:240])
    t = eval_transform(224, 0.875, "bicubic")
    assert t.ops[0].size == 256 and t.ops[0].interpolation == "bicubic"
    assert eval_transform(224, 0.95).ops[0].size == math.floor(224 / 0.95) == 235


def test_eval_transform_values_and_model_settings():
    import ppnets

    img = _img(227, 227, seed=1)
    t = eval_transform(224, 0.875, "bilinear", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    ref = np.asarray(img.resize((256, 256), Image.BILINEAR), dtype=np.float32)[16:240, 16:240]
    ref = (ref / 255.0 - np.array([0.5, 0.4, 0.3], np.float32)) / np.array([0.2, 0.25, 0.5],
                                                                            np.float32)
    np.testing.assert_allclose(t(img), ref.transpose(2, 0, 1), rtol=0, atol=1e-6)
    for name in ("mobilenetv3_small_100", "resnet18", "fasternet_t0"):
        info = ppnets.model_info(name)
        ops = model_eval_transform(name).ops
        assert ops[0].size == math.floor(info["input_size"][-1] / info["crop_pct"])
        assert ops[0].interpolation == info["interpolation"]
        assert ops[1].size == info["input_size"][-1]
        np.testing.assert_allclose(ops[2].mean.ravel(), info["mean"], rtol=1e-6)


# ---- training augmentation ---------------------------------------------------------------------
def test_random_resized_crop_bounds_and_determinism():
    crop = RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    random.seed(0)
    for _ in range(200):
        top, left, h, w = crop.params(100, 60)
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 100
        assert 0.08 * 6000 * 0.9 <= h * w <= 6000
    random.seed(3)
    a = np.asarray(crop(_img(100, 60)))
    random.seed(3)
    b = np.asarray(crop(_img(100, 60)))
    assert a.shape == (32, 32, 3) and np.array_equal(a, b)
    # extreme aspect: the fallback is a center crop clamped to the ratio range
    top, left, h, w = RandomResizedCrop(8, scale=(0.99, 1.0)).params(400, 10)
    assert (h, w) == (10, round(10 * 4 / 3)) and left == (400 - w) // 2


def test_rand_augment_policy_parsing_and_every_op():
    ra = RandAugment.from_string("rand-m9-mstd0.5-inc1")
    assert (ra.num_ops, ra.magnitude, ra.magnitude_std, ra.prob) == (2, 9.0, 0.5, 0.5)
    ra = RandAugment.from_string("rand-n3-m5-p1.0")
    assert (ra.num_ops, ra.magnitude, ra.prob) == (3, 5.0, 1.0)
    for bad in ("auto-m9", "rand-x3", "rand-m9-inc0"):
        with pytest.raises(ValueError):
            RandAugment.from_string(bad)
    from ppnets.engine.augment import _RAND_OPS

    img = _img(24, 20, seed=2)
    for name, (fn, _) in _RAND_OPS.items():
        for level in (-1.0, 0.5, 1.0):
            out = fn(img, level, (124, 116, 104))
            assert out.size == img.size and out.mode == "RGB", name
    # magnitude matters: a full-strength rotation changes the image, level 0 does not
    assert np.array_equal(np.asarray(_RAND_OPS["Rotate"][0](img, 0.0, (0, 0, 0))),
                          np.asarray(img))
    assert not np.array_equal(np.asarray(_RAND_OPS["Rotate"][0](img, 1.0, (0, 0, 0))),
                              np.asarray(img))
    random.seed(1)
    assert RandAugment(num_ops=2, magnitude=9, prob=1.0)(img).size == img.size


def test_random_erasing_and_train_transform():
    x = np.zeros((3, 20, 20), np.float32)
    assert RandomErasing(prob=0.0)(x) is x
    random.seed(0)
    np.random.seed(0)
    y = RandomErasing(prob=1.0)(x)
    changed = (y != 0).any(axis=0)
    rows, cols = np.nonzero(changed)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert changed.sum() == box and 0.02 * 400 * 0.5 <= box <= 400 / 3 * 1.5
    assert not x.any()   # the input is not modified in place
    t = train_transform(32, rand_augment="rand-m9-mstd0.5-inc1", random_erasing=0.25)
    out = t(_img(50, 40))
    assert out.shape == (3, 32, 32) and out.dtype == np.float32


# ---- mixup / cutmix and the soft-target loss ---------------------------------------------------
def test_mixup_targets_and_images():
    rng = np.random.RandomState(0)
    x = rng.rand(4, 3, 8, 8).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    mix = MixupCutmixCollate(5, mixup_alpha=0.8, smoothing=0.1)
    out, t, lam = mix.mix(x, y, np.random.RandomState(1))
    np.testing.assert_allclose(out, lam * x + (1 - lam) * x[::-1], rtol=1e-6)
    s = smooth_one_hot(y, 5, 0.1)
    assert s[0, 0] == pytest.approx(0.92) and s[0, 1] == pytest.approx(0.02)
    np.testing.assert_allclose(t, lam * s + (1 - lam) * s[::-1], rtol=1e-6)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)


def test_cutmix_lambda_is_the_pasted_area():
    x = np.zeros((2, 1, 10, 10), np.float32)
    x[1] = 1.0
    mix = MixupCutmixCollate(3, cutmix_alpha=1.0)
    for seed in range(5):
        out, t, lam = mix.mix(x, np.array([0, 2]), np.random.RandomState(seed))
        pasted = out[0].mean()    # image 0 received a box of image 1 (all ones)
        assert lam == pytest.approx(1 - pasted)
        np.testing.assert_allclose(t[0], [lam, 0, 1 - lam], rtol=1e-6)
    collate = MixupCutmixCollate(3, cutmix_alpha=1.0, prob=0.0)
    images, targets = collate([(x[0], np.int64(0)), (x[1], np.int64(2))])
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(targets, [[1, 0, 0], [0, 0, 1]])


def test_soft_target_loss_matches_paddle_cross_entropy():
    rng = np.random.RandomState(0)
    logits = paddle.to_tensor(rng.randn(6, 5).astype(np.float32))
    labels = np.array([0, 4, 2, 2, 1, 3])
    loss = SoftTargetCrossEntropy()
    ref = F.cross_entropy(logits, paddle.to_tensor(labels))
    soft = paddle.to_tensor(smooth_one_hot(labels, 5))
    np.testing.assert_allclose(float(loss(logits, soft)), float(ref), rtol=1e-6)
    np.testing.assert_allclose(float(loss(logits, paddle.to_tensor(labels))), float(ref),
                               rtol=1e-6)
    ls = SoftTargetCrossEntropy(label_smoothing=0.1)
    ref_ls = paddle.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, paddle.to_tensor(labels))
    np.testing.assert_allclose(float(ls(logits, paddle.to_tensor(labels[:, None]))),
                               float(ref_ls), rtol=1e-6)
    np.testing.assert_allclose(float(loss(logits, paddle.to_tensor(smooth_one_hot(labels, 5,
                                                                                   0.1)))),
                               float(ref_ls), rtol=1e-5)


# ---- loaders and fit -----------------------------------------------------------------------------
_WORKER_BATCHES = """
import sys
import numpy as np
import paddle
from ppnets.engine.data import ImageListDataset
from ppnets.engine.transforms import eval_transform
ds = ImageListDataset.from_folder(sys.argv[1], eval_transform(24, 0.875, "bicubic"))
out = {}
for nw in (0, 2):
    loader = paddle.io.DataLoader(ds, batch_size=4, num_workers=nw, use_shared_memory=True,
                                  timeout=120)
    for i, (x, y) in enumerate(loader):
        out[f"x{nw}_{i}"], out[f"y{nw}_{i}"] = x.numpy(), y.numpy()
np.savez(sys.argv[2], **out)
"""


def test_worker_processes_give_the_same_eval_batches(tmp_path):
    # In a fresh process, retried when it stalls: Paddle 3.3's multiprocess DataLoader
    # intermittently deadlocks at start-up (workers wait for indices, the parent for data; seen
    # in 2 of ~6 full test runs on the 2-core CI machine, in long-lived and fresh processes).
    _tree(tmp_path, {"val": {"n01": 3, "n02": 3}})
    out = tmp_path / "batches.npz"
    for _ in range(3):
        try:
            proc = subprocess.run([sys.executable, "-c", _WORKER_BATCHES, str(tmp_path / "val"),
                                   str(out)], capture_output=True, text=True, timeout=90)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        pytest.fail("paddle.io.DataLoader with 2 worker processes stalled in 3 runs of 90 s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    batches = np.load(out)
    n = sum(1 for k in batches.files if k.startswith("x0_"))
    assert n == 2 and n == sum(1 for k in batches.files if k.startswith("x2_"))
    for i in range(n):
        np.testing.assert_array_equal(batches[f"x0_{i}"], batches[f"x2_{i}"])
        np.testing.assert_array_equal(batches[f"y0_{i}"], batches[f"y2_{i}"])


def test_fit_on_the_real_sample_with_mixup_randaugment_and_lr_scaling(tmp_path, engine_test_models):
    root = require_shared(IMAGENET_SAMPLE)
    from ppnets.engine import fit, load_config

    cfg = load_config(None, base={
        "model": {"name": "test_engine_tiny"},
        "data": {"dataset": "imagenet", "data_dir": root, "train_list": "val_list.txt",
                 "val_list": "val_list.txt", "image_size": 32, "batch_size": 8,
                 "num_workers": 2, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                 "augment": {"rand_augment": "rand-m9-mstd0.5-inc1", "random_erasing": 0.25,
                             "mixup_alpha": 0.8, "cutmix_alpha": 1.0}},
        "optim": {"lr": 0.1, "lr_scale_batch": 256},
        "train": {"epochs": 1, "max_steps_per_epoch": 2, "max_eval_steps": 2, "verbose": 0,
                  "label_smoothing": 0.1, "amp": True},
        "output_dir": str(tmp_path / "run")})
    with pytest.warns(UserWarning, match="train.amp=true ignored"):   # AMP is GPU-only
        res = fit(cfg)
    assert res["num_classes"] == 1000 and res["num_train_images"] == 400
    assert res["base_lr"] == pytest.approx(0.1 * 8 / 256)
    assert res["history"][0]["lr"] == pytest.approx(0.1 * 8 / 256)
    assert 0.0 <= res["final_top1"] <= 1.0 and res["complete"]
    assert res["history"][0]["train_loss"] == pytest.approx(math.log(1000), abs=0.5)
    from ppnets.engine import ConfigError
    with pytest.raises(ConfigError, match="imagenet"):
        load_config(None, base={"model": {"name": "x"}, "data": {"dataset": "imagenet21k"}})


def test_config_defaults_for_the_new_keys():
    import copy

    from ppnets.engine import DEFAULTS, default_num_workers, load_config
    from ppnets.engine.config import config_differences

    cfg = load_config(None, base={"model": {"name": "resnet18"}})
    assert cfg["data"]["num_workers"] is None and cfg["optim"]["lr_scale_batch"] is None
    assert default_num_workers() == min(8, len(os.sched_getaffinity(0)))
    # a run checkpointed before these keys existed still resumes when they keep their defaults
    saved = copy.deepcopy(cfg)
    del saved["optim"]["lr_scale_batch"], saved["data"]["augment"]["rand_augment"]
    assert config_differences(saved, cfg) == []
    changed = copy.deepcopy(cfg)
    changed["optim"]["lr_scale_batch"] = 256
    assert config_differences(saved, changed) == ["optim.lr_scale_batch: '<absent>' -> 256"]
    assert DEFAULTS["data"]["dataset"] == "cifar10"
