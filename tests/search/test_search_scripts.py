"""reproduce/efficientformer_search.py and reproduce/efficientformerv2_search.py with --smoke on
the real CIFAR-10 subset (../shared/data), each in a subprocess: search.json's networks meet
their latency targets by the table (their prediction is the sum of the table's entries), carry
a measured latency, and build through ppnets.create_model."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import paddle
import pytest

import ppnets
from ppnets.engine import load_config
from ppnets.factory import create_model
from ppnets.search.lut import LatencyLUT
from ppnets.search.space_v1 import V1Net, V1Space
from ppnets.search.space_v2 import V2Net, V2Space
from tests.conftest import CIFAR_PARTIAL, REPO, require_shared


def _run(script, out, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "reproduce", script), "--smoke",
                           "--data-file", CIFAR_PARTIAL, "--output-dir", str(out)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(os.path.join(out, "smoke", "search.json")) as f:
        return json.load(f)


def _check(result, lut, space, net, family):
    size = space.img_size
    assert result["reached"] and result["predicted_ms"] <= result["target_ms"]
    assert result["predicted_ms"] == pytest.approx(lut.latency(space.specs(net)), rel=1e-9)
    assert result["measured_ms"] > 0
    assert result["measurement"]["round_medians_ms"] == [result["measured_ms"]]   # 1 round
    assert result["model"]["name"] == family
    model = create_model(family, num_classes=10, **result["model"]["kwargs"])
    model.eval()
    assert model(paddle.randn([1, 3, size, size])).shape == [1, 10]
    assert result["training"]["epochs"] == 1
    base = result["baseline"]
    if base is not None:
        assert base["predicted_ms"] <= result["target_ms"] and base["measured_ms"] > 0


def _common(out, payload):
    assert payload["smoke"] is True and payload["lut"]["target"] == "cpu"
    assert len(payload["results"]) == 3
    networks = {r["label"] for res in payload["results"]
                for r in (res, res.get("baseline")) if r}
    assert payload["actions"] and payload["prediction_error"]["n"] == len(networks) >= 1
    smoke = os.path.join(out, "smoke")
    md = open(os.path.join(smoke, "search.md")).read()
    assert "SMOKE RUN" in md and "## Action log" in md
    assert os.path.getsize(os.path.join(smoke, "search.png")) > 1000
    record = json.load(open(os.path.join(smoke, "run_record.json")))
    assert record["smoke"] and "--smoke" in record["command"]


@pytest.mark.parametrize("name", ["efficientformer_cifar10", "efficientformerv2_cifar10"])
def test_recipes_resolve_with_and_without_smoke(name):
    path = os.path.join(REPO, "configs", "search", f"{name}.yaml")
    full = load_config(path)
    smoke = load_config(path, full["experiment"]["smoke"])
    for cfg in (full, smoke):
        sup = cfg["experiment"]["search"]["supernet"]
        assert len(sup["depths"]) == len(sup["widths"]) == 4
        assert all(w % sup["width_step"] == 0 for w in sup["widths"])
        assert cfg["model"]["name"] in ppnets.list_models()
    depths = [sum(c["experiment"]["search"]["supernet"]["depths"]) for c in (smoke, full)]
    assert depths[0] < depths[1]


def test_efficientformer_search_smoke(tmp_path):
    require_shared(CIFAR_PARTIAL)
    payload = _run("efficientformer_search.py", tmp_path)
    _common(str(tmp_path), payload)
    sup = payload["supernet"]
    space = V1Space(sup["image_size"], sup["depths"], sup["widths"], 10)
    lut = LatencyLUT(payload["lut"]["path"], target="file")   # read back, nothing measured
    for res in payload["results"]:
        kw = res["model"]["kwargs"]
        _check(res, lut, space, V1Net(tuple(kw["depths"]), tuple(kw["dims"]), kw["num_vit"]),
               "efficientformer_l1")


def test_efficientformerv2_search_smoke(tmp_path):
    require_shared(CIFAR_PARTIAL)
    payload = _run("efficientformerv2_search.py", tmp_path)
    _common(str(tmp_path), payload)
    sup = payload["supernet"]
    space = V2Space(sup["image_size"], sup["depths"], sup["widths"], sup["ratios"], 10)
    lut = LatencyLUT(payload["lut"]["path"], target="file")
    for res in payload["results"]:
        kw = res["model"]["kwargs"]
        net = V2Net(tuple(kw["depths"]), tuple(kw["dims"]),
                    tuple(tuple(r) for r in kw["mlp_ratios"]), tuple(kw["num_vit_per_stage"]))
        _check(res, lut, space, net, "efficientformerv2_s0")
        assert res["mes"] > 0 and res["params"] > 0


def test_results_table_says_when_a_target_or_a_baseline_is_missing():
    from ppnets.search.runner import format_table

    def row(label, dims, ms):
        return {"label": label, "model": {"name": "efficientformer_l1",
                                          "kwargs": {"dims": dims, "depths": [1, 1, 1, 1]}},
                "predicted_ms": ms, "measured_ms": ms * 1.1, "params": 5e5,
                "training": {"final_top1": 0.25}}

    results = [{"target_ms": 2.0, "reached": True, **row("a", [32, 48, 96, 128], 1.9),
                "baseline": row("b", [16, 32, 96, 176], 1.95)},
               {"target_ms": 1.0, "reached": False, **row("c", [16, 48, 96, 128], 1.3),
                "baseline": None}]
    lines = format_table(results)
    cells = [line.count("|") for line in lines]
    assert len(set(cells)) == 1   # every row has the header's columns
    body = lines[2:]
    assert body[0].startswith("| 2.000 | searched:") and "baseline:" in body[1]
    assert "target NOT reached" in body[2] and "1.300" in body[2]
    assert body[3] == "| 1.000 | baseline: none fits the budget by the table |" + " - |" * 5
    assert "NOT reached" not in "".join(body[:2])
