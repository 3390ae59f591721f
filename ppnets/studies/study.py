"""The shared runner of the latency studies (``ppnets study NAME``, docs/latency_studies.md).

A study builds small networks (or takes registered models), measures each one with the project's
one harness, :func:`ppnets.bench.benchmark_model` (deploy form, median/IQR over individually
timed repeats), on every runtime asked for (``runtimes``: Paddle Inference by default, ONNX
Runtime, OpenVINO, Paddle Lite; :mod:`ppnets.runtime`), sets the paper's numbers
(:mod:`ppnets.studies.published`) beside ours, and writes three files atomically:
``<study>.json`` (schema ``ppnets.study/2``: everything per runtime under ``runtimes``, every
bench record included), ``<study>.md`` (a table saying per runtime whether each of the paper's
claims holds, then each runtime's tables beside the paper's numbers) and ``<study>.png``
(matplotlib, every runtime in it).

A study is a :class:`Study`: functions run in turn by :meth:`Study.run` --
``measure(runner, options)`` benchmarks through the :class:`StudyRunner` (each network on each
runtime) and returns what it built; then, once per runtime with that runtime active in the
runner (:meth:`StudyRunner.find` reads its records), ``judge(runner, options, measured)`` turns
the measurements into the JSON tables and checks the paper's claims (its ``verdicts``: one per
claim and device, ``holds`` True/False/None), and ``render(runner, options, measured, judged)``
returns that runtime's Markdown; ``describe(runner, options, measured)`` returns the page's
header and ``figure(runner, options, measured, judged_by_runtime)`` the figure over all
runtimes. :data:`ppnets.studies.STUDIES` registers them by name.

Results measured elsewhere (a GPU host, an ARM board running Paddle Lite) are merged from JSON
files of the bench schema (``ppnets.bench/1``: ``{"results": [...]}``, or a study JSON and its
``measurements``), matched by the record's ``model`` field, which for a study network is its
label (``keep_models=DIR`` keeps the exported programs under ``DIR/<label>/`` for such a
runner). They are shown with the first runtime's tables (Paddle Inference by default); the
other runtimes are measured on this machine's CPU only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ppnets.bench import benchmark_model, check_settings
from ppnets.runtime import RUNTIMES, runtime_status
from ppnets.utils import (atomic_write, atomic_write_json, atomic_write_text, machine_info,
                          markdown_table, utc_now)

__all__ = ["STUDY_SCHEMA", "QUICK_WARMUP", "QUICK_REPEATS", "QUICK_ROUNDS", "DEFAULT_RUNTIMES",
           "StudyOptions", "Study", "StudyResult", "StudyError", "StudyRunner", "compare_order",
           "verdict", "ordering_verdict", "resolve_runtimes", "load_device_results",
           "stabilise_weights", "speed", "ratio", "bar_groups"]

# /2: everything measured and judged sits per runtime under "runtimes" (/1 had one runtime,
# Paddle Inference, at the top level)
STUDY_SCHEMA = "ppnets.study/2"
DEFAULT_RUNTIMES = ("paddle_inference",)
QUICK_WARMUP, QUICK_REPEATS, QUICK_ROUNDS = 1, 3, 1
DEFAULT_OUTPUT_DIR = "results/latency"

Figure = Callable[[Any], None]  # draws on matplotlib.pyplot, passed in


class StudyError(ValueError):
    """A study cannot run as asked (a setting, a device results file, a model name); raised
    before anything is measured or written. The message says what to change."""


@dataclass
class StudyOptions:
    """What every study takes (the options ``ppnets study NAME`` shares)."""

    devices: Sequence[str] = ("cpu",)   # where to measure on this machine: "cpu", "gpu"
    # runtimes to measure each network on (ppnets.runtime.RUNTIMES, or "all"); one not installed
    # here is skipped with the reason. Runtimes other than paddle_inference run on the CPU only.
    runtimes: Sequence[str] = DEFAULT_RUNTIMES
    threads: int = 1                    # CPU math-library threads (the papers' CPU figures: 1)
    mkldnn: bool = True                 # oneDNN kernels on CPU
    warmup: int = 10                    # untimed runs per predictor
    repeats: int = 50                   # individually timed runs per predictor
    rounds: int = 3                     # fresh predictors per network; the median round counts
    quick: bool = False                 # a subset with QUICK_* settings: a pipeline check
    arm_results: Optional[str] = None   # bench-schema JSON measured on an ARM device
    gpu_results: Optional[str] = None   # bench-schema JSON measured on a GPU host
    output_dir: str = DEFAULT_OUTPUT_DIR
    # keep every export under DIR/<label>/ (runtimes but paddle_inference: DIR/<runtime>/<label>/)
    keep_models: Optional[str] = None
    figure: bool = True                 # write <study>.png


@dataclass
class StudyResult:
    """What a study wrote: ``doc`` is the ``<study>.json`` document, ``markdown`` the page,
    ``paths`` the files (``json``, ``markdown`` and, unless the figure was off, ``figure``)."""

    study: str
    doc: Dict[str, Any]
    markdown: str
    paths: Dict[str, str]


@dataclass(frozen=True)
class Study:
    """One latency study: its name (``ppnets study NAME``), the stem of its output files
    (``<stem>.json/.md/.png``, also ``reproduce/<stem>.py``), a one-line summary, its options
    class and its steps (see the module docstring)."""

    name: str
    stem: str
    summary: str
    measure: Callable[["StudyRunner", StudyOptions], Any]
    judge: Callable[["StudyRunner", StudyOptions, Any], Dict[str, Any]]
    describe: Callable[["StudyRunner", StudyOptions, Any], str]
    render: Callable[["StudyRunner", StudyOptions, Any, Dict[str, Any]], str]
    figure: Callable[["StudyRunner", StudyOptions, Any, Dict[str, Dict[str, Any]]],
                     Optional[Figure]]
    options: type = StudyOptions

    def run(self, options: Optional[StudyOptions] = None, *, command: Optional[str] = None,
            run_record: Optional[Dict[str, Any]] = None) -> StudyResult:
        """Measure, judge and render per runtime, and write. ``command`` is the command line
        recorded in the outputs (default: this call, as Python); ``run_record`` a
        :class:`ppnets.experiments.RunRecord`'s ``data``, embedded as is. Raises
        :class:`StudyError` before anything is measured when the options cannot work."""
        options = self.options() if options is None else options
        if not isinstance(options, self.options):
            raise TypeError(f"study {self.name} takes {self.options.__name__}, "
                            f"got {type(options).__name__}")
        runner = StudyRunner(self.stem, options, command or self.call_text(options),
                             record=run_record)
        try:
            measured = self.measure(runner, options)
            judged, sections = {}, {}
            for runtime in runner.runtimes:
                with runner.judging(runtime):
                    judged[runtime] = self.judge(runner, options, measured)
                    sections[runtime] = self.render(runner, options, measured, judged[runtime])
            markdown = runner.page(self.describe(runner, options, measured), judged, sections)
            figure = self.figure(runner, options, measured, judged)
        finally:
            runner.progress.close()
        return runner.write(judged, markdown, figure)

    def call_text(self, options: StudyOptions) -> str:
        """This study run as a Python call (the options that differ from the defaults)."""
        changed = [f"{f.name}={getattr(options, f.name)!r}" for f in dataclasses.fields(options)
                   if getattr(options, f.name) != f.default]
        return (f"ppnets.studies.run_study({self.name!r}, "
                f"{type(options).__name__}({', '.join(changed)}))")


# --------------------------------------------------------------------------------------------
# Small helpers shared by the studies


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return float(a) / float(b)


def speed(record: Optional[Dict[str, Any]], unit: str) -> Optional[float]:
    """A bench record's median expressed in ``unit``: ``ms``, ``images/s``, ``batches/s``,
    ``GFLOPS`` (2 x MACs / s, ppnets' convention) or ``GMAC/s`` (MACs / s, the convention of
    papers that call MACs "FLOPs", e.g. FasterNet)."""
    if record is None:
        return None
    median_ms = record["latency_ms"]["median"]
    if unit == "ms":
        return median_ms
    if unit == "images/s":
        return record["batch_size"] * 1e3 / median_ms
    if unit == "batches/s":
        return 1e3 / median_ms
    if unit == "GFLOPS":
        return 2.0 * record["macs"] * record["batch_size"] / median_ms / 1e6
    if unit == "GMAC/s":
        return record["macs"] * record["batch_size"] / median_ms / 1e6
    raise ValueError(f"unknown unit {unit!r}; expected ms, images/s, batches/s, GFLOPS, GMAC/s")


def compare_order(paper: Dict[str, float], ours: Dict[str, Optional[float]],
                  higher_is_faster: bool, what: str) -> Dict[str, Any]:
    """Compare the paper's ordering of ``what`` with ours, pair by pair. Reported, never
    asserted. Ties in the paper's numbers are not counted as orderings."""
    keys = [k for k in paper if ours.get(k) is not None and paper[k] is not None]
    sign = -1.0 if higher_is_faster else 1.0
    paper_order = sorted(keys, key=lambda k: sign * paper[k])
    our_order = sorted(keys, key=lambda k: sign * ours[k])
    discordant = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            p = paper[a] - paper[b]
            o = ours[a] - ours[b]
            if p != 0 and p * o <= 0:
                faster_p = a if (p > 0) == higher_is_faster else b
                discordant.append(f"paper: {faster_p} faster; ours: "
                                  f"{b if faster_p == a else a} faster or equal")
    if len(keys) < 2:
        text = f"{what}: fewer than two comparable entries, nothing to compare"
    elif discordant:
        text = (f"{what}: ORDER DIFFERS from the paper. Paper (fastest first): "
                f"{' > '.join(paper_order)}; ours: {' > '.join(our_order)}. "
                f"{len(discordant)} of {len(keys) * (len(keys) - 1) // 2} pairs disagree")
    else:
        text = f"{what}: same order as the paper ({' > '.join(our_order)}, fastest first)"
    return {"what": what, "paper_order": paper_order, "our_order": our_order,
            "agrees": not discordant and len(keys) >= 2, "discordant_pairs": discordant,
            "text": text}


