"""Build a search latency table on the device itself (an ARM phone or board, through Paddle Lite).

The host writes the search grid with ``--export-lite-grid DIR`` (``ppnets.search.lut``): one
``.nb`` per block, ``manifest.json``, and this file with the runner files beside them. On the
device -- Python 3 with ``paddlelite`` and ``numpy`` only (an ARM Linux board, or Android in
Termux) -- copy that folder and run::

    python3 lut_device.py --grid . --out lut_arm.json --threads 1 --power-mode LITE_POWER_HIGH

Every block is timed by ``lite_runner.benchmark_nb`` (ppnets.bench's timing loop: warm-up
untimed, per-repeat clock, median). The output is a ``ppnets.lut/1`` table; bring it back and
run the search with ``--lut lut_arm.json``. Re-running with the same ``--out`` keeps the entries
already measured (a long grid can be timed in several sessions). The file is written after
every block, through a temporary file, so an interrupted run loses at most one entry.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any, Callable, Dict, Optional

try:
    from ppnets.deploy.lite_runner import benchmark_nb  # on a development host
except ImportError:  # on the device: no ppnets, the runner files sit beside this one
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lite_runner import benchmark_nb

GRID_SCHEMA = "ppnets.lut-grid/1"
LUT_SCHEMA = "ppnets.lut/1"


def _write(path: str, table: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=2, allow_nan=False)
    os.replace(tmp, path)


def build_table(grid_dir: str, out: str, threads: int = 1, power_mode: Optional[str] = None,
                warmup: int = 10, repeats: int = 50,
                progress: Optional[Callable[[str], None]] = print) -> Dict[str, Any]:
    """Time every block of the grid in ``grid_dir`` and write the table to ``out``."""
    with open(os.path.join(grid_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("schema") != GRID_SCHEMA:
        raise ValueError(f"{grid_dir}/manifest.json is not a search grid ({GRID_SCHEMA}); "
                         "write one with --export-lite-grid on the host")
    table = {"schema": LUT_SCHEMA, "meta": {}, "entries": {}}
    if os.path.isfile(out):
        with open(out, encoding="utf-8") as f:
            table["entries"] = dict(json.load(f).get("entries", {}))
    for i, entry in enumerate(manifest["entries"]):
        if entry["key"] in table["entries"]:
            continue
        rec = benchmark_nb(os.path.join(grid_dir, entry["nb"]), model=entry["key"],
                           input_size=tuple(entry["input_size"]), threads=threads,
                           power_mode=power_mode, warmup=warmup, repeats=repeats)
        table["entries"][entry["key"]] = float(rec["latency_ms"]["median"])
        table["meta"] = {"backend": rec["backend"], "device": "arm" if manifest["target"] ==
                         "arm" else manifest["target"], "threads": threads,
                         "power_mode": power_mode, "warmup": warmup, "repeats": repeats,
                         "machine": rec["machine"], "runtime": rec["runtime"],
                         "grid_target": manifest["target"],
                         "updated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                             timespec="seconds")}
        _write(out, table)
        if progress is not None:
            progress(f"[{i + 1}/{len(manifest['entries'])}] {entry['key']}: "
                     f"{table['entries'][entry['key']]:.4f} ms")
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", default=".", help="folder written by --export-lite-grid")
    p.add_argument("--out", required=True, help="latency table to write (ppnets.lut/1 JSON)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--power-mode", default=None, help="e.g. LITE_POWER_HIGH (big cores)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args(argv)
    table = build_table(args.grid, args.out, args.threads, args.power_mode, args.warmup,
                        args.repeats)
    print(f"{len(table['entries'])} entries in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
