"""Torch side of the parity tests. Runs in its own process: it must never share one with paddle.

    python tests/parity/torch_reference.py --specs specs.json --out DIR

``specs.json`` is a list of ``{"key", "lib", "name", "input_size", "batch", "seed", "kwargs"}``
and optionally ``"count_input_size"``;
lib is "timm", "torchvision" or "timm_repvgg_groups" (a RepVGG variant timm does not register,
built from timm's own block config, see ``_build``). For each spec the reference model is built
with random weights, every
BatchNorm gets random affine parameters and running statistics calibrated on a random batch then
perturbed, and every parameter that its initialiser left constant (zero biases, layer-scale gammas at 1e-5, ...) gets random values — so a
wrong key map, a missed branch or a transposed weight cannot hide behind an identity-like init.
Writes ``DIR/<key>.safetensors`` (the state dict), ``DIR/<key>.npz`` (``input``; ``output``, the
model's eval-mode output computed in float64; ``output32``, the same in float32) or
``DIR/<key>.error`` (the traceback) per spec. With ``count_input_size`` it also writes
``DIR/<key>.counts.json``: the reference's parameter count and MACs at that input size (batch 1),
in the train form and after ``timm.utils.model.reparameterize_model`` (``deploy``) -- counted by
``torch.utils.flop_counter`` (FLOPs / 2: convolutions, matrix products and attention, the
ppnets.analysis convention), with timm's fused attention off (``TIMM_FUSED_ATTN=0``) because the
counter does not see the CPU kernel of ``scaled_dot_product_attention``.

Feature maps (libs in ``FEATURE_LIBS``): timm's ``features_only=True`` model of the same variant
(``timm.create_model(name, features_only=True)``; for ``timm_repvgg_groups`` the wrapper timm's
ByobNet factory uses, ``FeatureListNet(flatten_sequential=True)``) given the same weights (the
full model's state dict, mapped onto the wrapper's names: ``FeatureListNet`` flattens
``stages.0`` to ``stages_0``, ``FeatureGetterNet`` nests the model under ``model.``), run on the
same input in float32 and float64: ``DIR/<key>.features.npz`` (``f<i>``: map i in float64,
``f<i>_32``: in float32) and ``DIR/<key>.features.json`` (``feature_info`` of the full model,
``features_only_info`` and ``out_indices`` of the features-only one), or
``DIR/<key>.features.error``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback


def _randomise(model, seed: int, input_size) -> None:
    """Random BN affine parameters and symmetry-breaking values for constant-initialised
    parameters, then BN running statistics calibrated on a random batch (so activations stay
    normalised through deep plain nets and logits stay of order 1) and perturbed away from it."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            if bn.affine:
                bn.weight.copy_(rand(bn.num_features, 0.5, 1.5))
                bn.bias.copy_(rand(bn.num_features, -0.2, 0.2))
        bn_params = {id(p) for bn in bns for p in bn.parameters()}
        for param in model.parameters():
            if id(param) in bn_params:
                continue
            if param.numel() > 1 and float(param.std()) == 0.0:
                base = float(param.flatten()[0])
                # e.g. layer scale at 1e-5 or zero biases: keep the init's scale, break symmetry
                scale = max(abs(base), 0.1)
                param.copy_(base + rand(param.shape, -scale, scale) * 0.5)
            elif param.numel() == 1:
                param.copy_(param + rand(param.shape, 0.0, 0.1))

        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.momentum = 1.0  # running statistics := this batch's statistics
        model.train()
        model(torch.randn([8] + list(input_size), generator=gen))
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
            if bn.track_running_stats and bn.running_mean is not None:
                # A channel that is (nearly) constant on the calibration batch would get a
                # variance ~0 and amplify rounding by orders of magnitude in eval mode: floor it
                # at 5% of the layer's median variance.
                floor = 0.05 * float(bn.running_var.median().clamp_min(1e-6))
                bn.running_var.clamp_(min=floor)
                std = bn.running_var.sqrt()
                bn.running_mean.add_(rand(bn.num_features, -0.1, 0.1) * std)
                bn.running_var.mul_(rand(bn.num_features, 0.8, 1.25))


