"""Training configuration: YAML files with ``_base_`` inheritance and ``-o key.sub=value`` overrides.

A config is a plain nested dict. :func:`load_config` starts from :data:`DEFAULTS`, merges the
file's bases (``_base_: ../base/x.yaml`` or a list, resolved relative to the file, later bases
win), then the file itself, then the overrides, and validates the result: an unknown key
anywhere outside the free-form sections (``model.kwargs``, ``experiment``) is an error that names
the key and lists the accepted ones, so a typo cannot silently fall back to a default; a value of
the wrong type (``optim.lr=0,01``) names the key and the expected type; a YAML syntax error names
the file, line, column and key.

The recipes ship inside the package (``ppnets/configs/``; ``configs/`` in a checkout is a link to
it), so an installed ppnets has them too: a config is named by path or by recipe name,
``fasternet/cifar10`` (:func:`resolve_config`, :func:`list_configs`), and ``_base_`` entries
resolve the same way (relative to the file first).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional

import yaml

__all__ = ["DEFAULTS", "load_config", "merge_config", "apply_overrides", "validate_config",
           "dump_config", "read_saved_config", "ConfigError", "config_differences",
           "RESUME_FREE_KEYS", "CONFIG_DIR", "resolve_config", "list_configs", "Recipe"]

# The recipes shipped with the package (ppnets/configs/<family>/<name>.yaml).
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3``/``3E4`` as floats (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml_load(text):
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config file or override is malformed (unknown key, bad value, missing base)."""


# Every accepted key with its default. docs/training.md documents each one.
DEFAULTS: Dict[str, Any] = {
    "model": {
        "name": None,            # registry name, e.g. resnet20_cifar
        "kwargs": {},            # extra keyword arguments of ppnets.create_model (free-form)
        "pretrained": None,      # True | weight tag (e.g. in1k) | checkpoint path; None: scratch
        "freeze": None,          # "backbone" (all but the classifier) | list of name prefixes
    },
    "data": {
        "dataset": "cifar10",    # cifar10 | imagenet | folder (your own images)
        "data_file": None,       # local cifar-10-python.tar.gz; None: download (online only)
        "data_dir": None,        # imagenet: folder with train/<wnid>/, val/<wnid>/ (or list roots)
        "train_dir": None,       # folder: class sub-folders of training images
        "val_dir": None,         # folder: class sub-folders of validation images
        "val_fraction": 0.1,     # folder without val_dir/val_list: share held out of training
        "train_list": None,      # imagenet: PaddleClas list file (relative/path label)
        "val_list": None,        # imagenet: PaddleClas list file for evaluation
        "num_classes": None,     # None: the data set's (10 cifar10, 1000 imagenet, folder's)
        "eval_crop_pct": None,   # imagenet eval: None = the model's crop_pct (model_info)
        "interpolation": None,   # imagenet eval resize: None = the model's (model_info)
        "image_size": 32,        # network input side; != 32 resizes after augmentation
        "batch_size": 128,
        "eval_batch_size": None,  # None: same as batch_size
        "num_workers": None,     # DataLoader workers; None: min(8, usable cores)
        "on_bad_image": "error",  # unreadable image files: error (stop, list them) | skip
        "mean": [0.4914, 0.4822, 0.4465],  # None: the model's (model_info), for pretrained nets
        "std": [0.2470, 0.2435, 0.2616],
        "augment": {
            "random_crop_padding": 4,   # 0 disables the random crop
            "hflip": True,
            # imagenet only (ppnets.engine.transforms / ppnets.engine.augment):
            "scale": [0.08, 1.0],            # random resized crop area fraction
            "ratio": [0.75, 1.3333333333333333],  # random resized crop aspect ratio
            "train_interpolation": "bicubic",
            "rand_augment": None,            # e.g. rand-m9-mstd0.5-inc1
            "auto_augment": None,            # AutoAugment ImageNet policy: original (= autoaug)
            "random_erasing": 0.0,           # probability
            "mixup_alpha": 0.0,
            "cutmix_alpha": 0.0,
            "mix_prob": 1.0,
            "mix_switch_prob": 0.5,
        },
    },
    "optim": {
        "name": "sgd",           # sgd | adam | adamw | rmsprop_tf
        "lr": 0.1,
        "momentum": 0.9,         # sgd, rmsprop_tf
        "nesterov": False,       # sgd only
        "weight_decay": 1e-4,    # L2 (sgd, adam, rmsprop_tf) or decoupled (adamw)
        "betas": [0.9, 0.999],   # adam, adamw
        "eps": 1e-8,             # adam, adamw, rmsprop_tf (TF recipes: 1e-3)
        "rho": 0.9,              # rmsprop_tf: mean-square decay (TF "decay", torch "alpha")
        "clip_grad_norm": None,  # clip the global gradient norm to this; None: no clipping
        "lr_scale_batch": None,  # lr *= global batch / lr_scale_batch (e.g. 256); None: as is
        "weight_decay_end": None,  # cosine-anneal weight_decay to this (wd_schedule.py)
        "layer_decay": None,     # layer-wise lr decay (fine-tuning): lr *= decay ** depth-from-top
    },
    "sched": {
        "name": "cosine",        # cosine | linear | step | multistep | constant
        "warmup_epochs": 0.0,
        "warmup_start_lr": 0.0,
        "milestones": [],        # multistep: epochs at which lr *= gamma
        "step_size": 30,         # step: lr *= gamma every step_size epochs (may be fractional)
        "gamma": 0.1,
        "eta_min": 0.0,          # cosine floor
    },
    "train": {
        "epochs": 10,
        "seed": 42,
        "label_smoothing": 0.0,
        "log_freq": 50,
        "eval_freq": 1,          # evaluate every N epochs (and always after the last one)
        "save_freq": 1,          # checkpoint every N epochs (and always after the last one)
        "keep_checkpoints": 2,   # how many epoch checkpoints to keep (0: keep all)
        "amp": False,            # mixed precision (O1); GPU only
        "max_steps_per_epoch": None,  # cap on train batches per epoch (smoke runs)
        "max_eval_steps": None,  # cap on eval batches (smoke runs)
        "resume": True,          # continue from output_dir/checkpoints/latest.json if present
        "verbose": 2,            # paddle.Model.fit verbosity (0 silent, 1 bar, 2 one line)
        "ema_decay": None,       # model EMA decay, e.g. 0.9998 (ema.py); None: no EMA
    },
    "distill": {                 # DeiT-style distillation from a frozen teacher (distill.py)
        "teacher": None,         # registry name, e.g. regnety_160; None: no distillation
        "teacher_kwargs": {},    # free-form constructor arguments of the teacher
        "teacher_weights": None,  # .pdparams of the teacher (None: random, smoke tests only)
        "type": "hard",          # hard | soft | none
        "alpha": 0.5,            # weight of the distillation term
        "tau": 1.0,              # soft distillation temperature
    },
    "export": {                  # after training, export the best checkpoint (ppnets train)
        "formats": [],           # any of paddle, onnx, lite; []: no export
        "lite_targets": ["arm"],
    },
    "device": "cpu",             # cpu | gpu
    "output_dir": "outputs/run",
    "experiment": {},            # free-form notes/choices read by reproduce scripts
}

