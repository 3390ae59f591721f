"""EfficientFormer's latency observations 1-4 (arXiv:2206.01191, Sec. 3), each as a minimal
benchmark, plus the per-stage / per-block-type latency breakdown of ``efficientformer_l1``.

1. Patch embedding with a large kernel and stride vs a conv stem: a 4x4/4 and a 7x7/4 (PoolFormer)
   patch embedding vs EfficientFormer's stem (two 3x3/2 conv-BN-ReLU), all 3x224x224 ->
   48x56x56; a ViT 16x16/16 embedding (-> 192x14x14) is listed for reference.
2. Reshape cost: 8 MLP blocks (dim 192, 14x14 tokens, ratio 4) written three ways: 4D
   throughout (1x1 convs), 3D throughout (Linear on tokens; one reshape at each end), and
   LeViT-style switching (every block goes 4D -> 3D -> 4D).
3. LayerNorm + Linear (3D) vs Conv 1x1 + BN (4D, BN folded) MLP blocks, same widths.
4. GELU vs ReLU vs HardSwish in the 4D conv-BN MLP blocks.

The paper's observations are qualitative on an iPhone 12; the claim of each is recorded and our
measured ordering is compared with it (reported, never asserted). The breakdown times
sub-networks of the deploy-form model (stem, each downsampling, each stage's Meta4D blocks, the
Flat + Meta3D blocks, norm + head) through the harness at their own input shapes.

Per runtime (``--runtimes``), each observation that claims an order holds or not on each
device.

    ppnets study efficientformer-observations [--quick] [--model NAME] [--no-breakdown]
    ppnets study efficientformer-observations --runtimes paddle_inference onnxruntime openvino
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import paddle
import paddle.nn as nn

import ppnets
from ppnets.layers import ConvBN, create_act
from ppnets.models.efficientformer import Flat, Meta3D, Stem
from ppnets.utils import markdown_table

from . import published
from .study import (Study, StudyOptions, StudyRunner, compare_order, ordering_verdict, ratio,
                    speed, verdict)

DIM, TOKENS_HW, MLP_RATIO, N_BLOCKS = 192, 14, 4, 8
GPU_BATCH = 32

CLAIMS = {
    "obs1": ("Observation 1: patch embedding with large kernel and stride is a speed bottleneck "
             "on mobile devices (a conv stem is faster)", {"conv_stem": 2, "patch4": 1,
                                                           "patch7_s4": 1}),
    "obs2": ("Observation 2: a consistent feature dimension matters; frequent 4D<->3D "
             "reshaping (LeViT) costs latency", {"mlp_4d": 2, "mlp_3d": 2, "mlp_switching": 1}),
    "obs3": ("Observation 3: CONV-BN is more latency-favourable than LN-Linear",
             {"conv_bn": 2, "ln_linear": 1}),
    "obs4": ("Observation 4: the latency of the nonlinearity is hardware and compiler "
             "dependent (no fixed order claimed)", None),
}


class Tokens(nn.Layer):
    """(B, C, H, W) -> (B, HW, C)."""

    def forward(self, x):
        b, c = x.shape[0], x.shape[1]
        return paddle.transpose(paddle.reshape(x, [b, c, -1]), [0, 2, 1])


class Image(nn.Layer):
    """(B, HW, C) -> (B, C, H, W)."""

    def __init__(self, hw: int):
        super().__init__()
        self.hw = hw

    def forward(self, x):
        b, c = x.shape[0], x.shape[2]
        return paddle.reshape(paddle.transpose(x, [0, 2, 1]), [b, c, self.hw, self.hw])


class ConvMlp(nn.Layer):
    """x + conv1x1-BN -> act -> conv1x1-BN (4D)."""

    def __init__(self, dim: int, act: str = "gelu"):
        super().__init__()

        self.fc1 = ConvBN(dim, dim * MLP_RATIO, 1, act=act)
        self.fc2 = ConvBN(dim * MLP_RATIO, dim, 1)

    def forward(self, x):
        return x + self.fc2(self.fc1(x))


class LinearMlp(nn.Layer):
    """x + Linear -> act -> Linear on tokens, optionally with a pre-LayerNorm (3D)."""

    def __init__(self, dim: int, act: str = "gelu", norm: bool = False):
        super().__init__()

        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()
        self.fc1 = nn.Linear(dim, dim * MLP_RATIO)
        self.act = create_act(act)
        self.fc2 = nn.Linear(dim * MLP_RATIO, dim)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class Switching(nn.Layer):
    """LeViT-style: every block leaves 4D for 3D and comes back."""

    def __init__(self, dim: int, hw: int):
        super().__init__()
        self.to_tokens, self.mlp, self.to_image = Tokens(), LinearMlp(dim), Image(hw)

    def forward(self, x):
        return self.to_image(self.mlp(self.to_tokens(x)))


def micro_networks(quick: bool) -> Dict[str, Dict[str, Any]]:
    """{name: dict(obs, net, input)} of the minimal benchmarks."""

    hw = TOKENS_HW
    img = (3, 224, 224)
    tok = (DIM, hw, hw)
    nets = {
        "conv_stem": ("obs1", lambda: Stem(3, 48), img),
        "patch4": ("obs1", lambda: nn.Sequential(nn.Conv2D(3, 48, 4, stride=4),
                                                 nn.BatchNorm2D(48)), img),
        "patch7_s4": ("obs1", lambda: nn.Sequential(nn.Conv2D(3, 48, 7, stride=4, padding=2),
                                                    nn.BatchNorm2D(48)), img),
        "patch16_vit": ("obs1", lambda: nn.Conv2D(3, 192, 16, stride=16), img),
        "mlp_4d": ("obs2", lambda: nn.Sequential(*[ConvMlp(DIM) for _ in range(N_BLOCKS)]), tok),
        "mlp_3d": ("obs2", lambda: nn.Sequential(Tokens(), *[LinearMlp(DIM) for _ in
                                                             range(N_BLOCKS)], Image(hw)), tok),
        "mlp_switching": ("obs2", lambda: nn.Sequential(*[Switching(DIM, hw) for _ in
                                                          range(N_BLOCKS)]), tok),
        "conv_bn": ("obs3", lambda: nn.Sequential(*[ConvMlp(DIM) for _ in range(N_BLOCKS)]), tok),
        "ln_linear": ("obs3", lambda: nn.Sequential(Tokens(), *[LinearMlp(DIM, norm=True) for _
                                                                in range(N_BLOCKS)], Image(hw)),
                      tok),
    }
    for act in ("gelu", "relu", "hardswish"):
        nets[f"act_{act}"] = ("obs4", lambda a=act: nn.Sequential(
            *[ConvMlp(DIM, act=a) for _ in range(N_BLOCKS)]), tok)
    if quick:
        nets = {k: v for k, v in nets.items() if k in ("conv_stem", "patch4", "mlp_4d",
                                                        "mlp_switching")}
    return {k: {"obs": o, "build": b, "input": i} for k, (o, b, i) in nets.items()}


class HeadSegment(nn.Layer):
    """EfficientFormer's norm + token mean + (head + head_dist) / 2, fed a (1, N, C) 'image'."""

    def __init__(self, model, tokens: int, dim: int):
        super().__init__()
        self.norm, self.head, self.head_dist = model.norm, model.head, model.head_dist
        self.tokens, self.dim = tokens, dim

    def forward(self, x):
        x = self.norm(paddle.reshape(x, [-1, self.tokens, self.dim])).mean(axis=1)
        return (self.head(x) + self.head_dist(x)) / 2


