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


def test_the_table_script_writes_between_the_markers_and_refuses_a_file_without_them(tmp_path):
    import subprocess
    import sys

    script = os.path.join(REPO, "scripts", "model_table.py")
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{model_table.BEGIN}\nstale\n{model_table.END}\nafter\n")
    done = subprocess.run([sys.executable, script, "--write", "--target", str(doc)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = doc.read_text()
    assert "stale" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "| `fasternet_t0` |" in text

    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    done = subprocess.run([sys.executable, script, "--write", "--target", str(bare)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no model-table markers" in done.stderr
    assert bare.read_text() == "no markers\n"
