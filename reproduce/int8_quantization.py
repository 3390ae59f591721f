"""INT8 with PaddleSlim (PTQ and QAT) measured on real CIFAR-10 images: the study of
``ppnets.experiments.int8`` (what it runs and records is in its docstring; docs/deploy.md "INT8").

    python reproduce/int8_quantization.py \
        --data-file ../shared/data/cifar-10-python-partial.tar.gz \
        --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 repvgg_a0 mobileone_s0 \
        --epochs 4 --qat-epochs 1 --output-dir results/deploy/int8
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppnets.cli.experiment import report_errors, script_command  # noqa: E402
from ppnets.experiments.int8 import Int8Options, collect, run_study, table  # noqa: E402

SCRIPT = "reproduce/int8_quantization.py"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    defaults = Int8Options(data_file="")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", default=None)
    p.add_argument("--models", nargs="+", default=defaults.models)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--qat-epochs", type=int, default=defaults.qat_epochs)
    p.add_argument("--max-steps", type=int, default=None, help="cap train batches per epoch")
    p.add_argument("--calib-images", type=int, default=defaults.calib_images)
    p.add_argument("--device", default="cpu")
    p.add_argument("--output-dir", default=defaults.output_dir)
    p.add_argument("--collect", nargs="+", default=None, metavar="DIR",
                   help="only tabulate the per-model JSONs already in these folders into "
                        "--output-dir/int8_results.{json,md} (e.g. after an interrupted run)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    command = script_command(SCRIPT, argv)
    if args.collect:
        print(table(collect(args.collect, args.output_dir, command)["results"]))
        return 0
    opts = Int8Options(data_file=args.data_file, models=args.models, epochs=args.epochs,
                       qat_epochs=args.qat_epochs, max_steps=args.max_steps,
                       calib_images=args.calib_images, device=args.device,
                       output_dir=args.output_dir, script=SCRIPT, command=command)

    def study() -> int:
        run_study(opts)   # prints the table; the files are in --output-dir
        return 0
    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
