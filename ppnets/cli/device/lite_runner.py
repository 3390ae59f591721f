"""On-device latency of a Paddle Lite ``.nb`` in the ``ppnets.bench/1`` JSON schema.

ARM Linux board (Python 3 + ``pip install paddlelite numpy``; paddle and ppnets are not needed
there): ``ppnets deploy device-files --output-dir board`` on the host copies this file with
``_lite_child.py``, ``timing.py`` (ppnets.bench's timing loop) and ``machine.py`` into one
folder; copy it to the board and run there::

    python3 lite_runner.py --nb model_arm.nb --model fasternet_t0 --input-size 3 224 224 \
        --threads 1 --power-mode LITE_POWER_HIGH --warmup 10 --repeats 50 --json arm.json

On a development host the same command, ``ppnets deploy lite-bench ...``, runs an x86 ``.nb``
through the Paddle Lite Python of ``PPNETS_PADDLELITE_PYTHON``. The timing loop and the
statistics are ppnets.bench's (``timing.py``: per-repeat ``perf_counter``, warm-up untimed,
median/IQR); the timed region is ``predictor.run()`` + ``numpy()`` of every output (one per
map for a features-only backbone). Records have ``backend: "paddle_lite"`` and merge with
``ppnets bench`` results.

Android (no Python): build or download Paddle Lite's ``benchmark_bin`` for armv8 and run::

    adb push model_arm.nb benchmark_bin /data/local/tmp/
    adb shell "cd /data/local/tmp && ./benchmark_bin --optimized_model_file=model_arm.nb \
        --input_shape=1,3,224,224 --threads=1 --power_mode=0 --warmup=10 --repeats=50 \
        --backend=arm"

``benchmark_bin`` prints avg/min/max only (no per-repeat samples), so its numbers cannot be
put in this schema's ``latency_ms`` (median/IQR); record them separately.

This file is a ``ppnets`` command module (HELP, DESCRIPTION, add_arguments, run) that also runs
alone: standard library + numpy (+ paddlelite) at import, nothing from ppnets.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(os.path.dirname(HERE))   # ppnets/, on a development host
SCHEMA = "ppnets.bench/1"
BACKEND = "paddle_lite"
TIMED_REGION = "predictor.run() + numpy() of every output (input staged once)"
POWER_MODES = ("LITE_POWER_HIGH", "LITE_POWER_LOW", "LITE_POWER_FULL", "LITE_POWER_NO_BIND",
               "LITE_POWER_RAND_HIGH", "LITE_POWER_RAND_LOW")
HELP = "time a Paddle Lite .nb (ppnets.bench/1 record; the board-side runner)"
DESCRIPTION = ("Latency of a Paddle Lite .nb in the ppnets.bench/1 schema: on an ARM board as "
               "`python3 lite_runner.py` (no ppnets there), on this host through "
               "PPNETS_PADDLELITE_PYTHON.")


def _load(name: str, candidates: Sequence[str]):
    """The module ``name`` from the first file of ``candidates`` that exists (beside this file
    on a board, in the ppnets package on a host), registered under ``name``."""
    for path in candidates:
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            return mod
    raise FileNotFoundError(f"{name}: none of {list(candidates)} exists; copy it beside "
                            "lite_runner.py (ppnets deploy device-files)")


def _machine(threads: int, paddlelite: Optional[str]) -> Dict[str, Any]:
    """The bench ``machine`` block without importing paddle (boards have only paddlelite)."""
    m = _load("ppnets_device_machine", [os.path.join(PACKAGE, "utils", "machine.py"),
                                        os.path.join(HERE, "machine.py")])
    return {"cpu_model": m.cpu_model(), "arch": platform.machine(),
            "logical_cores": os.cpu_count(), "available_cores": m.available_cores(),
            "cpu_governor": m.cpu_governor(), "memory_gib": m.memory_gib(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "device": "cpu", "threads": threads, "mkldnn": None, "paddle_version": None,
            "paddlelite_version": paddlelite, "os": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__}


def _in_process() -> bool:
    return importlib.util.find_spec("paddlelite") is not None


def _saved_outputs(npz_file: str) -> List[np.ndarray]:
    """Every output in an npz of the runner's layout (``y``, or ``y_0``, ``y_1``, ... for a
    multi-output model: ppnets.deploy's reference_io.npz and _lite_child.py's results)."""
    with np.load(npz_file) as saved:
        count = sum(1 for key in saved.files if key.startswith("y_") and key[2:].isdigit())
        return [saved["y_%d" % i] for i in range(count)] if count else [saved["y"]]


def _time_here(nb_file: str, x: np.ndarray, req: Dict[str, Any]):
    """Time in this process (a board, or a host whose Python has paddlelite): (result,
    outputs)."""
    import tempfile

    # the child imports the timing loop as `timing`: beside it on a board, ppnets.bench's here
    _load("timing", [os.path.join(HERE, "timing.py"), os.path.join(PACKAGE, "bench", "timing.py")])
    child = _load("ppnets_lite_child", [os.path.join(HERE, "_lite_child.py"),
                                        os.path.join(PACKAGE, "deploy", "_lite_child.py")])
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "in.npz"), x=x)
        res = child.task_bench(dict(req, nb_file=os.path.abspath(nb_file),
                                    input_npz=os.path.join(tmp, "in.npz"),
                                    output_npz=os.path.join(tmp, "out.npz")))
        return res, _saved_outputs(os.path.join(tmp, "out.npz"))


def _time_in_lite_python(nb_file: str, x: np.ndarray, req: Dict[str, Any],
                         python: Optional[str]):
    """Time in the Paddle Lite Python of a development host: (result, outputs)."""
    import shutil

    try:
        from ppnets.deploy import lite   # host side only: a board has no ppnets
    except ImportError:
        raise RuntimeError(f"paddlelite is not importable in this Python "
                           f"({sys.executable}): pip install paddlelite numpy") from None
    with lite.lite_session(python) as folder:
        shutil.copy(nb_file, os.path.join(folder, "model.nb"))
        np.savez(os.path.join(folder, "in.npz"), x=x)
        res = lite.call_child("bench", dict(req, nb_file=os.path.join(folder, "model.nb"),
                                            input_npz=os.path.join(folder, "in.npz"),
                                            output_npz=os.path.join(folder, "out.npz")),
                              python, folder)
        return res, _saved_outputs(os.path.join(folder, "out.npz"))


def _max_abs_diff(ys: List[np.ndarray], refs: Optional[List[np.ndarray]]) -> Optional[float]:
    """Largest |.nb output - eager output| over every output; None without a reference."""
    if refs is None:
        return None
    if len(ys) != len(refs) or any(y.shape != r.shape for y, r in zip(ys, refs)):
        raise ValueError(f"the .nb returned outputs of shapes {[list(y.shape) for y in ys]}, "
                         f"the reference has {[list(r.shape) for r in refs]}: not the same model")
    return max(float(np.abs(y.astype(np.float64) - r).max()) for y, r in zip(ys, refs))


def _record(nb_file: str, model: Optional[str], x: np.ndarray, ys: List[np.ndarray],
            refs: Optional[List[np.ndarray]], res: Dict[str, Any], here: bool, threads: int,
            power_mode: Optional[str], warmup: int, precision: str,
            macs: Optional[int], params: Optional[int]) -> Dict[str, Any]:
    lat = res["latency_ms"]
    median_s = lat["median"] / 1e3
    bs = int(x.shape[0])
    machine = _machine(threads, res.get("paddlelite"))
    if not here:   # the runtime ran in another Python (a chroot): its own arch and version
        machine.update(arch=res.get("arch"), runtime_python=res.get("python"))
    return {
        "schema": SCHEMA, "backend": BACKEND, "model": model or os.path.basename(nb_file),
        "input_size": [int(v) for v in x.shape[1:]], "batch_size": bs, "device": "cpu",
        "threads": threads, "mkldnn": None, "mkldnn_enabled": None, "precision": precision,
        "deploy": True, "warmup": warmup, "timed_region": TIMED_REGION, "latency_ms": lat,
        "throughput_ips": bs / median_s, "macs": macs, "params": params,
        "flops_per_s": None if macs is None else 2.0 * macs * bs / median_s,
        "max_abs_diff_vs_dygraph": _max_abs_diff(ys, refs), "outputs": len(ys),
        "machine": machine,
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "power_mode": power_mode, "nb_file": os.path.abspath(nb_file),
        "runtime": f"paddle_lite {res.get('paddlelite')} (MobileConfig, Python "
                   f"{res.get('python')}, {res.get('arch')})",
    }


def benchmark_nb(nb_file: str, model: Optional[str] = None, input_size=(3, 224, 224),
                 batch_size: int = 1, threads: int = 1, power_mode: Optional[str] = None,
                 warmup: int = 10, repeats: int = 50, macs: Optional[int] = None,
                 params: Optional[int] = None, reference_npz: Optional[str] = None,
                 precision: str = "fp32", python: Optional[str] = None,
                 seed: int = 0) -> Dict[str, Any]:
    """Time an ``.nb``; returns one ``ppnets.bench/1`` record (backend ``paddle_lite``).

    ``reference_npz`` (``x``, ``y`` arrays, and ``y_0``, ``y_1``, ... for a multi-output model:
    ``reference_io.npz`` written by ``ppnets.deploy.export``) supplies the input and the eager
    outputs to compare with (``max_abs_diff_vs_dygraph``: the largest over every output);
    otherwise the input is N(0, 1) and ``max_abs_diff_vs_dygraph`` is null. Runs in this
    process when it imports paddlelite and no ``python`` is named, else in the Paddle Lite
    Python of the host (``ppnets.deploy.lite``).
    """
    if warmup < 1 or repeats < 1 or threads < 1:
        raise ValueError("warmup, repeats and threads must be >= 1 (the first run is never "
                         "timed)")
    if power_mode is not None and power_mode not in POWER_MODES:
        raise ValueError(f"power_mode must be one of {POWER_MODES}, got {power_mode!r}")
    if not os.path.isfile(nb_file):
        raise FileNotFoundError(f"{nb_file}: no such .nb file")
    if reference_npz:
        with np.load(reference_npz) as ref:
            x = ref["x"]
        refs = _saved_outputs(reference_npz)
    else:
        x = np.random.default_rng(seed).standard_normal(
            (batch_size, *input_size)).astype(np.float32)
        refs = None
    req = {"threads": threads, "power_mode": power_mode, "warmup": warmup, "repeats": repeats}
    here = python is None and _in_process()
    res, ys = (_time_here(nb_file, x, req) if here
               else _time_in_lite_python(nb_file, x, req, python))
    return _record(nb_file, model, x, ys, refs, res, here, threads, power_mode, warmup,
                   precision, macs, params)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nb", required=True, help="the Paddle Lite model (.nb)")
    p.add_argument("--model", default=None, help="name for the record (default: the file's)")
    p.add_argument("--input-size", type=int, nargs=3, default=[3, 224, 224],
                   metavar=("C", "H", "W"))
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--power-mode", default=None, choices=POWER_MODES)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--reference", default=None,
                   help="npz with x (input) and y (eager output; y_0, y_1, ... for every output "
                        "of a multi-output model), e.g. reference_io.npz of ppnets export")
    p.add_argument("--macs", type=int, default=None)
    p.add_argument("--json", default=None, help="write the ppnets.bench/1 report here")


def _write_json(path: str, obj: Any) -> None:
    """Atomic on the board too (no ppnets.utils there): a temporary file, then a rename."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    try:
        rec = benchmark_nb(args.nb, args.model, tuple(args.input_size), args.batch_size,
                           args.threads, args.power_mode, args.warmup, args.repeats,
                           macs=args.macs, reference_npz=args.reference)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lat = rec["latency_ms"]
    print(f"{rec['model']}: median {lat['median']:.3f} ms, IQR {lat['iqr']:.3f} ms "
          f"({lat['repeats']} repeats, {args.threads} threads) on {rec['machine']['cpu_model']}")
    if args.json:
        _write_json(args.json, {"schema": SCHEMA, "command": args.command,
                                "machine": rec["machine"], "results": [rec]})
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python3 lite_runner.py ...`` on the board."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="lite_runner.py", description=DESCRIPTION)
    add_arguments(p)
    args = p.parse_args(argv)
    args.command = shlex.join(["python3", "lite_runner.py", *argv])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
