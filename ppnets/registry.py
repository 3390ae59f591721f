"""The table of every registered model variant and of its published weights.

Each family file (``ppnets/models/<family>.py``) declares its variants as a table of keyword
dicts -- how to build each one, its published figures and its published weights -- and registers
it with :func:`register_models` when ``ppnets.models`` imports it, the way timm keeps a family's
``default_cfgs`` next to its entry points. Users reach the table through :func:`list_models` and
:func:`model_info` under the reference implementation's name (timm's, or torchvision's for
ShuffleNetV2); :mod:`ppnets.factory` builds the models and :mod:`ppnets.weights` fetches the
weights. This module imports nothing of ppnets.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["register_models", "unregister_models", "list_models", "model_info", "get_entry", "resolve_model_names",
           "ModelEntry", "WeightSource", "DATASET_CLASSES", "IMAGENET_MEAN", "IMAGENET_STD",
           "IMAGENET_INCEPTION_MEAN", "IMAGENET_INCEPTION_STD", "PREPROCESSING_KEYS",
           "TIMM_RESULTS", "TIMM_WEIGHT", "DISTILLED_WEIGHT"]

# Keys a family may put in a variant's published-figures dict. Everything else is rejected so a
# typo cannot silently drop a number from model_info().
_INFO_KEYS = {
    "params_m", "macs_g", "top1", "top5", "input_size", "source", "notes", "reference",
    "params_m_deploy", "macs_g_deploy", "crop_pct", "interpolation", "mean", "std",
    "test_input_size", "deploy_check_input_size", "measured", "dataset", "latency",
}
_SPEC_KEYS = {"cfg", "info", "aliases", "weights", "no_weights", "eval_weight"}

# How a variant's inputs are prepared for evaluation. For a variant with published weights these
# are the weight's (model_info reads them from its eval weight); the others write them in info.
PREPROCESSING_KEYS = ("input_size", "mean", "std", "crop_pct", "interpolation")

# Classes of the data set a variant is defined on (model_info "dataset"): the default num_classes.
DATASET_CLASSES = {"imagenet-1k": 1000, "cifar10": 10}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_INCEPTION_MEAN = (0.5, 0.5, 0.5)   # inputs scaled to [-1, 1] (timm's name)
IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class WeightSource:
    """One published weight file of a registered model and how it was evaluated.

    Family files write each as a keyword dict in the ``weights`` list of its variant;
    :func:`register_models` fills in ``model`` and ``default`` (the first listed is the default:
    what the reference library loads for ``pretrained=True``). Where the facts come from
    (tests/weights/test_sources.py checks them against the sources at test time):

    * timm 1.0.31 (``timm.get_pretrained_cfg('<name>.<tag>')``): the tags and their order (timm's
      first tag is its default), the Hugging Face Hub repository ``timm/<name>.<tag>`` (written
      ``hf_hub_id="timm/"``, as timm does), ``num_classes``, ``input_size``,
      ``test_input_size``, ``crop_pct``, ``test_crop_pct``, ``interpolation``, ``mean``, ``std``,
      ``license``. Every tag timm has for the architecture is listed: each loads into our model
      with the entry's ``num_classes``. The file is timm's ``model.safetensors`` at revision
      ``main``, what timm itself downloads; no hash is recorded for Hub files (the Hub serves
      their sha256 with them).
    * ImageNet-1k top-1/top-5 of timm weights: :data:`TIMM_RESULTS`, the row of
      ``<name>.<tag>`` evaluated at the entry's ``input_size`` and ``crop_pct``; timm's model
      cards often quote the ``test_input_size`` row instead, which is higher.
    * torchvision 0.29.1 (``torchvision.models.<Arch>_Weights``): the URL, the sha256 prefix in
      its file name (what ``torch.hub`` checks), the transforms (resize, crop, interpolation,
      mean, std) and ``meta['_metrics']``.
    """

    model: str                    # ppnets registry name
    tag: str                      # timm's pretrained tag, or torchvision's weights enum name
    default: bool                 # what the reference library loads for ``pretrained=True``
    library: str                  # "timm" or "torchvision": whose metadata this mirrors
    kind: str                     # "hf_hub" (hf_hub_id, filename, revision) or "url"
    file_format: str              # "safetensors" or "pth"
    num_classes: int              # classifier outputs; 0: a backbone without classifier
    input_size: Tuple[int, int, int]
    crop_pct: float
    interpolation: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    top1: Optional[float]         # ImageNet-1k top-1 (%) the source claims; None: it claims none
    top5: Optional[float]
    top1_source: str
    test_input_size: Optional[Tuple[int, int, int]] = None
    test_crop_pct: Optional[float] = None
    hf_hub_id: Optional[str] = None
    filename: Optional[str] = None
    revision: Optional[str] = None
    url: Optional[str] = None
    sha256: Optional[str] = None          # the file's full sha256 where published
    sha256_prefix: Optional[str] = None   # the hex digits in a torch.hub file name: a prefix
    distilled: bool = False               # trained with a distillation head (DeiT-style)
    license: Optional[str] = None         # timm's cfg license; None where the source names none
    notes: str = ""

    def __post_init__(self):
        if self.kind == "hf_hub":
            ok = self.hf_hub_id and self.filename and self.revision and not self.url
        elif self.kind == "url":
            ok = self.url and bool(self.sha256) != bool(self.sha256_prefix) and not self.hf_hub_id
        else:
            ok = False
        if not ok:
            raise ValueError(f"{self.model}.{self.tag}: kind {self.kind!r} needs hf_hub_id, "
                             "filename and revision ('hf_hub') or a url with exactly one of "
                             "sha256 / sha256_prefix ('url')")


TIMM_RESULTS = ("huggingface/pytorch-image-models results/results-imagenet.csv (last changed in "
                "4e5207c7, 2025-10-30): the row of this <name>.<tag> at input_size and crop_pct")

# What every timm weight on the Hugging Face Hub shares; a family's weights override the rest.
TIMM_WEIGHT = MappingProxyType(dict(
    library="timm", kind="hf_hub", hf_hub_id="timm/", file_format="safetensors",
    filename="model.safetensors", revision="main", num_classes=1000, input_size=(3, 224, 224),
    mean=IMAGENET_MEAN, std=IMAGENET_STD, top1_source=TIMM_RESULTS, license="apache-2.0"))
DISTILLED_WEIGHT = MappingProxyType(dict(
    distilled=True, notes="Trained with knowledge distillation: a second classifier (head_dist) "
                          "learns from a teacher; eval output = mean of both heads."))


@dataclass
class ModelEntry:
    """A registered variant: how to build it, what the paper says about it, and its published
    weights (``weights``, the default first) or why there are none (``no_weights``)."""

    name: str
    family: str
    builder: Callable[..., Any]
    cfg: Dict[str, Any]
    info: Dict[str, Any]
    aliases: List[str] = field(default_factory=list)
    # layout name -> fn(reference state dict) -> state dict in our key names (see ppnets.convert)
    key_maps: Dict[str, Callable[[dict], dict]] = field(default_factory=dict)
    weights: Tuple[WeightSource, ...] = ()
    no_weights: Optional[str] = None


_REGISTRY: Dict[str, ModelEntry] = {}
_ALIASES: Dict[str, str] = {}


def _weight_sources(family: str, name: str, specs: Sequence[dict]) -> Tuple[WeightSource, ...]:
    out = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        # timm's convention: hf_hub_id "timm/" stands for timm/<name>.<tag>
        if (spec.get("hf_hub_id") or "").endswith("/"):
            spec["hf_hub_id"] += f"{name}.{spec.get('tag')}"
        try:
            out.append(WeightSource(model=name, default=i == 0, **spec))
        except TypeError as exc:
            known = sorted(f.name for f in dataclasses.fields(WeightSource))
            raise ValueError(f"weight {i} of variant {name!r} of {family}: {exc}; a weight's "
                             f"fields are {known}") from None
    if len({w.tag for w in out}) != len(out):
        raise ValueError(f"variant {name!r} of {family}: two weights have the same tag")
    return tuple(out)


def register_models(family: str, builder: Callable[..., Any], variants: Dict[str, dict], *,
                    paper: str, arxiv: Optional[str], defaults: Optional[dict] = None,
                    key_maps: Optional[Dict[str, Callable[[dict], dict]]] = None) -> None:
    """Register a family's variant table.

    ``variants`` maps the registry name to a dict with

    * ``cfg``: the keyword arguments of ``builder`` for that variant;
    * ``info``: the published figures (see :func:`model_info`);
    * ``aliases``: other names it answers to;
    * ``weights``: its published weights, the default first, each a dict of
      :class:`WeightSource` fields (``model`` and ``default`` are filled in here); or
      ``no_weights``: why it has none (tests/weights/test_sources.py requires one of the two);
    * ``eval_weight``: the tag of the weight whose evaluation settings model_info reports
      (default: the default weight) -- the one its published top-1 was measured with.

    ``defaults`` holds info shared by the whole family, overridden per variant. The
    preprocessing (:data:`PREPROCESSING_KEYS`) of a variant with weights is its eval weight's,
    written there only: info that repeats it is rejected.
    """
    for name, spec in variants.items():
        _check_spec_keys(family, name, spec)
        weights = _weight_sources(family, name, spec.get("weights", ()))
        no_weights = spec.get("no_weights")
        if weights and no_weights:
            raise ValueError(f"variant {name!r} of {family} has weights and no_weights")
        info = _variant_info(family, name, spec, weights, defaults)
        info.update(paper=paper, arxiv=arxiv)
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"model name {name!r} is registered twice")
        _add_entry(ModelEntry(name=name, family=family, builder=builder,
                              cfg=dict(spec.get("cfg", {})), info=info,
                              aliases=list(spec.get("aliases", [])), key_maps=dict(key_maps or {}),
                              weights=weights, no_weights=no_weights))


def _check_spec_keys(family: str, name: str, spec: dict) -> None:
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"variant {name!r} of {family}: unknown spec keys {sorted(unknown)}; "
                         f"expected {', '.join(sorted(_SPEC_KEYS))}")


def _variant_info(family: str, name: str, spec: dict, weights: Tuple[WeightSource, ...],
                  defaults: Optional[dict]) -> Dict[str, Any]:
    """A variant's info: the family defaults and its own info, over its eval weight's
    preprocessing (a variant with weights) or over ImageNet's usual evaluation settings."""
    written = copy.deepcopy(defaults or {})
    written.update(copy.deepcopy(spec.get("info", {})))
    bad = set(written) - _INFO_KEYS
    if bad:
        raise ValueError(f"variant {name!r} of {family}: unknown info keys {sorted(bad)}; "
                         f"allowed: {sorted(_INFO_KEYS)}")
    info = {"input_size": (3, 224, 224), "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
            "crop_pct": 0.875, "interpolation": "bilinear", "dataset": "imagenet-1k"}
    if weights:
        info.update(_eval_preprocessing(family, name, spec, weights, written))
    elif "eval_weight" in spec:
        raise ValueError(f"variant {name!r} of {family}: eval_weight without weights")
    info.update(written)
    return info


