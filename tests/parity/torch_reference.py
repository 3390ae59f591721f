"""Torch side of the parity tests. Runs in its own process: it must never share one with paddle.

    python tests/parity/torch_reference.py --specs specs.json --out DIR

``specs.json`` is a list of ``{"key", "lib" ("timm"|"torchvision"), "name", "input_size", "batch",
"seed", "kwargs"}``. For each spec the reference model is built with random weights, every
BatchNorm gets random running statistics and affine parameters, and every parameter that its
initialiser left constant (zero biases, layer-scale gammas at 1e-5, ...) gets random values — so a
wrong key map, a missed branch or a transposed weight cannot hide behind an identity-like init.
Writes ``DIR/<key>.safetensors`` (the state dict), ``DIR/<key>.npz`` (``input``, ``output`` of the
model in eval mode) or ``DIR/<key>.error`` (the traceback) per spec.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback


def _randomise(model, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed + 1)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                if module.running_mean is not None:
                    module.running_mean.copy_(rand(n, -0.2, 0.2))
                    module.running_var.copy_(rand(n, 0.5, 1.5))
                if module.affine:
                    module.weight.copy_(rand(n, 0.5, 1.5))
                    module.bias.copy_(rand(n, -0.2, 0.2))
        for name, param in model.named_parameters():
            if param.numel() > 1 and float(param.std()) == 0.0:
                base = float(param.flatten()[0])
                # e.g. layer scale: keep the sign/scale of the init but break the symmetry
                scale = max(abs(base), 0.1)
                param.copy_(base + rand(param.shape, -scale, scale) * 0.5)
            elif param.numel() == 1:
                param.copy_(param + rand(param.shape, 0.0, 0.1))


def _build(spec):
    import torch

    torch.manual_seed(spec.get("seed", 0))
    kwargs = dict(spec.get("kwargs") or {})
    if spec["lib"] == "timm":
        import timm
        model = timm.create_model(spec["name"], pretrained=False, **kwargs)
    elif spec["lib"] == "torchvision":
        import torchvision
        model = getattr(torchvision.models, spec["name"])(weights=None, **kwargs)
    else:
        raise ValueError(f"unknown reference library {spec['lib']!r}")
    return model


def run_spec(spec, out_dir: str) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    key = spec["key"]
    model = _build(spec)
    _randomise(model, spec.get("seed", 0))
    model.eval()
    gen = torch.Generator().manual_seed(spec.get("seed", 0) + 2)
    shape = [spec.get("batch", 2)] + list(spec["input_size"])
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        y = model(x)
    if isinstance(y, (tuple, list)):
        y = (y[0] + y[1]) / 2
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = os.path.join(out_dir, f"{key}.tmp.safetensors")
    save_file(state, tmp)
    os.replace(tmp, os.path.join(out_dir, f"{key}.safetensors"))
    tmp = os.path.join(out_dir, f"{key}.tmp.npz")
    np.savez(tmp, input=x.numpy(), output=y.numpy())
    os.replace(tmp, os.path.join(out_dir, f"{key}.npz"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if "paddle" in sys.modules:
        raise RuntimeError("torch_reference.py must not run in a process that imported paddle")
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with open(args.specs) as f:
        specs = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    for spec in specs:
        try:
            run_spec(spec, args.out)
        except Exception:  # one broken reference must not hide the others' results
            with open(os.path.join(args.out, f"{spec['key']}.error"), "w") as f:
                f.write(traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main())
