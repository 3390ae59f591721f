"""Torch side of the ImageNet evaluation parity test (tests/engine/test_evaluate.py). Runs in its own
process: it must never share one with paddle.

    python tests/parity/timm_eval_reference.py --model mobilenetv3_small_100 --list val_list.txt \\
        --root DIR --out OUTDIR [--limit N] [--input-size 224 --crop-pct 0.875 \\
        --interpolation bicubic --mean ... --std ...]

Builds the timm model with random weights (randomised like tests/parity/torch_reference.py so
logits are informative), saves them to ``OUTDIR/weights.safetensors``, evaluates the listed
images with timm's own evaluation transform (``timm.data.create_transform(is_training=False)``
with the given preprocessing, by default the model's resolved pretrained config) and writes
``OUTDIR/reference.npz`` (``logits``, ``labels``, ``inputs`` = the first ``--dump`` preprocessed
tensors) and ``OUTDIR/reference.json`` (top-1/top-5, the transform used, timm's resolved data
config of the model).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--list", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--dump", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--crop-pct", type=float, default=None)
    p.add_argument("--interpolation", default=None)
    p.add_argument("--mean", type=float, nargs=3, default=None)
    p.add_argument("--std", type=float, nargs=3, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if "paddle" in sys.modules:
        raise RuntimeError("timm_eval_reference.py must not run in a process that imported paddle")

    import numpy as np
    import timm
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    sys.path.insert(0, HERE)
    from torch_reference import _randomise

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.manual_seed(args.seed)
    model = timm.create_model(args.model, pretrained=False)
    resolved = timm.data.resolve_data_config({}, model=model)
    size = args.input_size or resolved["input_size"][-1]
    _randomise(model, args.seed, (3, size, size))
    model.eval()
    cfg = {"input_size": (3, size, size),
           "crop_pct": args.crop_pct or resolved["crop_pct"],
           "interpolation": args.interpolation or resolved["interpolation"],
           "mean": tuple(args.mean or resolved["mean"]), "std": tuple(args.std or resolved["std"]),
           "crop_mode": "center"}
    transform = timm.data.create_transform(**cfg, is_training=False)

    samples = []
    with open(args.list) as f:
        for line in f:
            if line.strip():
                rel, label = line.strip().rsplit(None, 1)
                samples.append((os.path.join(args.root, rel), int(label)))
    if args.limit is not None:
        samples = samples[:args.limit]

    logits, labels, dumped = [], [], []
    with torch.no_grad():
        for start in range(0, len(samples), args.batch_size):
            chunk = samples[start:start + args.batch_size]
            xs = []
            for path, label in chunk:
                with open(path, "rb") as fh:
                    xs.append(transform(Image.open(fh).convert("RGB")))
                labels.append(label)
            x = torch.stack(xs)
            if len(dumped) < args.dump:
                dumped.extend(x[:args.dump - len(dumped)].numpy())
            logits.append(model(x).numpy())
    logits = np.concatenate(logits).astype(np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    top = np.argsort(-logits, axis=1, kind="stable")
    top1 = float((top[:, 0] == labels).mean())
    top5 = float((top[:, :5] == labels[:, None]).any(axis=1).mean())

    os.makedirs(args.out, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out, "weights.safetensors"))
    np.savez(os.path.join(args.out, "reference.npz"), logits=logits, labels=labels,
             inputs=np.stack(dumped).astype(np.float32))
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"model": args.model, "timm": timm.__version__, "torch": torch.__version__,
                   "num_images": len(labels), "top1": top1, "top5": top5,
                   "transform": repr(transform),
                   "transform_config": {k: list(v) if isinstance(v, tuple) else v
                                        for k, v in cfg.items()},
                   "resolved_data_config": {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in resolved.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
