"""The one harness over every runtime: session records, parity, unavailable runtimes, PaddleX
settings, ``ppnets bench --runtime/--precision/--export-dir/--recommend``, peers' summary.

Tiny models and warmup 1 / repeats 2: nothing here asserts how fast anything is.
"""
import json
import os

import pytest

from ppnets.bench import harness
from ppnets.bench.harness import (PADDLE_SETTINGS, SCHEMA, benchmark_model, benchmark_models,
                                  format_table, write_export_folder)
from ppnets.bench.peers import PEER_TARGET, summarize
from ppnets.bench.recommend import format_recommendation, load_accuracy, recommend
from ppnets.cli.bench import main
from ppnets.runtime import cpu_supports_bf16, deploy_form, runtime_status

from tests.bench.test_bench import SIZE, _check_latency, tiny
from tests.conftest import temporary_models

FAST = dict(warmup=1, repeats=2)
SESSION_RUNTIMES = ("onnxruntime", "openvino")


@pytest.fixture(scope="module")
def tiny_model():
    with temporary_models("tiny_runtimes", lambda num_classes=5, deploy=False: tiny(),
                          {"tiny_rt": {}}, input_size=SIZE) as names:
        yield names[0]


def _available(runtime):
    return runtime_status()[runtime]["available"]


@pytest.fixture(scope="module")
def all_runtimes(tiny_model):
    """One run of every available runtime at fp32 and bf16, sharing one export folder."""
    return benchmark_models([tiny_model], runtimes="all", precisions=("fp32", "bf16"),
                            paddle_settings=("default", "paddlex"), threads=1, **FAST)


def _by(report, runtime, precision, settings="default"):
    for r in report["results"]:
        if r["backend"] == runtime and r["precision"] == precision and \
                (r.get("paddle_settings") or {}).get("name", "default") == settings:
            return r
    raise AssertionError(f"no {runtime} {precision} {settings} record in {report['results']}")


def _check_measured(r, runtime, precision):
    r = json.loads(json.dumps(r, allow_nan=False))
    assert r["schema"] == SCHEMA and r["status"] == "measured"
    assert r["backend"] == runtime and r["precision"] == precision
    assert r["input_size"] == list(SIZE) and r["batch_size"] == 1 and r["threads"] == 1
    _check_latency(r["latency_ms"], 2)
    assert r["rounds"] == 1 and r["round_medians_ms"] == [r["latency_ms"]["median"]]
    assert r["params"] == 8 * 3 * 3 * 3 + 8 + 8 * 5 + 5   # the deploy form: BN folded
    assert r["macs"] > 0 and r["flops_per_s"] > 0
    return r


@pytest.mark.parametrize("runtime", ("paddle_inference",) + SESSION_RUNTIMES)
def test_every_runtime_record_is_well_formed_and_exact_at_fp32(all_runtimes, runtime):
    if not _available(runtime):
        pytest.skip(f"{runtime} is not installed: {runtime_status()[runtime]['reason']}")
    r = _check_measured(_by(all_runtimes, runtime, "fp32"), runtime, "fp32")
    assert r["exact"] is True and r["parity"]["status"] == "passed"
    assert r["max_rel_diff_vs_dygraph"] <= 1e-5
    if runtime != "paddle_inference":   # served by its session, which says how it ran
        assert r["runtime_record"]["runtime"] == runtime
        assert r["runtime_record"]["precision"] == "fp32"
        assert r["timed_region"].startswith("Session.run")
        assert r["mkldnn"] is None
    if runtime == "openvino":  # fp32 set on purpose: OpenVINO's default here would be bf16
        assert r["runtime_record"]["settings"]["INFERENCE_PRECISION_HINT"] == "f32"


def test_paddlex_settings_are_timed_beside_the_default(all_runtimes):
    default = _by(all_runtimes, "paddle_inference", "fp32")
    paddlex = _by(all_runtimes, "paddle_inference", "fp32", "paddlex")
    assert default["paddle_settings"] == {"name": "default"}
    assert paddlex["paddle_settings"] == {"name": "paddlex", **PADDLE_SETTINGS["paddlex"]}
    assert paddlex["paddle_settings"]["optimization_level"] == 3
    assert paddlex["paddle_settings"]["mkldnn_cache_capacity"] == -1
    assert paddlex["exact"] is True
    table = format_table(all_runtimes["results"])
    assert "| tiny_rt | paddle_inference (paddlex) | fp32 |" in table
    with pytest.raises(ValueError, match="paddle_settings"):
        benchmark_model("tiny_rt", runtime="onnxruntime", paddle_settings="paddlex", **FAST)
    with pytest.raises(ValueError, match="paddle_settings must be one of"):
        benchmark_model("tiny_rt", paddle_settings="fastest", **FAST)


