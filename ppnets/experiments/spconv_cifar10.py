"""The SPConv paper's CIFAR-10 experiments (Zhang et al., "Split to Be Slim", IJCAI 2020,
arXiv:2006.12085), run as ``reproduce/spconv_cifar10.py``.

Each experiment is a config in ``configs/spconv/`` whose ``experiment.models`` lists the models:
``seed`` (ResNet18 vs SPConv-ResNet18 on CIFAR-10 resized to 224, Adam), ``paper`` (ResNet-20
and VGG-16 with SPConv at alpha 1/2 ... 1/16, 32x32, the standard CIFAR SGD recipe) and
``paper_subset`` (the paper's recipe scaled to the 4,829-image CIFAR-10 subset). Every model
trains with :func:`ppnets.engine.fit` into ``<output-dir>/<experiment>/<model>/`` (re-running
resumes); then params/MACs (:func:`ppnets.analysis.profile_model`) and batch-1 latency
(:func:`ppnets.bench.benchmark_model`, 1 thread) are measured, and ``results.json``,
``results.md`` and ``run_record.json`` are written to ``<output-dir>`` (``<output-dir>/smoke``
with ``--smoke``).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ppnets.analysis import profile_model
from ppnets.bench import benchmark_model
from ppnets.engine import fit, load_config, resolve_cifar10_file
from ppnets.engine.config import CONFIG_DIR
from ppnets.factory import create_model
from ppnets.registry import list_models, model_info
from ppnets.utils import dict_table, file_md5

from .options import ExperimentError, ExperimentOptions
from .record import RunRecord, provenance_lines, save_json, save_text

__all__ = ["EXPERIMENTS", "SpconvOptions", "plan_runs", "measure", "published_cifar10_top1",
           "table_rows", "render_results", "write_results", "run"]

SCHEMA = "ppnets.reproduce.spconv_cifar10/1"
# experiment name -> config file name under configs/spconv/
EXPERIMENTS = {"seed": "seed_resnet18.yaml", "paper": "paper_cifar10.yaml",
               "paper_subset": "paper_cifar10_subset.yaml"}
SPCONV_CONFIGS = os.path.join(CONFIG_DIR, "spconv")
BENCH = dict(threads=1, warmup=2, repeats=10, batch_size=1)
RESNET20_ALPHA_NOTE = (
    "- ResNet-20 runs at alpha 1/2 and 1/4 only, the rows of the paper's CIFAR-10 table. "
    "alpha = 1/16 cannot be built: the first stage's 16 channels leave 1 representative channel, "
    "which the 2-group GWC cannot split. alpha = 1/8 can be built (2 channels, one per GWC "
    "group; `ppnets.models.spconv.spconv_net('resnet20', alpha=1/8)`) but the paper publishes "
    "no figures for it, so neither is registered (ppnets/models/spconv.py).")
PAPER = "arXiv:2006.12085 Table 1"
# Accuracies are stored as fractions (results.json) and shown in percent, beside the paper's.
COLUMNS = [("experiment", "experiment", 0), ("model", "model", 0), ("alpha", "alpha", 0),
           ("image_size", "input", 0), ("epochs_run", "epochs", 0),
           ("eval_images", "eval images", 0), ("top1_pct", "top-1 (%)", 2),
           ("top5_pct", "top-5 (%)", 2), ("best_top1_pct", "best top-1 (%)", 2),
           ("paper_top1_pct", f"paper top-1 (%, full CIFAR-10, {PAPER})", 2),
           ("params_m", "params (M)", 3), ("macs_m", "MACs (M)", 1),
           ("latency_ms", "latency (ms)", 2), ("train_images_per_s", "train img/s", 1)]


def alpha_of(name: str) -> str:
    """``spconv_*_a4`` -> ``1/4``; ``spconv_resnet18`` -> ``1/2`` (its default); others ``-``."""
    m = re.search(r"_a(\d+)$", name)
    if m:
        return f"1/{m.group(1)}"
    return "1/2" if name.startswith("spconv_") else "-"


def plan_runs(experiment: str, models: Optional[List[str]], config_dir: str):
    """(experiment, config path, model) triples and the listed models that are not registered.

    A model the user names with ``--models`` must be registered; a model of an experiment's
    default list that the registry does not provide is skipped and reported."""
    registered = set(list_models())
    names = ["seed", "paper"] if experiment == "all" else [experiment]
    plan, claimed, skipped = [], set(), []
    for exp in names:
        listed = load_config(os.path.join(config_dir, EXPERIMENTS[exp]))["experiment"]["models"]
        if models is None:
            skipped += [m for m in listed if m not in registered]
            chosen = [m for m in listed if m in registered]
        elif experiment == "all":
            chosen = [m for m in listed if m in models]
        else:
            chosen = list(models)   # one experiment: --models replaces its list
        claimed.update(chosen)
        plan += [(exp, os.path.join(config_dir, EXPERIMENTS[exp]), m) for m in chosen]
    if models is not None:
        stray = [m for m in models if m not in claimed]
        if stray:
            raise ExperimentError(f"--models {' '.join(stray)}: not part of any experiment's "
                                  "list; name one experiment with --experiment to train them "
                                  "with its recipe")
        missing = [m for m in models if m not in registered]
        if missing:
            raise ExperimentError(
                f"not registered: {', '.join(missing)}. Registered CIFAR/SPConv models: "
                f"{', '.join(list_models(['*cifar*', 'spconv_*', 'resnet18']))}")
    if not plan:
        raise ExperimentError("nothing to run: no registered model selected")
    return plan, skipped


def measure(cfg: Dict[str, Any], device: str, bench: bool) -> Dict[str, Any]:
    """Params/MACs and latency of the model at the training input size (fresh weights: neither
    depends on the trained values)."""
    size = int(cfg["data"]["image_size"])
    out: Dict[str, Any] = {"params": None, "macs": None, "latency_ms": None, "errors": []}
    net = create_model(cfg["model"]["name"], num_classes=10, **(cfg["model"]["kwargs"] or {}))
    net.eval()
    prof = profile_model(net, input_size=(3, size, size))
    out.update(params=int(prof.params), macs=int(prof.macs))
    if bench:
        res = benchmark_model(net, input_size=(3, size, size), device=device, **BENCH)
        out["latency_ms"] = float(res["latency_ms"]["median"])
        out["latency"] = {k: res.get(k) for k in ("backend", "device", "threads", "mkldnn",
                                                  "batch_size", "warmup", "latency_ms")}
    return out


def published_cifar10_top1(model: str) -> Optional[float]:
    """The paper's CIFAR-10 top-1 (%) of ``model`` from the registry; None when the registry's
    published top-1 is for another data set (the seed experiment's ``resnet18``: ImageNet's) or
    there is none (``spconv_resnet18``, alpha 1/8)."""
    try:
        info = model_info(model)
    except KeyError:
        return None
    return info.get("top1") if info.get("dataset") == "cifar10" else None


def _percent(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100.0 * value


def table_rows(rows: List[dict]) -> List[dict]:
    """The rows as the table shows them: accuracies in percent, the paper's top-1 only where it
    is a CIFAR-10 figure (rows of results.json written before that rule carry the registry's
    top-1 whatever its data set)."""
    return [dict(row, top1_pct=_percent(row.get("top1")), top5_pct=_percent(row.get("top5")),
                 best_top1_pct=_percent(row.get("best_top1")),
                 paper_top1_pct=published_cifar10_top1(row["model"]))
            for row in rows]


def render_results(results: Dict[str, Any]) -> str:
    """results.md from the content of results.json (``smoke``, ``run``, ``rows``)."""
    r, rows, smoke = results["run"], results["rows"], bool(results.get("smoke"))
    lines = ["# SPConv on CIFAR-10", ""]
    if smoke:
        lines += ["> **SMOKE RUN, not a reproduction.** Each model trained for a few steps of one "
                  "epoch on a tiny batch and was evaluated on a few test images (the "
                  "`smoke_overrides` in results.json; the seed experiment runs at 64x64 instead "
                  "of 224x224); accuracies are meaningless and only show that the pipeline runs "
                  "end to end.", ""]
    data = r.get("data", {})
    if not smoke and (data.get("train_images") or 50000) < 50000:
        lines += [f"> **SUBSET RUN.** Trained on {data['train_images']} of CIFAR-10's 50,000 "
                  f"training images and evaluated on {data.get('test_images')} of its 10,000 "
                  "test images: the accuracies show that the models learn; they are not "
                  "comparable with the paper's full-data top-1, printed beside them.", ""]
    lines += provenance_lines(r, f"{data.get('file')} ({data.get('train_images')} train / "
                                 f"{data.get('test_images')} test images)") + [
        "- top-1/top-5 (%): last evaluation on the test split; best top-1 (%): best epoch's; "
        "epochs: completed epochs",
        f"- paper top-1: the CIFAR-10 top-1 the SPConv paper publishes ({PAPER}, full "
        "training set, 32x32); n/a where it publishes none",
        f"- latency: median of {BENCH['repeats']} runs after {BENCH['warmup']} warm-up, batch 1, "
        f"{BENCH['threads']} thread, Paddle Inference, deploy form, at the training input size",
        "",
        dict_table(table_rows(rows), COLUMNS),
    ]
    notes = [f"- {row['model']}: {e}" for row in rows for e in row.get("errors", [])]
    notes += [f"- {m}: listed by the experiment but not registered in ppnets, so not run"
              for m in r.get("skipped_unregistered", [])]
    notes += [f"- {row['model']}: trained by an earlier run of this command into the same "
              f"output folder; this run resumed after epoch {row['resumed_from_epoch']} "
              f"(training time over all runs {row['train_time_s'] / 60:.0f} min); params, "
              "MACs and latency were measured by this run"
              for row in rows if row.get("resumed_from_epoch")]
    if any(row.get("experiment") == "seed" for row in rows):
        notes.append("- The seed experiment's ResNet-18 models are ImageNet architectures trained "
                     "here on CIFAR-10; the paper publishes no CIFAR-10 (nor any ResNet-18) "
                     "figure for them.")
    notes.append(RESNET20_ALPHA_NOTE)
    lines += ["Notes:", *notes, ""]
    return "\n".join(lines)


def write_results(out_dir: str, record: RunRecord, rows: List[dict], smoke: bool
                  ) -> Dict[str, Any]:
    results = {"schema": SCHEMA, "smoke": smoke, "run": record.data, "rows": rows}
    save_json(os.path.join(out_dir, "results.json"), results)
    record.write(os.path.join(out_dir, "run_record.json"))
    save_text(os.path.join(out_dir, "results.md"), render_results(results))
    return results


@dataclass
class SpconvOptions(ExperimentOptions):
    """:class:`ExperimentOptions` plus the experiment (``seed``, ``paper``, ``paper_subset`` or
    ``all`` = seed + paper), the models (None: the experiment's list) and whether to measure
    latency."""

    experiment: str = "all"
    models: Optional[List[str]] = None
    bench: bool = True


def _eval_images(res: Dict[str, Any], cfg: Dict[str, Any]) -> int:
    """How many test images the last evaluation saw (``train.max_eval_steps`` caps it)."""
    steps = cfg["train"]["max_eval_steps"]
    if not steps:
        return res["num_test_images"]
    batch = cfg["data"]["eval_batch_size"] or cfg["data"]["batch_size"]
    return min(res["num_test_images"], steps * batch)


def _row(exp: str, model: str, smoke_overrides: List[str], cfg: Dict[str, Any],
         res: Dict[str, Any], meas: Dict[str, Any], smoke: bool, seconds: float) -> dict:
    """One row of results.json: the run's fit() result beside its measurements."""
    return {
        "experiment": exp, "model": model, "alpha": alpha_of(model),
        "image_size": int(cfg["data"]["image_size"]),
        "epochs_run": res["epochs_run"], "epochs_planned": res["epochs_planned"],
        "complete": res["complete"], "smoke": smoke, "smoke_overrides": smoke_overrides,
        "top1": res["final_top1"], "top5": res["final_top5"], "best_top1": res["best_top1"],
        "paper_top1": published_cifar10_top1(model),
        "resumed_from_epoch": res["resumed_from_epoch"], "train_time_s": res["train_time_s"],
        "best_epoch": res["best_epoch"], "params": meas["params"], "macs": meas["macs"],
        "params_m": meas["params"] / 1e6 if meas["params"] is not None else None,
        "macs_m": meas["macs"] / 1e6 if meas["macs"] is not None else None,
        "latency_ms": meas["latency_ms"], "latency": meas.get("latency"),
        "train_images_per_s": res["train_images_per_s"],
        "wall_time_s": res["wall_time_s"], "script_time_s": seconds,
        "eval_images": _eval_images(res, cfg),
        "output_dir": os.path.abspath(cfg["output_dir"]), "errors": meas["errors"],
    }


def _resolved_runs(options: SpconvOptions, plan, data_file: Optional[str]) -> List[tuple]:
    """(experiment, model, smoke overrides, config) per planned model. Every config is resolved
    before anything trains: a typo in an override fails now, not hours later."""
    runs = []
    for exp, cfg_path, model in plan:
        smoke_overrides = (list(load_config(cfg_path)["experiment"].get("smoke") or [])
                           if options.smoke else [])
        overrides = smoke_overrides + options.common_overrides(data_file) + [
            f"model.name={model}", f"output_dir={os.path.join(options.out_root, exp, model)}",
        ] + list(options.overrides)
        runs.append((exp, model, smoke_overrides, load_config(cfg_path, overrides)))
    return runs


def run(options: SpconvOptions, config_dir: str = SPCONV_CONFIGS) -> Dict[str, Any]:
    """Train the planned models, measure them and write the results into ``options.out_root``;
    returns the content of results.json (a row's ``errors`` lists a failed measurement).

    ``config_dir``: the folder of the experiments' configs (the shipped ``configs/spconv``)."""
    data_file = resolve_cifar10_file(options.data_file, options.data_dir)
    plan, skipped = plan_runs(options.experiment, options.models, config_dir)
    for m in skipped:
        print(f"note: {m} is listed by the experiment but not registered in ppnets; skipped")
    runs = _resolved_runs(options, plan, data_file)
    os.makedirs(options.out_root, exist_ok=True)
    record = RunRecord(options.script, options.command, smoke=options.smoke,
                       device=options.device, experiment=options.experiment,
                       models=[m for _, _, m in plan], skipped_unregistered=skipped,
                       overrides=list(options.overrides),
                       data={"file": os.path.abspath(data_file) if data_file else
                             "downloaded by paddle.vision.datasets.Cifar10",
                             "md5": file_md5(data_file) if data_file else None})
    rows: List[dict] = []
    for exp, model, smoke_overrides, cfg in runs:
        print(f"=== {exp}: {model} -> {cfg['output_dir']}", flush=True)
        t0 = time.perf_counter()
        res = fit(cfg)
        record.data["data"].update(train_images=res["num_train_images"],
                                   test_images=res["num_test_images"])
        record.data.setdefault("epochs_run", {})[f"{exp}/{model}"] = {
            "run": res["epochs_run"], "planned": res["epochs_planned"],
            "max_steps_per_epoch": cfg["train"]["max_steps_per_epoch"]}
        meas = measure(cfg, options.device, bench=options.bench)
        rows.append(_row(exp, model, smoke_overrides, cfg, res, meas, options.smoke,
                         time.perf_counter() - t0))
        write_results(options.out_root, record, rows, options.smoke)   # progress as it goes
    record.finish()
    results = write_results(options.out_root, record, rows, options.smoke)
    print(f"results: {os.path.join(options.out_root, 'results.md')}")
    return results
