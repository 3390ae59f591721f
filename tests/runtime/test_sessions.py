"""ppnets.runtime's sessions (docs/deploy.md, "Runtimes"): one export folder opened in every
runtime, checked against the eager outputs saved at export; bf16 and INT8 reported as
approximate; the errors a user meets (unknown runtime, missing artifact, runtime not installed,
unsupported precision).

Runtimes that are not installed skip with a message; Paddle Lite needs paddlelite importable or
PPNETS_PADDLELITE_PYTHON (scripts/prepare_paddlelite_env.sh); bf16 needs a CPU with
AVX512_BF16 or AMX_BF16.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ppnets.deploy import export, lite
from ppnets.runtime import (PRECISIONS, RUNTIMES, PrecisionUnsupportedError,
                            RuntimeUnavailableError, Session, check_session, cpu_supports_bf16,
                            open_session, reference_outputs, runtime_status)

SIZE = (3, 64, 64)
MODEL = "mobilenetv3_small_050"
STATUS = runtime_status()


def needs(runtime: str):
    entry = STATUS[runtime]
    return pytest.mark.skipif(not entry["available"],
                              reason=f"{runtime} is not available here: {entry['reason']}")


needs_bf16 = pytest.mark.skipif(
    not cpu_supports_bf16(),
    reason="this CPU has neither AVX512_BF16 nor AMX_BF16 (/proc/cpuinfo): bf16 is refused")
IN_PROCESS = [r for r in RUNTIMES if r != "paddle_lite"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("classifier"))
    formats = ("paddle", "onnx", "lite") if STATUS["paddle_lite"]["available"] \
        else ("paddle", "onnx")
    export(MODEL, formats=formats, input_size=SIZE, out_dir=out, lite_targets=("x86",))
    return out


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """A features-only backbone: five maps of magnitude ~1, unlike the classifier's logits
    (a zero-initialised head gives ~1e-7), so precision differences are measurable."""
    out = str(tmp_path_factory.mktemp("features"))
    export(MODEL, formats=("paddle", "onnx"), input_size=SIZE, out_dir=out, features_only=True)
    return out


@pytest.mark.parametrize("runtime", [pytest.param(r, marks=needs(r)) for r in IN_PROCESS])
def test_fp32_session_passes_check(classifier, runtime):
    with open_session(classifier, runtime, threads=1) as session:
        rec = check_session(session, classifier)
    assert rec["status"] == "passed", rec
    assert rec["session"]["runtime"] == runtime and rec["session"]["precision"] == "fp32"
    assert rec["session"]["threads"] == 1 and os.path.isfile(rec["session"]["artifact"])


def test_paddle_inference_takes_paddlex_settings(classifier):
    paddlex = {"mkldnn_cache_capacity": -1, "enable_new_ir": True, "enable_new_executor": True,
               "optimization_level": 3, "enable_memory_optim": True}
    session = open_session(classifier, "paddle_inference", options={"paddle_config": paddlex})
    rec = check_session(session, classifier)
    assert rec["status"] == "passed", rec
    assert rec["session"]["settings"]["paddle_config"] == paddlex
    with pytest.raises(ValueError, match="optimisation_level"):
        open_session(classifier, "paddle_inference",
                     options={"paddle_config": {"optimisation_level": 3}})


@needs("paddle_lite")
def test_paddle_lite_session_keeps_one_child_and_times_inside_it(classifier):
    session = open_session(classifier, "paddle_lite")
    try:
        rec = check_session(session, classifier)
        assert rec["status"] == "passed", rec
        x, refs, _ = reference_outputs(classifier)
        # a second run through the same child process gives the same outputs
        np.testing.assert_array_equal(session.run(x)[0], session.run(x)[0])
        samples = session.timer(x, 1, 3)
        assert len(samples) == 3 and all(s > 0 for s in samples)
    finally:
        session.close()
    with pytest.raises(RuntimeError, match="closed"):
        session.run(x)


@needs("openvino")
def test_openvino_sources_are_both_exact(classifier):
    for source, artifact in (("onnx", "onnx/model.onnx"), ("paddle", "legacy/model.pdmodel")):
        session = open_session(classifier, "openvino", options={"source": source})
        rec = check_session(session, classifier)
        assert rec["status"] == "passed", rec
        assert session.model_file.endswith(artifact)
        settings = rec["session"]["settings"]
        assert settings["source"] == source
        # fp32 is set, never OpenVINO's default (bf16 on a bf16-capable CPU)
        assert settings["INFERENCE_PRECISION_HINT"] == "f32"
        assert settings["applied_precision"] == "f32"


@pytest.mark.parametrize("runtime", [pytest.param(r, marks=needs(r))
                                     for r in ("onnxruntime", "openvino")])
def test_features_only_every_output_in_order(features, runtime):
    session = open_session(features, runtime)
    rec = check_session(session, features)
    assert rec["status"] == "passed", rec
    assert rec["num_outputs"] == 5 and len(rec["outputs"]) == 5
    x, refs, _ = reference_outputs(features)
    assert [o.shape for o in session.run(x)] == [r.shape for r in refs]


@needs_bf16
@pytest.mark.parametrize("runtime", [pytest.param(r, marks=needs(r))
                                     for r in ("openvino", "paddle_inference")])
def test_bf16_is_approximate_with_a_bounded_difference(features, runtime):
    exact = check_session(open_session(features, runtime), features)
    rec = check_session(open_session(features, runtime, precision="bf16"), features)
    assert rec["status"] == "approximate"  # never "passed"
    assert rec["session"]["precision"] == "bf16"
    # bf16 keeps 8 significant bits: the maps move by more than fp32 rounding, but by at
    # most a few percent of their magnitude (measured: ~1 %)
    assert rec["max_rel_diff"] > 100 * exact["max_rel_diff"]
    assert rec["max_rel_diff"] < 0.05
    assert len(rec["outputs"]) == 5
    if runtime == "openvino":
        assert rec["session"]["settings"]["applied_precision"] == "bf16"


def _quantize_onnx(export_dir: str) -> None:
    """A QDQ INT8 copy of the export's ONNX graph (per-channel weights), calibrated on a few
    random inputs: what ppnets.deploy.x86_int8 writes, built here with onnxruntime alone."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Inputs(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.items = iter([{"x": rng.standard_normal((1, *SIZE)).astype(np.float32)}
                               for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    os.makedirs(os.path.join(export_dir, "int8", "onnx"), exist_ok=True)
    quantize_static(os.path.join(export_dir, "onnx", "model.onnx"),
                    os.path.join(export_dir, "int8", "onnx", "model.onnx"), Inputs(),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)


