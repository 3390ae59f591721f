"""The ``ppnets`` command: every verb answers --help and speaks one flag vocabulary, a former
``python -m`` spelling names the verb that replaced it, and Paddle's import-time noise stays away
from the user."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ppnets.cli.main import COMMANDS, build_parser
from tests.conftest import REPO, TinyCNN, temporary_models, write_cifar_archive

VERBS = ["train", "eval", "export", "bench", "complexity", "convert", "models", "weights",
         "configs", "data", "study", "peers"]
VERBS += ["search", "lut", "deploy", "predict"]


def _ppnets(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "ppnets", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


MINIMAL_ARGS = {"train": ["-c", "x.yaml"],
                "eval": ["--model", "m", "--pretrained", "w", "--data-dir", "d"],
                "export": ["--model", "m"], "bench": ["--models", "m"],
                "complexity": ["--models", "m"],
                "convert": ["--model", "m", "--src", "s", "--out", "o"], "models": [],
                "weights": ["list"], "configs": [], "data": ["check", "d"], "study": ["--list"],
                "peers": ["--models", "m"]}
MINIMAL_ARGS.update({"search": ["efficientformer"], "lut": ["validate", "--models", "m",
                                                             "--table", "t"],
                     "deploy": ["check"], "predict": ["x.jpg", "--model", "m"]})


def test_every_verb_is_registered():
    assert list(COMMANDS) == VERBS
    parser = build_parser()
    for verb in VERBS:
        args = parser.parse_args([verb, *MINIMAL_ARGS[verb]])
        assert args.subcommand == verb and callable(args._run)


def test_help_of_the_command_and_every_verb_without_noise():
    proc = _ppnets("--help")
    assert proc.returncode == 0 and all(v in proc.stdout for v in VERBS)
    assert "ccache" not in proc.stderr, proc.stderr
    for verb in VERBS:
        proc = _ppnets(verb, "--help")
        assert proc.returncode == 0 and f"usage: ppnets {verb}" in proc.stdout, proc.stderr
        assert proc.stderr == "", proc.stderr


@pytest.mark.parametrize("verb,flag", [("train", "--output-dir"), ("export", "--output-dir"),
                                       ("bench", "--models"), ("bench", "--model"),
                                       ("complexity", "--models"), ("bench", "--threads"),
                                       ("bench", "--device"), ("train", "--device"),
                                       ("eval", "--device"), ("train", "-o"), ("train", "-c")])
def test_one_flag_vocabulary(verb, flag):
    sub = build_parser()._subparsers._group_actions[0].choices[verb]
    assert flag in sub._option_string_actions, f"ppnets {verb} has no {flag}"


def test_models_lists_and_shows_info():
    proc = _ppnets("models", "fasternet_t*")
    assert proc.returncode == 0
    assert "| fasternet_t0 | fasternet |" in proc.stdout and "3 models" in proc.stdout
    proc = _ppnets("models", "--info", "resnet18")
    info = json.loads(proc.stdout)
    assert info["name"] == "resnet18" and info["params_m"] == 11.69
    proc = _ppnets("models", "--info", "resnet19")
    assert proc.returncode == 2 and "resnet18" in proc.stderr   # close-match hint


def test_train_from_a_config_with_overrides_and_resume(tmp_path):
    """``ppnets train`` runs the engine (the test model is registered in-process)."""
    from ppnets.cli.main import main

    archive = str(tmp_path / "c.tar.gz")
    write_cifar_archive(archive, per_batch=8, n_test=12, seed=3)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {name: cli_test_tiny}\n"
                   "data: {batch_size: 8, num_workers: 0}\n"
                   "train: {epochs: 1, verbose: 0}\n")
    out = tmp_path / "run"
    with temporary_models("cli_test", TinyCNN, {"cli_test_tiny": {}}, dataset="cifar10"):
        args = ["train", "-c", str(cfg), "--data-file", archive, "--output-dir", str(out),
                "-o", "optim.lr=0.01"]
        assert main(args) == 0
        res = json.loads((out / "results.json").read_text())
        assert res["epochs_run"] == 1 and res["base_lr"] == 0.01
        first = (out / "results.json").read_text()
        assert main(args) == 0                         # the same command resumes: nothing to do
        assert json.loads((out / "results.json").read_text())["final_top1"] == \
            json.loads(first)["final_top1"]
        # another recipe into the same folder, or a typo: clear errors, nothing lost
        assert main(args + ["-o", "train.epochs=2"]) == 2
        assert main(["train", "-c", str(cfg), "-o", "train.epoch=2"]) == 2
        assert (out / "checkpoints" / "latest.json").exists()


# Former `python -m` spellings: each exits 2 naming the command that replaced it.
OLD_SPELLINGS = {"ppnets.bench": "ppnets bench", "ppnets.analysis": "ppnets complexity",
                 "ppnets.convert": "ppnets convert", "ppnets.bench.peers": "ppnets peers",
                 "ppnets.tools.model_table": "python scripts/model_table.py"}


@pytest.mark.parametrize("module", list(OLD_SPELLINGS))
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # run a second time
def test_old_python_m_spellings_name_the_new_command(module, capsys, monkeypatch):
    import runpy

    monkeypatch.setattr(sys, "argv", [module, "--help"])  # `python -m module --help`
    with pytest.raises(SystemExit) as exc:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: python -m {module} is now `{OLD_SPELLINGS[module]} ...` (the same " \
                  "options)\n"


def test_complexity_records_the_command(tmp_path):
    out = tmp_path / "c.json"
    proc = _ppnets("complexity", "--models", "resnet20_cifar", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["command"] == f"ppnets complexity --models resnet20_cifar --json {out}"
    assert abs(rec["models"][0]["params_m"] - 0.27) < 0.01   # its 10-class head
    assert not os.path.exists(str(out) + ".tmp")
