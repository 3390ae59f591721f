"""Which runtime and precision serve a model fastest on this machine (``ppnets bench --recommend``).

    from ppnets.bench.recommend import recommend
    rec = recommend("mobilenetv2_100", threads=1)           # registry name: exported here
    rec = recommend("exports/mobilenetv2_100", threads=2)   # an export folder (INT8 too)
    rec["recommendation"]     # {"runtime", "precision", "median_ms", ...}: fastest exact
    rec["commands"]           # the `ppnets export` and `ppnets predict` command lines for it

Every available runtime x precision is timed by the one harness
(:func:`ppnets.bench.benchmark_models`). Only fp32 runs whose outputs pass the export check
(``exact``) can be recommended; bf16 and int8 are listed as approximate, with their output
difference against eager and -- when an accuracy record is given -- the top-1 change on real
images, because a lower precision is a choice made on purpose, never a silent default.
"""
from __future__ import annotations

import json
import os
import shlex
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from ppnets.runtime import PRECISIONS

from .harness import benchmark_models

__all__ = ["recommend", "format_recommendation", "load_accuracy", "EXPORT_FORMATS",
           "PREDICT_COMMAND"]

# The export formats each runtime reads (ppnets.runtime.sessions, "Artifacts").
EXPORT_FORMATS = {"paddle_inference": ["paddle"], "onnxruntime": ["onnx"], "openvino": ["onnx"],
                  "paddle_lite": ["lite", "--lite-targets", "x86"]}
PREDICT_COMMAND = ["ppnets", "predict", "IMAGES...", "--export", "{export_dir}",
                   "--runtime", "{runtime}", "--precision", "{precision}", "--threads",
                   "{threads}"]


def load_accuracy(source: Union[None, str, Mapping[str, Any], Sequence[Mapping[str, Any]]]
                  ) -> Dict[str, Dict[str, Any]]:
    """Accuracy records keyed ``"runtime:precision"``, each with ``top1`` and, when known,
    ``reference_top1`` (the fp32 / dygraph top-1 on the same images). ``source``: None, a
    mapping already in that form, a list of records with ``runtime``, ``precision``, ``top1``
    (and ``dygraph_top1`` or ``reference_top1``), or the path of a JSON file holding either."""
    if source is None:
        return {}
    if isinstance(source, str):
        with open(source, encoding="utf-8") as f:
            source = json.load(f)
    if isinstance(source, Mapping) and "records" in source:
        source = source["records"]
    if isinstance(source, Mapping):
        return {str(k): dict(v) for k, v in source.items()}
    out = {}
    for rec in source:
        if not {"runtime", "precision", "top1"} <= set(rec):
            raise ValueError(f"an accuracy record needs runtime, precision and top1; got "
                             f"{sorted(rec)}")
        reference = rec.get("reference_top1", rec.get("dygraph_top1"))
        out[f"{rec['runtime']}:{rec['precision']}"] = {"top1": rec["top1"],
                                                      "reference_top1": reference}
    return out


