"""Shared pieces of the ``reproduce/*.py`` scripts: the common command line, the run record and
atomic result files.

Every script accepts ``--data-dir/--data-file``, ``--output-dir``, ``--device``,
``-o/--override key.sub=value`` (repeatable), ``--smoke``, ``--seed`` and ``--no-resume``; and
writes a run record (machine, exact command, git commit, timestamps, data, smoke or not) next to
its results, so a reader can tell a smoke run from a full reproduction.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python reproduce/x.py` from a source checkout
    sys.path.insert(0, REPO)

from ppnets.engine.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402

__all__ = ["REPO", "build_parser", "common_overrides", "utc_now", "git_commit", "machine_summary",
           "command_line", "RunRecord", "markdown_table", "write_json", "write_text", "is_rank0"]


def build_parser(description: str, default_output_dir: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every reproduce script shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data-file", default=None,
                      help="local data archive (e.g. cifar-10-python.tar.gz)")
    data.add_argument("--data-dir", default=None,
                      help="folder holding the data set under its official file name")
    p.add_argument("--output-dir", default=default_output_dir,
                   help="where checkpoints, logs and result tables go")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. -o train.epochs=2 -o optim.lr=0.05 (repeatable)")
    p.add_argument("--smoke", action="store_true",
                   help="a few steps of one epoch per model: checks the pipeline end to end in "
                        "minutes on a CPU; the numbers mean nothing and are marked as smoke")
    p.add_argument("--seed", type=int, default=None, help="train.seed for every run")
    p.add_argument("--no-resume", action="store_true",
                   help="start over even if the output folder holds checkpoints (the old run "
                        "is moved to previous-<time>/, never deleted)")
    return p


def common_overrides(args: argparse.Namespace, data_file: Optional[str]) -> List[str]:
    """Overrides implied by the shared options (user ``-o`` values come after and win)."""
    out = [f"device={args.device}"]
    if data_file:
        out.append(f"data.data_file={data_file}")
    if args.seed is not None:
        out.append(f"train.seed={args.seed}")
    if args.no_resume:
        out.append("train.resume=false")
    return out


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit(repo: str = REPO) -> Optional[Dict[str, Any]]:
    """HEAD commit and whether the tree has local changes; None outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", repo, "status", "--porcelain"],
                                capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def machine_summary(device: str = "cpu") -> Dict[str, Any]:
    """CPU model, cores, memory, GPU, library versions (``ppnets.bench.machine_info``)."""
    try:
        from ppnets.bench import machine_info
        return machine_info(device=device)
    except ImportError:  # the benchmark package is optional for training-only checkouts
        import paddle
        return {"cpu_model": platform.processor() or platform.machine(),
                "logical_cores": os.cpu_count(),
                "available_cores": len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "os": platform.platform(), "python": platform.python_version(),
                "paddle": paddle.__version__}


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command as typed (``python reproduce/x.py ...``), shell-quoted."""
    argv = list(sys.argv if argv is None else argv)
    return shlex.join(["python"] + argv)


class RunRecord:
    """What was run, where and when; saved as ``run_record.json`` and embedded in results."""

    def __init__(self, script: str, args: argparse.Namespace,
                 argv: Optional[Sequence[str]] = None, **extra):
        self.data: Dict[str, Any] = {
            "script": script,
            "command": command_line(argv),
            "cwd": os.getcwd(),
            "smoke": bool(getattr(args, "smoke", False)),
            "device": getattr(args, "device", None),
            "git": git_commit(),
            "started_utc": utc_now(),
            "finished_utc": None,
            "machine": machine_summary(getattr(args, "device", "cpu")),
        }
        self.data.update(extra)

    def update(self, **values) -> None:
        self.data.update(values)

    def finish(self) -> None:
        self.data["finished_utc"] = utc_now()

    def write(self, path: str) -> None:
        write_json(path, self.data)


def provenance_lines(run: Dict[str, Any], data: str) -> List[str]:
    """The results.md lines that say how a run was made: command, machine, git, data, times."""
    m = run["machine"]
    return [
        f"- command: `{run['command']}`",
        f"- machine: {m.get('cpu_model')} ({m.get('available_cores', m.get('logical_cores'))} "
        f"cores available), device {run['device']}"
        + (f", GPU {m.get('gpu')}" if m.get("gpu") else ""),
        f"- git: {(run.get('git') or {}).get('commit', 'n/a')}"
        + (" (local changes)" if (run.get("git") or {}).get("dirty") else ""),
        f"- data: {data}",
        f"- started {run['started_utc']}, finished {run.get('finished_utc') or 'still running'}",
    ]


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Iterable[Dict[str, Any]], columns: Sequence[tuple]) -> str:
    """``columns`` are ``(key, header, digits)``; missing values print as ``n/a``."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), d) for k, _, d in columns) + " |")
    return "\n".join(lines) + "\n"


