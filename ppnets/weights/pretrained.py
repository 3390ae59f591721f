"""``pretrained=True``: published weights fetched, converted once, cached, and loaded.

A weight is a :class:`ppnets.weights.sources.WeightSource` (the table of every variant's
published checkpoints). :func:`converted_weights` returns the ppnets ``.pdparams`` of one, from
the cache under ``<PPNETS_HOME>/weights/<model>.<tag>/<source digest>/`` or else by fetching the
file (:mod:`ppnets.weights.fetch`), converting it with :func:`ppnets.convert.load_pretrained`
into the architecture it was published for, and caching the result. The cache entry is keyed
by the source's identity (hub repo, file, revision / URL and hash), so an entry whose source
changed in the table is never served; it is valid only once its ``meta.json`` is written, last
and atomically, so an interrupted download or conversion never leaves an entry that loads. A
warm cache needs no network. Processes sharing the cache (the ranks of one launch) fetch and
convert one weight one at a time (:func:`converted_weights`): one download, whoever asks.

:func:`load_weights` loads such a state dict, or any checkpoint file ``pretrained=PATH`` names,
into a model built for another number of classes: everything but the classifier, which keeps
its initialisation, and a log line says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import filelock
import numpy as np
import paddle

from ppnets.convert import (ConversionReport, CorruptCheckpointError, convert_state_dict,
                            load_pretrained, read_checkpoint, save_state_dict)
from ppnets.registry import get_entry
from ppnets.utils import atomic_write_json, file_sha256, utc_now
from ppnets.version import __version__

from .fetch import fetch_hub, fetch_url, ppnets_home
from .sources import WeightSource, default_weight, find_weight

__all__ = ["resolve_weight", "source_identity", "cache_dir", "cached_entry", "lock_path",
           "converted_weights", "classifier_keys", "load_weights", "LoadedWeights"]

log = logging.getLogger("ppnets")


def resolve_weight(name: str, pretrained: Union[bool, str]) -> WeightSource:
    """The weight ``pretrained`` names for model ``name``: True -> the default tag, a string ->
    that tag (an unknown tag raises, listing the model's tags)."""
    if pretrained is True:
        return default_weight(name)
    return find_weight(name, str(pretrained))


def source_identity(src: WeightSource) -> Dict[str, Any]:
    """What identifies the published file: changes here make a new cache entry."""
    if src.kind == "hf_hub":
        return {"kind": "hf_hub", "repo": src.hf_hub_id, "file": src.filename,
                "revision": src.revision, "sha256": src.sha256}
    return {"kind": "url", "url": src.url, "sha256": src.sha256,
            "sha256_prefix": getattr(src, "sha256_prefix", None)}


def _digest(identity: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir(src: WeightSource) -> str:
    return os.path.join(ppnets_home(), "weights", f"{src.model}.{src.tag}",
                        _digest(source_identity(src)))


def cached_entry(src: WeightSource) -> Optional[Dict[str, Any]]:
    """The cache entry's ``meta.json`` when a complete entry for exactly this source exists."""
    folder = cache_dir(src)
    meta_path = os.path.join(folder, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    weights = os.path.join(folder, meta.get("weights", ""))
    if meta.get("source") != source_identity(src) or not os.path.isfile(weights):
        return None
    if file_sha256(weights) != meta.get("weights_sha256"):
        return None  # damaged after it was written: convert again
    return dict(meta, weights_path=weights)


def _fetch(src: WeightSource) -> str:
    key = f"{src.model}.{src.tag}"
    if src.kind == "hf_hub":
        path = fetch_hub(src.hf_hub_id, src.filename, src.revision, key)
        if src.sha256 and file_sha256(path) != src.sha256:
            _discard(path)
            raise RuntimeError(f"{src.hf_hub_id}/{src.filename} does not have the published "
                               f"SHA-256 {src.sha256}; the download was discarded: try again")
        return path
    return fetch_url(src.url, key, sha256=src.sha256,
                     sha256_prefix=getattr(src, "sha256_prefix", None))


def _discard(path: str) -> None:
    """Delete a downloaded file (and the blob a hub snapshot links to) so the next call
    downloads it again instead of reusing it."""
    real = os.path.realpath(path)
    for p in {path, real}:
        if os.path.lexists(p):
            os.remove(p)


def lock_path(src: WeightSource) -> str:
    """The file whose lock one process at a time holds while it fetches and converts ``src``."""
    return os.path.join(ppnets_home(), "locks", f"{src.model}.{src.tag}.lock")


def converted_weights(src: WeightSource) -> Dict[str, Any]:
    """The cache entry of ``src`` (``weights_path`` is a ppnets ``.pdparams``), fetching and
    converting the published file on a cache miss.

    Processes sharing ``PPNETS_HOME`` (the ranks of ``paddle.distributed.launch``) take turns:
    the first fetches and converts, the others wait for it and find the entry made. The lock is
    the kernel's (flock, LockFileEx), so a killed holder never leaves it taken."""
    entry = cached_entry(src)
    if entry is not None:
        return entry
    os.makedirs(os.path.dirname(lock_path(src)), exist_ok=True)
    lock = filelock.FileLock(lock_path(src))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("%s.%s: another process is fetching these weights; waiting for it",
                 src.model, src.tag)
        lock.acquire()
    try:
        return cached_entry(src) or _fetch_and_convert(src)
    finally:
        lock.release()


def _fetch_and_convert(src: WeightSource) -> Dict[str, Any]:
    raw = _fetch(src)
    model = get_entry(src.model).builder(**{**get_entry(src.model).cfg,
                                            "num_classes": src.num_classes, "deploy": False})
    try:
        report = load_pretrained(model, raw, name=src.model)
    except (CorruptCheckpointError, ValueError) as exc:
        _discard(raw)
        raise RuntimeError(f"the published weights {src.model}.{src.tag} ({raw}) could not be "
                           f"converted; the download was discarded, so the next call fetches "
                           f"it again: {exc}") from exc
    folder = cache_dir(src)
    weights = os.path.join(folder, "model.pdparams")
    save_state_dict(model.state_dict(), weights)
    meta = {"model": src.model, "tag": src.tag, "source": source_identity(src),
            "downloaded_file": raw, "downloaded_sha256": file_sha256(raw),
            "weights": "model.pdparams", "weights_sha256": file_sha256(weights),
            "num_classes": src.num_classes, "layout": report.layout,
            "converted_utc": utc_now(), "ppnets_version": __version__}
    atomic_write_json(os.path.join(folder, "meta.json"), meta)  # last: the entry is valid now
    return dict(meta, weights_path=weights)


def classifier_keys(model: paddle.nn.Layer) -> List[str]:
    """State-dict keys of the classifier layer(s): ``get_classifier()`` and, for distilled
    models, ``head_dist``."""
    heads = [model.get_classifier()]
    if getattr(model, "head_dist", None) is not None:
        heads.append(model.head_dist)
    ids = {id(t) for head in heads for t in head.state_dict().values()}
    return [k for k, t in model.state_dict().items() if id(t) in ids]


def _classifier_key_names(model: paddle.nn.Layer) -> List[str]:
    """The classifier's state-dict keys; for a headless model (``num_classes=0``) the keys its
    classifier would have, found by giving it one and removing it again. [] for a model that
    does not say which its classifier is (no ``get_classifier``)."""
    if not hasattr(model, "get_classifier"):
        return []
    if getattr(model, "num_classes", 0):
        return classifier_keys(model)
    model.reset_classifier(1)
    try:
        return classifier_keys(model)
    finally:
        model.reset_classifier(0)


@dataclass
class LoadedWeights:
    """What ``create_model(pretrained=...)`` loaded into a model (``model.loaded_weights``)."""

    source: str                    # the published weight (``model.tag``) or the file's path
    loaded: List[str]              # state-dict keys taken from the file
    classifier_kept: List[str]     # classifier keys left as initialised (another class count)
    source_classes: Optional[int]  # classes of the file's classifier (0: it has none)
    published: bool = False

    def record(self) -> Dict[str, Any]:
        """For result files: the published weight, or the file with its SHA-256."""
        if self.published:
            return {"kind": "published", "weight": self.source}
        return {"kind": "file", "path": os.path.abspath(self.source),
                "sha256": file_sha256(self.source)}


def load_weights(model: paddle.nn.Layer, path: str, name: Optional[str] = None,
                 what: Optional[str] = None, source_classes: Optional[int] = None,
                 published: bool = False) -> LoadedWeights:
    """Load a checkpoint (a ppnets ``.pdparams`` or any reference format :mod:`ppnets.convert`
    reads; ``name``'s key maps) into ``model``. Everything must fit but the classifier: when
    the file's is for another class count (or the file or the model has none, ``num_classes=0``)
    it is left as initialised and a log line says so. Anything else that does not fit raises
    ValueError before a tensor is set. ``what`` names the weights in messages (default: the
    path); ``source_classes`` is the file's class count where known (published weights)."""
    what = what or path
    state, kind = read_checkpoint(path)
    key_maps = get_entry(name).key_maps if name else {}
    converted, report = convert_state_dict(model, state, kind=kind, key_maps=key_maps,
                                           source=path)
    heads = set(_classifier_key_names(model))
    target = model.state_dict()
    mismatched = {key: shape for key, shape, _ in report.mismatched}
    model_heads = heads & set(target)
    file_heads = heads & (set(converted) | set(mismatched) | set(report.unexpected))
    rest = ConversionReport(source=path, layout=report.layout, loaded=len(converted),
                            missing=sorted(set(report.missing) - heads),
                            unexpected=sorted(set(report.unexpected) - heads),
                            mismatched=[m for m in report.mismatched if m[0] not in heads])
    if not rest.ok:
        label = name or type(model).__name__
        raise ValueError(
            f"{what} does not fit {label}: only the classifier may differ from the model "
            f"built.\n{rest}\nCheck that the file holds {label} weights (a state dict saved "
            "after reparameterize() loads into the deploy form: create_model(..., "
            "deploy=True)).")
    kept: List[str] = []
    if file_heads != model_heads or file_heads - set(converted):
        # another class count (or no classifier on one side): the classifier keeps its init
        kept = sorted(model_heads)
        for key in heads:
            converted.pop(key, None)
        if source_classes is None:
            bias = [k for k in sorted(file_heads & set(mismatched)) if k.endswith("bias")]
            source_classes = int(mismatched[bias[0]][0]) if bias else \
                (0 if not file_heads else None)
        theirs = (("it was published without one" if published else "the file has none")
                  if source_classes == 0 else
                  f"{'it was published' if published else 'the file has one'} for "
                  f"{source_classes or 'another number of'} classes")
        ours = (f"this model has {model.num_classes} classes and keeps its initial classifier"
                if model_heads else "this model has none (num_classes=0)")
        log.warning("%s: loaded everything but the classifier (%s): %s; %s", what,
                    ", ".join(sorted(heads)), theirs, ours)
    dtypes = {k: str(v.dtype).replace("paddle.", "") for k, v in target.items()}
    # every key, the kept classifier's own values included (Paddle warns of each key missing)
    model.set_state_dict({k: np.asarray(converted[k]).astype(dtypes[k]) if k in converted
                          else v.numpy() for k, v in target.items()})
    return LoadedWeights(source=what if published else path, loaded=sorted(converted),
                         classifier_kept=kept, source_classes=source_classes,
                         published=published)
