"""``create_model(name, pretrained=True)``: published weights fetched from a hub (a mirror on
127.0.0.1 here) or a plain URL, converted once, cached, and loaded -- with the network gone,
with damaged or interrupted downloads, with another class count and in deploy form.

The files served are reference state dicts written by the parity subprocess (timm and
torchvision models with random weights), so the whole real path runs: resolve -> download ->
convert -> cache -> load.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.convert import classifier_layout
from ppnets.weights import fetch, pretrained
from ppnets.weights.fetch import WeightsIntegrityError, WeightsUnavailableError
from ppnets.weights.sources import WeightNotFoundError, default_weight
from tests.conftest import REPO


def _state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _gets(server):
    return [r for r in server.requests if r[0] == "GET"]


def test_pretrained_true_equals_the_same_file_by_path(hub, reference_files):
    ours = ppnets.create_model("fasternet_t0", pretrained=True)
    explicit = ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"])
    a, b = _state(ours), _state(explicit)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert ours.pretrained_cfg.tag == default_weight("fasternet_t0").tag
    entry = pretrained.cached_entry(default_weight("fasternet_t0"))
    assert entry is not None and entry["layout"] == "timm"


def test_warm_cache_needs_no_network_and_cold_offline_says_what_to_do(hub, reference_files,
                                                                     monkeypatch, tmp_path):
    ppnets.create_model("fasternet_t0", pretrained=True)
    count = len(hub.requests)
    hub.close()  # the network is gone
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # nothing listens there
    warm = ppnets.create_model("fasternet_t0", pretrained=True)
    assert len(hub.requests) == count
    explicit = ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"])
    for k, v in _state(explicit).items():
        np.testing.assert_array_equal(_state(warm)[k], v)

    monkeypatch.setenv("PPNETS_HOME", str(tmp_path / "cold"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = default_weight("fasternet_t0")
    with pytest.raises(WeightsUnavailableError) as err:
        ppnets.create_model("fasternet_t0", pretrained=True)
    manual = fetch.manual_path(f"{src.model}.{src.tag}", src.filename)
    message = str(err.value)
    assert f"/{src.hf_hub_id}/resolve/{src.revision}/{src.filename}" in message
    assert manual in message and "offline" in message
    os.makedirs(os.path.dirname(manual))   # do what the message says
    with open(reference_files["fasternet_t0"], "rb") as f, open(manual, "wb") as g:
        g.write(f.read())
    assert ppnets.create_model("fasternet_t0", pretrained=True) is not None


def test_corrupt_or_interrupted_download_leaves_no_entry_that_loads(hub, reference_files):
    src = default_weight("fasternet_t0")
    path = f"/{src.hf_hub_id}/resolve/{src.revision}/{src.filename}"
    good = hub.files[path]
    hub.files[path] = b"\x00" * 64 + good[64:]           # damaged in transit
    with pytest.raises(RuntimeError, match="could not be converted"):
        ppnets.create_model("fasternet_t0", pretrained=True)
    assert pretrained.cached_entry(src) is None
    hub.files[path] = good
    hub.cut_after = len(good) // 2                        # the connection drops half-way
    with pytest.raises(Exception):
        ppnets.create_model("fasternet_t0", pretrained=True)
    assert pretrained.cached_entry(src) is None
    hub.cut_after = None
    model = ppnets.create_model("fasternet_t0", pretrained=True)
    explicit = ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"])
    for k, v in _state(explicit).items():
        np.testing.assert_array_equal(_state(model)[k], v)


def _count_builds_and_reads(monkeypatch, name):
    """Count the builds of ``name`` and record every checkpoint file read."""
    from ppnets import convert
    from ppnets.registry import get_entry

    entry, seen = get_entry(name), {"builds": 0, "reads": []}
    build, read = entry.builder, convert.read_checkpoint

    def counted_build(**kwargs):
        seen["builds"] += 1
        return build(**kwargs)

    def recorded_read(path):
        seen["reads"].append(path)
        return read(path)

    monkeypatch.setattr(entry, "builder", counted_build)
    monkeypatch.setattr(convert, "read_checkpoint", recorded_read)
    monkeypatch.setattr(pretrained, "read_checkpoint", recorded_read)
    return seen


def test_a_cache_miss_builds_once_and_converts_in_memory(hub, monkeypatch):
    """The published file is read once and converted into the model being returned; the cache
    file is written from those arrays, not read back. A warm call reads only the cache file."""
    seen = _count_builds_and_reads(monkeypatch, "fasternet_t0")
    ppnets.create_model("fasternet_t0", pretrained=True)
    cache = os.path.join(os.environ["PPNETS_HOME"], "weights")
    assert seen["builds"] == 1
    assert len(seen["reads"]) == 1 and not seen["reads"][0].startswith(cache), seen["reads"]
    seen.update(builds=0, reads=[])
    ppnets.create_model("fasternet_t0", pretrained=True)
    assert seen["builds"] == 1
    assert len(seen["reads"]) == 1 and seen["reads"][0].startswith(cache), seen["reads"]


@pytest.mark.parametrize("num_classes", [7, 0])
def test_a_miss_with_another_class_count_caches_the_published_classifier(
        hub, reference_files, num_classes):
    """Converted into a model with another (or no) classifier, the cache still gets the
    published one, in our layout: a later default model loads exactly the file's weights."""
    model = ppnets.create_model("fasternet_t0", num_classes=num_classes, pretrained=True)
    assert model.loaded_weights.classifier_kept == (["head.fc.bias", "head.fc.weight"]
                                                    if num_classes else [])
    gets = len(_gets(hub))
    warm = ppnets.create_model("fasternet_t0", pretrained=True)
    assert len(_gets(hub)) == gets and warm.loaded_weights.classifier_kept == []
    explicit = ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"])
    for k, v in _state(explicit).items():
        np.testing.assert_array_equal(_state(warm)[k], v, err_msg=k)