def model_segments(name: str = "efficientformer_l1") -> Tuple[List[Dict[str, Any]], nn.Layer]:
    """Sub-networks of the deploy-form model with their input shapes and block type."""

    model = ppnets.create_model(name)
    model.eval()
    ppnets.reparameterize_model(model)
    # "first": the model's own layer that receives the segment's input (for the shape hook).
    segments: List[Dict[str, Any]] = [{"name": "stem", "type": "stem", "layer": model.stem,
                                       "first": model.stem}]
    for i, stage in enumerate(model.stages):
        if not isinstance(stage.downsample, nn.Identity):
            segments.append({"name": f"stages.{i}.downsample", "type": "downsample",
                             "layer": stage.downsample, "first": stage.downsample})
        blocks = list(stage.blocks)
        cut = next((j for j, b in enumerate(blocks) if isinstance(b, Flat)), len(blocks))
        if cut:
            segments.append({"name": f"stages.{i}.meta4d[{cut}]", "type": "Meta4D",
                             "layer": nn.Sequential(*blocks[:cut]), "first": blocks[0]})
        if cut < len(blocks):
            n3 = sum(isinstance(b, Meta3D) for b in blocks[cut:])
            segments.append({"name": f"stages.{i}.flat+meta3d[{n3}]", "type": "Meta3D",
                             "layer": nn.Sequential(*blocks[cut:]), "first": blocks[cut]})
    # Input shapes from one forward pass.
    shapes: Dict[int, List[int]] = {}
    hooks = [s["first"].register_forward_pre_hook(
        lambda layer, inp, k=k: shapes.__setitem__(k, list(inp[0].shape)))
        for k, s in enumerate(segments)]
    with paddle.no_grad():
        feats = model.forward_features(paddle.randn([1, 3, 224, 224]))
    for h in hooks:
        h.remove()
    for k, s in enumerate(segments):
        s["input"] = tuple(shapes[k][1:])
    tokens, dim = feats.shape[1], feats.shape[2]
    segments.append({"name": "norm+head", "type": "head", "input": (1, tokens, dim),
                     "layer": HeadSegment(model, tokens, dim)})
    return segments, model


