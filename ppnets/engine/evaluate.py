"""Evaluate weights on ImageNet-style validation images: top-1, top-5, images/s.

Preprocessing is timm's evaluation transform with the model's ``crop_pct``, ``interpolation``,
``mean``, ``std`` and input size (``ppnets.model_info``; overridable): shorter side resized to
``floor(size / crop_pct)`` with PIL, center crop, normalise
(:func:`ppnets.engine.transforms.eval_transform`). ``images_per_s`` is end to end (decoding,
preprocessing and the forward pass) after the first batch.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Dict, Optional, Union

import numpy as np
import paddle
from tqdm import tqdm

from ppnets.factory import create_model
from ppnets.utils import atomic_write, file_sha256
from ppnets.weights.pretrained import resolve_weight

from .data import ImageListDataset, default_num_workers
from .transforms import eval_transform, model_data_config

__all__ = ["evaluate", "eval_dataset", "topk_correct"]


def eval_dataset(transform, data_dir: Optional[str] = None, list_file: Optional[str] = None,
                 root: Optional[str] = None, limit: Optional[int] = None):
    """(dataset, description) of an evaluation split: a PaddleClas list file (paths relative to
    ``root``, default the list's folder) or a folder ``data_dir`` holding ``val/<class>/`` or
    the class folders themselves."""
    if list_file:
        ds = ImageListDataset.from_list(list_file, root, transform)
        source = {"list": os.path.abspath(list_file),
                  "root": os.path.abspath(root or os.path.dirname(list_file))}
    elif data_dir:
        split = os.path.join(data_dir, "val")
        split = split if os.path.isdir(split) else data_dir
        ds = ImageListDataset.from_folder(split, transform)
        source = {"folder": os.path.abspath(split), "classes": len(ds.classes)}
    else:
        raise ValueError("give data_dir (a folder of class folders, or with val/) or list_file "
                         "(a PaddleClas list: 'relative/path label' per line)")
    if limit is not None:
        ds.samples = ds.samples[:int(limit)]
    return ds, source


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-image bool: label among the ``k`` highest logits."""
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == labels.reshape(-1, 1)).any(axis=1)


def evaluate(model: str, pretrained: Union[bool, str], data_dir: Optional[str] = None,
             list_file: Optional[str] = None, root: Optional[str] = None,
             batch_size: int = 64, num_workers: Optional[int] = None, device: str = "cpu",
             limit: Optional[int] = None, num_classes: int = 1000,
             input_size: Optional[int] = None, crop_pct: Optional[float] = None,
             interpolation: Optional[str] = None, save_logits: Optional[str] = None,
             progress: bool = False) -> Dict[str, Any]:
    """Top-1/top-5 of registry model ``model`` with the weights ``pretrained`` (anything
    ``create_model(pretrained=...)`` reads: a checkpoint path, or True / a tag for the
    published weights) on an evaluation split (:func:`eval_dataset`), preprocessed with the
    model's eval transform -- for published weights the one they were evaluated with (their
    input size, crop, interpolation, mean and std) -- unless overridden. ``save_logits``: an
    ``.npz`` of per-image logits, labels and paths. Raises ValueError with what to do on bad
    input."""
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise ValueError("device 'gpu' but this paddlepaddle build has no CUDA support")
    paddle.set_device(device)
    pre = model_data_config(model)
    weight = None
    if pretrained is True or (isinstance(pretrained, str) and not os.path.isfile(pretrained)
                              and os.sep not in pretrained):
        weight = resolve_weight(model, pretrained)
        pre.update(input_size=int(weight.input_size[-1]), crop_pct=float(weight.crop_pct),
                   interpolation=weight.interpolation,
                   mean=tuple(getattr(weight, "mean", None) or pre["mean"]),
                   std=tuple(getattr(weight, "std", None) or pre["std"]))
    elif not os.path.isfile(pretrained):
        raise ValueError(f"pretrained weights {pretrained!r} do not exist")
    pre.update({k: v for k, v in (("input_size", input_size), ("crop_pct", crop_pct),
                                  ("interpolation", interpolation)) if v})
    transform = eval_transform(pre["input_size"], pre["crop_pct"], pre["interpolation"],
                               pre["mean"], pre["std"])
    ds, source = eval_dataset(transform, data_dir, list_file, root, limit)
    if len(ds) == 0:
        raise ValueError(f"no images to evaluate in {source}")
    nw = default_num_workers() if num_workers is None else int(num_workers)
    loader = paddle.io.DataLoader(ds, batch_size=int(batch_size), shuffle=False,
                                  drop_last=False, num_workers=nw, use_shared_memory=True,
                                  return_list=True)
    net = create_model(model, num_classes=int(num_classes), pretrained=pretrained)
    net.eval()

    logits_all, labels_all = [], []
    t_start = t_after_first = time.perf_counter()
    n_after_first = 0
    with paddle.no_grad():
        batches = tqdm(loader, desc=f"evaluating {model}", unit="batch", disable=not progress)
        for i, (images, labels) in enumerate(batches):
            out = net(images)
            logits_all.append(out.numpy().astype(np.float32))
            labels_all.append(labels.numpy().reshape(-1).astype(np.int64))
            if i == 0:
                t_after_first = time.perf_counter()  # worker start-up and warm-up excluded
            else:
                n_after_first += int(images.shape[0])
    t_end = time.perf_counter()
    logits = np.concatenate(logits_all)
    labels = np.concatenate(labels_all)
    top1 = topk_correct(logits, labels, 1)
    top5 = topk_correct(logits, labels, min(5, logits.shape[1]))
    steady = t_end - t_after_first
    result = {
        "model": model,
        **({"pretrained": os.path.abspath(pretrained),
            "pretrained_sha256": file_sha256(pretrained)} if weight is None else
           {"pretrained": f"published:{weight.model}.{weight.tag}",
            "weight": dataclasses.asdict(weight)}),
        "num_images": int(len(labels)), "top1": float(top1.mean()), "top5": float(top5.mean()),
        "top1_correct": int(top1.sum()), "top5_correct": int(top5.sum()),
        "images_per_s": (n_after_first / steady) if n_after_first and steady > 0 else None,
        "total_time_s": t_end - t_start, "batch_size": int(batch_size), "num_workers": nw,
        "device": device, "limit": limit, "data": source,
        "preprocessing": {**pre, "mean": list(pre["mean"]), "std": list(pre["std"]),
                          "resize_shorter_to": int(np.floor(pre["input_size"] / pre["crop_pct"])),
                          "center_crop": pre["input_size"], "library": "PIL"},
    }
    if save_logits:
        paths = np.asarray([os.path.relpath(p, source.get("root", source.get("folder", "")))
                            for p, _ in ds.samples])
        def _save(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, logits=logits, labels=labels, paths=paths)
        atomic_write(save_logits, _save)
    return result
