"""The model table (docs/models.md) is generated from the registry; the README's first screen
gives the set-up commands, which are the CI's."""
import os

from ppnets.tools import model_table
from tests.conftest import REPO


def test_model_table_is_current():
    with open(model_table.table_path(), encoding="utf-8") as f:
        text = f.read()
    assert model_table.splice(text, model_table.render()) == text, (
        "docs/models.md's model table is out of date: run `python scripts/model_table.py --write`")


def test_ci_runs_the_readme_commands():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    for command in ('pip install -e ".[cpu,dev]"', "python -m pytest -q"):
        assert command in readme and command in ci


def test_the_first_screen_says_what_ppnets_is_and_how_to_set_it_up():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        first = "".join(f.readlines()[:30])
    assert "PaddlePaddle reproductions" in first
    assert 'pip install -e ".[cpu,dev]"' in first
    assert "python -m pytest -q -n 2 --dist loadgroup" in first
    assert "python reproduce/spconv_cifar10.py" in first   # the main job
