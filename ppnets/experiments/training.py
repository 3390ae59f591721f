"""Training experiments as tables of rows: each row a config plus overrides, trained with
:func:`ppnets.engine.fit`, then measured (params, MACs at the training input size) and
tabulated beside the paper's numbers (``results.json``, ``results.md``, ``run_record.json`` and
a figure). The paper-ablation and ImageNet scripts of ``reproduce/`` are each a list of
:class:`Variant` rows and one call of :func:`run_variants`.
"""
from __future__ import annotations

import functools
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from ppnets.analysis import profile_model
from ppnets.engine import count_cifar10_images, fit, load_config, resolve_cifar10_file
from ppnets.factory import create_model
from ppnets.registry import model_info
from ppnets.utils import dict_table, file_md5, is_rank0

from .options import ExperimentError, ExperimentOptions
from .record import RunRecord, provenance_lines, save_json, save_text

__all__ = ["Variant", "published", "cifar_data", "imagenet_data", "run_variants", "BASE_COLUMNS",
           "render_variant_results"]


class Variant(dict):
    """One row of a study: ``label`` (what the paper calls it), ``config`` (YAML path),
    ``overrides`` (``key=value`` strings applied after the config's), ``fields`` (extra columns,
    e.g. the paper's published accuracy or the ablated setting)."""

    def __init__(self, label: str, config: str, overrides: Sequence[str] = (), **fields):
        super().__init__(label=label, config=config, overrides=list(overrides), fields=fields)


def published(name: str) -> Dict[str, Any]:
    """The registry's published ImageNet top-1 (%) of a variant and where it comes from."""
    try:
        info = model_info(name)
    except KeyError:
        return {"published_top1": None, "published_source": None}
    src = info.get("source")
    src = src.get("top1") if isinstance(src, dict) else src
    return {"published_top1": info.get("top1"), "published_source": src}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "run"


def cifar_data(options: ExperimentOptions) -> Dict[str, Any]:
    """Resolve ``data_file``/``data_dir`` to a CIFAR-10 archive and describe it for the record;
    raises :class:`~ppnets.engine.DataUnavailableError` when there is none."""
    path = resolve_cifar10_file(options.data_file, options.data_dir)
    info: Dict[str, Any] = {"dataset": "cifar10", "overrides": [], "file": None, "md5": None}
    if path:
        counts = count_cifar10_images(path)
        info.update(file=os.path.abspath(path), md5=file_md5(path),
                    train_images=counts["train"], test_images=counts["test"],
                    overrides=[f"data.data_file={path}"])
        if counts["train"] < 50000:
            info["note"] = (f"PARTIAL DATA: {counts['train']} training / {counts['test']} test "
                            "images, not the full CIFAR-10; accuracies are not comparable with "
                            "published numbers")
    else:
        info["file"] = "downloaded by paddle.vision.datasets.Cifar10"
    return info


def _imagenet_sources(options: ExperimentOptions, sample_dir: Optional[str]):
    """(data_dir, train_list, val_list, note): the options', or the sample's in a smoke run."""
    if options.data_file:
        raise ExperimentError("ImageNet experiments take --data-dir/--train-list/--val-list, "
                              "not --data-file")
    if options.data_dir or options.train_list or options.val_list:
        return options.data_dir, options.train_list, options.val_list, None
    if not options.smoke:
        raise ExperimentError("give --data-dir (ImageNet with train/ and val/ class folders) "
                              "and/or --train-list/--val-list (PaddleClas list files)")
    if not sample_dir or not os.path.isdir(sample_dir):
        raise ExperimentError(f"--smoke without --data-dir needs {sample_dir} (400 ImageNet "
                              "validation images); pass --data-dir instead")
    listing = os.path.join(sample_dir, "val_list.txt")
    return sample_dir, listing, listing, (
        "SAMPLE DATA: the 400-image imagenet-val-sample (ImageNet validation images) serves as "
        "BOTH training and evaluation set; only a pipeline check")


