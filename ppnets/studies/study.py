"""The shared runner of the latency studies (``ppnets study NAME``, docs/latency_studies.md).

A study builds small networks (or takes registered models), measures each one with the project's
one harness, :func:`ppnets.bench.benchmark_model` (deploy form, Paddle Inference, median/IQR over
individually timed repeats), sets the paper's numbers (:mod:`ppnets.studies.published`) beside
ours, and writes three files atomically: ``<study>.json`` (schema ``ppnets.study/1``, every bench
record included), ``<study>.md`` (Markdown tables, the machine, the command, and plain statements
of where our ordering differs from the paper's) and ``<study>.png`` (matplotlib).

A study is a :class:`Study`: three functions run in turn by :meth:`Study.run` --
``measure(runner, options)`` benchmarks through the :class:`StudyRunner` and returns what it
built, ``judge(runner, options, measured)`` turns the measurements into the JSON tables and
checks the paper's claims, ``render(runner, options, measured, judged)`` returns the Markdown
and the figure. :data:`ppnets.studies.STUDIES` registers them by name.

Results measured elsewhere (a GPU host, an ARM board running Paddle Lite) are merged from JSON
files of the bench schema (``ppnets.bench/1``: ``{"results": [...]}``, or a study JSON and its
``measurements``), matched by the record's ``model`` field, which for a study network is its
label (``keep_models=DIR`` keeps the exported programs under ``DIR/<label>/`` for such a
runner).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ppnets.bench import benchmark_model, check_settings
from ppnets.utils import (atomic_write, atomic_write_json, atomic_write_text, machine_info,
                          markdown_table, utc_now)

__all__ = ["STUDY_SCHEMA", "QUICK_WARMUP", "QUICK_REPEATS", "QUICK_ROUNDS", "StudyOptions",
           "Study", "StudyResult", "StudyError", "StudyRunner", "compare_order",
           "load_device_results", "stabilise_weights", "speed", "ratio", "bar_groups"]

STUDY_SCHEMA = "ppnets.study/1"
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
    threads: int = 1                    # CPU math-library threads (the papers' CPU figures: 1)
    mkldnn: bool = True                 # oneDNN kernels on CPU
    warmup: int = 10                    # untimed runs per predictor
    repeats: int = 50                   # individually timed runs per predictor
    rounds: int = 3                     # fresh predictors per network; the median round counts
    quick: bool = False                 # a subset with QUICK_* settings: a pipeline check
    arm_results: Optional[str] = None   # bench-schema JSON measured on an ARM device
    gpu_results: Optional[str] = None   # bench-schema JSON measured on a GPU host
    output_dir: str = DEFAULT_OUTPUT_DIR
    keep_models: Optional[str] = None   # keep every exported program under DIR/<label>/
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
    class and its three steps (see the module docstring)."""

    name: str
    stem: str
    summary: str
    measure: Callable[["StudyRunner", StudyOptions], Any]
    judge: Callable[["StudyRunner", StudyOptions, Any], Dict[str, Any]]
    render: Callable[["StudyRunner", StudyOptions, Any, Dict[str, Any]],
                     Tuple[str, Optional[Figure]]]
    options: type = StudyOptions

    def run(self, options: Optional[StudyOptions] = None, *, command: Optional[str] = None,
            run_record: Optional[Dict[str, Any]] = None) -> StudyResult:
        """Measure, judge, render and write. ``command`` is the command line recorded in the
        outputs (default: this call, as Python); ``run_record`` a
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
            judged = self.judge(runner, options, measured)
            markdown, figure = self.render(runner, options, measured, judged)
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


def load_device_results(path: str) -> List[Dict[str, Any]]:
    """Bench records from a JSON file measured elsewhere: a ``ppnets.bench/1`` report
    (``{"results": [...]}``), a list of records, or a study JSON (its ``measurements``)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict):
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
    """Measures networks for one study and writes its JSON/Markdown/PNG.

    ``command`` is recorded in the outputs; ``record`` is an optional run record
    (:class:`ppnets.experiments.RunRecord`'s ``data``) embedded as is; the machine block always
    comes from :func:`ppnets.utils.machine_info`. Bad settings or an unreadable device results
    file raise :class:`StudyError` here, before anything is measured.
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
                self.external[kind] = {r["model"]: r for r in records}
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
        """Benchmark ``layer`` (any nn.Layer; copied by the harness) at ``[batch, *input_size]``.

        The record's ``model`` is ``label``. ``stabilise`` rescales an untrained network's
        weights first (:func:`stabilise_weights`); pass False for parts of a real model. A
        network that fails to build, export or run is recorded in ``failures`` and None is
        returned, so one bad entry does not lose a study.
        """
        if stabilise:
            stabilise_weights(layer, input_size)
        layer.model_name = label  # the harness names the record (and the export folder) after it
        self.progress.set_postfix_str(f"{label} ({device}, batch {batch_size}, input "
                                      f"{list(input_size)})")
        rec = self._benchmark(layer, label, device, batch_size, tuple(input_size))
        if rec is not None:
            rec["model"] = label
            rec["study_meta"] = meta
        return rec

    def measure_model(self, name: str, device: str = "cpu", batch_size: int = 1,
                      input_size: Optional[Sequence[int]] = None) -> Optional[Dict[str, Any]]:
        """Benchmark a registered model by name (the harness builds and fuses it)."""
        self.progress.set_postfix_str(f"{name} ({device}, batch {batch_size})")
        return self._benchmark(name, name, device, batch_size, input_size)

    def _benchmark(self, model, label: str, device: str, batch_size: int,
                   input_size) -> Optional[Dict[str, Any]]:
        try:
            rec = benchmark_model(model, input_size=input_size, batch_size=batch_size,
                                  device=device, threads=self.options.threads,
                                  mkldnn=self.options.mkldnn, warmup=self.warmup,
                                  repeats=self.repeats, rounds=self.rounds,
                                  workdir=self.options.keep_models)
        except Exception as exc:  # noqa: BLE001 - reported in the outputs, the study goes on
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            tqdm.write(f"[{self.study}] {label} FAILED: {msg}", file=sys.stderr)
            self.failures.append({"label": label, "device": device, "error": msg})
            return None
        finally:
            self.progress.update()
        rec["study"] = self.study
        for w in rec.get("ir_pass_workarounds") or []:
            tqdm.write(f"[{self.study}] {label}: WORKAROUND: deleted IR pass "
                       f"{w['deleted_pass']} (trigger op {w['trigger_op']}, Paddle "
                       f"{w['paddle_version']}); see the outputs' workaround section",
                       file=sys.stderr)
        self.measurements.append(rec)
        return rec

    def workaround_rows(self) -> List[Dict[str, Any]]:
        """One row per (measurement, workaround) for the measurements that needed a Paddle
        Inference IR-pass workaround (:data:`ppnets.bench.KNOWN_PASS_CRASHES`)."""
        return [{"label": rec["model"], "device": rec["device"], **w}
                for rec in self.measurements for w in rec.get("ir_pass_workarounds") or []]

    def find(self, label: str, device: str = "cpu") -> Optional[Dict[str, Any]]:
        """Our measurement of ``label`` on ``device`` on this machine, or a merged one
        (``device='arm'`` reads ``arm_results``; ``'gpu'`` falls back to ``gpu_results``)."""
        for rec in reversed(self.measurements):
            if rec["model"] == label and rec["device"] == device:
                return rec
        if device == "arm":
            return self.external.get("arm", {}).get(label)
        if device == "gpu":
            return self.external.get("gpu_file", {}).get(label)
        return None

    def has(self, device: str) -> bool:
        """Whether any figure for ``device`` exists (measured here or merged from a file)."""
        if device in self.devices:
            return True
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
                 f"Machine: {m.get('cpu_model')} ({m.get('arch')}, {m.get('available_cores')} of "
                 f"{m.get('logical_cores')} cores available, governor {m.get('cpu_governor')}, "
                 f"load average {self.load_avg_start} at the start, {m.get('load_avg')} at "
                 f"the end); GPU: {m.get('gpu')}; Paddle "
                 f"{m.get('paddle_version')} (oneDNN build: {m.get('paddle_with_onednn')}).", "",
                 f"Settings: Paddle Inference, deploy form, fp32, {opts.threads} CPU "
                 f"thread(s), oneDNN {'on' if opts.mkldnn else 'off'}, {self.warmup} warm-up "
                 f"+ {self.repeats} timed repeats per predictor, {self.rounds} fresh "
                 f"predictor(s) per network; the median round's median reported.", ""]
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

    def write(self, payload: Dict[str, Any], markdown: str,
              figure: Optional[Figure] = None) -> StudyResult:
        """Write ``<study>.json``, ``<study>.md`` and (unless the figure is off) ``<study>.png``
        atomically into the output folder. ``figure(plt)`` draws on pyplot."""
        self.progress.close()
        out_dir = self.options.output_dir
        os.makedirs(out_dir, exist_ok=True)
        stem = os.path.join(out_dir, self.study)
        paths = {"json": stem + ".json", "markdown": stem + ".md"}
        markdown += self._appendix_markdown()
        doc = self._document(payload)
        if figure is not None and self.options.figure:
            self._write_figure(figure, stem + ".png", doc["machine"])
            paths["figure"] = stem + ".png"
            markdown += f"\n\n![{self.study}]({os.path.basename(stem)}.png)\n"
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
                ["network", "device", "error"],
                [(f["label"], f["device"], f["error"]) for f in self.failures], align="---|---|---")
        return text

    def _document(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        """The ``<study>.json`` document (schema :data:`STUDY_SCHEMA`)."""
        opts = self.options
        return {
            "schema": STUDY_SCHEMA,
            "study": self.study,
            "command": self.command,
            "quick": self.quick,
            "started_utc": self.started,
            "finished_utc": utc_now(),
            "load_avg_start": self.load_avg_start,
            "settings": {"devices": self.devices, "threads": opts.threads,
                         "mkldnn": bool(opts.mkldnn), "warmup": self.warmup,
                         "repeats": self.repeats, "rounds": self.rounds},
            "machine": machine_info(device=self.devices[0], threads=opts.threads,
                                    mkldnn=bool(opts.mkldnn)),
            "run_record": self.record,
            "merged_files": self.external_files,
            **payload,
            "failures": self.failures,
            "ir_pass_workarounds": self.workaround_rows(),
            "measurements": self.measurements,
        }

    def _write_figure(self, figure: Figure, path: str, machine: Dict[str, Any]) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.close("all")
        figure(plt)
        fig = plt.gcf()
        fig.text(0.01, 0.005, ("QUICK RUN - not results. " if self.quick else "")
                 + (machine.get("cpu_model") or "")[:80], fontsize=6, alpha=0.7)
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120,
                                                   bbox_inches="tight"))
        plt.close("all")


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
