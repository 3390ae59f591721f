"""Data augmentation: per-image policies and batch-level mixing.

Per image (PIL in, PIL out, before normalisation; ``paddle.vision.transforms`` has neither
policy): :class:`RandAugment` (timm's ``rand-mM-nN-mstdS-incI`` policy strings) and
:class:`AutoAugment` (the ImageNet policy, timm's ``original``), and after normalisation
:class:`RandomErasing` (per-pixel normal noise, timm's ``re_mode='pixel'``).

Per batch: :class:`MixupCutmixCollate` stacks a batch like the default collate, then (with
probability ``prob``) mixes it with its reverse: Mixup (Zhang et al. 2018, arXiv:1710.09412)
blends the images with ``lam ~ Beta(mixup_alpha, mixup_alpha)``; CutMix (Yun et al. 2019,
arXiv:1905.04899) pastes a box of area ``1 - lam`` (``lam ~ Beta(cutmix_alpha, cutmix_alpha)``)
and corrects ``lam`` to the box actually pasted after clipping at the border. When both are
enabled one of them is chosen per batch (CutMix with probability ``switch_prob``). Targets
become soft: ``lam * smooth(y) + (1 - lam) * smooth(y_reversed)`` with label smoothing
``smoothing`` (off value ``smoothing / num_classes``), the same targets as timm's ``Mixup`` in
'batch' mode. :class:`SoftTargetCrossEntropy` takes such ``[N, num_classes]`` targets and also
plain integer labels (evaluation batches), for which it is
``CrossEntropyLoss(label_smoothing=...)``; ``paddle.metric.Accuracy`` scores soft targets
against their argmax.
"""
from __future__ import annotations

import math
import random
import re
from typing import Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

__all__ = ["RandAugment", "AutoAugment", "IMAGENET_AUTOAUGMENT_POLICY", "auto_augment_op",
           "RandomErasing", "MixupCutmixCollate", "SoftTargetCrossEntropy", "smooth_one_hot",
           "cutmix_box"]


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


_COLOR, _CONTRAST = _enhance(ImageEnhance.Color), _enhance(ImageEnhance.Contrast)
_BRIGHTNESS, _SHARPNESS = _enhance(ImageEnhance.Brightness), _enhance(ImageEnhance.Sharpness)


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



def smooth_one_hot(labels: np.ndarray, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    off = smoothing / num_classes
    out = np.full((len(labels), num_classes), off, dtype=np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64).reshape(-1)] = 1.0 - smoothing + off
    return out


def cutmix_box(h: int, w: int, lam: float, rng: np.random.RandomState):
    """Box ``(top, bottom, left, right)`` of area about ``(1 - lam) * h * w`` centred uniformly,
    clipped to the image."""
    ratio = np.sqrt(1.0 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy, cx = rng.randint(0, h), rng.randint(0, w)
    return (int(np.clip(cy - ch // 2, 0, h)), int(np.clip(cy + ch // 2, 0, h)),
            int(np.clip(cx - cw // 2, 0, w)), int(np.clip(cx + cw // 2, 0, w)))


class MixupCutmixCollate:
    """``collate_fn`` giving ``(images [N, C, H, W] float32, targets [N, num_classes])``.

    Randomness comes from ``numpy.random`` (the global state, reseeded per epoch by the engine
    and per worker by ``paddle.io.DataLoader``), so a run is reproducible.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 prob: float = 1.0, switch_prob: float = 0.5, smoothing: float = 0.0):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.smoothing = float(smoothing)

    def mix(self, images: np.ndarray, labels: np.ndarray,
            rng: Optional[np.random.RandomState] = None):
        """Mix a stacked batch in place of a copy; returns ``(images, targets, lam)``."""
        rng = rng or np.random.mtrand._rand
        images = np.array(images, dtype=np.float32, copy=True)
        lam = 1.0
        enabled = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if enabled and rng.rand() < self.prob:
            use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or
                                                    rng.rand() < self.switch_prob)
            flipped = images[::-1].copy()
            if use_cutmix:
                lam = float(rng.beta(self.cutmix_alpha, self.cutmix_alpha))
                h, w = images.shape[-2:]
                top, bottom, left, right = cutmix_box(h, w, lam, rng)
                images[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
                lam = 1.0 - (bottom - top) * (right - left) / float(h * w)
            else:
                lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
                images = (images * lam + flipped * (1.0 - lam)).astype(np.float32)
        y = smooth_one_hot(labels, self.num_classes, self.smoothing)
        targets = (y * lam + y[::-1] * (1.0 - lam)).astype(np.float32)
        return images, targets, lam

    def __call__(self, batch):
        images = np.stack([np.asarray(s[0], dtype=np.float32) for s in batch])
        labels = np.asarray([int(np.asarray(s[1]).reshape(-1)[0]) for s in batch], dtype=np.int64)
        images, targets, _ = self.mix(images, labels)
        return images, targets


class SoftTargetCrossEntropy(nn.Layer):
    """``mean(sum(-target * log_softmax(logits)))`` for soft targets ``[N, C]``; integer labels
    (``[N]`` or ``[N, 1]``) fall back to cross-entropy with ``label_smoothing``."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, target):
        if target.dtype in (paddle.int64, paddle.int32) or (
                target.ndim == 2 and target.shape[-1] == 1) or target.ndim == 1:
            target = target.astype("int64").reshape([-1])
            return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        logp = F.log_softmax(logits.astype("float32"), axis=-1)
        return (-target.astype("float32") * logp).sum(axis=-1).mean()
