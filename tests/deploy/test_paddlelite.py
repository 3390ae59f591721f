"""Paddle Lite: op listing parsing, known-bad op detection with the producing layer, .nb
conversion + x86 parity, and the .nb benchmark runner (docs/deploy.md).

Tests that need Paddle Lite skip unless paddlelite is importable or PPNETS_PADDLELITE_PYTHON
names a Python that has it (scripts/prepare_paddlelite_env.sh builds one).
"""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppnets.deploy import lite
from ppnets.runtime import save_legacy
from ppnets.deploy.lite import parse_supported_ops
from ppnets.deploy.opcheck import KNOWN_BAD, op_sources, program_ops

needs_lite = pytest.mark.skipif(
    not lite.lite_available(),
    reason="Paddle Lite not available: paddlelite is not importable in this Python and "
           "PPNETS_PADDLELITE_PYTHON is unset (run scripts/prepare_paddlelite_env.sh)")

LISTING = """Supported OPs on ' kARM':
                                        OP_name  kARM  kHost  kUnk
                                            abs     Y      Y
                                        argsort            Y
                                      attention                  Y
                                         conv2d     Y
"""


def test_parse_supported_ops_uses_target_and_host_columns():
    assert parse_supported_ops(LISTING, "arm") == ["abs", "argsort", "conv2d"]
    with pytest.raises(ValueError, match="none for"):
        parse_supported_ops(LISTING, "opencl")
    with pytest.raises(ValueError, match="OP_name"):
        parse_supported_ops("nothing here", "arm")


