"""EfficientFormerV2 slimmable supernet, trained with the sandwich rule (arXiv:2212.08059, §4).

The supernet is a :class:`.sharing.WeightBank` over the search space's largest network:
elastic depth (a subnet keeps any subset of a stage's blocks -- the paper implements elastic
depth with stochastic drop path, a random subset per step is the same sampling), switchable
widths (nested channels) with one BatchNorm per layer and width, and a per-FFN expansion ratio
(nested hidden channels, with their own BatchNorms). Every subnet is a real
``efficientformerv2_s0``-family model built by ``ppnets.create_model``.

Sandwich rule: every training step runs the largest subnet, the smallest and two random ones
(the paper's max, min, rand-1, rand-2) on the same batch, sums their gradients into the bank
and takes one optimizer step. Each subnet is trained with the plain (label-smoothed) cross
entropy; the paper does not say whether the smaller subnets are distilled from the largest, so
no in-place distillation is used here.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Mapping

import numpy as np
import paddle.nn as nn

from ppnets.engine import StepOutput, TrainParts
from ppnets.engine.step import autocast, backward, optimizer_step

from .data import SearchData, train_supernet
from .sharing import WeightBank
from .space_v2 import V2Arch, V2Net, V2Space

__all__ = ["SlimmableSupernet", "train_supernet_v2"]


class SlimmableSupernet:
    """A :class:`WeightBank` for a :class:`V2Space` and a small cache of built subnets."""

    def __init__(self, space: V2Space, cache_size: int = 8):
        self.space = space
        self.bank = WeightBank(space.build(space.largest().net), space.bn_widths())
        self._models: "OrderedDict[V2Net, nn.Layer]" = OrderedDict()
        self.cache_size = cache_size

    def model(self, arch: V2Arch) -> nn.Layer:
        """The subnet ``arch`` as a ppnets model holding the bank's current weights."""
        net = arch.net
        model = self._models.pop(net, None) or self.space.build(net)
        self._models[net] = model
        while len(self._models) > self.cache_size:
            self._models.popitem(last=False)
        self.bank.load(model, self.space.name_map(arch))
        return model

    def train_step(self, archs: List[V2Arch], images, labels, parts: TrainParts) -> float:
        """The sandwich's forward -> loss -> backward (the engine's pieces of ``parts``) for
        every subnet, their gradients summed into the bank and their BN statistics stored; the
        caller then takes one optimizer step (:func:`ppnets.engine.step.optimizer_step`)."""
        losses = []
        for arch in archs:
            model = self.model(arch)
            model.train()
            with autocast(parts):
                outputs = model(images)
            loss = parts.loss(outputs, labels)
            backward(parts, loss)
            name_map = self.space.name_map(arch)
            self.bank.accumulate(model, name_map)
            self.bank.store_stats(model, name_map)
            model.clear_gradients()
            losses.append(float(loss))
        self.bank.apply_grads()
        return float(np.mean(losses))


def train_supernet_v2(supernet: SlimmableSupernet, cfg: Mapping[str, Any], data: SearchData,
                      recipe: Mapping[str, Any], seed: int, verbose: bool = True
                      ) -> Dict[str, Any]:
    """Sandwich-rule training (``recipe``: ``epochs``, ``batch_size``, ``random_subnets``,
    optional ``max_batches``) through the engine; the bank's weights use ``cfg``'s
    ``optim``/``sched``. What is the supernet's own is the step: the sandwich of subnets."""
    space = supernet.space
    rng = np.random.RandomState(seed)
    fixed = [space.largest(), space.smallest()]
    n_random = int(recipe.get("random_subnets", 2))

    def make_step(parts, total_steps):
        parts.metrics = []   # four subnets per step: no single network's running accuracy

        def step(images, labels):
            archs = fixed + [space.sample(rng) for _ in range(n_random)]
            loss = supernet.train_step(archs, images, labels, parts)
            optimizer_step(parts)
            return StepOutput(loss, [])
        return step

    params = [p for p in supernet.bank.parameters() if not p.stop_gradient]
    info = train_supernet(cfg, data, recipe, seed, supernet.bank, params, make_step, verbose)
    info.update(sandwich=["max", "min"] + [f"rand-{i + 1}" for i in range(n_random)])
    return info
