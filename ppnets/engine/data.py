"""Data I/O of the training engine: data sets, samplers, loaders' collate.

* CIFAR-10 from ``paddle.vision.datasets.Cifar10`` (the official ``cifar-10-python.tar.gz``
  layout: :func:`resolve_cifar10_file`, :func:`build_cifar10`, :func:`count_cifar10_images`);
* image folders and PaddleClas list files (:class:`ImageListDataset`, :func:`build_imagenet`):
  the standard tree ``<root>/train/<wnid>/*.JPEG``, ``<root>/val/<wnid>/*.JPEG`` (the class
  index is the position of the folder name in the sorted list of the split's folders, the
  order of every ImageNet checkpoint, timm's and torchvision's included) or one
  ``relative/path label`` a line, paths relative to a root folder;
* :class:`EpochBatchSampler`, resumable and per-epoch deterministic, sharded across ranks;
* :func:`load_image`, the one reader of image files (EXIF orientation, greyscale, CMYK, alpha,
  palette and 16-bit images to 8-bit RGB), whose failures are :class:`BadImageError`, and
  :class:`FailFastDataLoader`, a ``paddle.io.DataLoader`` that hands such errors to the caller
  instead of hanging.

Every sample is ``(CHW float32 array, int64 label)``; the transforms are
:mod:`ppnets.engine.transforms`' and the augmentations :mod:`ppnets.engine.augment`'s.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import multiprocessing
import os
import random
import re
import signal
import sys
import threading
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle.io.dataloader import dataloader_iter as paddle_loader_iter
from paddle.io.dataloader.dataloader_iter import (_DataLoaderIterMultiProcess,
                                                  _DataLoaderIterSingleProcess)
from PIL import Image, ImageOps, UnidentifiedImageError

from ppnets.utils import is_rank0

from .augment import MixupCutmixCollate
from .transforms import (CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD,
                         cifar10_transforms, eval_transform, model_data_config, train_transform)

__all__ = ["CIFAR10_FILENAME", "DataUnavailableError", "build_cifar10", "resolve_cifar10_file",
           "EpochBatchSampler", "count_cifar10_images", "seed_everything", "build_datasets",
           "build_train_collate", "default_num_workers", "DATASET_CLASSES", "build_folder",
           "image_transform", "ImageListDataset", "build_imagenet", "BadImageError", "load_image",
           "to_rgb", "describe_mode", "FailFastDataLoader", "ON_BAD_IMAGE", "IMG_EXTENSIONS",
           "scan_folder_tree", "scan_image_folder", "read_image_list"]

CIFAR10_FILENAME = "cifar-10-python.tar.gz"


class DataUnavailableError(RuntimeError):
    """Neither a local archive nor a download could provide the data set."""


def resolve_cifar10_file(data_file: Optional[str] = None,
                         data_dir: Optional[str] = None) -> Optional[str]:
    """The archive to read: ``data_file`` if given (must exist), else ``data_dir/cifar-10-python
    .tar.gz`` if given (must exist), else None (download)."""
    if data_file:
        path = os.path.expanduser(data_file)
        if not os.path.isfile(path):
            raise DataUnavailableError(
                f"CIFAR-10 archive not found: {path}. Pass the path of a local "
                f"{CIFAR10_FILENAME} (official 'python version' from "
                "https://www.cs.toronto.edu/~kriz/cifar.html) with --data-file, or omit it to "
                "download (needs internet access).")
        return path
    if data_dir:
        path = os.path.join(os.path.expanduser(data_dir), CIFAR10_FILENAME)
        if not os.path.isfile(path):
            raise DataUnavailableError(
                f"--data-dir {data_dir!r} holds no {CIFAR10_FILENAME}. Put the official archive "
                "there, pass its path with --data-file, or omit both to download.")
        return path
    return None


def build_cifar10(mode: str, data_file: Optional[str] = None, image_size: int = 32,
                  random_crop_padding: int = 4, hflip: bool = True,
                  mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                  download: bool = True):
    """``paddle.vision.datasets.Cifar10`` for ``mode`` 'train' or 'test' with our transforms.

    With ``data_file=None`` the archive is downloaded (or reused from Paddle's cache,
    ``~/.cache/paddle/dataset/cifar``); when that fails, :class:`DataUnavailableError` says how
    to provide the file by hand.
    """
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    transform = cifar10_transforms(mode == "train", image_size, random_crop_padding, hflip,
                                   mean, std)
    data_file = resolve_cifar10_file(data_file)
    if data_file is None and not download:
        raise DataUnavailableError("no CIFAR-10 archive given and downloading is disabled: pass "
                                   f"data.data_file (--data-file path/to/{CIFAR10_FILENAME}).")
    try:
        return paddle.vision.datasets.Cifar10(data_file=data_file, mode=mode,
                                              transform=transform, download=data_file is None,
                                              backend="pil")
    except DataUnavailableError:
        raise
    except Exception as exc:  # network errors, md5 mismatch, truncated archive...
        if data_file is not None:
            raise DataUnavailableError(
                f"could not read CIFAR-10 archive {data_file}: {type(exc).__name__}: {exc}. "
                f"Expected the official {CIFAR10_FILENAME} layout "
                "(cifar-10-batches-py/data_batch_1..5, test_batch).") from exc
        raise DataUnavailableError(
            f"downloading CIFAR-10 failed ({type(exc).__name__}: {exc}). Offline? Download "
            f"{CIFAR10_FILENAME} (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) on a "
            "machine with internet access, copy it here and pass --data-file /path/to/"
            f"{CIFAR10_FILENAME} (or set data.data_file in the config).") from exc


def count_cifar10_images(data_file: str) -> dict:
    """Number of train and test images in an archive, read from the batch headers."""
    import pickle
    import tarfile

    counts = {"train": 0, "test": 0}
    with tarfile.open(data_file, mode="r") as tar:
        for member in tar:
            base = os.path.basename(member.name)
            kind = ("train" if base.startswith("data_batch") else
                    "test" if base.startswith("test_batch") else None)
            if kind:
                batch = pickle.load(tar.extractfile(member), encoding="bytes")
                counts[kind] += len(batch[b"labels"])
    return counts


class EpochBatchSampler(paddle.io.BatchSampler):
    """Batches whose order is a function of ``(seed, epoch)`` only.

    The permutation of epoch ``e`` is ``numpy.random.RandomState(seed + e).permutation(n)`` (or
    ``arange(n)`` without shuffling), so a run resumed at epoch ``e`` sees exactly the batches
    an uninterrupted run would. Call :meth:`set_epoch` before each epoch. Under data parallelism
    each rank takes every ``world_size``-th sample of the permutation, padded by its first
    samples so that every rank gets as many (training steps stay in lockstep); ``pad=False``
    (evaluation) leaves the last ranks one sample short instead, so no sample counts twice.
    ``max_batches`` caps the batches per epoch (smoke runs).
    """

    def __init__(self, dataset_len: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, max_batches: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 pad: bool = True):
        self.dataset_len = int(dataset_len)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.max_batches = max_batches
        self.num_replicas = num_replicas or paddle.distributed.get_world_size()
        self.rank = paddle.distributed.get_rank() if rank is None else rank
        self.pad = pad
        self.epoch = 0
        self.num_samples = (int(math.ceil(self.dataset_len / self.num_replicas)) if pad else
                            len(range(self.rank, self.dataset_len, self.num_replicas)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> List[int]:
        if self.shuffle:
            order = np.random.RandomState(self.seed + self.epoch).permutation(self.dataset_len)
        else:
            order = np.arange(self.dataset_len)
        order = order.tolist()
        if self.pad:
            order += order[: self.num_samples * self.num_replicas - len(order)]
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[List[int]]:
        indices = self._indices()
        emitted = 0
        for start in range(0, len(indices), self.batch_size):
            batch = indices[start:start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                break
            if self.max_batches is not None and emitted >= self.max_batches:
                break
            emitted += 1
            yield batch

    def __len__(self) -> int:
        n = (self.num_samples // self.batch_size if self.drop_last
             else int(math.ceil(self.num_samples / self.batch_size)))
        return min(n, self.max_batches) if self.max_batches is not None else n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and paddle (CPU and GPU generators)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    paddle.seed(seed)


DATASET_CLASSES = {"cifar10": 10, "imagenet": 1000}


def build_datasets(cfg) -> tuple:
    """``(train_set, eval_set, num_classes)`` for a resolved config: ``data.dataset`` picks
    CIFAR-10 (this module) or an image folder / list (ImageNet layout); ``data.num_classes``
    overrides the data set's class count (e.g. an ImageNet subset in a list file)."""
    data = cfg["data"]
    if data["dataset"] == "folder":
        return build_folder(data, cfg["model"]["name"], seed=int(cfg["train"]["seed"]))
    if data["dataset"] not in DATASET_CLASSES:
        raise DataUnavailableError(f"unknown data.dataset {data['dataset']!r}; expected "
                                   f"{', '.join(DATASET_CLASSES)} or folder")
    num_classes = int(data.get("num_classes") or DATASET_CLASSES[data["dataset"]])
    if data["dataset"] == "imagenet":
        return (build_imagenet("train", data, cfg["model"]["name"]),
                build_imagenet("val", data, cfg["model"]["name"]), num_classes)
    common = dict(data_file=data["data_file"], image_size=data["image_size"],
                  mean=data["mean"] or CIFAR10_MEAN, std=data["std"] or CIFAR10_STD)
    aug = data["augment"]
    train_set = build_cifar10("train", random_crop_padding=aug["random_crop_padding"],
                              hflip=aug["hflip"], **common)
    return train_set, build_cifar10("test", **common), num_classes


