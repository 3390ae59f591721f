"""The ARM table path of the searches (docs/search.md, "An ARM phone or board"), run end to end
with Paddle Lite's x86 target standing in for the phone: the host exports the grid, the
device-side runner -- in the Lite Python, where ppnets is not installed -- times every block from
the copied files alone, and the search reads the table back with ``--lut``.

Skips unless Paddle Lite is available (scripts/prepare_paddlelite_env.sh; CI's Lite job runs it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ppnets.deploy import lite
from ppnets.search.lut import DEVICE_FILES, LatencyLUT, export_lite_grid, unique_specs
from ppnets.search.space_v1 import V1Net, V1Space

needs_lite = pytest.mark.skipif(
    not lite.lite_available(),
    reason="Paddle Lite not available: paddlelite is not importable in this Python and "
           "PPNETS_PADDLELITE_PYTHON is unset (run scripts/prepare_paddlelite_env.sh)")


def _device_run(python, grid, out, *extra):
    # cwd is the grid, as on the phone; the runner finds lite_runner.py beside itself
    return subprocess.run([python, os.path.join(grid, "lut_device.py"), "--grid", grid,
                           "--out", out, "--warmup", "1", "--repeats", "3", "--rounds", "2",
                           *extra],
                          cwd=grid, capture_output=True, text=True, timeout=600)


@needs_lite
def test_a_lite_grid_is_timed_on_the_device_and_prices_the_network():
    space = V1Space(16, depths=(1, 1, 1, 2), widths=(16, 16, 16, 32), num_classes=10)
    net = V1Net((1, 1, 1, 2), (16, 16, 16, 32), 1)   # every kind: stem, down, MB4D, MB3D, head
    specs = space.specs(net)
    keys = [s["key"] for s in unique_specs(specs)]
    python = lite.find_lite_python()
    with lite.lite_session() as folder:   # both sides see this folder at the same path
        grid = os.path.join(folder, "grid")
        manifest = export_lite_grid(specs, grid, target="x86")
        assert manifest["failed"] == [] and [e["key"] for e in manifest["entries"]] == keys
        for name in DEVICE_FILES:
            assert os.path.isfile(os.path.join(grid, name)), name
        for entry in manifest["entries"]:
            assert os.path.isfile(os.path.join(grid, entry["nb"]))

        if python != sys.executable:   # the chroot stands for a device without ppnets
            probe = subprocess.run([python, "-c", "import ppnets"], capture_output=True)
            assert probe.returncode != 0

        out = os.path.join(folder, "lut_x86.json")
        proc = _device_run(python, grid, out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        table = json.loads(open(out, encoding="utf-8").read())
        assert table["schema"] == "ppnets.lut/1" and sorted(table["entries"]) == sorted(keys)
        assert all(ms > 0 for ms in table["entries"].values())
        assert table["meta"]["backend"] == "paddle_lite"
        assert table["meta"]["grid_target"] == "x86" and table["meta"]["repeats"] == 3
        assert table["meta"]["rounds"] == 2
        rounds = table["round_medians_ms"]
        assert all(len(rounds[k]) == 2 and table["entries"][k] == (rounds[k][0] + rounds[k][1]) / 2
                   for k in keys)   # the median of two rounds
        # round-robin: every block's first round is timed before any block's second
        order = [line.split("] ", 2)[-1].rsplit(": ", 1)[0] for line in proc.stdout.splitlines()
                 if line.startswith("[round")]
        assert order == keys * 2

        # an interrupted run resumes: only what is missing is timed again (here the second
        # round of one block)
        dropped = keys[2]
        kept = {k: v for k, v in table["entries"].items() if k != dropped}
        with open(out, "w", encoding="utf-8") as f:
            json.dump(dict(table, entries=kept,
                           round_medians_ms=dict(rounds, **{dropped: rounds[dropped][:1]})), f)
        proc = _device_run(python, grid, out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count(" ms") == 1 and f"[round 2/2] [1/1] {dropped}:" in proc.stdout
        saved = json.loads(open(out, encoding="utf-8").read())
        resumed = saved["entries"]
        assert {k: resumed[k] for k in kept} == kept
        assert saved["round_medians_ms"][dropped][0] == rounds[dropped][0]
        assert resumed[dropped] == sum(saved["round_medians_ms"][dropped]) / 2

        # the host search reads the device's table (read only) and prices the net by its sum
        lut = LatencyLUT(out, target="file")
        assert lut.missing(specs) == []
        assert lut.latency(specs) == sum(resumed[s["key"]] for s in specs)
