"""Evaluation: :func:`evaluate_network`, the one top-1/top-5 loop (training runs, the searches,
INT8 and the weights evaluation all use it), :func:`evaluate`, published weights or a
checkpoint on ImageNet-style validation images: top-1, top-5, images/s, and
:func:`evaluate_export`, the same for an export folder run by a runtime
(:func:`ppnets.runtime.open_session`: Paddle Inference, ONNX Runtime, OpenVINO, Paddle Lite) at
a precision, on the preprocessing its ``export.json`` records (:func:`serving_info` writes it at
export: the weights' eval transform, :func:`weights_preprocessing`, and their class names).

Preprocessing is timm's evaluation transform with the model's ``crop_pct``, ``interpolation``,
``mean``, ``std`` and input size (``ppnets.model_info``; overridable): shorter side resized to
``floor(size / crop_pct)`` with PIL, center crop, normalise
(:func:`ppnets.engine.transforms.eval_transform`). ``images_per_s`` is end to end (decoding,
preprocessing and the forward pass) after the first batch.

Before the first batch every image file is checked (:func:`ppnets.engine.datacheck
.screen_datasets`): ``on_bad_image="error"`` raises :class:`~ppnets.engine.data.BadImageError`
listing every unreadable file, ``"skip"`` evaluates without them; a file that fails to decode
during the evaluation raises within seconds (``error``) or is replaced by its neighbour in the
list (``skip``). The result's ``bad_images`` records both.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import yaml
from tqdm import tqdm

from ppnets.factory import create_model
from ppnets.runtime import check_session, open_session, runtime_status
from ppnets.utils import atomic_write, file_sha256
from ppnets.weights.pretrained import resolve_weight

from .data import FailFastDataLoader, ImageListDataset, default_num_workers
from .datacheck import screen_datasets
from .predict import (export_preprocessing, fixed_batch, read_export_json, usable_cores,
                      weights_class_names)
from .transforms import eval_transform, model_data_config

__all__ = ["evaluate", "evaluate_network", "Evaluation", "eval_dataset", "topk_correct",
           "evaluate_export", "weights_preprocessing", "preprocessing_record", "top1_from",
           "serving_info", "EVAL_RUNTIME_ORDER", "fastest_eval_runtime"]


def eval_dataset(transform, data_dir: Optional[str] = None, list_file: Optional[str] = None,
                 root: Optional[str] = None, limit: Optional[int] = None,
                 on_bad_image: str = "error"):
    """(dataset, description) of an evaluation split: a PaddleClas list file (paths relative to
    ``root``, default the list's folder) or a folder ``data_dir`` holding ``val/<class>/`` or
    the class folders themselves. Raises DataUnavailableError (what to do) when there is
    neither."""
    if list_file:
        ds = ImageListDataset.from_list(list_file, root, transform, on_bad_image)
        source = {"list": os.path.abspath(list_file),
                  "root": os.path.abspath(root or os.path.dirname(list_file))}
    elif data_dir:
        split = os.path.join(data_dir, "val")
        split = split if os.path.isdir(split) else data_dir
        ds = ImageListDataset.from_folder(split, transform, "eval", on_bad_image)
        source = {"folder": os.path.abspath(split), "classes": len(ds.classes)}
    else:
        raise ValueError("give data_dir (a folder of class folders, or with val/) or list_file "
                         "(a PaddleClas list: 'relative/path label' per line)")
    if limit is not None:
        ds = ImageListDataset(ds.samples[:int(limit)], transform, ds.classes, on_bad_image)
    return ds, source


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-image bool: label among the ``k`` highest logits."""
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == labels.reshape(-1, 1)).any(axis=1)


@dataclass
class Evaluation:
    """Result of :func:`evaluate_network`. ``images_per_s`` is end to end after the first batch
    (worker start-up and warm-up excluded); ``logits``/``labels`` are kept on request."""
    top1: float
    top5: float
    top1_correct: int
    top5_correct: int
    num_images: int
    time_s: float
    images_per_s: Optional[float]
    logits: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None