def build_train_collate(cfg, num_classes: int):
    """A Mixup/CutMix ``collate_fn`` when ``data.augment.mixup_alpha``/``cutmix_alpha`` > 0
    (label smoothing then goes into its soft targets), else None (the default collate)."""
    aug = cfg["data"]["augment"]
    if not (float(aug.get("mixup_alpha") or 0) > 0 or float(aug.get("cutmix_alpha") or 0) > 0):
        return None
    return MixupCutmixCollate(num_classes, mixup_alpha=float(aug.get("mixup_alpha") or 0),
                              cutmix_alpha=float(aug.get("cutmix_alpha") or 0),
                              prob=float(aug.get("mix_prob", 1.0)),
                              switch_prob=float(aug.get("mix_switch_prob", 0.5)),
                              smoothing=float(cfg["train"]["label_smoothing"] or 0.0))


def default_num_workers() -> int:
    """``min(8, usable cores)``: what ``data.num_workers: null`` resolves to."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(0, min(8, cores))


IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# data.on_bad_image: what an image file that cannot be read does to a run.
ON_BAD_IMAGE = ("error", "skip")


# ---------------------------------------------------------------------------------------------
# one image file -> RGB
# ---------------------------------------------------------------------------------------------
_SKIP_HOW = ("data.on_bad_image=skip leaves unreadable images out (ppnets train: -o "
             "data.on_bad_image=skip; ppnets eval: --on-bad-image skip)")


class BadImageError(DataUnavailableError):
    """Image files that cannot be read; ``files`` holds their ``(path, reason)`` pairs."""

    def __init__(self, message: str, files: Sequence[Tuple[str, str]] = ()):
        super().__init__(message)
        self.files = [(str(p), str(r)) for p, r in files]

    def __reduce__(self):  # keep ``files`` through pickling (loader workers)
        return type(self), (str(self), self.files)

    @property
    def path(self) -> Optional[str]:
        return self.files[0][0] if self.files else None

    @classmethod
    def for_file(cls, path: str, reason: str) -> "BadImageError":
        # <folder>/<class>/<file>: checking <folder> finds the others
        folder = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        return cls(f"unreadable image: {path}\n  {reason}\n  Fix or delete it; `ppnets data "
                   f"check --decode {folder}` lists every unreadable file; {_SKIP_HOW}.",
                   [(path, reason)])

    @classmethod
    def for_files(cls, files: Sequence[Tuple[str, str]], what: str, total: int,
                  folder: str = "FOLDER") -> "BadImageError":
        lines = [f"{len(files)} of {total} {what} cannot be read:"]
        lines += [f"  {path}: {reason}" for path, reason in files]
        lines.append(f"  Fix or delete them (`ppnets data check {folder}` lists every problem); "
                     f"{_SKIP_HOW}.")
        return cls("\n".join(lines), files)

    @classmethod
    def from_worker_text(cls, text: str) -> "BadImageError":
        """The error a loader worker raised, from the text Paddle re-raises it with in the main
        process (``DataLoader worker(i) caught BadImageError with message:`` + the worker's
        formatted traceback, whose last entry is ``...BadImageError: <the message>``)."""
        message = text.rsplit(f"{cls.__name__}: ", 1)[-1].rstrip("\n")
        lines = message.split("\n")
        if len(lines) >= 2 and lines[0].startswith("unreadable image: "):
            return cls(message, [(lines[0][len("unreadable image: "):], lines[1].strip())])
        return cls(message)


# What load_image does to each PIL mode (docs/training.md, "Image files", says the same).
MODE_CONVERSIONS = {
    "RGB": "used as is",
    "L": "grey value copied to the three channels",
    "1": "black/white copied to the three channels",
    "P": "palette expanded to RGB (a transparent colour composited over white)",
    "CMYK": "converted to RGB by PIL (colour profiles are not applied)",
    "YCbCr": "converted to RGB",
    "RGBA": "alpha composited over white",
    "RGBa": "premultiplied alpha composited over white",
    "RGBX": "padding channel dropped",
    "LA": "grey copied to the three channels, alpha composited over white",
    "PA": "palette expanded to RGB, alpha composited over white",
    "I;16": "16-bit values scaled to 8 bits (v * 255 / 65535)",
    "I": "32-bit integers: 0..65535 scaled to 8 bits as 16-bit data; other values cannot be read",
    "F": "floats: 0..1 scaled to 0..255; other values cannot be read",
}


def describe_mode(mode: str) -> str:
    """How :func:`load_image` turns an image of PIL ``mode`` into RGB."""
    if mode.startswith("I;16"):
        return MODE_CONVERSIONS["I;16"]
    return MODE_CONVERSIONS.get(mode, "converted to RGB by PIL")


def _grey16_to_rgb(values: np.ndarray) -> Image.Image:
    grey = (values.astype(np.uint32) * 255 + 32767) // 65535   # rounded v * 255 / 65535
    return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB of a decoded PIL image, turned upright by its EXIF orientation (see
    :func:`load_image`). Raises ValueError for values that have no 8-bit meaning."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels are still good, as stored
        pass
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        return _grey16_to_rgb(np.asarray(img))
    if mode == "I":
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"32-bit integer image with values {values.min()}..{values.max()}: "
                             "no 8-bit meaning; convert it to an 8- or 16-bit image")
        return _grey16_to_rgb(values)
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if values.size and not (np.isfinite(values).all() and values.min() >= 0
                                and values.max() <= 1):
            raise ValueError("floating-point image with values outside 0..1: no 8-bit meaning; "
                             "convert it to an 8-bit image")
        return Image.fromarray(np.round(values * 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        mode, img = "RGBA", img.convert("RGBA")
    if mode in ("RGBA", "RGBa", "LA", "PA", "La"):
        rgba = img.convert("RGBA") if mode != "La" else img.convert("LA").convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


# First bytes of files that are often saved under an image name, and what they are.
_SIGNATURES = (
    (b"\x00\x05\x16\x07", "a macOS resource fork (AppleDouble '._' file), not an image"),
    (b"\x00\x00\x00\x01Bud1", "a macOS .DS_Store file"),
    (b"<!doctype html", "an HTML page saved with an image name (a failed download?)"),
    (b"<html", "an HTML page saved with an image name (a failed download?)"),
    (b"<?xml", "XML/SVG text (SVG is not read: convert it to PNG)"),
    (b"<svg", "SVG text (SVG is not read: convert it to PNG)"),
    (b"%pdf", "a PDF document"),
    (b"pk\x03\x04", "a ZIP archive"),
)


def sniff_content(head: bytes) -> str:
    """What the first bytes of a file that PIL cannot identify look like."""
    low = head.lstrip().lower()
    for magic, what in _SIGNATURES:
        if head.startswith(magic) or low.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace")
        return (f"an ISO media file (brand {brand!r}: HEIC/AVIF photo or video), which PIL "
                "cannot decode: convert it to JPEG")
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"a text file (starts with {head[:40].decode('ascii')!r})"
    return f"unrecognised content (first bytes {head[:8].hex(' ')})"


def describe_read_error(path: str, exc: BaseException) -> str:
    """Why ``path`` could not be read, for a human, from the exception that reading raised."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large to decode safely ({exc})"
    if isinstance(exc, UnidentifiedImageError):
        try:
            with open(path, "rb") as f:
                head = f.read(64)
        except OSError as err:
            return f"cannot be opened ({err})"
        return "empty file (0 bytes)" if not head else f"not an image: {sniff_content(head)}"
    text = str(exc)
    if "truncated" in text:
        return "truncated: the file ends inside the image data (an interrupted download or copy?)"
    return f"cannot be decoded ({type(exc).__name__}: {text})"


