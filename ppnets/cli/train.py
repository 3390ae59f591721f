"""``ppnets train``: train a model from a YAML recipe with the engine (:func:`ppnets.engine.fit`).

    ppnets train -c fasternet/cifar10 --data-file cifar-10-python.tar.gz \
        -o model.name=fasternet_t0 -o train.epochs=100 --output-dir runs/t0

The config holds the recipe (a shipped recipe by name -- ``ppnets configs`` -- or a file; every
key in docs/training.md); ``-o key=value`` overrides any key; the options below set the
environment. Re-running the same command resumes
from the last checkpoint in ``--output-dir`` (``--no-resume`` starts over, moving the old run
to ``previous-<time>/``). Writes checkpoints, VisualDL logs and ``results.json``; with
``export.formats`` set (the fine-tuning recipes of ``configs/finetune/``), the best checkpoint
is then exported and verified into ``<output-dir>/export``.

Image files are checked before the first step (``data.on_bad_image``: ``error`` lists every
unreadable file and stops, ``skip`` leaves them out); ``ppnets data check FOLDER`` runs the same
check alone. Ctrl-C stops with one line naming the last checkpoint (exit status 130).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import paddle

from ppnets.deploy import export
from ppnets.engine import (ConfigError, DataUnavailableError, ResumeMismatchError, fit,
                           load_config, read_latest)
from ppnets.factory import create_model

from .common import run_command

HELP = "train a model from a YAML recipe (resumes when re-run)"
DESCRIPTION = ("Train a model from a YAML recipe with the training engine; re-running the same "
               "command resumes.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True,
                   help="YAML recipe: a shipped recipe's name (fasternet/cifar10; `ppnets "
                        "configs` lists them) or a file")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. -o train.epochs=2 -o optim.lr=0.05 (repeatable)")
    p.add_argument("--output-dir", default=None, help="where checkpoints, logs and results go "
                                                      "(default: the config's output_dir)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data-file", default=None, help="CIFAR-10 archive (data.data_file)")
    data.add_argument("--data-dir", default=None,
                      help="image folder with train/ and val/ (data.data_dir)")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                   help="default: the config's device")
    p.add_argument("--seed", type=int, default=None, help="train.seed")
    p.add_argument("--no-resume", action="store_true",
                   help="start over even if --output-dir holds checkpoints (the old run is "
                        "moved to previous-<time>/, never deleted)")


def overrides_from(args: argparse.Namespace) -> list:
    """The environment options as config overrides; the user's ``-o`` come last and win."""
    out = []
    for key, value in (("output_dir", args.output_dir), ("data.data_file", args.data_file),
                       ("data.data_dir", args.data_dir), ("device", args.device),
                       ("train.seed", args.seed)):
        if value is not None:
            out.append(f"{key}={value}")
    if args.no_resume:
        out.append("train.resume=false")
    return out + list(args.override)


def interrupted_message(cfg: dict, command: str) -> str:
    """One line for Ctrl-C: where the last checkpoint is and how to resume."""
    ckpt = os.path.join(cfg["output_dir"], "checkpoints")
    pointer = read_latest(ckpt) if os.path.isdir(ckpt) else None
    if pointer is None:
        return ("interrupted before the first checkpoint was written: nothing to resume; "
                f"`{command}` starts again")
    return (f"interrupted: the last checkpoint is epoch {pointer['epoch']}/"
            f"{cfg['train']['epochs']} in {ckpt}; `{command}` resumes from it")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, overrides_from(args))
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = fit(cfg)
    except (DataUnavailableError, ResumeMismatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_message(cfg, args.command), file=sys.stderr)
        return 130
    summary = {k: result.get(k) for k in ("model", "epochs_run", "epochs_planned", "final_top1",
                                          "final_top5", "best_top1", "best_epoch", "output_dir")}
    status = 0
    if cfg["export"]["formats"] and result["complete"]:
        report = export_best(cfg, result["num_classes"])
        summary["export"] = {"output_dir": report["output_dir"],
                             "all_passed": report["all_passed"]}
        status = 0 if report["all_passed"] else 1
    print(json.dumps(summary, indent=2))
    return status


def export_best(cfg: dict, num_classes: int) -> dict:
    """Export the best checkpoint of a finished run (``export.formats``) into
    ``<output_dir>/export``, at the training input size, verified against eager."""
    net = create_model(cfg["model"]["name"], num_classes=num_classes,
                       **(cfg["model"].get("kwargs") or {}))
    ckpt = os.path.join(cfg["output_dir"], "checkpoints", "best.pdparams")
    net.set_state_dict(paddle.load(ckpt))
    size = int(cfg["data"]["image_size"])
    report = export(net, formats=tuple(cfg["export"]["formats"]),
                    out_dir=os.path.join(cfg["output_dir"], "export"), input_size=(3, size, size),
                    lite_targets=tuple(cfg["export"]["lite_targets"]), progress=True)
    report["output_dir"] = os.path.join(cfg["output_dir"], "export")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets train")
