"""``ppnets lut``: the latency lookup table of zoo models' blocks and its prediction error.

    ppnets lut validate --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 \
        --table results/deploy/lut_paddle_inference_cpu.json --json lut_validation.json
    ppnets lut validate --runtime onnxruntime --models fasternet_t0 mobilenetv2_100 \
        --table results/deploy/lut_onnxruntime_cpu.json     # one table per runtime
    # a table measured on an ARM device (docs/deploy.md, "On a device"):
    ppnets lut export-grid --models mobilenetv2_050 shufflenet_v2_x0_5 --output-dir lut_grid
    python3 lut_device.py --grid . --out lut_arm.json          # on the device, in lut_grid/
    ppnets lut validate --models mobilenetv2_050 shufflenet_v2_x0_5 --lut lut_arm.json

``validate`` measures every missing entry of a table of ``--runtime`` (Paddle Inference by
default, ONNX Runtime, OpenVINO; ``--table``, read if present, extended, saved; a table of
another runtime is an error) -- each block and each whole deploy-form model, the median over
``--rounds`` fresh predictors -- or reads a table measured on a device (``--lut``, read only),
then compares each model's sum of blocks with its own entry (:func:`ppnets.deploy.lut.validate`).
``export-grid`` writes every block and every whole model as a Paddle Lite ``.nb`` with the
device-side timer (:func:`ppnets.deploy.lut.export_lite_grid`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict

from ppnets.deploy.lite import LiteUnavailableError
from ppnets.deploy.lut import (TABLE_RUNTIMES, LatencyTable, export_lite_grid, grid_entries,
                               validate, zoo_grid)
from ppnets.registry import resolve_model_names
from ppnets.runtime import RuntimeUnavailableError, runtime_status
from ppnets.utils import atomic_write_json

from .experiment import report_errors

HELP = "latency lookup table: per-block latencies, predicted vs measured (validate, export-grid)"
DESCRIPTION = ("Latency lookup table of zoo models' blocks and its prediction error against "
               "whole-model latency, on one runtime of this machine (validate --table, "
               "--runtime paddle_inference / onnxruntime / openvino: one table per runtime) or "
               "on a device through Paddle Lite (export-grid, then validate --lut).")
ERRORS = (KeyError, ValueError, OSError, LiteUnavailableError, RuntimeUnavailableError)


def _progress(i: int, n: int, key: str) -> None:
    if i % 25 == 0 or i == n:
        print(f"  [{i}/{n}] {key}", flush=True)


def _add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", required=True,
                   help="registry names or patterns (ppnets models)")
    p.add_argument("--input-size", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="one input size for every model (default: each model's own)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="<action>")
    sub.required = True
    v = sub.add_parser("validate", help="predicted (sum of blocks) vs measured latency",
                       description="Measure the missing entries (in --runtime) or read a "
                                   "device's table, and compare each model's sum of blocks "
                                   "with its whole-model entry.")
    _add_models(v)
    where = v.add_mutually_exclusive_group(required=True)
    where.add_argument("--table", help="a table of --runtime (read if present, extended)")
    where.add_argument("--lut", metavar="FILE",
                       help="a table measured on a device by lut_device.py (read only)")
    v.add_argument("--json", default=None, help="write the validation report here")
    v.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    v.add_argument("--runtime", default="paddle_inference", choices=TABLE_RUNTIMES,
                   help="the runtime --table's entries are measured in (default "
                        "paddle_inference; gpu: paddle_inference only). Not with --lut, whose "
                        "table records its own")
    v.add_argument("--threads", type=int, default=1)
    v.add_argument("--warmup", type=int, default=5)
    v.add_argument("--repeats", type=int, default=20)
    v.add_argument("--rounds", type=int, default=5,
                   help="fresh predictors per entry (the median is taken)")
    g = sub.add_parser("export-grid", help="every block and model as a Paddle Lite .nb with the "
                                           "device-side timer",
                       description="Write every block and every whole model as a Paddle Lite "
                                   ".nb with the device-side timer (lut_device.py) into a "
                                   "folder to copy onto the device.")
    _add_models(g)
    g.add_argument("--output-dir", required=True, help="the grid folder to write")
    g.add_argument("--lite-target", default="arm", help="Paddle Lite target of the grid")


def _print_report(report: Dict[str, Any]) -> None:
    print(f"runtime {report['runtime']}, device {report['device']}")
    print("| model | measured (ms) | LUT sum (ms) | rel. error |\n|---|---:|---:|---:|")
    for r in report["rows"]:
        print(f"| {r['model']} | {r['measured_ms']:.2f} | {r['predicted_ms']:.2f} | "
              f"{100 * r['rel_error']:+.1f}% |")
    print(f"median |rel. error| {report['median_abs_rel_error']}, largest "
          f"{report['max_abs_rel_error']}, Spearman {report['spearman']}")


def run_validate(args: argparse.Namespace) -> int:
    names = resolve_model_names(args.models)
    if args.lut:
        table = LatencyTable(args.lut, device="file")
    else:
        status = runtime_status()[args.runtime]
        if not status["available"]:
            raise ValueError(f"--runtime {args.runtime} is not available here: "
                             f"{status['reason']}")
        table = LatencyTable(args.table, args.threads, args.warmup, args.repeats, args.rounds,
                             args.device, runtime=args.runtime)
    load_start = list(os.getloadavg())
    report = validate(names, table, _progress, args.input_size)
    # 1/5/15-min load averages: timings on a shared machine mean little without them.
    report.update(load_avg_start=load_start, load_avg_end=list(os.getloadavg()),
                  command=args.command, table={"path": table.path,
                                               "entries": len(table.entries),
                                               "meta": table.meta})
    _print_report(report)
    if not args.lut:
        print(f"load average (1/5/15 min) at start {load_start}, at end "
              f"{report['load_avg_end']}")
    if args.json:
        atomic_write_json(args.json, report, strict=True)
    return 0


def run_export_grid(args: argparse.Namespace) -> int:
    names = resolve_model_names(args.models)
    manifest = export_lite_grid(grid_entries(zoo_grid(names, args.input_size)), args.output_dir,
                                target=args.lite_target, progress=_progress)
    print(f"{len(manifest['entries'])} entries in {args.output_dir} "
          f"({len(manifest['failed'])} failed to convert). Copy the folder to the device and "
          "run there:\n  python3 lut_device.py --grid . --out lut_arm.json\nthen bring "
          "lut_arm.json back: ppnets lut validate --models ... --lut lut_arm.json "
          "(docs/deploy.md).")
    for f in manifest["failed"]:
        print(f"  failed: {f['key']}: {f['error']}", file=sys.stderr)
    return 0 if not manifest["failed"] else 1


ACTIONS = {"validate": run_validate, "export-grid": run_export_grid}


def run(args: argparse.Namespace) -> int:
    return report_errors(lambda: ACTIONS[args.action](args), ERRORS)
