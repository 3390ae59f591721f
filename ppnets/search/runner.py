"""What the two searches share around their loops: the options, the config, the latency table
of the target, whole-network measurement, the scaled baselines at equal predicted latency, the
brief training of the found networks, and the result files (``search.json``, ``search.md``,
``search.png``, ``run_record.json``). The command line is ``ppnets search`` (and the
``reproduce/efficientformer*_search.py`` scripts): :mod:`ppnets.cli.search`.

Every searched network and every baseline is a registry model: ``ppnets.create_model(name,
num_classes=..., **kwargs)`` with the ``model`` entry of ``search.json`` builds it. Its
``measured_ms`` is :func:`ppnets.bench.benchmark_model` on the target (Paddle Inference CPU or
GPU, deploy form, batch 1): the median over fresh predictors of each one's median, built
round-robin over the networks like the table's entries; with a table from another device
(``SearchOptions.lut``) nothing here can run on that device, so ``measured_ms`` is null and the
docs say how to time the exported network there (docs/search.md).
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ppnets.analysis import count_params
from ppnets.engine import fit, load_config
from ppnets.engine.config import resolve_config
from ppnets.experiments import (ExperimentOptions, RunRecord, cifar_data, provenance_lines,
                                save_json, save_text)
from ppnets.factory import create_model
from ppnets.utils import atomic_write

from .data import SearchData, build_search_data
from .lut import LatencyLUT, export_lite_grid, interleaved_runs, latency_summary, prediction_error

__all__ = ["SearchOptions", "SearchRun", "pick_baseline", "format_table"]


@dataclass
class SearchOptions(ExperimentOptions):
    """:class:`~ppnets.experiments.ExperimentOptions` plus the search's own.

    ``config``: the search recipe (a file or a shipped recipe's name; None: the search's own);
    ``target``: the Paddle Inference device the latency table is measured on (None:
    ``device``); ``lut``: a latency table measured on another device (``ppnets.lut/1`` JSON, e.g.
    from ``lut_device.py`` on an ARM phone), read instead; ``latency_targets_ms``: the latency
    budgets (None: the recipe's ``experiment.search.target_fractions`` of the largest network's
    latency); ``export_lite_grid``: the folder :meth:`SearchRun.export_grid` writes."""

    config: Optional[str] = None
    target: Optional[str] = None
    lut: Optional[str] = None
    latency_targets_ms: Optional[List[float]] = None
    export_lite_grid: Optional[str] = None


def _data_overrides(options: SearchOptions) -> Tuple[List[str], Dict[str, Any]]:
    """CIFAR-10 archive, or an ImageNet folder (``data_dir`` holding ``train/``)."""
    if options.data_dir and os.path.isdir(os.path.join(options.data_dir, "train")):
        root = os.path.abspath(options.data_dir)
        return (["data.dataset=imagenet", f"data.data_dir={root}"],
                {"dataset": "imagenet", "dir": root})
    info = cifar_data(options)   # DataUnavailableError when the archive cannot be found
    return list(info.pop("overrides")), info


class SearchRun:
    """One invocation: resolved config, output folder, run record, latency table, timers."""

    def __init__(self, options: SearchOptions, default_config: str):
        self.options = options
        self.t0 = time.perf_counter()
        self.out = options.out_root
        data_ov, self.data_info = _data_overrides(options)
        path = resolve_config(options.config or default_config)
        smoke = list(load_config(path)["experiment"].get("smoke") or []) if options.smoke else []
        device = [f"device={options.device}"] + (
            [f"train.seed={options.seed}"] if options.seed is not None else [])
        self.cfg = load_config(path, smoke + device + data_ov + list(options.overrides))
        os.makedirs(self.out, exist_ok=True)
        self.recipe = self.cfg["experiment"]["search"]
        self.supernet = self.recipe["supernet"]
        self.image_size = int(self.cfg["data"]["image_size"])
        self.seed = int(self.cfg["train"]["seed"])
        self.record = RunRecord(options.script, options.command, smoke=options.smoke,
                                device=options.device, config=os.path.relpath(path),
                                overrides=list(options.overrides), data=self.data_info)
        self.timings: Dict[str, float] = {}
        self._rows: Dict[str, Dict[str, Any]] = {}
        self._models: Dict[str, Tuple[Any, Tuple[int, ...]]] = {}
        self.lut = self._lut()

    def load_data(self) -> SearchData:
        """The training split and the held-out split the search measures accuracy on."""
        return build_search_data(self.cfg, int(self.recipe["heldout_images"]), self.seed)

    # ---- latency --------------------------------------------------------------------------
    def _lut(self) -> LatencyLUT:
        spec = self.recipe["lut"]
        if self.options.lut:
            return LatencyLUT(self.options.lut, target="file")
        target = self.options.target or self.options.device
        return LatencyLUT(os.path.join(self.out, f"lut_{target}.json"), target=target,
                          threads=int(spec["threads"]), warmup=int(spec["warmup"]),
                          repeats=int(spec["repeats"]), rounds=int(spec.get("rounds", 5)))

    def export_grid(self, specs) -> Dict[str, Any]:
        """Every block of ``specs`` as a Paddle Lite ``.nb`` with the device-side timer, into
        ``options.export_lite_grid``; returns the grid's manifest (``failed`` lists the blocks
        that did not convert)."""
        return export_lite_grid(specs, self.options.export_lite_grid, progress=lambda i, n, key:
                                print(f"  [{i}/{n}] {key}", flush=True))

    def prepare_table(self, specs) -> float:
        """Every entry the search can need, before it starts: measured now, interleaved
        (``LatencyLUT.fill``), or for a device's table (``--lut``) checked for missing keys.
        Returns the clock after it (the next phase's start)."""
        t = time.perf_counter()
        n = self.lut.fill(specs, progress=lambda i, total, key: print(
            f"  table [{i}/{total}] {key}", flush=True) if i % 50 == 0 or i == total else None)
        if n:   # fill() saved the table
            self.tick(f"latency table ({n} entries x {self.lut.rounds} rounds)", t)
        return time.perf_counter()

    def measure_networks(self, results: Sequence[Dict[str, Any]]) -> None:
        """Whole-network latency of every distinct network in ``results`` (searched networks
        and baselines) on the target, written into each row (``measured_ms``, ``measurement``;
        None for a table from another device). Like the table: the median over ``rounds``
        fresh predictors, built round-robin over the networks."""
        rows = [r for res in results for r in (res, res.get("baseline")) if r]
        runs: Dict[str, List[Dict[str, Any]]] = {}
        if self.lut.target != "file":
            spec = self.recipe["measure"]
            runs = interleaved_runs({key: self._models[key] for key in
                                     dict.fromkeys(_network_key(r) for r in rows)},
                                    int(spec.get("rounds", 5)), device=self.lut.target,
                                    threads=int(spec["threads"]), warmup=int(spec["warmup"]),
                                    repeats=int(spec["repeats"]))
        for row in rows:
            key_runs = runs.get(_network_key(row))
            if not key_runs:
                row.update(measured_ms=None, measurement=None)
                continue
            measurement = latency_summary(key_runs)
            row.update(measured_ms=measurement["median_ms"], measurement=measurement)

    def targets(self, start_ms: float) -> List[float]:
        if self.options.latency_targets_ms:
            return sorted(set(float(t) for t in self.options.latency_targets_ms), reverse=True)
        return [round(start_ms * float(f), 4) for f in self.recipe["target_fractions"]]

    def tick(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round(now - since, 1)
        print(f"--- {name}: {now - since:.1f} s", flush=True)
        return now

    # ---- brief training of the found networks and the baselines ---------------------------
    def train(self, label: str, name: str, kwargs: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if not self.recipe.get("final_training", True):
            return None
        cfg = copy.deepcopy(self.cfg)
        cfg["model"] = {**cfg["model"], "name": name, "kwargs": dict(kwargs)}
        cfg["output_dir"] = os.path.join(self.out, "train", label)
        cfg["train"]["resume"] = False   # another search may have found another network here
        res = fit(cfg)
        return {"epochs": res["epochs_run"], "final_top1": res["final_top1"],
                "best_top1": res["best_top1"], "train_images": res.get("num_train_images"),
                "test_images": res.get("num_test_images"), "output_dir": cfg["output_dir"]}

    def network_row(self, label: str, name: str, kwargs: Dict[str, Any], predicted_ms: float,
                    input_size, num_classes: int, **extra) -> Dict[str, Any]:
        """Build through create_model and train briefly; one row of the results (measured
        afterwards, all networks together: :meth:`measure_networks`). A network found for
        several targets is trained once."""
        row = {"predicted_ms": predicted_ms, "model": {"name": name, "kwargs": kwargs}, **extra}
        key = _network_key(row)
        if key not in self._rows:
            model = create_model(name, num_classes=num_classes, **kwargs)
            self._models[key] = (model, tuple(input_size))
            self._rows[key] = {"label": label, "params": int(count_params(model)),
                               "training": self.train(label, name, kwargs)}
        return {**row, **self._rows[key]}

    # ---- outputs ---------------------------------------------------------------------------
    def finish(self, payload: Dict[str, Any], md_sections: List[str], plot: Dict[str, Any]
               ) -> Dict[str, Any]:
        """Write search.json, search.md, search.png and run_record.json; returns ``payload``
        completed with the table, the timings, the prediction error and the run record."""
        self.timings["total"] = round(time.perf_counter() - self.t0, 1)
        self.record.update(timings_s=self.timings)
        self.record.finish()
        # each network once, even when it was found (or is the baseline) for several targets
        rows = list({r["label"]: r for res in payload["results"]
                     for r in (res, res.get("baseline")) if r}.values())
        payload.update(lut={"path": os.path.abspath(self.lut.path), **self.lut.describe()},
                       smoke=bool(self.options.smoke), timings_s=self.timings,
                       prediction_error=prediction_error(rows), run=self.record.data)
        self.lut.save()
        save_json(os.path.join(self.out, "search.json"), payload)
        self.record.write(os.path.join(self.out, "run_record.json"))
        save_text(os.path.join(self.out, "search.md"),
                  "\n".join(self._md_head(payload) + md_sections) + "\n")
        self._plot(payload, **plot)
        print(f"results in {self.out}/search.json", flush=True)
        return payload

    def _md_head(self, payload: Dict[str, Any]) -> List[str]:
        """search.md's title, smoke banner, provenance and prediction error."""
        head = [f"# {payload['title']}", ""]
        if self.options.smoke:
            head += ["**SMOKE RUN, not a search result**: a tiny supernet, a few steps; the "
                     "numbers only show that the pipeline runs.", ""]
        data = self.data_info.get("note") or self.data_info.get("file") or self.data_info
        head += provenance_lines(self.record.data, str(data)) + [
            f"- latency table: {self.lut.target} ({self.lut.describe()['entries']} entries, "
            f"{os.path.basename(self.lut.path)})",
            f"- time: {self.timings}", ""]
        err = payload["prediction_error"]
        if err["n"]:
            head += [f"Predicted (sum of table entries) vs measured latency over {err['n']} "
                     f"networks: median |error| {100 * err['median_abs_rel_error']:.1f}%, max "
                     f"{100 * err['max_abs_rel_error']:.1f}%, Spearman "
                     f"{err['spearman'] if err['spearman'] is None else round(err['spearman'], 3)}"
                     ".", ""]
        return head

    def _plot(self, payload: Dict[str, Any], title: str, baseline_label: str) -> None:
        pts = []
        for res in payload["results"]:
            for row, kind in ((res, "searched"), (res.get("baseline"), baseline_label)):
                if row and row.get("training"):
                    pts.append((kind, row["predicted_ms"], row["training"]["final_top1"]))
        if not pts:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
        for kind, marker in (("searched", "o"), (baseline_label, "s")):
            xs = [p[1] for p in pts if p[0] == kind]
            ys = [100 * p[2] for p in pts if p[0] == kind]
            order = np.argsort(xs)
            ax.plot(np.asarray(xs)[order], np.asarray(ys)[order], marker=marker, label=kind)
        for res in payload["results"]:
            ax.axvline(res["target_ms"], color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel(f"predicted latency (ms, {self.lut.target} table)")
        ax.set_ylabel("top-1 (%) after brief training")
        ax.set_title(title + (" [SMOKE]" if self.options.smoke else ""), fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(os.path.join(self.out, "search.png"),
                     lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)


def pick_baseline(family: Sequence[Any], latency: Callable[[Any], float], target: float
                  ) -> Optional[Tuple[Any, float]]:
    """The largest member of ``family`` (ordered small to large, latency non-decreasing in the
    order up to measurement noise) whose predicted latency is at most ``target``: a bisection,
    so only about log2(len(family)) members are priced."""
    lo, hi, best = 0, len(family) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        lat = latency(family[mid])
        if lat <= target:
            best, lo = (family[mid], lat), mid + 1
        else:
            hi = mid - 1
    return best


def _network_key(row: Dict[str, Any]) -> str:
    return json.dumps([row["model"]["name"], row["model"]["kwargs"]], sort_keys=True)


def format_table(results: Sequence[Dict[str, Any]], extra: Sequence[Tuple[str, str]] = ()
                 ) -> List[str]:
    """Markdown rows: each target's searched network and its baseline."""
    cols = ["target (ms)", "network", "predicted (ms)", "measured (ms)", "params (M)",
            "held-out acc", "top-1 (brief training)", *[c for c, _ in extra]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def cell(v, fmt):
        return "-" if v is None else fmt.format(v)

    for res in results:
        searched = "searched" if res.get("reached", True) else \
            "searched, target NOT reached (no action left)"
        for row, kind in ((res, searched), (res.get("baseline"), "baseline")):
            if not row:
                lines.append(f"| {res['target_ms']:.3f} | baseline: none fits the budget by the "
                             "table |" + " - |" * (len(cols) - 2))
                continue
            top1 = (row.get("training") or {}).get("final_top1")
            vals = [cell(res["target_ms"], "{:.3f}"),
                    f"{kind}: `{row['model']['kwargs'].get('dims')}` "
                    f"depths {row['model']['kwargs'].get('depths')}",
                    cell(row["predicted_ms"], "{:.3f}"), cell(row.get("measured_ms"), "{:.3f}"),
                    cell(row["params"] / 1e6, "{:.3f}"), cell(row.get("heldout_accuracy"),
                                                             "{:.4f}"),
                    cell(top1, "{:.4f}"), *[cell(row.get(k), "{:.2f}") for _, k in extra]]
            lines.append("| " + " | ".join(vals) + " |")
    return lines
