"""AutoAugment (ImageNet policy): every operation against timm's ``auto_augment`` operations
(the ``original`` policy's magnitude rules) and against torchvision.transforms.functional at the
same arguments, and the policy table against torchvision's and timm's; torch in a subprocess."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ppnets.engine.augment import (_AUTO_OPS, IMAGENET_AUTOAUGMENT_POLICY, AutoAugment,
                                   auto_augment_op)
from ppnets.engine.data import build_imagenet
from ppnets.engine.transforms import train_transform

FILL = (124, 116, 104)
# every magnitude the ImageNet policy uses, plus the ends of the range
MAGNITUDES = (0, 2, 3, 4, 5, 6, 7, 8, 9, 10)
# physical arguments for the torchvision.functional comparison (degrees, shear factor, bits,
# threshold, enhancement factor)
TV_ARGS = {"Rotate": (-27.0, 9.0, 30.0), "ShearX": (-0.15, 0.3), "Posterize": (4, 6, 7, 8),
           "Solarize": (0, 128, 179, 256), "Color": (0.1, 0.82, 1.54), "Contrast": (0.1, 1.54),
           "Sharpness": (0.1, 1.36, 1.9), "AutoContrast": (None,), "Equalize": (None,),
           "Invert": (None,)}


def _image(w=37, h=29, seed=0):
    # smooth ramps plus noise: interpolation, histogram and threshold ops all see structure
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 180 / h, (xx + yy) * 90 / (w + h) + 60], -1)
    arr = np.clip(base + rng.randint(-40, 41, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


_TORCH_SIDE = r"""
import json, math, sys
import numpy as np
from PIL import Image
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import AutoAugmentPolicy, InterpolationMode
from torchvision.transforms import AutoAugment as TVAutoAugment
import timm.data.auto_augment as taa

out = sys.argv[1]
spec = json.load(open(out + "/spec.json"))
img = Image.open(out + "/image.png").convert("RGB")
fill = tuple(spec["fill"])
hparams = {"translate_const": 100, "img_mean": fill, "interpolation": Image.BILINEAR}
timm_name = {"Posterize": "PosterizeOriginal"}
res = {}
for name in spec["ops"]:
    tname = timm_name.get(name, name)
    for mag in spec["magnitudes"]:
        for negate in (False, True):
            taa._randomly_negate = (lambda v: -v) if negate else (lambda v: v)
            level_fn = taa.LEVEL_TO_ARG[tname]
            args = level_fn(mag, hparams) if level_fn is not None else ()
            o = taa.NAME_TO_OP[tname](img, *args, fillcolor=fill, resample=Image.BILINEAR)
            res[f"timm|{name}|{mag}|{int(negate)}"] = np.asarray(o)

bil = InterpolationMode.BILINEAR
tv = {
    "Rotate": lambda im, a: F.rotate(im, a, interpolation=bil, fill=list(fill)),
    # as torchvision's AutoAugment._apply_op applies ShearX
    "ShearX": lambda im, a: F.affine(im, angle=0.0, translate=[0, 0], scale=1.0,
                                     shear=[math.degrees(math.atan(a)), 0.0],
                                     interpolation=bil, fill=list(fill), center=[0, 0]),
    "Posterize": lambda im, a: F.posterize(im, int(a)),
    "Solarize": lambda im, a: F.solarize(im, float(a)),
    "Color": lambda im, a: F.adjust_saturation(im, a),
    "Contrast": lambda im, a: F.adjust_contrast(im, a),
    "Sharpness": lambda im, a: F.adjust_sharpness(im, a),
    "AutoContrast": lambda im, a: F.autocontrast(im),
    "Equalize": lambda im, a: F.equalize(im),
    "Invert": lambda im, a: F.invert(im),
}
for name, args in spec["tv_args"].items():
    for a in args:
        res[f"tv|{name}|{a}"] = np.asarray(tv[name](img, a))
np.savez(out + "/ops.npz", **res)