def is_rank0() -> bool:
    """False in the non-zero ranks of ``python -m paddle.distributed.launch`` (read from the
    launcher's environment, so it holds before paddle initialises the parallel context)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", os.environ.get("PADDLE_GLOBAL_RANK", "0"))
               or 0) == 0


def write_json(path: str, obj: Any) -> None:
    if is_rank0():  # one writer per result file under the data-parallel launcher
        atomic_write_json(path, obj)


def write_text(path: str, text: str) -> None:
    if is_rank0():
        atomic_write_text(path, text)


# ---------------------------------------------------------------------------------------------
# Variant runner shared by the per-paper scripts (fasternet_*, repvgg_*, mobileone_*, ...): each
# script lists its rows as Variants (a config plus overrides) and calls run_variants.
# ---------------------------------------------------------------------------------------------
__all__ += ["Variant", "run_variants", "cifar_data", "imagenet_data", "add_imagenet_options",
            "add_variant_options", "published", "file_md5", "IMAGENET_SAMPLE"]

IMAGENET_SAMPLE = os.path.normpath(os.path.join(REPO, "..", "shared", "data",
                                                "imagenet-val-sample"))


class Variant(dict):
    """One row of a study: ``label`` (what the paper calls it), ``config`` (YAML path),
    ``overrides`` (``key=value`` strings applied after the config's), ``fields`` (extra columns,
    e.g. the paper's published accuracy or the ablated setting)."""

    def __init__(self, label: str, config: str, overrides: Sequence[str] = (), **fields):
        super().__init__(label=label, config=config, overrides=list(overrides), fields=fields)


def published(name: str) -> Dict[str, Any]:
    """The registry's published ImageNet top-1 (%) of a variant and where it comes from."""
    import ppnets
    try:
        info = ppnets.model_info(name)
    except KeyError:
        return {"published_top1": None, "published_source": None}
    src = info.get("source")
    src = src.get("top1") if isinstance(src, dict) else src
    return {"published_top1": info.get("top1"), "published_source": src}


def file_md5(path: str) -> str:
    import hashlib
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _slug(text: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "run"


def add_imagenet_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-list", default=None,
                   help="PaddleClas list file of the training split (paths relative to --data-dir)")
    p.add_argument("--val-list", default=None,
                   help="PaddleClas list file of the validation split")


def add_variant_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                   help="run only the rows with these labels (default: all)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG figure")


def cifar_data(args) -> Dict[str, Any]:
    """Resolve --data-file/--data-dir to a CIFAR-10 archive and describe it for the record."""
    from ppnets.engine import DataUnavailableError, count_cifar10_images, resolve_cifar10_file
    try:
        path = resolve_cifar10_file(args.data_file, args.data_dir)
    except DataUnavailableError as exc:
        raise SystemExit(f"error: {exc}")
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