def load_image(path: str) -> Image.Image:
    """The image file ``path`` as an 8-bit RGB PIL image: what every ppnets data path (training,
    evaluation, fine-tuning, calibration, the notebooks) and inference on an image file read.

    * EXIF orientation is applied (the photo the way it is shown, as OpenCV's ``imread`` --
      PaddleClas -- does; timm and torchvision do not);
    * greyscale (``L``, ``1``) is copied to the three channels; CMYK and YCbCr are converted by
      PIL (colour profiles are not applied, as in timm, torchvision and OpenCV);
    * alpha (``RGBA``, ``LA``, ``PA``, palette images with a transparent colour) is composited
      over white: transparent pixels show the background a viewer shows, not whatever colour
      they happen to store (``convert("RGB")``, timm's, just drops alpha; for opaque images the
      two agree);
    * 16-bit greyscale (``I;16``, and ``I`` with values 0..65535) is scaled to 8 bits,
      ``round(v * 255 / 65535)`` (PIL's ``convert("RGB")`` clips it, turning most images white);
      float images (``F``) with values in 0..1 are scaled by 255; other ``I``/``F`` values raise;
    * multi-frame files (animated, multi-page) give their first frame.

    Any failure -- missing, empty, not an image, truncated, undecodable -- raises
    :class:`BadImageError` naming the file and the reason. The decode happens here, while the
    file is open; truncated data is an error, never grey padding.
    """
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files
        raise BadImageError.for_file(path, describe_read_error(path, exc)) from exc
    try:
        return to_rgb(img)
    except ValueError as exc:
        raise BadImageError.for_file(path, str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FolderScan:
    """What :func:`scan_folder_tree` found in ``<split_dir>/<class>/...``."""
    split_dir: str
    classes: List[str]
    samples: List[Tuple[str, int]]     # image files (by extension), class index
    ignored: List[str]                 # files in class folders without an image extension
    loose: List[str]                   # files directly in split_dir (not in a class folder)


def scan_folder_tree(split_dir: str) -> FolderScan:
    """Every file of a ``<split_dir>/<class>/<image>`` tree; classes sorted by name, files by
    path. Images are the files with an extension of ``IMG_EXTENSIONS`` (any case)."""
    classes, loose = [], []
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        (classes if entry.is_dir() else loose).append(entry.name if entry.is_dir()
                                                      else entry.path)
    samples, ignored = [], []
    for idx, cls in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(os.path.join(split_dir, cls), followlinks=True)):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if name.lower().endswith(IMG_EXTENSIONS):
                    samples.append((path, idx))
                else:
                    ignored.append(path)
    return FolderScan(split_dir, classes, samples, ignored, loose)


