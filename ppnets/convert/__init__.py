"""Load reference checkpoints (timm, torchvision, official repos) into ppnets models.

A checkpoint is read into a flat ``{key: numpy array}`` dict, mapped to our parameter names and
checked against the model before anything is set, so a wrong file fails loudly instead of
loading half the weights:

1. read ``.pdparams`` (native), ``.safetensors``, ``.npz`` or ``.pth``/``.pth.tar``/``.pt``/
   ``.bin``/``.ckpt`` (PyTorch pickles, read without torch and without running the pickle by
   :mod:`ppnets.convert.torch_pickle`), unwrapping ``state_dict``/``model`` containers and
   ``module.`` prefixes;
2. for reference (PyTorch-layout) files: drop ``num_batches_tracked``, rename BN
   ``running_mean/running_var`` to ``_mean/_variance``, apply the family's key map (the layout
   is detected as the map that explains the most keys), transpose ``nn.Linear`` weights
   (PyTorch stores [out, in], Paddle [in, out]);
3. report missing, unexpected and shape-mismatched keys; raise unless ``strict=False``.

:func:`load_state_dict` is the one place a state dict is checked and set into a model: by
:func:`load_pretrained` (a file, everything must fit) and by :mod:`ppnets.weights` (published
weights and ``pretrained=PATH``, where only the classifier may differ).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from ppnets.convert import torch_pickle
from ppnets.convert.errors import (CorruptCheckpointError, UnsafePickleError,
                                   UnsupportedCheckpointError, corrupt_error)
from ppnets.registry import get_entry
from ppnets.utils import atomic_write

__all__ = ["read_checkpoint", "convert_state_dict", "load_state_dict", "load_pretrained",
           "ConversionReport", "LoadedState", "classifier_keys", "classifier_layout",
           "save_state_dict",
           "CorruptCheckpointError", "UnsafePickleError", "UnsupportedCheckpointError",
           "CHECKPOINT_SUFFIXES"]

log = logging.getLogger("ppnets")

_TORCH_SUFFIXES = (".pth", ".pth.tar", ".pt", ".bin", ".ckpt")
# every file name ending read_checkpoint knows
CHECKPOINT_SUFFIXES = (".pdparams", ".safetensors", ".npz") + _TORCH_SUFFIXES


@dataclass
class ConversionReport:
    source: str
    layout: str
    loaded: int = 0
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"{self.source}: layout '{self.layout}', {self.loaded} tensors matched"]
        if self.missing:
            lines.append(f"  missing in checkpoint ({len(self.missing)}): {_short(self.missing)}")
        if self.unexpected:
            lines.append(f"  not used by the model ({len(self.unexpected)}): "
                         f"{_short(self.unexpected)}")
        for key, src, dst in self.mismatched[:10]:
            lines.append(f"  shape mismatch {key}: checkpoint {src} vs model {dst}")
        if len(self.mismatched) > 10:
            lines.append(f"  ... and {len(self.mismatched) - 10} more shape mismatches")
        return "\n".join(lines)


def _short(keys: List[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


def _read_paddle(path: str) -> Dict[str, np.ndarray]:
    import paddle
    state = paddle.load(path, return_numpy=True)   # arrays as stored: no tensor copy between
    if not isinstance(state, dict):
        raise ValueError(f"expected a dict of tensors, found {type(state).__name__}")
    return {k: np.asarray(v) for k, v in state.items()}


def _read_npz(path: str) -> Dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def read_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], str]:
    """Read a checkpoint into ``({key: ndarray}, kind)``, kind ``'paddle'`` or ``'torch'``.

    A truncated or corrupt file raises :class:`CorruptCheckpointError` naming the file, the
    format its name promises and what to do; a PyTorch pickle that asks for anything but tensors
    and containers raises :class:`UnsafePickleError` naming what it asked for, having run none
    of it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    lower = path.lower()
    if lower.endswith(".pdparams"):
        try:
            return _read_paddle(path), "paddle"
        except Exception as exc:  # noqa: BLE001 - paddle.load raises many types on bad input
            raise corrupt_error(path, ".pdparams", exc) from exc
    if lower.endswith(".safetensors"):
        from safetensors.numpy import load_file
        try:
            state = load_file(path)
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ...
            raise corrupt_error(path, ".safetensors", exc) from exc
    elif lower.endswith(".npz"):
        try:
            state = _read_npz(path)
        except Exception as exc:  # noqa: BLE001 - BadZipFile, ValueError, EOFError, ...
            raise corrupt_error(path, ".npz", exc) from exc
    elif lower.endswith(_TORCH_SUFFIXES):
        return torch_pickle.read_state_dict(path), "torch"
    else:
        raise ValueError(f"unsupported checkpoint type {path!r}: expected .pdparams, "
                         f".safetensors, .npz or a PyTorch pickle ({', '.join(_TORCH_SUFFIXES)})")
    return torch_pickle.strip_module_prefix(state), "torch"