def _count(model, input_size) -> dict:
    """Parameters (BN running statistics are buffers, not counted) and MACs at batch 1."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros([1] + list(input_size)))
    return {"params": int(params), "macs": int(counter.get_total_flops()) // 2}


def count_spec(spec, out_dir: str) -> None:
    import copy

    from timm.utils.model import reparameterize_model

    model = _build(spec).eval()
    counts = _count(model, spec["count_input_size"])
    counts["deploy"] = _count(reparameterize_model(copy.deepcopy(model)),
                              spec["count_input_size"])
    counts["input_size"] = list(spec["count_input_size"])
    tmp = os.path.join(out_dir, f"{spec['key']}.tmp.counts.json")
    with open(tmp, "w") as f:
        json.dump(counts, f)
    os.replace(tmp, os.path.join(out_dir, f"{spec['key']}.counts.json"))


def _build(spec):
    import torch

    torch.manual_seed(spec.get("seed", 0))
    kwargs = dict(spec.get("kwargs") or {})
    if spec["lib"] == "timm":
        import timm
        model = timm.create_model(spec["name"], pretrained=False, **kwargs)
    elif spec["lib"] == "timm_repvgg_groups":
        # A RepVGG that timm does not register (the official g2 models): timm's own RepVGG block
        # config with the depths and widths of the named timm sibling, at another group count.
        from dataclasses import replace
        from timm.models.byobnet import ByobNet, _rep_vgg_bcfg, model_cfgs
        base = model_cfgs[spec["name"]]
        depths = tuple(b.d for b in base.blocks)
        widths = tuple(b.c / c for b, c in zip(base.blocks, (64, 128, 256, 512)))
        cfg = replace(base, blocks=_rep_vgg_bcfg(d=depths, wf=widths, groups=kwargs.pop("groups")))
        model = ByobNet(cfg, **kwargs)
    elif spec["lib"] == "torchvision":
        import torchvision
        model = getattr(torchvision.models, spec["name"])(weights=None, **kwargs)
    else:
        raise ValueError(f"unknown reference library {spec['lib']!r}")
    return model


# references whose features_only model the parity tests compare (tests/parity/test_features.py)
FEATURE_LIBS = ("timm", "timm_repvgg_groups")


def _build_features(spec):
    """timm's features-only model of the spec, with fresh weights."""
    import torch

    torch.manual_seed(spec.get("seed", 0))
    if spec["lib"] == "timm":
        import timm
        return timm.create_model(spec["name"], pretrained=False, features_only=True,
                                 **(spec.get("kwargs") or {}))
    from timm.models._features import FeatureListNet
    # timm's _create_byobnet: feature_cfg=dict(flatten_sequential=True), default out_indices
    return FeatureListNet(_build(spec), out_indices=(0, 1, 2, 3, 4), flatten_sequential=True)


def _full_model_key(key: str, full_keys, flattened) -> str:
    """The full model's name of a features-only model's state-dict key."""
    if key in full_keys:           # EfficientNetFeatures / MobileNetV3Features, hook nets
        return key
    for prefix in ("model.", "body."):  # FeatureGetterNet, FeatureHookNet(no_rewrite)
        if key.startswith(prefix) and key[len(prefix):] in full_keys:
            return key[len(prefix):]
    head, _, rest = key.partition(".")
    if head in flattened:          # FeatureListNet / FeatureDictNet(flatten_sequential)
        return f"{flattened[head]}.{rest}"
    raise KeyError(f"features-only key {key!r} has no counterpart in the full model")