# How each split is named in messages, and the list-file alternative to a folder.
_SPLITS = {"train": ("training", "a PaddleClas list file: data.train_list"),
           "val": ("validation", "a PaddleClas list file: data.val_list"),
           "eval": ("evaluation", "a PaddleClas list file: --list val_list.txt --root FOLDER")}


def scan_image_folder(split_dir: str,
                      split: str = "val") -> Tuple[List[Tuple[str, int]], List[str]]:
    """``(samples, classes)`` of a ``<split_dir>/<class>/<image>`` tree; classes sorted by name,
    images sorted by path. ``split`` (``train``, ``val`` or ``eval``) names the images in
    errors."""
    what, alternative = _SPLITS[split]
    if not os.path.isdir(split_dir):
        raise DataUnavailableError(
            f"{what} image folder {split_dir!r} does not exist. Expected one sub-folder of images "
            f"per class ({split_dir}/<class>/*.jpg; ImageNet: <data_dir>/train/<wnid>/*.JPEG and "
            f"<data_dir>/val/<wnid>/*.JPEG), or {alternative}.")
    scan = scan_folder_tree(split_dir)
    if not scan.classes:
        images = [p for p in scan.loose if p.lower().endswith(IMG_EXTENSIONS)]
        held = (f" (it holds {len(images)} image files directly)" if images
                else " (it is empty)" if not scan.loose else "")
        raise DataUnavailableError(
            f"{split_dir!r} has no class sub-folders{held}: the {what} images must be sorted "
            f"into one sub-folder per class ({split_dir}/<class>/*.jpg), or listed in "
            f"{alternative} ('relative/path label' per line).")
    return scan.samples, scan.classes


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