# Sections whose content is not checked key by key.
_FREE_FORM = {("model", "kwargs"), ("experiment",), ("distill", "teacher_kwargs")}


def merge_config(base: Mapping, update: Mapping) -> dict:
    """Deep merge: dicts merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A shipped recipe: its name (``fasternet/cifar10``), file and first comment line."""
    name: str
    path: str
    description: str


def _recipe_name(path: str) -> str:
    return os.path.splitext(os.path.relpath(path, CONFIG_DIR))[0].replace(os.sep, "/")


def _description(path: str, width: int = 90) -> str:
    """The first sentence of the file's leading comment, cut to ``width`` characters."""
    words: List[str] = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if not line.strip().startswith("#"):
                break
            text = line.strip().lstrip("#").strip()
            if not text and words:
                break
            words += text.split()
    text = " ".join(words)
    end = re.search(r"(?<!al)\.(\s+[A-Z(]|$)", text)
    text = text[:end.start()] if end else text
    return text if len(text) <= width else text[:width - 3].rsplit(" ", 1)[0] + "..."


def list_configs(pattern: str = "*") -> List[Recipe]:
    """The shipped recipes whose name matches the shell ``pattern`` (``fasternet/*``,
    ``*cifar10``; a pattern without ``*`` or ``?`` matches as a substring), sorted by name."""
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    found = []
    for folder, _, files in os.walk(CONFIG_DIR):
        for name in files:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(folder, name)
                if fnmatch.fnmatch(_recipe_name(path), pattern):
                    found.append(Recipe(_recipe_name(path), path, _description(path)))
    return sorted(found, key=lambda r: r.name)


def resolve_config(spec: str) -> str:
    """The file a config argument names: an existing path, else a shipped recipe by name
    (``fasternet/cifar10``, with or without ``.yaml`` and a leading ``configs/``, as written in
    the checkout's docs). Raises :class:`ConfigError` listing close names when neither exists."""
    path = os.path.expanduser(str(spec))
    if os.path.isfile(path):
        return os.path.abspath(path)
    name = path.replace("\\", "/")
    if name.startswith("./"):
        name = name[2:]
    for prefix in ("ppnets/configs/", "configs/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = re.sub(r"\.ya?ml$", "", name)
    for suffix in (".yaml", ".yml"):
        candidate = os.path.join(CONFIG_DIR, *name.split("/")) + suffix
        if os.path.isfile(candidate):
            return candidate
    names = [r.name for r in list_configs()]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"config {spec!r} is neither a file nor a shipped recipe.{hint} "
                      "`ppnets configs` lists the recipes.")