class _BadNet(nn.Layer):
    """What CONTRIBUTING.md forbids in model code: nn.ReLU6 and paddle.flatten."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3)
        self.act = nn.ReLU6()

    def forward(self, x):
        x = self.act(self.conv(x))
        return paddle.flatten(x, 1)


def test_known_bad_ops_are_found_and_traced_to_their_line(tmp_path):
    model = _BadNet()
    model.eval()
    mf, _ = save_legacy(model, (3, 8, 8), 1, str(tmp_path))
    ops = program_ops(mf)
    bad = sorted(op for op in ops if op in KNOWN_BAD)
    assert bad == ["flatten_contiguous_range", "relu6"]
    src = op_sources(model, (3, 8, 8), bad)
    assert any("test_paddlelite.py" in s and "paddle.flatten" in s
               for s in src["flatten_contiguous_range"]), src
    assert src["relu6"], src


def test_zoo_models_avoid_known_bad_ops(tmp_path):
    """The default export of the families' smallest members has none of the known-bad ops
    (the full zoo: ppnets deploy check)."""
    from ppnets.runtime import deploy_form
    for name in ("fasternet_t0", "mobilenetv3_small_050", "efficientformer_l1",
                 "poolformer_s12"):
        # Attention models have fixed-resolution bias tables: their own input size.
        model, name, size = deploy_form(name, None if name.startswith(("levit", "eff"))
                                           else (3, 64, 64))
        mf, _ = save_legacy(model, size, 1, str(tmp_path / name))
        ops = program_ops(mf)
        assert not set(ops) & set(KNOWN_BAD), (name, ops)
        assert "gather" not in ops, (name, "attention bias must be a constant at export")


def test_levit_attention_bias_is_constant_at_export(tmp_path):
    """LeViT's tables are gathered while tracing (for PIR); the legacy export (Paddle Lite) turns
    them into constants: no gather op, and the program still applies the (non-zero) biases."""
    from ppnets.runtime import create_predictor, run_predictor
    from ppnets.deploy.zoo_check import calibrated_deploy_model
    from ppnets.layers.attention_bias import AttentionBiasCache

    model, size = calibrated_deploy_model("levit_256")
    layers = [m for m in model.sublayers() if isinstance(m, AttentionBiasCache)]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, *size)).astype(np.float32)
    with paddle.no_grad():
        no_bias = model(paddle.to_tensor(x)).numpy()
    for layer in layers:
        layer.attention_biases.set_value(
            rng.standard_normal(layer.attention_biases.shape).astype(np.float32))
        layer.clear_attention_bias_cache()
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    assert np.abs(ref - no_bias).max() > 1e-2 * np.abs(ref).max()  # the biases matter
    mf, pf = save_legacy(model, size, 1, str(tmp_path))
    assert "gather" not in program_ops(mf)
    assert all("attention_bias" not in vars(layer) for layer in layers)  # shim removed
    out = run_predictor(create_predictor(mf, pf, device="cpu", threads=1, mkldnn=False), x)[0]
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), \
        (np.abs(out - ref).max(), np.abs(ref).max())


@needs_lite
def test_supported_ops_listing_from_paddle_lite():
    arm = lite.supported_ops("arm")
    assert "conv2d" in arm["ops"] and "reshape2" in arm["ops"]
    assert "no_such_op" not in arm["ops"]
    assert arm["paddlelite"]


@needs_lite
@pytest.mark.parametrize("name", ["fasternet_t0", "mobilenetv2_100", "shufflenet_v2_x1_0",
                                  "repvgg_a0"])
def test_x86_nb_matches_paddle(name, tmp_path):
    from ppnets.deploy.zoo_check import check_model
    supported = {t: lite.supported_ops(t)["ops"] for t in ("arm", "x86")}
    row = check_model(name, supported, str(tmp_path), atol=1e-4)
    assert "export_error" not in row, row
    arm, x86 = row["targets"]["arm"], row["targets"]["x86"]
    assert arm["converted"] and not arm["unsupported"] and not arm["known_bad"], arm
    assert x86["converted"], x86
    assert x86["parity"]["status"] == "passed", x86["parity"]
    assert x86["parity"]["ref_abs_max"] > 1e-2  # logits of a usable scale, not ~0
    assert os.path.isfile(tmp_path / name / "model_arm.nb")


@needs_lite
def test_export_lite_and_runner_on_x86_nb(tmp_path, capsys):
    from ppnets.bench import SCHEMA
    from ppnets.cli.device.lite_runner import benchmark_nb
    from ppnets.cli.main import main as ppnets_main
    from ppnets.deploy import export
    report = export("fasternet_t0", formats=("lite",), out_dir=str(tmp_path),
                    input_size=(3, 64, 64))
    arts = report["artifacts"]
    assert arts["lite_x86"]["status"] == "passed", arts["lite_x86"]
    assert arts["lite_arm"]["status"] == "not_executable"
    assert os.path.isfile(arts["lite_arm"]["file"])
    rec = benchmark_nb(arts["lite_x86"]["file"], "fasternet_t0", warmup=1, repeats=3,
                       reference_npz=str(tmp_path / "reference_io.npz"))
    assert rec["schema"] == SCHEMA and rec["backend"] == "paddle_lite"
    assert rec["latency_ms"]["repeats"] == 3 and len(rec["latency_ms"]["samples"]) == 3
    assert rec["input_size"] == [3, 64, 64]
    assert rec["max_abs_diff_vs_dygraph"] < 1e-4
    for key in ("model", "batch_size", "threads", "warmup", "timed_region", "throughput_ips",
                "machine", "timestamp_utc", "precision", "deploy"):
        assert key in rec
    with pytest.raises(ValueError):
        benchmark_nb(arts["lite_x86"]["file"], warmup=0)
    assert np.isfinite(rec["latency_ms"]["median"])
    # the same runner as a command on this host
    out = tmp_path / "lite_x86.json"
    assert ppnets_main(["deploy", "lite-bench", "--nb", arts["lite_x86"]["file"], "--model",
                        "fasternet_t0", "--input-size", "3", "64", "64", "--warmup", "1",
                        "--repeats", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("ppnets deploy lite-bench --nb ")
    assert report["results"][0]["input_size"] == [3, 64, 64]
    assert report["results"][0]["latency_ms"]["repeats"] == 3
    assert "fasternet_t0: median" in capsys.readouterr().out


@needs_lite
def test_lite_batch_survives_an_abort_and_resumes():
    """A step that makes Paddle Lite abort (a corrupt .nb) is recorded as a crash; the next
    step runs in a fresh process."""
    with lite.lite_session() as folder:
        bad = os.path.join(folder, "bad.nb")
        with open(bad, "wb") as f:
            f.write(b"\0" * 64)
        np.savez(os.path.join(folder, "in.npz"), x=np.zeros((1, 3, 8, 8), np.float32))
        steps = [{"id": "corrupt", "kind": "run", "nb_file": bad, "threads": 1,
                  "input_npz": os.path.join(folder, "in.npz"),
                  "output_npz": os.path.join(folder, "out.npz")},
                 {"id": "missing", "kind": "run", "nb_file": os.path.join(folder, "no.nb"),
                  "input_npz": "", "output_npz": ""},
                 {"id": "listing", "kind": "model_ops", "target": "arm",
                  "model_file": bad, "param_file": bad}]
        rec = lite.run_batch(steps, folder)
    assert "crash" in rec["corrupt"] and "SIGABRT" in rec["corrupt"]["crash"], rec
    assert "skipped" in rec["missing"], rec
    assert "result" in rec["listing"], rec  # ran after the abort, in a new process


@needs_lite
def test_zoo_check_batched_rows():
    """The CI form of the zoo check (test input sizes, one Lite process per batch, worker
    processes) on two small models of different families, one of them LeViT (formerly an abort
    in the Lite x86 runtime)."""
    from ppnets.deploy.zoo_check import format_table, row_ok, run

    seen = []
    report = run(["resnet20_cifar", "levit_256"], batch_size=1, jobs=2, progress=seen.append)
    assert sorted(r["model"] for r in seen) == ["levit_256", "resnet20_cifar"]
    assert [r["model"] for r in report["rows"]] == ["resnet20_cifar", "levit_256"]
    rows = {r["model"]: r for r in report["rows"]}
    assert rows["resnet20_cifar"]["input_size"] == [3, 32, 32]
    for name, row in rows.items():
        assert row_ok(row), format_table([row])
        assert row["targets"]["arm"]["lite_says_supported"], row["targets"]["arm"]
        assert row["targets"]["x86"]["parity"]["ref_abs_max"] > 1e-2


def test_zoo_check_input_size_rule():
    """Deploy checks run at deploy_check_input_size where the family sets one (MobileOne: 64x64
    float32 logits are ill-conditioned), else test_input_size, else input_size."""
    import ppnets
    from ppnets.deploy.zoo_check import input_size_for

    assert ppnets.model_info("mobileone_s0")["test_input_size"] == (3, 64, 64)
    assert input_size_for("mobileone_s0", "test") == (3, 224, 224)
    assert input_size_for("resnet20_cifar", "test") == (3, 32, 32)
    assert input_size_for("levit_256", "test") == tuple(ppnets.model_info("levit_256")["input_size"])
    assert input_size_for("fasternet_t0", "full") == (3, 224, 224)
    with pytest.raises(ValueError, match="'full' or 'test'"):
        input_size_for("fasternet_t0", "half")