def _torch_to_paddle_names(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        key = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        out[key] = value
    return out


def _linear_weight_keys(model) -> Set[str]:
    import paddle.nn as nn
    return {f"{name}.weight" if name else "weight"
            for name, layer in model.named_sublayers(include_self=True)
            if isinstance(layer, nn.Linear)}


def _convert(model, state: Dict[str, np.ndarray], kind: str,
             key_maps: Optional[Dict[str, Callable[[dict], dict]]], layout: Optional[str],
             source: str, linear: Set[str] = frozenset()
             ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], ConversionReport]:
    """``(fits, rest, report)``: ``state`` in our names and layout, split into the arrays that
    fit ``model`` and the others (unexpected or shaped otherwise); ``linear`` names more
    ``nn.Linear`` weights to transpose (a classifier the model does not have)."""
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if kind == "paddle":
        candidates = {"ppnets": dict(state)}
    else:
        base = _torch_to_paddle_names(state)
        maps = dict(key_maps or {})
        candidates = {"identity": base}
        for name, fn in maps.items():
            candidates[name] = fn(dict(base))
        if layout is not None:
            if layout not in candidates:
                raise ValueError(f"unknown layout {layout!r}; this model knows "
                                 f"{sorted(candidates)}")
            candidates = {layout: candidates[layout]}
    # The layout that explains the most of the model's keys wins; on a tie, the one leaving the
    # fewest keys unused (a map that only drops reference-only buffers must beat "identity").
    chosen = max(candidates, key=lambda n: (len(set(candidates[n]) & set(target)),
                                            -len(set(candidates[n]) - set(target))))
    mapped = candidates[chosen]
    linear = (_linear_weight_keys(model) | set(linear)) if kind == "torch" else set()

    report = ConversionReport(source=source, layout=chosen)
    fits, rest = {}, {}
    for key, value in mapped.items():
        value = np.asarray(value)
        if key in linear and value.ndim == 2:
            value = value.T
        if key not in target:
            report.unexpected.append(key)
            rest[key] = value
            continue
        if tuple(value.shape) != target[key]:
            # A Linear stored as a 1x1 conv, or a conv stored as a Linear, differs only in
            # trailing unit dims; anything else is a real mismatch.
            squeezed = tuple(d for d in value.shape if d != 1)
            if squeezed == tuple(d for d in target[key] if d != 1):
                value = value.reshape(target[key])
            else:
                report.mismatched.append((key, tuple(value.shape), target[key]))
                rest[key] = value
                continue
        fits[key] = value
    report.missing = sorted(set(target) - set(fits) - {k for k, _, _ in report.mismatched})
    report.unexpected.sort()
    report.loaded = len(fits)
    return fits, rest, report


