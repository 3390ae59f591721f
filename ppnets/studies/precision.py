"""bf16 and INT8 on x86 beside fp32, with accuracy (``ppnets study x86-precision``).

One model with real weights (MobileNetV2 with ImageNet weights in the issue) is exported
(Paddle Inference, legacy program, ONNX) and quantized to INT8
(:func:`ppnets.deploy.x86_int8.quantize_export`, calibrated on the first
``calibration_images`` of the list). Each runtime (Paddle Inference, ONNX Runtime, OpenVINO)
runs it at fp32, bf16 and int8 where it can, through :func:`ppnets.runtime.open_session`:

* latency at batch 1 for each thread count, by the bench harness's loop
  (:func:`ppnets.bench.timing.time_calls`; ``rounds`` interleaved rounds over every
  configuration, the median round reported);
* top-1/top-5 on every image of the list, on the images not used for calibration
  ("held out"), and the agreement of the top-1 predictions with the same runtime's fp32;
* the speed ratio to the same runtime's fp32 (fp32 median / this median).

The targets of issue 25 are judged and written, met or not, with the reason: bf16 within
0.5 point and INT8 within 1 point of fp32 top-1 (INT8 on the held-out images), each at
>= 1.5x fp32 speed, on at least one runtime, at every thread count measured. A runtime or
precision that cannot run is recorded with its reason; the study goes on.

Writes ``precision_x86.json`` (schema ``ppnets.precision/1``) and ``precision_x86.md`` into
``output_dir`` atomically, with the machine, the load average before and after, the date and
the command.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ppnets.bench.timing import latency_stats, time_calls
from ppnets.deploy import export
from ppnets.deploy.x86_int8 import eval_images, quantize_export
from ppnets.engine.evaluate import topk_correct
from ppnets.factory import create_model
from ppnets.runtime import (PRECISIONS, PrecisionUnsupportedError, RuntimeUnavailableError,
                            check_session, open_session)
from ppnets.utils import atomic_write_json, atomic_write_text, machine_info, markdown_table, utc_now

__all__ = ["SCHEMA", "STEM", "RUNTIMES", "TARGETS", "SMOKE", "PrecisionOptions",
           "PrecisionResult", "measure", "judge", "render", "run_precision_study"]

SCHEMA = "ppnets.precision/1"
STEM = "precision_x86"
RUNTIMES = ("paddle_inference", "onnxruntime", "openvino")
# precision -> (largest top-1 drop in points, smallest speed ratio to fp32): issue 25's goals
TARGETS = {"bf16": (0.5, 1.5), "int8": (1.0, 1.5)}
# export format -> the runtimes that read it (paddle includes the legacy program INT8 starts from)
EXPORT_READERS = {"paddle": ("paddle_inference",), "onnx": ("onnxruntime", "openvino")}
# quantize_export target -> the runtimes that read it at int8
INT8_READERS = {"onnx": ("onnxruntime", "openvino"), "paddle": ("paddle_inference",)}
# --smoke: a pipeline check; its numbers mean nothing and are marked so
SMOKE = {"limit": 12, "calibration_images": 4, "warmup": 1, "repeats": 3, "rounds": 1}


@dataclass
class PrecisionOptions:
    """What ``ppnets study x86-precision`` takes."""

    pretrained: str                       # weights file (create_model(pretrained=...))
    list_file: str                        # PaddleClas list: 'relative/path label' per line
    model: str = "mobilenetv2_100"
    root: Optional[str] = None            # image root (default: the list's folder)
    limit: Optional[int] = None           # evaluate the first N images (default: all)
    calibration_images: int = 100         # INT8 calibrates on the first N images of the list
    runtimes: Sequence[str] = RUNTIMES
    precisions: Sequence[str] = PRECISIONS
    threads: Sequence[int] = (1, 2)
    warmup: int = 10
    repeats: int = 50
    rounds: int = 3
    smoke: bool = False                   # SMOKE's settings: a pipeline check
    output_dir: str = "results/latency"
    export_dir: Optional[str] = None      # keep the export (and int8/) here; default: temporary

    def effective(self) -> "PrecisionOptions":
        """These options with ``SMOKE``'s settings applied when ``smoke`` is set."""
        if not self.smoke:
            return self
        limit = SMOKE["limit"] if self.limit is None else min(self.limit, SMOKE["limit"])
        return dataclasses.replace(self, limit=limit, **{k: v for k, v in SMOKE.items()
                                                         if k != "limit"})


