"""ImageNet-1k input pipeline on ``paddle.io``: data sets, training and evaluation transforms.

Two layouts are read, both giving ``(CHW float32 array, int64 label)`` samples:

* the standard folder tree ``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*.JPEG``; the
  class index is the position of the WordNet id in the sorted list of the split's folders (the
  order of every ImageNet checkpoint, timm's and torchvision's included);
* PaddleClas list files: one ``relative/path label`` a line, paths relative to a root folder.

Evaluation (:func:`eval_transform`) follows timm's ``create_transform(is_training=False)`` with
``crop_mode='center'`` step by step, so accuracies compare with timm's: decode with PIL and
convert to RGB; resize the shorter side to ``floor(size / crop_pct)`` (longer side
``int(scaled * long / short)``, as torchvision's ``Resize(int)``) with the model's PIL filter;
center crop ``size`` (offsets ``int(round((h - size) / 2))``); ``/255``; ``(x - mean) / std``.
:func:`model_eval_transform` reads ``crop_pct``, ``interpolation``, ``mean``, ``std`` and
``input_size`` from ``ppnets.model_info(name)``.

Training (:func:`train_transform`): random resized crop (scale 0.08-1, ratio 3/4-4/3, the
Inception/torchvision sampling), horizontal flip, optional RandAugment (:class:`RandAugment`,
timm's ``rand-mM-nN-mstdS-incI`` policy strings) or AutoAugment (:class:`AutoAugment`, the
ImageNet policy, timm's ``original``; ``paddle.vision.transforms`` has neither),
normalisation, optional random erasing (:class:`RandomErasing`, per-pixel normal noise as timm's
``re_mode='pixel'``). Mixup/CutMix are batch-level: see
:mod:`ppnets.engine.mix`.
"""
from __future__ import annotations

import math
import os
import random
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
from PIL import Image, ImageEnhance, ImageOps

from .data import DataUnavailableError, ToCHWNormalized

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMG_EXTENSIONS", "ImageListDataset",
           "scan_image_folder", "read_image_list", "build_imagenet", "eval_transform",
           "model_eval_transform", "train_transform", "RandomResizedCrop", "RandAugment",
           "AutoAugment", "IMAGENET_AUTOAUGMENT_POLICY", "auto_augment_op", "RandomErasing",
           "ResizeShorter", "CenterCrop", "Compose", "pil_loader"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def _pil_filter(name: str) -> int:
    try:
        return _PIL_FILTERS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown interpolation {name!r}; expected one of "
                         f"{sorted(_PIL_FILTERS)}") from None


def pil_loader(path: str) -> Image.Image:
    # convert() forces the decode while the file is open and handles CMYK/greyscale JPEGs
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


# ---------------------------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------------------------
def scan_image_folder(split_dir: str) -> Tuple[List[Tuple[str, int]], List[str]]:
    """``(samples, classes)`` of a ``<split_dir>/<class>/<image>`` tree; classes sorted by name,
    images sorted by path."""
    if not os.path.isdir(split_dir):
        raise DataUnavailableError(
            f"image folder {split_dir!r} does not exist. Expected the ImageNet layout "
            "<data_dir>/train/<wnid>/*.JPEG and <data_dir>/val/<wnid>/*.JPEG, or pass PaddleClas "
            "list files (data.train_list / data.val_list, or --list with --root).")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        raise DataUnavailableError(
            f"{split_dir!r} has no class sub-folders; the validation images must be sorted into "
            "val/<wnid>/ folders (or use a list file such as PaddleClas's val_list.txt)")
    samples = []
    for idx, cls in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(os.path.join(split_dir, cls), followlinks=True)):
            for name in sorted(files):
                if name.lower().endswith(IMG_EXTENSIONS):
                    samples.append((os.path.join(dirpath, name), idx))
    return samples, classes


