"""``ppnets export --pretrained``: the published weights, a tag, or a checkpoint file (a
fine-tuned ``.pdparams`` with its ``--num-classes``) are what gets exported; without
``--pretrained`` the weights are random, and a WARNING line and the report say so."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.cli import export as export_cli
from ppnets.cli.common import configure_parser
from ppnets.cli.main import main
from ppnets.weights import pretrained

SMALL = ["--formats", "paddle", "--input-size", "3", "64", "64"]


def _exported_output(out):
    """(input, output) the export ran, and the report."""
    io = np.load(os.path.join(out, "reference_io.npz"))
    with open(os.path.join(out, "export.json")) as f:
        return io["x"], io["y"], json.load(f)


def _deploy_output(model, x):
    model.eval()
    ppnets.reparameterize_model(model)
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def test_without_pretrained_the_random_weights_are_said_loudly(tmp_path, capsys):
    out = str(tmp_path / "random")
    assert main(["export", "--model", "mobilenetv2_050", *SMALL, "--output-dir", out]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "random weights" in warnings[0], captured.err
    assert "weights: RANDOM" in captured.out
    _, _, report = _exported_output(out)
    assert report["weights"]["kind"] == "random" and report["all_passed"]


def test_pretrained_exports_the_published_weights(tmp_path, monkeypatch, capsys):
    """The published weights' whole path but the network (tests/weights has that): the
    "downloaded" file is a 1000-class state dict made here."""
    paddle.seed(2)
    published = ppnets.create_model("mobilenetv2_050")
    download = str(tmp_path / "downloaded.pdparams")
    paddle.save(published.state_dict(), download)
    monkeypatch.setenv("PPNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(pretrained, "_fetch", lambda src: download)

    out = str(tmp_path / "published")
    assert main(["export", "--model", "mobilenetv2_050", "--pretrained", *SMALL,
                 "--output-dir", out]) == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err, captured.err
    assert "weights: published mobilenetv2_050.lamb_in1k" in captured.out
    x, y, report = _exported_output(out)
    assert report["weights"] == {"kind": "published", "weight": "mobilenetv2_050.lamb_in1k"}
    np.testing.assert_allclose(y, _deploy_output(published, x), rtol=0, atol=1e-5)

    parser = configure_parser(argparse.ArgumentParser(), export_cli)
    for flag in (["--pretrained"], ["--pretrained", "true"], ["--pretrained", "lamb_in1k"]):
        args = parser.parse_args(["--model", "mobilenetv2_050", *flag])
        assert export_cli.build(args, "mobilenetv2_050")[1] == report["weights"], flag


def test_pretrained_a_fine_tuned_checkpoint_with_its_class_count(tmp_path, capsys):
    paddle.seed(1)
    tuned = ppnets.create_model("mobilenetv2_050", num_classes=2)
    path = str(tmp_path / "best.pdparams")
    paddle.save(tuned.state_dict(), path)

    wrong = str(tmp_path / "wrong")
    assert main(["export", "--model", "mobilenetv2_050", "--pretrained", path, *SMALL,
                 "--output-dir", wrong]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "--num-classes 2" in err, err
    assert not os.path.exists(wrong)

    out = str(tmp_path / "tuned")
    assert main(["export", "--model", "mobilenetv2_050", "--pretrained", path,
                 "--num-classes", "2", *SMALL, "--output-dir", out]) == 0
    assert "WARNING" not in capsys.readouterr().err
    x, y, report = _exported_output(out)
    assert report["weights"]["kind"] == "file" and report["weights"]["path"] == path
    assert len(report["weights"]["sha256"]) == 64
    np.testing.assert_allclose(y, _deploy_output(tuned, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", ["no_such_tag", "missing.pdparams"])
def test_pretrained_that_cannot_be_loaded_is_a_usage_error(tmp_path, capsys, bad):
    out = str(tmp_path / "none")
    assert main(["export", "--model", "mobilenetv2_050", "--pretrained", bad, *SMALL,
                 "--output-dir", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert not os.path.exists(out)
