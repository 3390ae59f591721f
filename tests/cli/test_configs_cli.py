"""``ppnets configs`` lists and shows the shipped recipes; ``ppnets train -c`` takes a recipe by
name from any folder, and a malformed recipe or override is one clear line, not a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.conftest import REPO


def _ppnets(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "ppnets", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_configs_lists_and_shows_outside_the_checkout(tmp_path):
    listed = _ppnets("configs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "| fasternet/cifar10 | fasternet_t0 | cifar10 |" in listed.stdout
    assert "| finetune/full | (-o model.name=...) | folder |" in listed.stdout
    some = _ppnets("configs", "repvgg", cwd=tmp_path)
    rows = [line for line in some.stdout.splitlines() if line.startswith("| repvgg/")]
    assert len(rows) == 5 and "fasternet" not in some.stdout

    shown = _ppnets("configs", "show", "finetune/full", "-o", "model.name=mobilenetv2_100",
                    cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    merged = yaml.safe_load(shown.stdout)
    assert merged["model"]["name"] == "mobilenetv2_100"
    assert merged["data"]["dataset"] == "folder"          # from finetune/base.yaml
    assert merged["optim"]["layer_decay"] == 0.7           # from finetune/full.yaml
    assert merged["train"]["seed"] is not None              # from the defaults

    missing = _ppnets("configs", "show", "fasternet/cifar", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "Did you mean fasternet/cifar10" in missing.stderr


def test_train_errors_are_one_line(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  name: fasternet_t0\n optim:\n  lr: 0.1\n")
    cases = {
        "decimal comma": (["-c", "fasternet/cifar10", "-o", "optim.lr=0,01"],
                          "optim.lr='0,01' is not valid: expected a number"),
        "indentation": (["-c", str(bad_yaml)], f"{bad_yaml}:3:2: not valid YAML (key 'optim')"),
        "unknown recipe": (["-c", "fasternet/cifar1"], "Did you mean fasternet/cifar10"),
    }
    for what, (args, expected) in cases.items():
        run = _ppnets("train", *args, "--output-dir", str(tmp_path / "run"), cwd=tmp_path)
        assert run.returncode == 2, (what, run.stderr)
        assert "Traceback" not in run.stderr, (what, run.stderr)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], \
            (what, run.stderr)
    assert not (tmp_path / "run").exists()


def test_the_checkout_configs_folder_is_the_shipped_one():
    link = os.path.join(REPO, "configs")
    assert os.path.realpath(link) == os.path.join(REPO, "ppnets", "configs")
