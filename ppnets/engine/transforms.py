"""Image transforms of the training engine, deterministic or random, sample by sample.

CIFAR-10 (:func:`cifar10_transforms`, the standard recipe of He et al. 2016): train =
RandomCrop(32, padding=4) + RandomHorizontalFlip, optionally followed by a resize to
``image_size`` (crop and flip at the native 32x32, which is cheaper and matches the paper's
augmentation); test = optional resize. Both end with per-channel normalisation and give CHW
float32 numpy arrays.

ImageNet evaluation (:func:`eval_transform`) follows timm's
``create_transform(is_training=False)`` with ``crop_mode='center'`` step by step, so accuracies
compare with timm's: decode with PIL to RGB (:func:`ppnets.engine.data.load_image`, which also
turns EXIF-rotated photos upright and composites transparency over white); resize the shorter side to
``floor(size / crop_pct)`` (longer side ``int(scaled * long / short)``, as torchvision's
``Resize(int)``) with the model's PIL filter; center crop ``size`` (offsets
``int(round((h - size) / 2))``); ``/255``; ``(x - mean) / std``. :func:`model_eval_transform`
reads ``crop_pct``, ``interpolation``, ``mean``, ``std`` and ``input_size`` from
``model_info(name)``.

ImageNet training (:func:`train_transform`): random resized crop (scale 0.08-1, ratio 3/4-4/3,
the Inception/torchvision sampling), horizontal flip, optional RandAugment or AutoAugment,
normalisation, optional random erasing (the augmentations are :mod:`ppnets.engine.augment`'s).
"""
from __future__ import annotations

import math
import random
from typing import Optional, Sequence, Tuple

import numpy as np
import paddle.vision.transforms as T
from PIL import Image

from ppnets.registry import IMAGENET_MEAN, IMAGENET_STD, model_info

from .augment import AutoAugment, RandAugment, RandomErasing

# Per-channel statistics of the 50,000 CIFAR-10 training images (pixel values / 255).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

__all__ = ["ToCHWNormalized", "cifar10_transforms", "Compose", "ResizeShorter", "CenterCrop",
           "RandomResizedCrop", "RandomHorizontalFlip", "eval_transform", "model_eval_transform",
           "model_data_config", "train_transform"]


class ToCHWNormalized:
    """PIL image / HWC uint8 array -> CHW float32 array, ``(x / 255 - mean) / std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __call__(self, img) -> np.ndarray:
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
        return np.ascontiguousarray((arr - self.mean) / self.std, dtype=np.float32)


def cifar10_transforms(train: bool, image_size: int = 32, random_crop_padding: int = 4,
                       hflip: bool = True, mean: Sequence[float] = CIFAR10_MEAN,
                       std: Sequence[float] = CIFAR10_STD):
    """The train or test transform (see the module docstring)."""
    ops = []
    if train and random_crop_padding:
        ops.append(T.RandomCrop(32, padding=int(random_crop_padding)))
    if train and hflip:
        ops.append(T.RandomHorizontalFlip())
    if int(image_size) != 32:
        ops.append(T.Resize((int(image_size), int(image_size)), interpolation="bilinear"))
    ops.append(ToCHWNormalized(mean, std))
    return T.Compose(ops)


_PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def _pil_filter(name: str) -> int:
    try:
        return _PIL_FILTERS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown interpolation {name!r}; expected one of "
                         f"{sorted(_PIL_FILTERS)}") from None


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
    """:func:`eval_transform` with the preprocessing of ``model_info(name)``; arguments
    that are not None replace the model's values."""
    cfg = model_data_config(name)
    return eval_transform(input_size or cfg["input_size"], crop_pct or cfg["crop_pct"],
                          interpolation or cfg["interpolation"], cfg["mean"], cfg["std"])


def model_data_config(name: str) -> dict:
    """``input_size`` (side), ``crop_pct``, ``interpolation``, ``mean``, ``std`` of a model, with
    timm's defaults (224, 0.875, bilinear, ImageNet statistics) for what its info omits."""

    info = model_info(name)
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
