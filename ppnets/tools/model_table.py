"""The generated model table (one row per registered model): ``python scripts/model_table.py``.

The table lives between two marker lines in docs/models.md (:data:`TABLE`, a
:class:`~ppnets.tools.generated_table.GeneratedTable`); :func:`update` replaces it in place, and
a test fails when the file is out of date, so the table can never drift from the registry.
"""
from __future__ import annotations

import sys

import ppnets

from .generated_table import GeneratedTable

__all__ = ["TABLE", "BEGIN_PREFIX", "BEGIN", "END", "render", "table_path", "splice", "update"]



def _fmt(v, digits=2):
    if v is None:
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def render() -> str:
    """The Markdown table of every registered model (``model_info``)."""
    rows = ["| model | family | paper | params (M) | MACs (G) | deploy params (M) | "
            "deploy MACs (G) | top-1 | input | parity reference |",
            "|---|---|---|---:|---:|---:|---:|---:|---|---|"]
    for name in ppnets.list_models():
        info = ppnets.model_info(name)
        ref = info.get("reference")
        ref_s = f"{ref['lib']}:{ref['name']}" if ref else ""
        size = "x".join(str(s) for s in info["input_size"][1:])
        arxiv = (f" ([{info['arxiv']}](https://arxiv.org/abs/{info['arxiv']}))"
                 if info.get("arxiv") else "")
        rows.append(f"| `{name}` | {info['family']} | {info['paper']}{arxiv} | "
                    f"{_fmt(info.get('params_m'))} | {_fmt(info.get('macs_g'), 3)} | "
                    f"{_fmt(info.get('params_m_deploy'))} | {_fmt(info.get('macs_g_deploy'), 3)} | "
                    f"{_fmt(info.get('top1'), 1)} | {size} | {ref_s} |")
    return "\n".join(rows)


TABLE = GeneratedTable(marker="model-table", script="scripts/model_table.py", doc="models.md",
                       render=render)
BEGIN_PREFIX, BEGIN, END = TABLE.begin_prefix, TABLE.begin, TABLE.end
table_path, splice, update = TABLE.table_path, TABLE.splice, TABLE.update


if __name__ == "__main__":
    print("error: python -m ppnets.tools.model_table is now `python scripts/model_table.py "
          "...` (the same options)", file=sys.stderr)
    sys.exit(2)
