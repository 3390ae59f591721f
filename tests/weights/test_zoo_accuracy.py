"""reproduce/evaluate_zoo.py: the accuracy table of the published weights, here with the
stand-in weights of the loopback hub on the 400-image ImageNet sample (real JPEGs)."""
from __future__ import annotations

import importlib.util
import json
import os

from tests.conftest import IMAGENET_SAMPLE, REPO, require_shared


def _script():
    spec = importlib.util.spec_from_file_location(
        "evaluate_zoo", os.path.join(REPO, "reproduce", "evaluate_zoo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_table_on_the_sample(hub, tmp_path):
    root = require_shared(IMAGENET_SAMPLE)
    out = tmp_path / "zoo"
    rc = _script().main(["--list", os.path.join(root, "val_list.txt"), "--root", root,
                         "--models", "fasternet_t0", "repvgg_a0", "resnet20_cifar",
                         "--limit", "24", "--batch-size", "8", "--num-workers", "0",
                         "--output-dir", str(out), "--note", "SAMPLE: stand-in weights"])
    assert rc == 0
    report = json.loads((out / "zoo_accuracy.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert rows["resnet20_cifar"]["note"] == "no published weights"
    for name in ("fasternet_t0", "repvgg_a0"):
        row = rows[name]
        assert row["num_images"] == 24 and 0 <= row["top1"] <= row["top5"] <= 100
        assert row["paper_top1"] is not None
        pre = row["preprocessing"]
        assert pre["resize_shorter_to"] == int(pre["input_size"] / pre["crop_pct"])
    md = (out / "zoo_accuracy.md").read_text()
    assert "SAMPLE: stand-in weights" in md and "| fasternet_t0 |" in md
    assert report["run"]["command"].startswith("python reproduce/evaluate_zoo.py --list")