def _row(r: Dict[str, Any], accuracy: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    parity = r.get("parity") or {}
    row = {"runtime": r["backend"], "precision": r["precision"],
           "median_ms": r["latency_ms"]["median"], "iqr_ms": r["latency_ms"]["iqr"],
           "exact": bool(r.get("exact")), "output_check": parity.get("status"),
           "max_rel_diff_vs_dygraph": r.get("max_rel_diff_vs_dygraph"),
           "top1_agreement_on_reference_input": parity.get("top1_agreement")}
    acc = accuracy.get(f"{r['backend']}:{r['precision']}")
    if acc:
        row["top1"] = acc.get("top1")
        if acc.get("reference_top1") is not None and acc.get("top1") is not None:
            row["top1_change_points"] = acc["top1"] - acc["reference_top1"]
    return row


def _commands(model: str, export_dir: Optional[str], runtime: str, precision: str,
              threads: int, pretrained: Optional[str]) -> Dict[str, Optional[str]]:
    folder = export_dir or os.path.join("exports", model)
    export = None
    if export_dir is None:
        export = ["ppnets", "export", "--model", model]
        # the published weights unless the user named theirs
        export += ["--pretrained", pretrained] if pretrained else ["--pretrained"]
        export += ["--formats", *EXPORT_FORMATS.get(runtime, ["paddle", "onnx"]),
                   "--output-dir", folder]
        export = shlex.join(export)
    predict = " ".join(shlex.quote(part.format(export_dir=folder, runtime=runtime,
                                               precision=precision, threads=threads))
                       if "{" in part else part for part in PREDICT_COMMAND)
    return {"export": export, "predict": predict}


def recommend(name_or_export: str, threads: int = 1, runtimes: Union[str, Sequence[str]] = "all",
              precisions: Sequence[str] = PRECISIONS, warmup: int = 10, repeats: int = 50,
              rounds: int = 3, accuracy=None, workdir: Optional[str] = None,
              pretrained: Optional[str] = None, progress=None,
              input_size: Optional[Sequence[int]] = None, batch_size: int = 1
              ) -> Dict[str, Any]:
    """Time ``name_or_export`` (a registry name, exported here, or an export folder) in every
    runtime of ``runtimes`` at every precision of ``precisions`` with ``threads`` threads, and
    name the fastest exact (fp32, output check passed) runtime (``input_size`` and
    ``batch_size`` apply to a registry name; an export folder has its own). ``accuracy`` (see
    :func:`load_accuracy`) adds the measured top-1 of approximate options. ``pretrained``
    goes into the printed export command. Returns a JSON-serialisable dict: ``model``,
    ``threads``, ``exact`` and ``approximate`` (rows, fastest first), ``unavailable``,
    ``recommendation`` (None when no exact run passed), ``fastest_approximate``, ``commands``
    and the full benchmark ``report``."""
    export_dir = None
    if os.path.isdir(name_or_export):
        export_dir = os.path.abspath(name_or_export)
    report = benchmark_models(None if export_dir else [name_or_export], runtimes=runtimes,
                              precisions=precisions, threads=threads, warmup=warmup,
                              repeats=repeats, rounds=rounds, workdir=workdir,
                              export_dir=export_dir, progress=progress,
                              **({} if export_dir else {"input_size": input_size,
                                                         "batch_size": batch_size}),
                              command=f"recommend({name_or_export!r}, threads={threads})")
    accuracy = load_accuracy(accuracy)
    measured = [r for r in report["results"] if r.get("status") == "measured"]
    model = (measured or report["results"])[0]["model"]
    exact = sorted((_row(r, accuracy) for r in measured
                    if r["precision"] == "fp32" and r.get("exact")),
                   key=lambda row: row["median_ms"])
    approximate = sorted((_row(r, accuracy) for r in measured if r["precision"] != "fp32"),
                         key=lambda row: row["median_ms"])
    failed = [_row(r, accuracy) for r in measured if r["precision"] == "fp32"
              and not r.get("exact")]
    best = exact[0] if exact else None
    for row in exact + approximate:
        row["speedup_vs_fastest_exact"] = best["median_ms"] / row["median_ms"] if best else None
    result: Dict[str, Any] = {
        "model": model, "threads": threads, "export_dir": export_dir,
        "exact": exact, "approximate": approximate, "failed_output_check": failed,
        "unavailable": [{"runtime": r["backend"], "precision": r["precision"],
                         "reason": r["reason"]} for r in report["results"]
                        if r.get("status") == "unavailable"],
        "recommendation": best,
        "fastest_approximate": approximate[0] if approximate else None,
        "commands": (_commands(model, export_dir, best["runtime"], best["precision"], threads,
                               pretrained) if best else None),
        "machine": report["machine"], "report": report}
    return result


def _row_line(row: Dict[str, Any]) -> str:
    speed = row.get("speedup_vs_fastest_exact")
    text = (f"| {row['runtime']} | {row['precision']} | {row['median_ms']:.3f} | "
            f"{row['iqr_ms']:.3f} | {'n/a' if speed is None else f'{speed:.2f}x'} | ")
    if row["exact"]:
        return text + "exact (fp32, output check passed) |"
    diff = row.get("max_rel_diff_vs_dygraph")
    agree = row.get("top1_agreement_on_reference_input")
    text += f"approximate: max rel. diff {'n/a' if diff is None else f'{diff:.2e}'}"
    if agree is not None:
        text += f", top-1 agreement {100 * agree:.0f} % on the reference input"
    if row.get("top1_change_points") is not None:
        text += f", top-1 {row['top1']:.2f} ({row['top1_change_points']:+.2f} points)"
    else:
        text += ", top-1 on real images not given (ppnets eval --runtime/--precision)"
    return text + " |"


def format_recommendation(rec: Dict[str, Any]) -> str:
    """The recommendation as text: the table of every run, then the choice and its commands."""
    lines = [f"{rec['model']}, {rec['threads']} thread(s), {rec['machine'].get('cpu_model')}",
             "", "| runtime | precision | median (ms) | IQR (ms) | speed vs fastest exact | "
             "output |", "|---|---|---:|---:|---:|---|"]
    lines += [_row_line(row) for row in rec["exact"] + rec["approximate"]]
    for row in rec["failed_output_check"]:
        lines.append(f"| {row['runtime']} | {row['precision']} | {row['median_ms']:.3f} | "
                     f"{row['iqr_ms']:.3f} | n/a | **output check FAILED** |")
    if rec["unavailable"]:
        lines.append("")
    for u in rec["unavailable"]:
        lines.append(f"- {u['runtime']} {u['precision']}: unavailable: {u['reason']}")
    best = rec["recommendation"]
    if best is None:
        lines.append("\nNo runtime passed the fp32 output check: nothing to recommend.")
        return "\n".join(lines)
    lines += ["", f"Fastest exact: {best['runtime']} {best['precision']} "
                  f"({best['median_ms']:.3f} ms median)."]
    approx = rec["fastest_approximate"]
    if approx is not None and approx["median_ms"] < best["median_ms"]:
        lines.append(f"Faster but approximate: {approx['runtime']} {approx['precision']} "
                     f"({approx['median_ms']:.3f} ms, {approx['speedup_vs_fastest_exact']:.2f}x)"
                     ": choose it on purpose after measuring its top-1 "
                     f"(ppnets eval --runtime {approx['runtime']} --precision "
                     f"{approx['precision']}).")
    if rec["commands"]["export"]:
        lines += ["", "Export:", f"  {rec['commands']['export']}"]
    lines += ["Predict:", f"  {rec['commands']['predict']}"]
    return "\n".join(lines)
