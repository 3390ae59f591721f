"""EfficientFormerV2 search space: networks, latency-table blocks, sandwich sampling, actions.

Paper: "Rethinking Vision Transformers for MobileNet Size and Speed", arXiv:2212.08059, §4.

The search space (§4): the depth of each stage, the width of each stage (a grid of multiples of
``width_step``) and the expansion ratio of every FFN. As in the paper, every block of the last
two stages of the supernet is MHSA followed by FFN, and the number of MHSA is found by the depth
search: a network keeps attention in the last ``vits[j]`` of its blocks in stage ``j``
(``ppnets.create_model("efficientformerv2_s0", num_vit_per_stage=...)`` builds it).

* :class:`V2Net` is a buildable network (:meth:`V2Net.kwargs`); :class:`V2Arch` a subnet of
  the supernet: kept block indices per stage (inheritance), widths, per-block ratios, MHSA
  counts.
* :meth:`V2Space.sample`, :meth:`largest`, :meth:`smallest`: the sandwich rule's subnets.
* :meth:`V2Space.actions`: the action pool ``{A_N[i,j], A_C[j], A_E[i,j]}`` -- remove a block
  (or the first MHSA of a stage: the depth search of the MHSA count), shrink a stage width by
  one step, shrink one FFN's expansion ratio to the next smaller choice. ``pool="full"``
  proposes every block and every FFN; ``pool="front"`` one action of each kind per stage (the
  first block, the first FFN with the stage's largest ratio), fewer evaluations per step on a
  small machine (a deviation; docs/search.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
import paddle.nn as nn

from ppnets.factory import create_model
from ppnets.models.efficientformerv2 import Downsample, EfficientFormerV2Block, Stem

from .lut import BlockSpec
from .sharing import NameMap, bn_layers

__all__ = ["FAMILY", "S0", "V2Net", "V2Arch", "V2Space", "V2Head"]

FAMILY = "efficientformerv2_s0"   # the registry name whose constructor builds every searched net
S0 = dict(depths=(2, 2, 6, 4), dims=(32, 48, 96, 176), num_vit=2,
          mlp_ratios=((4, 4), (4, 4), (4, 3, 3, 3, 4, 4), (4, 3, 3, 4)))   # paper / timm


class V2Net(NamedTuple):
    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    ratios: Tuple[Tuple[float, ...], ...]   # one expansion ratio per block
    vits: Tuple[int, ...]                   # MHSA blocks at the end of each stage

    def kwargs(self, img_size: int, distillation: bool) -> Dict[str, Any]:
        """Keyword arguments of ``ppnets.create_model(FAMILY, num_classes=..., **kwargs)``."""
        return {"depths": list(self.depths), "dims": list(self.widths),
                "mlp_ratios": [[float(r) for r in stage] for stage in self.ratios],
                "num_vit_per_stage": list(self.vits), "img_size": int(img_size),
                "distillation": bool(distillation)}


@dataclass(frozen=True)
class V2Arch:
    widths: Tuple[int, ...]
    blocks: Tuple[Tuple[int, ...], ...]      # supernet block indices kept per stage
    ratios: Tuple[Tuple[float, ...], ...]    # expansion ratio of each kept block
    vits: Tuple[int, ...]

    @property
    def net(self) -> V2Net:
        return V2Net(tuple(len(b) for b in self.blocks), self.widths, self.ratios, self.vits)

    def describe(self) -> Dict[str, Any]:
        return {"depths": list(self.net.depths), "widths": list(self.widths),
                "ratios": [list(r) for r in self.ratios], "vits": list(self.vits),
                "blocks": [list(b) for b in self.blocks]}


class V2Head(nn.Layer):
    """EfficientFormerV2's head: BatchNorm, global mean, ``head`` (and ``head_dist``, averaged)."""

    def __init__(self, dim: int, num_classes: int, distillation: bool):
        super().__init__()
        self.norm = nn.BatchNorm2D(dim, momentum=0.9, epsilon=1e-5)
        self.head = nn.Linear(dim, num_classes)
        self.head_dist = nn.Linear(dim, num_classes) if distillation else None

    def forward(self, x):
        x = self.norm(x).mean(axis=[2, 3])
        return self.head(x) if self.head_dist is None else (self.head(x) + self.head_dist(x)) / 2


