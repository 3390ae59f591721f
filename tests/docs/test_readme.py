"""The README's model table is generated from the registry and its commands are the CI's."""
import os

from ppnets.tools import model_table
from tests.conftest import REPO


def test_model_table_is_current():
    with open(model_table.readme_path(), encoding="utf-8") as f:
        readme = f.read()
    assert model_table.splice(readme, model_table.render()) == readme, (
        "README.md's model table is out of date: run `python -m ppnets.tools.model_table --write`")


def test_ci_runs_the_readme_commands():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    for command in ('pip install -e ".[cpu,dev]"', "python -m pytest -q"):
        assert command in readme and command in ci
