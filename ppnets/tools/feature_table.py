"""The generated table of feature maps (one row per registered model):
``python scripts/feature_table.py``.

The table lives between two marker lines in docs/features.md (:data:`TABLE`, a
:class:`~ppnets.tools.generated_table.GeneratedTable`); :func:`update` replaces it in place,
and a test fails when the file is out of date, so the table can never drift from the models'
``feature_info``. Models are built without initialising their weights
(:func:`layout_model`), so rendering the whole zoo takes seconds.
"""
from __future__ import annotations

import paddle

import ppnets

from .generated_table import GeneratedTable

__all__ = ["TABLE", "BEGIN_PREFIX", "BEGIN", "END", "layout_model", "render", "table_path",
           "splice", "update"]



def layout_model(name: str) -> paddle.nn.Layer:
    """The registered model's structure (layers, ``feature_info``) with its parameters left
    uninitialised (``paddle.LazyGuard``); a normal build for a family whose constructor writes
    parameter values, which a lazy parameter does not take (RepViT)."""
    try:
        with paddle.LazyGuard():
            return ppnets.create_model(name)
    except (AssertionError, RuntimeError, ValueError):
        return ppnets.create_model(name)


def _maps(model, positions, key):
    return ", ".join(str(model.feature_info[i][key]) for i in positions)


def render() -> str:
    """The Markdown table: for every registered model, its feature maps (``feature_info``:
    channels, stride, the layer that produces each) and which of them ``features_only=True``
    returns by default."""
    rows = ["| model | family | channels | strides | modules | default `out_indices` |",
            "|---|---|---|---|---|---|"]
    for name in ppnets.list_models():
        model = layout_model(name)
        positions = range(len(model.feature_info))
        default = getattr(model, "default_out_indices", None)
        default_s = ("all" if default is None else
                     ", ".join(str(i % len(model.feature_info)) for i in default))
        modules = ", ".join(f"`{m}`" for m in model.feature_info.module_name())
        rows.append(f"| `{name}` | {ppnets.model_info(name)['family']} | "
                    f"{_maps(model, positions, 'num_chs')} | "
                    f"{_maps(model, positions, 'reduction')} | {modules} | {default_s} |")
    return "\n".join(rows)


TABLE = GeneratedTable(marker="feature-table", script="scripts/feature_table.py",
                       doc="features.md", render=render)
BEGIN_PREFIX, BEGIN, END = TABLE.begin_prefix, TABLE.begin, TABLE.end
table_path, splice, update = TABLE.table_path, TABLE.splice, TABLE.update