def imagenet_data(args) -> Dict[str, Any]:
    """--data-dir/--train-list/--val-list, or in --smoke without them the 400-image
    imagenet-val-sample used as both splits (labelled as such)."""
    data_dir, train_list, val_list = args.data_dir, args.train_list, args.val_list
    info: Dict[str, Any] = {"dataset": "imagenet"}
    if not (data_dir or train_list or val_list):
        if not args.smoke:
            raise SystemExit("error: give --data-dir (ImageNet with train/ and val/ class "
                             "folders) and/or --train-list/--val-list (PaddleClas list files)")
        if not os.path.isdir(IMAGENET_SAMPLE):
            raise SystemExit(f"error: --smoke without --data-dir needs {IMAGENET_SAMPLE} "
                             "(400 ImageNet validation images); pass --data-dir instead")
        data_dir = IMAGENET_SAMPLE
        train_list = val_list = os.path.join(IMAGENET_SAMPLE, "val_list.txt")
        info["note"] = ("SAMPLE DATA: the 400-image imagenet-val-sample (ImageNet validation "
                        "images) serves as BOTH training and evaluation set; only a pipeline "
                        "check")
    if args.data_file:
        raise SystemExit("error: ImageNet scripts take --data-dir/--train-list/--val-list, "
                         "not --data-file")
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
    import ppnets
    size = int(cfg["data"]["image_size"])
    try:
        from ppnets.analysis import profile_model
        net = ppnets.create_model(cfg["model"]["name"], num_classes=num_classes,
                                  **(cfg["model"]["kwargs"] or {}))
        prof = profile_model(net, input_size=(3, size, size))
        return {"params_m": prof.params / 1e6, "macs_m": prof.macs / 1e6}
    except Exception as exc:  # counting is a courtesy; training results stand without it
        return {"params_m": None, "macs_m": None,
                "errors": [f"params/MACs not counted: {type(exc).__name__}: {exc}"]}


BASE_COLUMNS = [("label", "row", 0), ("model", "model", 0), ("image_size", "input", 0),
                ("epochs_run", "epochs", 0), ("max_steps_per_epoch", "batches/epoch cap", 0),
                ("batch_size", "batch", 0), ("train_images", "train images", 0),
                ("eval_images", "eval images", 0), ("top1", "top-1", 4), ("top5", "top-5", 4),
                ("best_top1", "best top-1", 4), ("params_m", "params (M)", 3),
                ("macs_m", "MACs (M)", 1), ("train_images_per_s", "train img/s", 1)]


