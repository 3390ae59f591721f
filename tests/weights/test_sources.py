"""The weight table (each variant's ``weights`` in its family file, read through
ppnets.weights.sources) against what timm 1.0.31 and torchvision say about their weights.

Every registered model has a row (weights, or the reason there are none); every timm entry's Hub
repository, tag, default and preprocessing equal timm's own pretrained cfg; every torchvision
entry equals torchvision's weights enum; and every entry's file layout loads into our model with
the entry's ``num_classes`` -- the reference model for ``<name>.<tag>`` is built in a torch
subprocess and its state dict saved (conftest.py). The claimed top-1 is checked against timm's
results CSV when ``PPNETS_TIMM_RESULTS_CSV`` names a copy of it (``ppnets.registry.TIMM_RESULTS``
says where it lives).
"""
from __future__ import annotations

import csv
import os
from collections import defaultdict

import pytest

import ppnets
from ppnets.weights import (
    NO_WEIGHTS,
    SOURCES,
    WeightNotFoundError,
    WeightSource,
    default_weight,
    find_weight,
    weights_for,
)
from tests.conftest import model_param
from tests.weights.conftest import serve_as_hub

# One xdist worker runs every test of tests/weights (--dist loadgroup), so the torch-side files
# are written once, by one subprocess, not raced for by several workers.
pytestmark = pytest.mark.xdist_group("weights")

ALL_WEIGHTS = [w for ws in SOURCES.values() for w in ws]
TIMM_WEIGHTS = [pytest.param(w, id=f"{w.model}.{w.tag}") for w in ALL_WEIGHTS
                if w.library == "timm"]
TV_WEIGHTS = [pytest.param(w, id=f"{w.model}.{w.tag}") for w in ALL_WEIGHTS
              if w.library == "torchvision"]
# Loading a large variant's layout is `slow`, as its registry-wide tests are (tests/conftest.py).
LOADED_WEIGHTS = [pytest.param(w, id=f"{w.model}.{w.tag}",
                               marks=model_param(w.model, xdist_group=False).marks)
                  for w in ALL_WEIGHTS]
# What pretrained=True fetches from the hub (safetensors); url weights: test_pretrained.py
HUB_DEFAULTS = [pytest.param(w, id=f"{w.model}.{w.tag}",
                             marks=model_param(w.model, xdist_group=False).marks)
                for w in ALL_WEIGHTS if w.default and w.kind == "hf_hub"
                and w.file_format == "safetensors"]


def test_every_registered_model_has_a_row():
    registered = set(ppnets.list_models())
    assert set(SOURCES) | set(NO_WEIGHTS) == registered
    assert not set(SOURCES) & set(NO_WEIGHTS)
    assert all(len(reason) > 40 for reason in NO_WEIGHTS.values())
    for model, weights in SOURCES.items():
        assert weights and [w.default for w in weights] == [True] + [False] * (len(weights) - 1)
        assert len({w.tag for w in weights}) == len(weights), model
        assert {w.model for w in weights} == {model}


def test_nothing_is_published_where_the_table_says_none(reference_cfgs):
    found = {name: pub for name, pub in reference_cfgs["absent"].items() if pub}
    assert not found, f"timm/torchvision publish weights for models listed in NO_WEIGHTS: {found}"


@pytest.mark.parametrize("model", sorted(m for m, ws in SOURCES.items()
                                         if ws[0].library == "timm"))
def test_timm_tags_and_default(reference_cfgs, model):
    ref = reference_cfgs["timm"][model]
    assert [w.tag for w in weights_for(model)][0] == ref["default_tag"]
    assert {w.tag for w in weights_for(model)} == set(ref["tags"])


@pytest.mark.parametrize("weight", TIMM_WEIGHTS)
def test_timm_entry_equals_timm_cfg(reference_cfgs, weight):
    ref = reference_cfgs["timm"][weight.model]["tags"][weight.tag]
    ours = {f: getattr(weight, f) for f in ("hf_hub_id", "num_classes", "interpolation",
                                            "crop_pct", "test_crop_pct", "license")}
    ours.update({f: list(getattr(weight, f)) if getattr(weight, f) else None
                 for f in ("input_size", "test_input_size", "mean", "std")})
    assert ours == {f: ref[f] for f in ours}
    classifier = ref["classifier"] if isinstance(ref["classifier"], list) else [ref["classifier"]]
    assert weight.distilled == any("dist" in c for c in classifier)
    assert (weight.kind, weight.filename, weight.file_format) == (
        "hf_hub", reference_cfgs["hf_filename"], "safetensors")