# How many following samples a skipped image may look through for one it can stand in with.
_STAND_IN_TRIES = 64


class ImageListDataset(paddle.io.Dataset):
    """``(path, label)`` samples read with :func:`load_image` and passed through ``transform``.

    A file that cannot be read when it is fetched (one the pre-run check could not see, such as
    a PNG whose pixel data is corrupt) raises :class:`BadImageError` with
    ``on_bad_image="error"``; with ``"skip"`` the next readable sample of the list stands in for
    it (the same one in every epoch and worker) and rank 0 prints a warning naming both files
    (once: the flags below say a file failed before). Either way the sample is marked in a byte
    per sample in shared memory, created here, before any loader forks its workers, which
    inherit it: :meth:`unreadable` lists the files that failed in any process of this run,
    loader workers included.
    """

    def __init__(self, samples: Sequence[Tuple[str, int]], transform=None,
                 classes: Optional[List[str]] = None, on_bad_image: str = "error"):
        if on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {on_bad_image!r}")
        self.samples = list(samples)
        self.transform = transform
        self.classes = classes
        self.on_bad_image = on_bad_image
        self._failed = multiprocessing.RawArray("B", max(1, len(self.samples)))

    @classmethod
    def from_folder(cls, split_dir: str, transform=None, split: str = "val",
                    on_bad_image: str = "error") -> "ImageListDataset":
        samples, classes = scan_image_folder(split_dir, split)
        return cls(samples, transform, classes, on_bad_image)

    @classmethod
    def from_list(cls, list_file: str, root: Optional[str] = None, transform=None,
                  on_bad_image: str = "error") -> "ImageListDataset":
        return cls(read_image_list(list_file, root), transform, on_bad_image=on_bad_image)

    def without(self, paths) -> "ImageListDataset":
        """A copy without the samples whose path is in ``paths``."""
        drop = set(paths)
        return type(self)([s for s in self.samples if s[0] not in drop], self.transform,
                          self.classes, self.on_bad_image)

    def unreadable(self) -> List[str]:
        """Paths of the samples that failed to load so far, in any process (sorted)."""
        n = min(len(self.samples), len(self._failed))
        return sorted({self.samples[i][0] for i in range(n) if self._failed[i]})

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int):
        path, label = self.samples[idx]
        try:
            img = load_image(path)
        except BadImageError as exc:
            known = idx < len(self._failed) and self._failed[idx]   # failed in an earlier epoch
            self._mark(idx)
            if self.on_bad_image == "error":
                raise
            img, label = self._stand_in(idx, exc, warn=not known)
        if self.transform is not None:
            img = self.transform(img)
        return img, np.int64(label)

    def _mark(self, idx: int) -> None:
        if idx < len(self._failed):
            self._failed[idx] = 1

    def _stand_in(self, idx: int, exc: BadImageError, warn: bool):
        n = len(self.samples)
        for step in range(1, min(n, _STAND_IN_TRIES + 1)):
            j = (idx + step) % n
            if j < len(self._failed) and self._failed[j]:
                continue
            try:
                img = load_image(self.samples[j][0])
            except BadImageError:
                self._mark(j)
                continue
            path = self.samples[idx][0]
            if warn and is_rank0():
                print(f"[ppnets.engine] warning: unreadable image {path} "
                      f"({exc.files[0][1] if exc.files else exc}); {self.samples[j][0]} stands "
                      "in for it (data.on_bad_image=skip)", file=sys.stderr, flush=True)
            return img, self.samples[j][1]
        raise BadImageError(f"{exc}\n  and none of the {min(n - 1, _STAND_IN_TRIES)} images after "
                            "it in the list can be read either: nothing can stand in for it",
                            exc.files)