def _yaml_error(path: str, exc: yaml.YAMLError) -> ConfigError:
    """One line: file, line, column, the key written there and what YAML found wrong."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return ConfigError(f"{path}: not valid YAML: {problem}")
    key = ""
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
        match = re.match(r"\s*-?\s*([^:#\s][^:#]*?)\s*:", lines[mark.line])
        key = f" (key {match.group(1)!r})" if match else ""
    except (OSError, IndexError):
        pass
    return ConfigError(f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML{key}: {problem}; "
                       "check the indentation (spaces, two per level) and the 'key: value' "
                       "form of that line")


def _read_yaml(path: str, _stack: tuple = ()) -> dict:
    path = os.path.abspath(path)
    if path in _stack:
        chain = " -> ".join(_stack + (path,))
        raise ConfigError(f"circular _base_ chain: {chain}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = _yaml_load(f) or {}
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level, got "
                          f"{type(raw).__name__}")
    bases = raw.pop("_base_", None) or []
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for base in bases:
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):  # a recipe name: a user's file may build on ours
            try:
                base_path = resolve_config(base)
            except ConfigError:
                raise ConfigError(f"{path}: _base_ {base!r} is neither a file (relative to "
                                  f"{os.path.dirname(path)}) nor a shipped recipe; "
                                  "`ppnets configs` lists the recipes") from None
        merged = merge_config(merged, _read_yaml(base_path, _stack + (path,)))
    return merge_config(merged, raw)


def _parse_override(item: str):
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.sub=value "
                          "(e.g. -o train.epochs=2 -o optim.lr=0.05)")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key component in {key!r}")
    try:
        parsed = _yaml_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"override {item!r}: value {value!r} is not valid YAML ({problem}); "
                          "quote a string, write lists as [a, b]") from None
    return key.split("."), parsed


def apply_overrides(cfg: Mapping, overrides: Iterable[str] = ()) -> dict:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``yaml.safe_load`` rules, plus
    ``1e-3`` -> float): ``2`` -> int, ``[1,2]`` -> list, ``null`` -> None, ``true`` -> bool)."""
    out = copy.deepcopy(dict(cfg))
    for item in overrides:
        path, value = _parse_override(item)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} holds a "
                                  f"{type(child).__name__}, not a section")
            node = child
        node[path[-1]] = value
    return out


