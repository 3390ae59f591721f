"""EfficientFormer (V1) search space: networks, their latency-table blocks, the slimming actions.

Paper: "EfficientFormer: Vision Transformers at MobileNet Speed", arXiv:2206.01191, §4.

* A *network* (:class:`V1Net`) is what ``ppnets.create_model("efficientformer_l1", **kwargs)``
  builds: per-stage ``depths`` and ``dims`` and ``num_vit`` MB3D (Meta3D) blocks at the end of
  the last stage (:meth:`V1Net.kwargs`).
* A *state* of the slimming (:class:`V1Arch`) is a network inside the supernet: which supernet
  MetaPaths each stage keeps (an MP turned into identity is dropped), the stage widths (at most
  the supernet's, on the 16-channel grid) and the number of MB3D.
* :meth:`V1Space.specs` lists a network's blocks for the latency table: stem, downsampling,
  MB4D, the reshape to tokens, MB3D, head; keys carry width and resolution, so the table holds
  "MB4D and MB3D at every width (multiples of 16)" and every resolution a block sees (§4).
* :meth:`V1Space.actions` is the paper's action space: (1) the least important MP becomes
  identity, (2) the first MB3D is removed (becomes MB4D: the number of MB3D drops by one),
  (3) the least important stage is narrowed by 16. Importance (§4): MP score
  ``p(MB4D) / p(I)`` in stages 1-2 and ``(p(MB3D) + p(MB4D)) / p(I)`` in stages 3-4, with ``p``
  the softmax of the MP's architecture parameters; a stage's score is the sum over its MPs.

Deliberate deviations (docs/search.md): MB3D is offered in the last stage only -- the paper
allows it in stages 3 and 4, but ppnets' EfficientFormer (like timm's and every published
configuration) places Meta3D blocks at the end of the last stage, so a stage-3 MB3D could not be
built; the MP choice "identity" cannot empty a stage (one block stays, as in every published
model), nor remove the last MB3D (``num_vit >= 1``, the model's requirement); action 3 skips a
least important stage whose narrowing the table prices as no faster (:meth:`V1Space.actions`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import paddle.nn as nn

from ppnets.models.efficientformer import Downsample, Flat, Meta3D, Meta4D, Stem

from .lut import BlockSpec, TokensInput
from .sharing import NameMap

__all__ = ["FAMILY", "L1", "V1Net", "V1Arch", "V1Space", "V1Head"]

FAMILY = "efficientformer_l1"   # the registry name whose constructor builds every searched net
L1 = dict(depths=(3, 2, 6, 4), dims=(48, 96, 224, 448), num_vit=1)   # paper Table 1 / timm


class V1Net(NamedTuple):
    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    num_vit: int

    def kwargs(self, img_size: int) -> Dict[str, Any]:
        """Keyword arguments of ``ppnets.create_model(FAMILY, num_classes=..., **kwargs)``."""
        return {"depths": list(self.depths), "dims": list(self.widths),
                "num_vit": int(self.num_vit), "img_size": int(img_size)}


@dataclass(frozen=True)
class V1Arch:
    widths: Tuple[int, ...]
    blocks: Tuple[Tuple[int, ...], ...]   # supernet MP indices kept in each stage, in order
    num_vit: int                          # MB3D = the last num_vit kept MPs of the last stage

    @property
    def net(self) -> V1Net:
        return V1Net(tuple(len(b) for b in self.blocks), self.widths, self.num_vit)

    def describe(self) -> Dict[str, Any]:
        return {"depths": list(self.net.depths), "widths": list(self.widths),
                "num_vit": self.num_vit, "blocks": [list(b) for b in self.blocks]}


class V1Head(nn.Layer):
    """EfficientFormer's head on tokens: LayerNorm, token mean, the two linear heads averaged
    (the model's ``norm`` + ``forward_head`` in eval mode, parameter names as the model's)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, epsilon=1e-5)
        self.head = nn.Linear(dim, num_classes)
        self.head_dist = nn.Linear(dim, num_classes)

    def forward(self, tokens):
        x = self.norm(tokens).mean(axis=1)
        return (self.head(x) + self.head_dist(x)) / 2


def _grid(max_width: int, step: int) -> List[int]:
    return list(range(step, max_width + 1, step))


