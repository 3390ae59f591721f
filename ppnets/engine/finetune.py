"""Fine-tuning controls: frozen parameters and layer-wise learning-rate decay.

* :func:`freeze` -- ``"backbone"`` (everything but the classifier: a linear probe) or a list
  of parameter-name prefixes (``["stem", "stages.0"]``: frozen early stages). Frozen parameters
  get ``stop_gradient`` and leave the optimizer; a BatchNorm whose parameters are all frozen
  also keeps its running statistics (it normalises with them in training too), so a frozen
  part computes exactly what the pretrained network computed.
* :func:`apply_layer_decay` -- the learning rate of a parameter is multiplied by
  ``decay ** (depth of the head - depth of the parameter)``, depth counted in stages (stem 0,
  ``stages.i`` / ``layeri`` / ``blocks.i`` i + 1, the classifier last), as BEiT and timm's
  ``layer_decay`` fine-tune: early, generic features move least.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Union

import paddle
import paddle.nn as nn

from ppnets.weights.pretrained import classifier_keys

__all__ = ["freeze", "trainable_parameters", "layer_ids", "apply_layer_decay"]

_STAGE = re.compile(r"(?:^|\.)(?:stages|blocks|features|network)\.(\d+)\.|(?:^|\.)layer(\d+)\.")


def freeze(model: nn.Layer, spec: Union[None, str, Sequence[str]]) -> List[str]:
    """Freeze ``model``'s parameters named by ``spec``; returns their names."""
    if not spec:
        return []
    params = dict(model.named_parameters())
    if spec == "backbone":
        heads = set(classifier_keys(model))
        names = [n for n in params if n not in heads]
    elif isinstance(spec, str):
        raise ValueError(f"model.freeze={spec!r}: expected 'backbone' or a list of parameter-name "
                         "prefixes such as ['stem', 'stages.0']")
    else:
        names = [n for n in params if any(n == p or n.startswith(p + ".") for p in spec)]
        unmatched = [p for p in spec if not any(n == p or n.startswith(p + ".") for n in params)]
        if unmatched:
            raise ValueError(f"model.freeze: {unmatched} match no parameter of this model; its "
                             f"top-level parts are {sorted({n.split('.')[0] for n in params})}")
    frozen = set(names)
    for name in names:
        params[name].stop_gradient = True
    for prefix, layer in model.named_sublayers():
        if isinstance(layer, (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm)):
            own = [f"{prefix}.{n}" for n, _ in layer.named_parameters()]
            if own and all(n in frozen for n in own):
                layer._use_global_stats = True
    return names


def trainable_parameters(model: nn.Layer) -> List[paddle.Tensor]:
    return [p for p in model.parameters() if not p.stop_gradient]


def layer_ids(model: nn.Layer) -> Dict[str, int]:
    """Parameter name -> depth: 0 for the stem, i + 1 for stage i (layers after the last stage,
    such as a final norm or conv, share its depth), the deepest for the classifier."""
    heads = set(classifier_keys(model))
    ids: Dict[str, int] = {}
    depth = 0
    for name, _ in model.named_parameters():  # in definition order: stem, stages, head
        m = _STAGE.search(name)
        if m:
            depth = int(m.group(1) or m.group(2)) + 1
        ids[name] = depth
    top = max(ids.values(), default=0) + 1
    for name in ids:
        if name in heads:
            ids[name] = top
    return ids


def apply_layer_decay(model: nn.Layer, decay: float) -> Dict[str, float]:
    """Set each parameter's learning-rate multiplier (``optimize_attr['learning_rate']``,
    which Paddle's optimizers apply) to ``decay ** (top - depth)``; returns the multipliers."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"optim.layer_decay must be in (0, 1], got {decay}")
    ids = layer_ids(model)
    top = max(ids.values(), default=0)
    scales = {name: decay ** (top - depth) for name, depth in ids.items()}
    for name, param in model.named_parameters():
        param.optimize_attr["learning_rate"] = scales[name]
    return scales
