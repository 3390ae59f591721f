"""MobileOne's latency ablations: activations and architectural blocks in a 30-layer CNN
(arXiv:2206.04040, Sec. 3: the activation table and the architectural-block table).

The paper times "a 30-layer convolutional neural network" on an iPhone 12 but does not give its
layout. Ours (documented, fixed): 30 conv3x3-BN-act layers on a 224x224 input in five stages of
widths 16/32/64/128/256 and depths 1/4/8/10/7, the first layer of each stage with stride 2, then
global average pooling and a 1000-way linear classifier. BN is folded (deploy form).

* Activations: ReLU, GELU, SiLU, Hardswish, LeakyReLU and SE-ReLU (ReLU plus a squeeze-excite
  module, reduction 4, after every layer). The paper's dynamic activations (Dynamic Shift-Max,
  DynamicReLU-A/B) have no layer in ppnets and are not measured; their published figures are
  still listed.
* Blocks (cumulative, as in the paper): baseline (ReLU), + squeeze-excite (global pooling per
  layer), + skip connections (a residual add around every layer that keeps the shape).

Latency at batch 1 (CPU, ``--threads``); the paper's numbers are iPhone 12 milliseconds, so the
comparison is between *relative* costs (each network / the ReLU baseline).

Per runtime (``--runtimes``), each table's ordering (the paper's order of the networks by
latency) is a claim that holds or not on each device.

    ppnets study mobileone-blocks [--quick] [--device cpu gpu] [--arm-results arm.json]
    ppnets study mobileone-blocks --runtimes paddle_inference onnxruntime openvino
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import paddle.nn as nn

from ppnets.layers import ConvBN
from ppnets.layers.se import SqueezeExcite
from ppnets.models.base import flatten_tokens
from ppnets.utils import markdown_table

from . import published
from .study import (Study, StudyOptions, StudyRunner, bar_groups, compare_order,
                    ordering_verdict, ratio, speed)

WIDTHS = (16, 32, 64, 128, 256)
DEPTHS = (1, 4, 8, 10, 7)
INPUT = (3, 224, 224)
QUICK_INPUT = (3, 64, 64)  # --quick: same layout, smaller map (a pipeline check, not a result)
ACTIVATIONS = ("relu", "gelu", "silu", "hardswish", "leaky_relu", "se_relu")
BLOCKS = {"baseline": dict(act="relu", se=False, skip=False),
          "+se": dict(act="relu", se=True, skip=False),
          "+skip": dict(act="relu", se=True, skip=True)}
NOT_BUILT = ("dynamic_shift_max", "dynamic_relu_a", "dynamic_relu_b")
GPU_BATCH = 32


class Layer(nn.Layer):
    """conv3x3-BN-act, optionally followed by squeeze-excite and wrapped in a residual add."""

    def __init__(self, cin: int, cout: int, stride: int, act: str, se: bool, skip: bool):
        super().__init__()

        self.conv = ConvBN(cin, cout, 3, stride=stride, act=act)
        self.se = SqueezeExcite(cout, rd_ratio=0.25, act="relu") if se else nn.Identity()
        self.skip = skip and stride == 1 and cin == cout

    def forward(self, x):
        y = self.se(self.conv(x))
        return x + y if self.skip else y


class ThirtyLayerCNN(nn.Layer):
    def __init__(self, act: str = "relu", se: bool = False, skip: bool = False,
                 num_classes: int = 1000):
        super().__init__()
        layers, cin = [], INPUT[0]
        for width, depth in zip(WIDTHS, DEPTHS):
            for i in range(depth):
                layers.append(Layer(cin, width, 2 if i == 0 else 1, act, se, skip))
                cin = width
        assert len(layers) == 30
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(flatten_tokens(self.pool(self.features(x))))


def activation_net(name: str) -> nn.Layer:
    if name == "se_relu":
        return ThirtyLayerCNN("relu", se=True)
    return ThirtyLayerCNN(name)


BLOCK_LABELS = {"baseline": "act_relu", "+se": "act_se_relu", "+skip": "block_skip"}


def measure(runner: StudyRunner, options: StudyOptions):
    """Returns (activations, blocks, input size) measured."""
    # --quick keeps leaky_relu: it exercises the harness's Paddle Inference workaround
    # (ppnets.bench.KNOWN_PASS_CRASHES) end to end.
    acts = ("relu", "leaky_relu", "se_relu") if options.quick else ACTIVATIONS
    blocks = ("baseline", "+skip") if options.quick else tuple(BLOCKS)
    size = QUICK_INPUT if options.quick else INPUT
    for device in runner.devices:
        batch = GPU_BATCH if device == "gpu" else 1
        for a in acts:
            runner.measure(activation_net(a), size, f"act_{a}", device=device, batch_size=batch,
                           table="activations", item=a)
        for b in blocks:
            if b in ("baseline", "+se"):
                continue  # the same networks as act_relu / act_se_relu, measured above
            runner.measure(ThirtyLayerCNN(**BLOCKS[b]), size, "block_skip", device=device,
                           batch_size=batch, table="blocks", item=b)
    return acts, blocks, size


def judge(runner: StudyRunner, options: StudyOptions, measured) -> Dict[str, Any]:
    """Each table's rows (ours and the paper's latency relative to the ReLU baseline) and, per
    device, whether our ordering is the paper's."""
    acts, blocks, _ = measured
    devices = runner.devices_with_figures()
    results: Dict[str, List[Dict[str, Any]]] = {}
    orderings, verdicts = [], []
    for table, items, labels in _tables(acts, blocks):
        results[table] = [_row(runner, table, item, labels, devices) for item in items]
        for d in devices:
            orderings.append(compare_order(
                {r["item"]: r["paper_ms"] for r in results[table] if r.get(f"{d}_ms") is not None},
                {r["item"]: r.get(f"{d}_ms") for r in results[table]},
                higher_is_faster=False, what=f"{table} on {d}"))
            verdicts.append(ordering_verdict(CLAIMS[table], d, orderings[-1]))
    return {"paper": published.PAPERS["mobileone"], "results": results,
            "orderings": orderings, "verdicts": verdicts, "not_built": list(NOT_BUILT),
            "published": published.lookup("mobileone")}


