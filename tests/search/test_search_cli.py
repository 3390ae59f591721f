"""``ppnets search``: the searches' options (the same as the reproduce scripts'), and mistakes
reported in one line before anything is written."""
from __future__ import annotations

import os

import pytest

from ppnets.cli.main import build_parser
from ppnets.cli.main import main as ppnets_main
from ppnets.cli.search import search_options
from ppnets.search import v1, v2
from ppnets.search.runner import SearchOptions
from tests.conftest import write_cifar_archive


@pytest.mark.parametrize("search,module", [("efficientformer", v1), ("efficientformerv2", v2)])
def test_options_reach_the_search(search, module):
    argv = ["search", search, "--data-file", "c.tar.gz", "--smoke", "--seed", "1", "-o", "a=1",
            "--target", "gpu", "--lut", "lut_arm.json", "--latency-targets-ms", "4", "3",
            "--export-lite-grid", "grid"]
    args = build_parser().parse_args(argv)
    opts = search_options(args, f"ppnets search {search}", ["ppnets", *argv])
    assert opts == SearchOptions(
        output_dir=module.OUTPUT_DIR, data_file="c.tar.gz", smoke=True, seed=1,
        overrides=["a=1"], target="gpu", lut="lut_arm.json", latency_targets_ms=[4.0, 3.0],
        export_lite_grid="grid", config=module.RECIPE, script=f"ppnets search {search}",
        command=["ppnets", *argv])
    assert opts.out_root == os.path.join(module.OUTPUT_DIR, "smoke")


def test_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"

    def error_of(*argv):
        assert ppnets_main(["search", "efficientformer", "--output-dir", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        return err

    assert "not found" in error_of("--data-file", str(tmp_path / "none.tar.gz"))
    data = str(tmp_path / "c.tar.gz")
    write_cifar_archive(data, per_batch=4, n_test=8)
    assert "unknown config key" in error_of("--data-file", data, "-o", "train.epoch=2")
    assert "search/efficientformer_cifar10" in error_of("--data-file", data, "--config",
                                                        "search/efficientformer_cifar")
    assert not out.exists()


@pytest.mark.parametrize("search", ["efficientformer", "efficientformerv2"])
def test_export_lite_grid_writes_the_search_grid_and_stops(search, tmp_path, monkeypatch,
                                                           capsys):
    """``--export-lite-grid DIR``: every block spec of the grid goes to the exporter (Paddle
    Lite itself is tested in test_lut_lite.py), nothing is trained, and the command says what
    to run on the device; a block that fails to convert makes the exit status 1."""
    import ppnets.search.runner as runner

    exported = {}

    def fake_export(specs, folder, progress=None):
        exported.update(specs=list(specs), folder=folder)
        return {"entries": [{"key": s["key"]} for s in exported["specs"]], "failed": []}

    monkeypatch.setattr(runner, "export_lite_grid", fake_export)
    data = str(tmp_path / "c.tar.gz")
    write_cifar_archive(data, per_batch=20, n_test=8)   # 100 images: the smoke recipe holds 64 out
    grid = str(tmp_path / "grid")
    argv = ["search", search, "--smoke", "--data-file", data, "--output-dir",
            str(tmp_path / "out"), "--export-lite-grid", grid]
    assert ppnets_main(argv) == 0
    assert exported["folder"] == grid and len(exported["specs"]) > 5
    assert all({"key", "input_size", "build"} <= set(s) for s in exported["specs"])
    assert "python3 lut_device.py --grid . --out lut_arm.json" in capsys.readouterr().out
    assert not (tmp_path / "out" / "smoke" / "train").exists()
    monkeypatch.setattr(runner, "export_lite_grid", lambda specs, folder, progress=None: {
        "entries": [], "failed": [{"key": "k", "error": "e"}]})
    assert ppnets_main(argv) == 1
