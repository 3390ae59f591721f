"""ppnets.bench: result schema, exported-predictor parity, argument errors, CLI.

No test asserts anything about how fast something is: timings depend on the machine and its load.
"""
import copy
import json
import math
import os
import stat
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppnets
from ppnets.bench import BACKEND, SCHEMA, benchmark_model, benchmark_models, latency_stats
from ppnets.runtime import create_predictor, export_program, run_predictor
from ppnets.utils import atomic_write_json, machine_info
from ppnets.cli.bench import main
from ppnets.layers import ConvBN
from ppnets.models.base import flatten_tokens

from tests.conftest import REPO, in_eval_mode, randomize_bn, temporary_models

FAST = dict(warmup=2, repeats=5)
SIZE = (3, 16, 16)


class TinyNet(nn.Layer):
    """ConvBN (fusable) -> global pool -> Linear. Deploy form: 216 + 8 + 40 + 5 = 269 params."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 8, 3, act="relu")
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(flatten_tokens(self.pool(self.stem(x))))


def tiny(seed=0):
    paddle.seed(seed)
    model = TinyNet()
    randomize_bn(model, seed)  # so folding BN actually changes the weights
    return model


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_latency(lat, repeats):
    for key in ("median", "p25", "p75", "iqr", "min", "max", "mean", "std"):
        assert _is_num(lat[key]), f"latency_ms[{key!r}] = {lat[key]!r}"
    assert lat["repeats"] == repeats and len(lat["samples"]) == repeats
    assert 0 < lat["min"] <= lat["p25"] <= lat["median"] <= lat["p75"] <= lat["max"]
    assert lat["iqr"] == pytest.approx(lat["p75"] - lat["p25"])


def test_benchmark_tiny_layer_result_schema():
    model = tiny()
    model.train()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    res = benchmark_model(model, input_size=SIZE, batch_size=2, threads=1, dygraph=True, **FAST)

    # JSON round trip without NaN/Infinity
    res = json.loads(json.dumps(res, allow_nan=False))
    assert res["schema"] == SCHEMA and res["backend"] == BACKEND == "paddle_inference"
    assert res["model"] == "TinyNet" and res["input_size"] == list(SIZE)
    assert res["batch_size"] == 2 and res["device"] == "cpu" and res["threads"] == 1
    assert res["mkldnn"] is True and isinstance(res["mkldnn_enabled"], bool)
    assert res["warmup"] == 2 and res["deploy"] is True
    assert res["rounds"] == 1 and res["round_medians_ms"] == [res["latency_ms"]["median"]]
    _check_latency(res["latency_ms"], 5)
    _check_latency(res["dygraph_latency_ms"], 5)
    median_s = res["latency_ms"]["median"] / 1e3
    assert res["throughput_ips"] == pytest.approx(2 / median_s)
    # The deploy form is measured: BN folded into the conv (conv gains a bias, BN disappears).
    assert res["params"] == 8 * 3 * 3 * 3 + 8 + 8 * 5 + 5
    from ppnets.analysis import profile_model
    deployed = ppnets.reparameterize_model(in_eval_mode(copy.deepcopy(model)))
    assert res["macs"] == profile_model(deployed, input_size=SIZE, batch_size=1).macs
    assert res["macs"] >= 8 * 27 * 16 * 16 + 8 * 5  # at least conv + linear
    assert res["flops_per_s"] == pytest.approx(2 * res["macs"] * 2 / median_s)
    assert 0 <= res["max_abs_diff_vs_dygraph"] <= 1e-5

    m = res["machine"]
    assert isinstance(m["cpu_model"], str) and m["cpu_model"]
    assert isinstance(m["logical_cores"], int) and m["logical_cores"] >= 1
    assert m["threads"] == 1 and m["mkldnn"] is True
    assert m["paddle_version"] == paddle.__version__
    for key in ("os", "python", "arch"):
        assert isinstance(m[key], str) and m[key]

    # The caller's model was neither fused nor switched to eval mode.
    assert model.training and isinstance(model.stem.bn, nn.BatchNorm2D)
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v)


@pytest.mark.parametrize("mkldnn", [False, True])
def test_exported_predictor_matches_dygraph(tmp_path, mkldnn):
    model = in_eval_mode(tiny(1))
    ppnets.reparameterize_model(model)
    x = np.random.default_rng(1).standard_normal((2, *SIZE)).astype("float32")
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x)).numpy()
    model_file, params_file = export_program(model, SIZE, 2, str(tmp_path))
    assert os.path.isfile(model_file) and os.path.isfile(params_file)
    predictor = create_predictor(model_file, params_file, "cpu", threads=1, mkldnn=mkldnn)
    (out,) = run_predictor(predictor, x)
    assert out.shape == expected.shape == (2, 5)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_predictor_matches_unfused_training_model():
    # End to end through benchmark_model: the exported deploy form computes what the caller's
    # (unfused) model computes in eval mode.
    model = tiny(2)
    res = benchmark_model(model, input_size=SIZE, mkldnn=False, **FAST)
    assert res["max_abs_diff_vs_dygraph"] <= 1e-5
    assert res["mkldnn"] is False and res["mkldnn_enabled"] is False


def test_workdir_keeps_the_export(tmp_path):
    res = benchmark_model(tiny(), input_size=SIZE, workdir=str(tmp_path), **FAST)
    assert os.path.isfile(res["model_file"])
    assert os.path.isfile(os.path.join(tmp_path, "TinyNet", "inference.pdiparams"))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    (dict(threads=0), ValueError, "threads must be an integer >= 1"),
    (dict(warmup=0), ValueError, "first run is never timed"),
    (dict(repeats=0), ValueError, "repeats must be an integer >= 1"),
    (dict(repeats=2.5), ValueError, "repeats must be an integer"),
    (dict(rounds=0), ValueError, "rounds .fresh predictors. must be an integer >= 1"),
    (dict(device="tpu"), ValueError, "device must be one of"),
    (dict(input_size=(3, 16)), ValueError, r"input_size must be \(channels, height, width\)"),
    (dict(input_size=(3, 0, 16)), ValueError, "positive integers"),
    (dict(input_size=None), ValueError, "input_size is required"),
])
def test_invalid_arguments_raise_clear_errors(kwargs, error, match):
    args = dict(input_size=SIZE, **FAST)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        benchmark_model(tiny(), **args)


def test_invalid_model_and_gpu_errors():
    with pytest.raises(TypeError, match="registry name or a paddle.nn.Layer"):
        benchmark_model(42, input_size=SIZE, **FAST)
    with pytest.raises(KeyError, match="Unknown model 'definitely_not_a_model'"):
        benchmark_model("definitely_not_a_model", **FAST)
    with pytest.raises(KeyError, match="matches no registered model"):
        benchmark_models(["definitely_not_*"], **FAST)
    with pytest.raises(TypeError, match="unknown arguments"):
        benchmark_models(["x"], repeat=3)
    if not paddle.device.is_compiled_with_cuda():
        with pytest.raises(RuntimeError, match="has no CUDA"):
            benchmark_model(tiny(), input_size=SIZE, device="gpu", **FAST)


@pytest.mark.parametrize("medians,chosen", [([5.0, 1.0, 3.0], 3.0), ([2.0, 1.0], 1.0),
                                            ([4.0, 2.0, 2.0, 9.0, 1.0], 2.0)])
def test_rounds_build_fresh_predictors_and_report_the_median_round(monkeypatch, medians,
                                                                   chosen):
    # each round's repeats are scripted around its median; the record must be the median round
    import ppnets.bench.harness as harness
    built, timed, rounds = [], [], iter(medians)
    create = paddle.inference.create_predictor

    def counted(config):
        built.append(create(config))
        return built[-1]

    def scripted(predictor, x, warmup, repeats):
        timed.append(predictor)
        m = next(rounds) / 1e3
        return [m * 0.9, m, m * 1.2]

    monkeypatch.setattr(paddle.inference, "create_predictor", counted)
    monkeypatch.setattr(harness, "time_predictor", scripted)
    res = benchmark_model(tiny(), input_size=SIZE, rounds=len(medians), **FAST)
    assert res["rounds"] == len(medians)
    assert res["round_medians_ms"] == pytest.approx(medians)
    assert res["latency_ms"]["median"] == pytest.approx(chosen)
    assert res["latency_ms"]["max"] == pytest.approx(chosen * 1.2)   # that round's own stats
    assert res["throughput_ips"] == pytest.approx(1e3 / chosen)
    assert len(built) == len(medians) and timed == built   # a fresh predictor per round


def test_latency_stats_and_atomic_json(tmp_path):
    stats = latency_stats([0.001, 0.002, 0.003, 0.004, 0.005])
    assert stats["median"] == pytest.approx(3.0) and stats["p25"] == pytest.approx(2.0)
    assert stats["p75"] == pytest.approx(4.0) and stats["iqr"] == pytest.approx(2.0)
    assert stats["min"] == pytest.approx(1.0) and stats["repeats"] == 5
    with pytest.raises(ValueError):
        latency_stats([])

    path = tmp_path / "out.json"
    atomic_write_json(str(path), {"a": 1}, strict=True)
    with pytest.raises(ValueError):  # NaN is not JSON; the previous file must survive intact
        atomic_write_json(str(path), {"a": float("nan")}, strict=True)
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_atomic_write_gives_a_new_file_the_umask_mode_and_keeps_a_replaced_files(tmp_path):
    previous = os.umask(0o027)
    try:
        path = tmp_path / "new.json"
        atomic_write_json(str(path), {"a": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o640    # 0o666 less the umask, not 0o600
        os.chmod(path, 0o604)
        atomic_write_json(str(path), {"a": 2})
        assert stat.S_IMODE(path.stat().st_mode) == 0o604    # the user's mode survives
        assert json.loads(path.read_text()) == {"a": 2}
        assert sorted(os.listdir(tmp_path)) == ["new.json"]
    finally:
        os.umask(previous)


def test_machine_info_is_json():
    info = json.loads(json.dumps(machine_info(threads=3, mkldnn=False), allow_nan=False))
    assert info["threads"] == 3 and info["mkldnn"] is False
    assert info["paddle_with_cuda"] == paddle.device.is_compiled_with_cuda()


def _check_cli_json(path, names, size):
    report = json.loads(open(path, encoding="utf-8").read())
    assert report["schema"] == SCHEMA and report["command"].startswith("ppnets bench")
    assert isinstance(report["machine"], dict) and report["machine"]["threads"] == 1
    assert [r["model"] for r in report["results"]] == names
    for r in report["results"]:
        assert r["backend"] == BACKEND and r["input_size"] == list(size)
        _check_latency(r["latency_ms"], 3)
        assert r["rounds"] == 3 and len(r["round_medians_ms"]) == 3   # the command's default
        assert r["latency_ms"]["median"] == sorted(r["round_medians_ms"])[1]


@pytest.fixture
def tiny_registered():
    with temporary_models("tiny_bench", lambda num_classes=5, deploy=False: tiny(),
                          {"tiny_a": {}, "tiny_b": {}}, input_size=SIZE) as names:
        yield names


def test_cli_through_main_with_registered_test_models(tiny_registered, tmp_path, capsys):
    names = tiny_registered
    out = tmp_path / "sub" / "bench.json"
    rc = main(["--models", "tiny_*", "--threads", "1", "--warmup", "1", "--repeats", "3",
               "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    header = ("| model | runtime | precision | params (M) | MACs (G) | median (ms) | IQR (ms) | "
              "img/s | GFLOPS achieved | output |")
    assert header in captured.out
    assert "| tiny_a |" in captured.out and "| tiny_b |" in captured.out
    _check_cli_json(out, names, SIZE)
    assert not [f for f in os.listdir(out.parent) if f != "bench.json"]  # no temp file left

    rc = main(["--models", "tiny_c"])
    captured = capsys.readouterr()
    assert rc == 2 and "error: Unknown model 'tiny_c'. Did you mean: tiny_b, tiny_a?" in captured.err
    assert "Traceback" not in captured.err


def test_cli_on_registered_model(tmp_path, capsys):
    if not ppnets.list_models("resnet18"):
        pytest.skip("resnet18 is not registered (ppnets.models has no resnet family yet)")
    out = tmp_path / "bench.json"
    rc = main(["--models", "resnet18", "--threads", "1", "--input-size", "3", "64", "64",
               "--warmup", "1", "--repeats", "3", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "| resnet18 |" in captured.out
    _check_cli_json(out, ["resnet18"], (3, 64, 64))


def test_cli_unknown_model_exits_2(capsys):
    rc = main(["--models", "definitely_not_a_model"])
    err = capsys.readouterr().err
    assert rc == 2 and "Unknown model 'definitely_not_a_model'" in err
    known = ppnets.list_models()
    if known:  # the registry's close-match hint reaches the user
        rc = main(["--models", known[0] + "x"])
        err = capsys.readouterr().err
        assert rc == 2 and f"Did you mean: {known[0]}" in err


def test_cli_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--models", "x", "--threads", "0"])
    assert exc.value.code == 2 and "expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--models", "x", "--device", "tpu"])
    assert exc.value.code == 2


def test_python_dash_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "ppnets", "bench", "--models", "definitely_not_a_model"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "error: Unknown model 'definitely_not_a_model'" in proc.stderr


# ------------------------------------------------------------ known IR-pass crashes (issue 6)
# Paddle Inference 3.3.1 segfaults while building a oneDNN predictor for a program with a
# conv2d followed by leaky_relu (conv_activation_onednn_fuse_pass reads leaky_relu's double
# negative_slope as a float). A segfault kills the process, so every check that may build such a
# predictor runs in a subprocess.

_LEAKY_SCRIPT = r"""
import json, sys
import numpy as np
import paddle
import paddle.nn as nn
from ppnets.bench import benchmark_model
from ppnets.runtime import create_predictor, export_program, run_predictor

