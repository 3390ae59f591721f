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
(``ppnets.engine.imagenet.eval_transform``).

Prints and writes (``--json``, atomically) the accuracies as fractions, the number of images,
``images_per_s`` (end to end: decoding, preprocessing and the forward pass, after the first
batch) and the run record of reproduce/_common.py (command, git commit, machine).
``--save-logits FILE.npz`` keeps the per-image logits, labels and paths (parity checks).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RunRecord, write_json  # noqa: E402

SCRIPT = "reproduce/evaluate.py"
SCHEMA = "ppnets.reproduce.evaluate/1"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="registry name (ppnets.list_models())")
    p.add_argument("--pretrained", required=True,
                   help="weights: .pdparams, or a reference .safetensors/.npz/.pth to convert")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="ImageNet root holding val/<wnid>/ folders, or the "
                                        "folder of the <wnid>/ class folders itself")
    src.add_argument("--list", help="PaddleClas list file: 'relative/path label' per line")
    p.add_argument("--root", default=None,
                   help="folder the --list paths are relative to (default: the list's folder)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=None,
                   help="DataLoader worker processes (default: min(8, usable cores))")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--input-size", type=int, default=None, help="override the model's size")
    p.add_argument("--crop-pct", type=float, default=None, help="override the model's crop_pct")
    p.add_argument("--interpolation", default=None,
                   help="override the model's resize filter (bilinear, bicubic, ...)")
    p.add_argument("--json", default=None, help="write the results here (atomically)")
    p.add_argument("--save-logits", default=None, metavar="NPZ",
                   help="save per-image logits, labels and paths")
    return p.parse_args(argv)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_dataset(args, transform):
    from ppnets.engine.imagenet import ImageListDataset

    if args.list:
        ds = ImageListDataset.from_list(args.list, args.root, transform)
        source = {"list": os.path.abspath(args.list),
                  "root": os.path.abspath(args.root or os.path.dirname(args.list))}
    else:
        split = os.path.join(args.data_dir, "val")
        split = split if os.path.isdir(split) else args.data_dir
        ds = ImageListDataset.from_folder(split, transform)
        source = {"folder": os.path.abspath(split), "classes": len(ds.classes)}
    if args.limit is not None:
        ds.samples = ds.samples[:int(args.limit)]
    return ds, source


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-image bool: label among the ``k`` highest logits."""
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == labels.reshape(-1, 1)).any(axis=1)


def evaluate(args) -> dict:
    import paddle

    import ppnets
    from ppnets.engine.data import default_num_workers
    from ppnets.engine.imagenet import model_data_config, model_eval_transform

    if args.device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise SystemExit("error: --device gpu but this paddlepaddle build has no CUDA support")
    paddle.set_device(args.device)
    if not os.path.isfile(args.pretrained):
        raise SystemExit(f"error: --pretrained {args.pretrained!r} does not exist")
    pre = model_data_config(args.model)
    pre.update({k: v for k, v in (("input_size", args.input_size), ("crop_pct", args.crop_pct),
                                  ("interpolation", args.interpolation)) if v})
    transform = model_eval_transform(args.model, pre["input_size"], pre["crop_pct"],
                                     pre["interpolation"])
    ds, source = build_dataset(args, transform)
    if len(ds) == 0:
        raise SystemExit("error: no images to evaluate")
    nw = default_num_workers() if args.num_workers is None else int(args.num_workers)
    loader = paddle.io.DataLoader(ds, batch_size=int(args.batch_size), shuffle=False,
                                  drop_last=False, num_workers=nw, use_shared_memory=True,
                                  return_list=True)
    net = ppnets.create_model(args.model, num_classes=int(args.num_classes),
                              pretrained=args.pretrained)
    net.eval()

    logits_all, labels_all = [], []
    t_start = t_after_first = time.perf_counter()
    n_after_first = 0
    with paddle.no_grad():
        for i, (images, labels) in enumerate(loader):
            out = net(images)
            logits_all.append(out.numpy().astype(np.float32))
            labels_all.append(labels.numpy().reshape(-1).astype(np.int64))
            if i == 0:
                t_after_first = time.perf_counter()  # worker start-up and warm-up excluded
            else:
                n_after_first += int(images.shape[0])
    t_end = time.perf_counter()
    logits = np.concatenate(logits_all)
    labels = np.concatenate(labels_all)
    top1 = topk_correct(logits, labels, 1)
    top5 = topk_correct(logits, labels, min(5, logits.shape[1]))
    steady = t_end - t_after_first
    result = {
        "model": args.model, "pretrained": os.path.abspath(args.pretrained),
        "pretrained_sha256": _sha256(args.pretrained),
        "num_images": int(len(labels)), "top1": float(top1.mean()), "top5": float(top5.mean()),
        "top1_correct": int(top1.sum()), "top5_correct": int(top5.sum()),
        "images_per_s": (n_after_first / steady) if n_after_first and steady > 0 else None,
        "total_time_s": t_end - t_start, "batch_size": int(args.batch_size), "num_workers": nw,
        "device": args.device, "limit": args.limit, "data": source,
        "preprocessing": {**pre, "mean": list(pre["mean"]), "std": list(pre["std"]),
                          "resize_shorter_to": int(np.floor(pre["input_size"] / pre["crop_pct"])),
                          "center_crop": pre["input_size"], "library": "PIL"},
    }
    if args.save_logits:
        from ppnets.engine.checkpoint import atomic_write

        paths = np.asarray([os.path.relpath(p, source.get("root", source.get("folder", "")))
                            for p, _ in ds.samples])
        def _save(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, logits=logits, labels=labels, paths=paths)
        atomic_write(args.save_logits, _save)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    record = RunRecord(SCRIPT, args, sys.argv if argv is None else [SCRIPT, *argv])
    result = evaluate(args)
    record.finish()
    speed = f"{result['images_per_s']:.1f}" if result["images_per_s"] else "n/a"
    print(f"{result['model']}: top-1 {100 * result['top1']:.2f}%  top-5 "
          f"{100 * result['top5']:.2f}%  on {result['num_images']} images  ({speed} images/s, "
          f"{args.device}, batch {args.batch_size}, {result['num_workers']} workers)")
    if args.json:
        write_json(args.json, {"schema": SCHEMA, **result, "run": record.data})
    return 0


if __name__ == "__main__":
    sys.exit(main())
