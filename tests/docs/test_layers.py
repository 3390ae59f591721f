"""The package's layer contract (``.importlinter``, README "Layout") holds, covers every part of the
package, and no module reaches into another's private names."""
from __future__ import annotations

import ast
import configparser
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "ppnets")


def _contract_layers():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, ".importlinter"))
    text = parser["importlinter:contract:floors"]["layers"]
    return [[name.strip() for name in line.split("|")] for line in text.strip().splitlines()]


def test_lint_imports_keeps_every_contract():
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' installs import-linter")
    run = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_every_part_of_the_package_is_on_a_floor():
    on_floors = {name for floor in _contract_layers() for name in floor}
    parts = {os.path.splitext(entry)[0] for entry in os.listdir(PACKAGE)
             if (entry.endswith(".py") and entry != "__init__.py")
             or os.path.isfile(os.path.join(PACKAGE, entry, "__init__.py"))}
    assert parts - on_floors == set(), f"not in .importlinter's floors: {parts - on_floors}"
    assert on_floors - parts == set(), f".importlinter names what is not there: {on_floors - parts}"


def test_the_readme_states_the_contracts_floors_in_order():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    layout = readme[readme.index("## Layout"):]
    named = [m for m in re.findall(r"`([a-z_]+)`", layout[:layout.index("- `reproduce/`")])]
    floors = [name for floor in reversed(_contract_layers()) for name in floor
              if name not in ("__main__",)]
    assert [n for n in named if n in floors] == floors, (
        "README 'Layout' must list the floors of .importlinter from the bottom up")


def _private_uses(path: str, module: str):
    """``from ppnets.x import _y`` and ``x._y`` on an imported ppnets module, in one file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module.rsplit(".", 1)[0] if not path.endswith("__init__.py") else module
    imported = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("ppnets"):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                imported[alias.asname or alias.name] = target
                if alias.name.startswith("_") and not alias.name.startswith("__") \
                        and base != module:
                    found.append(f"{module} imports {base}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ppnets"):
                    imported[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in imported and node.attr.startswith("_") and \
                not node.attr.startswith("__") and imported[node.value.id] != module:
            found.append(f"{module} uses {imported[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                module = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
                found += _private_uses(path, module)
    assert not found, "\n".join(found)


def test_the_private_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ppnets.engine.config import _yaml_load\n"
                   "from ppnets.deploy import lite\n"
                   "lite._session()\n")
    assert _private_uses(str(bad), "ppnets.deploy.bad") == [
        "ppnets.deploy.bad imports ppnets.engine.config._yaml_load",
        "ppnets.deploy.bad uses ppnets.deploy.lite._session"]


def _package_sources():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_commands_parse_arguments_and_the_library_does_not():
    """argparse lives in ppnets/cli/ (and reproduce/, scripts/) only."""
    cli = os.path.join(PACKAGE, "cli") + os.sep
    found = []
    for path in _package_sources():
        if path.startswith(cli):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) else [])
            if "argparse" in names:
                found.append(os.path.relpath(path, REPO))
    assert not found, f"argparse outside ppnets/cli/: {found}"


def test_no_function_is_longer_than_60_lines():
    """Long functions were command mains mixing measuring, judging and rendering: keep every
    function short enough to read as one step."""
    long = []
    for path in _package_sources():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{os.path.relpath(path, REPO)}:{node.lineno} {node.name} "
                                f"({lines} lines)")
    assert not long, "\n".join(long)
