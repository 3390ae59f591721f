"""FasterNet family tests: PConv, structure against the paper, BN folding, export form and the
official (JierunChen/FasterNet) checkpoint layout.

Registry-wide behaviour (forward/backward, classifier API, deploy, export, published counts) is in
tests/models/test_models.py and timm parity in tests/parity.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.analysis import profile_model
from ppnets.convert import load_pretrained
from ppnets.models import fasternet as fasternet_module
from ppnets.models.fasternet import FasterNet, LayerNorm2d, PartialConv
from tests.conftest import (
    REPO,
    assert_parity,
    deploy_form_output,
    float64_model,
    randomize_bn,
    state_dict_signature,
)

# Paper/official cfg files: embed_dim, depths, activation, drop_path_rate.
PAPER_TABLE = {
    "fasternet_t0": (40, (1, 2, 8, 2), "GELU", 0.0),
    "fasternet_t1": (64, (1, 2, 8, 2), "GELU", 0.02),
    "fasternet_t2": (96, (1, 2, 8, 2), "ReLU", 0.05),
    "fasternet_s": (128, (1, 2, 13, 2), "ReLU", 0.1),
    "fasternet_m": (144, (3, 4, 18, 3), "ReLU", 0.2),
    "fasternet_l": (192, (3, 4, 18, 3), "ReLU", 0.3),
}


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def test_every_variant_registered():
    assert sorted(ppnets.list_models("fasternet_*")) == sorted(PAPER_TABLE)


@pytest.mark.parametrize("dim", [40, 96, 130])
def test_pconv_modes_identical(dim):
    paddle.seed(0)
    layer = PartialConv(dim, n_div=4, forward_mode="split_cat")
    x = _x([2, dim, 9, 11])
    x_before = x.numpy().copy()
    split = layer(x).numpy()
    layer.set_forward_mode("slicing")
    sliced = layer(x).numpy()
    np.testing.assert_allclose(sliced, split, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(x.numpy(), x_before)  # slicing works on a copy
    # The untouched channels pass through bit-exactly; only the first dim // 4 are convolved.
    n = dim // 4
    np.testing.assert_array_equal(split[:, n:], x_before[:, n:])
    with paddle.no_grad():
        conv = layer.conv(paddle.to_tensor(x_before[:, :n])).numpy()
    np.testing.assert_allclose(split[:, :n], conv, rtol=0, atol=1e-6)


def test_pconv_mode_validation():
    with pytest.raises(ValueError, match="split_cat"):
        PartialConv(32, forward_mode="slice")
    with pytest.raises(ValueError, match="pconv_forward"):
        FasterNet(embed_dim=16, depths=(1, 1), pconv_forward="concat")


@pytest.mark.parametrize("dim,hw", [(64, 14), (96, 7)])
def test_pconv_macs_are_r_squared_of_a_full_conv(dim, hw):
    r = 1 / 4  # n_div = 4
    pconv = profile_model(PartialConv(dim, n_div=4), input_size=(dim, hw, hw)).macs
    full = profile_model(paddle.nn.Conv2D(dim, dim, 3, padding=1, bias_attr=False),
                         input_size=(dim, hw, hw)).macs
    assert full == hw * hw * dim * dim * 9
    assert pconv == hw * hw * (dim // 4) ** 2 * 9
    assert pconv == pytest.approx(r ** 2 * full, rel=0, abs=0)


@pytest.mark.parametrize("name", sorted(PAPER_TABLE))
def test_structure_matches_paper_table(name, monkeypatch):
    embed_dim, depths, act, dpr = PAPER_TABLE[name]
    monkeypatch.setattr(fasternet_module, "init_trunc_normal", lambda *a, **k: None)  # shapes only
    model = ppnets.create_model(name)
    assert [len(stage.blocks) for stage in model.stages] == list(depths)
    assert model.stage_dims == [embed_dim * 2 ** i for i in range(4)]
    assert model.num_features == 1280
    # patch embedding 4x4/4; merging 2x2/2 in front of stages 2-4 only
    assert model.patch_embed.conv._kernel_size == [4, 4]
    assert model.patch_embed.conv._stride == [4, 4]
    assert isinstance(model.stages[0].downsample, paddle.nn.Identity)
    for i in range(1, 4):
        conv = model.stages[i].downsample.conv
        assert conv._kernel_size == [2, 2] and conv._stride == [2, 2]
        assert conv.weight.shape == [embed_dim * 2 ** i, embed_dim * 2 ** (i - 1), 2, 2]
    block = model.stages[2].blocks[0]
    dim = embed_dim * 4
    assert block.spatial_mixing.conv.weight.shape == [dim // 4, dim // 4, 3, 3]
    assert block.mlp_expand.conv.weight.shape == [2 * dim, dim, 1, 1]  # mlp_ratio 2
    assert block.mlp_project.weight.shape == [dim, 2 * dim, 1, 1]
    assert type(block.mlp_expand.act).__name__ == act
    assert type(model.head.act).__name__ == act
    # official stochastic depth rule: linear from 0 to drop_path_rate over all blocks
    blocks = [b for stage in model.stages for b in stage.blocks]
    probs = [getattr(b.drop_path, "drop_prob", 0.0) for b in blocks]
    np.testing.assert_allclose(probs, np.linspace(0, dpr, len(blocks)), atol=1e-7)


def test_drop_path_rate_override():
    model = ppnets.create_model("fasternet_t1", drop_path_rate=0.0)
    assert not [l for l in model.sublayers() if type(l).__name__ == "DropPath"]
    model = ppnets.create_model("fasternet_t0", drop_path_rate=0.1)
    assert model.stages[3].blocks[-1].drop_path.drop_prob == pytest.approx(0.1)


def test_feature_shapes():
    model = ppnets.create_model("fasternet_t0", num_classes=3)
    model.eval()
    with paddle.no_grad():
        feats = model.forward_features(_x([1, 3, 96, 64]))
        assert feats.shape == [1, 320, 3, 2]
        assert model.forward_head(feats, pre_logits=True).shape == [1, 1280]


def test_layer_scale_option():
    paddle.seed(0)
    model = FasterNet(num_classes=5, embed_dim=16, depths=(1, 1), layer_scale_init_value=1e-5)
    gammas = [k for k in model.state_dict() if k.endswith("layer_scale.gamma")]
    assert len(gammas) == 2
    np.testing.assert_allclose(model.stages[0].blocks[0].layer_scale.gamma.numpy(), 1e-5)
    out = model(_x([2, 3, 32, 32]))
    assert out.shape == [2, 5]


def _t0_eval(seed=0):
    paddle.seed(seed)
    model = ppnets.create_model("fasternet_t0", num_classes=10)
    randomize_bn(model, seed)
    model.eval()
    return model


def test_reparameterize_folds_every_bn_and_keeps_split_cat():
    model = _t0_eval()
    x = _x([2, 3, 64, 64])
    with paddle.no_grad():
        before = model(x).numpy()
    model.reparameterize()
    assert not [l for l in model.sublayers() if isinstance(l, paddle.nn.BatchNorm2D)]
    assert not [k for k in model.state_dict() if "_mean" in k or "_variance" in k]
    assert model.pconv_forward == "split_cat"
    assert {l.forward_mode for l in model.sublayers() if isinstance(l, PartialConv)} == \
        {"split_cat"}
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * max(1, np.abs(before).max()))

    model.reparameterize(pconv_forward="slicing")
    assert {l.forward_mode for l in model.sublayers() if isinstance(l, PartialConv)} == \
        {"slicing"}
    with paddle.no_grad():
        sliced = model(x).numpy()
    np.testing.assert_allclose(sliced, after, rtol=0, atol=1e-6)


def test_whole_model_modes_identical_train_structure():
    model = _t0_eval()
    x = _x([2, 3, 64, 64], seed=1)
    with paddle.no_grad():
        split = model(x).numpy()
        model.set_pconv_forward("slicing")
        sliced = model(x).numpy()
    np.testing.assert_allclose(sliced, split, rtol=0, atol=1e-6)
    built = ppnets.create_model("fasternet_t0", pconv_forward="slicing")
    assert {l.forward_mode for l in built.sublayers() if isinstance(l, PartialConv)} == \
        {"slicing"}


def _exported_ops(model, prefix):
    spec = paddle.static.InputSpec([None, 3, 64, 64], "float32", "x")
    paddle.jit.save(model, prefix, input_spec=[spec])
    with open(prefix + ".json") as f:
        text = f.read()
    return set(re.findall(r'"1\.([a-z_0-9]+)"', text))


def test_default_export_is_split_cat_without_set_value(tmp_path):
    """Paddle Lite has no set_value: the default deploy graph must not contain it."""
    model = FasterNet(num_classes=4, embed_dim=16, depths=(1, 1))
    model.eval()
    model.reparameterize()
    ops = _exported_ops(model, str(tmp_path / "split"))
    assert {"split", "concat"} <= ops or {"split_with_num", "concat"} <= ops, ops
    assert not any(op.startswith("set_value") for op in ops), ops
    model.set_pconv_forward("slicing")
    ops = _exported_ops(model, str(tmp_path / "slicing"))
    assert any(op.startswith("set_value") for op in ops), ops


# --- official checkpoint layout ----------------------------------------------------------------

def _timm_to_official(state):
    """The official repo's names for a timm state dict (the correspondence documented in
    ppnets/models/fasternet.py): its ``stages`` interleave blocks (``stages.{2k}``) and merging
    layers (``stages.{2k-1}`` in front of stage k); head conv ``avgpool_pre_head.1``; Linear
    ``head``."""
    out = {}
    for key, value in state.items():
        m = re.match(r"^stages\.(\d+)\.blocks\.(.*)$", key)
        if m:
            key = f"stages.{2 * int(m.group(1))}.blocks.{m.group(2)}"
        m = re.match(r"^stages\.(\d+)\.downsample\.(.*)$", key)
        if m:
            key = f"stages.{2 * int(m.group(1)) - 1}.{m.group(2)}"
        key = re.sub(r"^conv_head\.", "avgpool_pre_head.1.", key)
        key = re.sub(r"^classifier\.", "head.", key)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def timm_reference(request):
    """timm fasternet_t0 (and a layer-scale variant) with random weights, built in a torch
    subprocess by the parity harness's script; cached in pytest's cache per spec, script and
    library versions."""
    script = os.path.join(REPO, "tests", "parity", "torch_reference.py")
    specs = [
        {"key": "t0", "lib": "timm", "name": "fasternet_t0", "input_size": [3, 64, 64],
         "batch": 2, "seed": 0, "kwargs": {}},
        {"key": "t0_ls", "lib": "timm", "name": "fasternet_t0", "input_size": [3, 64, 64],
         "batch": 2, "seed": 1, "kwargs": {"layer_scale_init_value": 1e-5}},
    ]
    python = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('torch'), "
                       "m.version('timm'))"], capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        pytest.skip("torch + timm are needed in the torch interpreter for this test "
                    "(pip install -e '.[parity]' or set PPNETS_TORCH_PYTHON)")
    with open(script, "rb") as f:
        digest = hashlib.sha1(f.read() + json.dumps([specs, probe.stdout]).encode()).hexdigest()
    out = str(request.config.cache.mkdir(f"ppnets_fasternet_ref_{digest[:16]}"))
    if not all(os.path.exists(os.path.join(out, s["key"] + ".npz")) for s in specs):
        with open(os.path.join(out, "specs.json"), "w") as f:
            json.dump(specs, f)
        subprocess.run([python, script, "--specs", os.path.join(out, "specs.json"),
                        "--out", out], check=True, env=env)
    for spec in specs:
        err = os.path.join(out, spec["key"] + ".error")
        if os.path.exists(err):
            pytest.fail(open(err).read())
    return out


def test_official_layout_loads_and_matches(timm_reference, tmp_path):
    from safetensors.numpy import load_file
    state = load_file(os.path.join(timm_reference, "t0.safetensors"))
    official = _timm_to_official(state)
    assert "avgpool_pre_head.1.weight" in official and "stages.6.blocks.1.mlp.3.weight" in official
    assert "stages.5.reduction.weight" in official and "head.bias" in official
    path = str(tmp_path / "t0_official.npz")
    np.savez(path, **official)
    data = np.load(os.path.join(timm_reference, "t0.npz"))

    model = ppnets.create_model("fasternet_t0")
    report = load_pretrained(model, path)
    assert report.layout == "official" and report.ok, str(report)
    _assert_parity(lambda: ppnets.create_model("fasternet_t0", pretrained=path), data,
                   "fasternet_t0 (official layout)")


def test_timm_layout_with_layer_scale(timm_reference):
    data = np.load(os.path.join(timm_reference, "t0_ls.npz"))
    path = os.path.join(timm_reference, "t0_ls.safetensors")
    _assert_parity(lambda: ppnets.create_model("fasternet_t0", layer_scale_init_value=1e-5,
                                               pretrained=path), data, "fasternet_t0 layer scale")


def _assert_parity(build, data, what):
    outs = []
    for model, dtype in ((float64_model(build), np.float64), (build(), np.float32)):
        model.eval()
        with paddle.no_grad():
            outs.append(model(paddle.to_tensor(data["input"].astype(dtype))).numpy())
    assert_parity(*outs, data["output"], data["output32"], what)


# ---- norm_layer='ln': the paper's BN vs LN ablation ------------------------------------------

def test_default_state_dict_unchanged_by_norm_keyword():
    # recorded from fasternet_t0(num_classes=10) before norm_layer existed
    paddle.seed(0)
    default = ppnets.create_model("fasternet_t0", num_classes=10)
    explicit = ppnets.create_model("fasternet_t0", num_classes=10, norm_layer="bn")
    assert len(default.state_dict()) == 114
    assert state_dict_signature(default) == state_dict_signature(explicit) == "ce47d3e1d138ce3f"
    with pytest.raises(ValueError, match="norm_layer"):
        FasterNet(embed_dim=16, depths=(1, 1), norm_layer="gn")


def _ln_model(seed=0, deploy=False):
    paddle.seed(seed)
    model = FasterNet(num_classes=5, embed_dim=16, depths=(1, 2), patch_size=2, act="gelu",
                      norm_layer="ln", deploy=deploy)
    rng = np.random.RandomState(seed)
    for layer in model.sublayers():  # non-trivial affine LN parameters
        if isinstance(layer, LayerNorm2d):
            layer.weight.set_value(rng.uniform(0.5, 1.5, layer.weight.shape).astype("float32"))
            layer.bias.set_value(rng.uniform(-0.2, 0.2, layer.bias.shape).astype("float32"))
    return model


def test_ln_replaces_every_bn():
    model = _ln_model()
    assert not [l for l in model.sublayers() if isinstance(l, paddle.nn.BatchNorm2D)]
    norms = [n for n, l in model.named_sublayers() if isinstance(l, LayerNorm2d)]
    # patch embedding, one merging layer, one MLP norm per block
    assert norms == ["patch_embed.norm", "stages.0.blocks.0.mlp_expand.norm",
                     "stages.1.downsample.norm", "stages.1.blocks.0.mlp_expand.norm",
                     "stages.1.blocks.1.mlp_expand.norm"]
    assert model.stages[1].blocks[0].mlp_expand.conv.bias is None
    # LN over channels at every pixel, computed by hand
    ln = model.patch_embed.norm
    x = _x([2, 16, 3, 5])
    v = x.numpy().astype(np.float64)
    ref = (v - v.mean(1, keepdims=True)) / np.sqrt(v.var(1, keepdims=True) + 1e-5)
    ref = ref * ln.weight.numpy().reshape(1, -1, 1, 1) + ln.bias.numpy().reshape(1, -1, 1, 1)
    with paddle.no_grad():
        np.testing.assert_allclose(ln(x).numpy(), ref, rtol=0, atol=1e-5)


def test_ln_forward_backward_reparameterize_and_deploy():
    model = _ln_model()
    x = _x([2, 3, 32, 32])
    out = model(x)
    assert out.shape == [2, 5]
    out.sum().backward()
    assert model.patch_embed.norm.weight.grad is not None
    assert model.stages[1].blocks[1].mlp_expand.conv.weight.grad is not None
    model.eval()
    with paddle.no_grad():
        before = model(x).numpy()
    keys = list(model.state_dict())
    with pytest.raises(RuntimeError, match="eval"):
        _ln_model().reparameterize()  # train mode refused
    model.reparameterize(pconv_forward="slicing")  # LN stays; the PConv switch still applies
    assert list(model.state_dict()) == keys
    assert len([l for l in model.sublayers() if isinstance(l, LayerNorm2d)]) == 5
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * max(1, np.abs(before).max()))
    deployed = _ln_model(seed=1, deploy=True)
    np.testing.assert_allclose(deploy_form_output(deployed, model.state_dict(), x),
                               after, rtol=0, atol=1e-6)