@pytest.mark.parametrize("weight", TV_WEIGHTS)
def test_torchvision_entry_equals_weights_enum(reference_cfgs, weight):
    ref = reference_cfgs["torchvision"][weight.model][weight.tag]
    ours = {"default": weight.default, "url": weight.url, "sha256_prefix": weight.sha256_prefix,
            "num_classes": weight.num_classes, "input_size": list(weight.input_size),
            "crop_pct": weight.crop_pct, "interpolation": weight.interpolation,
            "mean": list(weight.mean), "std": list(weight.std), "top1": weight.top1,
            "top5": weight.top5}
    assert ours == ref
    assert set(reference_cfgs["torchvision"][weight.model]) == {w.tag for w in
                                                                weights_for(weight.model)}


@pytest.fixture(scope="module")
def loaded_layouts():
    """Layout files already loaded into (model, num_classes): tags sharing a file load it once."""
    return set()


@pytest.mark.parametrize("weight", LOADED_WEIGHTS)
def test_layout_loads_into_our_model(layout_files, loaded_layouts, weight):
    key = f"{weight.model}.{weight.tag}"
    if (layout_files / f"{key}.error").exists():
        pytest.fail(f"reference model {key} failed to build:\n"
                    f"{(layout_files / f'{key}.error').read_text()}")
    same = layout_files / f"{key}.same"
    source = same.read_text() if same.exists() else key
    if (source, weight.num_classes) not in loaded_layouts:
        # strict: a missing, unexpected or mismatched key raises
        ppnets.create_model(weight.model, num_classes=weight.num_classes,
                            pretrained=str(layout_files / f"{source}.safetensors"))
        loaded_layouts.add((source, weight.num_classes))


def _layout_path(layout_files, weight):
    key = f"{weight.model}.{weight.tag}"
    same = layout_files / f"{key}.same"
    return layout_files / f"{same.read_text() if same.exists() else key}.safetensors"


@pytest.mark.parametrize("weight", HUB_DEFAULTS)
def test_pretrained_true_through_a_mirror_equals_the_same_file(layout_files, file_server,
                                                               tmp_path, monkeypatch, weight):
    """Every hub-hosted default weight: ``pretrained=True`` through ``HF_ENDPOINT`` (a mirror on
    127.0.0.1 serving the reference layout) loads exactly what ``pretrained=<that file>`` does."""
    path = _layout_path(layout_files, weight)
    if not path.exists():
        pytest.fail(f"no reference layout for {weight.model}.{weight.tag} in {layout_files}")
    serve_as_hub(file_server, monkeypatch, tmp_path / "home", {weight: path.read_bytes()})
    fetched = ppnets.create_model(weight.model, num_classes=weight.num_classes, pretrained=True)
    by_path = ppnets.create_model(weight.model, num_classes=weight.num_classes,
                                  pretrained=str(path))
    a, b = fetched.state_dict(), by_path.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k].numpy() == b[k].numpy()).all(), k
    assert fetched.pretrained_cfg == weight


def _results_rows():
    path = os.environ.get("PPNETS_TIMM_RESULTS_CSV")
    if not path:
        pytest.skip("set PPNETS_TIMM_RESULTS_CSV to a copy of results/results-imagenet.csv of "
                    "huggingface/pytorch-image-models to check the claimed top-1/top-5")
    rows = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            rows[row["model"]].append(row)
    return rows


def test_top1_is_timms_results_row():
    rows = _results_rows()
    wrong = []
    for w in ALL_WEIGHTS:
        if w.library != "timm":
            continue
        found = rows.get(f"{w.model}.{w.tag}", [])
        if w.top1 is None:
            if found:
                wrong.append(f"{w.model}.{w.tag}: no top-1 here, the CSV has {found}")
            continue
        match = [(float(r["top1"]), float(r["top5"])) for r in found
                 if int(r["img_size"]) == w.input_size[-1]
                 and float(r["crop_pct"]) == pytest.approx(w.crop_pct, abs=5e-4)]
        if match != [(w.top1, w.top5)]:
            wrong.append(f"{w.model}.{w.tag}: ours {(w.top1, w.top5)}, CSV {match or found}")
    assert not wrong, "\n".join(wrong)


def test_lookup_functions():
    assert default_weight("repvit_m1_1").tag == "dist_300e_in1k"
    assert find_weight("repvit_m1_1", "dist_450e_in1k").top1 > default_weight("repvit_m1_1").top1
    assert weights_for("spconv_resnet18") == []
    with pytest.raises(WeightNotFoundError, match="dist_300e_in1k, dist_450e_in1k"):
        find_weight("repvit_m1_1", "in1k")
    with pytest.raises(WeightNotFoundError, match="Google Drive"):
        default_weight("repvgg_b1g2")
    with pytest.raises(KeyError, match="resnet50"):
        weights_for("resnet500")


def test_a_url_entry_needs_a_hash():
    spec = dict(SOURCES["shufflenet_v2_x0_5"][0].__dict__, sha256_prefix=None)
    with pytest.raises(ValueError, match="sha256"):
        WeightSource(**spec)