@pytest.mark.parametrize("runtime", [pytest.param(r, marks=needs(r))
                                     for r in ("onnxruntime", "openvino")])
def test_int8_onnx_is_approximate(features, runtime, tmp_path):
    if not os.path.isfile(os.path.join(features, "int8", "onnx", "model.onnx")):
        _quantize_onnx(features)
    session = open_session(features, runtime, precision="int8")
    assert session.model_file.endswith(os.path.join("int8", "onnx", "model.onnx"))
    rec = check_session(session, features)
    assert rec["status"] == "approximate" and len(rec["outputs"]) == 5
    assert 0 < rec["max_rel_diff"] < 0.5


@needs("paddle_inference")
@pytest.mark.slow
def test_paddle_inference_int8_runs_the_paddleslim_program(classifier):
    # PaddleSlim leaves Paddle in static mode when it fails: a child process, as quant.py asks
    code = textwrap.dedent(f"""
        import numpy as np
        from ppnets.deploy.quant import ptq
        d = {classifier!r}
        calib = np.random.default_rng(0).standard_normal((4, *{SIZE!r})).astype("float32")
        ptq(d + "/legacy/model.pdmodel", d + "/legacy/model.pdiparams", d + "/int8/paddle",
            calib, 1)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    session = open_session(classifier, "paddle_inference", precision="int8")
    assert session.settings["mkldnn_int8"] is True
    rec = check_session(session, classifier)
    assert rec["status"] == "approximate" and rec["max_abs_diff"] is not None


def test_check_session_fails_a_wrong_runtime(classifier):
    _, refs, _ = reference_outputs(classifier)
    scale = 1.0 / float(np.abs(refs[0]).max())  # scale-free: 1 % off the largest logit
    off = Session("onnxruntime", "fp32", 1, "model.onnx",
                  lambda x: [refs[0] + 0.01 / scale], "test")
    assert check_session(off, classifier)["status"] == "failed"
    dropped = Session("onnxruntime", "fp32", 1, "model.onnx", lambda x: [], "test")
    assert check_session(dropped, classifier)["status"] == "failed"
    # bf16/int8 are never "passed", even when exact; they fail on a NaN or a wrong shape
    same = Session("openvino", "bf16", 1, "model.onnx", lambda x: list(refs), "test")
    rec = check_session(same, classifier)
    assert rec["status"] == "approximate" and rec["max_abs_diff"] == 0
    assert rec["top1_agreement"] == 1.0
    nan = Session("openvino", "int8", 1, "model.onnx", lambda x: [refs[0] * np.nan], "test")
    assert check_session(nan, classifier)["status"] == "failed"
    cut = Session("openvino", "int8", 1, "model.onnx", lambda x: [refs[0][:, :10]], "test")
    assert check_session(cut, classifier)["status"] == "failed"


def test_unknown_runtime_lists_the_known_ones(classifier):
    with pytest.raises(ValueError) as err:
        open_session(classifier, "tensorrt")
    assert "tensorrt" in str(err.value)
    assert all(r in str(err.value) for r in RUNTIMES)
    with pytest.raises(ValueError, match="fp16"):
        open_session(classifier, "onnxruntime", precision="fp16")


def test_missing_artifact_names_the_export_command(tmp_path):
    only_onnx = tmp_path / "only_onnx"
    (only_onnx / "onnx").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as err:
        open_session(str(only_onnx), "paddle_inference")
    assert "paddle/inference.json" in str(err.value)
    assert "ppnets export --model MODEL --formats paddle" in str(err.value)
    with pytest.raises(FileNotFoundError, match="int8/onnx/model.onnx.*quantize"):
        open_session(str(only_onnx), "onnxruntime", precision="int8")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        open_session(str(tmp_path / "nowhere"), "onnxruntime")


@pytest.mark.parametrize("runtime, package, pip", [("openvino", "openvino", "ppnets[openvino]"),
                                                   ("onnxruntime", "onnxruntime", "ppnets[onnx]")])
def test_runtime_not_installed_gives_the_pip_command(classifier, monkeypatch, runtime, package,
                                                     pip):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    with pytest.raises(RuntimeUnavailableError, match=f'pip install "{pip}"'.replace("[", r"\[")):
        open_session(classifier, runtime)
    entry = runtime_status()[runtime]
    assert entry["available"] is False and pip in entry["reason"]
    assert entry["precisions"] == []


def test_unsupported_precisions_say_why(classifier):
    with pytest.raises(PrecisionUnsupportedError, match="bfloat16"):
        open_session(classifier, "onnxruntime", precision="bf16")
    # paddle_lite is registered by ppnets.deploy, imported above; x86 Lite is fp32 only
    with pytest.raises(PrecisionUnsupportedError, match="fp32 only"):
        open_session(classifier, "paddle_lite", precision="int8")


def test_bf16_refused_without_the_cpu_feature(classifier, monkeypatch):
    from ppnets.runtime import sessions

    monkeypatch.setattr(sessions, "cpu_supports_bf16", lambda: False)
    for runtime in ("paddle_inference", "openvino"):
        if STATUS[runtime]["available"]:
            with pytest.raises(PrecisionUnsupportedError, match="AVX512_BF16"):
                open_session(classifier, runtime, precision="bf16")
    assert "bf16" not in runtime_status()["paddle_inference"]["precisions"]


def test_runtime_status_shape():
    status = runtime_status()
    assert set(RUNTIMES) <= set(status)
    for name, entry in status.items():
        assert set(entry) == {"available", "version", "reason", "precisions"}, name
        assert set(entry["precisions"]) <= set(PRECISIONS)
        if entry["available"]:
            assert entry["reason"] is None and entry["version"] and "fp32" in entry["precisions"]
        else:
            assert entry["reason"] and entry["precisions"] == []
    assert status["paddle_inference"]["available"]  # Paddle is always there
    assert ("bf16" in status["paddle_inference"]["precisions"]) == cpu_supports_bf16()
    assert status["paddle_lite"]["available"] == lite.lite_available()


# Two OpenVINO models freed in creation order used to leave the thread a freed alternate signal
# stack (ppnets/utils/signal_stack.py); the next Python signal handler -- Paddle's SIGCHLD
# handler while a DataLoader has workers -- then killed the process with SIGSEGV. In a child
# process, which the old code crashes.
_TWO_SESSIONS_THEN_A_SIGNAL = textwrap.dedent("""
    import gc, signal, subprocess, sys
    from ppnets.runtime import open_session, runtime_status
    from ppnets.utils.signal_stack import signal_stack

    def stack():
        s = signal_stack()
        return (s.ss_sp, s.ss_flags & 2, s.ss_size)

    before = stack()
    precisions = runtime_status()["openvino"]["precisions"]   # loads the CPU plugin
    assert stack() == before, ("runtime_status", stack(), before)
    # bf16 (where the CPU has it) loads the plugin before compiling
    sessions = [open_session(sys.argv[1], "openvino", precision=p)
                for p in ["fp32"] + [p for p in precisions if p == "bf16"] + ["fp32"]]
    assert stack() == before, ("open", stack(), before)
    while sessions:
        del sessions[0]   # in creation order
        gc.collect()
    assert stack() == before, ("freed", stack(), before)
    signal.signal(signal.SIGCHLD, lambda *args: None)   # a Python handler, as Paddle's
    subprocess.run(["true"], check=True)
    print("signal delivered")
""")


@needs("openvino")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is read on Linux")
def test_openvino_sessions_leave_the_threads_signal_stack_as_it_was(classifier):
    done = subprocess.run([sys.executable, "-c", _TWO_SESSIONS_THEN_A_SIGNAL, classifier],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "signal delivered" in done.stdout, (
        f"exit status {done.returncode} (-11: SIGSEGV)\n{done.stdout[-2000:]}\n"
        f"{done.stderr[-2000:]}")
