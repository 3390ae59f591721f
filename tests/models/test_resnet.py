"""ResNet: parity with timm (converted weights), exact parameter counts, the pluggable 3x3 conv.

The timm side runs in a subprocess (never in this process): it builds
``timm.create_model(name, pretrained=False)``, randomises every BN's statistics and affine
parameters (seeded) and writes the state dict (.safetensors, float64) and the eval outputs for a
fixed 2x3x64x64 input in float32 and float64 (.npz).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.convert import load_pretrained
from ppnets.models.resnet import ResNet, conv3x3_bn
from tests.conftest import assert_parity, float64_model, randomize_bn

TORCH_PYTHON = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)
PARITY = ("resnet18", "resnet50")

# Runs in the torch subprocess (never import paddle there). Weights are saved in float64 so both
# sides can also run the exact same network in float64, where float32 rounding (which, for a
# randomised ResNet-50, is itself ~3e-4 on timm's own float32 vs float64 logits) drops out.
TORCH_SCRIPT = r"""
import sys, numpy as np, torch, timm
from safetensors.torch import save_file
out = sys.argv[2]
for name in sys.argv[1].split(","):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        y32 = model(x).numpy()
        model = model.double()
        y64 = model(x.double()).numpy()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{out}/{name}.safetensors")
    np.savez(f"{out}/{name}.npz", input=x.numpy(), y32=y32, y64=y64)
"""


@pytest.fixture(scope="module")
def timm_outputs(tmp_path_factory):
    probe = subprocess.run([TORCH_PYTHON, "-c", "import torch, timm, safetensors"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"timm parity needs torch, timm and safetensors in {TORCH_PYTHON} "
                    f"(pip install -e '.[parity]'): {probe.stderr.strip().splitlines()[-1:]}")
    out = tmp_path_factory.mktemp("timm_resnet")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([TORCH_PYTHON, "-c", TORCH_SCRIPT, ",".join(PARITY), str(out)], check=True,
                   env=env)
    return out


@pytest.mark.parametrize("name", PARITY)
def test_matches_timm(name, timm_outputs):
    """Float64 on both sides (the architecture check, to rounding) and float32 held to timm's
    own float32 rounding (tests.conftest.assert_parity), before and after reparameterize()."""
    data = np.load(timm_outputs / f"{name}.npz")
    weights = str(timm_outputs / f"{name}.safetensors")
    model32 = ppnets.create_model(name)
    report = load_pretrained(model32, weights)
    assert report.layout == "timm" and report.ok, str(report)
    model64 = float64_model(lambda: ppnets.create_model(name, pretrained=weights))
    x = data["input"]

    def run():
        with paddle.no_grad():
            return (model64(paddle.to_tensor(x.astype(np.float64))).numpy(),
                    model32(paddle.to_tensor(x)).numpy())

    for model in (model32, model64):
        model.eval()
    assert_parity(*run(), data["y64"], data["y32"], name)
    for model in (model32, model64):
        model.reparameterize()
        assert not any(isinstance(layer, paddle.nn.BatchNorm2D) for layer in model.sublayers()), \
            "reparameterize() must fold every BN of a ResNet"
    assert_parity(*run(), data["y64"], data["y32"], f"{name} after reparameterize()")


# Exact counts published with the torchvision weights (timm's are the same architecture).
@pytest.mark.parametrize("name,params", [("resnet18", 11_689_512), ("resnet34", 21_797_672),
                                         ("resnet50", 25_557_032)])
def test_param_count_exact(name, params):
    model = ppnets.create_model(name)
    count = sum(int(np.prod(p.shape)) for k, p in model.state_dict().items()
                if not k.endswith(("_mean", "_variance")))
    assert count == params


def test_conv3x3_layer_is_pluggable():
    calls = []

    def factory(in_chs, out_chs, stride=1, act=None, deploy=False):
        calls.append((in_chs, out_chs, stride, act))
        return conv3x3_bn(in_chs, out_chs, stride=stride, act=act, deploy=deploy)

    model = ResNet(layers=(1, 1), channels=(8, 16), stem_width=8, stem_type="cifar",
                   num_classes=3, conv3x3_layer=factory)
    # one basic block per stage: conv1 (stride, relu) and conv2 (stride 1, no act)
    assert calls == [(8, 8, 1, "relu"), (8, 8, 1, None), (8, 16, 2, "relu"), (16, 16, 1, None)]
    model.eval()
    assert model(paddle.randn([1, 3, 16, 16])).shape == [1, 3]


def test_bottleneck_uses_factory_for_its_3x3():
    calls = []

    def factory(in_chs, out_chs, stride=1, act=None, deploy=False):
        calls.append((in_chs, out_chs, stride))
        return conv3x3_bn(in_chs, out_chs, stride=stride, act=act, deploy=deploy)

    ResNet(block="bottleneck", layers=(1, 1), channels=(4, 8), stem_width=8,
           conv3x3_layer=factory)
    assert calls == [(4, 4, 1), (8, 8, 2)]


def test_in_chans_drop_path_and_deploy_build():
    paddle.seed(0)
    model = ppnets.create_model("resnet18", num_classes=5, in_chans=1, drop_path_rate=0.1)
    assert model.conv1.conv.weight.shape == [64, 1, 7, 7]
    rates = [blk.drop_path.drop_prob for s in model.stage_names for blk in getattr(model, s)
             if isinstance(blk.drop_path, ppnets.layers.DropPath)]
    # timm: linear in the block index, 0 for the first block (no DropPath layer), 0.1 for the last
    assert len(rates) == 7 and abs(rates[-1] - 0.1) < 1e-9 and abs(rates[0] - 0.1 / 7) < 1e-9
    randomize_bn(model)
    model.eval()
    x = paddle.randn([2, 1, 64, 64])
    with paddle.no_grad():
        before = model(x).numpy()
    model.reparameterize()
    deployed = ppnets.create_model("resnet18", num_classes=5, in_chans=1, deploy=True)
    missing, unexpected = deployed.set_state_dict(model.state_dict())
    assert not missing and not unexpected
    deployed.eval()
    with paddle.no_grad():
        after = deployed(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * max(1.0, np.abs(before).max()))