def verdict(claim: str, device: str, holds: Optional[bool], text: str) -> Dict[str, Any]:
    """One entry of a judgement's ``verdicts``: whether ``claim`` (the same words on every
    runtime, so the runtimes line up in one row) holds on ``device``; ``holds`` None when there
    is nothing to decide (no order claimed, too few figures)."""
    return {"claim": claim, "device": device, "holds": holds, "text": text}


def ordering_verdict(claim: str, device: str, comparison: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`verdict` of a :func:`compare_order` result (None when fewer than two entries
    could be compared)."""
    decided = len(comparison.get("paper_order", ())) >= 2
    return verdict(claim, device, comparison["agrees"] if decided else None, comparison["text"])


def resolve_runtimes(requested: Sequence[str]) -> Tuple[List[str], Dict[str, str],
                                                         Dict[str, Optional[str]]]:
    """(runtimes to measure on, {runtime not available here: why}, {runtime: version}) for
    ``requested`` names of :data:`ppnets.runtime.RUNTIMES` (``all``: every one). Raises
    :class:`StudyError` for an unknown name or when none is available."""
    import ppnets.deploy  # noqa: F401 - registers the paddle_lite runtime (ppnets.deploy.lite)

    requested = [requested] if isinstance(requested, str) else list(requested)
    names = list(RUNTIMES) if "all" in requested else list(dict.fromkeys(requested))
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        raise StudyError(f"unknown runtime(s) {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(RUNTIMES)} or all")
    status = runtime_status()
    available = [n for n in names if status[n]["available"]]
    skipped = {n: status[n]["reason"] or "not available" for n in names if n not in available}
    if not available:
        raise StudyError("none of the runtimes asked for is available here: " + "; ".join(
            f"{n}: {why}" for n, why in skipped.items()))
    return available, skipped, {n: status[n]["version"] for n in available}


def load_device_results(path: str) -> List[Dict[str, Any]]:
    """Bench records from a JSON file measured elsewhere: a ``ppnets.bench/1`` report
    (``{"results": [...]}``), a list of records, or a study JSON (``ppnets.study/2``: the
    measurements of every runtime, the first runtime's first; ``/1``: its ``measurements``)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict) and isinstance(data.get("runtimes"), dict):
        records = [rec for entry in data["runtimes"].values()
                   for rec in (entry.get("measurements") or [])]
    elif isinstance(data, dict):
        records = data.get("results", data.get("measurements"))
    else:
        records = data
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a ppnets.bench report ({{'results': [...]}}), a list "
                         f"of bench records or a study JSON; found no record list")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "model" not in rec or "latency_ms" not in rec:
            raise ValueError(f"{path}: record {i} lacks 'model' or 'latency_ms' (bench schema "
                             "ppnets.bench/1, docs/benchmarking.md)")
        schema = rec.get("schema", "ppnets.bench/1")
        if not str(schema).startswith("ppnets.bench/"):
            raise ValueError(f"{path}: record {i} has schema {schema!r}, expected ppnets.bench/*")
    return records


def stabilise_weights(layer, input_size: Sequence[int], seed: int = 0) -> None:
    """Rescale every Conv2D/Linear once so that its output has unit standard deviation on a
    random input (LSUV-style, one forward pass).

    Study networks are untrained stacks of up to 30 linear layers; with default initialisation
    their activations grow or shrink geometrically, towards float32 overflow or denormals
    (which slow CPUs down and would distort the timing), and the exported program's absolute
    difference to the eager output becomes meaningless. The MACs, shapes and kernels are
    unchanged. Registered models (``measure_model``) are never touched.
    """
    import numpy as np
    import paddle
    import paddle.nn as nn

    hooks = []

    def rescale(sub, inputs, output):
        std = float(output.std())
        if not math.isfinite(std) or std <= 0:
            return None
        with paddle.no_grad():
            sub.weight.set_value(sub.weight / std)
            if getattr(sub, "bias", None) is not None:
                sub.bias.set_value(sub.bias / std)
        return output / std

    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, (nn.Conv2D, nn.Linear)):
            hooks.append(sub.register_forward_post_hook(rescale))
    was_training = layer.training
    layer.eval()
    x = np.random.default_rng(seed).standard_normal((1, *input_size)).astype("float32")
    try:
        with paddle.no_grad():
            layer(paddle.to_tensor(x))
    finally:
        for h in hooks:
            h.remove()
        if was_training:
            layer.train()


