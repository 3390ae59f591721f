"""reproduce/spconv_cifar10.py end to end in a subprocess (smoke mode), on an archive the test
writes itself and on the partial real CIFAR-10 archive when present; the notebook is well-formed."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import CIFAR_PARTIAL, REPO, require_shared, write_cifar_archive

SCRIPT = os.path.join(REPO, "reproduce", "spconv_cifar10.py")


def _require_models(*names):
    import ppnets

    missing = [n for n in names if n not in ppnets.list_models()]
    if missing:
        pytest.skip(f"models not registered yet: {missing}")


def _run(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc


def _check_outputs(out_root, models, data_file, n_train, n_test):
    results = json.loads(open(os.path.join(out_root, "results.json")).read())
    record = json.loads(open(os.path.join(out_root, "run_record.json")).read())
    md = open(os.path.join(out_root, "results.md")).read()
    assert results["smoke"] is True and record["smoke"] is True
    assert "SMOKE RUN, not a reproduction" in md
    assert [r["model"] for r in results["rows"]] == models
    assert record["command"].startswith("python ") and "--smoke" in record["command"]
    assert record["finished_utc"] and record["machine"]["available_cores"] >= 1
    assert record["data"]["file"] == os.path.abspath(data_file)
    assert (record["data"]["train_images"], record["data"]["test_images"]) == (n_train, n_test)
    for row in results["rows"]:
        assert row["epochs_run"] == 1 and row["smoke"]
        assert record["epochs_run"][f"{row['experiment']}/{row['model']}"]["run"] == 1
        assert 0.0 <= row["top1"] <= row["top5"] <= 1.0
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_ms"] > 0, row
        assert row["errors"] == []
        assert os.path.isfile(os.path.join(row["output_dir"], "checkpoints", "latest.json"))
        assert os.listdir(os.path.join(row["output_dir"], "vdl"))
        # One Markdown row per model, with its numbers.
        line = next(l for l in md.splitlines() if f"| {row['model']} |" in l)
        assert f"| {100 * row['top1']:.2f} |" in line and f"{row['params_m']:.3f}" in line
    header = next(l for l in md.splitlines() if l.startswith("| experiment"))
    assert header.count("|") == next(l for l in md.splitlines()
                                     if f"| {models[0]} |" in l).count("|")
    return results


def test_smoke_on_synthetic_archive_and_resume(tmp_path):
    _require_models("resnet20_cifar", "spconv_resnet20_cifar_a2")
    data = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(data, per_batch=8, n_test=16, seed=1)
    out = str(tmp_path / "out")
    models = ["resnet20_cifar", "spconv_resnet20_cifar_a2"]
    args = ["--smoke", "--experiment", "paper", "--models", *models, "--data-file", data,
            "--output-dir", out]
    proc = _run(args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    first = _check_outputs(os.path.join(out, "smoke"), models, data, 40, 16)
    assert first["rows"][1]["alpha"] == "1/2" and first["rows"][0]["alpha"] == "-"
    # The same command again resumes the finished runs instead of retraining.
    proc = _run(args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" in proc.stdout and "Epoch 1/1" not in proc.stdout
    again = _check_outputs(os.path.join(out, "smoke"), models, data, 40, 16)
    assert [r["top1"] for r in again["rows"]] == [r["top1"] for r in first["rows"]]


def _script_module():
    spec = importlib.util.spec_from_file_location("reproduce_spconv_cifar10", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_arguments_fail_clearly(tmp_path, capsys):
    """Each mistake: exit status 2 and one ``error:`` line saying what is wrong, no traceback,
    nothing written."""
    script = _script_module()

    def error_of(argv):
        assert script.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        return err

    assert "CIFAR-10 archive not found" in error_of(
        ["--smoke", "--data-file", str(tmp_path / "x.tar.gz")])
    data = str(tmp_path / "c.tar.gz")
    write_cifar_archive(data)
    out = ["--output-dir", str(tmp_path / "out")]
    assert "not registered: no_such_net" in error_of(
        ["--smoke", "--experiment", "paper", "--models", "no_such_net", "--data-file", data,
         *out])
    assert "not part of any experiment" in error_of(
        ["--smoke", "--experiment", "all", "--models", "no_such_net", "--data-file", data,
         *out])
    assert "unknown config key 'train.epoch'" in error_of(
        ["--smoke", "-o", "train.epoch=2", "--data-file", data, *out])
    assert not os.path.exists(str(tmp_path / "out"))   # nothing written before a bad config
    from ppnets.experiments.spconv_cifar10 import alpha_of
    assert alpha_of("spconv_vgg16_cifar_a16") == "1/16"
    assert alpha_of("resnet20_cifar") == "-"


def test_smoke_on_real_partial_archive_both_experiments(tmp_path):
    data = require_shared(CIFAR_PARTIAL)
    _require_models("spconv_resnet18", "spconv_vgg16_cifar_a16")
    out = str(tmp_path / "out")
    models = ["spconv_resnet18", "spconv_vgg16_cifar_a16"]
    proc = _run(["--smoke", "--experiment", "all", "--models", *models, "--data-file", data,
                 "--output-dir", out], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = _check_outputs(os.path.join(out, "smoke"), models, data, 4829, 932)
    seed_row, paper_row = res["rows"]
    assert seed_row["experiment"] == "seed" and seed_row["image_size"] == 64
    assert paper_row["experiment"] == "paper" and paper_row["image_size"] == 32
    # the paper's CIFAR-10 figure for its own models only, none for the ImageNet architecture
    assert seed_row["paper_top1"] is None and paper_row["paper_top1"] > 80
    assert res["run"]["data"]["md5"] == "a6be1c163d03e78e6be75fa2398bd300"


def test_notebook_is_valid_nbformat4():
    path = os.path.join(REPO, "notebooks", "spconv_cifar10.ipynb")
    nb = json.loads(open(path, encoding="utf-8").read())
    assert nb["nbformat"] == 4 and isinstance(nb["nbformat_minor"], int)
    assert "kernelspec" in nb["metadata"]
    cells = nb["cells"]
    assert len(cells) >= 6
    for cell in cells:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["source"], (list, str)) and "metadata" in cell
        if cell["cell_type"] == "code":
            assert isinstance(cell["outputs"], list) and "execution_count" in cell
            source = "".join(cell["source"])
            compile(source.replace("!pip", "#pip").replace("%", "#"), "<cell>", "exec")
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for needed in ("pip install", "create_model", "profile_model", "engine", "fit(",
                   "benchmark_model"):
        assert needed in code, needed