def _eval_preprocessing(family: str, name: str, spec: dict, weights: Tuple[WeightSource, ...],
                        written: Dict[str, Any]) -> Dict[str, Any]:
    """The preprocessing of the weight a variant's published top-1 was measured with."""
    doubled = sorted(set(written) & set(PREPROCESSING_KEYS))
    if doubled:
        raise ValueError(
            f"variant {name!r} of {family}: {', '.join(doubled)} in info (or the family "
            "defaults) repeat what its weights say: write them in its weight entries only")
    shown = {w.tag: w for w in weights}.get(spec.get("eval_weight", weights[0].tag))
    if shown is None:
        raise ValueError(f"variant {name!r} of {family}: eval_weight "
                         f"{spec['eval_weight']!r} is not one of its weights' tags")
    return {key: getattr(shown, key) for key in PREPROCESSING_KEYS}


def _add_entry(entry: ModelEntry) -> None:
    """Register an entry under its name, then its aliases (an alias already taken stops there)."""
    _REGISTRY[entry.name] = entry
    for alias in entry.aliases:
        if alias in _REGISTRY or alias in _ALIASES:
            raise ValueError(f"alias {alias!r} of {entry.name!r} is already taken")
        _ALIASES[alias] = entry.name


def unregister_models(names: Sequence[str]) -> None:
    """Remove registered variants and their aliases (models registered for a test or a
    notebook's throwaway family); unknown names are ignored."""
    for name in names:
        entry = _REGISTRY.pop(name, None)
        for alias in (entry.aliases if entry else []):
            _ALIASES.pop(alias, None)


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
    (where each number comes from), ``crop_pct``, ``interpolation``, ``mean``, ``std`` (for a
    variant with published weights, with ``input_size``, those of its weight the published top-1
    was measured with: the default weight unless the variant names another), and where known
    ``notes`` (why our count differs from the paper's, deliberate deviations), ``reference``
    (library and name of the reference implementation used for parity).
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