def _numpy(value) -> np.ndarray:
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def evaluate_network(network: Union[paddle.nn.Layer, Callable[[Any], Any]],
                     batches: Iterable[Tuple[Any, Any]], *, keep_logits: bool = False,
                     sum_over_ranks: bool = False, progress: Optional[str] = None
                     ) -> Evaluation:
    """Top-1/top-5 of ``network`` over ``batches`` of ``(images, labels)`` (a DataLoader, or
    arrays). A ``paddle.nn.Layer`` runs in eval mode without gradients; any other callable
    (e.g. a static program's executor) maps a batch of images to logits. ``sum_over_ranks``:
    every rank of a data-parallel run evaluated its own share of the images (no image twice);
    the counts are summed so that every rank gets the metrics of the whole set. ``progress``:
    a progress-bar label."""
    is_layer = isinstance(network, paddle.nn.Layer)
    if is_layer:
        network.eval()
    counts = np.zeros(3, dtype=np.int64)   # top-1 correct, top-5 correct, images
    kept: list = []
    t_start = t_first = time.perf_counter()
    after_first = 0
    with paddle.no_grad() if is_layer else contextlib.nullcontext():
        for i, (images, labels) in enumerate(tqdm(batches, desc=progress, unit="batch",
                                                  disable=progress is None)):
            if is_layer and not isinstance(images, paddle.Tensor):
                images = paddle.to_tensor(images)
            elif not is_layer:   # a runtime gets its own host copy, never the loader's buffer
                images = _numpy(images)
            logits = _numpy(network(images)).astype(np.float32)
            labels = _numpy(labels).reshape(-1).astype(np.int64)
            counts += [topk_correct(logits, labels, 1).sum(),
                       topk_correct(logits, labels, min(5, logits.shape[1])).sum(), len(labels)]
            if keep_logits:
                kept.append((logits, labels))
            if i == 0:
                t_first = time.perf_counter()
            else:
                after_first += len(labels)
    t_end = time.perf_counter()
    if sum_over_ranks:
        total = paddle.to_tensor(counts)
        paddle.distributed.all_reduce(total)
        counts = total.numpy()
    n = int(counts[2])
    steady = t_end - t_first
    return Evaluation(
        top1=float(counts[0] / max(n, 1)), top5=float(counts[1] / max(n, 1)),
        top1_correct=int(counts[0]), top5_correct=int(counts[1]), num_images=n,
        time_s=t_end - t_start,
        images_per_s=after_first / steady if after_first and steady > 0 else None,
        logits=np.concatenate([k[0] for k in kept]) if kept else None,
        labels=np.concatenate([k[1] for k in kept]) if kept else None)


def weights_preprocessing(model: str, pretrained: Union[bool, str],
                          overrides: Optional[Dict[str, Any]] = None
                          ) -> Tuple[Dict[str, Any], Optional[Any]]:
    """(the eval preprocessing of ``model`` with the weights ``pretrained``, updated by the
    non-empty ``overrides``; the published weight or None). Published weights: the input size,
    crop, interpolation, mean and std they were evaluated with. A checkpoint of a ``ppnets
    train`` run on image files (``config.yaml`` beside it): that run's evaluation transform
    (``data.image_size``, ``eval_crop_pct``, ``interpolation``, ``mean``, ``std``). Other
    files: the model's (``model_info``). What ``ppnets eval``, ``ppnets predict`` and an
    export's ``preprocessing`` use."""
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
    else:
        pre.update(_run_preprocessing(pretrained))
    pre.update({k: v for k, v in (overrides or {}).items() if v})
    return pre, weight