def read_image_list(list_file: str, root: Optional[str] = None) -> List[Tuple[str, int]]:
    """Samples of a PaddleClas list file (``relative/path label`` a line; blank lines and
    ``#`` comments ignored). ``root`` defaults to the list file's folder."""
    if not os.path.isfile(list_file):
        raise DataUnavailableError(f"list file {list_file!r} does not exist")
    root = os.path.dirname(os.path.abspath(list_file)) if root is None else root
    samples = []
    with open(list_file, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
                raise ValueError(f"{list_file}:{lineno}: expected 'relative/path label', got "
                                 f"{line!r}")
            samples.append((os.path.join(root, parts[0]), int(parts[1])))
    if not samples:
        raise DataUnavailableError(f"list file {list_file!r} names no images")
    return samples


class ImageListDataset(paddle.io.Dataset):
    """``(path, label)`` samples decoded with PIL and passed through ``transform``."""

    def __init__(self, samples: Sequence[Tuple[str, int]], transform=None,
                 classes: Optional[List[str]] = None):
        self.samples = list(samples)
        self.transform = transform
        self.classes = classes

    @classmethod
    def from_folder(cls, split_dir: str, transform=None) -> "ImageListDataset":
        samples, classes = scan_image_folder(split_dir)
        return cls(samples, transform, classes)

    @classmethod
    def from_list(cls, list_file: str, root: Optional[str] = None,
                  transform=None) -> "ImageListDataset":
        return cls(read_image_list(list_file, root), transform)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int):
        path, label = self.samples[idx]
        img = pil_loader(path)
        if self.transform is not None:
            img = self.transform(img)
        return img, np.int64(label)


# ---------------------------------------------------------------------------------------------
# deterministic geometry (evaluation)
# ---------------------------------------------------------------------------------------------
class Compose:
    def __init__(self, ops):
        self.ops = list(ops)

    def __call__(self, x):
        for op in self.ops:
            x = op(x)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(repr(o) for o in self.ops) + ")"


class ResizeShorter:
    """Shorter side -> ``size``, aspect kept: torchvision ``Resize(int)`` sizes on PIL images."""

    def __init__(self, size: int, interpolation: str = "bilinear"):
        self.size, self.interpolation = int(size), interpolation
        self._filter = _pil_filter(interpolation)

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        if short == self.size:
            return img
        new_long = int(self.size * long / short)
        size = (self.size, new_long) if w <= h else (new_long, self.size)
        return img.resize(size, self._filter)

    def __repr__(self):
        return f"ResizeShorter({self.size}, {self.interpolation})"


class CenterCrop:
    """``size`` x ``size`` center crop with torchvision's rounding of the offsets."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if w < self.size or h < self.size:
            raise ValueError(f"image {w}x{h} is smaller than the crop {self.size}")
        top = int(round((h - self.size) / 2.0))
        left = int(round((w - self.size) / 2.0))
        return img.crop((left, top, left + self.size, top + self.size))

    def __repr__(self):
        return f"CenterCrop({self.size})"


def eval_transform(input_size: int = 224, crop_pct: float = 0.875,
                   interpolation: str = "bilinear", mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> Compose:
    """timm's evaluation transform: resize shorter side to ``floor(input_size / crop_pct)``,
    center crop ``input_size``, normalise (see the module docstring)."""
    size = int(input_size)
    scale = int(math.floor(size / float(crop_pct)))
    return Compose([ResizeShorter(scale, interpolation), CenterCrop(size),
                    ToCHWNormalized(mean, std)])


def model_eval_transform(name: str, input_size: Optional[int] = None,
                         crop_pct: Optional[float] = None,
                         interpolation: Optional[str] = None) -> Compose:
    """:func:`eval_transform` with the preprocessing of ``ppnets.model_info(name)``; arguments
    that are not None replace the model's values."""
    cfg = model_data_config(name)
    return eval_transform(input_size or cfg["input_size"], crop_pct or cfg["crop_pct"],
                          interpolation or cfg["interpolation"], cfg["mean"], cfg["std"])


def model_data_config(name: str) -> dict:
    """``input_size`` (side), ``crop_pct``, ``interpolation``, ``mean``, ``std`` of a model, with
    timm's defaults (224, 0.875, bilinear, ImageNet statistics) for what its info omits."""
    import ppnets

    info = ppnets.model_info(name)
    return {"input_size": int(info.get("input_size", (3, 224, 224))[-1]),
            "crop_pct": float(info.get("crop_pct") or 0.875),
            "interpolation": info.get("interpolation") or "bilinear",
            "mean": tuple(info.get("mean") or IMAGENET_MEAN),
            "std": tuple(info.get("std") or IMAGENET_STD)}


