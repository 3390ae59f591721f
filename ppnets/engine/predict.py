"""Classify image files: the top-k classes of each, with their names and probabilities.

    from ppnets.engine.predict import collect_images, predict_images
    paths = collect_images(["photos/", "cat.jpg", "list.txt"])
    records = predict_images(session_logits, paths, transform, batch_size=1, topk=5,
                             class_names=names)

The images go through exactly the evaluation transform ``ppnets eval`` uses
(:func:`ppnets.engine.evaluate.weights_preprocessing` and
:func:`ppnets.engine.transforms.eval_transform`), read by :func:`ppnets.engine.data.load_image`;
a file that cannot be read gets a record with its ``error`` and the others go on. Probabilities
are the softmax of the logits.

Where class names come from (:func:`weights_class_names`): a checkpoint written by ``ppnets
train`` gets the class names the run recorded beside it (``checkpoints/classes.json``: the
sorted class folders); other weights with 1000 outputs (published ImageNet weights, or a
checkpoint converted from them) get ImageNet-1k's (:mod:`ppnets.weights.imagenet_classes`);
anything else gets none, and the records carry the class index only (``label`` null).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ppnets.runtime import artifact_file, open_session
from ppnets.weights.imagenet_classes import IMAGENET_CLASSES

from .data import IMG_EXTENSIONS, BadImageError, DataUnavailableError, load_image
from .transforms import eval_transform, model_data_config

__all__ = ["collect_images", "softmax", "topk_records", "fixed_batch", "Prediction",
           "predict_images", "predict_export", "default_runtime", "read_export_json",
           "export_preprocessing", "weights_class_names", "run_class_names", "CLASSES_FILE",
           "usable_cores"]

# Written by `ppnets train` beside its checkpoints: {"class_names": [...]} (sorted class folders).
CLASSES_FILE = "classes.json"


def _list_file_paths(list_file: str) -> List[str]:
    """Paths of a list file: one image a line (a PaddleClas ``path label`` line too), relative
    to the list's folder; blank lines and ``#`` comments ignored."""
    root = os.path.dirname(os.path.abspath(list_file))
    paths = []
    with open(list_file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            name = parts[0] if len(parts) == 2 and parts[1].lstrip("-").isdigit() else line
            paths.append(name if os.path.isabs(name) else os.path.join(root, name))
    return paths


def collect_images(inputs: Sequence[str]) -> List[str]:
    """The image files ``inputs`` name, in order: a file with an image extension is itself; a
    folder gives every image file under it (sorted, recursively); a ``.txt``/``.list`` file
    is a list of images (one path a line, relative to the list's folder; PaddleClas ``path
    label`` lines work too). Raises DataUnavailableError for a path that does not exist or a
    folder without images."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(d, n) for d, _, files in os.walk(item, followlinks=True)
                           for n in files if n.lower().endswith(IMG_EXTENSIONS))
            if not found:
                raise DataUnavailableError(f"{item!r} holds no image files (extensions "
                                           f"{', '.join(IMG_EXTENSIONS)}, any case)")
            paths += found
        elif item.lower().endswith((".txt", ".list")) and os.path.isfile(item):
            paths += _list_file_paths(item)
        elif os.path.exists(item) or item.lower().endswith(IMG_EXTENSIONS):
            paths.append(item)   # a missing image file is reported on its own record
        else:
            raise DataUnavailableError(f"{item!r} does not exist: give image files, folders of "
                                       "images or a list file (.txt, one image path a line)")
    return paths


def usable_cores() -> int:
    """The CPU cores this process may run on: the default threads of a runtime."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def topk_records(logits: np.ndarray, k: int,
                 class_names: Optional[Sequence[str]] = None) -> List[List[Dict[str, Any]]]:
    """Per row of ``logits``: the ``k`` most probable classes, ``{"index", "label", "prob"}``
    (label None without class names), most probable first; ties keep the lower index."""
    probs = softmax(logits)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return [[{"index": int(i), "label": class_names[i] if class_names else None,
              "prob": float(p[i])} for i in row] for row, p in zip(order, probs)]