def imagenet_data(options: ExperimentOptions, sample_dir: Optional[str] = None
                  ) -> Dict[str, Any]:
    """``data_dir``/``train_list``/``val_list``, or in a smoke run without them ``sample_dir`` (a
    folder of ImageNet validation images with a ``val_list.txt``, such as the 400-image
    imagenet-val-sample) used as both splits, labelled as such."""
    data_dir, train_list, val_list, note = _imagenet_sources(options, sample_dir)
    info: Dict[str, Any] = {"dataset": "imagenet"}
    if note:
        info["note"] = note
    ov = ["data.dataset=imagenet"]
    for key, value in (("data_dir", data_dir), ("train_list", train_list),
                       ("val_list", val_list)):
        if value:
            ov.append(f"data.{key}={os.path.abspath(value)}")
            info[key] = os.path.abspath(value)
    for key in ("train_list", "val_list"):
        if info.get(key) and os.path.isfile(info[key]):
            with open(info[key], "r", encoding="utf-8") as f:
                info[f"{key}_lines"] = sum(1 for line in f if line.strip())
            info[f"{key}_md5"] = file_md5(info[key])
    info["overrides"] = ov
    return info


def _measure(cfg: Dict[str, Any], num_classes: int) -> Dict[str, Any]:
    """Params and MACs at the training input size (ppnets.analysis), deploy-independent."""
    size = int(cfg["data"]["image_size"])
    try:
        net = create_model(cfg["model"]["name"], num_classes=num_classes,
                           **(cfg["model"]["kwargs"] or {}))
        prof = profile_model(net, input_size=(3, size, size))
        return {"params_m": prof.params / 1e6, "macs_m": prof.macs / 1e6}
    except Exception as exc:  # counting is a courtesy; training results stand without it
        return {"params_m": None, "macs_m": None,
                "errors": [f"params/MACs not counted: {type(exc).__name__}: {exc}"]}


# Accuracies are stored as fractions (results.json) and shown in percent, as published ones are.
BASE_COLUMNS = [("label", "row", 0), ("model", "model", 0), ("image_size", "input", 0),
                ("epochs_run", "epochs", 0), ("max_steps_per_epoch", "batches/epoch cap", 0),
                ("batch_size", "batch", 0), ("train_images", "train images", 0),
                ("eval_images", "eval images", 0), ("top1_pct", "top-1 (%)", 2),
                ("top5_pct", "top-5 (%)", 2), ("best_top1_pct", "best top-1 (%)", 2),
                ("params_m", "params (M)", 3), ("macs_m", "MACs (M)", 1),
                ("train_images_per_s", "train img/s", 1)]


def _chosen_rows(variants: Sequence[Variant], options: ExperimentOptions,
                 smoke_rows: Optional[Sequence[str]]) -> List[Variant]:
    labels = [v["label"] for v in variants]
    if options.only:
        unknown = [o for o in options.only if o not in labels]
        if unknown:
            raise ExperimentError(f"--only {' '.join(unknown)}: no such row; rows: {labels}")
        return [v for v in variants if v["label"] in options.only]
    if options.smoke and smoke_rows:   # smoke: the cheap rows unless --only names others
        return [v for v in variants if v["label"] in smoke_rows]
    return list(variants)


def _resolved_runs(chosen: Sequence[Variant], options: ExperimentOptions,
                   data: Dict[str, Any]) -> List[tuple]:
    """(variant, smoke overrides, all overrides, config) per row, every config resolved before
    anything trains: a typo in an override fails now, not hours later."""
    runs = []
    for v in chosen:
        smoke = (list(load_config(v["config"])["experiment"].get("smoke") or [])
                 if options.smoke else [])
        overrides = (smoke + options.common_overrides() + list(data.get("overrides", []))
                     + list(v["overrides"])
                     + [f"output_dir={os.path.join(options.out_root, _slug(v['label']))}"]
                     + list(options.overrides))
        runs.append((v, smoke, overrides, load_config(v["config"], overrides)))
    return runs