# ---------------------------------------------------------------------------------------------
# training augmentation
# ---------------------------------------------------------------------------------------------
class RandomResizedCrop:
    """Crop of random area fraction ``scale`` and log-uniform aspect ratio ``ratio``, resized to
    ``size`` (the Inception sampling: 10 tries, then a center crop clamped to ``ratio``)."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation: str = "bilinear"):
        self.size = int(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = interpolation
        self._filter = _pil_filter(interpolation)

    def params(self, w: int, h: int) -> Tuple[int, int, int, int]:
        area = w * h
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
        in_ratio = w / h
        if in_ratio < min(self.ratio):
            cw, ch = w, int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            ch, cw = h, int(round(h * max(self.ratio)))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, img: Image.Image) -> Image.Image:
        top, left, ch, cw = self.params(*img.size)
        return img.resize((self.size, self.size), self._filter,
                          box=(left, top, left + cw, top + ch))

    def __repr__(self):
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img):
        return img.transpose(Image.FLIP_LEFT_RIGHT) if random.random() < self.p else img


# Image operations shared by RandAugment and AutoAugment, each taking its physical argument
# (shear factor, pixels, degrees, enhancement factor, bits, threshold, ...). The two policies only
# differ in how a magnitude becomes that argument (see _RAND_OPS and _AUTO_OPS).
def _shear_x(img, factor, fill):
    return img.transform(img.size, Image.AFFINE, (1, factor, 0, 0, 1, 0), Image.BILINEAR,
                         fillcolor=fill)


def _shear_y(img, factor, fill):
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, factor, 1, 0), Image.BILINEAR,
                         fillcolor=fill)


def _translate_x(img, pixels, fill):
    return img.transform(img.size, Image.AFFINE, (1, 0, pixels, 0, 1, 0), Image.BILINEAR,
                         fillcolor=fill)


def _translate_y(img, pixels, fill):
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pixels), Image.BILINEAR,
                         fillcolor=fill)


def _rotate(img, degrees, fill):
    return img.rotate(degrees, resample=Image.BILINEAR, fillcolor=fill)


def _enhance(kind):
    def op(img, factor, fill=None):
        return kind(img).enhance(factor)
    return op


def _posterize(img, bits, fill=None):
    if bits >= 8:
        return img
    # keeping 0 bits zeroes every pixel; Pillow only accepts 1-8 bits
    return ImageOps.posterize(img, bits) if bits > 0 else Image.new(img.mode, img.size)


def _solarize(img, threshold, fill=None):
    return ImageOps.solarize(img, threshold)


def _solarize_add(img, add, fill=None):
    lut = [min(255, i + add) if i < 128 else i for i in range(256)] * len(img.getbands())
    return img.point(lut)


_COLOR, _CONTRAST = _enhance(ImageEnhance.Color), _enhance(ImageEnhance.Contrast)
_BRIGHTNESS, _SHARPNESS = _enhance(ImageEnhance.Brightness), _enhance(ImageEnhance.Sharpness)


def _no_arg(fn):
    return lambda img, v, fill: fn(img)


# RandAugment operations: name -> (function(img, level in [-1, 1], fill), signed?). ``level`` is
# magnitude / 10 (negated at random for signed ops); the ranges are those of timm's "increasing"
# policy (inc1), where a larger magnitude is always a stronger change: rotate 30 degrees, shear
# 0.3, translate 45% of the side, colour/contrast/brightness/sharpness factor 1 +- 0.9,
# posterize to 4..0 bits, solarize threshold 256..0, solarize-add up to +110.
def _inc_enhance(fn):
    return lambda img, v, fill: fn(img, max(0.1, 1.0 + v * 0.9))   # factor in [0.1, 1.9]


_RAND_OPS = {
    "AutoContrast": (_no_arg(ImageOps.autocontrast), False),
    "Equalize": (_no_arg(ImageOps.equalize), False),
    "Invert": (_no_arg(ImageOps.invert), False),
    "Rotate": (lambda img, v, fill: _rotate(img, v * 30.0, fill), True),
    "Posterize": (lambda img, v, fill: _posterize(img, 4 - int(abs(v) * 4)), False),
    "Solarize": (lambda img, v, fill: _solarize(img, 256 - min(256, int(abs(v) * 256))), False),
    "SolarizeAdd": (lambda img, v, fill: _solarize_add(img, min(128, int(abs(v) * 110))), False),
    "Color": (_inc_enhance(_COLOR), True),
    "Contrast": (_inc_enhance(_CONTRAST), True),
    "Brightness": (_inc_enhance(_BRIGHTNESS), True),
    "Sharpness": (_inc_enhance(_SHARPNESS), True),
    "ShearX": (lambda img, v, fill: _shear_x(img, v * 0.3, fill), True),
    "ShearY": (lambda img, v, fill: _shear_y(img, v * 0.3, fill), True),
    "TranslateXRel": (lambda img, v, fill: _translate_x(img, v * 0.45 * img.size[0], fill), True),
    "TranslateYRel": (lambda img, v, fill: _translate_y(img, v * 0.45 * img.size[1], fill), True),
}


class RandAugment:
    """RandAugment (Cubuk et al. 2020, arXiv:1909.13719) on PIL images.

    ``num_ops`` operations drawn uniformly (with replacement) from the 15 of timm's policy, each
    applied with probability ``prob`` at magnitude ``magnitude`` out of 10, jittered per use by a
    normal of std ``magnitude_std`` (clipped to [0, 10]); signed operations (rotate, shear,
    translate, colour/contrast/brightness/sharpness) pick a random direction. Posterize and
    solarize get stronger with the magnitude (timm's ``inc1``). Geometric operations fill with
    ``fill`` (default: the ImageNet mean colour).

    :meth:`from_string` reads timm-style policies: ``rand-m9-mstd0.5-inc1`` (``m`` magnitude,
    ``n`` number of ops, ``mstd`` magnitude std, ``p`` probability; ``inc`` is accepted, only the
    increasing variant is implemented). Geometric operations resample bilinearly (timm picks
    bilinear or bicubic at random).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0, magnitude_std: float = 0.5,
                 prob: float = 0.5, fill: Sequence[int] = (124, 116, 104)):
        self.num_ops, self.magnitude = int(num_ops), float(magnitude)
        self.magnitude_std, self.prob = float(magnitude_std), float(prob)
        self.fill = tuple(int(c) for c in fill)
        self.ops = list(_RAND_OPS)

    @classmethod
    def from_string(cls, policy: str, **kwargs) -> "RandAugment":
        parts = policy.split("-")
        if parts[0] != "rand":
            raise ValueError(f"RandAugment policy {policy!r} must start with 'rand-', e.g. "
                             "'rand-m9-mstd0.5-inc1'")
        args = dict(kwargs)
        for part in parts[1:]:
            m = re.fullmatch(r"(mstd|inc|m|n|p)([\d.]+)", part)
            if not m:
                raise ValueError(f"RandAugment policy {policy!r}: unknown field {part!r} "
                                 "(known: m<magnitude>, n<ops>, mstd<std>, p<prob>, inc<0|1>)")
            key, value = m.groups()
            if key == "inc":
                if value != "1":
                    raise ValueError(f"RandAugment policy {policy!r}: only the increasing "
                                     "variant (inc1) is implemented")
                continue
            args[{"m": "magnitude", "n": "num_ops", "mstd": "magnitude_std",
                  "p": "prob"}[key]] = float(value)
        return cls(**args)

    def __call__(self, img: Image.Image) -> Image.Image:
        for name in random.choices(self.ops, k=self.num_ops):
            if random.random() > self.prob:
                continue
            mag = self.magnitude
            if self.magnitude_std > 0:
                mag = random.gauss(mag, self.magnitude_std)
            level = min(10.0, max(0.0, mag)) / 10.0
            fn, signed = _RAND_OPS[name]
            if signed and random.random() < 0.5:
                level = -level
            img = fn(img, level, self.fill)
        return img

    def __repr__(self):
        return (f"RandAugment(n={self.num_ops}, m={self.magnitude}, mstd={self.magnitude_std}, "
                f"p={self.prob})")