def _run_preprocessing(weights_file: str) -> Dict[str, Any]:
    """The evaluation transform of the ``ppnets train`` run whose checkpoint ``weights_file``
    is (its ``config.yaml`` beside it), for image-file data sets; {} otherwise."""
    config = os.path.join(os.path.dirname(os.path.abspath(weights_file)), "config.yaml")
    if not os.path.isfile(config):
        return {}
    try:
        with open(config, encoding="utf-8") as f:
            data = (yaml.safe_load(f) or {}).get("data") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    if data.get("dataset") not in ("imagenet", "folder"):
        return {}   # CIFAR-10's test transform is not a resize-and-crop
    found = {"input_size": data.get("image_size"), "crop_pct": data.get("eval_crop_pct"),
             "interpolation": data.get("interpolation"),
             "mean": tuple(data["mean"]) if data.get("mean") else None,
             "std": tuple(data["std"]) if data.get("std") else None}
    return {k: v for k, v in found.items() if v}


def _trained_classifier(model: str, pretrained: Union[bool, str], num_classes: int):
    """``create_model(model, pretrained=...)``; refuses weights whose classifier is for another
    class count (create_model would keep a fresh one, for fine-tuning)."""
    net = create_model(model, num_classes=int(num_classes), pretrained=pretrained)
    kept = net.loaded_weights.classifier_kept if net.loaded_weights else []
    if kept:
        theirs = net.loaded_weights.source_classes
        raise ValueError(f"{net.loaded_weights.source} has a classifier for "
                         f"{theirs or 'another number of'} classes, not {num_classes}: pass "
                         f"--num-classes {theirs or 'N'} (evaluating a random classifier measures "
                         "nothing)")
    return net


def _eval_loader(pre: Dict[str, Any], data_dir: Optional[str], list_file: Optional[str],
                 root: Optional[str], limit: Optional[int], on_bad_image: str, batch_size: int,
                 num_workers: Optional[int], progress: bool):
    """(data set, its description, screening report, loader, workers) of an evaluation split
    preprocessed with ``pre``; every image file checked before the first batch."""
    transform = eval_transform(pre["input_size"], pre["crop_pct"], pre["interpolation"],
                               pre["mean"], pre["std"])
    ds, source = eval_dataset(transform, data_dir, list_file, root, limit, on_bad_image)
    if len(ds) == 0:
        raise ValueError(f"no images to evaluate in {source}")
    checked, screening = screen_datasets({"eval": ds}, on_bad_image,
                                         image_size=int(pre["input_size"]), progress=progress)
    ds = checked["eval"]
    nw = default_num_workers() if num_workers is None else int(num_workers)
    loader = FailFastDataLoader(ds, batch_size=int(batch_size), shuffle=False,
                                drop_last=False, num_workers=nw, use_shared_memory=True,
                                return_list=True)
    return ds, source, screening, loader, nw


def _common_record(res: Evaluation, pre: Dict[str, Any], ds: ImageListDataset, source,
                   screening, batch_size: int, nw: int, limit: Optional[int]) -> Dict[str, Any]:
    return {
        "num_images": res.num_images, "top1": res.top1, "top5": res.top5,
        "top1_correct": res.top1_correct, "top5_correct": res.top5_correct,
        "images_per_s": res.images_per_s, "total_time_s": res.time_s,
        "batch_size": int(batch_size), "num_workers": nw, "limit": limit, "data": source,
        "preprocessing": preprocessing_record(pre),
        "bad_images": {**screening.to_dict(), "unreadable_during_run": ds.unreadable(),
                       "unreadable_during_run_count": len(ds.unreadable())},
    }


def preprocessing_record(pre: Dict[str, Any]) -> Dict[str, Any]:
    """``pre`` (:func:`weights_preprocessing`) as written to result files and ``export.json``:
    JSON types, with the resize and crop it implies."""
    return {"input_size": int(pre["input_size"]), "crop_pct": float(pre["crop_pct"]),
            "interpolation": pre["interpolation"], "mean": [float(v) for v in pre["mean"]],
            "std": [float(v) for v in pre["std"]],
            "resize_shorter_to": int(np.floor(pre["input_size"] / pre["crop_pct"])),
            "center_crop": int(pre["input_size"]), "library": "PIL"}


