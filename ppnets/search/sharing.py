"""Weight sharing between a supernet and its subnets, where every subnet is a real ppnets model.

The searches never re-implement a block: a candidate network is built by
``ppnets.create_model`` and *borrows* the supernet's weights. A ``name_map`` turns each state
name of the subnet (``stages.2.blocks.1.mlp.fc1.weight``) into the supernet's name for the block
it inherits from (after blocks were removed, block 1 may inherit from supernet block 3). A
narrower tensor takes the leading slice of the wider one along every axis (channels ``[:c]``,
hidden units ``[:r * c]``): the usual nested-channel weight sharing of slimmable networks
(Yu et al., ICLR 2019), which EfficientFormerV2's supernet follows (arXiv:2212.08059 §4).

* :func:`inherit` copies weights from a plain state dict (V1: the Gumbel supernet, trained at
  one width; the BatchNorm statistics of a narrower or shallower candidate are then re-estimated
  by :func:`recalibrate_bn`).
* :class:`WeightBank` holds the trainable weights of a slimmable supernet (V2): the largest
  network's tensors plus one BatchNorm per layer *and width* ("switchable BN", Yu et al.): a
  subnet loads from it, trains, gives its gradients back with :meth:`WeightBank.accumulate`
  (summed over the sandwich subnets of a step, then one optimizer step on the bank) and its
  updated BN running statistics with :meth:`WeightBank.store_stats`.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Sequence, Set, Tuple

import numpy as np
import paddle
import paddle.nn as nn
from paddle.nn.layer.norm import _BatchNormBase

__all__ = ["NameMap", "prefix", "inherit", "bn_layers", "recalibrate_bn", "WeightBank"]

NameMap = Callable[[str], str]
_BN_STATES = ("weight", "bias", "_mean", "_variance")


def prefix(shape: Sequence[int]) -> Tuple[slice, ...]:
    return tuple(slice(0, int(n)) for n in shape)


def _check_fits(name: str, src_name: str, small: Sequence[int], big: Sequence[int]) -> None:
    if len(small) != len(big) or any(s > b for s, b in zip(small, big)):
        raise ValueError(f"subnet tensor {name} {list(small)} does not fit in the supernet's "
                         f"{src_name} {list(big)}: the candidate is wider or deeper than the "
                         "supernet it inherits from")


def inherit(subnet: nn.Layer, source: Dict[str, paddle.Tensor], name_map: NameMap) -> None:
    """Copy into every state tensor of ``subnet`` the leading slice of
    ``source[name_map(name)]``."""
    with paddle.no_grad():
        for name, tensor in subnet.state_dict().items():
            src_name = name_map(name)
            src = source[src_name]
            _check_fits(name, src_name, tensor.shape, src.shape)
            tensor.set_value(src[prefix(tensor.shape)])


def bn_layers(model: nn.Layer) -> Dict[str, _BatchNormBase]:
    return {name: layer for name, layer in model.named_sublayers()
            if isinstance(layer, _BatchNormBase)}


def recalibrate_bn(model: nn.Layer, batches: Iterable[np.ndarray]) -> None:
    """Re-estimate every BatchNorm's running mean/variance as the average over ``batches`` (train-
    mode forwards without gradients); leaves the model in eval mode with its momenta restored."""
    layers = list(bn_layers(model).values())
    momenta = [bn._momentum for bn in layers]
    model.train()
    try:
        with paddle.no_grad():
            for i, x in enumerate(batches):
                for bn in layers:  # running = m * running + (1 - m) * batch: m = i/(i+1) averages
                    bn._momentum = i / (i + 1)
                model(paddle.to_tensor(x))
    finally:
        for bn, m in zip(layers, momenta):
            bn._momentum = m
        model.eval()


class WeightBank(nn.Layer):
    """Trainable shared weights of a slimmable supernet (see the module docstring).

    ``largest`` is the supernet's largest network (a ppnets model); its state names are the
    bank's names. ``bn_widths`` maps each of its BatchNorm layers to every channel count a subnet
    can give it (from the search space): one BN (affine and running statistics) per count.
    """

    def __init__(self, largest: nn.Layer, bn_widths: Dict[str, Set[int]]):
        super().__init__()
        self._names: List[str] = []
        self._tensors: Dict[str, paddle.Tensor] = {}
        bn_names = set(bn_layers(largest))
        unknown = set(bn_widths) - bn_names
        if unknown:
            raise ValueError(f"bn_widths names layers that are not BatchNorms of the largest "
                             f"network: {sorted(unknown)[:5]}")
        self._bn = {name: sorted(bn_widths.get(name, ())) for name in bn_names}
        state = largest.state_dict()
        trainable = {name for name, p in largest.named_parameters() if not p.stop_gradient}
        for name, tensor in state.items():
            owner, _, leaf = name.rpartition(".")
            if owner in self._bn and leaf in _BN_STATES:
                continue  # kept per width below
            self._add(name, tensor.numpy(), name in trainable)
        for owner, widths in self._bn.items():
            full = {leaf: state[f"{owner}.{leaf}"].numpy() for leaf in _BN_STATES}
            for c in sorted(set(widths) | {full["weight"].shape[0]}):
                for leaf in _BN_STATES:
                    self._add(self.bn_key(owner, c, leaf), full[leaf][:c], leaf in
                              ("weight", "bias"))
        self._grads: Dict[str, paddle.Tensor] = {}

    @staticmethod
    def bn_key(owner: str, channels: int, leaf: str) -> str:
        return f"{owner}@{channels}.{leaf}"

    def _add(self, name: str, value: np.ndarray, trainable: bool) -> None:
        t = self.create_parameter(list(value.shape), dtype=str(value.dtype),
                                  default_initializer=nn.initializer.Assign(value))
        t.stop_gradient = not trainable
        # state names hold dots; parameters are registered under an attribute-safe name
        self.add_parameter(f"p{len(self._names)}", t)
        self._names.append(name)
        self._tensors[name] = t

    def _source(self, sub_name: str, name_map: NameMap, shape) -> Tuple[str, Tuple[slice, ...]]:
        """(bank name, slices) that the subnet state ``sub_name`` of ``shape`` maps to."""
        src = name_map(sub_name)
        owner, _, leaf = src.rpartition(".")
        if owner in self._bn and leaf in _BN_STATES:
            key = self.bn_key(owner, int(shape[0]), leaf)
            if key not in self._tensors:
                raise KeyError(f"no switchable BatchNorm {owner} for {shape[0]} channels (has "
                               f"{self._bn[owner]}): the search space and the bank disagree")
            return key, prefix(shape)
        _check_fits(sub_name, src, shape, self._tensors[src].shape)
        return src, prefix(shape)

    def load(self, subnet: nn.Layer, name_map: NameMap) -> None:
        """Copy the bank's weights (and per-width BN statistics) into ``subnet``."""
        with paddle.no_grad():
            for name, tensor in subnet.state_dict().items():
                key, sl = self._source(name, name_map, tensor.shape)
                tensor.set_value(self._tensors[key][sl])

    def accumulate(self, subnet: nn.Layer, name_map: NameMap) -> None:
        """Add the gradients of ``subnet``'s parameters to the bank's (leading slices)."""
        with paddle.no_grad():
            for name, p in subnet.named_parameters():
                if p.grad is None:
                    continue
                key, sl = self._source(name, name_map, p.shape)
                if key not in self._grads:
                    self._grads[key] = paddle.zeros_like(self._tensors[key])
                self._grads[key][sl] = self._grads[key][sl] + p.grad

    def store_stats(self, subnet: nn.Layer, name_map: NameMap) -> None:
        """Write ``subnet``'s BatchNorm running statistics back to the per-width copies."""
        with paddle.no_grad():
            for owner, bn in bn_layers(subnet).items():
                for leaf in ("_mean", "_variance"):
                    tensor = getattr(bn, leaf)
                    key, _ = self._source(f"{owner}.{leaf}", name_map, tensor.shape)
                    self._tensors[key].set_value(tensor)

    def apply_grads(self) -> None:
        """Hand the accumulated gradients to the bank's parameters (for ``optimizer.step()``)."""
        for key, grad in self._grads.items():
            self._tensors[key].grad = grad
        self._grads = {}

    def state_of(self, name: str) -> paddle.Tensor:
        return self._tensors[name]