def _variant_row(v: Variant, smoke: List[str], overrides: List[str], cfg: Dict[str, Any],
                 res: Dict[str, Any], is_smoke: bool) -> Dict[str, Any]:
    """One row of results.json: the variant, its fit() result and its params/MACs."""
    tr = cfg["train"]
    eval_bs = cfg["data"]["eval_batch_size"] or cfg["data"]["batch_size"]
    row = {"label": v["label"], **v["fields"], "model": cfg["model"]["name"],
           "kwargs": cfg["model"]["kwargs"], "config": os.path.relpath(v["config"]),
           "overrides": overrides, "smoke": is_smoke, "smoke_overrides": smoke,
           "image_size": int(cfg["data"]["image_size"]),
           "epochs_run": res["epochs_run"], "epochs_planned": res["epochs_planned"],
           "complete": res["complete"], "resumed_from_epoch": res["resumed_from_epoch"],
           "max_steps_per_epoch": tr["max_steps_per_epoch"],
           "batch_size": int(cfg["data"]["batch_size"]),
           "train_images": res["num_train_images"],
           "eval_images": (min(res["num_test_images"], tr["max_eval_steps"] * eval_bs)
                           if tr["max_eval_steps"] else res["num_test_images"]),
           "top1": res["final_top1"], "top5": res["final_top5"],
           "best_top1": res["best_top1"], "best_epoch": res["best_epoch"],
           "top1_ema": res.get("final_top1_ema"),
           "train_images_per_s": res["train_images_per_s"],
           "wall_time_s": res["wall_time_s"], "output_dir": os.path.abspath(cfg["output_dir"]),
           "errors": []}
    meas = _measure(cfg, res.get("num_classes", 10))
    row["errors"] += meas.pop("errors", [])
    row.update(meas)
    return row


