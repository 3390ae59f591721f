"""Export folders made on the fly for ``ppnets predict`` and ``ppnets eval --runtime``.

    from ppnets.deploy.cache import cached_export
    export_dir = cached_export("mobilenetv2_100", "mnv2.safetensors", batch_size=64)

Given a model name and weights, :func:`cached_export` returns an export folder
(:func:`ppnets.deploy.export`) under ``<PPNETS_HOME>/exports/<model>/<key>/``, making it on a
miss. The key is a digest of what the artifacts depend on: the model, the weights (a file's
SHA-256, a published weight's source identity), the number of classes, the input size, the
(fixed) batch size, the formats, the precision (fp32 and bf16 share one folder: bf16 is a
runtime setting; INT8 gets its own, with its calibration set in the key), and the ppnets and
Paddle versions. A folder is complete once its ``export.json`` is written (last, atomically)
with every artifact that ran verified; processes sharing the cache (ranks, parallel jobs) take
turns under a file lock per key, so one exports and the others find its folder made.

:func:`ensure_int8` gives an export folder its INT8 artifacts
(:func:`ppnets.deploy.x86_int8.quantize_export`) when it has none, calibrated on the first
``count`` images of a stated evaluation list or folder, preprocessed as the export records.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import filelock
import numpy as np
import paddle

from ppnets.engine.evaluate import eval_dataset, weights_preprocessing
from ppnets.engine.predict import export_preprocessing, read_export_json
from ppnets.engine.transforms import eval_transform
from ppnets.factory import create_model
from ppnets.runtime import artifact_file
from ppnets.utils import atomic_write_json, file_sha256
from ppnets.version import __version__
from ppnets.weights.fetch import ppnets_home
from ppnets.weights.pretrained import resolve_weight, source_identity

from .formats import export

__all__ = ["cached_export", "export_cache_key", "ensure_int8", "Calibration", "has_int8",
           "formats_for"]

log = logging.getLogger("ppnets")


@dataclass(frozen=True)
class Calibration:
    """The images INT8 calibrates on: the first ``count`` of an evaluation list (``list_file``,
    paths relative to ``root``) or class-folder tree (``data_dir``)."""
    count: int = 100
    list_file: Optional[str] = None
    data_dir: Optional[str] = None
    root: Optional[str] = None

    def identity(self) -> Dict[str, Any]:
        where = self.list_file or self.data_dir
        return {"count": int(self.count), "list_file": _abs(self.list_file),
                "data_dir": _abs(self.data_dir), "root": _abs(self.root),
                "list_sha256": file_sha256(where) if self.list_file else None}


def _abs(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(path) if path else None


def formats_for(runtime: str) -> Tuple[str, ...]:
    """The export formats a runtime's session needs (Paddle Inference and ONNX always: the
    check against eager and the other runtimes read them; Paddle Lite adds its ``.nb``)."""
    return ("paddle", "onnx", "lite") if runtime == "paddle_lite" else ("paddle", "onnx")


def _weights_identity(model: str, pretrained: Union[bool, str]) -> Dict[str, Any]:
    if isinstance(pretrained, str) and os.path.isfile(pretrained):
        return {"file_sha256": file_sha256(pretrained)}
    if pretrained is True or isinstance(pretrained, str):
        return {"published": source_identity(resolve_weight(model, pretrained))}
    raise ValueError(f"pretrained must be True, a weight tag or a checkpoint file, not "
                     f"{pretrained!r}: an export of random weights computes nothing useful")


def export_cache_key(model: str, pretrained: Union[bool, str], *,
                     num_classes: Optional[int] = None, input_size: Optional[int] = None,
                     batch_size: int = 1, formats: Sequence[str] = ("paddle", "onnx"),
                     precision: str = "fp32",
                     calibration: Optional[Calibration] = None) -> Dict[str, Any]:
    """What the cached folder of these options depends on (module docstring)."""
    return {"model": model, "weights": _weights_identity(model, pretrained),
            "num_classes": num_classes, "input_size": input_size, "batch_size": int(batch_size),
            "formats": sorted(formats), "precision": "int8" if precision == "int8" else "float",
            "calibration": calibration.identity() if precision == "int8" and calibration
            else None, "ppnets": __version__, "paddle": paddle.__version__}


def _folder(key: Dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(ppnets_home(), "exports", key["model"], digest)


@contextlib.contextmanager
def _key_lock(folder: str) -> Iterator[None]:
    """One process at a time makes the folder (a kernel lock: a killed holder never keeps it)."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    lock = filelock.FileLock(folder + ".lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("%s: another process is exporting this model; waiting for it", folder)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _complete(folder: str, runtime: str) -> bool:
    """The folder's export finished (``export.json`` is written last), no artifact that ran
    failed its check, and the runtime's artifact is there."""
    try:
        report = read_export_json(folder)
        artifact_file(folder, runtime, "fp32")
    except (ValueError, FileNotFoundError):
        return False
    return not any(a.get("status") == "failed" for a in report.get("artifacts", {}).values())