def convert_state_dict(model, state: Dict[str, np.ndarray], kind: str = "torch",
                       key_maps: Optional[Dict[str, Callable[[dict], dict]]] = None,
                       layout: Optional[str] = None, source: str = "<memory>"
                       ) -> Tuple[Dict[str, np.ndarray], ConversionReport]:
    """Map ``state`` to ``model``'s parameter names and shapes; returns (state, report)."""
    fits, _, report = _convert(model, state, kind, key_maps, layout, source)
    return fits, report


def classifier_keys(model) -> List[str]:
    """State-dict keys of the classifier layer(s): ``get_classifier()`` and, for distilled
    models, ``head_dist``."""
    heads = [model.get_classifier()]
    if getattr(model, "head_dist", None) is not None:
        heads.append(model.head_dist)
    ids = {id(t) for head in heads for t in head.state_dict().values()}
    return [k for k, t in model.state_dict().items() if id(t) in ids]


def classifier_layout(model) -> Tuple[List[str], Set[str]]:
    """The classifier's state-dict keys and which of them are ``nn.Linear`` weights; for a
    headless model (``num_classes=0``) those its classifier would have, found by giving it one
    class and removing the classifier again (which leaves no parameter behind). No keys for a
    model that does not say which its classifier is (no ``get_classifier``)."""
    if not hasattr(model, "get_classifier"):
        return [], set()
    headless = not getattr(model, "num_classes", 0)
    if headless:
        model.reset_classifier(1)
    try:
        keys = classifier_keys(model)
        return keys, _linear_weight_keys(model) & set(keys)
    finally:
        if headless:
            model.reset_classifier(0)


@dataclass
class LoadedState:
    """What :func:`load_state_dict` set into a model."""

    report: ConversionReport       # the state against the model as built
    loaded: List[str]              # keys set from the state
    classifier_kept: List[str]     # classifier keys left as initialised (another class count)
    source_classes: Optional[int]  # classes of the state's classifier (0: it has none)
    # the state in the model's names and layout: what was loaded, and the state's own
    # classifier where it was kept out (what a cache of these weights holds)
    converted: Dict[str, np.ndarray]


def _classes(arrays: Dict[str, np.ndarray], linear_heads: Set[str]) -> Optional[int]:
    """Outputs of the classifier in ``arrays`` (None: it is not a Linear)."""
    present = sorted(k for k in linear_heads if k in arrays)
    return int(arrays[present[0]].shape[-1]) if present else None


def _check_fit(report: ConversionReport, heads: Set[str], what: str, label: str,
               new_classifier: bool) -> None:
    """Raise ValueError naming what does not fit, the classifier (``heads``) apart."""
    rest = ConversionReport(source=report.source, layout=report.layout, loaded=report.loaded,
                            missing=sorted(set(report.missing) - heads),
                            unexpected=sorted(set(report.unexpected) - heads),
                            mismatched=[m for m in report.mismatched if m[0] not in heads])
    if not rest.ok:
        raise ValueError(
            f"{what} does not fit {label}"
            + (": only the classifier may differ from the model built" if new_classifier else "")
            + f".\n{rest}\nCheck that the file holds {label} weights (a state dict saved after "
            "reparameterize() loads into the deploy form: create_model(..., deploy=True))"
            + ("." if new_classifier else ", or pass strict=False to load what matches."))


def _kept_classifier_note(model, found: Optional[int], source_classes: Optional[int],
                          has_head: bool) -> str:
    if source_classes is not None:
        theirs = ("it was published without one" if source_classes == 0 else
                  f"it was published for {source_classes} classes")
    else:
        theirs = ("the file has none" if found == 0 else
                  f"the file has one for {found or 'another number of'} classes")
    ours = (f"this model has {model.num_classes} classes and keeps its initial classifier"
            if has_head else "this model has none (num_classes=0)")
    return f"{theirs}; {ours}"


