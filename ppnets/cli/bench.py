"""``ppnets bench``: latency of models in their deploy form under Paddle Inference.

    ppnets bench --models resnet18 'spconv_*' --threads 1 --json out.json
    ppnets bench --models fasternet_t0 repvit_m0_9 --features-only   # the backbones alone

``--features-only`` times each model's features-only backbone (``create_model(name,
features_only=True, out_indices=...)``, docs/features.md): no classifier, one program output per
feature map, every map copied to host in the timed region and checked against eager.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from ppnets.bench.harness import benchmark_models, check_settings, format_table
from ppnets.bench.op_profile import format_profile, profile_model
from ppnets.registry import resolve_model_names
from ppnets.runtime import deploy_form
from ppnets.utils import atomic_write_json, atomic_write_text

from .common import run_command


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


HELP = "latency of models (deploy form) under Paddle Inference"
DESCRIPTION = ("Latency of ppnets models (deploy form) under Paddle Inference: median and IQR "
               "over individually timed repeats after untimed warm-up runs.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", "--model", nargs="+", required=True, metavar="NAME",
                        help="registry names or fnmatch patterns, e.g. resnet18 'spconv_*'")
    parser.add_argument("--batch-size", type=_positive, default=1)
    parser.add_argument("--input-size", type=_positive, nargs=3, metavar=("C", "H", "W"),
                        default=None, help="default: each model's registered input size")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--threads", type=_positive, default=1,
                        help="CPU math-library threads (default 1)")
    parser.add_argument("--no-mkldnn", dest="mkldnn", action="store_false",
                        help="disable oneDNN (MKLDNN) kernels on CPU")
    parser.add_argument("--warmup", type=_positive, default=10,
                        help="untimed runs before timing (>= 1; default 10)")
    parser.add_argument("--repeats", type=_positive, default=50,
                        help="individually timed runs (default 50)")
    parser.add_argument("--rounds", type=_positive, default=3,
                        help="fresh predictors per model, each timed (warm-up + repeats); the "
                             "median round is reported (predictors of one program can run at "
                             "different steady speeds, docs/benchmarking.md)")
    parser.add_argument("--features-only", action="store_true",
                        help="time the backbone without its classifier: the program returns "
                             "every feature map (docs/features.md)")
    parser.add_argument("--out-indices", type=int, nargs="+", default=None, metavar="I",
                        help="with --features-only: the maps, positions in each model's "
                             "feature_info (negative from the end; default: the model's)")
    parser.add_argument("--dygraph", action="store_true",
                        help="also time eager (dygraph) execution for comparison")
    parser.add_argument("--workdir", default=None,
                        help="keep the exported models here (default: a temporary folder)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the time goes per op type, in Paddle Inference "
                             "(its profiler) and in ONNX Runtime on the same program (CPU)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write the results here (atomically)")
    parser.add_argument("--markdown", default=None, metavar="PATH",
                        help="also write the printed tables (and profiles) here, with the "
                             "command line (atomically)")


def _names(args: argparse.Namespace):
    """The models the options name; raises KeyError / ValueError / RuntimeError on bad ones."""
    check_settings(input_size=args.input_size, batch_size=args.batch_size, device=args.device,
                   threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                   rounds=args.rounds)
    if args.out_indices is not None and not args.features_only:
        raise ValueError("--out-indices selects the maps of a features-only backbone: add "
                         "--features-only")
    return resolve_model_names(args.models)


def _progress(result) -> None:
    lat = result["latency_ms"]
    rounds = ", ".join(f"{m:.3f}" for m in result["round_medians_ms"])
    print(f"{result['model']}: median {lat['median']:.3f} ms (IQR {lat['iqr']:.3f} ms, "
          f"{lat['repeats']} repeats; round medians {rounds})", file=sys.stderr, flush=True)


def _tables(args: argparse.Namespace, report) -> List[str]:
    """The printed header line and tables of a report."""
    machine = report["machine"]
    text = [f"{machine['cpu_model']} | {args.device}"
            + (f" ({machine['gpu']})" if args.device == "gpu" else
               f", threads {args.threads}, oneDNN {'on' if args.mkldnn else 'off'}")
            + (" | features-only backbones (every map)" if args.features_only else "")
            + f" | batch {args.batch_size} | Paddle {machine['paddle_version']} | "
            f"{args.warmup} warm-up, {args.repeats} repeats, median of {args.rounds} "
            "predictor(s)\n", format_table(report["results"])]
    if args.dygraph:
        text.append("\n| model | dygraph median (ms) | dygraph IQR (ms) |\n|---|---:|---:|")
        for r in report["results"]:
            d = r["dygraph_latency_ms"]
            text.append(f"| {r['model']} | {d['median']:.3f} | {d['iqr']:.3f} |")
    return text


def run(args: argparse.Namespace) -> int:
    try:
        names = _names(args)
        report = benchmark_models(
            names, command=args.command, progress=_progress,
            input_size=tuple(args.input_size) if args.input_size else None,
            batch_size=args.batch_size, device=args.device, threads=args.threads,
            mkldnn=args.mkldnn, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
            dygraph=args.dygraph, workdir=args.workdir, features_only=args.features_only,
            out_indices=args.out_indices)
    except (KeyError, ValueError, RuntimeError) as exc:
        # KeyError's str() is the repr of its message; print the message itself.
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}",
              file=sys.stderr)
        return 2

    text = _tables(args, report)
    print("\n".join(text), flush=True)
    if args.profile:
        if args.device != "cpu":
            print("error: --profile profiles the CPU runtimes (Paddle Inference and ONNX "
                  "Runtime); drop --device gpu", file=sys.stderr)
            return 2
        for r in report["results"]:
            model, name, size = deploy_form(r["model"], args.input_size, args.features_only,
                                            args.out_indices)
            r["profile"] = profile_model(model, size, threads=args.threads,
                                         runs=args.repeats, warmup=args.warmup)
            text.append("\n" + format_profile(name, r["profile"]))
            print(text[-1], flush=True)
    if args.markdown:
        atomic_write_text(args.markdown, "\n".join(
            [f"Command: `{report['command']}`", "",
             f"Load average at the start: {report['machine'].get('load_avg')}", ""] + text)
            + "\n")
        print(f"\nwrote {args.markdown}", file=sys.stderr)
    if args.json:
        atomic_write_json(args.json, report, strict=True)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets bench")
