"""The notebooks in notebooks/: each one runs top to bottom under PPNETS_SMOKE=1 on the real
data, and each committed copy carries the outputs of such a run (small images, provenance)."""
from __future__ import annotations

import base64
import glob
import importlib.util
import json
import os
import re

import pytest

from tests.conftest import REPO, SHARED_DATA, require_shared

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))
MIN_NOTEBOOKS = 8
MAX_IMAGE_BYTES = 200_000
MAX_TOTAL_BYTES = 2_000_000
INSTALL_MARK = "# ppnets install cell"


def _runner():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", os.path.join(REPO, "scripts", "run_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _name(path):
    return os.path.basename(path)[:-len(".ipynb")]


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _text(cell):
    return "".join(cell["source"])


def _output_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "".join(parts)


@pytest.mark.parametrize("path", [pytest.param(p, id=_name(p), marks=pytest.mark.xdist_group(
    f"notebook-{_name(p)}")) for p in NOTEBOOKS])
def test_notebook_runs_under_smoke(path, tmp_path, monkeypatch):
    """Top to bottom in a fresh kernel, PPNETS_SMOKE=1, the shared data; any cell error fails."""
    require_shared(SHARED_DATA)
    # what the notebook writes to its temporary folders goes under this test's tmp_path
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # CI has no network: say so, instead of letting the weights fetch retry for ~25 s
    monkeypatch.setenv("PPNETS_OFFLINE", "1")
    out = str(tmp_path / os.path.basename(path))
    _runner().execute(path, out, smoke=True, data_dir=SHARED_DATA, timeout=600)
    nb = _load(out)
    assert "Provenance of this run" in _output_text(_code_cells(nb)[-1])
    assert "smoke" in _output_text(_code_cells(nb)[-1])


def test_at_least_eight_notebooks():
    assert len(NOTEBOOKS) >= MIN_NOTEBOOKS, [_name(p) for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_committed_notebook_has_outputs(path):
    nb = _load(path)
    cells = _code_cells(nb)
    first = cells[0]
    assert INSTALL_MARK in _text(first), f"{_name(path)}: the first code cell must install ppnets"
    not_run = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not not_run, f"{_name(path)}: code cells {not_run} were not executed; run " \
                        "`python scripts/run_notebooks.py --smoke` and commit the result"
    errors = [i for i, c in enumerate(cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{_name(path)}: cells {errors} have errors"
    last = cells[-1]
    assert "show_provenance" in _text(last), f"{_name(path)}: the last cell is the provenance"
    text = _output_text(last)
    for field in ("Provenance of this run", "date_utc", "machine", "ppnets_commit", "paddle"):
        assert field in text, f"{_name(path)}: provenance output lacks {field!r}"
    assert re.search(r"run\s+(smoke|full)", text), text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_images_are_small(path):
    for i, cell in enumerate(_code_cells(_load(path))):
        for out in cell.get("outputs", []):
            for mime, data in out.get("data", {}).items():
                if mime.startswith("image/") and mime != "image/svg+xml":
                    size = len(base64.b64decode("".join(data)))
                    assert size <= MAX_IMAGE_BYTES, (
                        f"{_name(path)} cell {i}: a {size / 1e3:.0f} kB image; keep figures "
                        "small (ppnets.notebook.setup_plots)")


def test_notebooks_are_small_and_listed():
    total = sum(os.path.getsize(p) for p in NOTEBOOKS)
    assert total < MAX_TOTAL_BYTES, f"notebooks/ holds {total / 1e6:.2f} MB of notebooks"
    for readme in ("README.md", os.path.join("notebooks", "README.md")):
        with open(os.path.join(REPO, readme), encoding="utf-8") as f:
            text = f.read()
        missing = [_name(p) for p in NOTEBOOKS if f"{_name(p)}.ipynb" not in text]
        assert not missing, f"{readme} does not list {missing}"