def run_variants(*, script: str, schema: str, title: str, args: argparse.Namespace,
                 argv: Optional[Sequence[str]], variants: Sequence[Variant],
                 data: Dict[str, Any], extra_columns: Sequence[tuple] = (),
                 notes: Sequence[str] = (), plot: Optional[Dict[str, Any]] = None,
                 smoke_rows: Optional[Sequence[str]] = None) -> int:
    """Train every variant with ``ppnets.engine.fit`` into ``<output-dir>[/smoke]/<label>/`` and
    write ``results.json``, ``results.md``, ``run_record.json`` (and ``<plot name>.png``) there.

    ``--smoke`` applies each config's ``experiment.smoke`` overrides. All configs are resolved
    before anything trains. ``plot``: ``dict(name=, x=<field>, xlabel=, title=)`` draws top-1
    against a field (or the labels) with matplotlib. ``smoke_rows``: the rows ``--smoke`` runs
    when ``--only`` is not given (ImageNet scripts keep their smoke runs to the small models)."""
    from ppnets.engine import fit, load_config

    chosen = list(variants)
    if getattr(args, "only", None):
        labels = [v["label"] for v in variants]
        unknown = [o for o in args.only if o not in labels]
        if unknown:
            raise SystemExit(f"--only {' '.join(unknown)}: no such row; rows: {labels}")
        chosen = [v for v in variants if v["label"] in args.only]
    elif args.smoke and smoke_rows:   # smoke: the cheap rows unless --only names others
        chosen = [v for v in variants if v["label"] in smoke_rows]
    out_root = os.path.join(args.output_dir, "smoke") if args.smoke else args.output_dir
    runs = []
    for v in chosen:
        smoke = (list(load_config(v["config"])["experiment"].get("smoke") or [])
                 if args.smoke else [])
        overrides = (smoke + common_overrides(args, None) + list(data.get("overrides", []))
                     + list(v["overrides"])
                     + [f"output_dir={os.path.join(out_root, _slug(v['label']))}"]
                     + list(args.override))
        runs.append((v, smoke, overrides, load_config(v["config"], overrides)))
    os.makedirs(out_root, exist_ok=True)
    record = RunRecord(script, args, sys.argv if argv is None else [script, *argv],
                       rows=[v["label"] for v in chosen], overrides=list(args.override),
                       data={k: val for k, val in data.items() if k != "overrides"})
    rows: List[Dict[str, Any]] = []
    for v, smoke, overrides, cfg in runs:
        print(f"=== {v['label']}: {cfg['model']['name']} -> {cfg['output_dir']}", flush=True)
        res = fit(cfg)
        record.data["data"].update(train_images=res["num_train_images"],
                                   test_images=res["num_test_images"])
        tr = cfg["train"]
        eval_bs = cfg["data"]["eval_batch_size"] or cfg["data"]["batch_size"]
        row = {"label": v["label"], **v["fields"], "model": cfg["model"]["name"],
               "kwargs": cfg["model"]["kwargs"], "config": os.path.relpath(v["config"], REPO),
               "overrides": overrides, "smoke": bool(args.smoke), "smoke_overrides": smoke,
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
        rows.append(row)
        _write_variant_results(out_root, schema, title, record, rows, args.smoke, data,
                               list(extra_columns), notes, None)
    record.finish()
    png = None
    if plot and not getattr(args, "no_plot", False) and rows:
        png = _plot(out_root, rows, plot, args.smoke, data)
    _write_variant_results(out_root, schema, title, record, rows, args.smoke, data,
                           list(extra_columns), notes, png)
    print(f"results: {os.path.join(out_root, 'results.md')}")
    return 0


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


def _write_variant_results(out_root, schema, title, record, rows, smoke, data, extra_columns,
                           notes, png) -> None:
    write_json(os.path.join(out_root, "results.json"),
               {"schema": schema, "smoke": bool(smoke), "run": record.data, "rows": rows,
                "figure": png})
    record.write(os.path.join(out_root, "run_record.json"))
    r = record.data
    lines = [f"# {title}", ""]
    if smoke:
        lines += ["> **SMOKE RUN, not a reproduction.** Each row trained for a few steps of one "
                  "epoch on tiny batches (the `smoke_overrides` in results.json); accuracies "
                  "are meaningless and only show that the pipeline runs end to end.", ""]
    if data.get("note"):
        lines += [f"> **{data['note']}**", ""]
    d = r.get("data", {})
    src = d.get("file") or d.get("data_dir") or d.get("train_list")
    lines += provenance_lines(
        r, f"{d.get('dataset')} from {src} ({d.get('train_images')} train / "
           f"{d.get('test_images')} eval images)") + [
        "- top-1/top-5: last evaluation on `eval images`; epochs: completed epochs, each of at "
        "most `batches/epoch cap` batches (n/a: the whole training set) of `batch` images; "
        "`train images`: size of the training set",
        "",
        markdown_table(rows, BASE_COLUMNS[:1] + list(extra_columns) + BASE_COLUMNS[1:]),
    ]
    if png:
        lines += [f"![{title}]({png})", ""]
    errs = [f"- {row['label']}: {e}" for row in rows for e in row.get("errors", [])]
    if notes or errs:
        lines += ["Notes:", *[f"- {n}" for n in notes], *errs, ""]
    write_text(os.path.join(out_root, "results.md"), "\n".join(lines))


def run_latency_study(script_path: str, study_main, argv: Optional[Sequence[str]] = None) -> int:
    """Entry point shared by the ``reproduce/latency_*.py`` wrappers: attach the run record
    (machine, command) and hand the arguments to the study's own CLI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script = os.path.basename(script_path)
    record = RunRecord(script, argparse.Namespace(smoke="--quick" in argv, device="cpu"),
                       argv=[f"reproduce/{script}", *argv])
    return study_main(argv, record=record.data)