def test_a_miss_into_a_model_built_otherwise_fails_and_keeps_the_download(hub):
    """A model built with other options (here one input channel) does not fit the weights: the
    error says so, nothing is cached, and the intact download is not fetched again."""
    with pytest.raises(ValueError, match="does not fit fasternet_t0"):
        ppnets.create_model("fasternet_t0", pretrained=True, in_chans=1)
    assert pretrained.cached_entry(default_weight("fasternet_t0")) is None
    gets = len(_gets(hub))
    ppnets.create_model("fasternet_t0", pretrained=True)
    assert len(_gets(hub)) == gets


def test_a_changed_source_is_fetched_again(hub, monkeypatch):
    src = default_weight("fasternet_t0")
    ppnets.create_model("fasternet_t0", pretrained=True)
    first = len(_gets(hub))
    moved = src.__class__(**{**src.__dict__, "revision": "v2"})
    hub.files[f"/{src.hf_hub_id}/resolve/v2/{src.filename}"] = \
        hub.files[f"/{src.hf_hub_id}/resolve/{src.revision}/{src.filename}"]
    monkeypatch.setattr(pretrained, "default_weight", lambda name: moved)
    ppnets.create_model("fasternet_t0", pretrained=True)
    asked = [r for r in hub.requests if "/resolve/v2/" in r[1]]
    assert asked, "the new revision was not asked for"
    assert pretrained.cache_dir(moved) != pretrained.cache_dir(src)
    assert pretrained.cached_entry(moved)["source"]["revision"] == "v2"
    assert len(_gets(hub)) == first   # the same bytes (same ETag): the hub cache serves them


def test_another_class_count_keeps_a_new_classifier_and_says_so(hub, reference_files, caplog):
    full = _state(ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"]))
    with caplog.at_level(logging.WARNING, logger="ppnets"):
        model = ppnets.create_model("fasternet_t0", num_classes=7, pretrained=True)
    assert "everything but the classifier" in caplog.text and "head.fc" in caplog.text
    ours = _state(model)
    assert ours["head.fc.weight"].shape == (1280, 7)
    for k, v in full.items():
        if not k.startswith("head.fc."):
            np.testing.assert_array_equal(ours[k], v, err_msg=k)


def test_deploy_true_loads_then_reparameterizes(hub):
    x = paddle.to_tensor(np.random.RandomState(0).randn(2, 3, 64, 64).astype("float32"))
    train = ppnets.create_model("repvgg_a0", pretrained=True)
    train.eval()
    fused = ppnets.create_model("repvgg_a0", pretrained=True, deploy=True)
    assert not fused.training and fused.deploy
    assert not any("conv_scale" in k for k in fused.state_dict())
    with paddle.no_grad():
        a, b = train(x).numpy(), fused(x).numpy()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * max(1.0, float(np.abs(a).max())))


