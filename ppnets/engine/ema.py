"""Model EMA (``train.ema_decay``): an exponential moving average of the weights.

After every optimizer step (:func:`ppnets.engine.step.optimizer_step`) ``ema = decay * ema +
(1 - decay) * weights`` for every floating-point entry of ``net.state_dict()`` -- parameters and
BN running statistics alike, as timm's ``ModelEmaV2`` (used by the MobileOne/RepViT/
EfficientFormer recipes via their timm-based training scripts) does; integer entries are
copied. The average starts from the initial weights. At every evaluation the engine also
evaluates the averaged weights (``val_top1_ema`` / ``val_top5_ema`` in the history,
``final_top1_ema`` in the results); the raw model's accuracy still drives ``best.pdparams``.
The average is saved inside each epoch checkpoint (the optimizer file, key ``ema_state``), so a
resumed run continues it exactly, and as ``checkpoints/ema.pdparams`` (the latest average,
loadable like any state dict).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict

import paddle

__all__ = ["ModelEma"]


class ModelEma:
    def __init__(self, net: paddle.nn.Layer, decay: float):
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1), e.g. 0.9998, got {decay!r}")
        self.net = net
        self.decay = float(decay)
        self.shadow: Dict[str, paddle.Tensor] = {k: v.detach().clone()
                                                 for k, v in net.state_dict().items()}

    @paddle.no_grad()
    def update(self) -> None:
        d = self.decay
        for k, v in self.net.state_dict().items():
            s = self.shadow[k]
            if paddle.is_floating_point(v):
                s.set_value(s * d + v.detach().astype(s.dtype) * (1.0 - d))
            else:
                s.set_value(v.detach())

    def state_dict(self) -> Dict[str, paddle.Tensor]:
        return dict(self.shadow)

    def set_state_dict(self, state) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}... (was it saved from another "
                           "model?)")
        for k, s in self.shadow.items():
            s.set_value(paddle.to_tensor(state[k]).astype(s.dtype))

    @contextmanager
    def applied(self):
        """Temporarily load the averaged weights into the network (for evaluation)."""
        backup = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.set_state_dict(self.shadow)
        try:
            yield self.net
        finally:
            self.net.set_state_dict(backup)
