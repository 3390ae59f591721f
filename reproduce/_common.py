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
           "command_line", "RunRecord", "markdown_table", "write_json", "write_text"]


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


def write_json(path: str, obj: Any) -> None:
    atomic_write_json(path, obj)


def write_text(path: str, text: str) -> None:
    atomic_write_text(path, text)
