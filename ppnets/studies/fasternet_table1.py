"""FasterNet Table 1: on-device FLOPS of Conv / GConv / DWConv / PConv (arXiv:2303.03667).

Each network is 10 stacked layers of one 3x3 operator, at the four feature-map sizes of the paper
(96x56x56, 192x28x28, 384x14x14, 768x7x7): Conv (dense), GConv (16 groups), DWConv
(depthwise), PConv (r = 1/4, :class:`ppnets.models.fasternet.PartialConv`, both of its forward
forms: ``split_cat`` and ``slicing``). No BN or activation: the paper times pure operators.
CPU: latency at batch 1 (``--threads``, the paper's CPU figure is single-threaded); GPU:
throughput at batch 32. "FLOPS" follows the paper, which counts a multiply-add as one FLOP: its
G/s are our GMAC/s (ppnets' own GFLOPS = 2 x GMAC/s are in the JSON records).

The paper's table cells are transcribed in :mod:`ppnets.studies.published` (verified); its
summary, PConv's FLOPS = 10.5x / 6.2x / 22.8x DWConv's on GPU / CPU / ARM (Sec. 4.1), is set
beside our ratio for each device we have figures for.

Per runtime (``--runtimes``), the claim "PConv achieves more FLOPS than DWConv" is judged on
each device.

    ppnets study fasternet-table1 [--quick] [--device cpu gpu] [--arm-results arm.json]
    ppnets study fasternet-table1 --runtimes paddle_inference onnxruntime openvino
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import paddle.nn as nn

from ppnets.models.fasternet import PartialConv
from ppnets.utils import markdown_table

from . import published
from .study import Study, StudyOptions, StudyRunner, bar_groups, ratio, speed, verdict

SIZES = ((96, 56), (192, 28), (384, 14), (768, 7))
QUICK_SIZES = ((768, 7),)
OPS = ("conv", "gconv", "dwconv", "pconv")
OP_NAMES = {"conv": "Conv 3x3", "gconv": "GConv 3x3 (16 groups)", "dwconv": "DWConv 3x3",
            "pconv": "PConv 3x3 (r=1/4, split_cat)", "pconv_slicing": "PConv 3x3 (r=1/4, slicing)"}
DEPTH = 10
GPU_BATCH = 32
DEVICE_COLUMNS = {"cpu": "CPU", "gpu": "GPU", "arm": "ARM"}


def operator_layer(op: str, channels: int) -> nn.Layer:
    """One 3x3 operator that keeps the shape (stride 1, padding 1, no bias)."""

    if op == "conv":
        return nn.Conv2D(channels, channels, 3, padding=1, bias_attr=False)
    if op == "gconv":
        return nn.Conv2D(channels, channels, 3, padding=1, groups=16, bias_attr=False)
    if op == "dwconv":
        return nn.Conv2D(channels, channels, 3, padding=1, groups=channels, bias_attr=False)
    if op == "pconv":
        return PartialConv(channels, n_div=4, forward_mode="split_cat")
    if op == "pconv_slicing":
        return PartialConv(channels, n_div=4, forward_mode="slicing")
    raise ValueError(f"unknown operator {op!r}; expected one of {OPS + ('pconv_slicing',)}")


def operator_stack(op: str, channels: int, depth: int = DEPTH) -> nn.Layer:
    return nn.Sequential(*[operator_layer(op, channels) for _ in range(depth)])


def label(op: str, channels: int, size: int) -> str:
    return f"{op}_{channels}x{size}x{size}"


def plan(options: StudyOptions) -> Tuple[Tuple[Tuple[int, int], ...], Tuple[str, ...]]:
    """(feature maps, operators) to measure."""
    if options.quick:  # the dense conv is 2.6 GMACs per network: left out of the pipeline check
        return QUICK_SIZES, OPS[1:] + ("pconv_slicing",)
    return SIZES, OPS + ("pconv_slicing",)


def measure(runner: StudyRunner, options: StudyOptions):
    sizes, ops = plan(options)
    for device in runner.devices:
        batch = GPU_BATCH if device == "gpu" else 1
        for c, h in sizes:
            for op in ops:
                runner.measure(operator_stack(op, c), (c, h, h), label(op, c, h), device=device,
                               batch_size=batch, op=op, channels=c, size=h, depth=DEPTH)
    return sizes, ops


def judge(runner: StudyRunner, options: StudyOptions, measured) -> Dict[str, Any]:
    """Per-network rows, the paper's "Average" FLOPS per operator, PConv / DWConv against
    Sec. 4.1, and PConv's two forward forms."""
    sizes, ops = measured
    devices = runner.devices_with_figures()
    rows: List[Dict[str, Any]] = []
    for op in ops:
        for c, h in sizes:
            row = {"op": op, "feature_map": f"{c}x{h}x{h}", "label": label(op, c, h)}
            for d in devices:
                rec = runner.find(label(op, c, h), d)
                row["macs"] = row.get("macs") or (rec or {}).get("macs")
                row[f"{d}_latency_ms"] = speed(rec, "ms")
                row[f"{d}_throughput_ips"] = speed(rec, "images/s")
                row[f"{d}_gmacs_per_s"] = speed(rec, "GMAC/s")
            rows.append(row)
    averages: Dict[str, Dict[str, Optional[float]]] = {}
    for op in ops:
        averages[op] = {}
        for d in devices:
            vals = [r[f"{d}_gmacs_per_s"] for r in rows if r["op"] == op
                    and r[f"{d}_gmacs_per_s"] is not None]
            averages[op][d] = sum(vals) / len(vals) if vals else None
    ratios = _pconv_over_dwconv(averages)
    return {"paper": published.PAPERS["fasternet"], "rows": rows, "averages": averages,
            "pconv_over_dwconv": ratios,
            "pconv_forward_forms": _forward_forms(runner, sizes, devices),
            "published": published.lookup("fasternet", "Sec. 4.1"),
            "verdicts": [verdict(CLAIM, r["device"], r["ours"] > 1.0, r["text"])
                         for r in ratios if r["ours"] is not None]}


