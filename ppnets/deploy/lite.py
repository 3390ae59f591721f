"""Paddle Lite from ppnets: ``paddle_lite_opt`` conversion, op listings, x86 runs, benchmarks.

PyPI has ``paddlelite`` wheels (2.13rc0) only for CPython <= 3.10 on x86_64; ppnets runs on 3.11.
Everything Paddle Lite does therefore runs in a child process of *a Python that imports
paddlelite*, chosen by :func:`find_lite_python`:

1. ``python=`` argument, else the ``PPNETS_PADDLELITE_PYTHON`` environment variable (e.g. the
   wrapper ``.../paddlelite-python`` written by ``scripts/prepare_paddlelite_env.sh``, which runs
   Python 3.9 inside a chroot);
2. this interpreter, when ``import paddlelite.lite`` works here.

Files travel through an *exchange folder* that both sides see at the same absolute path
(``PPNETS_PADDLELITE_EXCHANGE``, default: ``exchange/`` beside the wrapper; for an in-process
Python any temporary folder): ``.pdmodel``/``.pdiparams`` and input ``.npz`` in, ``.nb`` and
output ``.npz`` out. The child script (``_lite_child.py``) and ppnets.bench's timing loop
(``timing.py``) are copied there for each call.

:data:`DEVICE_FILES` are the files an ARM board needs to time ``.nb`` files without ppnets:
the device-side commands of ``ppnets/cli/device/`` and the helpers they load from beside
themselves.

:func:`open_lite_session` is the ``paddle_lite`` runtime of :func:`ppnets.runtime.open_session`
(registered when this module is imported): one Lite child process stays alive for the session
and serves each ``run`` (``_lite_child.py``'s ``serve`` task), so a run costs the ``.nb``'s
forward plus the exchange of the input and output files (about 1 ms), not a process start.
``session.timer`` times the forward inside the child with ppnets.bench's loop, without that
exchange.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import uuid
import weakref
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ppnets.bench import timing as bench_timing
from ppnets.runtime.sessions import (PrecisionUnsupportedError, RuntimeUnavailableError, Session,
                                     artifact_file, register_runtime)
from ppnets.utils import machine as machine_module

__all__ = ["LiteUnavailableError", "find_lite_python", "lite_available", "exchange_dir",
           "call_child", "supported_ops", "model_ops", "convert", "run_nb", "read_outputs",
           "run_batch", "lite_session", "parse_supported_ops", "copy_device_files",
           "open_lite_session", "lite_runtime_status",
           "LITE_TARGETS", "EXECUTABLE_TARGETS", "DEVICE_FILES"]

ENV_PYTHON = "PPNETS_PADDLELITE_PYTHON"
ENV_EXCHANGE = "PPNETS_PADDLELITE_EXCHANGE"
LITE_TARGETS = ("arm", "x86")
# .nb files this host can execute: the Paddle Lite wheel is an x86_64 build.
EXECUTABLE_TARGETS = ("x86",)
HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "_lite_child.py")
TIMING = bench_timing.__file__  # copied beside the child: it runs without paddle or ppnets
# The device-side commands are files copied onto the board, not modules imported here.
_DEVICE_COMMANDS = os.path.join(os.path.dirname(HERE), "cli", "device")
# file name on the device -> the file in this package
DEVICE_FILES = {"lite_runner.py": os.path.join(_DEVICE_COMMANDS, "lite_runner.py"),
                "lut_device.py": os.path.join(_DEVICE_COMMANDS, "lut_device.py"),
                "_lite_child.py": CHILD, "timing.py": TIMING,
                "machine.py": machine_module.__file__}


class LiteUnavailableError(RuntimeError):
    """No Python with paddlelite was found."""


def find_lite_python(python: Optional[str] = None) -> str:
    """The interpreter that runs the Paddle Lite child; raises LiteUnavailableError."""
    python = python or os.environ.get(ENV_PYTHON)
    if python:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise LiteUnavailableError(f"{ENV_PYTHON}={python!r} is not an executable file; "
                                       "run scripts/prepare_paddlelite_env.sh and point it at "
                                       "the paddlelite-python wrapper it prints")
        return python
    if importlib.util.find_spec("paddlelite") is not None:
        return sys.executable
    raise LiteUnavailableError(
        f"paddlelite is not importable in Python {sys.version.split()[0]} (PyPI wheels exist "
        f"for CPython <= 3.10 only) and {ENV_PYTHON} is not set: run "
        "`sudo scripts/prepare_paddlelite_env.sh` and export the variable it prints")


def lite_available(python: Optional[str] = None) -> bool:
    try:
        find_lite_python(python)
        return True
    except LiteUnavailableError:
        return False


def exchange_dir(python: Optional[str] = None) -> str:
    """Folder both this process and the Lite Python see at the same absolute path."""
    explicit = os.environ.get(ENV_EXCHANGE)
    if explicit:
        return explicit
    python = find_lite_python(python)
    if python == sys.executable:
        return tempfile.gettempdir()
    return os.path.join(os.path.dirname(os.path.abspath(python)), "exchange")


@contextlib.contextmanager
def lite_session(python: Optional[str] = None):
    """A fresh folder in the exchange dir holding the child script and its timing loop; removed
    afterwards. Files the Lite Python must read or write go here."""
    base = exchange_dir(python)
    os.makedirs(base, exist_ok=True)
    folder = os.path.join(base, "ppnets-" + uuid.uuid4().hex[:12])
    os.makedirs(folder)
    try:
        shutil.copy(CHILD, os.path.join(folder, "_lite_child.py"))
        shutil.copy(TIMING, os.path.join(folder, "timing.py"))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_device_files(folder: str) -> List[str]:
    """Copy :data:`DEVICE_FILES` into ``folder`` (created); returns the paths written."""
    os.makedirs(folder, exist_ok=True)
    written = []
    for name, src in DEVICE_FILES.items():
        written.append(os.path.join(folder, name))
        shutil.copy(src, written[-1])
    return written


def call_child(task: str, request: Dict[str, Any], python: Optional[str] = None,
               folder: Optional[str] = None, timeout: int = 1800) -> Dict[str, Any]:
    """Run one task of ``_lite_child.py`` in the Lite Python; returns its result dict."""
    exe = find_lite_python(python)
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(lite_session(python))
        req_path = os.path.join(folder, f"req-{task}.json")
        out_path = os.path.join(folder, f"out-{task}.json")
        with open(req_path, "w", encoding="utf-8") as f:
            json.dump(dict(request, task=task), f)
        env = dict(os.environ, GLOG_minloglevel=os.environ.get("GLOG_minloglevel", "2"))
        proc = subprocess.run([exe, os.path.join(folder, "_lite_child.py"), req_path,
                               out_path], capture_output=True, text=True, timeout=timeout,
                              env=env)
        if proc.returncode != 0 or not os.path.isfile(out_path):
            raise RuntimeError(f"Paddle Lite task {task!r} failed (exit {proc.returncode}) in "
                               f"{exe}: {(proc.stderr or proc.stdout).strip()[-1500:]}")
        with open(out_path, encoding="utf-8") as f:
            return json.load(f)


def run_batch(steps: Sequence[Dict[str, Any]], folder: str, python: Optional[str] = None,
              timeout: int = 3600) -> Dict[str, Dict[str, Any]]:
    """Run many ``model_ops`` / ``opt`` / ``run`` steps (dicts with a unique ``id``, ``kind`` and
    the fields of that task; every path inside the exchange folder) in as few Lite processes
    as possible. ``folder`` comes from :func:`lite_session`.

    Returns ``id -> record``: ``{"result": ...}``, ``{"error": ...}`` (Python exception),
    ``{"skipped": ...}`` or ``{"crash": ...}`` when Paddle Lite killed the process during that
    step (e.g. an abort in the x86 runtime); the remaining steps then run in a new process.
    """
    exe = find_lite_python(python)
    records: Dict[str, Dict[str, Any]] = {}
    remaining = list(steps)
    attempt = 0
    while remaining:
        attempt += 1
        progress = os.path.join(folder, f"progress-{attempt}.jsonl")
        req_path = os.path.join(folder, f"req-batch-{attempt}.json")
        out_path = os.path.join(folder, f"out-batch-{attempt}.json")
        with open(req_path, "w", encoding="utf-8") as f:
            json.dump({"task": "batch", "steps": remaining, "progress": progress}, f)
        env = dict(os.environ, GLOG_minloglevel=os.environ.get("GLOG_minloglevel", "2"))
        proc = subprocess.run([exe, os.path.join(folder, "_lite_child.py"), req_path,
                               out_path], capture_output=True, text=True, timeout=timeout,
                              env=env)
        started = None
        if os.path.isfile(progress):
            with open(progress, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:  # a line cut short by the crash
                        continue
                    if rec.pop("started", False):
                        started = rec["id"]
                    else:
                        records[rec.pop("id")] = rec
                        started = None
        done = [s for s in remaining if s["id"] in records]
        if proc.returncode == 0 and len(done) == len(remaining):
            break
        if started is None:  # died before any step started, or after the last one
            raise RuntimeError(f"Paddle Lite batch process failed (exit {proc.returncode}) in "
                               f"{exe}: {(proc.stderr or proc.stdout).strip()[-1500:]}")
        records[started] = {"crash": f"Paddle Lite process died (exit {proc.returncode}"
                            f"{', SIGABRT' if proc.returncode in (-6, 134) else ''})",
                            "log": (proc.stderr or proc.stdout).strip()[-1500:]}
        remaining = [s for s in remaining if s["id"] not in records]
    return records


def _stage_model(folder: str, model_file: str, params_file: str):
    mf = os.path.join(folder, "model.pdmodel")
    pf = os.path.join(folder, "model.pdiparams")
    shutil.copy(model_file, mf)
    shutil.copy(params_file, pf)
    return mf, pf


def supported_ops(target: str = "arm", python: Optional[str] = None) -> Dict[str, Any]:
    """Ops Paddle Lite supports on ``target``, parsed from ``Opt.print_supported_ops()``."""
    res = call_child("supported_ops", {"target": target}, python)

    return {"target": target, "ops": sorted(parse_supported_ops(res["text"], target)),
            "paddlelite": res["paddlelite"]}


def model_ops(model_file: str, params_file: str, target: str = "arm",
              python: Optional[str] = None) -> Dict[str, Any]:
    """``Opt.check_if_model_supported(True)`` output (``--print_model_ops=true``)."""
    with lite_session(python) as folder:
        mf, pf = _stage_model(folder, model_file, params_file)
        return call_child("model_ops", {"target": target, "model_file": mf,
                                        "param_file": pf}, python, folder)


def convert(model_file: str, params_file: str, out_prefix: str, target: str = "arm",
            python: Optional[str] = None) -> Dict[str, Any]:
    """``paddle_lite_opt`` for one target: writes ``out_prefix + '.nb'``; returns the log."""
    with lite_session(python) as folder:
        mf, pf = _stage_model(folder, model_file, params_file)
        res = call_child("opt", {"target": target, "model_file": mf, "param_file": pf,
                                 "out_prefix": os.path.join(folder, "model_" + target)},
                         python, folder)
        if res["ok"]:
            os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
            shutil.copy(res["nb_file"], out_prefix + ".nb")
            res["nb_file"] = out_prefix + ".nb"
        return res


def read_outputs(npz_file: str) -> List[np.ndarray]:
    """Every output a Lite run saved (``_lite_child.py``'s layout: ``y``, or ``y_0``, ``y_1``,
    ... for a multi-output model), in order."""
    with np.load(npz_file) as saved:
        count = sum(1 for key in saved.files if re.fullmatch(r"y_\d+", key))
        return [saved[f"y_{i}"] for i in range(count)] if count else [saved["y"]]


def run_nb(nb_file: str, x: np.ndarray, threads: int = 1,
           python: Optional[str] = None) -> List[np.ndarray]:
    """Run an ``.nb`` (built for this host's CPU) on ``x`` with the Lite runtime; every output
    of the program, in order (one for a classifier, one per map for a features-only
    backbone)."""
    with lite_session(python) as folder:
        nb = os.path.join(folder, "model.nb")
        shutil.copy(nb_file, nb)
        np.savez(os.path.join(folder, "in.npz"), x=np.ascontiguousarray(x, np.float32))
        call_child("run", {"nb_file": nb, "threads": threads,
                           "input_npz": os.path.join(folder, "in.npz"),
                           "output_npz": os.path.join(folder, "out.npz")}, python, folder)
        return read_outputs(os.path.join(folder, "out.npz"))


def parse_supported_ops(text: str, target: str) -> List[str]:
    """Ops with a kernel for ``target`` or for the host, from ``print_supported_ops`` output.

    The listing is a fixed-width table: a header ``OP_name  kARM  kHost  kUnk`` and one row per
    op with ``Y`` under each target that has a kernel; columns are located from the header.
    """
    lines = text.splitlines()
    header_idx = next((i for i, line in enumerate(lines) if "OP_name" in line), None)
    if header_idx is None:
        raise ValueError("no 'OP_name' header in the Paddle Lite op listing; got: "
                         f"{text[:300]!r}")
    header = lines[header_idx]
    columns = {m.group(0): m.end() for m in re.finditer(r"k\w+", header)}
    target_col = "kX86" if target == "x86" else "k" + target.upper()
    ends = [end for name, end in columns.items() if name in (target_col, "kHost")]
    if target_col not in columns:
        raise ValueError(f"the op listing has columns {list(columns)}, none for {target!r}")
    ops = []
    for line in lines[header_idx + 1:]:
        parts = line.split()
        if not parts or not re.fullmatch(r"[A-Za-z0-9_]+", parts[0]):
            continue
        # A 'Y' sits right-aligned under its column header.
        if any(end - 1 < len(line) and line[end - 1] == "Y" for end in ends):
            ops.append(parts[0])
    return ops


class _LiteServer:
    """One Lite child process running ``_lite_child.py``'s ``serve`` task on one ``.nb``."""

    def __init__(self, nb_file: str, threads: int, python: Optional[str], timeout: float):
        exe = find_lite_python(python)
        self._timeout = timeout
        self._stack = contextlib.ExitStack()
        self.folder = self._stack.enter_context(lite_session(python))
        nb = os.path.join(self.folder, "model.nb")
        shutil.copy(nb_file, nb)
        req = os.path.join(self.folder, "req-serve.json")
        with open(req, "w", encoding="utf-8") as f:
            json.dump({"task": "serve", "nb_file": nb, "threads": threads}, f)
        # stderr to a file: a pipe nobody reads could fill up and stall the child
        self._log = self._stack.enter_context(tempfile.TemporaryFile(mode="w+"))
        env = dict(os.environ, GLOG_minloglevel=os.environ.get("GLOG_minloglevel", "2"))
        self._proc = subprocess.Popen(
            [exe, os.path.join(self.folder, "_lite_child.py"), req,
             os.path.join(self.folder, "out-serve.json")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        self._stack.callback(self._stop)
        try:
            self.ready = self._reply()
        except Exception:
            self.close()
            raise

    def _reply(self) -> Dict[str, Any]:
        ready, _, _ = select.select([self._proc.stdout], [], [], self._timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            if not ready:
                self._proc.kill()
            self._proc.wait()
            self._log.seek(0)
            raise RuntimeError(
                f"the Paddle Lite child ({self._proc.args[0]}) "
                f"{'gave no answer within %ss' % self._timeout if not ready else 'stopped'} "
                f"(exit {self._proc.returncode}): {self._log.read().strip()[-1500:]}")
        return json.loads(line)

    def _ask(self, x: np.ndarray, request: Dict[str, Any]) -> Dict[str, Any]:
        if self._proc.poll() is not None:
            raise RuntimeError("this paddle_lite session is closed; open a new one")
        inp = os.path.join(self.folder, "in.npy")
        np.save(inp, x)
        self._proc.stdin.write(json.dumps(dict(request, input_npy=inp)) + "\n")
        self._proc.stdin.flush()
        reply = self._reply()
        if "error" in reply:
            raise RuntimeError(f"Paddle Lite could not run the .nb: {reply['error']}")
        return reply

    def run(self, x: np.ndarray) -> List[np.ndarray]:
        out = os.path.join(self.folder, "out.npz")
        self._ask(x, {"op": "run", "output_npz": out})
        return read_outputs(out)

    def time(self, x: np.ndarray, warmup: int, repeats: int) -> List[float]:
        return self._ask(np.ascontiguousarray(x, dtype=np.float32),
                         {"op": "time", "warmup": warmup, "repeats": repeats})["samples_s"]

    def _stop(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if not stream.closed:
                stream.close()

    def close(self) -> None:
        self._stack.close()


def open_lite_session(export_dir: str, threads: int = 1, precision: str = "fp32",
                      device: str = "cpu", options: Optional[Dict[str, Any]] = None) -> Session:
    """The ``paddle_lite`` runtime of :func:`ppnets.runtime.open_session`: the export's x86
    ``.nb`` (``lite/model_x86.nb``) in a Lite child process that stays alive until
    ``session.close()`` (or the session is garbage-collected). fp32 only: Paddle Lite's x86
    build has no INT8 or bf16 kernels for these models. ``options["python"]``: the Lite Python
    (default: ``PPNETS_PADDLELITE_PYTHON``); ``options["timeout_s"]``: longest wait for one
    answer (default 600)."""
    options = options or {}
    if device != "cpu":
        raise ValueError(f"ppnets runs paddle_lite on this host's CPU (device 'cpu'), not "
                         f"{device!r}; ARM .nb files run on the device (ppnets deploy "
                         "device-files)")
    if precision != "fp32":
        raise PrecisionUnsupportedError(
            f"paddle_lite on x86 runs fp32 only (its x86 kernels have no {precision} path for "
            "these models; Paddle Lite's INT8 is an ARM feature): use fp32, or "
            f"{precision} on openvino / paddle_inference")
    nb_file = artifact_file(export_dir, "paddle_lite", precision)
    python = options.get("python")
    try:
        server = _LiteServer(nb_file, int(threads), python,
                             float(options.get("timeout_s", 600)))
    except LiteUnavailableError as exc:
        raise RuntimeUnavailableError(f"paddle_lite is not available here: {exc}") from exc
    settings = {"config": "MobileConfig", "python": find_lite_python(python),
                "process": "one Lite child process per session; run() exchanges .npy/.npz "
                           "files with it, timer() times the forward inside it"}
    session = Session("paddle_lite", precision, threads, nb_file, server.run,
                      server.ready.get("paddlelite", "unknown"), settings, closer=server.close,
                      timer=server.time)
    # a session dropped without close() still ends its child process
    weakref.finalize(session, server.close)
    return session


@functools.lru_cache(maxsize=None)
def _lite_version(python: str) -> str:
    return call_child("info", {}, python)["paddlelite"]


def lite_runtime_status() -> Dict[str, Any]:
    """The ``paddle_lite`` entry of :func:`ppnets.runtime.runtime_status`."""
    try:
        python = find_lite_python()
    except LiteUnavailableError as exc:
        return {"available": False, "version": None, "reason": str(exc), "precisions": []}
    try:
        version = _lite_version(python)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return {"available": False, "version": None, "precisions": [],
                "reason": f"the Lite Python {python} does not run paddlelite: {exc}"}
    return {"available": True, "version": version, "reason": None, "precisions": ["fp32"]}


register_runtime("paddle_lite", open_lite_session, status=lite_runtime_status)
