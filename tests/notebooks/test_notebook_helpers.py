"""ppnets.notebook: the parameters every notebook reads and its provenance."""
from __future__ import annotations

import pytest

from ppnets import notebook as nb


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("0", False),
                                            ("", False), ("no", False)])
def test_smoke_flag(monkeypatch, value, expected):
    monkeypatch.setenv("PPNETS_SMOKE", value)
    assert nb.smoke() is expected


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PPNETS_DATA_DIR", str(tmp_path))
    assert nb.data_dir() == str(tmp_path)


def test_relative_data_dir_from_the_checkout_root(monkeypatch, tmp_path):
    (tmp_path / "checkout" / "data").mkdir(parents=True)
    monkeypatch.setattr(nb, "SOURCE_TREE", str(tmp_path / "checkout"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PPNETS_DATA_DIR", "data")
    assert nb.data_dir() == str(tmp_path / "checkout" / "data")


def test_data_dir_missing_environment_folder_is_none(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PPNETS_DATA_DIR", str(tmp_path / "absent"))
    assert nb.data_dir() is None
    assert "is not a folder" in capsys.readouterr().out


def test_data_dir_shared_beside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("PPNETS_DATA_DIR", raising=False)
    monkeypatch.setattr(nb, "AISTUDIO_DATA", str(tmp_path / "no-aistudio"))
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    notebooks = tmp_path / "clone" / "notebooks"
    notebooks.mkdir(parents=True)
    monkeypatch.chdir(notebooks)
    assert nb.data_dir() == str(shared)


def test_data_dir_prefers_aistudio_mount(monkeypatch, tmp_path):
    monkeypatch.delenv("PPNETS_DATA_DIR", raising=False)
    mount = tmp_path / "aistudio-data"
    mount.mkdir()
    monkeypatch.setattr(nb, "AISTUDIO_DATA", str(mount))
    assert nb.data_dir() == str(mount)


def test_data_dir_none_when_nothing_exists(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PPNETS_DATA_DIR", raising=False)
    monkeypatch.setattr(nb, "AISTUDIO_DATA", str(tmp_path / "no-aistudio"))
    monkeypatch.chdir(tmp_path)
    assert nb.data_dir() is None
    assert "cells that need data will skip" in capsys.readouterr().out


def test_find_data_in_a_mounted_subfolder(tmp_path, capsys):
    (tmp_path / "data9154").mkdir()
    full = tmp_path / "data9154" / "cifar-10-python.tar.gz"
    full.write_bytes(b"")
    (tmp_path / "cifar-10-python-partial.tar.gz").write_bytes(b"")
    names = ["cifar-10-python.tar.gz", "cifar-10-python-partial.tar.gz"]
    assert nb.find_data(names, str(tmp_path)) == str(full)  # the earlier name wins
    assert nb.find_data(["nothing.tar.gz"], str(tmp_path)) is None
    assert "nothing.tar.gz" in capsys.readouterr().out
    assert nb.find_data(names, None) is None


def test_provenance_says_smoke_and_commit(monkeypatch, capsys):
    monkeypatch.setenv("PPNETS_SMOKE", "1")
    info = nb.show_provenance()
    assert info["run"].startswith("smoke")
    for key in ("date_utc", "machine", "ppnets_commit", "paddle"):
        assert info[key]
    assert "Provenance of this run" in capsys.readouterr().out
    assert nb.provenance(smoke_run=False)["run"] == "full"


def test_plot_history_of_one_epoch_says_so_and_shows_the_values():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = nb.plot_history([{"epoch": 1, "train_loss": 2.764, "val_top1": 0.084}], "smoke run")
    try:
        assert "one epoch" in fig._suptitle.get_text()
        loss_ax, top1_ax = fig.axes
        assert [t.get_text() for t in loss_ax.texts] == ["2.764"]
        assert [t.get_text() for t in top1_ax.texts] == ["8.4"]      # percent
        assert top1_ax.get_ylabel() == "validation top-1 (%)"
        assert loss_ax.get_xlim() == (0.0, 2.0)                      # the point is not at an edge
    finally:
        plt.close(fig)


def test_plot_history_of_many_epochs_draws_lines_with_integer_epochs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [{"epoch": e, "train_loss": 1.0 / e, "val_top1": e / 8} for e in range(1, 9)]
    fig = nb.plot_history(history, "full run")
    try:
        assert "one epoch" not in fig._suptitle.get_text()
        loss_ax, top1_ax = fig.axes
        assert list(top1_ax.lines[0].get_ydata()) == [12.5 * e for e in range(1, 9)]
        assert not loss_ax.texts                                     # many points: no labels
        fig.canvas.draw()
        ticks = [t for t in loss_ax.get_xticks() if 1 <= t <= 8]
        assert ticks and all(float(t).is_integer() for t in ticks)
    finally:
        plt.close(fig)
