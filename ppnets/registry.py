"""The table of every registered model variant.

Each family file (``ppnets/models/<family>.py``) declares its variants as a table of keyword
dicts and registers it with :func:`register_models` when ``ppnets.models`` imports it. Users
reach the table through :func:`list_models` and :func:`model_info` under the reference
implementation's name (timm's, or torchvision's for ShuffleNetV2); :mod:`ppnets.factory` builds
the models. This module imports nothing of ppnets.
"""
from __future__ import annotations

import copy
import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

__all__ = ["register_models", "list_models", "model_info", "get_entry", "resolve_model_names",
           "ModelEntry", "DATASET_CLASSES", "IMAGENET_MEAN", "IMAGENET_STD"]

# Keys a family may put in a variant's published-figures dict. Everything else is rejected so a
# typo cannot silently drop a number from model_info().
_INFO_KEYS = {
    "params_m", "macs_g", "top1", "top5", "input_size", "source", "notes", "reference",
    "params_m_deploy", "macs_g_deploy", "crop_pct", "interpolation", "mean", "std",
    "test_input_size", "deploy_check_input_size", "measured", "dataset", "latency",
}

# Classes of the data set a variant is defined on (model_info "dataset"): the default num_classes.
DATASET_CLASSES = {"imagenet-1k": 1000, "cifar10": 10}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelEntry:
    """A registered variant: how to build it and what the paper says about it."""

    name: str
    family: str
    builder: Callable[..., Any]
    cfg: Dict[str, Any]
    info: Dict[str, Any]
    aliases: List[str] = field(default_factory=list)
    # layout name -> fn(reference state dict) -> state dict in our key names (see ppnets.convert)
    key_maps: Dict[str, Callable[[dict], dict]] = field(default_factory=dict)


_REGISTRY: Dict[str, ModelEntry] = {}
_ALIASES: Dict[str, str] = {}


def register_models(family: str, builder: Callable[..., Any], variants: Dict[str, dict], *,
                    paper: str, arxiv: Optional[str], defaults: Optional[dict] = None,
                    key_maps: Optional[Dict[str, Callable[[dict], dict]]] = None) -> None:
    """Register a family's variant table.

    ``variants`` maps the registry name to ``dict(cfg=..., info=..., aliases=[...])``: ``cfg`` are
    the keyword arguments of ``builder`` for that variant, ``info`` the published figures (see
    :func:`model_info`). ``defaults`` holds info shared by the whole family (input size, mean/std,
    crop fraction...), overridden per variant.
    """
    for name, spec in variants.items():
        unknown = set(spec) - {"cfg", "info", "aliases"}
        if unknown:
            raise ValueError(f"variant {name!r} of {family}: unknown spec keys {sorted(unknown)}; "
                             "expected cfg, info and aliases")
        info = {"input_size": (3, 224, 224), "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                "crop_pct": 0.875, "interpolation": "bilinear", "dataset": "imagenet-1k"}
        info.update(copy.deepcopy(defaults or {}))
        info.update(copy.deepcopy(spec.get("info", {})))
        bad = set(info) - _INFO_KEYS
        if bad:
            raise ValueError(f"variant {name!r} of {family}: unknown info keys {sorted(bad)}; "
                             f"allowed: {sorted(_INFO_KEYS)}")
        info.update(paper=paper, arxiv=arxiv)
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"model name {name!r} is registered twice")
        entry = ModelEntry(name=name, family=family, builder=builder, cfg=dict(spec.get("cfg", {})),
                           info=info, aliases=list(spec.get("aliases", [])),
                           key_maps=dict(key_maps or {}))
        _REGISTRY[name] = entry
        for alias in entry.aliases:
            if alias in _REGISTRY or alias in _ALIASES:
                raise ValueError(f"alias {alias!r} of {name!r} is already taken")
            _ALIASES[alias] = name


def get_entry(name: str) -> ModelEntry:
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY) + list(_ALIASES), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown model {name!r}.{hint} "
                       f"Run ppnets.list_models() to see the {len(_REGISTRY)} registered models.")
    return _REGISTRY[key]


def list_models(pattern: Optional[str] = None, family: Optional[str] = None) -> List[str]:
    """Registered model names (not aliases), sorted; ``pattern`` is an fnmatch pattern or a list."""
    names = sorted(_REGISTRY)
    if family is not None:
        names = [n for n in names if _REGISTRY[n].family == family]
    if pattern is not None:
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    return names


def model_info(name: str) -> Dict[str, Any]:
    """Published reference figures of a variant.

    Keys: ``name``, ``family``, ``paper``, ``arxiv``, ``params_m`` (M parameters), ``macs_g``
    (G multiply-accumulates; FLOPs = 2 x MACs), ``top1``, ``input_size`` (C, H, W), ``source``
    (where each number comes from), and where known ``crop_pct``, ``interpolation``, ``mean``,
    ``std``, ``notes`` (why our count differs from the paper's, deliberate deviations),
    ``reference`` (library and name of the reference implementation used for parity).
    """
    entry = get_entry(name)
    out = copy.deepcopy(entry.info)
    out.update(name=entry.name, family=entry.family, aliases=list(entry.aliases))
    return out


def resolve_model_names(names_or_patterns: Union[str, Sequence[str]]) -> List[str]:
    """Registry names for a list of names, aliases or fnmatch patterns, in order, deduplicated.

    Raises KeyError (with close matches, from the registry) for an unknown name and for a
    pattern that matches nothing.
    """
    items = [names_or_patterns] if isinstance(names_or_patterns, str) else list(names_or_patterns)
    if not items:
        raise ValueError("no model names given")
    out: List[str] = []
    for item in items:
        if any(ch in item for ch in "*?["):
            matched = list_models(item)
            if not matched:
                raise KeyError(f"pattern {item!r} matches no registered model; "
                               "see ppnets.list_models()")
        else:
            # model_info raises KeyError with close matches and maps aliases to the real name.
            matched = [model_info(item).get("name", item)]
        out.extend(n for n in matched if n not in out)
    return out
