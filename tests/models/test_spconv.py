"""SPConv: the operator, its BN folding, the published counts and parity with the official logic.

Published figures are copied here from the paper (arXiv:2006.12085 Table 1, as strings so their
printed precision is kept) and checked against closed-form counts written from the paper's
description, not against our own profiler alone. Parity: tests/parity/spconv_ref.py re-types the
official ``SPConv_3x3`` (github.com/qiulinzhang/SPConv.pytorch, code/resnet_sp.py) in torch, in
a subprocess; our models load its weights (official key names for the ResNets) and must give
its outputs.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.analysis import profile_model
from ppnets.convert import load_pretrained
from ppnets.models.spconv import SPConv3x3, SPConvBN
from tests.conftest import (
    REPO,
    assert_parity,
    assert_reparameterize_keeps_output,
    deploy_form_output,
    float64_model,
    randomize_bn,
)

ALPHAS = (1 / 2, 1 / 4, 1 / 8, 1 / 16)
TORCH_PYTHON = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)
REF_SCRIPT = os.path.join(REPO, "tests", "parity", "spconv_ref.py")


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


# ---------------------------------------------------------------------------------------------
# The operator


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("stride", [1, 2])
def test_operator_shapes(stride, alpha):
    op = SPConv3x3(64, 96, stride=stride, alpha=alpha)
    rep = int(64 * alpha)
    assert (op.rep_chs, op.red_chs) == (rep, 64 - rep)
    assert op.gwc.weight.shape == [96, rep // 2, 3, 3]  # 2 groups, as the official code
    assert op.pwc.weight.shape == [96, rep, 1, 1]
    assert op.conv1x1.weight.shape == [96, 64 - rep, 1, 1] and op.conv1x1.bias is not None
    op.eval()
    assert op(_x([2, 64, 16, 16])).shape == [2, 96, 16 // stride, 16 // stride]
    # odd sizes: GWC (stride 2, pad 1) and the 2x2 average pool (ceil mode) agree
    side = 8 if stride == 2 else 15
    assert op(_x([1, 64, 15, 15])).shape == [1, 96, side, side]


def test_fusion_weights_are_a_softmax_of_branch_means():
    rng = np.random.RandomState(0)
    a = rng.standard_normal([3, 8, 5, 5]).astype("float32") * 2
    b = rng.standard_normal([3, 8, 5, 5]).astype("float32")
    w_a, w_b = SPConv3x3.fusion_weights(paddle.to_tensor(a), paddle.to_tensor(b))
    w_a, w_b = w_a.numpy(), w_b.numpy()
    assert w_a.shape == w_b.shape == (3, 8, 1, 1)
    np.testing.assert_allclose(w_a + w_b, 1.0, rtol=0, atol=1e-6)
    ma, mb = a.mean(axis=(2, 3)), b.mean(axis=(2, 3))
    expected = np.exp(ma) / (np.exp(ma) + np.exp(mb))
    np.testing.assert_allclose(w_a[:, :, 0, 0], expected, rtol=1e-5, atol=1e-6)


def test_operator_output_is_the_weighted_sum_of_branches():
    op = SPConv3x3(32, 32, alpha=1 / 4)
    randomize_bn(op)
    op.eval()
    x = _x([2, 32, 8, 8])
    rep, red = op.branches(x)
    w_rep, w_red = op.fusion_weights(rep, red)
    np.testing.assert_allclose(op(x).numpy(), (rep * w_rep + red * w_red).numpy(), atol=1e-6)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("stride", [1, 2])
def test_operator_reparameterize_is_exact(stride, alpha):
    paddle.seed(1)
    op = SPConvBN(64, 64, stride=stride, act="relu", alpha=alpha)
    randomize_bn(op, seed=3)
    op.eval()
    x = _x([2, 64, 12, 12], seed=1)
    with paddle.no_grad():
        before = op(x).numpy()
    op.reparameterize()
    assert isinstance(op.spconv.bn1, paddle.nn.Identity)
    assert isinstance(op.spconv.bn2, paddle.nn.Identity)
    assert op.spconv.gwc.bias is not None and op.spconv.pwc.bias is None
    with paddle.no_grad():
        after = op(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * max(1.0, np.abs(before).max()))
    op.reparameterize()  # idempotent
    with paddle.no_grad():
        np.testing.assert_array_equal(op(x).numpy(), after)
    # the deploy structure takes the folded weights as they are
    deployed = SPConvBN(64, 64, stride=stride, act="relu", alpha=alpha, deploy=True)
    np.testing.assert_array_equal(deploy_form_output(deployed, op.state_dict(), x), after)


@pytest.mark.parametrize("name", ["spconv_resnet20_cifar_a2", "spconv_vgg16_cifar_a16"])
def test_model_reparameterize_folds_the_internal_bns(name):
    paddle.seed(0)
    model = ppnets.create_model(name, num_classes=10)
    randomize_bn(model, seed=5)
    model.eval()
    x = _x([2, 3, 32, 32], seed=2)
    assert_reparameterize_keeps_output(model, x)
    ops = [m for m in model.sublayers() if isinstance(m, SPConvBN)]
    assert ops and all(isinstance(m.spconv.bn1, paddle.nn.Identity) for m in ops)
    # what stays: one BN after each SPConv (official blocks), nothing else
    bn_types = (paddle.nn.BatchNorm2D, paddle.nn.BatchNorm1D)
    bns = [m for m in model.sublayers() if isinstance(m, bn_types)]
    assert len(bns) == len(ops)


def test_invalid_splits_are_rejected():
    with pytest.raises(ValueError, match="gwc_groups"):
        SPConv3x3(16, 16, alpha=1 / 16)  # one representative channel cannot feed 2 groups
    with pytest.raises(ValueError, match="at least one"):
        SPConv3x3(16, 16, alpha=1.0)
    with pytest.raises(ValueError, match="stride"):
        SPConv3x3(16, 16, stride=3)


def test_options_gwc_groups_and_extra_bn():
    op = SPConvBN(32, 32, alpha=1 / 2, gwc_groups=4, extra_bn=False)
    assert op.spconv.gwc.weight.shape == [32, 4, 3, 3]
    assert isinstance(op.bn, paddle.nn.Identity)
    model = ppnets.create_model("spconv_resnet20_cifar_a2", num_classes=10, extra_bn=False)
    ref = ppnets.create_model("spconv_resnet20_cifar_a2", num_classes=10)
    # 18 SPConvs, each without its 2 * C_out extra-BN parameters (16/32/64 channels x 6)
    assert _n_params(ref) - _n_params(model) == 2 * 6 * (16 + 32 + 64)


def _n_params(model):
    return sum(int(np.prod(p.shape)) for k, p in model.state_dict().items()
               if not k.endswith(("_mean", "_variance")))


# ---------------------------------------------------------------------------------------------
# Published counts (paper Table 1; "FLOPs" there are MACs)

PUBLISHED = {  # name: (params in M as printed, MACs in M)
    "resnet20_cifar": ("0.27", 41.62),
    "spconv_resnet20_cifar_a2": ("0.10", 17.91),
    "spconv_resnet20_cifar_a4": ("0.071", 12.89),
    "vgg16_cifar": ("16.62", 349.51),
    "spconv_vgg16_cifar_a2": ("5.6", 118.27),
    "spconv_vgg16_cifar_a4": ("3.77", 79.34),
    "spconv_vgg16_cifar_a8": ("2.85", 59.87),
    "spconv_vgg16_cifar_a16": ("2.39", 55.14),
}
VGG16 = [(3, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16), (128, 256, 8), (256, 256, 8),
         (256, 256, 8), (256, 512, 4), (512, 512, 4), (512, 512, 4), (512, 512, 2), (512, 512, 2),
         (512, 512, 2)]  # (C_in, C_out, output side) of the 13 convs at 32x32


def _resnet20_convs():
    convs, cin = [], 16
    for cout, side in ((16, 32), (32, 16), (64, 8)):
        for b in range(3):
            convs += [(cin, cout, side), (cout, cout, side)]
            cin = cout
    return convs


def _formula(name, num_classes=10):
    """(params, MACs) from the paper's description: SPConv at alpha has GWC (2 groups) + PWC on
    the alpha part, a biased 1x1 on the rest, 2 BNs inside and one BN after; every conv computes
    at its output resolution (stride-2 PWC/1x1 see a pooled input)."""
    alpha = None if not name.startswith("spconv") else 1 / int(name.rsplit("_a", 1)[1])
    params = macs = 0

    def conv3x3(cin, cout, side, splittable=True):
        nonlocal params, macs
        if alpha is None or not splittable:
            params += 9 * cin * cout + 2 * cout
            macs += 9 * cin * cout * side * side
            return
        rep = int(cin * alpha)
        weights = 9 * rep // 2 * cout + rep * cout + (cin - rep) * cout
        params += weights + cout + 3 * 2 * cout
        macs += weights * side * side

    if "resnet20" in name:
        conv3x3(3, 16, 32, splittable=False)
        for cin, cout, side in _resnet20_convs():
            conv3x3(cin, cout, side)
        for cin, cout, side in ((16, 32, 16), (32, 64, 8)):  # option-B projections
            params += cin * cout + 2 * cout
            macs += cin * cout * side * side
        params += 64 * num_classes + num_classes
        macs += 64 * num_classes
    else:
        for i, (cin, cout, side) in enumerate(VGG16):
            conv3x3(cin, cout, side, splittable=i > 0)
        params += 512 * 512 + 512 + 2 * 512 + 512 * num_classes + num_classes
        macs += 512 * 512 + 512 * num_classes
    return params, macs


def _truncate(value, digits):
    return math.floor(value * 10 ** digits + 1e-9) / 10 ** digits


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_formula_and_paper(name):
    model = ppnets.create_model(name, num_classes=10)
    model.eval()
    prof = profile_model(model, input_size=(3, 32, 32))
    params, macs = _formula(name)
    assert (prof.params, prof.macs) == (params, macs)

    published, published_macs = PUBLISHED[name]
    info = ppnets.model_info(name)
    assert info["params_m"] == float(published)
    assert abs(info["macs_g"] - published_macs / 1e3) < 1e-12
    digits = len(published.split(".")[1])
    if name == "vgg16_cifar":
        # The paper's baseline = VGG-16 with a 1x1 conv beside each of the 12 later 3x3 convs.
        extra = sum(cin * cout for cin, cout, _ in VGG16[1:])
        extra_macs = sum(cin * cout * side * side for cin, cout, side in VGG16[1:])
        assert _truncate((params + extra) / 1e6, digits) == float(published)
        assert abs((macs + extra_macs) / 1e6 - published_macs) / published_macs < 0.01
    else:
        # Every other printed count is ours truncated to the printed digits.
        assert _truncate(params / 1e6, digits) == float(published), (params, published)


def test_alpha_changes_macs_as_the_paper():
    """The paper's MACs differ between alphas by exactly what the formula predicts (its
    profiler's extra BN/pool operations cancel): VGG 1/2 -> 1/4 -> 1/8, ResNet-20 1/2 -> 1/4."""
    for a, b in [("spconv_vgg16_cifar_a2", "spconv_vgg16_cifar_a4"),
                 ("spconv_vgg16_cifar_a4", "spconv_vgg16_cifar_a8"),
                 ("spconv_resnet20_cifar_a2", "spconv_resnet20_cifar_a4")]:
        ours = (_formula(a)[1] - _formula(b)[1]) / 1e6
        paper = PUBLISHED[a][1] - PUBLISHED[b][1]
        assert abs(ours - paper) < 0.02, (a, b, ours, paper)


