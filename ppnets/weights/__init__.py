"""Published weights of the registered models (written in each family file beside its
variants): looking them up (:mod:`.sources`: ``weights_for``, ``default_weight``,
``find_weight``), fetching (:mod:`.fetch`) and the converted cache (:mod:`.pretrained`) behind
``create_model(name, pretrained=True)``."""
from .sources import (NO_WEIGHTS, SOURCES, WeightNotFoundError, WeightSource, default_weight,
                      find_weight, weights_for)

__all__ = ["WeightSource", "WeightNotFoundError", "SOURCES", "NO_WEIGHTS", "weights_for",
           "default_weight", "find_weight"]
