"""Evaluate (converted) weights on ImageNet-1k validation images: top-1, top-5, images/s.

    python reproduce/evaluate.py --model mobilenetv3_small_100 --pretrained mnv3s.safetensors \\
        --data-dir /data/imagenet            # val/<wnid>/*.JPEG (or the folder of the classes)
    python reproduce/evaluate.py --model resnet18 --pretrained resnet18.pdparams \\
        --list /data/ILSVRC2012/val_list.txt --root /data/ILSVRC2012 --json out/resnet18.json

``--pretrained`` takes anything ``ppnets.create_model(pretrained=...)`` reads: ppnets
``.pdparams``, or a reference checkpoint (timm/torchvision ``.safetensors``/``.npz``/``.pth``)
converted on the fly by ``ppnets.convert``. Preprocessing is timm's evaluation transform with the
model's ``crop_pct``, ``interpolation``, ``mean``, ``std`` and input size
(``ppnets.model_info``; ``--input-size``/``--crop-pct``/``--interpolation`` override them):
shorter side resized to ``floor(size / crop_pct)`` with PIL, center crop, normalise
(``ppnets.engine.evaluate``).

Prints and writes (``--json``, atomically) the accuracies as fractions, the number of images,
``images_per_s`` (end to end: decoding, preprocessing and the forward pass, after the first
batch) and the run record (command, git commit, machine).
``--save-logits FILE.npz`` keeps the per-image logits, labels and paths (parity checks).

The options are ``ppnets eval``'s: ``--runtime openvino`` (or onnxruntime, paddle_inference)
also exports the weights on the fly and evaluates them in that runtime, reporting both top-1s and
both speeds (``--no-dygraph``: the runtime only, several times faster on a CPU)::

    python reproduce/evaluate.py --model mobilenetv2_100 --pretrained mnv2.safetensors \
        --list val_list.txt --runtime openvino --json out/mnv2_openvino.json
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppnets.cli.evaluate import add_arguments, evaluate_args, summary_line  # noqa: E402
from ppnets.cli.experiment import script_command  # noqa: E402
from ppnets.engine.data import DataUnavailableError  # noqa: E402
from ppnets.experiments import RunRecord, save_json  # noqa: E402

SCRIPT = "reproduce/evaluate.py"
SCHEMA = "ppnets.reproduce.evaluate/1"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)  # the options of `ppnets eval`
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    record = RunRecord(SCRIPT, script_command(SCRIPT, argv), device=args.device)
    try:
        result = evaluate_args(args)
    except (ValueError, DataUnavailableError) as exc:  # unreadable images included
        raise SystemExit(f"error: {exc}")
    record.finish()
    print(summary_line(result, args))
    if args.json:
        save_json(args.json, {"schema": SCHEMA, **result, "run": record.data})
    return 0


if __name__ == "__main__":
    sys.exit(main())
