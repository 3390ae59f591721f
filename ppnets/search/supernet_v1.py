"""EfficientFormer (V1) supernet of MetaPaths, trained with Gumbel-softmax (arXiv:2206.01191, §4,
search step 1).

Every block of the supernet is a MetaPath (MP): MB4D or identity in stages 1-3, MB4D, MB3D or
identity in the last stage (see :mod:`.space_v1` for why MB3D is offered in the last stage
only). An MP's output is the Gumbel-softmax mixture of its candidates (the paper's eq. 7)::

    X_{i+1} = sum_n softmax((alpha_i + g_i) / tau)_n * MP_i^n(X_i),   g ~ Gumbel(0, 1)

with one vector ``alpha_i`` of architecture parameters per MP, trained jointly with the network
weights (one loss, both optimised every step). The paper writes the noise as
``epsilon ~ U(0, 1)``; here it is the Gumbel noise ``-log(-log u)``, ``u ~ U(0, 1)``, of the
Gumbel-softmax estimator it cites (Jang et al., 2017). The temperature anneals exponentially
from ``tau_start`` to ``tau_end`` over training (the paper gives no schedule). In eval mode the
mixture uses ``softmax(alpha / tau)`` without noise.

The supernet is built from the model's own blocks (``Stem``, ``Downsample``, ``Meta4D``,
``Meta3D`` of ``ppnets.models.efficientformer``), so a searched network inherits their weights
unchanged (:meth:`.space_v1.V1Space.name_map`). MB3D works on tokens: inside an MP it flattens
the 4D map, runs Meta3D and folds the tokens back, so the mixture stays 4D. The head is the
model's: LayerNorm on the tokens, token mean, average of ``head`` and ``head_dist``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import paddle
import paddle.nn as nn

from ppnets.engine import train_step
from ppnets.layers import init_trunc_normal
from ppnets.models.efficientformer import Downsample, Flat, Meta3D, Meta4D, Stem

from .data import SearchData, train_supernet
from .space_v1 import V1Head, V1Space

__all__ = ["gumbel_noise", "temperature", "GumbelMix", "TokensBlock", "V1Supernet",
           "train_supernet_v1"]


def gumbel_noise(shape) -> paddle.Tensor:
    """Standard Gumbel samples ``-log(-log u)``, ``u ~ U(0, 1)``."""
    u = paddle.uniform(shape, min=1e-10, max=1.0 - 1e-7)
    return -paddle.log(-paddle.log(u))


def temperature(progress: float, start: float, end: float) -> float:
    """Exponential annealing: ``start`` at progress 0, ``end`` at progress 1."""
    return float(start * (end / start) ** min(max(progress, 0.0), 1.0))


class GumbelMix(nn.Layer):
    """A MetaPath: candidates (``None`` = identity) mixed with Gumbel-softmax weights over its
    architecture parameters ``alpha`` (one per candidate, initialised equal)."""

    def __init__(self, ops: Mapping[str, Optional[nn.Layer]]):
        super().__init__()
        self.choices = list(ops)
        self.ops = nn.LayerDict({k: v for k, v in ops.items() if v is not None})
        self.alpha = self.create_parameter([len(self.choices)],
                                           default_initializer=nn.initializer.Constant(0.0))

    def weights(self, tau: float, noise: bool) -> paddle.Tensor:
        logits = self.alpha + gumbel_noise(self.alpha.shape) if noise else self.alpha
        return nn.functional.softmax(logits / tau)

    def probabilities(self) -> np.ndarray:
        """``softmax(alpha)``: the probability of each candidate (the paper's importance)."""
        a = self.alpha.numpy().astype(np.float64)
        e = np.exp(a - a.max())
        return e / e.sum()

    def forward(self, x, tau: float = 1.0):
        w = self.weights(tau, noise=self.training)
        out = 0
        for i, name in enumerate(self.choices):
            out = out + w[i] * (x if name == "identity" else self.ops[name](x))
        return out


class TokensBlock(nn.Layer):
    """MB3D inside a 4D supernet: (N, C, H, W) -> tokens -> Meta3D -> (N, C, H, W)."""

    def __init__(self, dim: int, side: int, img_size: int, mlp_ratio: float):
        super().__init__()
        self.side = side
        self.flat = Flat((side, side), img_size)
        self.block = Meta3D(dim, mlp_ratio=mlp_ratio, resolution=(side, side))

    def forward(self, x):
        tokens = self.block(self.flat(x))
        return tokens.transpose([0, 2, 1]).reshape([0, 0, self.side, self.side])


class _SuperStage(nn.Layer):
    def __init__(self, downsample: nn.Layer, mps: List[GumbelMix]):
        super().__init__()
        self.downsample = downsample
        self.mps = nn.LayerList(mps)


class V1Supernet(nn.Layer):
    """The supernet of a :class:`V1Space` at its largest widths and depths."""

    def __init__(self, space: V1Space):
        super().__init__()
        self.space, w = space, space.widths
        self.tau = 1.0
        self.stem = Stem(3, w[0])
        stages = []
        for j in range(space.stages):
            ops = {"mb4d": lambda: Meta4D(w[j], mlp_ratio=space.mlp_ratio)}
            if "mb3d" in space.choices(j):
                ops["mb3d"] = lambda: TokensBlock(w[j], space.sides[j], space.img_size,
                                                  space.mlp_ratio)
            mps = [GumbelMix({**{k: make() for k, make in ops.items()}, "identity": None})
                   for _ in range(space.depths[j])]
            stages.append(_SuperStage(Downsample(w[j - 1], w[j]) if j else nn.Identity(), mps))
        self.stages = nn.LayerList(stages)
        head = V1Head(w[-1], space.num_classes)   # parameter names as the model's
        self.norm, self.head, self.head_dist = head.norm, head.head, head.head_dist
        init_trunc_normal(self)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage.downsample(x)
            for mp in stage.mps:
                x = mp(x, self.tau)
        x = self.norm(x.flatten(2).transpose([0, 2, 1])).mean(axis=1)
        return (self.head(x) + self.head_dist(x)) / 2

    def mps(self) -> List[List[GumbelMix]]:
        return [list(stage.mps) for stage in self.stages]

    def probabilities(self) -> List[List[np.ndarray]]:
        return [[mp.probabilities() for mp in stage] for stage in self.mps()]

    def arch_parameters(self) -> List[paddle.Tensor]:
        return [mp.alpha for stage in self.mps() for mp in stage]

    def weight_parameters(self) -> List[paddle.Tensor]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]


