"""The published weights of the registered models: lookups and errors.

The weights themselves are written once, in each family file beside its variant table (a
variant's ``weights``, or ``no_weights`` saying why it has none; see
:func:`ppnets.registry.register_models` and :class:`ppnets.registry.WeightSource`). This module
reads them from the registry: :func:`weights_for`, :func:`default_weight`, :func:`find_weight`,
and the read-only views :data:`SOURCES` and :data:`NO_WEIGHTS`.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Callable, Iterator, List

from ppnets import models  # noqa: F401  (registers every family, with its weights)
from ppnets.registry import ModelEntry, WeightSource, get_entry, list_models

__all__ = ["WeightSource", "WeightNotFoundError", "SOURCES", "NO_WEIGHTS", "weights_for",
           "default_weight", "find_weight"]


class WeightNotFoundError(LookupError):
    """No weight of that model (or no weight with that tag)."""


class _RegistryView(Mapping):
    """A read-only ``{registry name: value}`` of the registered models ``value(entry)`` is not
    None for; read at each access, so it always agrees with the registry."""

    def __init__(self, value: Callable[[ModelEntry], object]):
        self._value = value

    def _items(self):
        for name in list_models():
            value = self._value(get_entry(name))
            if value is not None:
                yield name, value

    def __getitem__(self, name: str):
        entry = get_entry(name) if name in list_models() else None
        value = self._value(entry) if entry is not None else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items())

    def __len__(self) -> int:
        return sum(1 for _ in self._items())


# registry name -> its published weights (the default first), for the models that have some
SOURCES: Mapping = _RegistryView(lambda entry: entry.weights or None)
# registry name -> why it has no published weights
NO_WEIGHTS: Mapping = _RegistryView(lambda entry: entry.no_weights)


def _entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (an alias resolves; an unknown name raises with close
    matches), which must say what its weights are."""
    entry = get_entry(name)
    if not entry.weights and not entry.no_weights:
        raise WeightNotFoundError(
            f"model {entry.name!r} is registered but its variant in {entry.builder.__module__} "
            "says nothing about published weights: give it `weights=[...]`, or `no_weights=` "
            "with the reason there are none")
    return entry


def weights_for(name: str) -> List[WeightSource]:
    """Every published weight ``name`` can load, the default first; ``[]`` where there is none
    (:data:`NO_WEIGHTS` says why)."""
    return list(_entry(name).weights)


def default_weight(name: str) -> WeightSource:
    """The weight the reference library loads for ``pretrained=True``."""
    entry = _entry(name)
    if not entry.weights:
        raise WeightNotFoundError(f"{entry.name} has no published weights: {entry.no_weights}")
    return entry.weights[0]


def find_weight(name: str, tag: str) -> WeightSource:
    """The weight of ``name`` with ``tag`` (timm's tag, torchvision's enum name)."""
    entry = _entry(name)
    weights = {w.tag: w for w in entry.weights}
    if tag in weights:
        return weights[tag]
    if not weights:
        raise WeightNotFoundError(f"{entry.name} has no published weights: {entry.no_weights}")
    close = difflib.get_close_matches(tag, list(weights), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise WeightNotFoundError(f"{entry.name} has no weight tagged {tag!r}.{hint} Its tags: "
                              f"{', '.join(weights)} (default {next(iter(weights))!r}).")