# AutoAugment's ImageNet policy (Cubuk et al., "AutoAugment: Learning Augmentation Strategies
# from Data", CVPR 2019, arXiv:1805.09501, appendix Table 9): 25 sub-policies of two
# (operation, probability, magnitude 0-10) each. The same table as torchvision's
# AutoAugmentPolicy.IMAGENET and timm's "original" policy (torchvision writes None for the
# magnitude of the argument-free operations; the paper's values are kept here).
IMAGENET_AUTOAUGMENT_POLICY = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)

# AutoAugment operations: name -> (function(img, arg, fill), level -> arg, signed?), ``level`` =
# magnitude / 10 in [0, 1]. The magnitude -> argument rules of timm's "original" policy (those
# of the TensorFlow TPU implementation, except posterize, which follows the paper's 4-8 bits):
# rotate up to 30 degrees and shear up to 0.3 (random sign); colour/contrast/sharpness factor
# 0.1 + 1.8 * level (no sign: low magnitudes wash out, high ones saturate); posterize keeps
# 4 + int(4 * level) bits; solarize threshold int(256 * level).
_AUTO_OPS = {
    "AutoContrast": (_RAND_OPS["AutoContrast"][0], None, False),
    "Equalize": (_RAND_OPS["Equalize"][0], None, False),
    "Invert": (_RAND_OPS["Invert"][0], None, False),
    "Rotate": (_rotate, lambda level: level * 30.0, True),
    "ShearX": (_shear_x, lambda level: level * 0.3, True),
    "Posterize": (_posterize, lambda level: int(level * 4) + 4, False),
    "Solarize": (_solarize, lambda level: min(256, int(level * 256)), False),
    "Color": (_COLOR, lambda level: level * 1.8 + 0.1, False),
    "Contrast": (_CONTRAST, lambda level: level * 1.8 + 0.1, False),
    "Sharpness": (_SHARPNESS, lambda level: level * 1.8 + 0.1, False),
}


