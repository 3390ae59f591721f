"""ppnets.deploy.lut: block decomposition and the table (no timing asserts)."""
from __future__ import annotations

import ppnets
from ppnets.deploy.lut import LatencyTable, blocks_of


def _model(name):
    m = ppnets.create_model(name, num_classes=10)
    m.eval()
    ppnets.reparameterize_model(m)
    return m


def test_blocks_cover_the_model_in_order():
    m = _model("resnet20_cifar")
    blocks = blocks_of(m, (3, 32, 32))
    assert len(blocks) >= 9  # 3 stages x 3 basic blocks, plus stem/head layers
    n_params = sum(int(p.size) for p in m.parameters())
    covered = {id(b["layer"]): sum(int(p.size) for p in b["layer"].parameters())
               for b in blocks}
    assert sum(covered.values()) == n_params  # every parameter sits in exactly one block
    assert blocks[0]["input_size"] == (3, 32, 32)


def test_table_measures_each_key_once_and_round_trips(tmp_path):
    m = _model("resnet20_cifar")
    path = str(tmp_path / "lut.json")
    table = LatencyTable(path, warmup=1, repeats=2)
    pred = table.predict(m, (3, 32, 32))
    keys = {k for k, _ in pred["per_block_ms"]}
    assert len(table.entries) == len(keys) < pred["blocks"]  # repeated blocks share an entry
    assert pred["predicted_ms"] == sum(v for _, v in pred["per_block_ms"]) > 0
    table.save()
    again = LatencyTable(path)
    assert again.entries == table.entries
    assert again.predict(m, (3, 32, 32))["predicted_ms"] == pred["predicted_ms"]  # no re-timing