def evaluate(model: str, pretrained: Union[bool, str], data_dir: Optional[str] = None,
             list_file: Optional[str] = None, root: Optional[str] = None,
             batch_size: int = 64, num_workers: Optional[int] = None, device: str = "cpu",
             limit: Optional[int] = None, num_classes: int = 1000,
             input_size: Optional[int] = None, crop_pct: Optional[float] = None,
             interpolation: Optional[str] = None, save_logits: Optional[str] = None,
             progress: bool = False, on_bad_image: str = "error",
             keep_logits: bool = False) -> Dict[str, Any]:
    """Top-1/top-5 of registry model ``model`` with the weights ``pretrained`` (anything
    ``create_model(pretrained=...)`` reads: a checkpoint path, or True / a tag for the
    published weights) on an evaluation split (:func:`eval_dataset`), preprocessed with
    :func:`weights_preprocessing` -- for published weights the transform they were evaluated
    with -- unless overridden. ``save_logits``: an ``.npz`` of per-image logits, labels and
    paths. ``keep_logits``: the result also holds them (``logits``, ``labels``: arrays, not
    JSON). ``on_bad_image``: see the module docstring. Raises ValueError or
    DataUnavailableError (BadImageError: unreadable images) with what to do on bad input."""
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise ValueError("device 'gpu' but this paddlepaddle build has no CUDA support")
    paddle.set_device(device)
    pre, weight = weights_preprocessing(model, pretrained, {"input_size": input_size,
                                                            "crop_pct": crop_pct,
                                                            "interpolation": interpolation})
    ds, source, screening, loader, nw = _eval_loader(pre, data_dir, list_file, root, limit,
                                                     on_bad_image, batch_size, num_workers,
                                                     progress)
    net = _trained_classifier(model, pretrained, num_classes)
    res = evaluate_network(net, loader, keep_logits=bool(save_logits) or keep_logits,
                           progress=f"evaluating {model}" if progress else None)
    result = {
        "model": model,
        **({"pretrained": os.path.abspath(pretrained),
            "pretrained_sha256": file_sha256(pretrained)} if weight is None else
           {"pretrained": f"published:{weight.model}.{weight.tag}",
            "weight": dataclasses.asdict(weight)}),
        **_common_record(res, pre, ds, source, screening, batch_size, nw, limit),
        "device": device,
    }
    if save_logits:
        _save_logits(save_logits, res, ds, source)
    if keep_logits:
        result.update(logits=res.logits, labels=res.labels)
    return result


def serving_info(name: str, input_size: Sequence[int], weights: Optional[Dict[str, Any]],
                 num_classes: Optional[int]) -> Dict[str, Any]:
    """What an export of ``name`` with ``weights`` (``LoadedWeights.record()``) records for
    predict and eval: ``class_names`` (:func:`ppnets.engine.predict.weights_class_names`; None
    for a features-only backbone, ``num_classes`` None), ``class_names_source`` and
    ``preprocessing``, the weights' eval transform (:func:`weights_preprocessing`) at the
    exported ``input_size`` (None for a model the registry does not know)."""
    names, source = (weights_class_names(weights, num_classes) if num_classes
                     else (None, None))
    kind = (weights or {}).get("kind")
    pretrained = (weights["weight"][len(name) + 1:] if kind == "published" else
                  weights["path"] if kind == "file" else None)
    try:
        pre = weights_preprocessing(name, pretrained)[0] if pretrained else None
    except (ValueError, LookupError):   # the file has moved or the tag is gone: the model's
        pre = None
    if pre is None:
        try:
            pre = model_data_config(name)
        except KeyError:   # a network the registry does not know
            pre = None
    if pre is not None and int(input_size[-1]) != int(pre["input_size"]):
        pre["input_size"] = int(input_size[-1])   # exported at another size: crop that size
    return {"class_names": names, "class_names_source": source,
            "preprocessing": preprocessing_record(pre) if pre else None}