CLAIMS = {"activations": "activations ranked by latency as in the paper's activation table",
          "blocks": "SE and skip connections cost latency in the paper's order (block table)"}


def _tables(acts, blocks) -> List[Tuple[str, List[str], Dict[str, str]]]:
    """(table, items, {item: measured label}) of the two tables."""
    return [("activations", list(acts) + list(NOT_BUILT), {a: f"act_{a}" for a in acts}),
            ("blocks", list(blocks), {b: BLOCK_LABELS[b] for b in blocks})]


def _row(runner: StudyRunner, table: str, item: str, labels: Dict[str, str],
         devices: List[str]) -> Dict[str, Any]:
    hits = published.lookup("mobileone", published.MOBILEONE_TABLES[table], item=item)
    pv = hits[0]["value"] if hits else None
    paper_base = published.value("mobileone", published.MOBILEONE_TABLES["activations"], "relu")
    workaround = {(w["label"], w["device"]) for w in runner.workaround_rows(runner.runtime)}
    row = {"item": item, "paper_ms": pv, "paper_rel": ratio(pv, paper_base),
           "ir_pass_workaround": any((labels.get(item), d) in workaround for d in devices)}
    for d in devices:
        ms = speed(runner.find(labels[item], d), "ms") if item in labels else None
        row.update({f"{d}_ms": ms, f"{d}_rel": ratio(ms, speed(runner.find("act_relu", d),
                                                                "ms"))})
    return row