# --------------------------------------------------------------------------------------------
# The runner


class StudyRunner:
    """Measures networks for one study on each runtime and writes its JSON/Markdown/PNG.

    ``command`` is recorded in the outputs; ``record`` is an optional run record
    (:class:`ppnets.experiments.RunRecord`'s ``data``) embedded as is; the machine block always
    comes from :func:`ppnets.utils.machine_info`. Bad settings, an unknown runtime, no runtime
    available or an unreadable device results file raise :class:`StudyError` here, before
    anything is measured. ``runtimes`` are those measured (available here), ``skipped_runtimes``
    the others asked for with the reason; ``runtime`` is the one whose records :meth:`find`
    reads (the first, or the one :meth:`judging` sets).
    """

    def __init__(self, study: str, options: StudyOptions, command: str,
                 record: Optional[Dict[str, Any]] = None):
        self.study = study
        self.options = options
        self.quick = bool(options.quick)
        self.warmup = QUICK_WARMUP if self.quick else options.warmup
        self.repeats = QUICK_REPEATS if self.quick else options.repeats
        self.rounds = QUICK_ROUNDS if self.quick else options.rounds
        devices = [options.devices] if isinstance(options.devices, str) else options.devices
        self.devices = list(dict.fromkeys(devices))
        if not self.devices:
            raise StudyError("no device to measure on: give at least one of cpu, gpu")
        for device in self.devices:  # fail before anything is measured (e.g. no CUDA build)
            try:
                check_settings(device=device, threads=options.threads, warmup=self.warmup,
                               repeats=self.repeats, rounds=self.rounds)
            except (ValueError, RuntimeError) as exc:
                raise StudyError(str(exc)) from exc
        self.runtimes, self.skipped_runtimes, self.runtime_versions = resolve_runtimes(
            options.runtimes)
        self.runtime = self.runtimes[0]
        self.command = command
        self.record = record
        self.measurements: List[Dict[str, Any]] = []
        self.failures: List[Dict[str, str]] = []
        self.external: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self.external_files: Dict[str, str] = {}
        for kind, path in (("arm", options.arm_results), ("gpu_file", options.gpu_results)):
            if path:
                try:
                    records = load_device_results(path)
                except (OSError, ValueError) as exc:
                    why = str(exc) if path in str(exc) else f"{path}: {exc}"
                    raise StudyError(f"cannot merge the {kind.replace('_file', '')} results: "
                                     f"{why}") from exc
                self.external[kind] = {}
                for rec in records:  # several runtimes in one file: the first one's record
                    self.external[kind].setdefault(rec["model"], rec)
                self.external_files[kind] = os.path.abspath(path)
        self.started = utc_now()
        self.load_avg_start = _load_avg()
        # one counter of measurements for the whole study (their number depends on the study)
        self.progress = tqdm(desc=study, unit="measurement", file=sys.stderr,
                             disable=None)  # None: shown on a terminal, silent in logs

    # -- measuring --------------------------------------------------------------------------

    def measure(self, layer, input_size: Sequence[int], label: str, device: str = "cpu",
                batch_size: int = 1, stabilise: bool = True,
                **meta) -> Optional[Dict[str, Any]]:
        """Benchmark ``layer`` (any nn.Layer; copied by the harness) at ``[batch, *input_size]``
        on every runtime that runs on ``device`` (:meth:`runtimes_on`).

        The records' ``model`` is ``label``. ``stabilise`` rescales an untrained network's
        weights first (:func:`stabilise_weights`), once for all runtimes; pass False for parts
        of a real model. A network that fails to build, export or run on a runtime is recorded
        in ``failures`` and left out there, so one bad entry does not lose a study. Returns the
        active runtime's record (None if it failed or that runtime does not run on ``device``).
        """
        if stabilise:
            stabilise_weights(layer, input_size)
        layer.model_name = label  # the harness names the record (and the export folder) after it
        for runtime in self.runtimes_on(device):
            self.progress.set_postfix_str(f"{label} ({runtime}, {device}, batch {batch_size}, "
                                          f"input {list(input_size)})")
            rec = self._benchmark(layer, label, device, batch_size, tuple(input_size), runtime)
            if rec is not None:
                rec["model"] = label
                rec["study_meta"] = meta
        return self.find(label, device)

    def measure_model(self, name: str, device: str = "cpu", batch_size: int = 1,
                      input_size: Optional[Sequence[int]] = None) -> Optional[Dict[str, Any]]:
        """Benchmark a registered model by name (the harness builds and fuses it) on every
        runtime that runs on ``device``; returns the active runtime's record."""
        for runtime in self.runtimes_on(device):
            self.progress.set_postfix_str(f"{name} ({runtime}, {device}, batch {batch_size})")
            self._benchmark(name, name, device, batch_size, input_size, runtime)
        return self.find(name, device)

    def runtimes_on(self, device: str) -> List[str]:
        """The runtimes measured on ``device`` here: all of them on the CPU, Paddle Inference
        only on the GPU (the other runtimes are measured on the CPU)."""
        return list(self.runtimes) if device == "cpu" else [
            r for r in self.runtimes if r == "paddle_inference"]

    def _keep_dir(self, runtime: str) -> Optional[str]:
        """Where ``keep_models`` keeps ``runtime``'s exports: ``DIR/<label>/`` for Paddle
        Inference (as device runners expect), ``DIR/<runtime>/<label>/`` for the others."""
        keep = self.options.keep_models
        if keep is None or runtime == "paddle_inference":
            return keep
        return os.path.join(keep, runtime)

    def _benchmark(self, model, label: str, device: str, batch_size: int,
                   input_size, runtime: str) -> Optional[Dict[str, Any]]:
        try:
            rec = benchmark_model(model, input_size=input_size, batch_size=batch_size,
                                  device=device, threads=self.options.threads,
                                  mkldnn=self.options.mkldnn, warmup=self.warmup,
                                  repeats=self.repeats, rounds=self.rounds,
                                  workdir=self._keep_dir(runtime), runtime=runtime)
        except Exception as exc:  # noqa: BLE001 - reported in the outputs, the study goes on
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            tqdm.write(f"[{self.study}] {label} FAILED on {runtime}: {msg}", file=sys.stderr)
            self.failures.append({"label": label, "device": device, "runtime": runtime,
                                  "error": msg})
            return None
        finally:
            self.progress.update()
        if rec.get("status") == "unavailable":  # e.g. paddle_lite: needs a converted .nb
            self._skip(runtime, rec.get("reason") or "the harness cannot run it here")
            return None
        if (rec.get("parity") or {}).get("status") == "failed":
            # a network whose outputs disagree with eager is not a speed comparison
            msg = (f"output differs from eager (max rel. diff "
                   f"{rec.get('max_rel_diff_vs_dygraph')}): not timed as a result")
            tqdm.write(f"[{self.study}] {label} FAILED on {runtime}: {msg}", file=sys.stderr)
            self.failures.append({"label": label, "device": device, "runtime": runtime,
                                  "error": msg})
            return None
        rec.setdefault("backend", runtime)
        rec["study"] = self.study
        for w in rec.get("ir_pass_workarounds") or []:
            tqdm.write(f"[{self.study}] {label}: WORKAROUND: deleted IR pass "
                       f"{w['deleted_pass']} (trigger op {w['trigger_op']}, Paddle "
                       f"{w['paddle_version']}); see the outputs' workaround section",
                       file=sys.stderr)
        self.measurements.append(rec)
        return rec

    def _skip(self, runtime: str, reason: str) -> None:
        """Stop measuring ``runtime`` (the harness reported it cannot run here) and list it as
        skipped with ``reason``; what it measured so far is dropped with it."""
        tqdm.write(f"[{self.study}] {runtime} skipped: {reason}", file=sys.stderr)
        self.skipped_runtimes[runtime] = reason
        self.runtimes.remove(runtime)
        self.measurements = [r for r in self.measurements if r["backend"] != runtime]
        if not self.runtimes:
            raise StudyError("no runtime asked for can measure here: " + "; ".join(
                f"{n}: {why}" for n, why in self.skipped_runtimes.items()))
        if self.runtime == runtime:
            self.runtime = self.runtimes[0]

    def workaround_rows(self, runtime: Optional[str] = None) -> List[Dict[str, Any]]:
        """One row per (measurement, workaround) for the measurements that needed a Paddle
        Inference IR-pass workaround (:data:`ppnets.bench.KNOWN_PASS_CRASHES`); only those of
        ``runtime`` when given."""
        return [{"label": rec["model"], "device": rec["device"], "runtime": rec["backend"], **w}
                for rec in self.measurements if runtime in (None, rec["backend"])
                for w in rec.get("ir_pass_workarounds") or []]

    @contextlib.contextmanager
    def judging(self, runtime: str) -> Iterator[None]:
        """Make ``runtime`` the one :meth:`find`, :meth:`has` and the workaround rows read."""
        previous, self.runtime = self.runtime, runtime
        try:
            yield
        finally:
            self.runtime = previous

    def _merges(self) -> bool:
        """Whether the active runtime's tables show the merged device results (the first
        runtime's do)."""
        return self.runtime == self.runtimes[0]

    def find(self, label: str, device: str = "cpu",
             runtime: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """Our measurement of ``label`` on ``device`` with ``runtime`` (default: the active
        one) on this machine, or a merged one for the first runtime (``device='arm'`` reads
        ``arm_results``; ``'gpu'`` falls back to ``gpu_results``)."""
        runtime = runtime or self.runtime
        for rec in reversed(self.measurements):
            if rec["model"] == label and rec["device"] == device and rec["backend"] == runtime:
                return rec
        if runtime != self.runtimes[0]:
            return None
        if device == "arm":
            return self.external.get("arm", {}).get(label)
        if device == "gpu":
            return self.external.get("gpu_file", {}).get(label)
        return None

    def has(self, device: str) -> bool:
        """Whether any figure for ``device`` exists for the active runtime (measured here or,
        for the first runtime, merged from a file)."""
        if device in self.devices and self.runtime in self.runtimes_on(device):
            return True
        if not self._merges():
            return False
        return ("arm" in self.external) if device == "arm" else (
            "gpu_file" in self.external if device == "gpu" else False)

    def devices_with_figures(self) -> List[str]:
        """cpu, gpu, arm: those with a figure (measured here or merged), in that order."""
        return [d for d in ("cpu", "gpu", "arm") if self.has(d)]

    # -- writing ----------------------------------------------------------------------------

    def header_markdown(self, title: str, paper: str) -> str:
        opts = self.options
        m = machine_info(device=self.devices[0], threads=opts.threads, mkldnn=bool(opts.mkldnn))
        lines = [f"# {title}", "", f"Paper: {paper}", "",
                 f"Command: `{self.command}`", "",
                 f"Run: {self.started} to {utc_now()} (UTC).", "",
                 f"Machine: {m.get('cpu_model')} ({m.get('arch')}, {m.get('available_cores')} of "
                 f"{m.get('logical_cores')} cores available, governor {m.get('cpu_governor')}, "
                 f"load average {self.load_avg_start} at the start, {m.get('load_avg')} at "
                 f"the end); GPU: {m.get('gpu')}; Paddle "
                 f"{m.get('paddle_version')} (oneDNN build: {m.get('paddle_with_onednn')}).", "",
                 f"Settings: {self.runtimes_text()}; deploy form, fp32, {opts.threads} CPU "
                 f"thread(s), oneDNN {'on' if opts.mkldnn else 'off'} (Paddle Inference), "
                 f"{self.warmup} warm-up + {self.repeats} timed repeats per predictor, "
                 f"{self.rounds} fresh predictor(s) per network; the median round's median "
                 "reported.", ""]
        if self.skipped_runtimes:
            lines += ["Runtimes asked for but not available here (skipped): " + "; ".join(
                f"{name}: {why}" for name, why in self.skipped_runtimes.items()) + ".", ""]
        for kind, path in self.external_files.items():
            lines += [f"Merged {kind.replace('_file', '')} results: `{path}`.", ""]
        load = max((m.get("load_avg") or [0])[0], (self.load_avg_start or [0])[0])
        cores = m.get("available_cores") or 1
        if self.quick:
            lines += ["**QUICK RUN (`--quick`): a subset with "
                      f"{self.warmup} warm-up / {self.repeats} repeats. These numbers only show "
                      "that the pipeline works; they are not results.**", ""]
        if load > cores:
            lines += [f"**Warning: load average {load:.1f} exceeds the {cores} available cores "
                      "while this ran; timings are distorted by other processes.**", ""]
        return "\n".join(lines)

    def runtimes_text(self) -> str:
        """The runtimes measured, with their versions (one phrase)."""
        return "runtime(s) " + ", ".join(
            f"{r} {self.runtime_versions.get(r) or ''}".rstrip() for r in self.runtimes)

    def claims_by_runtime(self, judged: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
        """One row per (claim, device) of the judgements' ``verdicts``, in first-seen order:
        ``holds`` and ``text`` per runtime (a runtime without that row: None / absent)."""
        rows: Dict[Tuple[str, str], Dict[str, Any]] = {}
        for runtime, judgement in judged.items():
            for v in judgement.get("verdicts", []):
                row = rows.setdefault((v["claim"], v["device"]), {
                    "claim": v["claim"], "device": v["device"],
                    "holds": {r: None for r in judged}, "text": {}})
                row["holds"][runtime] = v["holds"]
                row["text"][runtime] = v["text"]
        return list(rows.values())

    def claims_markdown(self, judged: Dict[str, Dict[str, Any]]) -> str:
        """The table "does the paper's claim hold here", one column per runtime (those skipped
        included, marked so)."""
        rows = self.claims_by_runtime(judged)
        if not rows:
            return "No claim of the paper ranks what this run measured."
        columns = list(judged) + list(self.skipped_runtimes)

        def cell(row, runtime):
            if runtime in self.skipped_runtimes:
                return "skipped (not available)"
            if runtime not in row["text"]:
                return "not measured"
            return {True: "holds", False: "**does not hold**", None: "n/a"}[row["holds"][runtime]]

        return markdown_table(["claim", "device"] + columns,
                              [[r["claim"], r["device"]] + [cell(r, c) for c in columns]
                               for r in rows], align="---|---" + "|---" * len(columns))

    def page(self, description: str, judged: Dict[str, Dict[str, Any]],
             sections: Dict[str, str]) -> str:
        """The Markdown page: ``description`` (the header), the claims per runtime, then each
        runtime's section (its headings one level down)."""
        md = [description.rstrip(), "", "## Does each claim hold? One column per runtime", "",
              self.claims_markdown(judged), "",
              "n/a: nothing to decide (no order claimed, or fewer than two figures). Each "
              "runtime's section below gives the numbers and the orderings.", ""]
        for runtime in judged:
            version = self.runtime_versions.get(runtime)
            md += [f"## Runtime: {runtime}" + (f" {version}" if version else ""), "",
                   _demote_headings(sections[runtime]).rstrip(), ""]
        return "\n".join(md)

    def write(self, judged: Dict[str, Dict[str, Any]], markdown: str,
              figure: Optional[Figure] = None) -> StudyResult:
        """Write ``<study>.json``, ``<study>.md`` and (unless the figure is off) ``<study>.png``
        atomically into the output folder. ``judged`` is each runtime's judgement;
        ``figure(plt)`` draws on pyplot."""
        self.progress.close()
        out_dir = self.options.output_dir
        os.makedirs(out_dir, exist_ok=True)
        stem = os.path.join(out_dir, self.study)
        paths = {"json": stem + ".json", "markdown": stem + ".md"}
        markdown += self._appendix_markdown()
        machine = machine_info(device=self.devices[0], threads=self.options.threads,
                               mkldnn=bool(self.options.mkldnn))
        drawn = None
        if figure is not None and self.options.figure:
            drawn = self._write_figure(figure, stem + ".png", machine)
            paths["figure"] = stem + ".png"
            markdown += f"\n\n![{self.study}]({os.path.basename(stem)}.png)\n"
        doc = self._document(judged, machine, drawn)
        markdown = markdown.rstrip() + "\n"
        atomic_write_json(paths["json"], doc, strict=True)
        atomic_write_text(paths["markdown"], markdown)
        for p in paths.values():
            print(f"wrote {p}", file=sys.stderr)
        return StudyResult(study=self.study, doc=doc, markdown=markdown, paths=paths)

    def _appendix_markdown(self) -> str:
        """The workaround and failure sections every study ends with (empty when none)."""
        text = ""
        workarounds = self.workaround_rows()
        if workarounds:
            text += ("\n\n## Rows measured with a Paddle Inference workaround\n\n"
                     "These rows' predictors were built with one IR pass deleted, because "
                     "with it Paddle Inference crashes (segfault) while building the "
                     "predictor. oneDNN stayed on; every other pass ran. Their latency is "
                     "that of the unfused program and is not directly comparable with a "
                     "Paddle version that fuses it.\n\n" + markdown_table(
                         ["network", "device", "deleted pass", "trigger op", "Paddle",
                          "crash reproduced on", "why"],
                         [(w["label"], w["device"], w["deleted_pass"], w["trigger_op"],
                           w["paddle_version"], ", ".join(w["reproduced_on_paddle"]),
                           w["reason"]) for w in workarounds],
                         align="---|---|---|---|---|---|---"))
        if self.failures:
            text += "\n\n## Failures\n\n" + markdown_table(
                ["network", "device", "runtime", "error"],
                [(f["label"], f["device"], f["runtime"], f["error"]) for f in self.failures],
                align="---|---|---|---")
        return text

    def _document(self, judged: Dict[str, Dict[str, Any]], machine: Dict[str, Any],
                  drawn: Optional[Dict[str, List[str]]]) -> Dict[str, Any]:
        """The ``<study>.json`` document (schema :data:`STUDY_SCHEMA`)."""
        opts = self.options
        runtimes = {}
        for runtime, judgement in judged.items():
            runtimes[runtime] = {
                "version": self.runtime_versions.get(runtime), **judgement,
                "failures": [f for f in self.failures if f["runtime"] == runtime],
                "ir_pass_workarounds": self.workaround_rows(runtime),
                "measurements": [r for r in self.measurements if r["backend"] == runtime]}
        return {
            "schema": STUDY_SCHEMA,
            "study": self.study,
            "command": self.command,
            "quick": self.quick,
            "started_utc": self.started,
            "finished_utc": utc_now(),
            "load_avg_start": self.load_avg_start,
            "settings": {"devices": self.devices, "runtimes": list(self.runtimes),
                         "threads": opts.threads, "mkldnn": bool(opts.mkldnn),
                         "warmup": self.warmup, "repeats": self.repeats, "rounds": self.rounds},
            "machine": machine,
            "run_record": self.record,
            "merged_files": self.external_files,
            "skipped_runtimes": self.skipped_runtimes,
            "claims_by_runtime": self.claims_by_runtime(judged),
            "figure": drawn,
            "runtimes": runtimes,
            "failures": self.failures,
            "ir_pass_workarounds": self.workaround_rows(),
        }

    def _write_figure(self, figure: Figure, path: str,
                      machine: Dict[str, Any]) -> Dict[str, List[str]]:
        """Draw ``figure`` and write it; returns its panels' titles and its legends' labels
        (recorded in the JSON, so a reader sees what the figure shows)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.close("all")
        figure(plt)
        fig = plt.gcf()
        drawn = {"panels": [ax.get_title() for ax in fig.axes if ax.get_title()],
                 "series": list(dict.fromkeys(
                     t.get_text() for ax in fig.axes if ax.get_legend() is not None
                     for t in ax.get_legend().get_texts()))}
        fig.text(0.01, 0.005, ("QUICK RUN - not results. " if self.quick else "")
                 + (machine.get("cpu_model") or "")[:80], fontsize=6, alpha=0.7)
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120,
                                                   bbox_inches="tight"))
        plt.close("all")
        return drawn


def _demote_headings(markdown: str) -> str:
    """Every Markdown heading one level down (a runtime's section sits under its own)."""
    return "\n".join("#" + line if line.startswith("#") else line
                      for line in markdown.split("\n"))


def _load_avg() -> Optional[List[float]]:
    """1/5/15-minute load averages now (as ``machine_info``'s ``load_avg``), None if unknown."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def bar_groups(ax, groups: List[str], series: Dict[str, List[Optional[float]]], ylabel: str,
               title: str) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series (None: no bar)."""
    n = max(len(series), 1)
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar([x for x, v in zip(xs, values) if v is not None],
               [v for v in values if v is not None], width=width, label=name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7, rotation=20)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
