"""Published weights of the registered models: where they are and how they were evaluated.

``ppnets.weights.sources`` is the table (``weights_for``, ``default_weight``, ``find_weight``);
downloading, converting and caching build on it.
"""
from .sources import (NO_WEIGHTS, SOURCES, WeightNotFoundError, WeightSource, default_weight,
                      find_weight, weights_for)

__all__ = ["WeightSource", "WeightNotFoundError", "SOURCES", "NO_WEIGHTS", "weights_for",
           "default_weight", "find_weight"]
