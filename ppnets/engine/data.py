"""Data I/O of the training engine: data sets, samplers, loaders' collate.

* CIFAR-10 from ``paddle.vision.datasets.Cifar10`` (the official ``cifar-10-python.tar.gz``
  layout: :func:`resolve_cifar10_file`, :func:`build_cifar10`, :func:`count_cifar10_images`);
* image folders and PaddleClas list files (:class:`ImageListDataset`, :func:`build_imagenet`):
  the standard tree ``<root>/train/<wnid>/*.JPEG``, ``<root>/val/<wnid>/*.JPEG`` (the class
  index is the position of the folder name in the sorted list of the split's folders, the
  order of every ImageNet checkpoint, timm's and torchvision's included) or one
  ``relative/path label`` a line, paths relative to a root folder;
* :class:`EpochBatchSampler`, resumable and per-epoch deterministic, sharded across ranks.

Every sample is ``(CHW float32 array, int64 label)``; the transforms are
:mod:`ppnets.engine.transforms`' and the augmentations :mod:`ppnets.engine.augment`'s.
"""
from __future__ import annotations

import math
import os
import random
import re
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from PIL import Image

from .augment import MixupCutmixCollate
from .transforms import (CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD,
                         cifar10_transforms, eval_transform, model_data_config, train_transform)

__all__ = ["CIFAR10_FILENAME", "DataUnavailableError", "build_cifar10", "resolve_cifar10_file",
           "EpochBatchSampler", "count_cifar10_images", "seed_everything", "build_datasets",
           "build_train_collate", "default_num_workers", "DATASET_CLASSES", "build_folder",
           "image_transform", "ImageListDataset", "build_imagenet"]

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
    each rank takes every ``world_size``-th sample of the (padded) permutation.
    ``max_batches`` caps the batches per epoch (smoke runs).
    """

    def __init__(self, dataset_len: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, max_batches: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None):
        self.dataset_len = int(dataset_len)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.max_batches = max_batches
        self.num_replicas = num_replicas or paddle.distributed.get_world_size()
        self.rank = paddle.distributed.get_rank() if rank is None else rank
        self.epoch = 0
        self.num_samples = int(math.ceil(self.dataset_len / self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> List[int]:
        if self.shuffle:
            order = np.random.RandomState(self.seed + self.epoch).permutation(self.dataset_len)
        else:
            order = np.arange(self.dataset_len)
        order = order.tolist()
        total = self.num_samples * self.num_replicas
        order += order[: total - len(order)]  # pad so every rank gets the same count
        return order[self.rank:total:self.num_replicas]

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
    if data.get("train_dir"):
        train = ImageListDataset.from_folder(data["train_dir"], train_tf)
    elif data.get("train_list"):
        train = _split_dataset(data, "train", train_tf)
    else:
        raise DataUnavailableError(
            "data.dataset=folder needs data.train_dir (a folder with one sub-folder of images per "
            "class) or data.train_list (a PaddleClas list file: 'relative/path label' per line, "
            "paths relative to data.data_dir)")
    if not train.samples:
        raise DataUnavailableError(f"no images found for training in "
                                   f"{data.get('train_dir') or data.get('train_list')}")
    classes = train.classes
    if data.get("val_dir"):
        val = ImageListDataset.from_folder(data["val_dir"], val_tf)
        if classes is not None and val.classes != classes:
            raise DataUnavailableError(
                f"data.val_dir has classes {val.classes} but data.train_dir has {classes}: the "
                "two folders need the same class sub-folders")
    elif data.get("val_list"):
        val = _split_dataset(data, "val", val_tf)
    else:
        kept, held = _hold_out(train.samples, float(data.get("val_fraction") or 0.1), seed)
        train = ImageListDataset(kept, train_tf, classes)
        val = ImageListDataset(held, val_tf, classes)
    num_classes = int(data.get("num_classes") or
                      (len(classes) if classes else 1 + max(label for _, label in train.samples)))
    return train, val, num_classes