def _check_keys(cfg: Mapping, ref: Mapping, prefix: tuple, source: str) -> None:
    for key, value in cfg.items():
        where = ".".join(prefix + (str(key),))
        if key not in ref:
            close = difflib.get_close_matches(str(key), [str(k) for k in ref], n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            level = f"in section {'.'.join(prefix)!r}" if prefix else "at the top level"
            raise ConfigError(f"{source}: unknown config key {where!r} {level}.{hint} "
                              f"Accepted keys: {', '.join(sorted(map(str, ref)))}. "
                              "See docs/training.md.")
        sub = prefix + (str(key),)
        if sub in _FREE_FORM:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{source}: {where!r} must be a mapping, got {value!r}")
            continue
        if isinstance(ref[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {where!r} must be a section (mapping), "
                                  f"got {value!r}")
            _check_keys(value, ref[key], sub, source)


_CHOICES = {
    ("data", "dataset"): ("cifar10", "imagenet", "folder"),
    ("optim", "name"): ("sgd", "adam", "adamw", "rmsprop_tf"),
    ("sched", "name"): ("cosine", "linear", "step", "multistep", "constant"),
    ("device",): ("cpu", "gpu"),
    ("distill", "type"): ("hard", "soft", "none"),
    ("data", "on_bad_image"): ("error", "skip"),
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(value, default) -> Optional[str]:
    """What is wrong with ``value`` for a key whose default is ``default``, or None. Only keys
    with a typed default are checked (None defaults are free: a path, a number or null)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if _is_number(default):
        if value is None or _is_number(value):
            return None  # null: "not set" for the optional numbers
        return "a number (with a dot as the decimal separator, e.g. 0.01)"
    if isinstance(default, list) and default and all(_is_number(v) for v in default):
        if value is None or (isinstance(value, (list, tuple)) and
                             all(_is_number(v) for v in value)):
            return None
        return "a list of numbers, e.g. [0.9, 0.999]"
    return None


def _check_types(cfg: Mapping, ref: Mapping, prefix: tuple, source: str) -> None:
    for key, default in ref.items():
        if key not in cfg or prefix + (key,) in _FREE_FORM:
            continue
        value = cfg[key]
        if isinstance(default, dict):
            if isinstance(value, dict):
                _check_types(value, default, prefix + (key,), source)
            continue
        expected = _type_problem(value, default)
        if expected:
            raise ConfigError(f"{source}: {'.'.join(prefix + (key,))}={value!r} is not valid: "
                              f"expected {expected}")


def validate_config(cfg: Mapping, source: str = "config", complete: bool = True) -> None:
    """Reject unknown keys, values of the wrong type and values outside the accepted
    choices; ``complete`` also requires what a run needs (``model.name``), which a recipe
    meant to be completed on the command line (``configs/finetune/``) leaves out."""
    _check_keys(cfg, DEFAULTS, (), source)
    _check_types(cfg, DEFAULTS, (), source)
    for path, choices in _CHOICES.items():
        node: Any = cfg
        for part in path:
            node = node[part]
        if node not in choices:
            raise ConfigError(f"{source}: {'.'.join(path)}={node!r} is not one of {choices}")
    if complete and not cfg["model"]["name"]:
        raise ConfigError(f"{source}: model.name is required (a name from ppnets.list_models())")
    train = cfg["train"]
    for key in ("epochs", "eval_freq", "save_freq"):
        if not isinstance(train[key], int) or train[key] < 1:
            raise ConfigError(f"{source}: train.{key} must be a positive integer, "
                              f"got {train[key]!r}")
    if not isinstance(cfg["data"]["batch_size"], int) or cfg["data"]["batch_size"] < 1:
        raise ConfigError(f"{source}: data.batch_size must be a positive integer")


def load_config(path: Optional[str] = None, overrides: Iterable[str] = (),
                base: Optional[Mapping] = None, complete: bool = True) -> dict:
    """Resolve a config file: defaults <- bases <- file <- ``overrides``; returns a plain dict.

    ``path`` is a file or a shipped recipe's name (:func:`resolve_config`); it may be None to
    build a config from overrides (and ``base``, a dict merged before the file) alone. ``complete=False`` accepts a recipe that still lacks ``model.name``
    (``ppnets configs show``).
    """
    cfg = copy.deepcopy(DEFAULTS)
    if base:
        cfg = merge_config(cfg, base)
    source = path or "config"
    if path:
        path = resolve_config(path)
        source = path
        cfg = merge_config(cfg, _read_yaml(path))
    cfg = apply_overrides(cfg, overrides)
    validate_config(cfg, source, complete)
    return cfg


def read_saved_config(path: str) -> dict:
    """A resolved config written by :func:`dump_config` (a run's ``checkpoints/config.yaml``),
    read back with the loader that keeps ``1e-3`` a float."""
    with open(path, "r", encoding="utf-8") as f:
        return _yaml_load(f) or {}


def dump_config(cfg: Mapping) -> str:
    """YAML text of a resolved config (key order kept)."""
    return yaml.safe_dump(_plain(cfg), sort_keys=False, default_flow_style=None)


def _plain(obj):
    # tuples -> lists so safe_dump never emits python-specific tags
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# Keys that may change between the interrupted run and its resumption: they do not change what
# is computed, only where data come from and how progress is reported/saved.
RESUME_FREE_KEYS = {
    # a run stopped by an unreadable file resumes with data.on_bad_image=skip, as its error
    # message suggests
    ("data", "on_bad_image"),
    ("data", "num_workers"), ("data", "data_file"), ("data", "eval_batch_size"),
    ("data", "data_dir"), ("data", "train_list"), ("data", "val_list"),
    ("train", "log_freq"), ("train", "verbose"), ("train", "eval_freq"), ("train", "save_freq"),
    ("train", "keep_checkpoints"), ("train", "resume"), ("train", "max_eval_steps"),
    ("output_dir",), ("device",), ("experiment",),
}


def _flatten(d: Mapping, prefix=()) -> Dict[tuple, Any]:
    out = {}
    for k, v in d.items():
        key = prefix + (k,)
        if key in RESUME_FREE_KEYS:
            continue
        if isinstance(v, Mapping) and key != ("model", "kwargs"):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def config_differences(saved: Mapping, current: Mapping) -> List[str]:
    """``key: old -> new`` for every setting that differs between a run's saved config and the
    current one, ignoring the keys that may change on resume (:data:`RESUME_FREE_KEYS`) and keys
    added to the engine after the run started that hold their default."""
    a, b = _flatten(saved), _flatten(current)
    defaults = _flatten(DEFAULTS)
    diffs = []
    for key in sorted(set(a) | set(b), key=str):
        if key not in a and key in defaults and b.get(key) == defaults[key]:
            continue  # a key added to the engine after the run started, at its default
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{'.'.join(key)}: {a.get(key, '<absent>')!r} -> "
                         f"{b.get(key, '<absent>')!r}")
    return diffs