class ConvLeaky(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.act = nn.LeakyReLU()

    def forward(self, x):
        return self.act(self.conv(x))

paddle.seed(0)
model = ConvLeaky()
model.eval()
mode, out_dir = sys.argv[1], sys.argv[2]
if mode == "all_passes":  # what Paddle Inference does without the harness's workaround
    model_file, params_file = export_program(model, (3, 8, 8), 1, out_dir)
    predictor = create_predictor(model_file, params_file, "cpu", 1, mkldnn=True,
                                 workarounds=False)
    run_predictor(predictor, np.zeros((1, 3, 8, 8), "float32"))
    print("BUILT")
else:
    rec = benchmark_model(model, input_size=(3, 8, 8), warmup=1, repeats=2)
    print("RESULT " + json.dumps({"workarounds": rec["ir_pass_workarounds"],
                                  "diff": rec["max_abs_diff_vs_dygraph"],
                                  "mkldnn_enabled": rec["mkldnn_enabled"]}))
"""


class ConvAct(nn.Layer):
    def __init__(self, act):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.act = act

    def forward(self, x):
        return self.act(self.conv(x))


def test_pass_workarounds_apply_to_the_trigger_op_only(tmp_path):
    from ppnets.runtime import KNOWN_PASS_CRASHES, pass_workarounds, program_op_names

    leaky_file, _ = export_program(in_eval_mode(ConvAct(nn.LeakyReLU(0.1))), (3, 8, 8), 1,
                                 str(tmp_path / "leaky"))
    relu_file, _ = export_program(in_eval_mode(ConvAct(nn.ReLU())), (3, 8, 8), 1,
                                  str(tmp_path / "relu"))
    assert {"conv2d", "leaky_relu"} <= program_op_names(leaky_file)
    assert "leaky_relu" not in program_op_names(relu_file)
    assert program_op_names(str(tmp_path / "missing.pdmodel")) is None  # legacy: not parsed

    (w,) = pass_workarounds(leaky_file, "cpu", mkldnn=True)
    assert w["deleted_pass"] == "conv_activation_onednn_fuse_pass"
    assert w["trigger_op"] == "leaky_relu" and w["paddle_version"] == paddle.__version__
    assert w["reproduced_on_paddle"] == list(KNOWN_PASS_CRASHES[0]["reproduced_on_paddle"])
    assert pass_workarounds(leaky_file, "cpu", mkldnn=False) == []  # the pass is oneDNN's
    assert pass_workarounds(leaky_file, "gpu", mkldnn=True) == []
    assert pass_workarounds(relu_file, "cpu", mkldnn=True) == []
    # ordinary models keep every pass, and say so
    res = benchmark_model(tiny(), input_size=SIZE, **FAST)
    assert res["ir_pass_workarounds"] == []


def _run_leaky(mode, tmp_path):
    script = tmp_path / "conv_leaky.py"  # a file: paddle.jit.save reads the forward's source
    script.write_text(_LEAKY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(script), mode, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_conv_leaky_relu_predictor_builds_with_the_workaround(tmp_path):
    proc = _run_leaky("harness", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    assert [w["deleted_pass"] for w in res["workarounds"]] == ["conv_activation_onednn_fuse_pass"]
    assert res["mkldnn_enabled"] is True  # oneDNN stays on
    assert res["diff"] < 1e-5  # and the unfused program computes the layer


def test_conv_leaky_relu_crash_still_reproduces_without_the_workaround(tmp_path):
    """The crash condition itself, so that the workaround is dropped once Paddle is fixed."""
    from ppnets.runtime import KNOWN_PASS_CRASHES

    seen_on = KNOWN_PASS_CRASHES[0]["reproduced_on_paddle"]
    if paddle.__version__ not in seen_on:
        pytest.skip(f"the crash was reproduced on Paddle {', '.join(seen_on)}, this is "
                    f"{paddle.__version__}: run this test there to see whether it still crashes")
    proc = _run_leaky("all_passes", tmp_path)
    assert proc.returncode != 0 and "BUILT" not in proc.stdout, (
        f"Paddle {paddle.__version__} built the conv+leaky_relu predictor with every pass: the "
        "crash is fixed here; narrow KNOWN_PASS_CRASHES in ppnets/runtime/predictor.py")
    assert "Segmentation fault" in proc.stderr or proc.returncode in (-11, 139), proc.stderr[-2000:]
