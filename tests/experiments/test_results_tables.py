"""The results.md tables of the training experiments: one unit (percent, labelled) per table, and
a published number only under a column that says which data set it is for."""
from __future__ import annotations

import glob
import json
import os
import re

import pytest

from ppnets.experiments.spconv_cifar10 import render_results
from ppnets.experiments.training import render_variant_results
from tests.conftest import REPO

RUN = {"command": "python reproduce/x.py --smoke", "device": "cpu", "git": None,
       "started_utc": "2026-01-01T00:00:00+00:00", "finished_utc": "2026-01-01T00:01:00+00:00",
       "machine": {"cpu_model": "test CPU", "available_cores": 2},
       "data": {"dataset": "cifar10", "file": "cifar-10-python.tar.gz", "train_images": 40,
                "test_images": 16}}


def _table(md: str):
    """(header cells, {first data cell or model: row cells}) of the first Markdown table."""
    lines = [line for line in md.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = cells[0], cells[2:]
    return header, body


def _spconv_row(experiment, model, top1, paper_top1):
    return {"experiment": experiment, "model": model, "alpha": "-", "image_size": 32,
            "epochs_run": 1, "eval_images": 16, "top1": top1, "top5": 0.875,
            "best_top1": top1, "paper_top1": paper_top1, "params_m": 0.27, "macs_m": 40.8,
            "latency_ms": 1.5, "train_images_per_s": 80.0, "errors": []}


def test_spconv_table_percent_and_only_cifar10_published_figures():
    # paper_top1 as results.json written before the fix stored it: the registry's top-1 whatever
    # its data set (resnet18: ImageNet's 69.758)
    rows = [_spconv_row("seed", "resnet18", 0.0625, 69.758),
            _spconv_row("paper", "resnet20_cifar", 0.6867, 92.0)]
    md = render_results({"smoke": True, "run": RUN, "rows": rows})
    header, body = _table(md)
    by_model = {row[header.index("model")]: row for row in body}
    paper_col = next(i for i, h in enumerate(header) if h.startswith("paper top-1"))
    assert "CIFAR-10" in header[paper_col] and "%" in header[paper_col]
    assert "2006.12085" in header[paper_col]          # where the figure comes from
    assert by_model["resnet18"][paper_col] == "n/a"    # an ImageNet figure is not shown
    assert by_model["resnet20_cifar"][paper_col] == "92.00"
    top1 = header.index("top-1 (%)")
    assert by_model["resnet18"][top1] == "6.25" and by_model["resnet20_cifar"][top1] == "68.67"
    assert by_model["resnet20_cifar"][header.index("top-5 (%)")] == "87.50"
    assert by_model["resnet20_cifar"][header.index("best top-1 (%)")] == "68.67"
    assert "69.76" not in md


def test_variant_table_percent_beside_published_percent():
    rows = [{"label": "1 MobileNetV3-L", "published_top1": 75.2, "model": "mobilenetv3_large_100",
             "image_size": 32, "epochs_run": 1, "max_steps_per_epoch": 2, "batch_size": 8,
             "train_images": 40, "eval_images": 16, "top1": 0.1127, "top5": 0.5139,
             "best_top1": 0.125, "top1_ema": 0.0625, "params_m": 4.2, "macs_m": 7.1,
             "train_images_per_s": 10.0, "errors": []}]
    md = render_variant_results(
        {"smoke": True, "run": RUN, "rows": rows, "figure": None}, "title",
        extra_columns=[("published_top1", "paper top-1 (%, ImageNet-1k)", 1),
                       ("top1_ema_pct", "EMA top-1 (%)", 2)])
    header, (row,) = _table(md)
    assert row[header.index("paper top-1 (%, ImageNet-1k)")] == "75.2"
    assert row[header.index("top-1 (%)")] == "11.27"
    assert row[header.index("top-5 (%)")] == "51.39"
    assert row[header.index("best top-1 (%)")] == "12.50"
    assert row[header.index("EMA top-1 (%)")] == "6.25"


ACCURACY_HEADER = re.compile(r"top-[15]", re.I)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "results", "*",
                                                               "results.md"))),
                         ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_committed_results_tables_are_in_percent(path):
    """Every accuracy column of a committed results.md says '%' and holds percentages: the
    stored fractions of results.json times 100."""
    with open(path, encoding="utf-8") as f:
        md = f.read()
    header, body = _table(md)
    columns = [i for i, h in enumerate(header) if ACCURACY_HEADER.search(h)]
    assert columns, header
    for i in columns:
        assert "%" in header[i], f"{os.path.relpath(path, REPO)}: column {header[i]!r} has no unit"
    results_json = os.path.join(os.path.dirname(path), "results.json")
    with open(results_json, encoding="utf-8") as f:
        rows = json.load(f)["rows"]
    top1 = header.index("top-1 (%)")
    assert [r[top1] for r in body] == [f"{100 * row['top1']:.2f}" for row in rows]
    published = [i for i, h in enumerate(header) if "paper" in h.lower()]
    for i in published:   # a published figure says its data set
        assert re.search(r"CIFAR-10|ImageNet", header[i]), header[i]
