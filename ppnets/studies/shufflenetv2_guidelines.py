"""ShuffleNet V2 guidelines G1-G4: the paper's four benchmark networks (arXiv:1807.11164, Sec. 2).

Every network stacks 10 blocks on a 56x56 map:

* G1 (Table 1): two 1x1 convs per block, ``c1 -> c2 -> c1``, at c1:c2 = 1:1, 1:2, 1:6, 1:12 with
  the MACs fixed (the paper's widths; complexity levels x1/x2/x4 scale both widths by sqrt(2)
  per doubling of MACs).
* G2 (Table 2): two 1x1 group convs per block, ``c -> c``, groups 1/2/4/8, MACs fixed by
  widening ``c`` (the paper's widths).
* G3 (Table 3): 1-fragment, 2/4-fragment-series and 2/4-fragment-parallel blocks. The paper's
  appendix figure gives the topologies; the widths are ours, chosen so every block costs the
  MACs of one ``c -> c`` 1x1 conv: series ``c -> a -> ... -> a -> c`` with ``a`` solving the MAC
  equation; parallel: ``k`` branches ``c -> c/k`` concatenated.
* G4 (Table 4): ResNet bottleneck (1x1 ``c -> c/4``, 3x3, 1x1 ``c/4 -> c``) with/without ReLU and
  with/without the shortcut.

A ReLU follows every block's last conv in G1-G3 (the paper does not say; it keeps an inference
engine from merging consecutive linear convs, which would erase what is measured).

Units as in the paper: GPU in batches/s at batch 8, ARM ("CPU" in Tables 2-4) in images/s at
batch 1, single thread. On this machine: ``cpu`` runs the paper's ARM configurations (its
widths) at batch 1 and is compared with the ARM column; ``gpu`` the GPU configurations at batch
8 in batches/s. Orderings are compared pair by pair and reported; nothing is asserted.

Per runtime (``--runtimes``), each guideline's ordering at each setting is a claim that holds
or not on each device.

    ppnets study shufflenetv2-guidelines [--quick] [--guidelines G1 G3] [--arm-results arm.json]
    ppnets study shufflenetv2-guidelines --runtimes paddle_inference onnxruntime openvino
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import paddle
import paddle.nn as nn

from ppnets.layers import ConvBN
from ppnets.utils import markdown_table

from . import published
from .study import (Study, StudyError, StudyOptions, StudyRunner, compare_order,
                    ordering_verdict, ratio, speed)

BLOCKS = 10
SIZE = 56
GPU_BATCH = 8
LEVELS = ("x1", "x2", "x4")

# The paper's x1 widths: G1 (c1, c2), G2 c, per target.
G1_WIDTHS = {"gpu": {"1:1": (128, 128), "1:2": (90, 180), "1:6": (52, 312), "1:12": (36, 432)},
             "arm": {"1:1": (32, 32), "1:2": (22, 44), "1:6": (13, 78), "1:12": (9, 108)}}
G2_WIDTHS = {"gpu": {"g=1": 128, "g=2": 180, "g=4": 256, "g=8": 360},
             "arm": {"g=1": 64, "g=2": 90, "g=4": 128, "g=8": 180}}
G3_WIDTHS = {"gpu": (128, 256, 512), "arm": (64, 128, 256)}
G3_ITEMS = ("1-fragment", "2-fragment-series", "4-fragment-series", "2-fragment-parallel",
            "4-fragment-parallel")
G4_WIDTHS = {"gpu": (32, 64, 128), "arm": (32, 64, 128)}
G4_ITEMS = {"relu+shortcut": (True, True), "shortcut only": (False, True),
            "relu only": (True, False), "neither": (False, False)}


def _scale(c: int, level: str) -> int:
    return max(1, int(round(c * math.sqrt({"x1": 1, "x2": 2, "x4": 4}[level]))))


class Sequential1x1(nn.Layer):
    """1x1 convs in series, a ReLU after the last."""

    def __init__(self, widths: Sequence[int], groups: int = 1):
        super().__init__()
        self.convs = nn.LayerList([nn.Conv2D(a, b, 1, groups=groups, bias_attr=False)
                                   for a, b in zip(widths[:-1], widths[1:])])
        self.act = nn.ReLU()

    def forward(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.act(x)


class Parallel1x1(nn.Layer):
    """``k`` branches of 1x1 convs ``c -> c/k``, concatenated, then a ReLU."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        if channels % k:
            raise ValueError(f"{k}-fragment-parallel needs channels divisible by {k}, "
                             f"got {channels}")
        self.branches = nn.LayerList([nn.Conv2D(channels, channels // k, 1, bias_attr=False)
                                      for _ in range(k)])
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(paddle.concat([b(x) for b in self.branches], axis=1))


class Bottleneck(nn.Layer):
    """ResNet bottleneck ``c -> c/4 (1x1) -> c/4 (3x3) -> c (1x1)``, BN folded (deploy form),
    with ReLUs and the shortcut optional (G4)."""

    def __init__(self, channels: int, relu: bool, shortcut: bool):
        super().__init__()

        mid = max(channels // 4, 1)
        act = "relu" if relu else None
        self.conv1 = ConvBN(channels, mid, 1, act=act)
        self.conv2 = ConvBN(mid, mid, 3, act=act)
        self.conv3 = ConvBN(mid, channels, 1, act=None)
        self.act = nn.ReLU() if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv3(self.conv2(self.conv1(x)))
        return self.act(x + y if self.shortcut else y)


def series_width(c: int, k: int) -> int:
    """Inner width ``a`` of a k-fragment series ``c -> a -> ... -> a -> c`` costing ``c**2``."""
    if k == 1:
        return c
    # 2*c*a + (k-2)*a**2 = c**2
    if k == 2:
        return c // 2
    q = k - 2
    return max(1, int(round((-2 * c + math.sqrt(4 * c * c + 4 * q * c * c)) / (2 * q))))


def g3_block(item: str, c: int) -> nn.Layer:
    if item == "1-fragment":
        return Sequential1x1([c, c])
    k = int(item[0])
    if item.endswith("series"):
        a = series_width(c, k)
        return Sequential1x1([c] + [a] * (k - 1) + [c])
    return Parallel1x1(c, k)


def network(guideline: str, item: str, target: str, setting: str) -> (nn.Layer, int):
    """(network, input channels) of one table cell; ``target`` 'gpu' or 'arm' picks the widths."""
    if guideline == "G1":
        c1, c2 = (_scale(c, setting) for c in G1_WIDTHS[target][item])
        blocks = [Sequential1x1([c1, c2, c1]) for _ in range(BLOCKS)]
        return nn.Sequential(*blocks), c1
    if guideline == "G2":
        g = int(item.split("=")[1])
        c = _scale(G2_WIDTHS[target][item], setting)
        c -= c % g
        return nn.Sequential(*[Sequential1x1([c, c, c], groups=g) for _ in range(BLOCKS)]), c
    c = int(setting.split("=")[1])
    if guideline == "G3":
        return nn.Sequential(*[g3_block(item, c) for _ in range(BLOCKS)]), c
    if guideline == "G4":
        relu, shortcut = G4_ITEMS[item]
        return nn.Sequential(*[Bottleneck(c, relu, shortcut) for _ in range(BLOCKS)]), c
    raise ValueError(f"unknown guideline {guideline!r}")


def cells(quick: bool) -> Dict[str, Dict[str, Any]]:
    """Per guideline: its table, items and settings per target."""
    spec = {
        "G1": {"table": "Table 1 (G1)", "items": list(G1_WIDTHS["arm"]),
               "settings": {"gpu": list(LEVELS), "arm": list(LEVELS)}},
        "G2": {"table": "Table 2 (G2)", "items": list(G2_WIDTHS["arm"]),
               "settings": {"gpu": list(LEVELS), "arm": list(LEVELS)}},
        "G3": {"table": "Table 3 (G3)", "items": list(G3_ITEMS),
               "settings": {t: [f"c={c}" for c in G3_WIDTHS[t]] for t in ("gpu", "arm")}},
        "G4": {"table": "Table 4 (G4)", "items": list(G4_ITEMS),
               "settings": {t: [f"c={c}" for c in G4_WIDTHS[t]] for t in ("gpu", "arm")}},
    }
    if quick:
        for g in spec.values():
            g["items"] = [g["items"][0], g["items"][-1]]
            g["settings"] = {t: s[:1] for t, s in g["settings"].items()}
    return spec


def label(guideline: str, item: str, target: str, setting: str) -> str:
    safe = item.replace(":", "to").replace("=", "").replace("+", "_").replace(" ", "_")
    return f"{guideline}_{safe}_{target}_{setting.replace('=', '')}"


GUIDELINES = ("G1", "G2", "G3", "G4")
# device on this machine -> (paper target whose widths it runs, batch, unit)
PLAN = {"cpu": ("arm", 1, "images/s"), "gpu": ("gpu", GPU_BATCH, "batches/s"),
        "arm": ("arm", 1, "images/s")}


@dataclass
class GuidelinesOptions(StudyOptions):
    guidelines: Sequence[str] = GUIDELINES  # which of G1-G4 to run


def measure(runner: StudyRunner, options: GuidelinesOptions) -> Dict[str, Dict[str, Any]]:
    """Returns the cells measured (:func:`cells` of the chosen guidelines)."""
    unknown = sorted(set(options.guidelines) - set(GUIDELINES))
    if unknown:
        raise StudyError(f"unknown guideline(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(GUIDELINES)}")
    spec = {g: s for g, s in cells(options.quick).items() if g in options.guidelines}
    for device in runner.devices:
        target, batch, _ = PLAN[device]
        for g, s in spec.items():
            for setting in s["settings"][target]:
                for item in s["items"]:
                    net, cin = network(g, item, target, setting)
                    runner.measure(net, (cin, SIZE, SIZE), label(g, item, target, setting),
                                   device=device, batch_size=batch, guideline=g, item=item,
                                   setting=setting, widths_of=target)
    return spec


def judge(runner: StudyRunner, options: GuidelinesOptions, spec) -> Dict[str, Any]:
    """Every table cell beside the paper's, and per (guideline, device, setting) whether our
    ordering is the paper's."""
    tables: List[Dict[str, Any]] = []
    orderings: List[Dict[str, Any]] = []
    verdicts: List[Dict[str, Any]] = []
    for g, s in spec.items():
        for device in runner.devices_with_figures():
            target, _, unit = PLAN[device]
            for item in s["items"]:
                for setting in s["settings"][target]:
                    hits = published.lookup("shufflenetv2", s["table"], item=item,
                                            setting=setting, unit=_paper_unit(target))
                    tables.append({
                        "guideline": g, "device": device, "item": item, "setting": setting,
                        "unit": unit, "paper": hits[0]["value"] if hits else None,
                        "ours": speed(runner.find(label(g, item, target, setting), device), unit),
                        "paper_device": hits[0]["device"] if hits else None})
            for setting in s["settings"][target]:
                cell = [t for t in tables if t["guideline"] == g and t["device"] == device
                        and t["setting"] == setting]
                orderings.append(compare_order({t["item"]: t["paper"] for t in cell},
                                               {t["item"]: t["ours"] for t in cell},
                                               higher_is_faster=True,
                                               what=f"{g} {device} {setting}"))
                verdicts.append(ordering_verdict(f"{g}: {CLAIMS[g]} ({s['table']}, {setting})",
                                                 device, orderings[-1]))
    return {"paper": published.PAPERS["shufflenetv2"], "cells": tables,
            "orderings": orderings, "verdicts": verdicts,
            "published": published.lookup("shufflenetv2")}


# The guidelines as the paper states them; each is judged by its table's ordering.
CLAIMS = {"G1": "equal channel width minimises memory access cost",
          "G2": "excessive group convolution increases memory access cost",
          "G3": "network fragmentation reduces the degree of parallelism",
          "G4": "element-wise operations are non-negligible"}


def _paper_unit(target: str) -> str:
    return "batches/s" if target == "gpu" else "images/s"


def describe(runner: StudyRunner, options: GuidelinesOptions, spec) -> str:
    return "\n".join([
        runner.header_markdown("ShuffleNet V2 guidelines G1-G4",
                               f"{published.PAPERS['shufflenetv2']['title']}, arXiv:1807.11164"),
        f"{BLOCKS} blocks at {SIZE}x{SIZE}. This machine's `cpu` runs the paper's ARM widths "
        "at batch 1 (images/s, compared with the paper's ARM column); `gpu` the GPU widths at "
        f"batch {GPU_BATCH} (batches/s). Paper values marked * are unverified transcriptions "
        "(see ppnets/studies/published.py). A guideline holds at a setting when our ordering "
        "of its blocks is the paper's, pair by pair."])


def render(runner: StudyRunner, options: GuidelinesOptions, spec,
           judged: Dict[str, Any]) -> str:
    md = []
    orderings = iter(judged["orderings"])
    for g, s in spec.items():
        md += [f"## {g}: {s['table']}", ""]
        for device in runner.devices_with_figures():
            target, _, unit = PLAN[device]
            md += [f"**{device}** ({unit}; paper: {_paper_unit(target)} on "
                   f"{'GTX 1080Ti' if target == 'gpu' else 'Snapdragon 810 ARM'})", "",
                   _cells_markdown(judged["cells"], g, s, device, target), ""]
            md += [f"- {next(orderings)['text']}" for _ in s["settings"][target]] + [""]
    return "\n".join(md)


def figure(runner: StudyRunner, options: GuidelinesOptions, spec,
           judged: Dict[str, Dict[str, Any]]):
    """One panel per guideline: the paper's ARM speeds and ours on the CPU with each runtime,
    each normalised to its first block."""
    cells_by_runtime = {runtime: j["cells"] for runtime, j in judged.items()
                        if any(c["device"] == "cpu" for c in j["cells"])}
    return _figure(spec, cells_by_runtime) if cells_by_runtime else None


def _cells_markdown(cells_: List[Dict[str, Any]], g: str, s: Dict[str, Any], device: str,
                    target: str) -> str:
    head, body = ["block"], []
    for setting in s["settings"][target]:
        head += [f"paper {setting}", f"ours {setting}", "ours/paper"]
    for item in s["items"]:
        row = [item]
        for setting in s["settings"][target]:
            t = next(t for t in cells_ if t["guideline"] == g and t["device"] == device
                     and t["item"] == item and t["setting"] == setting)
            hits = published.lookup("shufflenetv2", s["table"], item=item, setting=setting,
                                    unit=_paper_unit(target))
            star = "" if not hits or hits[0]["verified"] else "*"
            row += [f"{t['paper']}{star}" if t["paper"] is not None else None, t["ours"],
                    ratio(t["ours"], t["paper"])]
        body.append(row)
    return markdown_table(head, body)


def _figure(spec: Dict[str, Dict[str, Any]], cells_by_runtime: Dict[str, List[Dict[str, Any]]]):
    def cpu_values(tables, g, setting, items, key):
        return [next((t[key] for t in tables if t["guideline"] == g and t["device"] == "cpu"
                      and t["item"] == i and t["setting"] == setting), None) for i in items]

    def figure(plt):
        gl = list(spec)
        fig, axes = plt.subplots(1, len(gl), figsize=(4.2 * len(gl), 3.4), squeeze=False)
        for ax, g in zip(axes[0], gl):
            setting = spec[g]["settings"]["arm"][0]
            items = spec[g]["items"]
            first = next(iter(cells_by_runtime.values()))
            lines = [("paper (ARM)", cpu_values(first, g, setting, items, "paper"))]
            lines += [(f"ours (CPU, {runtime})", cpu_values(tables, g, setting, items, "ours"))
                      for runtime, tables in cells_by_runtime.items()]
            # Normalise to the first item so the paper's ARM and our CPU share an axis.
            for name, vals in lines:
                base = vals[0] if vals and vals[0] else None
                ax.plot(range(len(items)), [v / base if (v and base) else float("nan")
                                            for v in vals], marker="o", label=name)
            ax.set_xticks(range(len(items)))
            ax.set_xticklabels(items, fontsize=6, rotation=25)
            ax.set_title(f"{g} ({setting}): speed / first block", fontsize=9)
            ax.legend(fontsize=6)

    return figure


STUDY = Study(name="shufflenetv2-guidelines", stem="latency_shufflenetv2_guidelines",
              summary="ShuffleNet V2 Tables 1-4: guidelines G1-G4 on the paper's benchmark "
                      "networks",
              measure=measure, judge=judge, describe=describe, render=render, figure=figure,
              options=GuidelinesOptions)
