"""``pretrained=True``: published weights fetched, converted once, cached, and loaded.

A weight is a :class:`ppnets.registry.WeightSource` (each family file lists its variants'
published checkpoints). :func:`load_published` loads one into the model being built: from the
cache under ``<PPNETS_HOME>/weights/<model>.<tag>/<source digest>/`` or else by fetching the file
(:mod:`ppnets.weights.fetch`), converting it in memory into that model
(:func:`ppnets.convert.load_state_dict`) and writing the converted arrays to the cache. The
cache entry is keyed by the source's identity (hub repo, file, revision / URL and hash), so an
entry whose source changed in the table is never served; it is valid only once its ``meta.json``
is written, last and atomically, and while its file has the hash recorded there, so an
interrupted download or conversion never leaves an entry that loads and a damaged one is made
again. A warm cache needs no network. Processes sharing the cache (the ranks of one launch)
fetch and convert one weight one at a time: one download, whoever asks.

:func:`load_weights` loads any checkpoint file ``pretrained=PATH`` names, into a model built for
another number of classes too: everything but the classifier, which keeps its initialisation,
and a log line says so.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import filelock
import numpy as np
import paddle

from ppnets.convert import (CorruptCheckpointError, LoadedState, classifier_keys,
                            load_state_dict, read_checkpoint, save_state_dict)
from ppnets.registry import WeightSource, get_entry
from ppnets.utils import atomic_write_json, file_sha256, utc_now
from ppnets.version import __version__

from .fetch import fetch_hub, fetch_url, ppnets_home
from .sources import default_weight, find_weight

# classifier_keys lives in ppnets.convert; ppnets.engine.finetune reaches it through here
__all__ = ["resolve_weight", "source_identity", "cache_dir", "cached_entry", "lock_path",
           "load_published", "converted_weights", "load_weights", "LoadedWeights",
           "classifier_keys"]

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
            "sha256_prefix": src.sha256_prefix}


def _digest(identity: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir(src: WeightSource) -> str:
    return os.path.join(ppnets_home(), "weights", f"{src.model}.{src.tag}",
                        _digest(source_identity(src)))


def cached_entry(src: WeightSource) -> Optional[Dict[str, Any]]:
    """The cache entry's ``meta.json`` when a complete entry for exactly this source exists and
    its file has the hash recorded there (one damaged after it was written is made again)."""
    folder = cache_dir(src)
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    weights = os.path.join(folder, meta.get("weights", ""))
    if meta.get("source") != source_identity(src) or not os.path.isfile(weights):
        return None
    if file_sha256(weights) != meta.get("weights_sha256"):
        return None
    return dict(meta, weights_path=weights)


def _read_cached(src: WeightSource) -> Optional[Dict[str, np.ndarray]]:
    """The arrays of the cache entry of ``src``; None when there is no sound one."""
    entry = cached_entry(src)
    if entry is None:
        return None
    try:
        return read_checkpoint(entry["weights_path"])[0]
    except CorruptCheckpointError:
        return None


def _fetch(src: WeightSource) -> str:
    key = f"{src.model}.{src.tag}"
    if src.kind == "hf_hub":
        path = fetch_hub(src.hf_hub_id, src.filename, src.revision, key)
        if src.sha256 and file_sha256(path) != src.sha256:
            _discard(path)
            raise RuntimeError(f"{src.hf_hub_id}/{src.filename} does not have the published "
                               f"SHA-256 {src.sha256}; the download was discarded: try again")
        return path
    return fetch_url(src.url, key, sha256=src.sha256, sha256_prefix=src.sha256_prefix)


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


@contextlib.contextmanager
def _weight_lock(src: WeightSource) -> Iterator[None]:
    """Hold the lock of ``src``: one process at a time fetches and converts it. The lock is the
    kernel's (flock, LockFileEx), so a killed holder never leaves it taken."""
    os.makedirs(os.path.dirname(lock_path(src)), exist_ok=True)
    lock = filelock.FileLock(lock_path(src))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("%s.%s: another process is fetching these weights; waiting for it",
                 src.model, src.tag)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


