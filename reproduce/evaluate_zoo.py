"""The ImageNet accuracy table: every model with its published weights on an ImageNet
validation folder or list (``ppnets.experiments.zoo_accuracy``).

    # the full table (a machine with network, or a warm PPNETS_HOME, and the 50,000 images):
    python reproduce/evaluate_zoo.py --data-dir /data/imagenet --output-dir results/zoo_accuracy
    python reproduce/evaluate_zoo.py --list /data/ILSVRC2012/val_list.txt --root /data/ILSVRC2012
    # some models, a GPU (the dygraph model):
    python reproduce/evaluate_zoo.py --data-dir /data/imagenet --models 'fasternet_*' --device gpu \
        --dygraph

On a CPU each model is exported on the fly (``ppnets.deploy.cache``) and evaluated in the fastest
exact runtime installed (``--runtime``; default the first of OpenVINO, ONNX Runtime, Paddle
Inference: ``ppnets.engine.evaluate.EVAL_RUNTIME_ORDER``), fp32, its outputs checked against the
eager model; ``--dygraph`` evaluates the dygraph model instead (as before).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppnets.cli.experiment import script_command  # noqa: E402
from ppnets.engine.evaluate import fastest_eval_runtime  # noqa: E402
from ppnets.experiments import RunRecord  # noqa: E402
from ppnets.experiments.zoo_accuracy import data_description, evaluate_zoo  # noqa: E402
from ppnets.registry import resolve_model_names  # noqa: E402

SCRIPT = "reproduce/evaluate_zoo.py"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="folder holding val/<wnid>/ (or the class folders)")
    src.add_argument("--list", help="PaddleClas list file: 'relative/path label' per line")
    p.add_argument("--root", default=None, help="folder the --list paths are relative to")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="names or patterns (default: every model with published weights)")
    p.add_argument("--tag", default=None, help="a weight tag instead of each default")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--output-dir", default="outputs/zoo_accuracy")
    p.add_argument("--note", default=None, help="a caveat printed atop the table")
    p.add_argument("--runtime", choices=("openvino", "onnxruntime", "paddle_inference"),
                   default=None, help="the runtime (default: the fastest installed)")
    p.add_argument("--threads", type=int, default=None,
                   help="the runtime's threads (default: the usable cores)")
    p.add_argument("--dygraph", action="store_true",
                   help="evaluate the dygraph model (a GPU, or to compare)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    names = resolve_model_names(args.models) if args.models else None
    record = RunRecord(SCRIPT, script_command(SCRIPT, argv), device=args.device)
    runtime = None if args.dygraph or args.device == "gpu" else (
        args.runtime or fastest_eval_runtime())
    data = dict(data_description(args.data_dir, args.list, args.root), note=args.note)
    report = evaluate_zoo(names, data, record, args.output_dir, tag=args.tag,
                          batch_size=args.batch_size, num_workers=args.num_workers,
                          device=args.device, limit=args.limit, runtime=runtime,
                          threads=args.threads)
    failed = [r["model"] for r in report["rows"] if "error" in r]
    print(f"wrote {os.path.join(args.output_dir, 'zoo_accuracy.md')}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
