"""``ppnets peers``: every ppnets runtime path beside ONNX Runtime, OpenVINO and PyTorch eager
run by hand.

    ppnets peers --models resnet18 mobilenetv2_100 --threads 1 --json peers.json
    ppnets peers --models fasternet_t0 --peers paddle_inference onnxruntime --markdown peers.md

One run, one machine, the same thread count, batch, input and weights for every path, plus the
measured SGEMM peak of this CPU (:func:`ppnets.bench.peers.compare_peers`; docs/latency_studies.md,
"Peer comparison"). Paddle Lite is converted and timed where it is installed.
"""
from __future__ import annotations

import argparse
import sys

from ppnets.bench.harness import check_settings
from ppnets.bench.peers import PEERS, compare_peers, format_peers, peers_markdown
from ppnets.deploy.formats import lite_export  # importing ppnets.deploy registers paddle_lite
from ppnets.registry import resolve_model_names
from ppnets.runtime import DEFAULT_ATOL
from ppnets.utils import atomic_write_json, atomic_write_text

HELP = ("ppnets' runtime paths vs ONNX Runtime, OpenVINO and PyTorch eager run by hand; SGEMM "
        "peak")
DESCRIPTION = ("Every ppnets runtime path (Paddle Inference, its PaddleX settings, ONNX Runtime "
               "and OpenVINO sessions, Paddle Lite where installed) vs ONNX Runtime, OpenVINO "
               "and PyTorch eager run by hand on this machine (the same weights, input and "
               "thread count; outputs compared), plus the measured SGEMM peak.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", "--model", nargs="+", required=True, metavar="NAME",
                        help="registry names or fnmatch patterns")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of every backend (default 1)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs (default 10)")
    parser.add_argument("--repeats", type=int, default=50,
                        help="individually timed runs (default 50)")
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS),
                        help="the paths to run (default: all; paddle_inference always runs, "
                             "it is the baseline)")
    parser.add_argument("--sgemm-n", type=int, default=1024,
                        help="matrix size of the SGEMM peak measurement (default 1024)")
    parser.add_argument("--no-mkldnn", dest="mkldnn", action="store_false",
                        help="disable oneDNN kernels in Paddle Inference")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write the report here (atomically)")
    parser.add_argument("--markdown", default=None, metavar="PATH",
                        help="also write the report as Markdown (machine, load, table)")


def _lite_x86(name, model_file, params_file, out_dir, x, refs):
    """Paddle Lite's x86 ``.nb`` of a legacy program, checked against ``refs``."""
    return lite_export(name, model_file, params_file, out_dir, x, refs, DEFAULT_ATOL,
                       targets=("x86",))


def run(args: argparse.Namespace) -> int:
    try:
        check_settings(batch_size=args.batch_size, threads=args.threads, warmup=args.warmup,
                       repeats=args.repeats)
        names = resolve_model_names(args.models)
    except (KeyError, ValueError) as exc:
        # KeyError's str() is the repr of its message; print the message itself.
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}",
              file=sys.stderr)
        return 2
    report = compare_peers(names, threads=args.threads, batch_size=args.batch_size,
                           warmup=args.warmup, repeats=args.repeats, peers=args.peers,
                           sgemm_n=args.sgemm_n, mkldnn=args.mkldnn,
                           lite_exporter=_lite_x86)
    report["command"] = args.command
    m = report["machine"]
    print(f"{m['cpu_model']} | threads {args.threads} | batch {args.batch_size} | load "
          f"{m.get('load_avg')}\n")
    print(format_peers(report))
    if args.json:
        atomic_write_json(args.json, report, strict=True)
        print(f"\nwrote {args.json}", file=sys.stderr)
    if args.markdown:
        atomic_write_text(args.markdown, peers_markdown(report))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0
