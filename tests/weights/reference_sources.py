"""Torch side of tests/weights/test_sources.py: what timm and torchvision say about their weights.

    python tests/weights/reference_sources.py cfgs SPEC.json OUT.json
    python tests/weights/reference_sources.py layouts SPEC.json OUT_DIR

Runs in its own process (torch and paddle never share one).

``cfgs``: SPEC is ``{"timm": [arch], "torchvision": [name], "absent": [name]}``; OUT.json holds,
per timm architecture, its default tag and every pretrained tag's resolved cfg; per torchvision
model, every member of its weights enum (URL, the hash prefix ``torch.hub`` reads from the file
name, transforms, metrics); per ``absent`` name, whatever timm or torchvision publish under it.

``layouts``: SPEC is a list of ``{"key", "library", "arch", "tag"}``; for each, the reference
model for ``arch.tag`` (timm: built by ``timm.create_model('<arch>.<tag>')``, so the tag's
``num_classes`` applies; torchvision: ``torchvision.models.get_model(arch)``) has its state dict
layout written as ``OUT_DIR/<key>.safetensors``, or the traceback as ``OUT_DIR/<key>.error``; a
layout already written for another key is ``OUT_DIR/<key>.same``, holding that key (timm's tags
of one architecture share one). Only keys, shapes and the classifier layout matter here, so the
models are built on the meta device and the files hold zeros (float16 for floating tensors),
written as a safetensors header followed by a hole: no memory, time or disk for the data.
"""
from __future__ import annotations

import json
import math
import os
import sys
import traceback

import timm
import torch
import torchvision
from timm.models import get_pretrained_cfg

_TIMM_FIELDS = ("hf_hub_id", "num_classes", "input_size", "test_input_size", "crop_pct",
                "test_crop_pct", "interpolation", "mean", "std", "license", "classifier")


def _timm_arch(arch: str) -> dict:
    tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"{arch}.*")]
    return {"default_tag": get_pretrained_cfg(arch).tag,
            "tags": {tag: {f: getattr(get_pretrained_cfg(f"{arch}.{tag}"), f)
                           for f in _TIMM_FIELDS} for tag in tags}}


def _torchvision_model(name: str) -> dict:
    enum = torchvision.models.get_model_weights(name)
    out = {}
    for weights in enum:
        tf = weights.transforms()
        match = torch.hub.HASH_REGEX.search(os.path.basename(weights.url))
        metrics = weights.meta["_metrics"]["ImageNet-1K"]
        out[weights.name] = {
            "default": weights is enum.DEFAULT, "url": weights.url,
            "sha256_prefix": match.group(1) if match else None,
            "num_classes": len(weights.meta["categories"]),
            "input_size": [3, tf.crop_size[0], tf.crop_size[0]],
            "crop_pct": tf.crop_size[0] / tf.resize_size[0],
            "interpolation": tf.interpolation.value, "mean": list(tf.mean), "std": list(tf.std),
            "top1": metrics["acc@1"], "top5": metrics["acc@5"]}
    return out


def cfgs(spec: dict) -> dict:
    tv_models = set(torchvision.models.list_models())
    return {
        "timm_version": timm.__version__, "torchvision_version": torchvision.__version__,
        "hf_filename": timm.models._hub.HF_SAFE_WEIGHTS_NAME,
        "timm": {arch: _timm_arch(arch) for arch in spec["timm"]},
        "torchvision": {name: _torchvision_model(name) for name in spec["torchvision"]},
        "absent": {name: timm.list_pretrained(f"{name}.*") + ([f"torchvision:{name}"]
                                                               if name in tv_models else [])
                   for name in spec["absent"]},
    }


_SAFETENSORS_DTYPES = {torch.float16: "F16", torch.int64: "I64", torch.int32: "I32",
                       torch.bool: "BOOL", torch.uint8: "U8"}


def _layout(item: dict) -> dict:
    """``{key: (shape, dtype)}`` of the reference model's state dict."""
    with torch.device("meta"):
        if item["library"] == "torchvision":
            model = torchvision.models.get_model(item["arch"], weights=None)
        else:
            model = timm.create_model(f"{item['arch']}.{item['tag']}", pretrained=False)
    return {k: (tuple(v.shape), torch.float16 if v.is_floating_point() else v.dtype)
            for k, v in model.state_dict().items()}


def _write_zeros(path: str, layout: dict) -> None:
    """A safetensors file of zeros with ``layout``: the JSON header (format: 8-byte little-endian
    header length, header, data), then the data section left as a sparse hole."""
    header, end = {}, 0
    for key, (shape, dtype) in layout.items():
        nbytes = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
        header[key] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(shape),
                       "data_offsets": [end, end + nbytes]}
        end += nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        f.truncate(8 + len(blob) + end)


def layouts(spec: list, out: str) -> None:
    written = {}  # layout -> the key whose file has it
    for item in spec:
        try:
            layout = _layout(item)
            signature = tuple(layout.items())
            if signature in written:
                with open(os.path.join(out, f"{item['key']}.same"), "w") as f:
                    f.write(written[signature])
            else:
                _write_zeros(os.path.join(out, f"{item['key']}.safetensors"), layout)
                written[signature] = item["key"]
        except Exception:  # noqa: BLE001 - reported to the test that needs this file
            with open(os.path.join(out, f"{item['key']}.error"), "w") as f:
                f.write(traceback.format_exc())


def main(argv) -> None:
    mode, spec_file, out = argv
    with open(spec_file) as f:
        spec = json.load(f)
    if mode == "cfgs":
        with open(out, "w") as f:
            json.dump(cfgs(spec), f, indent=1)
    else:
        layouts(spec, out)


if __name__ == "__main__":
    main(sys.argv[1:])