def describe(runner: StudyRunner, options: StudyOptions, measured) -> str:
    _, _, size = measured
    return "\n".join([
        runner.header_markdown("MobileOne: activations and architectural blocks",
                               f"{published.PAPERS['mobileone']['title']}, arXiv:2206.04040"),
        f"30-layer CNN (layout in `ppnets/studies/mobileone_blocks.py`), input "
        f"{'x'.join(map(str, size))}, batch 1 on CPU/ARM, "
        f"batch {GPU_BATCH} on GPU (ms per batch). Paper: iPhone 12 latency (ms); values "
        "marked * are unverified transcriptions (no text copy of the paper's tables was "
        "found; see `ppnets/studies/published.py`). `rel.` = latency / the ReLU baseline's "
        "latency on the same device and runtime.", "",
        f"Not built (no ppnets layer): {', '.join(NOT_BUILT)}; their published latencies "
        "are listed for completeness."])


def render(runner: StudyRunner, options: StudyOptions, measured, judged: Dict[str, Any]) -> str:
    devices = runner.devices_with_figures()
    results = judged["results"]
    md = []
    orderings = iter(judged["orderings"])
    for table in ("activations", "blocks"):
        md += [f"## {table.capitalize()} ({published.MOBILEONE_TABLES[table]})", "",
               _table_markdown(results[table], table, devices), ""]
        if any(r["ir_pass_workaround"] for r in results[table]):
            md += ["\u2020 measured with a Paddle Inference workaround (one fuse pass deleted, "
                   "oneDNN on): see \"Rows measured with a Paddle Inference workaround\" "
                   "below.", ""]
        md += [f"- {next(orderings)['text']}" for _ in devices] + [""]
    return "\n".join(md)


def figure(runner: StudyRunner, options: StudyOptions, measured,
           judged: Dict[str, Dict[str, Any]]):
    """One panel per table: the paper's relative latency and ours per runtime and device."""
    devices = {}
    for runtime in judged:
        with runner.judging(runtime):
            devices[runtime] = runner.devices_with_figures()

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(10 + 2 * (len(judged) - 1), 3.6))
        first = next(iter(judged.values()))["results"]
        for ax, table in zip(axes, ("activations", "blocks")):
            items = [r["item"] for r in first[table]
                     if any(any(x.get(f"{d}_rel") for d in devices[rt])
                            for rt, j in judged.items() for x in j["results"][table]
                            if x["item"] == r["item"])]
            rows = {rt: {r["item"]: r for r in j["results"][table]} for rt, j in judged.items()}
            marked = {i for rt in rows for i, r in rows[rt].items() if r["ir_pass_workaround"]}
            series = {"paper (iPhone 12)": [rows[next(iter(rows))][i]["paper_rel"]
                                            for i in items]}
            for rt in judged:
                for d in devices[rt]:
                    series[f"ours ({d}, {rt})"] = [rows[rt][i].get(f"{d}_rel") for i in items]
            bar_groups(ax, [i + (" \u2020" if i in marked else "") for i in items], series,
                       "latency / ReLU baseline",
                       f"MobileOne {table}" + (" (\u2020 one Paddle fuse pass deleted)"
                                               if marked else ""))

    return draw


def _table_markdown(rows: List[Dict[str, Any]], table: str, devices: List[str]) -> str:
    head = ["network", "paper (ms)", "paper rel."]
    for d in devices:
        head += [f"{d} (ms)", f"{d} rel.", f"{d} rel. / paper rel."]
    body = []
    for r in rows:
        hits = published.lookup("mobileone", published.MOBILEONE_TABLES[table], item=r["item"])
        line = [r["item"] + (" \u2020" if r["ir_pass_workaround"] else ""),
                None if r["paper_ms"] is None else
                f"{r['paper_ms']}{'' if hits[0]['verified'] else '*'}", r["paper_rel"]]
        for d in devices:
            line += [r[f"{d}_ms"], r[f"{d}_rel"], ratio(r[f"{d}_rel"], r["paper_rel"])]
        body.append(line)
    return markdown_table(head, body)


STUDY = Study(name="mobileone-blocks", stem="latency_mobileone_blocks",
              summary="MobileOne: activations and architectural blocks in a 30-layer CNN",
              measure=measure, judge=judge, describe=describe, render=render, figure=figure)
