"""Data of the searches: the training split without a held-out part, the held-out split (the
slimming's accuracy; measured with :func:`ppnets.engine.evaluate_network`), BatchNorm
calibration batches, and the supernets' training through the engine (:func:`train_supernet`).

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

from ppnets.engine import (
    EngineModel,
    EpochBatchSampler,
    FailFastDataLoader,
    ImageListDataset,
    StepOutput,
    TrainParts,
    build_cifar10,
    build_imagenet,
    build_train_parts,
    epoch_line,
    eval_transform,
)
from ppnets.engine.data import DATASET_CLASSES
from ppnets.engine.transforms import model_data_config

__all__ = ["SearchData", "build_search_data", "train_supernet"]


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


def train_supernet(cfg: Mapping[str, Any], data: SearchData, recipe: Mapping[str, Any],
                   seed: int, network: paddle.nn.Layer, parameters,
                   make_step: Callable[[TrainParts, int], Callable[[Any, Any], StepOutput]],
                   verbose: bool = True) -> Dict[str, Any]:
    """Train a supernet with the engine: ``cfg``'s ``optim``/``sched`` for ``parameters`` and its
    loss (:func:`~ppnets.engine.step.build_train_parts`), ``paddle.Model.fit`` with the engine's
    logging, over the training split for ``recipe``'s ``epochs``, ``batch_size`` and optional
    ``max_batches``. ``make_step(parts, total_steps)`` returns the supernet's own step
    ``(images, labels) -> StepOutput``, built from the engine's pieces (it may add to ``parts``,
    e.g. an optimizer of architecture parameters). Returns ``epochs``, ``steps``,
    ``batch_size``, ``final_loss`` (mean over the last epoch) and ``time_s``."""
    epochs, batch_size = int(recipe["epochs"]), int(recipe["batch_size"])
    loader = data.train_loader(batch_size, seed, recipe.get("max_batches"))
    steps_per_epoch = len(loader.batch_sampler)
    parts = build_train_parts(cfg, network, parameters, epochs=epochs,
                              steps_per_epoch=steps_per_epoch, batch_size=batch_size)
    model = EngineModel(parts, make_step(parts, epochs * steps_per_epoch))
    records: List[Dict[str, Any]] = []

    def on_epoch_end(record: Dict[str, Any]) -> None:
        records.append(record)
        if verbose:
            print(epoch_line(record, epochs), flush=True)

    t0 = time.perf_counter()
    log = model.train_epochs(loader, epochs, on_epoch_end, verbose=2 if verbose else 0,
                             log_freq=int(cfg["train"]["log_freq"]))
    return {"epochs": epochs, "steps": log.steps, "batch_size": batch_size,
            "final_loss": records[-1]["train_loss"] if records else None,
            "time_s": time.perf_counter() - t0}
