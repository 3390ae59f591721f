"""Files a user must be able to trust: atomic writes, hashes, UTC timestamps, Markdown tables,
and file-descriptor redirection (what C++ code prints).

Every result, record and checkpoint ppnets writes goes through :func:`atomic_write`: a temporary
file in the same folder, fsynced, then ``os.replace``d onto the target, so an interrupted run
never leaves a half-written file where a complete one was (a user's earlier results survive).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import stat
import sys
import uuid
from typing import IO, Any, Callable, Iterable, Iterator, Optional, Sequence

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "file_digest", "file_md5",
           "file_sha256", "utc_now", "format_value", "markdown_table", "dict_table",
           "redirect_fd"]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_temporary(folder: str, name: str) -> str:
    """A new empty file beside the target, created with mode 0o666 so that the process umask
    applies, as to any file the user creates (``tempfile.mkstemp`` would make every result 0600,
    unreadable to the user's group, a notebook server or a container running as another user)."""
    while True:
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def atomic_write(path: str, writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)`` then move ``tmp_path`` onto ``path``; no partial file is ever
    visible under ``path`` and the temporary is removed on failure. A new file gets the mode the
    umask gives; a replaced file keeps its mode."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _new_temporary(folder, os.path.basename(path))
    try:
        writer(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str, text: str) -> None:
    def _write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, _write)


def atomic_write_json(path: str, obj: Any, strict: bool = False) -> None:
    """``obj`` as indented JSON at ``path``. ``strict`` refuses NaN/Infinity (which are not JSON:
    result files that other tools read use it)."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=not strict) + "\n")


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_md5(path: str) -> str:
    return file_digest(path, "md5")


def file_sha256(path: str) -> str:
    return file_digest(path, "sha256")


def utc_now() -> str:
    """Now, in UTC, ISO 8601 to the second: ``2026-12-04T11:26:24+00:00``."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def format_value(value: Any, digits: int = 2) -> str:
    """A table cell: floats with ``digits`` decimals, None and non-finite numbers as ``n/a``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], digits: Any = 2,
                   align: Optional[str] = None) -> str:
    """A Markdown table. ``digits``: decimals for every float, or one entry per column.
    ``align`` is the separator row without its outer bars (default: first column left, the
    others right)."""
    header = list(header)
    per_column = list(digits) if isinstance(digits, (list, tuple)) else [digits] * len(header)
    align = align or ("---" + "|---:" * (len(header) - 1))
    lines = ["| " + " | ".join(header) + " |", "|" + align + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(v, d) for v, d in zip(row, per_column))
                     + " |")
    return "\n".join(lines)


def dict_table(rows: Iterable[dict], columns: Sequence[tuple]) -> str:
    """A Markdown table of dict rows; ``columns`` are ``(key, header, digits)``."""
    return markdown_table([h for _, h, _ in columns],
                          [[row.get(k) for k, _, _ in columns] for row in rows],
                          digits=[d for _, _, d in columns],
                          align="|".join("---" for _ in columns)) + "\n"


@contextlib.contextmanager
def redirect_fd(fd: int, target: IO) -> Iterator[None]:
    """Send what is written to file descriptor ``fd`` (1 or 2: C++ logs included, which
    ``sys.stdout``/``sys.stderr`` redirection misses) to the open file ``target`` meanwhile."""
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    saved = os.dup(fd)
    os.dup2(target.fileno(), fd)
    try:
        yield
    finally:
        stream.flush()
        os.dup2(saved, fd)
        os.close(saved)