def fixed_batch(run: Callable[[np.ndarray], np.ndarray],
                batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` (a program exported for exactly ``batch_size`` images) made to take any number:
    a short batch is padded with copies of its last image and the padding's outputs dropped;
    a long one runs in chunks."""
    def call(x: np.ndarray) -> np.ndarray:
        n = len(x)
        outs = []
        for start in range(0, n, batch_size):
            chunk = x[start:start + batch_size]
            short = batch_size - len(chunk)
            if short:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
            outs.append(np.asarray(run(chunk))[:batch_size - short])
        return np.concatenate(outs)
    return call


@dataclass
class Prediction:
    """One image's result: ``topk`` (most probable first) or the ``error`` that kept it from
    being classified."""
    path: str
    topk: List[Dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"path": self.path, "topk": self.topk}
        if self.error is not None:
            out["error"] = self.error
        return out


def predict_images(run: Callable[[np.ndarray], np.ndarray], paths: Sequence[str], transform,
                   batch_size: int = 1, topk: int = 5,
                   class_names: Optional[Sequence[str]] = None,
                   on_result: Optional[Callable[[Prediction], None]] = None
                   ) -> List[Prediction]:
    """Classify ``paths``: each read by :func:`load_image`, put through ``transform`` and run
    through ``run`` (a batch of CHW float32 images -> logits) ``batch_size`` at a time. An
    unreadable file gets a record with its ``error`` (path and reason). ``on_result`` is called
    with each record as soon as it is made (printing as they come)."""
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    results: List[Prediction] = []
    pending: List[tuple] = []

    def flush():
        if not pending:
            return
        logits = np.asarray(run(np.stack([x for _, x in pending])), dtype=np.float32)
        k = min(topk, logits.shape[1])
        for (path, _), top in zip(pending, topk_records(logits, k, class_names)):
            _emit(Prediction(path, top))
        pending.clear()

    def _emit(pred: Prediction):
        results.append(pred)
        if on_result is not None:
            on_result(pred)

    for path in paths:
        try:
            x = transform(load_image(path))
        except BadImageError as exc:
            flush()   # keep the records in the order of ``paths``
            reason = exc.files[0][1] if exc.files else str(exc)
            _emit(Prediction(path, error=f"unreadable image: {reason}"))
            continue
        except ValueError as exc:   # e.g. an image smaller than the crop
            flush()
            _emit(Prediction(path, error=str(exc)))
            continue
        pending.append((path, x))
        if len(pending) == batch_size:
            flush()
    flush()
    return results


def export_preprocessing(export_dir: str) -> Tuple[Dict[str, Any], str]:
    """(eval preprocessing, where it comes from) of an export folder: its ``export.json``'s
    ``preprocessing`` (the weights' eval transform, written at export), else the exported
    model's (``model_info``) at the exported input size."""
    meta = read_export_json(export_dir)
    pre = meta.get("preprocessing")
    if pre:
        return {**pre, "mean": tuple(pre["mean"]), "std": tuple(pre["std"])}, "export.json"
    try:
        pre = model_data_config(meta["model"])
    except KeyError:
        raise ValueError(f"{export_dir}/export.json records no preprocessing and "
                         f"{meta['model']!r} is not a registered model: export it again with "
                         "this ppnets, which records the weights' preprocessing") from None
    pre["input_size"] = int(meta["input_size"][-1])
    return pre, f"model_info of {meta['model']} (export.json has no preprocessing)"


def read_export_json(export_dir: str) -> Dict[str, Any]:
    """``export.json`` of an export folder; ValueError saying what to do when there is none."""
    path = os.path.join(export_dir, "export.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{export_dir} is not an export folder (no export.json): write one "
                         "with `ppnets export --model MODEL --pretrained W --output-dir "
                         f"{export_dir}`") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): export the model again") from None


def default_runtime(export_dir: str) -> str:
    """The runtime that serves an export folder by default: Paddle Inference when it has the
    Paddle program, else the first of ONNX Runtime, OpenVINO (ONNX graph), Paddle Lite whose
    artifact it has."""
    read_export_json(export_dir)   # not an export folder: say so first
    for runtime in ("paddle_inference", "onnxruntime", "openvino", "paddle_lite"):
        try:
            artifact_file(export_dir, runtime, "fp32")
        except FileNotFoundError:
            continue
        return runtime
    raise ValueError(f"{export_dir} has no artifact any runtime reads (paddle/, onnx/, lite/): "
                     "export it with `ppnets export --model MODEL --pretrained W --output-dir "
                     f"{export_dir}`")


def predict_export(export_dir: str, paths: Sequence[str], runtime: Optional[str] = None,
                   precision: str = "fp32", threads: int = 1, topk: int = 5,
                   options: Optional[Dict[str, Any]] = None,
                   on_result: Optional[Callable[[Prediction], None]] = None
                   ) -> Tuple[List[Prediction], Dict[str, Any]]:
    """Classify ``paths`` with the export folder ``export_dir`` run by ``runtime`` (default
    :func:`default_runtime`) at ``precision``: its ``export.json`` gives the preprocessing and
    the class names. Returns ``(records, info)``; ``info`` holds the model, the session's
    record, the class names' source and the preprocessing."""
    meta = read_export_json(export_dir)
    pre, pre_source = export_preprocessing(export_dir)
    transform = eval_transform(pre["input_size"], pre["crop_pct"], pre["interpolation"],
                               pre["mean"], pre["std"])
    runtime = runtime or default_runtime(export_dir)
    batch = int(meta.get("batch_size") or 1)
    with open_session(export_dir, runtime, threads=threads, precision=precision,
                      options=options) as session:
        records = predict_images(fixed_batch(lambda x: session.run(x)[0], batch), paths,
                                 transform, batch, topk, meta.get("class_names"), on_result)
        info = {"model": meta["model"], "export_dir": os.path.abspath(export_dir),
                "weights": meta.get("weights"), "session": session.record(),
                "class_names_source": meta.get("class_names_source"),
                "preprocessing": pre, "preprocessing_source": pre_source}
    return records, info


def run_class_names(weights_file: str) -> Optional[List[str]]:
    """The class names a ``ppnets train`` run recorded beside the checkpoint ``weights_file``
    (``classes.json`` in its folder), or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights_file)), CLASSES_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            names = json.load(f).get("class_names")
    except (OSError, ValueError, AttributeError):
        return None
    return [str(n) for n in names] if names else None


def weights_class_names(weights: Optional[Dict[str, Any]],
                        num_classes: int) -> Tuple[Optional[List[str]], Optional[str]]:
    """``(class names, where they come from)`` for a model with ``num_classes`` outputs and the
    weights ``weights`` (the ``LoadedWeights.record()`` of ``create_model(pretrained=...)``):
    the names a ``ppnets train`` run recorded beside its checkpoint; else ImageNet-1k's for
    1000 outputs (published ImageNet weights, or a checkpoint converted from them); else
    ``(None, None)``: the class index only."""
    if not weights or weights.get("kind") == "random":
        return None, None
    if weights.get("kind") == "file":
        names = run_class_names(weights["path"])
        if names is not None:
            if len(names) == int(num_classes):
                return names, f"{os.path.dirname(weights['path'])}/{CLASSES_FILE}"
            return None, None   # the run's names belong to another classifier
    if int(num_classes) == len(IMAGENET_CLASSES):
        return list(IMAGENET_CLASSES), "imagenet-1k"
    return None, None
