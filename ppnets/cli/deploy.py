"""``ppnets deploy``: Paddle Lite across the zoo and on the device.

    ppnets deploy check --models '*' --jobs 2 --json results/deploy/zoo_lite.json \
        --markdown docs/deploy.md                  # op check, .nb conversion, x86 .nb parity
    ppnets deploy check --from-json results/deploy/zoo_lite.json --markdown docs/deploy.md
    ppnets deploy check --models '*' --features-only --json zoo_features.json  # backbones
    ppnets deploy lite-bench --nb exports/t0/lite/model_x86.nb --model fasternet_t0 \
        --reference exports/t0/reference_io.npz --json lite_x86.json
    ppnets deploy device-files --output-dir board  # the runner files for an ARM board

``check`` is :mod:`ppnets.deploy.zoo_check` (every model: deploy form, legacy export, ops
against Paddle Lite's listing per target, ``paddle_lite_opt`` for ARM and x86, the x86 ``.nb``
against eager; exit 1 when a model fails that ``--expect-fail`` does not name, or one it names
passes; ``--features-only``: every model's features-only backbone, each map checked).
``lite-bench`` is the board-side runner ``ppnets/cli/device/lite_runner.py`` run on this
host (an x86 ``.nb`` through ``PPNETS_PADDLELITE_PYTHON``). ``device-files`` copies that runner,
``lut_device.py`` and the helpers they load into a folder for the board (docs/deploy.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

from tqdm import tqdm

from ppnets.deploy import lite, zoo_check
from ppnets.registry import resolve_model_names
from ppnets.utils import atomic_write_json

from .device import lite_runner
from .experiment import report_errors

HELP = "Paddle Lite: zoo-wide check, .nb latency on this host, files for a board"
DESCRIPTION = ("Paddle Lite across the zoo (check), the .nb runner on this host (lite-bench) and "
               "the runner files for an ARM board (device-files).")
ERRORS = (KeyError, ValueError, OSError, lite.LiteUnavailableError)


def _add_check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=["*"], help="names or patterns (default: all)")
    p.add_argument("--targets", nargs="+", default=["arm", "x86"], choices=["arm", "x86"])
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--markdown", default=None, help="file with the table markers to update")
    p.add_argument("--workdir", default=None, help="keep exports and .nb files here")
    p.add_argument("--size", choices=["test", "full"], default="test",
                   help="input size: 'test' (default) = model_info deploy_check_input_size, "
                        "else test_input_size, else input_size; 'full' = input_size")
    p.add_argument("--batch-size", type=int, default=6,
                   help="models per Paddle Lite process (the next batch is exported meanwhile)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes sharing the zoo")
    p.add_argument("--features-only", action="store_true",
                   help="check each model's features-only backbone (create_model(name, "
                        "features_only=True), its default maps): one program output per map, "
                        "every one against eager")
    p.add_argument("--expect-fail", nargs="*", default=[], metavar="NAME",
                   help="documented failures (docs/deploy.md): exit 1 only for other failures, "
                        "or when one of these passes (strict)")
    p.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                   help="only (re)write the table from saved reports (or .partial files); a "
                        "model's row in a later file replaces the one in an earlier file")
    p.add_argument("--merged-json", default=None, help="with --from-json: write the merge")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="<action>")
    sub.required = True
    _add_check_arguments(sub.add_parser(
        "check", help="every model through Paddle Lite: ops, .nb conversion, x86 .nb parity",
        description="Zoo-wide Paddle Lite check: op compatibility per target, .nb conversion "
                    "and x86 .nb parity against the eager deploy form."))
    lite_runner.add_arguments(sub.add_parser("lite-bench", help=lite_runner.HELP,
                                             description=lite_runner.DESCRIPTION))
    files = sub.add_parser("device-files", help="copy the board-side runner files into a folder",
                           description="Copy lite_runner.py, lut_device.py and the helpers "
                                       "they load (no ppnets, no paddle needed) into a folder "
                                       "for an ARM board.")
    files.add_argument("--output-dir", required=True, help="the folder to fill")


def _from_json(args: argparse.Namespace) -> int:
    merged = zoo_check.merge_reports(args.from_json)
    table = zoo_check.format_table(merged["rows"])
    print(table)
    if args.merged_json:
        atomic_write_json(args.merged_json, {
            "schema": "ppnets.deploy.zoo_lite/1", "partial": merged["partial"],
            "merged_from": merged["sources"], "rows": merged["rows"]}, strict=True)
    if args.markdown:
        passed = sum(zoo_check.row_ok(r) for r in merged["rows"])
        partial = (" (PARTIAL: interrupted zoo runs; re-run the full command)"
                   if merged["partial"] else "")
        header = (f"Generated by `{args.command}` from {', '.join(merged['sources'])}: "
                  f"{passed}/{len(merged['rows'])} models pass{partial}."
                  + "".join(f" {r}" for r in merged["runs"]))
        zoo_check.update_markdown(args.markdown, table, header)
    return 0


def _progress(args: argparse.Namespace):
    """A progress bar, and the rows so far saved to ``<json>.partial`` (an interrupted zoo run
    keeps them)."""
    bar = tqdm(total=len(resolve_model_names(args.models)), desc="zoo check", unit="model",
               file=sys.stderr, disable=None)
    partial: List[Dict[str, Any]] = []

    def progress(row):
        bar.update()
        bar.set_postfix_str(f"{row['model']} {'OK' if zoo_check.row_ok(row) else 'FAIL'}")
        if args.json:
            partial.append(row)
            atomic_write_json(args.json + ".partial", {"partial": True, "rows": partial},
                              strict=True)
    return bar, progress


def _verdict(report: Dict[str, Any], expect_fail: List[str]) -> int:
    failed = {r["model"] for r in report["rows"] if not zoo_check.row_ok(r)}
    expected = set(expect_fail)
    unexpected, fixed = sorted(failed - expected), sorted(expected - failed)
    if unexpected or fixed:
        print(f"unexpected failures: {unexpected}; expected failures that passed: {fixed}",
              file=sys.stderr)
        return 1
    return 0


def run_check(args: argparse.Namespace) -> int:
    if args.from_json:
        return _from_json(args)
    bar, progress = _progress(args)
    report = zoo_check.run(args.models, tuple(args.targets), args.atol, workdir=args.workdir,
                           progress=progress, size=args.size, batch_size=args.batch_size,
                           jobs=args.jobs, features_only=args.features_only)
    bar.close()
    report["command"] = args.command
    table = zoo_check.format_table(report["rows"])
    print(table)
    if args.json:
        atomic_write_json(args.json, report, strict=True)
        if os.path.exists(args.json + ".partial"):
            os.remove(args.json + ".partial")
    if args.markdown:
        zoo_check.update_markdown(args.markdown, table, "Generated by this run. "
                                  + zoo_check.run_description(report))
    return _verdict(report, args.expect_fail)


def run_device_files(args: argparse.Namespace) -> int:
    written = lite.copy_device_files(args.output_dir)
    print(json.dumps([os.path.basename(p) for p in written]))
    print(f"Copy {args.output_dir}/ to the board (Python 3, pip install paddlelite numpy) and run "
          "there: python3 lite_runner.py --nb model_arm.nb --json arm.json (docs/deploy.md)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "lite-bench":
        return lite_runner.run(args)
    action = {"check": run_check, "device-files": run_device_files}[args.action]
    return report_errors(lambda: action(args), ERRORS)

