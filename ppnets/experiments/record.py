"""What was run, where and when: the run record every experiment writes beside its results.

A :class:`RunRecord` holds the exact command, the working folder, the git commit of the source
tree (and whether it had local changes), start and end times (UTC), the machine
(:func:`ppnets.utils.machine_info`) and whatever the experiment adds (data file and md5,
overrides, ...). :func:`provenance_lines` turns it into the header of a results.md, so a reader
can tell a smoke run from a reproduction. :func:`save_json` / :func:`save_text` write result
files atomically, from rank 0 only under the data-parallel launcher.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

from ppnets.utils import atomic_write_json, atomic_write_text, is_rank0, machine_info, utc_now

__all__ = ["SOURCE_TREE", "git_commit", "machine_summary", "command_line", "RunRecord",
           "provenance_lines", "save_json", "save_text"]

# The checkout ppnets runs from (a git work tree for an editable install).
SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def save_json(path: str, obj: Any) -> None:
    """Atomic JSON, written by rank 0 only (one writer per result file)."""
    if is_rank0():
        atomic_write_json(path, obj)


def save_text(path: str, text: str) -> None:
    if is_rank0():
        atomic_write_text(path, text)


def git_commit(repo: str = SOURCE_TREE) -> Optional[Dict[str, Any]]:
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
    """CPU model, cores, memory, GPU, library versions (:func:`ppnets.utils.machine_info`)."""
    return machine_info(device=device)


def command_line(command: Sequence[str] = ()) -> str:
    """The command as typed, shell-quoted: ``command`` (one word per item, e.g. ``["python",
    "reproduce/x.py", "--smoke"]`` or ``["ppnets", "search", ...]``), else this process's
    ``python`` command line."""
    return shlex.join(list(command) if command else ["python", *sys.argv])


class RunRecord:
    """What was run, where and when; saved as ``run_record.json`` and embedded in results.

    ``script``: what ran (``reproduce/x.py``, ``ppnets search efficientformer``); ``command``:
    the command line as typed, one word per item (:func:`command_line`)."""

    def __init__(self, script: str, command: Sequence[str] = (), *, smoke: bool = False,
                 device: Optional[str] = "cpu", **extra):
        self.data: Dict[str, Any] = {
            "script": script,
            "command": command_line(command),
            "cwd": os.getcwd(),
            "smoke": bool(smoke),
            "device": device,
            "git": git_commit(),
            "started_utc": utc_now(),
            "finished_utc": None,
            "machine": machine_summary(device or "cpu"),
        }
        self.data.update(extra)

    def update(self, **values) -> None:
        self.data.update(values)

    def finish(self) -> None:
        self.data["finished_utc"] = utc_now()

    def write(self, path: str) -> None:
        save_json(path, self.data)


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