def train_supernet_v1(supernet: V1Supernet, cfg: Mapping[str, Any], data: SearchData,
                      recipe: Mapping[str, Any], seed: int, verbose: bool = True
                      ) -> Dict[str, Any]:
    """Train weights and architecture parameters jointly (``recipe``: ``epochs``,
    ``batch_size``, ``alpha_lr``, ``alpha_weight_decay``, ``tau_start``, ``tau_end``,
    optional ``max_batches``): the engine's step (:func:`ppnets.engine.train_step`) with the
    weights under ``cfg``'s ``optim``/``sched``; what is the supernet's own is the optimizer of
    alpha, stepped with the weights', and the temperature of each step."""
    taus: List[float] = []

    def make_step(parts, total_steps):
        parts.extra_optimizers = (paddle.optimizer.Adam(
            learning_rate=float(recipe["alpha_lr"]), beta1=0.5, beta2=0.999,
            parameters=supernet.arch_parameters(),
            weight_decay=float(recipe.get("alpha_weight_decay") or 0.0) or None),)

        def step(images, labels):
            supernet.tau = temperature(len(taus) / max(total_steps, 1),
                                       float(recipe["tau_start"]), float(recipe["tau_end"]))
            taus.append(supernet.tau)
            return train_step(parts, images, labels)
        return step

    info = train_supernet(cfg, data, recipe, seed, supernet, supernet.weight_parameters(),
                          make_step, verbose)
    supernet.eval()
    info.update(tau_start=taus[0] if taus else None, tau_end=taus[-1] if taus else None,
                alpha_lr=float(recipe["alpha_lr"]),
                probabilities=[[p.round(4).tolist() for p in stage]
                               for stage in supernet.probabilities()])
    return info
