"""Data of the searches: the training split without a held-out part, the held-out split (the
slimming's accuracy), BatchNorm calibration batches, top-1 evaluation, and the shared training
loop of the supernets.

The held-out images are taken from the *training* split (a seeded permutation), read with the
evaluation transform: the search never sees the test/validation split, which only the final
training of the searched networks reports. CIFAR-10 (``data.dataset: cifar10``) and ImageNet
folders or list files (``data.dataset: imagenet``) come from ``ppnets.engine.data``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import paddle
import paddle.nn.functional as F

from ppnets.engine import (
    EpochBatchSampler,
    FailFastDataLoader,
    ImageListDataset,
    build_cifar10,
    build_imagenet,
    build_optimizer,
    build_scheduler,
    eval_transform,
)
from ppnets.engine.data import DATASET_CLASSES
from ppnets.engine.transforms import model_data_config

__all__ = ["SearchData", "build_search_data", "evaluate", "run_training", "cross_entropy"]


@dataclass
class SearchData:
    train: paddle.io.Dataset
    heldout: paddle.io.Dataset
    num_classes: int
    num_workers: int = 0

    def train_loader(self, batch_size: int, seed: int,
                     max_batches: Optional[int] = None) -> paddle.io.DataLoader:
        sampler = EpochBatchSampler(len(self.train), batch_size, shuffle=True, seed=seed,
                                    drop_last=True, max_batches=max_batches)
        return FailFastDataLoader(self.train, batch_sampler=sampler,
                                  num_workers=self.num_workers)

    def heldout_loader(self, batch_size: int) -> paddle.io.DataLoader:
        sampler = EpochBatchSampler(len(self.heldout), batch_size, shuffle=False)
        return FailFastDataLoader(self.heldout, batch_sampler=sampler,
                                  num_workers=self.num_workers)

    def calibration_batches(self, batches: int, batch_size: int, seed: int) -> List[np.ndarray]:
        """Fixed training batches (augmented) for BatchNorm re-estimation, drawn once."""
        loader = self.train_loader(batch_size, seed, max_batches=batches)
        return [np.asarray(x) for x, _ in loader]


def build_search_data(cfg: Mapping[str, Any], heldout_images: int, seed: int) -> SearchData:
    """Training and held-out splits for a resolved config (``data`` section as for ``fit``)."""
    data = cfg["data"]
    num_classes = int(data.get("num_classes") or DATASET_CLASSES[data["dataset"]])
    if data["dataset"] == "imagenet":
        train = build_imagenet("train", data, cfg["model"]["name"])
        look = model_data_config(cfg["model"]["name"])
        plain = ImageListDataset(train.samples, eval_transform(
            data["image_size"], data.get("eval_crop_pct") or look["crop_pct"],
            data.get("interpolation") or look["interpolation"], data["mean"], data["std"]))
    else:
        common = dict(data_file=data["data_file"], image_size=data["image_size"],
                      mean=data["mean"], std=data["std"])
        train = build_cifar10("train", random_crop_padding=data["augment"]["random_crop_padding"],
                              hflip=data["augment"]["hflip"], **common)
        plain = build_cifar10("train", random_crop_padding=0, hflip=False, **common)
    n = len(train)
    if not 0 < heldout_images < n:
        raise ValueError(f"heldout_images={heldout_images}: the training split has {n} images; "
                         "hold out at least one and leave some for training")
    order = np.random.RandomState(seed).permutation(n)
    held, rest = order[:heldout_images].tolist(), order[heldout_images:].tolist()
    workers = data.get("num_workers")
    return SearchData(paddle.io.Subset(train, rest), paddle.io.Subset(plain, held), num_classes,
                      int(workers) if workers is not None else 0)


def evaluate(model: paddle.nn.Layer, loader: paddle.io.DataLoader) -> float:
    """Top-1 accuracy (0-1) of ``model`` in eval mode."""
    model.eval()
    correct = total = 0
    with paddle.no_grad():
        for x, y in loader:
            pred = paddle.argmax(model(x), axis=-1)
            correct += int((pred == paddle.reshape(y, [-1])).astype("int64").sum())
            total += int(y.shape[0])
    return correct / max(total, 1)


def run_training(cfg: Mapping[str, Any], params, data: SearchData, *, epochs: int,
                 batch_size: int, seed: int, step: Callable[[paddle.Tensor, paddle.Tensor,
                                                             float, int], float],
                 extra_optimizers=(), max_batches: Optional[int] = None,
                 log: Callable[[str], None] = print, log_every: int = 20) -> Dict[str, Any]:
    """The supernets' training loop: ``optim``/``sched`` of ``cfg`` for ``params`` (the
    engine's optimizer and per-iteration schedule), ``epochs`` over the training split.

    ``step(x, y, progress, it)`` computes the loss(es) and their gradients for one batch
    (``progress`` in [0, 1) drives schedules such as the Gumbel temperature) and returns the
    loss; the loop then steps and clears the optimizer and every one of ``extra_optimizers``.
    """
    loader = data.train_loader(batch_size, seed, max_batches)
    steps_per_epoch = len(loader.batch_sampler)
    sched = build_scheduler(cfg["sched"], float(cfg["optim"]["lr"]), epochs, steps_per_epoch)
    optimizer = build_optimizer(cfg["optim"], params, sched)
    total, it, losses = epochs * steps_per_epoch, 0, []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for x, y in loader:
            loss = step(x, paddle.reshape(y, [-1]), it / max(total, 1), it)
            for opt in (optimizer, *extra_optimizers):
                opt.step()
                opt.clear_grad()
            sched.step()
            losses.append(float(loss))
            it += 1
            if it % log_every == 0 or it == total:
                seen = it * batch_size
                log(f"  epoch {epoch + 1}/{epochs} step {it}/{total} loss "
                    f"{np.mean(losses[-log_every:]):.3f} lr {sched.get_lr():.2e} "
                    f"({seen / (time.perf_counter() - t0):.1f} img/s)")
    return {"epochs": epochs, "steps": it, "batch_size": batch_size,
            "final_loss": float(np.mean(losses[-log_every:])) if losses else None,
            "time_s": time.perf_counter() - t0}


def cross_entropy(logits, y, label_smoothing: float) -> paddle.Tensor:
    return F.cross_entropy(logits, y, label_smoothing=float(label_smoothing or 0.0))