class V1Space:
    """The supernet's shape (``depths``, ``widths``: the largest network) at ``img_size``."""

    stages = 4
    mb3d_choices = ("mb4d", "mb3d", "identity")
    mb4d_choices = ("mb4d", "identity")

    def __init__(self, img_size: int, depths: Sequence[int], widths: Sequence[int],
                 num_classes: int, width_step: int = 16, mlp_ratio: float = 4.0):
        if len(depths) != self.stages or len(widths) != self.stages:
            raise ValueError(f"the supernet needs 4 depths and 4 widths, got {list(depths)} and "
                             f"{list(widths)}")
        bad = [w for w in widths if w % width_step or w < width_step]
        if bad:
            raise ValueError(f"supernet widths {list(widths)} must be multiples of the width step "
                             f"{width_step} (the search narrows stages in steps of it)")
        self.img_size, self.num_classes = int(img_size), int(num_classes)
        self.depths, self.widths = tuple(depths), tuple(widths)
        self.width_step, self.mlp_ratio = int(width_step), float(mlp_ratio)
        side = math.ceil(math.ceil(self.img_size / 2) / 2)   # the stem: two stride-2 convs
        self.sides = []
        for _ in range(self.stages):
            self.sides.append(side)
            side = math.ceil(side / 2)

    def choices(self, stage: int) -> Tuple[str, ...]:
        return self.mb3d_choices if stage == self.stages - 1 else self.mb4d_choices

    # ---- networks and blocks --------------------------------------------------------------
    def specs(self, net: V1Net) -> List[BlockSpec]:
        """The blocks of ``net`` for the latency table, in execution order."""
        s, w, r, n = self.img_size, net.widths, self.sides, self.num_classes
        mlp = f"{self.mlp_ratio:g}"
        specs = [{"key": f"v1/stem|in=3x{s}x{s}|c={w[0]}", "input_size": (3, s, s),
                  "build": lambda c=w[0]: Stem(3, c)}]
        for j in range(self.stages):
            if j:
                specs.append({"key": f"v1/down|c={w[j - 1]}->{w[j]}|hw={r[j - 1]}x{r[j - 1]}",
                              "input_size": (w[j - 1], r[j - 1], r[j - 1]),
                              "build": lambda a=w[j - 1], b=w[j]: Downsample(a, b)})
            n4d = net.depths[j] - (net.num_vit if j == self.stages - 1 else 0)
            specs += [{"key": f"v1/mb4d|c={w[j]}|hw={r[j]}x{r[j]}|mlp={mlp}",
                       "input_size": (w[j], r[j], r[j]),
                       "build": lambda c=w[j]: Meta4D(c, mlp_ratio=self.mlp_ratio)}] * n4d
        c, side, tokens = w[-1], r[-1], r[-1] * r[-1]
        specs.append({"key": f"v1/flat|c={c}|hw={side}x{side}", "input_size": (c, side, side),
                      "build": lambda: Flat((side, side), self.img_size)})
        specs += [{"key": f"v1/mb3d|c={c}|t={tokens}|mlp={mlp}", "input_size": (tokens, c, 1),
                   "build": lambda: TokensInput(Meta3D(c, mlp_ratio=self.mlp_ratio,
                                                       resolution=(side, side)))}] * net.num_vit
        specs.append({"key": f"v1/head|c={c}|t={tokens}|classes={n}",
                      "input_size": (tokens, c, 1),
                      "build": lambda: TokensInput(V1Head(c, n))})
        return specs

    def grid_specs(self, extra: Sequence[V1Net] = ()) -> List[BlockSpec]:
        """Every block the search can meet: each kind at every width of its stage's grid (16 up
        to the supernet's width), plus the blocks of ``extra`` networks (the baselines)."""
        grids = [_grid(w, self.width_step) for w in self.widths]
        nets = []
        for j in range(self.stages):   # every width of stage j, next to every width of j - 1
            for wj in grids[j]:
                for wp in (grids[j - 1] if j else [None]):
                    widths = [grids[k][0] for k in range(self.stages)]
                    widths[j] = wj
                    if wp is not None:
                        widths[j - 1] = wp
                    nets.append(V1Net((1, 1, 1, 2), tuple(widths), 1))  # an MB4D and an MB3D last
        specs = [s for net in (*nets, *extra) for s in self.specs(net)]
        return list({s["key"]: s for s in specs}.values())

    # ---- the supernet's states -------------------------------------------------------------
    def largest(self) -> V1Arch:
        return V1Arch(self.widths, tuple(tuple(range(d)) for d in self.depths), 1)

    def start(self, probs: Sequence[Sequence[np.ndarray]]) -> V1Arch:
        """The slimming's first state: the whole supernet, with MB3D in the trailing MPs of the
        last stage whose ``p(MB3D) >= p(MB4D)`` (at least one: the model needs one)."""
        last = probs[-1]
        n = 0
        for p in reversed(last):
            if p[1] < p[0]:
                break
            n += 1
        return V1Arch(self.widths, tuple(tuple(range(d)) for d in self.depths), max(1, n))

    def name_map(self, arch: V1Arch) -> NameMap:
        """Subnet state name -> the ``V1Supernet`` name it inherits from."""
        last = self.stages - 1

        def mapping(name: str) -> str:
            parts = name.split(".")
            if parts[0] != "stages" or parts[2] != "blocks":
                return name
            j, k = int(parts[1]), int(parts[3])
            rest = ".".join(parts[4:])
            n4d = len(arch.blocks[j]) - (arch.num_vit if j == last else 0)
            if k < n4d:
                return f"stages.{j}.mps.{arch.blocks[j][k]}.ops.mb4d.{rest}"
            # the last stage: Flat sits at index n4d, MB3D blocks after it
            return f"stages.{j}.mps.{arch.blocks[j][k - 1]}.ops.mb3d.block.{rest}"
        return mapping

    # ---- the action space (§4) ------------------------------------------------------------
    @staticmethod
    def mp_scores(probs: Sequence[Sequence[np.ndarray]]) -> List[List[float]]:
        """Importance of every MP: ``(p(MB4D) [+ p(MB3D)]) / p(I)``."""
        return [[float(sum(p[:-1]) / p[-1]) for p in stage] for stage in probs]

    def actions(self, arch: V1Arch, scores: Sequence[Sequence[float]],
                latency: Optional[Callable[[V1Arch], float]] = None
                ) -> List[Tuple[str, V1Arch]]:
        """The three actions from ``arch``. With ``latency`` (the table's prediction), action 3
        narrows the least important stage *whose narrowing saves latency*: on tiny blocks the
        table's noise can price a narrower block above a wider one, and narrowing that stage
        would end the search with nothing left to take."""
        out: List[Tuple[str, V1Arch]] = []
        last = self.stages - 1
        # (1) the least important MP that may go becomes identity
        removable = []
        for j, kept in enumerate(arch.blocks):
            if len(kept) <= 1:
                continue
            for pos, m in enumerate(kept):
                is_mb3d = j == last and pos >= len(kept) - arch.num_vit
                if is_mb3d and arch.num_vit <= 1:
                    continue
                removable.append((scores[j][m], j, pos, m, is_mb3d))
        if removable:
            _, j, pos, m, is_mb3d = min(removable)
            blocks = list(arch.blocks)
            blocks[j] = arch.blocks[j][:pos] + arch.blocks[j][pos + 1:]
            out.append((f"MP {j + 1}.{m + 1} -> identity ({scores[j][m]:.3g})",
                        V1Arch(arch.widths, tuple(blocks), arch.num_vit - int(is_mb3d))))
        # (2) remove the first MB3D
        if arch.num_vit > 1:
            out.append(("first MB3D -> MB4D", V1Arch(arch.widths, arch.blocks,
                                                     arch.num_vit - 1)))
        # (3) narrow the least important stage (sum of its MPs' scores) by one width step
        narrowable = sorted((sum(scores[j][m] for m in kept), j)
                            for j, kept in enumerate(arch.blocks)
                            if arch.widths[j] > self.width_step)
        base = latency(arch) if latency is not None else None
        for score, j in narrowable:
            widths = list(arch.widths)
            widths[j] -= self.width_step
            child = V1Arch(tuple(widths), arch.blocks, arch.num_vit)
            if base is None or latency(child) < base:
                out.append((f"stage {j + 1} width {arch.widths[j]} -> {widths[j]} ({score:.3g})",
                            child))
                break
        return out

    # ---- the paper's comparison: EfficientFormer-L1 scaled by width and depth -------------
    def scaled_l1(self, factor: float) -> V1Net:
        """L1's layout with every width and depth multiplied by ``factor`` (widths rounded to the
        width step, at least one step; depths rounded, at least 1)."""
        step = self.width_step
        widths = tuple(max(step, int(round(w * factor / step)) * step) for w in L1["dims"])
        depths = tuple(max(1, int(round(d * factor))) for d in L1["depths"])
        return V1Net(depths, widths, L1["num_vit"])

    def scaled_l1_family(self, factors: Optional[Sequence[float]] = None) -> List[V1Net]:
        factors = factors if factors is not None else np.arange(0.05, 1.0001, 0.01)
        return list(dict.fromkeys(self.scaled_l1(float(f)) for f in factors))