@dataclass
class ObservationsOptions(StudyOptions):
    model: str = "efficientformer_l1"   # the registered EfficientFormer of the breakdown
    breakdown: bool = True              # time the model's parts (and the whole model)


def measure(runner: StudyRunner, options: ObservationsOptions):
    """Returns (micro networks, breakdown segments) measured."""
    nets = micro_networks(options.quick)
    segments, model = ([], None) if not options.breakdown else model_segments(options.model)
    if options.quick:  # a pipeline check: one segment of each kind of input, no whole model
        segments = [s for s in segments if s["type"] in ("stem", "Meta3D", "head")]
    for device in runner.devices:
        batch = GPU_BATCH if device == "gpu" else 1
        for name, n in nets.items():
            runner.measure(n["build"](), n["input"], name, device=device, batch_size=batch,
                           observation=n["obs"])
        for s in segments:
            runner.measure(s["layer"], s["input"], f"{options.model}/{s['name']}", device=device,
                           batch_size=batch, segment=s["name"], block_type=s["type"],
                           stabilise=False)
        if segments and not options.quick:
            runner.measure(model, (3, 224, 224), f"{options.model}/whole", device=device,
                           batch_size=batch, segment="whole", stabilise=False)
    return nets, segments


def judge(runner: StudyRunner, options: ObservationsOptions, measured) -> Dict[str, Any]:
    """Each observation's claim against our ordering per device, and the breakdown's shares."""
    nets, segments = measured
    devices = runner.devices_with_figures()
    observations = []
    for obs, (claim, expected) in CLAIMS.items():
        names = [k for k, n in nets.items() if n["obs"] == obs]
        if names:
            observations.append({"observation": obs, "claim": claim, "networks": names,
                                 "checks": [_check(runner, obs, names, expected, d)
                                            for d in devices]})
    breakdown = []
    for d in devices if segments else []:
        parts = [(s, speed(runner.find(f"{options.model}/{s['name']}", d), "ms"))
                 for s in segments]
        total = sum(v for _, v in parts if v is not None) or None
        breakdown += [{"device": d, "segment": s["name"], "type": s["type"],
                       "input": list(s["input"]), "ms": v,
                       "share_pct": None if v is None or total is None else 100 * v / total}
                      for s, v in parts]
    verdicts = [ordering_verdict(entry["claim"], check["device"], check)
                if "paper_order" in check else
                verdict(entry["claim"], check["device"], None, check["text"])
                for entry in observations for check in entry["checks"]]
    return {"paper": published.PAPERS["efficientformer"], "observations": observations,
            "breakdown": breakdown, "verdicts": verdicts,
            "published": published.lookup("efficientformer")}


def _check(runner: StudyRunner, obs: str, names: List[str], expected: Optional[Dict[str, int]],
           device: str) -> Dict[str, Any]:
    ours = {k: speed(runner.find(k, device), "ms") for k in names}
    if expected:
        # The claim as a ranking: higher rank = faster; equal ranks are not ordered.
        paper_rank = {k: float(v) for k, v in expected.items() if k in names}
        return {**compare_order(paper_rank, {k: (None if ours[k] is None else -ours[k])
                                             for k in paper_rank},
                                higher_is_faster=True, what=f"{obs} on {device}"),
                "device": device}
    order = sorted([k for k in names if ours[k] is not None], key=lambda k: ours[k])
    return {"what": f"{obs} on {device}", "device": device, "agrees": None, "our_order": order,
            "text": f"{obs} on {device}: no order claimed; ours (fastest first): "
                    f"{' > '.join(order)}"}


def describe(runner: StudyRunner, options: ObservationsOptions, measured) -> str:
    return "\n".join([
        runner.header_markdown("EfficientFormer observations 1-4 and latency breakdown",
                               f"{published.PAPERS['efficientformer']['title']}, "
                               "arXiv:2206.01191"),
        "Minimal networks in `ppnets/studies/efficientformer_observations.py`; batch 1 on "
        f"CPU/ARM, {GPU_BATCH} on GPU (ms per batch). The paper's observations are "
        "qualitative (iPhone 12); each claim is checked against our ordering."])