def run_variants(options: ExperimentOptions, *, schema: str, title: str,
                 variants: Sequence[Variant], data: Dict[str, Any],
                 extra_columns: Sequence[tuple] = (), notes: Sequence[str] = (),
                 plot: Optional[Dict[str, Any]] = None,
                 smoke_rows: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Train every variant with ``ppnets.engine.fit`` into ``<out_root>/<label>/`` and write
    ``results.json``, ``results.md``, ``run_record.json`` (and ``<plot name>.png``) into
    ``options.out_root``; returns the content of results.json.

    A smoke run applies each config's ``experiment.smoke`` overrides. All configs are resolved
    before anything trains. ``data``: :func:`cifar_data` or :func:`imagenet_data`. ``plot``:
    ``dict(name=, x=<field>, xlabel=, title=)`` draws top-1 against a field (or the labels)
    with matplotlib. ``smoke_rows``: the rows a smoke run trains when ``options.only`` is not
    given (ImageNet experiments keep their smoke runs to the small models)."""
    chosen = _chosen_rows(variants, options, smoke_rows)
    runs = _resolved_runs(chosen, options, data)
    out_root = options.out_root
    os.makedirs(out_root, exist_ok=True)
    record = RunRecord(options.script, options.command, smoke=options.smoke,
                       device=options.device, rows=[v["label"] for v in chosen],
                       overrides=list(options.overrides),
                       data={k: val for k, val in data.items() if k != "overrides"})
    rows: List[Dict[str, Any]] = []
    write = functools.partial(_write_variant_results, out_root, schema, title, record,
                              smoke=options.smoke, extra_columns=list(extra_columns),
                              notes=notes)
    for v, smoke, overrides, cfg in runs:
        print(f"=== {v['label']}: {cfg['model']['name']} -> {cfg['output_dir']}", flush=True)
        res = fit(cfg)
        record.data["data"].update(train_images=res["num_train_images"],
                                   test_images=res["num_test_images"])
        rows.append(_variant_row(v, smoke, overrides, cfg, res, options.smoke))
        write(rows, png=None)   # progress is visible as it goes
    record.finish()
    png = None
    if plot and options.plot and rows:
        png = _plot(out_root, rows, plot, options.smoke, data)
    results = write(rows, png=png)
    print(f"results: {os.path.join(out_root, 'results.md')}")
    return results


def _plot(out_root, rows, plot, smoke, data) -> Optional[str]:
    if not is_rank0():   # one writer under the data-parallel launcher
        return os.path.basename(os.path.join(out_root, plot.get("name", "figure") + ".png"))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ys = [100 * (r["top1"] or 0.0) for r in rows]
    key = plot.get("x")
    if key and all(isinstance(r.get(key), (int, float)) for r in rows):
        ax.plot([r[key] for r in rows], ys, "o-")
        for r, y in zip(rows, ys):
            ax.annotate(r["label"], (r[key], y), fontsize=7)
        if plot.get("logx"):
            ax.set_xscale("log", base=2)
    else:
        ax.bar(range(len(rows)), ys)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["label"] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel(plot.get("xlabel", ""))
    ax.set_ylabel("top-1 (%)")
    tag = "SMOKE RUN" if smoke else (data.get("note", "").split(":")[0] or "")
    ax.set_title(plot.get("title", "") + (f" [{tag}]" if tag else ""), fontsize=9)
    fig.tight_layout()
    path = os.path.join(out_root, plot.get("name", "figure") + ".png")
    atomic_png = path + ".tmp.png"
    fig.savefig(atomic_png, dpi=110)
    plt.close(fig)
    os.replace(atomic_png, path)
    return os.path.basename(path)


def _percent_rows(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The rows with their accuracies in percent (``top1_pct``, ..., ``top1_ema_pct``)."""
    def pct(value):
        return None if value is None else 100.0 * value
    return [dict(row, top1_pct=pct(row.get("top1")), top5_pct=pct(row.get("top5")),
                 best_top1_pct=pct(row.get("best_top1")), top1_ema_pct=pct(row.get("top1_ema")))
            for row in rows]


def render_variant_results(results: Dict[str, Any], title: str,
                           extra_columns: Sequence[tuple] = (),
                           notes: Sequence[str] = ()) -> str:
    """results.md from the content of results.json (``smoke``, ``run``, ``rows``, ``figure``)
    and the script's title, extra columns and notes."""
    r, rows, smoke = results["run"], results["rows"], bool(results.get("smoke"))
    d = r.get("data", {})
    lines = [f"# {title}", ""]
    if smoke:
        lines += ["> **SMOKE RUN, not a reproduction.** Each row trained for a few steps of one "
                  "epoch on tiny batches (the `smoke_overrides` in results.json); accuracies "
                  "are meaningless and only show that the pipeline runs end to end.", ""]
    if d.get("note"):
        lines += [f"> **{d['note']}**", ""]
    src = d.get("file") or d.get("data_dir") or d.get("train_list")
    lines += provenance_lines(
        r, f"{d.get('dataset')} from {src} ({d.get('train_images')} train / "
           f"{d.get('test_images')} eval images)") + [
        "- top-1/top-5 (%): last evaluation on `eval images`; epochs: completed epochs, each of "
        "at most `batches/epoch cap` batches (n/a: the whole training set) of `batch` images; "
        "`train images`: size of the training set",
        "",
        dict_table(_percent_rows(rows), BASE_COLUMNS[:1] + list(extra_columns) + BASE_COLUMNS[1:]),
    ]
    png = results.get("figure")
    if png:
        lines += [f"![{title}]({png})", ""]
    errs = [f"- {row['label']}: {e}" for row in rows for e in row.get("errors", [])]
    if notes or errs:
        lines += ["Notes:", *[f"- {n}" for n in notes], *errs, ""]
    return "\n".join(lines)


def _write_variant_results(out_root, schema, title, record, rows, *, smoke, extra_columns, notes,
                           png) -> Dict[str, Any]:
    results = {"schema": schema, "smoke": bool(smoke), "run": record.data, "rows": rows,
               "figure": png}
    save_json(os.path.join(out_root, "results.json"), results)
    record.write(os.path.join(out_root, "run_record.json"))
    save_text(os.path.join(out_root, "results.md"),
              render_variant_results(results, title, extra_columns, notes))
    return results
