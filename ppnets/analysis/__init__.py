"""Model complexity: parameters, MACs (FLOPs = 2 x MACs) and memory access cost.

    from ppnets.analysis import profile_model
    prof = profile_model(model, input_size=(3, 224, 224))
    print(prof.table())

Command line: ``ppnets complexity --models NAME [NAME ...]``. Conventions and the
differences with ``paddle.flops`` are in docs/complexity.md.
"""
from .complexity import (BYTES_PER_ELEMENT, LayerStat, ModelProfile, count_params, einsum_macs,
                         profile_model)

__all__ = ["profile_model", "ModelProfile", "LayerStat", "count_params", "einsum_macs",
           "BYTES_PER_ELEMENT"]