CLAIM = "PConv achieves more FLOPS than DWConv (Sec. 4.1)"


def _pconv_over_dwconv(averages: Dict[str, Dict[str, Optional[float]]]) -> List[Dict[str, Any]]:
    ratios = []
    for d in ("gpu", "cpu", "arm"):
        ours = ratio(averages.get("pconv", {}).get(d), averages.get("dwconv", {}).get(d))
        paper = published.value("fasternet", "Sec. 4.1", "pconv_over_dwconv_flops",
                                device=d.upper())
        ratios.append({"device": d, "ours": ours, "paper": paper,
                       "ours_over_paper": ratio(ours, paper),
                       "text": (f"{d.upper()}: PConv/DWConv FLOPS {ours:.1f}x here vs "
                                f"{paper}x in the paper" if ours is not None else
                                f"{d.upper()}: not measured (paper: {paper}x)")})
    return ratios


def _forward_forms(runner: StudyRunner, sizes, devices: List[str]) -> List[Dict[str, Any]]:
    forms = []
    for c, h in sizes:
        for d in devices:
            a = runner.find(label("pconv", c, h), d)
            b = runner.find(label("pconv_slicing", c, h), d)
            forms.append({"feature_map": f"{c}x{h}x{h}", "device": d,
                          "split_cat_ms": speed(a, "ms"), "slicing_ms": speed(b, "ms"),
                          "slicing_over_split_cat": ratio(speed(b, "ms"), speed(a, "ms"))})
    return forms


def describe(runner: StudyRunner, options: StudyOptions, measured) -> str:
    return "\n".join([
        runner.header_markdown("FasterNet Table 1: FLOPS of 3x3 operators",
                               f"{published.PAPERS['fasternet']['title']}, arXiv:2303.03667"),
        f"{DEPTH} stacked layers per network. FLOPS as the paper counts them (1 FLOP = 1 "
        "multiply-add): GMAC/s. CPU/ARM: batch 1 latency; GPU: batch "
        f"{GPU_BATCH} throughput.", "",
        "The paper's per-cell Table 1 values (its devices: GPU, CPU and ARM) are "
        "transcribed in `ppnets/studies/published.py`; only the summary ratios are compared "
        "here, since absolute values depend on the device."])