def _features_state(feat, model, state):
    """``state`` (the full model's) under the names of the features-only model ``feat``."""
    import torch

    flattened = {f"{name}_{child}": f"{name}.{child}"
                 for name, module in model.named_children()
                 if isinstance(module, torch.nn.Sequential)
                 for child, _ in module.named_children()}
    out = {}
    for key, value in feat.state_dict().items():
        source = _full_model_key(key, state, flattened)
        if tuple(state[source].shape) != tuple(value.shape):
            raise ValueError(f"{key} <- {source}: shape {tuple(state[source].shape)} != "
                             f"{tuple(value.shape)}")
        out[key] = state[source]
    return out


def _info_dicts(info):
    return [{k: d[k] for k in ("num_chs", "reduction", "module")} for d in info]


def run_features(spec, model, state, x, out_dir: str) -> None:
    """timm's features-only maps of the weights ``state`` (the full ``model``'s) on ``x``."""
    import numpy as np
    import torch

    key = spec["key"]
    feat = _build_features(spec)
    feat.load_state_dict(_features_state(feat, model, state), strict=True)
    feat.eval()
    with torch.no_grad():
        maps32 = [m.numpy() for m in feat(x)]
        feat.double()
        maps64 = [m.numpy() for m in feat(x.double())]
    arrays = {f"f{i}": m for i, m in enumerate(maps64)}
    arrays.update({f"f{i}_32": m for i, m in enumerate(maps32)})
    tmp = os.path.join(out_dir, f"{key}.tmp.features.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, os.path.join(out_dir, f"{key}.features.npz"))
    info = {"feature_info": _info_dicts(model.feature_info),
            "features_only_info": _info_dicts(feat.feature_info.get_dicts()),
            "out_indices": [int(i) for i in feat.feature_info.out_indices]}
    tmp = os.path.join(out_dir, f"{key}.tmp.features.json")
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, os.path.join(out_dir, f"{key}.features.json"))


def run_spec(spec, out_dir: str) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    key = spec["key"]
    model = _build(spec)
    _randomise(model, spec.get("seed", 0), spec["input_size"])
    model.eval()
    gen = torch.Generator().manual_seed(spec.get("seed", 0) + 2)
    shape = [spec.get("batch", 2)] + list(spec["input_size"])
    x = torch.randn(shape, generator=gen)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}

    def forward(inp):
        with torch.no_grad():
            y = model(inp)
        return (y[0] + y[1]) / 2 if isinstance(y, (tuple, list)) else y

    # The expected output is computed in float64 from the float32 weights (both sides then run
    # the same arithmetic up to summation order); the reference's own float32 output is kept
    # too, because its distance from the float64 one is the size of float32 rounding for this
    # network on this input -- the scale the float32 check is held to.
    y32 = forward(x)
    model.double()
    y = forward(x.double())
    tmp = os.path.join(out_dir, f"{key}.tmp.safetensors")
    save_file(state, tmp)
    os.replace(tmp, os.path.join(out_dir, f"{key}.safetensors"))
    tmp = os.path.join(out_dir, f"{key}.tmp.npz")
    np.savez(tmp, input=x.numpy(), output=y.numpy(), output32=y32.numpy())
    os.replace(tmp, os.path.join(out_dir, f"{key}.npz"))
    if spec["lib"] in FEATURE_LIBS:
        try:
            run_features(spec, model, state, x, out_dir)
        except Exception:  # the logits reference stands on its own
            with open(os.path.join(out_dir, f"{key}.features.error"), "w") as f:
                f.write(traceback.format_exc())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if "paddle" in sys.modules:
        raise RuntimeError("torch_reference.py must not run in a process that imported paddle")
    os.environ["TIMM_FUSED_ATTN"] = "0"  # before timm is imported: see the module docstring
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with open(args.specs) as f:
        specs = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    for spec in specs:
        try:
            run_spec(spec, args.out)
            if spec.get("count_input_size"):
                count_spec(spec, args.out)
        except Exception:  # one broken reference must not hide the others' results
            with open(os.path.join(args.out, f"{spec['key']}.error"), "w") as f:
                f.write(traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main())