def auto_augment_op(img: Image.Image, name: str, magnitude: float, fill=(128, 128, 128),
                    negate: bool = False) -> Image.Image:
    """Apply AutoAugment operation ``name`` at ``magnitude`` (0-10); ``negate`` flips the sign
    of the signed (geometric) operations."""
    fn, to_arg, signed = _AUTO_OPS[name]
    if to_arg is None:
        return fn(img, None, fill)
    arg = to_arg(min(10.0, max(0.0, float(magnitude))) / 10.0)
    return fn(img, -arg if (signed and negate) else arg, fill)


class AutoAugment:
    """AutoAugment with the ImageNet policy (:data:`IMAGENET_AUTOAUGMENT_POLICY`) on PIL images.

    Per image one of the 25 sub-policies is drawn uniformly; each of its two operations is
    applied with its probability at its magnitude (see :data:`_AUTO_OPS` for the magnitude ->
    argument rules); rotate and shear pick a random direction. ``magnitude_std`` > 0 jitters the
    magnitude per use by a normal of that std, clipped to [0, 10] (timm's ``mstd``, not in the
    paper). Geometric operations fill with ``fill`` (default: the ImageNet mean colour) and
    resample bilinearly (timm picks bilinear or bicubic at random).

    :meth:`from_string` reads ``original`` (timm's name), ``autoaug`` (alias) and
    ``original-mstd0.5``. The magnitudes follow the TensorFlow reference (magnitude / 10), as
    timm does; torchvision's ``AutoAugment`` instead bins each range into 10 values (magnitude /
    9) and strengthens posterize/solarize with the magnitude, so its images differ for the same
    table.
    """

    def __init__(self, policy=IMAGENET_AUTOAUGMENT_POLICY, magnitude_std: float = 0.0,
                 fill: Sequence[int] = (124, 116, 104)):
        for sub in policy:
            for name, prob, mag in sub:
                if name not in _AUTO_OPS:
                    raise ValueError(f"AutoAugment: unknown operation {name!r}; known: "
                                     f"{sorted(_AUTO_OPS)}")
        self.policy = tuple(tuple(tuple(op) for op in sub) for sub in policy)
        self.magnitude_std = float(magnitude_std)
        self.fill = tuple(int(c) for c in fill)

    @classmethod
    def from_string(cls, policy: str, **kwargs) -> "AutoAugment":
        parts = policy.split("-")
        if parts[0] not in ("original", "autoaug"):
            raise ValueError(f"AutoAugment policy {policy!r} must start with 'original' or "
                             "'autoaug' (the ImageNet policy), e.g. 'original-mstd0.5'")
        args = dict(kwargs)
        for part in parts[1:]:
            m = re.fullmatch(r"mstd([\d.]+)", part)
            if not m:
                raise ValueError(f"AutoAugment policy {policy!r}: unknown field {part!r} "
                                 "(known: mstd<std>)")
            args["magnitude_std"] = float(m.group(1))
        return cls(**args)

    def __call__(self, img: Image.Image) -> Image.Image:
        for name, prob, magnitude in random.choice(self.policy):
            if random.random() >= prob:
                continue
            if self.magnitude_std > 0:
                magnitude = random.gauss(magnitude, self.magnitude_std)
            img = auto_augment_op(img, name, magnitude, self.fill,
                                  negate=_AUTO_OPS[name][2] and random.random() < 0.5)
        return img

    def __repr__(self):
        return f"AutoAugment(policy=imagenet, mstd={self.magnitude_std})"