@pytest.mark.parametrize("runtime", ["paddle_inference", "openvino", "onnxruntime"])
def test_bf16_is_approximate_or_unavailable_never_exact(all_runtimes, runtime):
    if not _available(runtime):
        pytest.skip(f"{runtime} is not installed: {runtime_status()[runtime]['reason']}")
    r = _by(all_runtimes, runtime, "bf16")
    assert r["exact"] is False
    usable = runtime_status()[runtime]["precisions"]
    if "bf16" not in usable:
        assert r["status"] == "unavailable" and "bf16" in r["reason"]
        assert r["latency_ms"] is None
        assert f"{runtime} bf16: unavailable" in format_table(all_runtimes["results"])
        return
    assert cpu_supports_bf16()
    r = _check_measured(r, runtime, "bf16")
    assert r["parity"]["status"] == "approximate"
    assert 0 <= r["parity"]["top1_agreement"] <= 1
    row = [line for line in format_table([r]).splitlines() if "| tiny_rt |" in line][0]
    assert "approx." in row and "exact" not in row


def test_unavailable_runtime_gives_a_record_not_an_error(tiny_model, monkeypatch):
    real = runtime_status()
    missing = {**real, "onnxruntime": {"available": False, "version": None, "precisions": [],
                                       "reason": 'No module named onnxruntime; pip install '
                                                 '"ppnets[onnx]"'}}
    monkeypatch.setattr(harness, "runtime_status", lambda: missing)
    r = benchmark_model(tiny_model, runtime="onnxruntime", **FAST)
    assert r["status"] == "unavailable" and "ppnets[onnx]" in r["reason"]
    assert r["model"] == tiny_model and r["backend"] == "onnxruntime" and r["exact"] is False
    json.dumps(r, allow_nan=False)
    # "all" leaves it out; naming it gives the record
    assert "onnxruntime" not in harness.resolve_runtimes("all")
    report = benchmark_models([tiny_model], runtimes=["onnxruntime"], **FAST)
    assert [x["status"] for x in report["results"]] == ["unavailable"]


def test_a_runtime_that_fails_to_open_gives_a_record(tiny_model, monkeypatch):
    from ppnets.runtime import RuntimeUnavailableError

    def refuse(*args, **kwargs):
        raise RuntimeUnavailableError("openvino does not import here; pip install "
                                      '"ppnets[openvino]"')

    monkeypatch.setattr(harness, "open_session", refuse)
    monkeypatch.setattr(harness, "runtime_status", lambda: {
        "openvino": {"available": True, "version": "x", "reason": None,
                     "precisions": ["fp32"]}})
    r = benchmark_model(tiny_model, runtime="openvino", **FAST)
    assert r["status"] == "unavailable" and "ppnets[openvino]" in r["reason"]


@pytest.mark.parametrize("runtime,precision,needle", [
    ("onnxruntime", "int8", "quantize"), ("paddle_lite", "fp32", "ppnets export")])
def test_artifacts_the_bench_cannot_make_are_unavailable_with_the_command(
        tiny_model, monkeypatch, runtime, precision, needle):
    monkeypatch.setattr(harness, "runtime_status", lambda: {
        runtime: {"available": True, "version": "x", "reason": None,
                  "precisions": ["fp32", "int8"]}})
    r = benchmark_model(tiny_model, runtime=runtime, precision=precision, **FAST)
    assert r["status"] == "unavailable" and needle in r["reason"]
    assert "--export-dir" in r["reason"]


