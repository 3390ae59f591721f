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
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ppnets.convert import torch_pickle
from ppnets.convert.errors import (CorruptCheckpointError, UnsafePickleError,
                                   UnsupportedCheckpointError, corrupt_error)
from ppnets.registry import get_entry
from ppnets.utils import atomic_write

__all__ = ["read_checkpoint", "convert_state_dict", "load_pretrained", "ConversionReport",
           "save_state_dict", "CorruptCheckpointError", "UnsafePickleError",
           "UnsupportedCheckpointError", "CHECKPOINT_SUFFIXES"]

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
    state = paddle.load(path)
    if not isinstance(state, dict):
        raise ValueError(f"expected a dict of tensors, found {type(state).__name__}")
    return {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in state.items()}


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


def _linear_weight_keys(model) -> set:
    import paddle.nn as nn
    return {f"{name}.weight" if name else "weight"
            for name, layer in model.named_sublayers(include_self=True)
            if isinstance(layer, nn.Linear)}


def convert_state_dict(model, state: Dict[str, np.ndarray], kind: str = "torch",
                       key_maps: Optional[Dict[str, Callable[[dict], dict]]] = None,
                       layout: Optional[str] = None, source: str = "<memory>"
                       ) -> Tuple[Dict[str, np.ndarray], ConversionReport]:
    """Map ``state`` to ``model``'s parameter names and shapes; returns (state, report)."""
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
                raise ValueError(f"unknown layout {layout!r}; this model knows {sorted(candidates)}")
            candidates = {layout: candidates[layout]}
    # The layout that explains the most of the model's keys wins; on a tie, the one leaving the
    # fewest keys unused (a map that only drops reference-only buffers must beat "identity").
    chosen = max(candidates, key=lambda n: (len(set(candidates[n]) & set(target)),
                                            -len(set(candidates[n]) - set(target))))
    mapped = candidates[chosen]
    linear = _linear_weight_keys(model) if kind == "torch" else set()

    report = ConversionReport(source=source, layout=chosen)
    out = {}
    for key, value in mapped.items():
        if key not in target:
            report.unexpected.append(key)
            continue
        value = np.asarray(value)
        if key in linear and value.ndim == 2:
            value = value.T
        if tuple(value.shape) != target[key]:
            # A Linear stored as a 1x1 conv, or a conv stored as a Linear, differs only in
            # trailing unit dims; anything else is a real mismatch.
            if int(np.prod(value.shape)) == int(np.prod(target[key])) and \
                    tuple(d for d in value.shape if d != 1) == tuple(d for d in target[key] if d != 1):
                value = value.reshape(target[key])
            else:
                report.mismatched.append((key, tuple(value.shape), target[key]))
                continue
        out[key] = value
    report.missing = sorted(set(target) - set(out) - {k for k, _, _ in report.mismatched})
    report.unexpected.sort()
    report.loaded = len(out)
    return out, report


def load_pretrained(model, path: str, name: Optional[str] = None, layout: Optional[str] = None,
                    strict: bool = True) -> ConversionReport:
    """Load a ppnets or reference checkpoint into ``model`` in place; returns the report.

    With ``strict=True`` (default) any missing, unexpected or mismatched key raises before a
    single tensor is set.
    """
    state, kind = read_checkpoint(path)
    key_maps = {}
    name = name or getattr(model, "model_name", None)
    if name is not None:
        key_maps = get_entry(name).key_maps
    converted, report = convert_state_dict(model, state, kind=kind, key_maps=key_maps,
                                           layout=layout, source=path)
    if strict and not report.ok:
        raise ValueError(f"checkpoint does not fit {name or type(model).__name__}:\n{report}\n"
                         "Check that the model name matches the checkpoint (deploy=True for a "
                         "reparameterized state dict) or pass strict=False to load what matches.")
    # Each tensor in the dtype of the parameter it fills: float64 or float16 checkpoints load
    # into a float32 model, float32 ones into a model built in float64.
    dtypes = {k: str(v.dtype).replace("paddle.", "") for k, v in model.state_dict().items()}
    model.set_state_dict({k: v.astype(dtypes[k]) if str(v.dtype) != dtypes[k] else v
                          for k, v in converted.items()})
    return report


def save_state_dict(state: dict, path: str) -> None:
    """``paddle.save`` through a temporary file of its own and an atomic rename
    (:func:`ppnets.utils.atomic_write`), so processes writing one path at once never collide."""
    import paddle
    atomic_write(path, lambda tmp: paddle.save(state, tmp))