def evaluate_export(export_dir: str, runtime: str = "paddle_inference", precision: str = "fp32",
                    threads: Optional[int] = None, data_dir: Optional[str] = None,
                    list_file: Optional[str] = None, root: Optional[str] = None,
                    num_workers: Optional[int] = None, limit: Optional[int] = None,
                    on_bad_image: str = "error", save_logits: Optional[str] = None,
                    progress: bool = False, keep_logits: bool = False,
                    options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Top-1/top-5 of an export folder run by ``runtime`` at ``precision``
    (:func:`ppnets.runtime.open_session`) on an evaluation split, preprocessed as
    ``export.json`` records (:func:`export_preprocessing`). The export's batch size is fixed:
    the loader uses it and the last batch is padded. ``threads``: the runtime's (default: the
    usable cores). The result also carries the session's record and its check against the
    eager outputs saved at export (:func:`ppnets.runtime.check_session`)."""
    meta = read_export_json(export_dir)
    pre, pre_source = export_preprocessing(export_dir)
    batch = int(meta.get("batch_size") or 1)
    threads = int(threads or usable_cores())
    session = open_session(export_dir, runtime, threads=threads, precision=precision,
                           options=options)
    try:
        check = check_session(session, export_dir)
        ds, source, screening, loader, nw = _eval_loader(pre, data_dir, list_file, root, limit,
                                                         on_bad_image, batch, num_workers,
                                                         progress)
        logits = fixed_batch(lambda x: session.run(x)[0], batch)
        res = evaluate_network(logits, loader, keep_logits=bool(save_logits) or keep_logits,
                               progress=f"evaluating {meta['model']} on {runtime} {precision}"
                               if progress else None)
        record = session.record()
    finally:
        session.close()
    result = {"model": meta["model"], "export_dir": os.path.abspath(export_dir),
              "weights": meta.get("weights"), "runtime": runtime, "precision": precision,
              "threads": threads, "session": record,
              "check": {k: v for k, v in check.items() if k != "session"},
              **_common_record(res, pre, ds, source, screening, batch, nw, limit),
              "preprocessing_source": pre_source, "device": "cpu"}
    if save_logits:
        _save_logits(save_logits, res, ds, source)
    if keep_logits:
        result.update(logits=res.logits, labels=res.labels)
    return result


# The exact (fp32) runtimes by evaluation speed on this suite's CPU, fastest first: MobileNetV2,
# the 400-image sample, batch 64, 2 threads, 2 workers (docs/training.md, "Evaluation").
EVAL_RUNTIME_ORDER = ("openvino", "onnxruntime", "paddle_inference")


def fastest_eval_runtime() -> str:
    """The first installed runtime of :data:`EVAL_RUNTIME_ORDER` (Paddle Inference always is)."""
    status = runtime_status()
    return next(r for r in EVAL_RUNTIME_ORDER if status.get(r, {}).get("available"))


def top1_from(logits: np.ndarray, labels: np.ndarray, start: int) -> Dict[str, Any]:
    """Top-1 over the images from position ``start`` on (e.g. those after the INT8
    calibration images)."""
    correct = topk_correct(logits[start:], labels[start:], 1)
    return {"first_image": int(start), "num_images": int(len(correct)),
            "top1": float(correct.mean()) if len(correct) else None,
            "top1_correct": int(correct.sum())}


def _save_logits(path: str, res: Evaluation, ds: ImageListDataset, source: Dict[str, Any]):
    paths = np.asarray([os.path.relpath(p, source.get("root", source.get("folder", "")))
                        for p, _ in ds.samples])

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, logits=res.logits, labels=res.labels, paths=paths)
    atomic_write(path, write)