@dataclass
class PrecisionResult:
    doc: Dict[str, Any]
    markdown: str
    paths: Dict[str, str]


def _check_options(opts: PrecisionOptions) -> None:
    for name in ("pretrained", "list_file"):
        path = getattr(opts, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name} {path!r} does not exist: give the weights file "
                                    "(--pretrained) and the image list (--list-file)")
    unknown = [r for r in opts.runtimes if r not in RUNTIMES]
    unknown += [p for p in opts.precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown runtimes/precisions {unknown}: runtimes {list(RUNTIMES)}, "
                         f"precisions {list(PRECISIONS)}")
    if "fp32" not in opts.precisions:
        raise ValueError("the precisions must include fp32: every ratio and agreement is "
                         "relative to the same runtime's fp32")
    if min(opts.threads) < 1 or opts.repeats < 1 or opts.rounds < 1 or opts.warmup < 0:
        raise ValueError("threads, repeats and rounds must be >= 1, warmup >= 0")


# --------------------------------------------------------------------------- measure
def _prepare(opts: PrecisionOptions, export_dir: str) -> Dict[str, Any]:
    """Export, read the images, quantize; what the sessions need."""
    model = create_model(opts.model, pretrained=opts.pretrained)
    weights = model.loaded_weights.record() if model.loaded_weights else None
    formats = [f for f, readers in EXPORT_READERS.items() if set(readers) & set(opts.runtimes)]
    report = export(model, formats=formats, out_dir=export_dir, weights=weights)
    x, y, source = eval_images(export_dir, opts.list_file, opts.root, opts.limit)
    n_cal = min(int(opts.calibration_images), len(x))
    cal_source = dict(source, selection=f"first {n_cal}", count=n_cal,
                      images=source["images"][:n_cal])
    int8 = None
    # only what the runtimes asked for read: PaddleSlim takes far longer than ONNX Runtime
    targets = [t for t, readers in INT8_READERS.items() if set(readers) & set(opts.runtimes)]
    if "int8" in opts.precisions and targets:
        int8 = quantize_export(export_dir, x[:n_cal], cal_source, targets=targets)
    return {"x": x, "y": y, "source": source, "calibration_count": n_cal, "int8": int8,
            "export": {"dir": export_dir, "all_passed": report["all_passed"],
                       "weights": weights,
                       "artifacts": {k: {"status": a.get("status"),
                                         "max_abs_diff": a.get("max_abs_diff")}
                                     for k, a in report["artifacts"].items()}}}


def _open(export_dir: str, runtime: str, precision: str, threads: int):
    """(session, None) or (None, reason)."""
    try:
        return open_session(export_dir, runtime, threads=threads, precision=precision), None
    except (RuntimeUnavailableError, PrecisionUnsupportedError, FileNotFoundError) as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a runtime's own failure is a result here
        return None, f"{type(exc).__name__}: {str(exc)[-800:]}"


