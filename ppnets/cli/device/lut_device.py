"""Build a latency table on the device itself (an ARM phone or board, through Paddle Lite).

The host writes a grid -- every block of a search grid (``ppnets search efficientformer
--export-lite-grid DIR``, docs/search.md) or every block and whole model of zoo models
(``ppnets lut export-grid --models ... --output-dir DIR``, docs/deploy.md): one ``.nb`` per
entry, ``manifest.json``, and this file with the runner files beside them. On the device --
Python 3 with ``paddlelite`` and ``numpy`` only (an ARM Linux board, or Android in Termux) --
copy that folder and run::

    python3 lut_device.py --grid . --out lut_arm.json --threads 1 --power-mode LITE_POWER_HIGH

Every entry is timed by ``lite_runner.benchmark_nb`` (ppnets.bench's timing loop: warm-up
untimed, per-repeat clock, median) in ``--rounds`` fresh predictors, round-robin over the grid,
and is the median of their medians. The output is a ``ppnets.lut/1`` table; bring it back and
pass it with ``--lut lut_arm.json``. Re-running with the same ``--out`` keeps what was already
measured, round by round (a long grid can be timed in several sessions). The file is written
after every timing, through a temporary file, so an interrupted run loses at most one.

Standard library + numpy (+ paddlelite) only: this command never runs with ppnets installed
beside it except in ppnets' own tests.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from typing import Any, Callable, Dict, Optional

try:
    from ppnets.cli.device.lite_runner import benchmark_nb  # on a development host
except ImportError:  # on the device: no ppnets, the runner files sit beside this one
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lite_runner import benchmark_nb

# The same strings as ppnets.deploy.lut's (this file cannot import it; a test compares them).
GRID_SCHEMA = "ppnets.lut-grid/1"
LUT_SCHEMA = "ppnets.lut/1"


def _write(path: str, table: Dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=2, allow_nan=False)
    os.replace(tmp, path)


def _load_grid(grid_dir: str, out: str):
    """(manifest, table so far): the grid's manifest and what an earlier run of ``out`` kept."""
    with open(os.path.join(grid_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("schema") != GRID_SCHEMA:
        raise ValueError(f"{grid_dir}/manifest.json is not a latency grid ({GRID_SCHEMA}); "
                         "write one with --export-lite-grid on the host")
    table = {"schema": LUT_SCHEMA, "meta": {}, "entries": {}, "round_medians_ms": {}}
    if os.path.isfile(out):
        with open(out, encoding="utf-8") as f:
            saved = json.load(f)
        table["entries"] = dict(saved.get("entries", {}))
        table["round_medians_ms"] = dict(saved.get("round_medians_ms", {}))
        table["meta"] = saved.get("meta", {})
    return manifest, table


def build_table(grid_dir: str, out: str, threads: int = 1, power_mode: Optional[str] = None,
                warmup: int = 10, repeats: int = 50, rounds: int = 5,
                progress: Optional[Callable[[str], None]] = print) -> Dict[str, Any]:
    """Time every block of the grid in ``grid_dir`` and write the table to ``out``.

    Like the host's table (``ppnets.bench.interleaved_runs``): each entry is the median over
    ``rounds`` fresh predictors of each one's median, built round-robin -- round r times every
    block before round r + 1 -- so that a slow phase of the device (thermal throttling, a
    background job) touches one round of many blocks instead of every round of a few. The
    rounds so far are kept under ``round_medians_ms``; an entry appears under ``entries`` once
    its rounds are complete."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    manifest, table = _load_grid(grid_dir, out)
    done = table["round_medians_ms"]
    todo = [e for e in manifest["entries"] if e["key"] not in table["entries"]]
    for r in range(rounds):
        for i, entry in enumerate(todo):
            key = entry["key"]
            if len(done.get(key, [])) > r:   # timed in an earlier, interrupted session
                continue
            rec = benchmark_nb(os.path.join(grid_dir, entry["nb"]), model=key,
                               input_size=tuple(entry["input_size"]), threads=threads,
                               power_mode=power_mode, warmup=warmup, repeats=repeats)
            done.setdefault(key, []).append(float(rec["latency_ms"]["median"]))
            if len(done[key]) >= rounds:
                table["entries"][key] = float(statistics.median(done[key]))
            table["meta"] = {
                "backend": rec["backend"], "device": manifest["target"], "threads": threads,
                "power_mode": power_mode, "warmup": warmup, "repeats": repeats, "rounds": rounds,
                "machine": rec["machine"], "runtime": rec["runtime"],
                "grid_target": manifest["target"],
                "updated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds")}
            _write(out, table)
            if progress is not None:
                progress(f"[round {r + 1}/{rounds}] [{i + 1}/{len(todo)}] {key}: "
                         f"{done[key][-1]:.4f} ms")
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lut_device.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", default=".", help="folder written by --export-lite-grid")
    p.add_argument("--out", required=True, help="latency table to write (ppnets.lut/1 JSON)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--power-mode", default=None, help="e.g. LITE_POWER_HIGH (big cores)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5,
                   help="fresh predictors per block, round-robin over the grid (the median of "
                        "their medians is the entry)")
    args = p.parse_args(argv)
    try:
        table = build_table(args.grid, args.out, args.threads, args.power_mode, args.warmup,
                            args.repeats, args.rounds)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(table['entries'])} entries in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
