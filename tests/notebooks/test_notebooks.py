"""The notebooks in notebooks/: each one runs top to bottom under PPNETS_SMOKE=1 on the real
data, and each committed copy carries the outputs of such a run (small images, provenance, no
paths of the machine it ran on, no known third-party noise); the shared install cell installs
what the machine lacks and no Paddle over one that is there."""
from __future__ import annotations

import base64
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA, require_shared

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))
MIN_NOTEBOOKS = 8
MAX_IMAGE_BYTES = 200_000
MAX_TOTAL_BYTES = 2_000_000
INSTALL_MARK = "# ppnets install cell"
# Third-party noise the notebooks once showed, silenced at its source (tests/notebooks/
# test_quiet_outputs.py): a committed notebook that shows one again was run with a regression.
KNOWN_NOISE = ("When training, we now always track global mean and variance",  # Paddle BN
               "not support input out tensor",                                 # Paddle PIR
               "TqdmWarning", "IProgress not found")                           # tqdm.auto


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


def _all_output_text(cell):
    """Every text a cell's outputs show: streams, text/* data, error tracebacks."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        parts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
        parts += list(out.get("traceback", [])) + [out.get("evalue", "")]
    return "\n".join(parts)


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_committed_notebook_shows_no_machine_paths_nor_known_noise(path):
    pattern = _runner().MACHINE_PATH
    for i, cell in enumerate(_code_cells(_load(path))):
        text = _all_output_text(cell)
        paths = sorted(set(pattern.findall(text)))
        assert not paths, (f"{_name(path)} code cell {i} shows paths of the machine it ran on: "
                           f"{paths[:5]}; run it with scripts/run_notebooks.py, which replaces "
                           "them")
        noise = [n for n in KNOWN_NOISE if n in text]
        assert not noise, f"{_name(path)} code cell {i} shows {noise}"


def test_machine_paths_are_replaced_in_outputs():
    runner = _runner()
    folders = runner.machine_folders("/data/sets")
    tmp = os.path.realpath(runner.tempfile.gettempdir())
    text = (f"data=/data/sets/cifar.tar.gz work={tmp}/ppnets-x/run ppnets from "
            f"{runner.REPO}/ppnets {os.path.expanduser('~')}/.cache/ppnets "
            f"{tmp}/ipykernel_17/123.py:14 /data/sets2")
    fixed = runner.portable_text(text, folders)
    assert fixed == ("data=$PPNETS_DATA_DIR/cifar.tar.gz work=$TMPDIR/ppnets-x/run ppnets from "
                     "<ppnets checkout>/ppnets ~/.cache/ppnets <notebook cell>:14 /data/sets2")


def test_install_cells_are_the_shared_one():
    runner = _runner()
    for path in NOTEBOOKS:
        first = _text(_code_cells(_load(path))[0])
        assert first == runner.INSTALL_CELL, (
            f"{_name(path)}: the install cell differs from INSTALL_CELL in "
            "scripts/run_notebooks.py (which writes it into every notebook it runs)")


def _run_install_cell(monkeypatch, tmp_path, *, ppnets: bool, paddle: bool, checkout: bool):
    """Execute the install cell with find_spec answering as told and pip not run; returns the
    pip commands it would have run and what it printed."""
    import importlib.util as util

    real_find_spec = util.find_spec
    present = {"ppnets": ppnets, "paddle": paddle}

    def find_spec(name, *args, **kwargs):
        if name in present:
            return real_find_spec(name) if present[name] else None
        return real_find_spec(name, *args, **kwargs)

    calls = []
    monkeypatch.setattr(util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, *a, **k: calls.append(cmd))
    monkeypatch.setattr(sys, "path", list(sys.path))
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    if checkout:
        (root / "setup.py").write_text("")
    monkeypatch.chdir(root / "notebooks")
    exec(compile(_runner().INSTALL_CELL, "<install cell>", "exec"), {})
    return calls


@pytest.mark.parametrize("checkout", [False, True], ids=["aistudio", "checkout"])
def test_install_cell_keeps_an_installed_paddle(monkeypatch, tmp_path, capsys, checkout):
    """A GPU Paddle (AI Studio's paddlepaddle-gpu) is there: ppnets without any Paddle."""
    (cmd,) = _run_install_cell(monkeypatch, tmp_path, ppnets=False, paddle=True,
                               checkout=checkout)
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    args = cmd[4:]
    assert not any("paddle" in a or "[cpu]" in a for a in args), cmd
    assert args[-1] == (".." if checkout else "git+https://github.com/ppnets/ppnets")
    assert "Paddle is installed" in capsys.readouterr().out


@pytest.mark.parametrize("checkout", [False, True], ids=["aistudio", "checkout"])
def test_install_cell_brings_the_cpu_build_without_paddle(monkeypatch, tmp_path, capsys,
                                                          checkout):
    (cmd,) = _run_install_cell(monkeypatch, tmp_path, ppnets=False, paddle=False,
                               checkout=checkout)
    assert cmd[-1] == ("..[cpu]" if checkout
                       else "ppnets[cpu] @ git+https://github.com/ppnets/ppnets")
    assert "no Paddle is installed" in capsys.readouterr().out


def test_install_cell_installs_nothing_when_ppnets_imports(monkeypatch, tmp_path, capsys):
    assert _run_install_cell(monkeypatch, tmp_path, ppnets=True, paddle=True,
                             checkout=True) == []
    assert "nothing to install" in capsys.readouterr().out
