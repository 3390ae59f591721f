"""CIFAR-10 input pipeline and a resumable, per-epoch deterministic batch sampler.

The data come from ``paddle.vision.datasets.Cifar10`` (the official ``cifar-10-python.tar.gz``
layout). Transforms follow the standard CIFAR recipe (He et al. 2016): train = RandomCrop(32,
padding=4) + RandomHorizontalFlip, optionally followed by a resize to ``image_size`` (the crop and
flip happen at the native 32x32 resolution, which is cheaper and matches the paper's
augmentation); test = optional resize. Both end with per-channel normalisation and give CHW
float32 numpy arrays.
"""
from __future__ import annotations

import math
import os
import random
from typing import Iterator, List, Optional, Sequence

import numpy as np
import paddle
import paddle.vision.transforms as T

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR10_FILENAME", "DataUnavailableError",
           "ToCHWNormalized", "cifar10_transforms", "build_cifar10", "resolve_cifar10_file",
           "EpochBatchSampler", "count_cifar10_images", "seed_everything", "build_datasets",
           "build_train_collate", "default_num_workers", "DATASET_CLASSES"]

# Per-channel statistics of the 50,000 CIFAR-10 training images (pixel values / 255).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_FILENAME = "cifar-10-python.tar.gz"


class DataUnavailableError(RuntimeError):
    """Neither a local archive nor a download could provide the data set."""


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
    CIFAR-10 (this module) or ImageNet (:mod:`ppnets.engine.imagenet`); ``data.num_classes``
    overrides the data set's class count (e.g. an ImageNet subset in a list file)."""
    data = cfg["data"]
    num_classes = int(data.get("num_classes") or DATASET_CLASSES[data["dataset"]])
    if data["dataset"] == "imagenet":
        from .imagenet import build_imagenet
        return (build_imagenet("train", data, cfg["model"]["name"]),
                build_imagenet("val", data, cfg["model"]["name"]), num_classes)
    common = dict(data_file=data["data_file"], image_size=data["image_size"],
                  mean=data["mean"], std=data["std"])
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
    from .mix import MixupCutmixCollate
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
