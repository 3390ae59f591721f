"""Torch side of the SPConv checks: the official operator re-typed, in its own process.

The official repository (github.com/qiulinzhang/SPConv.pytorch, ``code/resnet_sp.py``) ships the
``SPConv_3x3`` operator and ImageNet ResNets but no CIFAR code and no weights, so the reference
here is that operator re-typed in torch, in the official module names, plus the networks of the
paper built around it:

* ``spconv_op``: one ``SPConv_3x3`` (``gwc``/``pwc``/``conv1x1``/``bn1``/``bn2``);
* ``resnet20`` / ``spconv_resnet20``: CIFAR ResNet-20, 1x1 conv + BN shortcuts, in the official
  ResNet naming (``conv1``/``bn1``/``layerN.M.conv1``/``bn1``/``downsample.0``/``fc``);
* ``spconv_resnet18``: the official ``BasicBlock`` with SPConv, ResNet-18 layout;
* ``vgg16`` / ``spconv_vgg16``: the CIFAR VGG-16 (Li et al.), named like ppnets' VGGCifar.

Never import paddle here. Usage::

    python tests/parity/spconv_ref.py --specs specs.json --out DIR   # weights + outputs
    python tests/parity/spconv_ref.py --count                        # params / MACs table

A spec is ``{"key", "net", "kwargs", "input_shape", "seed"}``; the run writes
``DIR/<key>.safetensors`` (state dict after randomising every BN and every bias) and
``DIR/<key>.npz`` (``input``; eval-mode ``output`` in float64 and ``output32`` in float32).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class SPConv3x3(nn.Module):
    """The official ``SPConv_3x3`` (revision with the redundant part pooled when striding)."""

    def __init__(self, inplanes, outplanes, stride=1, ratio=0.5, groups=2):
        super().__init__()
        self.c3 = int(inplanes * ratio)
        self.c1 = inplanes - self.c3
        self.stride, self.outplanes = stride, outplanes
        self.gwc = nn.Conv2d(self.c3, outplanes, 3, stride=stride, padding=1, groups=groups,
                             bias=False)
        self.pwc = nn.Conv2d(self.c3, outplanes, 1, bias=False)
        self.conv1x1 = nn.Conv2d(self.c1, outplanes, 1)
        self.avgpool_s2_1 = nn.AvgPool2d(2, 2)
        self.avgpool_s2_3 = nn.AvgPool2d(2, 2)
        self.avgpool_add_1 = nn.AdaptiveAvgPool2d(1)
        self.avgpool_add_3 = nn.AdaptiveAvgPool2d(1)
        self.bn1 = nn.BatchNorm2d(outplanes)
        self.bn2 = nn.BatchNorm2d(outplanes)

    def forward(self, x):
        b = x.shape[0]
        x3, x1 = x[:, :self.c3], x[:, self.c3:]
        gwc = self.gwc(x3)
        if self.stride == 2:
            x3 = self.avgpool_s2_3(x3)
        out3 = self.bn1(gwc + self.pwc(x3))
        r3 = self.avgpool_add_3(out3).squeeze(3).squeeze(2)
        if self.stride == 2:
            x1 = self.avgpool_s2_1(x1)
        out1 = self.bn2(self.conv1x1(x1))
        r1 = self.avgpool_add_1(out1).squeeze(3).squeeze(2)
        w = torch.softmax(torch.stack((r3, r1), 2), dim=2)
        return (out1 * w[:, :, 1].view(b, self.outplanes, 1, 1)
                + out3 * w[:, :, 0].view(b, self.outplanes, 1, 1))


def _conv3x3(cin, cout, stride, ratio):
    if ratio is None:
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    return SPConv3x3(cin, cout, stride, ratio)


class BasicBlock(nn.Module):
    """The official BasicBlock: conv1 (SPConv or 3x3) -> bn1 -> relu -> conv2 -> bn2, + shortcut."""

    def __init__(self, cin, cout, stride, ratio):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride, ratio)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout, 1, ratio)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, layers, channels, stem, ratio=None, num_classes=10):
        super().__init__()
        width = channels[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, (n, c) in enumerate(zip(layers, channels)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, c, 2 if (i > 0 and j == 0) else 1, ratio))
                cin = c
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.n_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ConvBN(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SPConvBN(nn.Module):
    def __init__(self, cin, cout, ratio):
        super().__init__()
        self.spconv = SPConv3x3(cin, cout, 1, ratio)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.spconv(x)))


class Head(nn.Module):
    def __init__(self, cin, hidden, num_classes):
        super().__init__()
        self.fc1 = nn.Linear(cin, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.fc1(torch.flatten(x, 1)))))


class VGG16(nn.Module):
    CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, ratio=None, num_classes=10):
        super().__init__()
        layers, cin = [], 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            vanilla = ratio is None or not layers
            layers.append(ConvBN(cin, v) if vanilla else SPConvBN(cin, v, ratio))
            cin = v
        self.features = nn.Sequential(*layers)
        self.head = Head(512, 512, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def build(net: str, kwargs: dict) -> nn.Module:
    kwargs = dict(kwargs)
    if net == "spconv_op":
        return SPConv3x3(**kwargs)
    if net in ("resnet20", "spconv_resnet20"):
        return ResNet((3, 3, 3), (16, 32, 64), "cifar", ratio=kwargs.pop("ratio", None), **kwargs)
    if net == "spconv_resnet18":
        return ResNet((2, 2, 2, 2), (64, 128, 256, 512), "imagenet", ratio=0.5, **kwargs)
    if net in ("vgg16", "spconv_vgg16"):
        return VGG16(**kwargs)
    raise ValueError(f"unknown net {net!r}")


def randomise(model: nn.Module, seed: int) -> None:
    """Random BN statistics/affine and biases, so that folding and key mapping are exercised."""
    gen = torch.Generator().manual_seed(seed + 1)

    def rand(n, lo, hi):
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(rand(n, -0.2, 0.2))
                m.running_var.copy_(rand(n, 0.5, 1.5))
                m.weight.copy_(rand(n, 0.5, 1.5))
                m.bias.copy_(rand(n, -0.2, 0.2))
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(rand(m.bias.shape, -0.2, 0.2))


def run_spec(spec: dict, out_dir: str) -> None:
    import numpy as np
    from safetensors.torch import save_file

    torch.manual_seed(spec.get("seed", 0))
    model = build(spec["net"], spec.get("kwargs", {}))
    randomise(model, spec.get("seed", 0))
    model.eval()
    gen = torch.Generator().manual_seed(spec.get("seed", 0) + 2)
    x = torch.randn(spec["input_shape"], generator=gen)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    # float32 and float64 outputs of the same float32 weights (see torch_reference.py)
    with torch.no_grad():
        y32 = model(x)
        y = model.double()(x.double())
    key = spec["key"]
    tmp = os.path.join(out_dir, f"{key}.tmp.safetensors")
    save_file(state, tmp)
    os.replace(tmp, os.path.join(out_dir, f"{key}.safetensors"))
    tmp = os.path.join(out_dir, f"{key}.tmp.npz")
    np.savez(tmp, input=x.numpy(), output=y.numpy(), output32=y32.numpy())
    os.replace(tmp, os.path.join(out_dir, f"{key}.npz"))


def conv_linear_macs(model: nn.Module, x) -> int:
    """MACs of convolutions and linear layers only (ppnets.analysis' convention)."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * mod.weight[0].numel()
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


COUNT_NETS = [("resnet20", {}), ("spconv_resnet20", {"ratio": 1 / 2}),
              ("spconv_resnet20", {"ratio": 1 / 4}), ("vgg16", {})] + \
             [("spconv_vgg16", {"ratio": 1 / a}) for a in (2, 4, 8, 16)]


def count_table() -> None:
    """Parameters and conv+linear MACs at 1x3x32x32 (and thop's count when thop is importable,
    the tool behind the notes in ppnets/models/spconv.py)."""
    try:
        from thop import profile
    except ImportError:
        profile = None
    x = torch.randn(1, 3, 32, 32)
    for net, kw in COUNT_NETS:
        model = build(net, kw).eval()
        params = sum(p.numel() for p in model.parameters())
        line = f"{net:16s} {json.dumps(kw):16s} params {params / 1e6:.6f} M  " \
               f"conv+linear MACs {conv_linear_macs(model, x) / 1e6:.3f} M"
        if profile is not None:
            macs, _ = profile(model, inputs=(x,), verbose=False)
            line += f"  thop {macs / 1e6:.3f} M"
        print(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs")
    parser.add_argument("--out")
    parser.add_argument("--count", action="store_true")
    args = parser.parse_args(argv)
    if "paddle" in sys.modules:
        raise RuntimeError("spconv_ref.py must not run in a process that imported paddle")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.count:
        count_table()
        return 0
    with open(args.specs) as f:
        specs = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    for spec in specs:
        run_spec(spec, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