def render(runner: StudyRunner, options: StudyOptions, measured, judged: Dict[str, Any]) -> str:
    sizes, ops = measured
    devices = runner.devices_with_figures()
    rows, ratios = judged["rows"], judged["pconv_over_dwconv"]
    md = ["## Operators", "", _operators_table(rows, judged["averages"], ops, devices), ""]
    md += ["## PConv FLOPS / DWConv FLOPS (averages over feature maps)", "",
           markdown_table(["device", "ours", "paper (Sec. 4.1)", "ours / paper"],
                          [(r["device"].upper(), r["ours"], r["paper"], r["ours_over_paper"])
                           for r in ratios]), ""]
    md += [f"- {r['text']}" for r in ratios] + [""]
    md += ["## PConv forward forms: slicing vs split_cat", "",
           markdown_table(["feature map", "device", "split_cat (ms)", "slicing (ms)",
                           "slicing / split_cat"],
                          [(s["feature_map"], s["device"], s["split_cat_ms"], s["slicing_ms"],
                            s["slicing_over_split_cat"]) for s in judged["pconv_forward_forms"]],
                          align="---|---|---:|---:|---:"), "",
           "`split_cat` is the default (it exports to Paddle Lite); `slicing` writes the "
           "convolved channels into a copy of the input (a `set_value` op). Both compute the "
           "same function."]
    return "\n".join(md)


def figure(runner: StudyRunner, options: StudyOptions, measured,
           judged: Dict[str, Dict[str, Any]]):
    """One row of panels per runtime, one panel per device with figures."""
    sizes, ops = measured
    panels = {}
    for runtime in judged:
        with runner.judging(runtime):
            panels[runtime] = runner.devices_with_figures()

    def draw(plt):
        cols = max(len(d) for d in panels.values()) or 1
        fig, axes = plt.subplots(len(panels), cols, figsize=(5 * cols, 3.6 * len(panels)),
                                 squeeze=False)
        for row_axes, (runtime, devices) in zip(axes, panels.items()):
            rows = judged[runtime]["rows"]
            for ax, d in zip(row_axes, devices):
                series = {OP_NAMES[op].split(" (")[0] + (" slicing" if op == "pconv_slicing"
                                                         else ""):
                          [next((r[f"{d}_gmacs_per_s"] for r in rows
                                 if r["op"] == op and r["feature_map"] == f"{c}x{h}x{h}"), None)
                           for c, h in sizes] for op in ops}
                bar_groups(ax, [f"{c}x{h}x{h}" for c, h in sizes], series, "GMAC/s",
                           f"{runtime}, {DEVICE_COLUMNS[d]}: achieved FLOPS (paper's "
                           "convention)")
            for ax in row_axes[len(devices):]:
                ax.set_visible(False)
        fig.tight_layout()

    return draw


def _operators_table(rows, averages, ops, devices: List[str]) -> str:
    head = ["operator", "feature map", "MACs (M)"]
    for d in devices:
        head += ([f"{DEVICE_COLUMNS[d]} throughput (img/s)"] if d == "gpu" else
                 [f"{DEVICE_COLUMNS[d]} latency (ms)"]) + [f"{DEVICE_COLUMNS[d]} GMAC/s"]
    body = []
    for r in rows:
        line = [OP_NAMES[r["op"]], r["feature_map"],
                None if r.get("macs") is None else r["macs"] / 1e6]
        for d in devices:
            line += [r[f"{d}_throughput_ips"] if d == "gpu" else r[f"{d}_latency_ms"],
                     r[f"{d}_gmacs_per_s"]]
        body.append(line)
    for op in ops:
        body.append([f"**{OP_NAMES[op]}: average**", "", None]
                    + sum(([None, averages[op][d]] for d in devices), []))
    return markdown_table(head, body, align="---|---" + "|---:" * (len(head) - 2))


STUDY = Study(name="fasternet-table1", stem="latency_fasternet_table1",
              summary="FasterNet Table 1: FLOPS of Conv / GConv / DWConv / PConv, PConv "
                      "split_cat vs slicing",
              measure=measure, judge=judge, describe=describe, render=render, figure=figure)