# ---------------------------------------------------------------------------------------------
# loader
# ---------------------------------------------------------------------------------------------
class FailFastDataLoader(paddle.io.DataLoader):
    """``paddle.io.DataLoader`` whose data errors reach the caller at once, with or without
    worker processes, as the exception the dataset raised.

    Paddle 3.3's single-process loader (``num_workers=0``) reads batches in a thread whose loop
    (``_DataLoaderIterSingleProcess._thread_loop``, ``paddle/io/dataloader/dataloader_iter.py``)
    only catches StopIteration around the dataset fetch: any other exception ends the thread
    without waking the blocking queue, and the caller waits for the next batch forever. With
    worker processes, Paddle's reader thread re-raises a worker's exception in that thread
    (printed as a thread traceback) after killing the queue, so the caller gets ``SystemError:
    (Fatal) Blocking queue is killed ...``. Here both iterators keep the exception, kill the queue
    (which wakes the caller at once) and the caller raises the dataset's exception -- a
    worker's :class:`BadImageError` rebuilt with its path and reason.
    """

    def __iter__(self):
        if self.num_workers == 0:
            return _FailFastSingleProcessIter(self)
        if self._persistent_workers:
            if self._iterator is None:
                self._iterator = _FailFastMultiProcessIter(self)
            else:
                self._iterator._reset()
            return self._iterator
        return _FailFastMultiProcessIter(self)


def _reraise(iterator, exc: Exception):
    """In the caller: raise the error the loader's thread kept, or a clear one for a dead
    worker, or ``exc`` (what reading the killed queue raised)."""
    error = iterator._load_error
    if error is not None:
        # as Paddle ends an iterator at StopIteration: the reader's own threads stop too, and
        # later loaders do not fork their workers beside them
        iterator._reader.shutdown()
        iterator._try_shutdown_all()
        if isinstance(error, BadImageError) and not error.files:
            error = BadImageError.from_worker_text(str(error))
        raise error
    dead = [w for w in getattr(iterator, "_workers", []) if w.exitcode not in (None, 0)]
    if dead:
        codes = ", ".join(str(w.exitcode) for w in dead)
        raise RuntimeError(
            f"{len(dead)} DataLoader worker process(es) died (exit code {codes}; -9 is SIGKILL, "
            "often the out-of-memory killer): lower data.num_workers or the batch size, or set "
            "data.num_workers=0 to load in the training process") from exc
    raise exc


