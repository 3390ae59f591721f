"""The experiments' shared command line (ppnets.cli.experiment) fills ExperimentOptions; the INT8
study's command keeps its flags and the old ``python -m ppnets.experiments.int8`` names it."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from ppnets.cli.experiment import (add_imagenet_options, add_variant_options, build_parser,
                                   experiment_options, report_errors)
from ppnets.experiments import ExperimentError, ExperimentOptions, imagenet_data
from tests.conftest import REPO

INT8 = os.path.join(REPO, "reproduce", "int8_quantization.py")


def test_options_fill_the_experiment_options():
    p = build_parser("test", "outputs/x")
    add_imagenet_options(p)
    add_variant_options(p)
    args = p.parse_args(["--data-dir", "d", "--seed", "3", "--no-resume", "-o", "a.b=1", "-o",
                         "c=2", "--smoke", "--only", "r1", "r2", "--no-plot", "--device", "gpu",
                         "--val-list", "v.txt"])
    opts = experiment_options(args, "reproduce/x.py", ["python", "reproduce/x.py", "--smoke"])
    assert opts == ExperimentOptions(
        output_dir="outputs/x", data_dir="d", device="gpu", overrides=["a.b=1", "c=2"],
        smoke=True, seed=3, resume=False, only=["r1", "r2"], plot=False, val_list="v.txt",
        script="reproduce/x.py", command=["python", "reproduce/x.py", "--smoke"])
    assert opts.out_root == os.path.join("outputs/x", "smoke")
    assert opts.common_overrides("c.tar.gz") == ["device=gpu", "data.data_file=c.tar.gz",
                                                 "train.seed=3", "train.resume=false"]
    plain = experiment_options(build_parser("t", "o").parse_args([]), "s", [])
    assert plain.out_root == "o" and plain.common_overrides() == ["device=cpu"]


def test_a_mistake_is_one_error_line_and_status_2(capsys):
    def bad():
        return imagenet_data(ExperimentOptions(output_dir="o"))   # neither data nor smoke

    assert report_errors(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: give --data-dir") and len(err.splitlines()) == 1
    assert report_errors(lambda: 7) == 7
    try:
        report_errors(lambda: [][1])   # a bug is not a user mistake: it is not hidden
    except IndexError:
        pass
    else:
        raise AssertionError("an IndexError was swallowed")
    assert issubclass(ExperimentError, ValueError)


def _int8_script():
    spec = importlib.util.spec_from_file_location("int8_quantization", INT8)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_int8_command_collects_and_checks_its_data_file(tmp_path, capsys):
    script = _int8_script()
    assert script.main(["--models", "resnet20_cifar", "--output-dir", str(tmp_path)]) == 2
    assert "give the archive (--data-file" in capsys.readouterr().err
    assert script.main(["--data-file", str(tmp_path / "none.tar.gz")]) == 2
    assert "none.tar.gz not found" in capsys.readouterr().err
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "m.json").write_text(json.dumps({
        "model": "m", "epochs": 4, "qat_epochs": 1, "steps_per_epoch": 76,
        "full_steps_per_epoch": 76, "fp32_top1": 0.5, "degenerate": False,
        "ptq_deploy_per_channel": {"top1": 0.49, "delta_vs_fp32": -0.01}}))
    out = tmp_path / "out"
    out.mkdir()
    assert script.main(["--collect", str(runs), "--output-dir", str(out)]) == 0
    row = "| m | 4 + 1 (full epochs, 76 steps each) | 50.0 | 49.0 (-1.0) |"
    assert row in capsys.readouterr().out and row in (out / "int8_results.md").read_text()
    report = json.loads((out / "int8_results.json").read_text())
    assert report["command"].startswith("python reproduce/int8_quantization.py --collect")
    assert report["results"][0]["source"] == str(runs / "m.json")


def test_old_int8_spelling_names_the_script():
    proc = subprocess.run([sys.executable, "-m", "ppnets.experiments.int8", "--data-file", "x"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: python -m ppnets.experiments.int8 is now `python "
                                   "reproduce/int8_quantization.py ...` (the same options)")