# ---------------------------------------------------------------------------------------------
# Parity with the official operator re-typed in torch

OP_CASES = [(32, 32, 1, 1 / 2), (32, 32, 1, 1 / 4), (32, 32, 1, 1 / 8), (32, 64, 2, 1 / 2),
            (32, 64, 2, 1 / 4), (32, 64, 2, 1 / 8)]
MODEL_CASES = {  # our name: (reference net, kwargs, input shape)
    "resnet20_cifar": ("resnet20", {}, [2, 3, 32, 32]),
    "spconv_resnet20_cifar_a4": ("spconv_resnet20", {"ratio": 0.25}, [2, 3, 32, 32]),
    "spconv_vgg16_cifar_a8": ("spconv_vgg16", {"ratio": 0.125}, [2, 3, 32, 32]),
    "spconv_resnet18": ("spconv_resnet18", {"num_classes": 10}, [1, 3, 64, 64]),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    probe = subprocess.run([TORCH_PYTHON, "-c", "import torch, safetensors"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"SPConv parity needs torch and safetensors in {TORCH_PYTHON} "
                    f"(pip install -e '.[parity]'): {probe.stderr.strip().splitlines()[-1:]}")
    out = tmp_path_factory.mktemp("spconv_ref")
    specs = [{"key": f"op{i}", "net": "spconv_op", "seed": i, "input_shape": [2, cin, 16, 16],
              "kwargs": {"inplanes": cin, "outplanes": cout, "stride": s, "ratio": a}}
             for i, (cin, cout, s, a) in enumerate(OP_CASES)]
    specs += [{"key": name, "net": net, "kwargs": kw, "input_shape": shape, "seed": 0}
              for name, (net, kw, shape) in MODEL_CASES.items()]
    (out / "specs.json").write_text(json.dumps(specs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([TORCH_PYTHON, REF_SCRIPT, "--specs", str(out / "specs.json"), "--out",
                    str(out)], check=True, env=env)
    return out


def _parity(build, weights, data, what):
    """Our module built by ``build()`` in float32 and float64 with the reference's weights
    against the reference's outputs (tests.conftest.assert_parity), before and after
    ``reparameterize()``; returns the float32 module's load report."""
    model32 = build()
    report = load_pretrained(model32, weights)
    model64 = float64_model(build)
    load_pretrained(model64, weights)
    x = data["input"]

    def run():
        with paddle.no_grad():
            return (model64(paddle.to_tensor(x.astype(np.float64))).numpy(),
                    model32(paddle.to_tensor(x)).numpy())

    for model in (model32, model64):
        model.eval()
    assert_parity(*run(), data["output"], data["output32"], what)
    for model in (model32, model64):
        model.reparameterize()
    assert_parity(*run(), data["output"], data["output32"], f"{what} reparameterized")
    return report


@pytest.mark.parametrize("case", range(len(OP_CASES)))
def test_operator_matches_official(case, reference):
    cin, cout, stride, alpha = OP_CASES[case]
    report = _parity(lambda: SPConv3x3(cin, cout, stride=stride, alpha=alpha),
                     str(reference / f"op{case}.safetensors"), np.load(reference / f"op{case}.npz"),
                     f"SPConv {OP_CASES[case]}")
    assert report.ok, str(report)


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_matches_official_logic(name, reference):
    report = _parity(lambda: ppnets.create_model(name, num_classes=10),
                     str(reference / f"{name}.safetensors"), np.load(reference / f"{name}.npz"),
                     name)
    expected_layout = "identity" if "vgg" in name else "official"
    assert report.layout == expected_layout and report.ok, str(report)