def load_state_dict(model, state: Dict[str, np.ndarray], kind: str = "paddle", *,
                    key_maps: Optional[Dict[str, Callable[[dict], dict]]] = None,
                    layout: Optional[str] = None, source: str = "<memory>",
                    what: Optional[str] = None, label: Optional[str] = None,
                    strict: bool = True, new_classifier: bool = False,
                    source_classes: Optional[int] = None) -> LoadedState:
    """Check ``state`` (``kind`` 'paddle': our layout, 'torch': a reference layout mapped by
    ``key_maps``) against ``model`` and set it, each tensor in the dtype of the parameter it
    fills (float64 or float16 checkpoints load into a float32 model, float32 ones into a model
    built in float64).

    With ``strict`` anything that does not fit raises ValueError before a tensor is set; without
    it, what fits loads. ``new_classifier`` lets the classifier differ (another class count, or
    none on one side, ``num_classes=0``): it keeps its initialisation and a log line says so.
    ``source_classes``, where known (published weights), is the class count the state's
    classifier must have (and messages say "published"). ``what`` names the weights in messages
    (default ``source``), ``label`` the model (default its class name).
    """
    what, label = what or source, label or type(model).__name__
    heads, linear_heads = classifier_layout(model) if new_classifier else ([], set())
    fits, rest, report = _convert(model, state, kind, key_maps, layout, source, linear_heads)
    file_heads = {k: v for k, v in {**fits, **rest}.items() if k in heads}
    found = (_classes(file_heads, linear_heads) if file_heads else 0) if heads else None
    if strict:
        _check_fit(report, set(heads), what, label, new_classifier)
    if source_classes is not None and found is not None and found != source_classes:
        raise ValueError(f"{what}: its classifier has {found} classes where {source_classes} "
                         "were published")
    model_state = model.state_dict()
    model_heads = set(heads) & set(model_state)
    kept: List[str] = []
    if set(file_heads) != model_heads or set(file_heads) - set(fits):
        # another class count (or no classifier on one side): the classifier keeps its init
        kept = sorted(model_heads)
        for key in heads:
            fits.pop(key, None)
        log.warning("%s: loaded everything but the classifier (%s): %s", what,
                    ", ".join(sorted(heads)),
                    _kept_classifier_note(model, found, source_classes, bool(model_heads)))
    dtypes = {k: str(v.dtype).replace("paddle.", "") for k, v in model_state.items()}
    fits = {k: v if str(v.dtype) == dtypes[k] else v.astype(dtypes[k]) for k, v in fits.items()}
    # every key, the others with their own values (Paddle warns of each key missing)
    model.set_state_dict({k: fits[k] if k in fits else v.numpy() for k, v in model_state.items()})
    float_dtype = next((d for d in dtypes.values() if d.startswith("float")), "float32")
    converted = {**fits, **{k: v.astype(float_dtype) if v.dtype.kind == "f" else v
                            for k, v in file_heads.items() if k not in fits}}
    return LoadedState(report=report, loaded=sorted(fits), classifier_kept=kept,
                       source_classes=found, converted=converted)


def load_pretrained(model, path: str, name: Optional[str] = None, layout: Optional[str] = None,
                    strict: bool = True) -> ConversionReport:
    """Load a ppnets or reference checkpoint into ``model`` in place; returns the report.

    With ``strict=True`` (default) any missing, unexpected or mismatched key raises before a
    single tensor is set.
    """
    state, kind = read_checkpoint(path)
    name = name or getattr(model, "model_name", None)
    key_maps = get_entry(name).key_maps if name is not None else {}
    return load_state_dict(model, state, kind, key_maps=key_maps, layout=layout, source=path,
                           label=name, strict=strict).report


def save_state_dict(state: dict, path: str) -> None:
    """``paddle.save`` through a temporary file of its own and an atomic rename
    (:func:`ppnets.utils.atomic_write`), so processes writing one path at once never collide."""
    import paddle
    atomic_write(path, lambda tmp: paddle.save(state, tmp))