class RandomErasing:
    """With probability ``prob`` replace one random rectangle (area fraction 0.02-1/3, log-uniform
    aspect 0.3-3.3) of a normalised CHW array by standard-normal noise per pixel (Zhong et al.
    2017, timm's ``re_mode='pixel'``, one box)."""

    def __init__(self, prob: float = 0.25, scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3)):
        self.prob, self.scale, self.ratio = float(prob), tuple(scale), tuple(ratio)

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        if random.random() >= self.prob:
            return arr
        c, h, w = arr.shape
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = h * w * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            eh = int(round(math.sqrt(target * aspect)))
            ew = int(round(math.sqrt(target / aspect)))
            if 0 < eh < h and 0 < ew < w:
                top, left = random.randint(0, h - eh), random.randint(0, w - ew)
                arr = arr.copy()
                arr[:, top:top + eh, left:left + ew] = np.random.standard_normal(
                    (c, eh, ew)).astype(arr.dtype)
                return arr
        return arr

    def __repr__(self):
        return f"RandomErasing(p={self.prob})"


def train_transform(input_size: int = 224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                    hflip: float = 0.5, interpolation: str = "bicubic",
                    rand_augment: Optional[str] = None, random_erasing: float = 0.0,
                    mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD,
                    auto_augment: Optional[str] = None) -> Compose:
    """Random resized crop, flip, optional RandAugment or AutoAugment (not both), normalisation,
    optional erasing."""
    if rand_augment and auto_augment:
        raise ValueError(f"both RandAugment ({rand_augment!r}) and AutoAugment "
                         f"({auto_augment!r}) are set; a recipe uses one: set the other to null "
                         "(data.augment.rand_augment / data.augment.auto_augment)")
    ops = [RandomResizedCrop(input_size, scale, ratio, interpolation)]
    if hflip:
        ops.append(RandomHorizontalFlip(float(hflip)))
    fill = tuple(int(round(255 * m)) for m in mean)
    if rand_augment:
        ops.append(RandAugment.from_string(rand_augment, fill=fill))
    if auto_augment:
        ops.append(AutoAugment.from_string(auto_augment, fill=fill))
    ops.append(ToCHWNormalized(mean, std))
    if random_erasing and random_erasing > 0:
        ops.append(RandomErasing(random_erasing))
    return Compose(ops)


# ---------------------------------------------------------------------------------------------
# config -> data set
# ---------------------------------------------------------------------------------------------
def _split_dataset(data: dict, mode: str, transform) -> ImageListDataset:
    key = "train_list" if mode == "train" else "val_list"
    root = data.get("data_dir")
    if data.get(key):
        list_file = data[key]
        if root and not os.path.isabs(list_file) and not os.path.isfile(list_file):
            list_file = os.path.join(root, list_file)
        return ImageListDataset.from_list(list_file, root, transform)
    if not root:
        raise DataUnavailableError(
            f"data.dataset=imagenet needs data.data_dir (a folder with train/ and val/ class "
            f"folders) or data.{key} (a PaddleClas list file, paths relative to data.data_dir)")
    return ImageListDataset.from_folder(os.path.join(root, "train" if mode == "train" else "val"),
                                        transform)


def build_imagenet(mode: str, data: dict, model_name: Optional[str] = None) -> ImageListDataset:
    """The ``train`` or ``val`` split described by a config's ``data`` section.

    Evaluation uses ``data.eval_crop_pct``/``data.interpolation`` when set, else the model's
    ``crop_pct``/``interpolation`` (``ppnets.model_info``); normalisation always uses
    ``data.mean``/``data.std``.
    """
    aug = data.get("augment") or {}
    size = int(data["image_size"])
    if mode == "train":
        transform = train_transform(
            size, scale=aug.get("scale", (0.08, 1.0)), ratio=aug.get("ratio", (3 / 4, 4 / 3)),
            hflip=0.5 if aug.get("hflip", True) else 0.0,
            interpolation=aug.get("train_interpolation") or "bicubic",
            rand_augment=aug.get("rand_augment"), random_erasing=aug.get("random_erasing", 0.0),
            mean=data["mean"], std=data["std"], auto_augment=aug.get("auto_augment"))
    elif mode in ("val", "test"):
        cfg = model_data_config(model_name) if model_name else {"crop_pct": 0.875,
                                                                "interpolation": "bilinear"}
        transform = eval_transform(size, data.get("eval_crop_pct") or cfg["crop_pct"],
                                   data.get("interpolation") or cfg["interpolation"],
                                   data["mean"], data["std"])
    else:
        raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
    return _split_dataset(data, "train" if mode == "train" else "val", transform)
