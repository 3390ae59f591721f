"""``pretrained=True``: published weights fetched, converted once, cached, and loaded.

A weight is a :class:`ppnets.weights.sources.WeightSource` (the table of every variant's
published checkpoints). :func:`converted_weights` returns the ppnets ``.pdparams`` of one, from
the cache under ``<PPNETS_HOME>/weights/<model>.<tag>/<source digest>/`` or else by fetching the
file (:mod:`ppnets.weights.fetch`), converting it with :func:`ppnets.convert.load_pretrained`
into the architecture it was published for, and caching the result. The cache entry is keyed
by the source's identity (hub repo, file, revision / URL and hash), so an entry whose source
changed in the table is never served; it is valid only once its ``meta.json`` is written, last
and atomically, so an interrupted download or conversion never leaves an entry that loads. A
warm cache needs no network.

:func:`load_weights` loads such a state dict into a model built for another number of classes:
everything but the classifier, which keeps its initialisation, and a log line says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import paddle

from ppnets.convert import CorruptCheckpointError, load_pretrained, save_state_dict
from ppnets.registry import get_entry
from ppnets.utils import atomic_write_json, file_sha256, utc_now
from ppnets.version import __version__

from .fetch import fetch_hub, fetch_url, ppnets_home
from .sources import WeightSource, default_weight, find_weight

__all__ = ["resolve_weight", "source_identity", "cache_dir", "cached_entry",
           "converted_weights", "classifier_keys", "load_weights"]

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


def converted_weights(src: WeightSource) -> Dict[str, Any]:
    """The cache entry of ``src`` (``weights_path`` is a ppnets ``.pdparams``), fetching and
    converting the published file on a cache miss."""
    entry = cached_entry(src)
    if entry is not None:
        return entry
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
    os.makedirs(folder, exist_ok=True)
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


def _classifier_key_names(model: paddle.nn.Layer, source_classes: int) -> List[str]:
    """The classifier's state-dict keys; for a headless model (``num_classes=0``) the keys its
    classifier would have, found by building one for ``source_classes`` and removing it again."""
    if getattr(model, "num_classes", 0) or not source_classes:
        return classifier_keys(model)
    model.reset_classifier(source_classes)
    try:
        return classifier_keys(model)
    finally:
        model.reset_classifier(0)


def load_weights(model: paddle.nn.Layer, weights_path: str, source_classes: int,
                 what: str) -> Tuple[List[str], List[str]]:
    """Load a converted state dict into ``model``; with another class count (a headless
    backbone, ``num_classes=0``, included on either side) the classifier is left as initialised.
    Returns (loaded keys, classifier keys not taken from the file)."""
    state = paddle.load(weights_path)
    target = model.state_dict()
    skipped: List[str] = []
    if getattr(model, "num_classes", source_classes) != source_classes:
        heads = set(_classifier_key_names(model, source_classes))
        for k in [k for k in state if k in heads]:
            if k not in target or tuple(state[k].shape) != tuple(target[k].shape):
                state.pop(k)
        skipped = sorted(heads - set(state))
        if skipped:
            log.warning("%s: loaded everything but the classifier (%s), which was published "
                        "for %d classes; this model has %d and keeps its initial classifier",
                        what, ", ".join(skipped), source_classes, model.num_classes)
    missing = sorted(set(target) - set(state) - set(skipped))
    unexpected = sorted(set(state) - set(target))
    mismatched = sorted(k for k in state if k in target and
                        tuple(state[k].shape) != tuple(target[k].shape))
    if missing or unexpected or mismatched:
        raise ValueError(f"{what} does not fit this model: missing {missing[:8]}, unexpected "
                         f"{unexpected[:8]}, shape mismatches {mismatched[:8]}. Build it with "
                         "the variant's own configuration (only num_classes may differ).")
    dtypes = {k: str(v.dtype).replace("paddle.", "") for k, v in target.items()}
    model.set_state_dict({k: v.astype(dtypes[k]) for k, v in state.items()})
    return sorted(state), skipped