class _RaisesLoadError:
    """Iterator mixin: the caller's ``next()`` raises the error the loader kept (:func:`_reraise`)
    where Paddle would raise its own, or hang."""

    def __next__(self):
        try:
            return super().__next__()
        except StopIteration:
            raise
        except Exception as exc:  # noqa: BLE001
            _reraise(self, exc)


class _FailFastSingleProcessIter(_RaisesLoadError, _DataLoaderIterSingleProcess):
    def _init_thread(self):
        # The fetcher exists already (base __init__) and the thread starts in super()._init_thread.
        self._load_error = None
        fetch = self._dataset_fetcher.fetch

        def fetch_or_stop(indices, done_event=None):
            try:
                return fetch(indices, done_event)
            except Exception as exc:  # noqa: BLE001 - handed to the caller by _reraise
                self._load_error = exc
                self._exit_thread_unexpectedly()   # kill the queue: wakes the caller
                return None                        # ends the thread's loop

        self._dataset_fetcher.fetch = fetch_or_stop
        super()._init_thread()


# Paddle's SIGCHLD handler (paddle.base.multiprocess_utils._set_SIGCHLD_handler), installed by
# the first loader with workers, stays for the life of the process. After such a loader has
# ended, the next child process that exits -- any subprocess.run, e.g. `git rev-parse` for a run
# record -- can make that handler crash the interpreter (SIGSEGV; reproduced on Paddle 3.3.1:
# `ppnets eval --num-workers 1`, then a subprocess in the same process). So the handler is
# Paddle's only while a loader with workers is alive; the last one to end puts back the handler
# that was there before and lets the next loader install Paddle's again.
_LIVE_WORKER_LOADERS = [0, None]   # live multi-process iterators, SIGCHLD handler before them


def _worker_loader_started() -> None:
    if _LIVE_WORKER_LOADERS[0] == 0:
        _LIVE_WORKER_LOADERS[1] = signal.getsignal(signal.SIGCHLD)
    _LIVE_WORKER_LOADERS[0] += 1


def _worker_loader_ended() -> None:
    _LIVE_WORKER_LOADERS[0] -= 1
    if _LIVE_WORKER_LOADERS[0] == 0 and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, _LIVE_WORKER_LOADERS[1] or signal.SIG_DFL)
        install = getattr(paddle_loader_iter, "_set_SIGCHLD_handler", None)
        if install is not None:   # its module's "installed once" flag
            install.__globals__["_SIGCHLD_handler_set"] = False


class _FailFastMultiProcessIter(_RaisesLoadError, _DataLoaderIterMultiProcess):
    def __init__(self, loader):
        self._load_error = None
        _worker_loader_started()
        self._counted = True
        try:
            super().__init__(loader)
        except BaseException:
            self._counted = False
            _worker_loader_ended()
            raise

    def _try_shutdown_all(self, timeout=None):
        try:
            super()._try_shutdown_all(timeout)
        finally:
            if getattr(self, "_counted", False):
                self._counted = False
                _worker_loader_ended()

    def _init_workers(self):
        # A garbage collection in a newly forked worker may finalize the parent's garbage -- an
        # earlier loader's reader, say, whose destructor waits for threads or locks that exist
        # only in the parent -- and freeze the worker at start-up. Frozen objects stay out of
        # every collection, the forked copies included (gc.freeze's documented use with fork).
        if gc.get_freeze_count():   # the program freezes objects itself: leave that to it
            return super()._init_workers()
        gc.freeze()
        try:
            super()._init_workers()
        finally:
            gc.unfreeze()

    def _get_data(self):
        try:
            return super()._get_data()
        except Exception as exc:  # noqa: BLE001 - a worker's error, re-raised by Paddle here
            self._load_error = exc
            self._exit_thread_unexpectedly()
            return None   # the thread loop ends quietly (its done event is set)


# ---------------------------------------------------------------------------------------------
# config -> data set
# ---------------------------------------------------------------------------------------------
def _split_dataset(data: dict, mode: str, transform) -> ImageListDataset:
    key = "train_list" if mode == "train" else "val_list"
    root = data.get("data_dir")
    on_bad_image = data.get("on_bad_image") or "error"
    if data.get(key):
        list_file = data[key]
        if root and not os.path.isabs(list_file) and not os.path.isfile(list_file):
            list_file = os.path.join(root, list_file)
        return ImageListDataset.from_list(list_file, root, transform, on_bad_image)
    if not root:
        raise DataUnavailableError(
            f"data.dataset=imagenet needs data.data_dir (a folder with train/ and val/ class "
            f"folders) or data.{key} (a PaddleClas list file, paths relative to data.data_dir)")
    split = "train" if mode == "train" else "val"
    return ImageListDataset.from_folder(os.path.join(root, split), transform, split, on_bad_image)