def test_failed_output_check_is_recorded_as_not_exact(tiny_model, monkeypatch):
    if not _available("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    real = harness.check_session

    def failing(session, export_dir):
        rec = real(session, export_dir)
        rec["status"] = "failed"
        return rec

    monkeypatch.setattr(harness, "check_session", failing)
    r = benchmark_model(tiny_model, runtime="onnxruntime", **FAST)
    assert r["status"] == "measured" and r["exact"] is False
    assert "**FAILED**" in format_table([r])


def test_existing_export_folder_is_timed_as_it_is(tmp_path):
    if not _available("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    model, _, size = deploy_form(tiny(3), SIZE)
    folder = tmp_path / "exp"
    write_export_folder(model, "my_finetune", size, 2, str(folder))
    assert sorted(os.listdir(folder)) == ["export.json", "onnx", "paddle", "reference_io.npz"]
    r = benchmark_model(None, export_dir=str(folder), runtime="onnxruntime", **FAST)
    # the folder's model, input size and batch; MACs unknown (not a registry model)
    assert r["model"] == "my_finetune" and r["batch_size"] == 2
    assert r["input_size"] == list(SIZE) and r["exact"] is True
    assert r["macs"] is None and r["flops_per_s"] is None
    assert r["export_dir"] == str(folder)
    with pytest.raises(ValueError, match="needs a model"):
        benchmark_model(None)


def test_cli_runtime_and_precision_columns(tiny_model, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["--models", tiny_model, "--runtime", "paddle_inference", "onnxruntime",
               "--precision", "fp32", "int8", "--rounds", "1", "--warmup", "1",
               "--repeats", "2", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "| model | runtime | precision |" in captured.out
    assert f"| {tiny_model} | paddle_inference | fp32 |" in captured.out
    report = json.loads(out.read_text())
    assert report["runtimes"] == ["paddle_inference", "onnxruntime"]
    got = {(r["backend"], r["precision"]): r["status"] for r in report["results"]}
    assert got[("paddle_inference", "int8")] == "unavailable"
    assert f"{tiny_model} / paddle_inference int8: unavailable" in captured.out
    if _available("onnxruntime"):
        assert got[("onnxruntime", "fp32")] == "measured"
        assert f"| {tiny_model} | onnxruntime | fp32 |" in captured.out


@pytest.mark.parametrize("argv,message", [
    (["--models", "mobilenetv3_small_050", "mobilenetv2_100", "--recommend"], "one model"),
    (["--export-dir", "/nonexistent/folder"], "no export.json"),
    (["--runtime", "onnxruntime"], "--models NAME"),
])
def test_cli_argument_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_unknown_runtime_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--models", "x", "--runtime", "tensorrt"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_recommend_names_the_fastest_exact_runtime_and_prints_commands(tiny_model, tmp_path,
                                                                        capsys):
    runtimes = ["paddle_inference"] + [r for r in SESSION_RUNTIMES if _available(r)]
    out = tmp_path / "rec.json"
    rc = main(["--recommend", "--models", tiny_model, "--runtime", *runtimes, "--precision",
               "fp32", "int8", "--rounds", "1", "--warmup", "1", "--repeats", "2",
               "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rec = json.loads(out.read_text())
    best = rec["recommendation"]
    assert best["runtime"] in runtimes and best["precision"] == "fp32" and best["exact"]
    assert best["median_ms"] == min(row["median_ms"] for row in rec["exact"])
    assert {row["runtime"] for row in rec["exact"]} == set(runtimes)
    assert all(u["precision"] == "int8" for u in rec["unavailable"])
    assert f"Fastest exact: {best['runtime']} fp32" in captured.out
    assert rec["commands"]["export"].startswith(f"ppnets export --model {tiny_model}")
    assert f"--runtime {best['runtime']}" in rec["commands"]["predict"]
    assert rec["commands"]["predict"].startswith("ppnets predict")
    assert rec["commands"]["export"] in captured.out
    assert rec["commands"]["predict"] in captured.out


def test_recommendation_lists_approximate_options_with_their_accuracy():
    def rec(runtime, precision, ms, exact):
        parity = {"status": "passed" if exact else "approximate", "top1_agreement": 1.0}
        return {"status": "measured", "backend": runtime, "precision": precision,
                "model": "m", "latency_ms": {"median": ms, "iqr": 0.1}, "exact": exact,
                "parity": parity, "max_rel_diff_vs_dygraph": 0.0 if exact else 1e-3}

    report = {"machine": {"cpu_model": "cpu"}, "results": [
        rec("paddle_inference", "fp32", 7.0, True), rec("openvino", "fp32", 6.0, True),
        rec("openvino", "bf16", 4.0, False)]}
    from ppnets.bench import recommend as module
    original = module.benchmark_models
    module.benchmark_models = lambda *a, **k: report
    try:
        out = recommend("m", accuracy=[{"runtime": "openvino", "precision": "bf16",
                                        "top1": 78.25, "dygraph_top1": 78.5}])
    finally:
        module.benchmark_models = original
    assert out["recommendation"]["runtime"] == "openvino"
    approx = out["fastest_approximate"]
    assert approx["precision"] == "bf16" and approx["top1_change_points"] == pytest.approx(-0.25)
    assert approx["speedup_vs_fastest_exact"] == pytest.approx(1.5)
    text = format_recommendation(out)
    assert "Faster but approximate: openvino bf16" in text and "(-0.25 points)" in text
    assert load_accuracy({"openvino:bf16": {"top1": 1}}) == {"openvino:bf16": {"top1": 1}}
    with pytest.raises(ValueError, match="runtime, precision and top1"):
        load_accuracy([{"runtime": "openvino"}])


def test_peers_summary_names_the_fastest_exact_ppnets_path():
    def row(backend, ms, ppnets_path, exact=None):
        return {"model": "m", "backend": backend, "median_ms": ms, "ppnets_path": ppnets_path,
                "exact": exact, "iqr_ms": 0.2}

    table = [row("paddle_inference", 10.0, True, True),
             row("ppnets_openvino", 6.0, True, True),
             row("ppnets_onnxruntime", 5.0, True, False),   # failed its check: not counted
             row("onnxruntime", 7.0, False), row("openvino", 6.5, False),
             row("torch_eager", 12.0, False)]
    (s,) = summarize(table)
    assert s["fastest_ppnets_path"] == "ppnets_openvino" and s["fastest_ppnets_ms"] == 6.0
    assert s["fastest_hand_run_peer"] == "openvino"
    assert s["ppnets_over_peer"] == pytest.approx(6.0 / 6.5)
    assert s["peer_target_met"] is (6.0 / 6.5 <= PEER_TARGET)
    assert s["within_iqr"] is False          # 0.5 ms apart, IQRs 0.2 ms
    assert s["pi_over_ort"] == pytest.approx(10.0 / 7.0) and s["within_ort_target"] is False