tables = {
    "torchvision": [[list(op) for op in sub]
                    for sub in TVAutoAugment()._get_policies(AutoAugmentPolicy.IMAGENET)],
    "timm": [[[op.name, op.prob, op.magnitude] for op in sub]
             for sub in taa.auto_augment_policy_original(dict(taa._HPARAMS_DEFAULT))],
}
json.dump(tables, open(out + "/tables.json", "w"))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("autoaug_ref")
    _image().save(out / "image.png")
    (out / "spec.json").write_text(json.dumps({"ops": sorted(_AUTO_OPS), "fill": FILL,
                                               "magnitudes": MAGNITUDES, "tv_args": TV_ARGS}))
    python = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([python, "-c", _TORCH_SIDE, str(out)], capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"torch/timm/torchvision not available in {python}: "
                    f"{proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    img = Image.open(out / "image.png").convert("RGB")
    return img, dict(np.load(out / "ops.npz")), json.loads((out / "tables.json").read_text())


def _assert_close(got, ref, what):
    got, ref = np.asarray(got).astype(np.int16), np.asarray(ref).astype(np.int16)
    assert got.shape == ref.shape, what
    diff = np.abs(got - ref)
    assert diff.max() <= 1, f"{what}: max grey-level difference {diff.max()}"
    assert (diff > 0).mean() < 0.01, f"{what}: {(diff > 0).mean():.2%} of values differ"


def test_every_op_matches_timm_original_policy(reference):
    img, ref, _ = reference
    assert set(_AUTO_OPS) == {"AutoContrast", "Equalize", "Invert", "Rotate", "ShearX",
                              "Posterize", "Solarize", "Color", "Contrast", "Sharpness"}
    exact = 0
    for name in sorted(_AUTO_OPS):
        for mag in MAGNITUDES:
            for negate in (False, True):
                got = auto_augment_op(img, name, mag, FILL, negate=negate)
                expect = ref[f"timm|{name}|{mag}|{int(negate)}"]
                _assert_close(got, expect, f"{name} m{mag} negate={negate}")
                exact += np.array_equal(np.asarray(got), expect)
    # the operations are the same Pillow calls with the same arguments: all bit-exact
    assert exact == len(_AUTO_OPS) * len(MAGNITUDES) * 2
    # and the magnitudes do something: a strong rotation / solarize changes the image
    for name in ("Rotate", "ShearX", "Solarize", "Color", "Posterize"):
        assert not np.array_equal(np.asarray(auto_augment_op(img, name, 3, FILL)),
                                  np.asarray(auto_augment_op(img, name, 9, FILL))), name


def test_every_op_matches_torchvision_functional(reference):
    img, ref, _ = reference
    for name, args in TV_ARGS.items():
        fn = _AUTO_OPS[name][0]
        for a in args:
            _assert_close(fn(img, a, FILL), ref[f"tv|{name}|{a}"], f"{name}({a})")


def test_policy_table_matches_torchvision_and_timm(reference):
    _, _, tables = reference
    ours = [[list(op) for op in sub] for sub in IMAGENET_AUTOAUGMENT_POLICY]
    tv = tables["torchvision"]
    assert len(ours) == len(tv) == 25
    for i, (a, b) in enumerate(zip(ours, tv)):
        assert len(a) == len(b) == 2, i
        for (name, prob, mag), (tname, tprob, tmag) in zip(a, b):
            assert (name, prob) == (tname, tprob), (i, a, b)
            # torchvision gives no magnitude to the argument-free ops
            assert tmag is None and _AUTO_OPS[name][1] is None or mag == tmag, (i, a, b)
    timm_names = {"PosterizeOriginal": "Posterize"}
    timm = [[[timm_names.get(n, n), p, m] for n, p, m in sub] for sub in tables["timm"]]
    assert ours == timm


def test_policy_sampling_probabilities_and_signs():
    img = _image()
    aa = AutoAugment(policy=[[("Invert", 1.0, 4), ("Equalize", 0.0, 7)]], fill=FILL)
    for seed in range(5):
        random.seed(seed)
        assert np.array_equal(np.asarray(aa(img)), 255 - np.asarray(img))
    aa = AutoAugment(policy=[[("Rotate", 1.0, 9), ("Equalize", 0.0, 7)]], fill=FILL)
    plus = np.asarray(auto_augment_op(img, "Rotate", 9, FILL))
    minus = np.asarray(auto_augment_op(img, "Rotate", 9, FILL, negate=True))
    seen = set()
    for seed in range(20):
        random.seed(seed)
        out = np.asarray(aa(img))
        seen.add("+" if np.array_equal(out, plus) else "-" if np.array_equal(out, minus) else "?")
    assert seen == {"+", "-"}
    # the full policy: every image comes back the same size and mode, and it does change images
    aa = AutoAugment(fill=FILL)
    random.seed(0)
    outs = [aa(img) for _ in range(30)]
    assert all(o.size == img.size and o.mode == "RGB" for o in outs)
    assert sum(not np.array_equal(np.asarray(o), np.asarray(img)) for o in outs) > 15
    with pytest.raises(ValueError, match="unknown operation"):
        AutoAugment(policy=[[("TranslateX", 0.5, 3)]])


def test_policy_strings_and_config_wiring(tmp_path):
    assert AutoAugment.from_string("original").magnitude_std == 0.0
    assert AutoAugment.from_string("autoaug").magnitude_std == 0.0
    assert AutoAugment.from_string("original-mstd0.5").magnitude_std == 0.5
    for bad in ("v0", "original-m9", "rand-m9"):
        with pytest.raises(ValueError):
            AutoAugment.from_string(bad)
    t = train_transform(32, auto_augment="original")
    assert any(isinstance(op, AutoAugment) for op in t.ops)
    assert t.ops[2].fill == tuple(int(round(255 * m)) for m in (0.485, 0.456, 0.406))
    out = t(_image(50, 40))
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    with pytest.raises(ValueError, match="both RandAugment"):
        train_transform(32, rand_augment="rand-m9-mstd0.5-inc1", auto_augment="original")

    from ppnets.engine import load_config
    (tmp_path / "train" / "n01").mkdir(parents=True)
    _image(40, 30).save(tmp_path / "train" / "n01" / "a.JPEG")
    cfg = load_config(None, base={"model": {"name": "resnet18"}, "data": {
        "dataset": "imagenet", "data_dir": str(tmp_path), "image_size": 24,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "augment": {"auto_augment": "original", "rand_augment": None}}})
    ds = build_imagenet("train", cfg["data"])
    assert any(isinstance(op, AutoAugment) for op in ds.transform.ops)
    x, _ = ds[0]
    assert x.shape == (3, 24, 24)
