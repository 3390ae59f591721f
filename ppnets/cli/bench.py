"""``ppnets bench``: latency of models in their deploy form, in every runtime and precision.

    ppnets bench --models resnet18 'spconv_*' --threads 1 --json out.json
    ppnets bench --models fasternet_t0 --runtime all --precision fp32 bf16
    ppnets bench --models mobilenetv2_100 --paddle-settings default paddlex
    ppnets bench --export-dir exports/mobilenetv2_100 --runtime all --precision fp32 int8
    ppnets bench --recommend --models mobilenetv2_100 --threads 2
    ppnets bench --models fasternet_t0 repvit_m0_9 --features-only   # the backbones alone

``--runtime`` times each model in the named runtimes (``all``: every one installed here) and
``--precision`` at the named precisions; one harness times them all (docs/benchmarking.md,
"Runtimes"). A runtime or precision that cannot run here is listed with the reason, not an
error. ``--recommend`` names the fastest exact runtime and precision and prints the
``ppnets export`` and ``ppnets predict`` commands for it (:mod:`ppnets.bench.recommend`).
``--features-only`` times each model's features-only backbone (``create_model(name,
features_only=True, out_indices=...)``, docs/features.md): no classifier, one program output per
feature map, every map copied to host in the timed region and checked against eager.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

import ppnets.deploy  # noqa: F401 - registers the paddle_lite runtime (ppnets.deploy.lite)
from ppnets.bench.harness import (BACKEND, PADDLE_SETTINGS, benchmark_models, check_settings,
                                  format_table, resolve_runtimes)
from ppnets.bench.op_profile import format_profile, profile_model
from ppnets.bench.recommend import format_recommendation, recommend
from ppnets.registry import resolve_model_names
from ppnets.runtime import PRECISIONS, RUNTIMES, deploy_form
from ppnets.utils import atomic_write_json, atomic_write_text

from .common import run_command


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


HELP = "latency of models (deploy form) in Paddle Inference, ONNX Runtime, OpenVINO, Paddle Lite"
DESCRIPTION = ("Latency of ppnets models (deploy form) in every runtime and precision: median "
               "and IQR over individually timed repeats after untimed warm-up runs, outputs "
               "checked against eager; --recommend names the fastest exact runtime.")


def _runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", "--runtimes", dest="runtimes", nargs="+",
                        default=None, choices=[*RUNTIMES, "all"], metavar="R",
                        help=f"runtimes to time: {', '.join(RUNTIMES)}, or all (every one "
                             f"installed here); default {BACKEND} (--recommend: all)")
    parser.add_argument("--precision", "--precisions", dest="precisions", nargs="+",
                        default=None, choices=list(PRECISIONS),
                        help="fp32 (exact), bf16, int8 (approximate: their output difference "
                             "is reported); default fp32 (--recommend: all three)")
    parser.add_argument("--paddle-settings", nargs="+", default=["default"],
                        choices=sorted(PADDLE_SETTINGS),
                        help="Paddle Inference fp32 predictor settings to time: default, "
                             "paddlex (PaddleX's CPU settings: new IR and executor, "
                             "optimisation level 3, oneDNN cache -1)")
    parser.add_argument("--export-dir", default=None, metavar="DIR",
                        help="time an existing export folder (ppnets export; e.g. one with "
                             "INT8 or Paddle Lite artifacts) instead of exporting the models")
    parser.add_argument("--recommend", action="store_true",
                        help="time every available runtime x precision (one model) and name "
                             "the fastest exact one, with its export and predict commands")
    parser.add_argument("--accuracy", default=None, metavar="JSON",
                        help="with --recommend: measured top-1 per runtime:precision (e.g. "
                             "from ppnets eval --runtime R --precision P --json), shown beside "
                             "the approximate options")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", "--model", nargs="+", default=None, metavar="NAME",
                        help="registry names or fnmatch patterns, e.g. resnet18 'spconv_*' "
                             "(or --export-dir)")
    _runtime_arguments(parser)
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
    """The models the options name (None: the --export-dir folder); raises KeyError /
    ValueError / RuntimeError on bad ones."""
    check_settings(input_size=args.input_size, batch_size=args.batch_size, device=args.device,
                   threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                   rounds=args.rounds)
    if args.out_indices is not None and not args.features_only:
        raise ValueError("--out-indices selects the maps of a features-only backbone: add "
                         "--features-only")
    if args.export_dir is not None:
        if args.models:
            raise ValueError("--export-dir times the model of that folder: leave out --models")
        if not os.path.isfile(os.path.join(args.export_dir, "export.json")):
            raise ValueError(f"--export-dir {args.export_dir} has no export.json: pass a "
                             "folder written by `ppnets export`")
        return None
    if not args.models:
        raise ValueError("name the models to time (--models NAME ...) or an export folder "
                         "(--export-dir DIR)")
    names = resolve_model_names(args.models)
    if args.recommend and len(names) != 1:
        raise ValueError(f"--recommend chooses for one model; --models names {len(names)}: "
                         f"{', '.join(names)}")
    return names


def _progress(result) -> None:
    label = f"{result['model']} / {result['backend']} {result['precision']}"
    if result.get("status") == "unavailable":
        print(f"{label}: unavailable ({result['reason']})", file=sys.stderr, flush=True)
        return
    lat = result["latency_ms"]
    rounds = ", ".join(f"{m:.3f}" for m in result["round_medians_ms"])
    print(f"{label}: median {lat['median']:.3f} ms (IQR {lat['iqr']:.3f} ms, "
          f"{lat['repeats']} repeats; round medians {rounds})", file=sys.stderr, flush=True)


def _tables(args: argparse.Namespace, report) -> List[str]:
    """The printed header line and tables of a report."""
    machine = report["machine"]
    text = [f"{machine['cpu_model']} | {args.device}"
            + (f" ({machine['gpu']})" if args.device == "gpu" else
               f", threads {args.threads}, Paddle Inference oneDNN "
               f"{'on' if args.mkldnn else 'off'}")
            + (" | features-only backbones (every map)" if args.features_only else "")
            + f" | batch {args.batch_size} | Paddle {machine['paddle_version']} | "
            f"{args.warmup} warm-up, {args.repeats} repeats, median of {args.rounds} "
            "predictor(s)/session(s)\n", format_table(report["results"])]
    if args.dygraph:
        text.append("\n| model | dygraph median (ms) | dygraph IQR (ms) |\n|---|---:|---:|")
        for r in report["results"]:
            if r.get("dygraph_latency_ms"):
                d = r["dygraph_latency_ms"]
                text.append(f"| {r['model']} | {d['median']:.3f} | {d['iqr']:.3f} |")
    return text


def _error(exc: Exception) -> int:
    # KeyError's str() is the repr of its message; print the message itself.
    print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}",
          file=sys.stderr)
    return 2


def _recommend(args: argparse.Namespace, names) -> int:
    try:
        rec = recommend(args.export_dir or names[0], threads=args.threads,
                        runtimes=args.runtimes or "all",
                        precisions=args.precisions or PRECISIONS,
                        warmup=args.warmup, repeats=args.repeats,
                        rounds=args.rounds, accuracy=args.accuracy, workdir=args.workdir,
                        progress=_progress, batch_size=args.batch_size,
                        input_size=tuple(args.input_size) if args.input_size else None)
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        return _error(exc)
    rec["command"] = args.command
    text = format_recommendation(rec)
    print(text, flush=True)
    if args.markdown:
        atomic_write_text(args.markdown, f"Command: `{args.command}`\n\n{text}\n")
        print(f"\nwrote {args.markdown}", file=sys.stderr)
    if args.json:
        atomic_write_json(args.json, rec, strict=True)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0 if rec["recommendation"] is not None else 1


def _profile(args: argparse.Namespace, report, text: List[str]) -> int:
    if args.device != "cpu":
        print("error: --profile profiles the CPU runtimes (Paddle Inference and ONNX "
              "Runtime); drop --device gpu", file=sys.stderr)
        return 2
    for r in report["results"]:
        if r.get("backend") != BACKEND or r.get("status") != "measured" or \
                r.get("precision") != "fp32" or "export_dir" in r:
            continue
        model, name, size = deploy_form(r["model"], args.input_size, args.features_only,
                                        args.out_indices)
        r["profile"] = profile_model(model, size, threads=args.threads,
                                     runs=args.repeats, warmup=args.warmup)
        text.append("\n" + format_profile(name, r["profile"]))
        print(text[-1], flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        names = _names(args)
        if args.recommend:
            return _recommend(args, names)
        report = benchmark_models(
            names, command=args.command, progress=_progress,
            runtimes=resolve_runtimes(args.runtimes or [BACKEND]),
            precisions=args.precisions or ["fp32"],
            paddle_settings=args.paddle_settings,
            input_size=tuple(args.input_size) if args.input_size else None,
            batch_size=args.batch_size, device=args.device, threads=args.threads,
            mkldnn=args.mkldnn, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
            dygraph=args.dygraph, workdir=args.workdir, features_only=args.features_only,
            out_indices=args.out_indices, export_dir=args.export_dir)
    except (KeyError, ValueError, RuntimeError) as exc:
        return _error(exc)

    text = _tables(args, report)
    print("\n".join(text), flush=True)
    if args.profile and _profile(args, report, text):
        return 2
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