def _build(model: str, pretrained: Union[bool, str], num_classes: Optional[int]):
    """(model, weights record) for export; refuses weights whose classifier is not the
    model's (an export with a random classifier is of no use)."""
    net = create_model(model, num_classes=num_classes, pretrained=pretrained)
    loaded = net.loaded_weights
    if loaded.classifier_kept:
        raise ValueError(f"{loaded.source} has a classifier for "
                         f"{loaded.source_classes or 'another number of'} classes, not "
                         f"{net.num_classes}: pass --num-classes "
                         f"{loaded.source_classes or 'N'}")
    return net, loaded.record()


def cached_export(model: str, pretrained: Union[bool, str] = True, *,
                  num_classes: Optional[int] = None, input_size: Optional[int] = None,
                  batch_size: int = 1, runtime: str = "paddle_inference",
                  precision: str = "fp32", calibration: Optional[Calibration] = None,
                  progress: bool = False) -> str:
    """The cached export folder of ``model`` with ``pretrained`` (True / a tag: published
    weights; a path: a checkpoint) at ``input_size`` (side; default the weights') and
    ``batch_size``, with what ``runtime`` reads; made on a miss (module docstring). For
    ``precision="int8"`` the folder also has INT8 artifacts calibrated on ``calibration``
    (:func:`ensure_int8`). Raises RuntimeError when an artifact fails its check against the
    eager model, ValueError for weights that do not fit."""
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration images: give a Calibration (the first N "
                         "images of an evaluation list or folder)")
    formats = formats_for(runtime)
    side = int(input_size or weights_preprocessing(model, pretrained)[0]["input_size"])
    key = export_cache_key(model, pretrained, num_classes=num_classes, input_size=side,
                           batch_size=batch_size, formats=formats, precision=precision,
                           calibration=calibration)
    folder = _folder(key)
    if not _complete(folder, runtime):
        with _key_lock(folder):
            if not _complete(folder, runtime):
                net, weights = _build(model, pretrained, num_classes)
                export(net, formats=formats, out_dir=folder, input_size=(3, side, side),
                       batch_size=int(batch_size), lite_targets=("x86",), strict=True,
                       progress=progress, weights=weights)
                atomic_write_json(os.path.join(folder, "cache_key.json"), key)
    if precision == "int8":
        ensure_int8(folder, calibration)
    return folder


def has_int8(export_dir: str) -> bool:
    """Whether the export folder has INT8 artifacts (``int8/calibration.json`` and an ``int8``
    entry in ``export.json``)."""
    try:
        report = read_export_json(export_dir)
    except ValueError:
        return False
    return bool(report.get("int8")) and os.path.isfile(
        os.path.join(export_dir, "int8", "calibration.json"))


def calibration_images(export_dir: str, calibration: Calibration
                       ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """The first ``calibration.count`` images, preprocessed as the export records, as
    ``(float32 NCHW array, source description)``."""
    pre, _ = export_preprocessing(export_dir)
    transform = eval_transform(pre["input_size"], pre["crop_pct"], pre["interpolation"],
                               pre["mean"], pre["std"])
    ds, source = eval_dataset(transform, calibration.data_dir, calibration.list_file,
                              calibration.root, int(calibration.count))
    if len(ds) < int(calibration.count):
        raise ValueError(f"{source} has {len(ds)} images; INT8 calibration asked for the "
                         f"first {calibration.count}")
    root = source.get("root") or source.get("folder")
    images = np.stack([ds[i][0] for i in range(len(ds))]).astype(np.float32)
    return images, {**source, "selection": f"first {len(ds)}", "count": len(ds),
                    "images": [os.path.relpath(p, root) for p, _ in ds.samples]}


def ensure_int8(export_dir: str, calibration: Optional[Calibration]) -> Dict[str, Any]:
    """The export folder's ``int8`` entry, quantizing it first
    (:func:`ppnets.deploy.x86_int8.quantize_export`) when it has none; ``calibration`` says on
    which images (ValueError without it when the folder must be quantized). Concurrent callers
    take turns: one quantizes."""
    if not has_int8(export_dir):
        if calibration is None:
            raise ValueError(f"{export_dir} has no INT8 artifacts and no calibration images "
                             "were given to make them: `ppnets eval --precision int8` "
                             "calibrates on the first --calib-images of its --list/--data-dir, "
                             "`ppnets predict --precision int8` on those of --calib-list LIST")
        from .x86_int8 import quantize_export   # PaddleSlim and ONNX quantization: on demand
        with _key_lock(os.path.abspath(export_dir).rstrip(os.sep) + ".int8"):
            if not has_int8(export_dir):
                x, source = calibration_images(export_dir, calibration)
                quantize_export(export_dir, x, source)
    return read_export_json(export_dir)["int8"]