def load_published(model: paddle.nn.Layer, src: WeightSource,
                   key_maps: Optional[Dict[str, Callable[[dict], dict]]] = None
                   ) -> LoadedWeights:
    """Load the published weight ``src`` into ``model`` (built for ``src.model``, with any
    number of classes: with another, everything but the classifier), from the cache or else
    fetched, converted into ``model`` and cached. ``key_maps``: the family's (default: looked
    up in the registry when the file must be converted)."""
    state = _read_cached(src)
    if state is None:
        # Processes sharing PPNETS_HOME (the ranks of paddle.distributed.launch) take turns:
        # the first fetches and converts, the others wait for it and find the entry made.
        with _weight_lock(src):
            state = _read_cached(src)
            if state is None:
                if key_maps is None:
                    key_maps = get_entry(src.model).key_maps
                return _published(src, _fetch_and_convert(model, src, key_maps))
    return _published(src, load_state_dict(
        model, state, "paddle", source=cache_dir(src), what=f"{src.model}.{src.tag}",
        label=src.model, new_classifier=True, source_classes=src.num_classes))


def _published(src: WeightSource, loaded: LoadedState) -> LoadedWeights:
    return LoadedWeights(source=f"{src.model}.{src.tag}", loaded=loaded.loaded,
                         classifier_kept=loaded.classifier_kept,
                         source_classes=src.num_classes, published=True)


def _fetch_and_convert(model: paddle.nn.Layer, src: WeightSource,
                       key_maps: Dict[str, Callable[[dict], dict]]) -> LoadedState:
    """Fetch ``src``, convert it into ``model`` and write the converted arrays to its cache
    entry (the caller holds its lock). A file that cannot be read is deleted, so the next call
    fetches it again; one that reads but does not fit ``model`` (built with other options, or
    the table is wrong) raises ValueError and stays: fetching it again would not change it."""
    raw = _fetch(src)
    try:
        state, kind = read_checkpoint(raw)
    except ValueError as exc:   # CorruptCheckpointError: truncated or damaged in transit
        _discard(raw)
        raise RuntimeError(f"the published weights {src.model}.{src.tag} ({raw}) could not be "
                           f"converted; the download was discarded, so the next call fetches "
                           f"it again: {exc}") from exc
    loaded = load_state_dict(model, state, kind, key_maps=key_maps, source=raw,
                             what=f"{src.model}.{src.tag}", label=src.model, new_classifier=True,
                             source_classes=src.num_classes)
    folder = cache_dir(src)
    weights = os.path.join(folder, "model.pdparams")
    save_state_dict(loaded.converted, weights)
    meta = {"model": src.model, "tag": src.tag, "source": source_identity(src),
            "downloaded_file": raw, "downloaded_sha256": file_sha256(raw),
            "weights": "model.pdparams", "weights_sha256": file_sha256(weights),
            "num_classes": src.num_classes, "layout": loaded.report.layout,
            "converted_utc": utc_now(), "ppnets_version": __version__}
    atomic_write_json(os.path.join(folder, "meta.json"), meta)  # last: the entry is valid now
    return loaded


def converted_weights(src: WeightSource) -> Dict[str, Any]:
    """The cache entry of ``src`` (``weights_path`` is a ppnets ``.pdparams``), fetching and
    converting the published file on a cache miss (``ppnets weights fetch``)."""
    entry = cached_entry(src)
    if entry is None:
        spec = get_entry(src.model)
        model = spec.builder(**{**spec.cfg, "num_classes": src.num_classes, "deploy": False})
        load_published(model, src, spec.key_maps)
        entry = cached_entry(src)
    return entry


def load_weights(model: paddle.nn.Layer, path: str, name: Optional[str] = None,
                 what: Optional[str] = None) -> LoadedWeights:
    """Load a checkpoint (a ppnets ``.pdparams`` or any reference format :mod:`ppnets.convert`
    reads; ``name``'s key maps) into ``model``. Everything must fit but the classifier: when
    the file's is for another class count (or the file or the model has none, ``num_classes=0``)
    it is left as initialised and a log line says so. Anything else that does not fit raises
    ValueError before a tensor is set. ``what`` names the weights in messages (default: the
    path)."""
    state, kind = read_checkpoint(path)
    loaded = load_state_dict(model, state, kind, key_maps=get_entry(name).key_maps if name else {},
                             source=path, what=what, label=name, new_classifier=True)
    return LoadedWeights(source=path, loaded=loaded.loaded,
                         classifier_kept=loaded.classifier_kept,
                         source_classes=loaded.source_classes)