def _predict(session, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([session.run(x[i:i + batch])[0].reshape(len(x[i:i + batch]), -1)
                           for i in range(0, len(x), batch)])


def _accuracy(logits: np.ndarray, y: np.ndarray, n_cal: int) -> Dict[str, Any]:
    def top(k, sel):
        return float(topk_correct(logits[sel], y[sel], k).mean()) if len(y[sel]) else None

    held = slice(n_cal, None)
    return {"images": int(len(y)), "top1": top(1, slice(None)), "top5": top(5, slice(None)),
            "held_out_images": int(max(len(y) - n_cal, 0)), "held_out_top1": top(1, held),
            "held_out_top5": top(5, held)}


def _quantization_failure(int8: Optional[Dict[str, Any]], runtime: str) -> Optional[str]:
    """Why the INT8 artifact ``runtime`` reads was not written (None when it was)."""
    target = next(t for t, readers in INT8_READERS.items() if runtime in readers)
    record = ((int8 or {}).get("targets") or {}).get(target)
    if record is None or record.get("status") == "written":
        return None
    return (f"INT8 quantization ({target}) {record['status']}: "
            f"{record.get('error') or record.get('reason')}")


def _evaluate_config(prep: Dict[str, Any], runtime: str, precision: str,
                     threads: Sequence[int]) -> Tuple[Dict[str, Any], Dict[int, Any]]:
    """Open one session per thread count; check and evaluate on the first. Returns (row,
    sessions by thread count); a failure leaves ``row["error"]`` and no session."""
    row: Dict[str, Any] = {"runtime": runtime, "precision": precision}
    not_quantized = _quantization_failure(prep["int8"], runtime) if precision == "int8" else None
    if not_quantized:
        row["error"] = not_quantized
        return row, {}
    sessions: Dict[int, Any] = {}
    for t in threads:
        session, reason = _open(prep["export"]["dir"], runtime, precision, t)
        if session is None:
            row["error"] = reason
            for s in sessions.values():
                s.close()
            return row, {}
        sessions[t] = session
    first = sessions[threads[0]]
    row["session"] = first.record()
    try:
        row["check"] = {k: v for k, v in check_session(first, prep["export"]["dir"]).items()
                        if k != "session"}
        logits = _predict(first, prep["x"], prep["batch"])
    except Exception as exc:  # noqa: BLE001 - recorded; the other configurations go on
        row["error"] = f"{type(exc).__name__}: {str(exc)[-800:]}"
        for s in sessions.values():
            s.close()
        return row, {}
    row["accuracy"] = _accuracy(logits, prep["y"], prep["calibration_count"])
    row["predictions"] = logits.argmax(1).tolist()
    return row, sessions


def _time_rounds(rows: List[Dict[str, Any]], sessions: Dict[Tuple[str, str, int], Any],
                 x0: np.ndarray, opts: PrecisionOptions, progress) -> None:
    """Interleaved rounds: every (configuration, threads) timed once per round, so that a change
    of machine load spreads over all of them; the median round is reported."""
    samples: Dict[Tuple[str, str, int], List[List[float]]] = {k: [] for k in sessions}
    failed: Dict[Tuple[str, str], str] = {}
    for _ in range(opts.rounds):
        for key, session in sessions.items():
            if key[:2] in failed:
                continue
            try:
                samples[key].append(time_calls(lambda s=session: s.run(x0), opts.warmup,
                                               opts.repeats))
            except Exception as exc:  # noqa: BLE001 - recorded; the others are still timed
                failed[key[:2]] = (f"timing at threads {key[2]} failed: "
                                   f"{type(exc).__name__}: {str(exc)[-800:]}")
            progress(f"timed {key[0]} {key[1]} threads={key[2]}")
    for row in rows:
        if (row["runtime"], row["precision"]) in failed:
            row["error"] = failed[(row["runtime"], row["precision"])]
            continue
        row["latency"] = {}
        for (runtime, precision, t), rounds in samples.items():
            if (runtime, precision) != (row["runtime"], row["precision"]):
                continue
            medians = [float(np.median(r)) for r in rounds]
            chosen = rounds[int(np.argsort(medians)[len(medians) // 2])]
            stats = latency_stats(chosen)
            stats["round_medians_ms"] = [m * 1e3 for m in medians]
            row["latency"][str(t)] = stats


def _progress(text: str) -> None:
    print(f"[x86-precision] {text}", file=sys.stderr, flush=True)


def measure(opts: PrecisionOptions, export_dir: str) -> Dict[str, Any]:
    """Export, quantize, evaluate and time every runtime x precision (module docstring)."""
    _progress(f"exporting {opts.model} and quantizing to {export_dir}")
    prep = _prepare(opts, export_dir)
    prep["batch"] = 1
    rows: List[Dict[str, Any]] = []
    sessions: Dict[Tuple[str, str, int], Any] = {}
    threads = list(dict.fromkeys(int(t) for t in opts.threads))
    for runtime in opts.runtimes:
        for precision in opts.precisions:
            row, opened = _evaluate_config(prep, runtime, precision, threads)
            rows.append(row)
            sessions.update({(runtime, precision, t): s for t, s in opened.items()})
            _progress(f"{runtime} {precision}: " + (f"failed: {row['error'][:200]}"
                                                    if "error" in row else "evaluated"))
    try:
        _time_rounds([r for r in rows if "error" not in r], sessions, prep["x"][:1], opts,
                     _progress)
    finally:
        for s in sessions.values():
            s.close()
    return {"rows": rows, "images": prep["source"], "labels": prep["y"].tolist(),
            "calibration_images": prep["calibration_count"], "int8": prep["int8"],
            "export": prep["export"], "threads": threads}


# --------------------------------------------------------------------------- judge
def _compare_with_fp32(rows: List[Dict[str, Any]], threads: Sequence[int]) -> None:
    """Each row's top-1 change, prediction agreement and speed ratio against its runtime's
    fp32 row (in place)."""
    fp32 = {r["runtime"]: r for r in rows if r["precision"] == "fp32" and "error" not in r}
    for row in rows:
        ref = fp32.get(row["runtime"])
        if "error" in row or ref is None:
            continue
        acc, ref_acc = row["accuracy"], ref["accuracy"]
        pred, ref_pred = np.asarray(row["predictions"]), np.asarray(ref["predictions"])
        row["vs_fp32"] = {
            "top1_change_points": 100.0 * (acc["top1"] - ref_acc["top1"]),
            "held_out_top1_change_points": (None if acc["held_out_top1"] is None else
                                            100.0 * (acc["held_out_top1"]
                                                     - ref_acc["held_out_top1"])),
            "prediction_agreement": float((pred == ref_pred).mean()),
            "speed_ratio": {str(t): ref["latency"][str(t)]["median"]
                            / row["latency"][str(t)]["median"] for t in threads}}


def _target_verdict(rows: List[Dict[str, Any]], precision: str,
                    threads: Sequence[int]) -> Dict[str, Any]:
    max_drop, min_ratio = TARGETS[precision]
    which = "held_out_top1_change_points" if precision == "int8" else "top1_change_points"
    per_threads = {}
    candidates = [r for r in rows if r["precision"] == precision and "vs_fp32" in r]
    for t in threads:
        passing, lines = [], []
        for r in candidates:
            change = r["vs_fp32"][which]
            if change is None:   # no held-out images (every image calibrated)
                change = r["vs_fp32"]["top1_change_points"]
            ratio = r["vs_fp32"]["speed_ratio"][str(t)]
            ok = change >= -max_drop and ratio >= min_ratio
            lines.append(f"{r['runtime']}: top-1 {change:+.2f} points, {ratio:.2f}x fp32 "
                         f"({'meets' if ok else 'misses'})")
            if ok:
                passing.append(r["runtime"])
        per_threads[str(t)] = {"met": bool(passing), "runtimes_meeting": passing,
                               "details": lines}
    met = bool(candidates) and all(v["met"] for v in per_threads.values())
    goal = (f"{precision}: top-1 within {max_drop} point{'s' if max_drop != 1 else ''} of fp32"
            f"{' (held-out images)' if precision == 'int8' else ''} at >= {min_ratio}x fp32 "
            "speed, on at least one runtime, at every thread count")
    if not candidates:
        reason = f"no runtime ran {precision} (see the failures)"
    else:
        reason = "; ".join(f"threads {t}: " + ("; ".join(v["details"]))
                           for t, v in per_threads.items())
    return {"goal": goal, "met": met, "per_threads": per_threads, "reason": reason}


def judge(opts: PrecisionOptions, measured: Dict[str, Any]) -> Dict[str, Any]:
    """Ratios to fp32 and the verdict on each target."""
    rows, threads = measured["rows"], measured["threads"]
    _compare_with_fp32(rows, threads)
    targets = {p: _target_verdict(rows, p, threads) for p in TARGETS if p in opts.precisions}
    failures = [{"runtime": r["runtime"], "precision": r["precision"], "error": r["error"]}
                for r in rows if "error" in r]
    return {"targets": targets, "failures": failures}


# --------------------------------------------------------------------------- render
def _pct(v: Optional[float]) -> Optional[float]:
    return None if v is None else 100.0 * v


def _result_table(rows: List[Dict[str, Any]], threads: Sequence[int]) -> str:
    header = ["runtime", "precision", "top-1 %", "top-1 held-out %", "top-5 %",
              "top-1 change (pts)", "agree w/ fp32 %"]
    for t in threads:
        header += [f"ms ({t} thr)", f"x fp32 ({t} thr)"]
    header.append("check")
    body = []
    for r in rows:
        if "error" in r:
            continue
        acc, vs = r["accuracy"], r.get("vs_fp32", {})
        line = [r["runtime"], r["precision"], _pct(acc["top1"]), _pct(acc["held_out_top1"]),
                _pct(acc["top5"]), vs.get("top1_change_points"),
                _pct(vs.get("prediction_agreement"))]
        for t in threads:
            line += [r["latency"][str(t)]["median"], vs.get("speed_ratio", {}).get(str(t))]
        check, diff = r["check"], r["check"].get("max_abs_diff")
        line.append(f"{check.get('status')}" + ("" if diff is None
                                                 else f" (max abs diff {diff:.2g})"))
        body.append(line)
    return markdown_table(header, body)


def render(opts: PrecisionOptions, measured: Dict[str, Any], judged: Dict[str, Any],
           doc: Dict[str, Any]) -> str:
    """The Markdown page."""
    m = doc["machine"]
    n, n_cal = measured["images"]["count"], measured["calibration_images"]
    lines = [f"# bf16 and INT8 on x86: {opts.model}, latency and accuracy", ""]
    if doc["smoke"]:
        lines += ["**SMOKE RUN: a pipeline check on a few images with 3 repeats; the numbers "
                  "mean nothing.**", ""]
    lines += [f"- date: {doc['started_utc']} - {doc['finished_utc']}",
              f"- machine: {m.get('cpu_model')} ({m.get('logical_cores')} logical cores), "
              f"load average before {doc['load_avg_start']}, after {doc['load_avg_end']}",
              f"- command: `{doc['command']}`",
              f"- weights: `{opts.pretrained}`; images: the first {n} of `{opts.list_file}`, "
              f"preprocessed with the weights' eval transform "
              f"({measured['images']['preprocessing']})",
              f"- INT8: calibrated on the first {n_cal} images (`int8/calibration.json`); "
              f"'held-out' is the other {max(n - n_cal, 0)}",
              f"- latency: batch 1, median of {opts.repeats} timed runs after {opts.warmup} "
              f"warm-up, median of {opts.rounds} interleaved rounds; 'x fp32' is the same "
              "runtime's fp32 median over this one (above 1: faster)", "",
              "## Results", "", _result_table(measured["rows"], measured["threads"]), "",
              "## Targets (issue 25)", ""]
    for precision, verdict in judged["targets"].items():
        lines += [f"- **{verdict['goal']}**: {'MET' if verdict['met'] else 'NOT MET'}. "
                  f"{verdict['reason']}"]
    lines += ["", f"On {n} images one image is {100.0 / max(n, 1):.2f} points of top-1; the "
              "agreement with fp32 is the finer measure of what a precision changes."]
    if judged["failures"]:
        lines += ["", "## Runtimes and precisions that did not run", "",
                  markdown_table(["runtime", "precision", "reason"],
                                 [(f["runtime"], f["precision"], f["error"])
                                  for f in judged["failures"]], align="---|---|---")]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- run
def _load_avg() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_precision_study(options: PrecisionOptions, command: Optional[str] = None,
                        run_record: Optional[Dict[str, Any]] = None) -> PrecisionResult:
    """Measure, judge, render and write ``<output_dir>/precision_x86.json`` and ``.md``.
    ``command``: the command line recorded (default: this call); ``run_record``: a
    :class:`ppnets.experiments.RunRecord`'s ``data``, embedded as is. Raises
    FileNotFoundError / ValueError (what to change) before anything is measured."""
    opts = options.effective()
    _check_options(opts)
    started, load_start = utc_now(), _load_avg()
    temporary = None if opts.export_dir else tempfile.mkdtemp(prefix="ppnets-precision-")
    try:
        measured = measure(opts, os.path.abspath(opts.export_dir or temporary))
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    judged = judge(opts, measured)
    doc = {"schema": SCHEMA, "study": "x86-precision", "smoke": bool(opts.smoke),
           "command": command or f"ppnets.studies.precision.run_precision_study({opts!r})",
           "started_utc": started, "finished_utc": utc_now(), "load_avg_start": load_start,
           "load_avg_end": _load_avg(),
           "machine": machine_info(threads=max(measured["threads"]), mkldnn=True),
           "run_record": run_record,
           "settings": {k: (list(v) if isinstance(v, (list, tuple)) else v)
                        for k, v in dataclasses.asdict(opts).items()},
           "model": opts.model, "export": measured["export"], "images": measured["images"],
           "calibration_images": measured["calibration_images"], "int8": measured["int8"],
           "threads": measured["threads"], "labels": measured["labels"],
           "results": measured["rows"], **judged}
    markdown = render(opts, measured, judged, doc)
    os.makedirs(opts.output_dir, exist_ok=True)
    stem = os.path.join(opts.output_dir, STEM)
    paths = {"json": stem + ".json", "markdown": stem + ".md"}
    atomic_write_json(paths["json"], doc, strict=True)
    atomic_write_text(paths["markdown"], markdown)
    for p in paths.values():
        print(f"wrote {p}", file=sys.stderr)
    return PrecisionResult(doc=doc, markdown=markdown, paths=paths)