class V2Space:
    """The supernet's largest network (``depths``, ``widths``, max ratio) at ``img_size``."""

    stages = 4
    attention_stages = (2, 3)

    def __init__(self, img_size: int, depths: Sequence[int], widths: Sequence[int],
                 ratios: Sequence[float], num_classes: int, width_step: int = 16,
                 min_widths: Optional[Sequence[int]] = None, min_depth: int = 1,
                 distillation: bool = False):
        if len(depths) != self.stages or len(widths) != self.stages:
            raise ValueError(f"the supernet needs 4 depths and 4 widths, got {list(depths)} and "
                             f"{list(widths)}")
        min_widths = list(min_widths or [width_step] * self.stages)
        if any(w % width_step for w in (*widths, *min_widths)) or any(
                lo > hi for lo, hi in zip(min_widths, widths)):
            raise ValueError(f"widths {list(widths)} and min_widths {min_widths} must be "
                             f"multiples of the width step {width_step}, min <= max")
        self.img_size, self.num_classes = int(img_size), int(num_classes)
        self.depths, self.widths = tuple(depths), tuple(widths)
        self.ratios = tuple(sorted(float(r) for r in ratios))
        self.width_step, self.min_depth = int(width_step), int(min_depth)
        self.distillation = bool(distillation)
        self.width_grids = [list(range(lo, hi + 1, width_step))
                            for lo, hi in zip(min_widths, widths)]
        side = math.ceil(self.img_size / 4)
        self.sides = []
        for j in range(self.stages):
            self.sides.append(side)
            side = math.ceil(side / 2)

    # ---- networks and blocks --------------------------------------------------------------
    def specs(self, net: V2Net) -> List[BlockSpec]:
        s, w, r = self.img_size, net.widths, self.sides
        size = (s, s)
        specs = [{"key": f"v2/stem|in=3x{s}x{s}|c={w[0]}", "input_size": (3, s, s),
                  "build": lambda c=w[0]: Stem(3, c)}]
        for j in range(self.stages):
            if j:
                attn = int(j == self.stages - 1)   # attention downsampling into the last stage
                specs.append({
                    "key": f"v2/down|c={w[j - 1]}->{w[j]}|hw={r[j - 1]}x{r[j - 1]}|attn={attn}",
                    "input_size": (w[j - 1], r[j - 1], r[j - 1]),
                    "build": lambda a=w[j - 1], b=w[j], side=r[j - 1], u=attn: Downsample(
                        a, b, resolution=(side, side), use_attn=bool(u), img_size=size)})
            first_attn = net.depths[j] - net.vits[j]
            for i, ratio in enumerate(net.ratios[j]):
                attn = int(i >= first_attn)
                stride = 2 if attn and j == 2 else None   # stride attention in stage 3
                specs.append({
                    "key": f"v2/block|c={w[j]}|hw={r[j]}x{r[j]}|mlp={ratio:g}|attn={attn}",
                    "input_size": (w[j], r[j], r[j]),
                    "build": lambda c=w[j], m=ratio, side=r[j], u=attn, st=stride:
                        EfficientFormerV2Block(c, mlp_ratio=m, resolution=(side, side),
                                               stride=st, use_attn=bool(u), img_size=size)})
        c, side = w[-1], r[-1]
        specs.append({"key": f"v2/head|c={c}|hw={side}x{side}|classes={self.num_classes}|"
                             f"dist={int(self.distillation)}", "input_size": (c, side, side),
                      "build": lambda: V2Head(c, self.num_classes, self.distillation)})
        return specs

    def grid_specs(self, extra: Sequence[V2Net] = ()) -> List[BlockSpec]:
        """Every block the search can meet (each kind at every width of its stage's grid, every
        ratio, with and without MHSA) plus the blocks of ``extra`` networks (the baselines)."""
        nets = []
        for j in range(self.stages):
            for wj in self.width_grids[j]:
                for wp in (self.width_grids[j - 1] if j else [None]):
                    widths = [g[0] for g in self.width_grids]
                    widths[j] = wj
                    if wp is not None:
                        widths[j - 1] = wp
                    for ratio in self.ratios:   # two blocks: one plain, one with MHSA
                        nets.append(V2Net((2,) * self.stages, tuple(widths),
                                          ((ratio, ratio),) * self.stages, (0, 0, 1, 1)))
        specs = [s for net in (*nets, *extra) for s in self.specs(net)]
        return list({s["key"]: s for s in specs}.values())

    # ---- subnets: the sandwich rule -------------------------------------------------------
    def _vits_max(self, j: int, depth: int) -> int:
        return depth if j in self.attention_stages else 0

    def largest(self) -> V2Arch:
        return V2Arch(self.widths, tuple(tuple(range(d)) for d in self.depths),
                      tuple((self.ratios[-1],) * d for d in self.depths),
                      tuple(self._vits_max(j, d) for j, d in enumerate(self.depths)))

    def smallest(self) -> V2Arch:
        d = self.min_depth
        return V2Arch(tuple(g[0] for g in self.width_grids),
                      tuple(tuple(range(d)) for _ in self.depths),
                      tuple((self.ratios[0],) * d for _ in self.depths), (0,) * self.stages)

    def sample(self, rng: np.random.RandomState) -> V2Arch:
        """A random subnet: per stage a random subset of blocks (elastic depth), a width from the
        grid, a ratio per block and a number of MHSA."""
        widths, blocks, ratios, vits = [], [], [], []
        for j, depth in enumerate(self.depths):
            d = int(rng.randint(self.min_depth, depth + 1))
            blocks.append(tuple(sorted(rng.choice(depth, d, replace=False).tolist())))
            widths.append(int(rng.choice(self.width_grids[j])))
            ratios.append(tuple(float(rng.choice(self.ratios)) for _ in range(d)))
            vits.append(int(rng.randint(0, self._vits_max(j, d) + 1)))
        return V2Arch(tuple(widths), tuple(blocks), tuple(ratios), tuple(vits))

    @staticmethod
    def name_map(arch: V2Arch) -> NameMap:
        """Subnet state name -> the name in the supernet's largest network."""

        def mapping(name: str) -> str:
            parts = name.split(".")
            if parts[0] == "stages" and parts[2] == "blocks":
                parts[3] = str(arch.blocks[int(parts[1])][int(parts[3])])
            return ".".join(parts)
        return mapping

    def build(self, net: V2Net, **kwargs) -> nn.Layer:
        return create_model(FAMILY, num_classes=self.num_classes,
                            **net.kwargs(self.img_size, self.distillation), **kwargs)

    def bn_widths(self) -> Dict[str, Set[int]]:
        """Every channel count each BatchNorm of the largest network can take in a subnet:
        read from networks at every grid width (stage by stage, clamped) and every ratio."""
        out: Dict[str, Set[int]] = {}
        largest = self.largest()
        steps = max(len(g) for g in self.width_grids)
        for t in range(steps):
            widths = tuple(g[min(t, len(g) - 1)] for g in self.width_grids)
            for ratio in self.ratios:
                arch = V2Arch(widths, largest.blocks,
                              tuple((ratio,) * d for d in self.depths), largest.vits)
                for name, bn in bn_layers(self.build(arch.net)).items():
                    out.setdefault(name, set()).add(int(bn.weight.shape[0]))
        return out

    # ---- the action pool (§4) -------------------------------------------------------------
    def actions(self, arch: V2Arch, pool: str = "full") -> List[Tuple[str, V2Arch]]:
        if pool not in ("full", "front"):
            raise ValueError(f"action pool must be 'full' or 'front', got {pool!r}")
        out: List[Tuple[str, V2Arch]] = []

        def with_stage(j, blocks=None, ratios=None, width=None, vits=None) -> V2Arch:
            def put(seq, value):
                seq = list(seq)
                if value is not None:
                    seq[j] = value
                return tuple(seq)
            return V2Arch(put(arch.widths, width), put(arch.blocks, blocks),
                          put(arch.ratios, ratios), put(arch.vits, vits))

        for j in range(self.stages):
            kept, ratios = arch.blocks[j], arch.ratios[j]
            if len(kept) > self.min_depth:   # A_N: remove a block
                for i in (range(len(kept)) if pool == "full" else [0]):
                    out.append((f"stage {j + 1}: remove block {kept[i] + 1}", with_stage(
                        j, blocks=kept[:i] + kept[i + 1:], ratios=ratios[:i] + ratios[i + 1:],
                        vits=min(arch.vits[j], len(kept) - 1))))
            if arch.vits[j] > 0:   # A_N on an MHSA: its block keeps the FFN
                out.append((f"stage {j + 1}: remove the first MHSA",
                            with_stage(j, vits=arch.vits[j] - 1)))
            grid = self.width_grids[j]
            if arch.widths[j] > grid[0]:   # A_C: shrink the stage width
                out.append((f"stage {j + 1}: width {arch.widths[j]} -> "
                            f"{arch.widths[j] - self.width_step}",
                            with_stage(j, width=arch.widths[j] - self.width_step)))
            shrinkable = [i for i, r in enumerate(ratios) if r > self.ratios[0]]
            if pool == "front" and shrinkable:   # the first FFN with the largest ratio
                top = max(ratios[i] for i in shrinkable)
                shrinkable = [next(i for i in shrinkable if ratios[i] == top)]
            for i in shrinkable:   # A_E: shrink one FFN's expansion ratio
                smaller = max(r for r in self.ratios if r < ratios[i])
                out.append((f"stage {j + 1}: FFN of block {kept[i] + 1} ratio {ratios[i]:g} -> "
                            f"{smaller:g}", with_stage(
                                j, ratios=ratios[:i] + (smaller,) + ratios[i + 1:])))
        return out

    # ---- the comparison: EfficientFormerV2-S0 scaled by width and depth -------------------
    def scaled_s0(self, factor: float) -> V2Net:
        """S0's layout with widths and depths times ``factor`` (widths on the width step, depths
        >= 1); each stage keeps S0's ratio pattern (sampled along the new depth) and at most
        S0's two MHSA in stages 3-4."""
        step = self.width_step
        widths = tuple(max(step, int(round(w * factor / step)) * step) for w in S0["dims"])
        depths = tuple(max(1, int(round(d * factor))) for d in S0["depths"])
        ratios = tuple(tuple(float(pattern[i * len(pattern) // d]) for i in range(d))
                       for pattern, d in zip(S0["mlp_ratios"], depths))
        vits = tuple(min(S0["num_vit"], d) if j in self.attention_stages else 0
                     for j, d in enumerate(depths))
        return V2Net(depths, widths, ratios, vits)

    def scaled_s0_family(self, factors: Optional[Sequence[float]] = None) -> List[V2Net]:
        factors = factors if factors is not None else np.arange(0.05, 1.0001, 0.01)
        return list(dict.fromkeys(self.scaled_s0(float(f)) for f in factors))