def render(runner: StudyRunner, options: ObservationsOptions, measured,
           judged: Dict[str, Any]) -> str:
    nets, _ = measured
    devices = runner.devices_with_figures()
    md = []
    for entry in judged["observations"]:
        md += [f"## {entry['claim']}", "", _observation_table(runner, nets, entry["networks"],
                                                              devices), ""]
        md += [f"- {o['text']}" for o in entry["checks"]] + [""]
    if judged["breakdown"]:
        md += [f"## Whole-model breakdown: {options.model}", ""]
        for d in devices:
            md += _breakdown_markdown(runner, options.model, d,
                                      [b for b in judged["breakdown"] if b["device"] == d])
    return "\n".join(md)


def _observation_table(runner: StudyRunner, nets, names: List[str], devices: List[str]) -> str:
    head = ["network", "input"] + [f"{d} (ms)" for d in devices] + \
           [f"{d} / first" for d in devices]
    body = []
    first = [speed(runner.find(names[0], d), "ms") for d in devices]
    for k in names:
        ms = [speed(runner.find(k, d), "ms") for d in devices]
        body.append([k, "x".join(map(str, nets[k]["input"]))] + ms +
                    [ratio(a, b) for a, b in zip(ms, first)])
    return markdown_table(head, body, align="---|---" + "|---:" * (len(head) - 2))


def _breakdown_markdown(runner: StudyRunner, model: str, device: str,
                        parts: List[Dict[str, Any]]) -> List[str]:
    whole = speed(runner.find(f"{model}/whole", device), "ms")
    total = sum(b["ms"] for b in parts if b["ms"] is not None) or None
    by_type: Dict[str, float] = {}
    for b in parts:
        if b["ms"] is not None:
            by_type[b["type"]] = by_type.get(b["type"], 0.0) + b["ms"]
    rows = [[b["segment"], b["type"], "x".join(map(str, b["input"])), b["ms"], b["share_pct"]]
            for b in parts]
    return [f"**{device}**: whole model {whole if whole is None else round(whole, 3)} ms; sum "
            f"of the separately timed parts {total if total is None else round(total, 3)}"
            " ms (they differ by the per-run predictor overhead each part pays and by the "
            "fusions a whole-model program can make across part boundaries).", "",
            markdown_table(["segment", "type", "input", "ms", "share of parts (%)"], rows,
                           align="---|---|---|---:|---:"), "",
            markdown_table(["block type", "ms", "share (%)"],
                           [(t, v, 100 * v / total) for t, v in by_type.items()]), ""]


def figure(runner: StudyRunner, options: ObservationsOptions, measured,
           judged: Dict[str, Dict[str, Any]]):
    """One row per runtime: the minimal networks' latency and the breakdown's shares, on the
    runtime's first device."""
    nets, _ = measured
    rows = []
    for runtime, judgement in judged.items():
        with runner.judging(runtime):
            devices = runner.devices_with_figures()
            if devices:
                rows.append((runtime, devices[0],
                             [speed(runner.find(k, devices[0]), "ms") for k in nets],
                             [b for b in judgement["breakdown"]
                              if b["device"] == devices[0] and b["ms"]]))
    if not rows:
        return None

    def draw(plt):
        n = 2 if any(r[3] for r in rows) else 1
        fig, axes = plt.subplots(len(rows), n, figsize=(6 * n, 3.8 * len(rows)), squeeze=False)
        for row_axes, (runtime, device, vals, parts) in zip(axes, rows):
            ax = row_axes[0]
            names = list(nets)
            ax.barh([k for k, v in zip(names, vals) if v is not None],
                    [v for v in vals if v is not None],
                    color=[f"C{int(nets[k]['obs'][-1])}" for k, v in zip(names, vals) if v])
            ax.set_xlabel(f"ms ({device}, {runtime})", fontsize=8)
            ax.set_title(f"{runtime}: observations 1-4, minimal networks", fontsize=9)
            ax.tick_params(labelsize=7)
            if n == 2 and parts:
                row_axes[1].pie([b["ms"] for b in parts], labels=[b["segment"] for b in parts],
                                textprops={"fontsize": 6})
                row_axes[1].set_title(f"{runtime}: {options.model} latency share ({device})",
                                      fontsize=9)
            elif n == 2:
                row_axes[1].set_visible(False)
        fig.tight_layout()

    return draw


STUDY = Study(name="efficientformer-observations", stem="latency_efficientformer_observations",
              summary="EfficientFormer Sec. 3: observations 1-4 and a per-stage latency "
                      "breakdown",
              measure=measure, judge=judge, describe=describe, render=render, figure=figure,
              options=ObservationsOptions)