def image_transform(mode: str, data: dict, model_name: Optional[str] = None):
    """The training or evaluation transform of an image-file data set (ImageNet or a folder of
    your own images) described by a config's ``data`` section.

    Evaluation uses ``data.eval_crop_pct``/``data.interpolation`` when set, else the model's
    ``crop_pct``/``interpolation``; ``data.mean``/``data.std`` of None mean the model's
    (``ppnets.model_info``, what pretrained weights expect)."""
    aug = data.get("augment") or {}
    size = int(data["image_size"])
    model = model_data_config(model_name) if model_name else {
        "crop_pct": 0.875, "interpolation": "bilinear", "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD}
    mean = data.get("mean") or model["mean"]
    std = data.get("std") or model["std"]
    if mode == "train":
        return train_transform(
            size, scale=aug.get("scale", (0.08, 1.0)), ratio=aug.get("ratio", (3 / 4, 4 / 3)),
            hflip=0.5 if aug.get("hflip", True) else 0.0,
            interpolation=aug.get("train_interpolation") or "bicubic",
            rand_augment=aug.get("rand_augment"), random_erasing=aug.get("random_erasing", 0.0),
            mean=mean, std=std, auto_augment=aug.get("auto_augment"))
    if mode in ("val", "test"):
        return eval_transform(size, data.get("eval_crop_pct") or model["crop_pct"],
                              data.get("interpolation") or model["interpolation"], mean, std)
    raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")


def build_imagenet(mode: str, data: dict, model_name: Optional[str] = None) -> ImageListDataset:
    """The ``train`` or ``val`` split of ImageNet described by a config's ``data`` section
    (transforms: :func:`image_transform`)."""
    return _split_dataset(data, "train" if mode == "train" else "val",
                          image_transform(mode, data, model_name))


def _hold_out(samples: Sequence[Tuple[str, int]], fraction: float, seed: int):
    """(train, val) samples: ``fraction`` of every class, picked by a seeded shuffle."""
    rng = random.Random(seed)
    by_class: dict = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    train, val = [], []
    for label in sorted(by_class):
        group = list(by_class[label])
        rng.shuffle(group)
        n_val = int(round(len(group) * fraction)) if len(group) > 1 else 0
        val += group[:n_val]
        train += group[n_val:]
    return sorted(train), sorted(val)


def build_folder(data: dict, model_name: Optional[str] = None, seed: int = 0) -> tuple:
    """``(train_set, val_set, num_classes)`` of your own images: ``data.train_dir`` (one
    sub-folder per class) or ``data.train_list`` (PaddleClas list, paths relative to
    ``data.data_dir``), validated on ``data.val_dir``/``data.val_list`` or, without either, on
    ``data.val_fraction`` of each class held out of the training images. The number of classes
    is the data's (``data.num_classes`` overrides)."""
    train_tf, val_tf = image_transform("train", data, model_name), \
        image_transform("val", data, model_name)
    on_bad_image = data.get("on_bad_image") or "error"
    if data.get("train_dir"):
        train = ImageListDataset.from_folder(data["train_dir"], train_tf, "train", on_bad_image)
    elif data.get("train_list"):
        train = _split_dataset(data, "train", train_tf)
    else:
        raise DataUnavailableError(
            "data.dataset=folder needs data.train_dir (a folder with one sub-folder of images per "
            "class) or data.train_list (a PaddleClas list file: 'relative/path label' per line, "
            "paths relative to data.data_dir)")
    if not train.samples:
        raise DataUnavailableError(
            f"no images found for training in {data.get('train_dir') or data.get('train_list')}: "
            f"its class folders hold no files named {', '.join(IMG_EXTENSIONS)} (any case)")
    classes = train.classes
    if data.get("val_dir"):
        val = ImageListDataset.from_folder(data["val_dir"], val_tf, "val", on_bad_image)
        if classes is not None and val.classes != classes:
            only_train = sorted(set(classes) - set(val.classes))
            only_val = sorted(set(val.classes) - set(classes))
            raise DataUnavailableError(
                f"data.val_dir and data.train_dir need the same class sub-folders (the class "
                f"index is the folder's position in the sorted names); only in train_dir: "
                f"{only_train or 'none'}, only in val_dir: {only_val or 'none'}")
    elif data.get("val_list"):
        val = _split_dataset(data, "val", val_tf)
    else:
        kept, held = _hold_out(train.samples, float(data.get("val_fraction") or 0.1), seed)
        train = ImageListDataset(kept, train_tf, classes, on_bad_image)
        val = ImageListDataset(held, val_tf, classes, on_bad_image)
    num_classes = int(data.get("num_classes") or
                      (len(classes) if classes else 1 + max(label for _, label in train.samples)))
    return train, val, num_classes