def test_plain_url_with_hash_check_resume_and_mirror(file_server, reference_files, tmp_path,
                                                    monkeypatch):
    data = open(reference_files["fasternet_t0"], "rb").read()
    file_server.files["/models/fasternet_t0-test.safetensors"] = data
    src = dataclasses.replace(
        default_weight("fasternet_t0"), tag="test_url", kind="url", hf_hub_id=None,
        filename=None, revision=None,
        url="https://download.example.org/models/fasternet_t0-test.safetensors",
        sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(pretrained, "find_weight", lambda name, tag: src)
    monkeypatch.setenv("PPNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PPNETS_DOWNLOAD_MIRROR", file_server.url)   # the URL's path, mirrored
    file_server.cut_after = len(data) // 3
    with pytest.raises(WeightsUnavailableError):
        ppnets.create_model("fasternet_t0", pretrained="test_url")
    file_server.cut_after = None
    model = ppnets.create_model("fasternet_t0", pretrained="test_url")   # resumes
    ranges = [r[2] for r in file_server.requests if r[0] == "GET"]
    assert ranges[0] is None and ranges[-1] == f"bytes={len(data) // 3}-"
    explicit = ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"])
    for k, v in _state(explicit).items():
        np.testing.assert_array_equal(_state(model)[k], v)

    bad = dataclasses.replace(src, tag="bad", sha256="0" * 64)
    monkeypatch.setattr(pretrained, "find_weight", lambda name, tag: bad)
    with pytest.raises(WeightsIntegrityError, match="does not have the published SHA-256"):
        ppnets.create_model("fasternet_t0", pretrained="bad")
    assert pretrained.cached_entry(bad) is None
    assert not [f for f in os.listdir(tmp_path / "home" / "downloads" / "fasternet_t0.bad")
                if f.endswith(".safetensors")]


def test_unknown_tag_lists_the_tags(hub):
    with pytest.raises(WeightNotFoundError, match="no weight tagged 'no_such_tag'.*Its tags: in1k"):
        ppnets.create_model("fasternet_t0", pretrained="no_such_tag")


def test_paddle_hub_local_entry_points(hub, reference_files):
    names = paddle.hub.list(REPO, source="local")
    assert set(ppnets.list_models()) <= set(names)
    assert "fasternet_t0" in paddle.hub.help(REPO, "fasternet_t0", source="local")
    model = paddle.hub.load(REPO, "fasternet_t0", source="local", pretrained=True)
    explicit = ppnets.create_model("fasternet_t0", pretrained=reference_files["fasternet_t0"])
    for k, v in _state(explicit).items():
        np.testing.assert_array_equal(_state(model)[k], v)


def test_weights_command_lists_fetches_and_verifies(hub):
    from ppnets.cli.main import main

    assert main(["weights", "fetch", "fasternet_t0"]) == 0
    assert pretrained.cached_entry(default_weight("fasternet_t0")) is not None
    assert main(["weights", "verify"]) == 0
    entry = pretrained.cached_entry(default_weight("fasternet_t0"))
    with open(entry["weights_path"], "ab") as f:
        f.write(b"damage")
    assert main(["weights", "verify"]) == 1
    assert main(["weights", "fetch", "fasternet_t0"]) == 0     # rebuilt
    assert main(["weights", "verify"]) == 0
    assert main(["weights", "list", "fasternet_t0"]) == 0


@pytest.mark.parametrize("saved_classes, model_classes", [(0, 10), (1000, 0)])
def test_headless_weights_and_headless_models_load_the_backbone(tmp_path, saved_classes,
                                                                 model_classes, caplog):
    """Published backbones without classifier (timm's ``bamboo`` ResNet-50) and users building
    ``num_classes=0`` both load everything but the classifier."""
    paddle.seed(0)
    source = ppnets.create_model("mobilenetv2_050", num_classes=saved_classes)
    path = str(tmp_path / "w.pdparams")
    paddle.save(source.state_dict(), path)
    model = ppnets.create_model("mobilenetv2_050", num_classes=model_classes)
    with caplog.at_level(logging.WARNING, logger="ppnets"):
        loaded = pretrained.load_weights(model, path, what="test weights")
    head = set(classifier_layout(model)[0])
    assert head and model.num_classes == model_classes
    assert set(loaded.classifier_kept) == (head if model_classes else set())
    assert "test weights: loaded everything but the classifier" in caplog.text
    assert ("the file has none" if not saved_classes else "this model has none") in caplog.text
    for key, value in source.state_dict().items():
        if key not in head:
            np.testing.assert_array_equal(model.state_dict()[key].numpy(), value.numpy())
