"""One process of the many-processes tests of the weight cache (test_cache_processes.py).

    python tests/weights/cache_worker.py '<json spec>'

Imports ppnets, prints ``ready``, waits for a line on stdin (so that every process of a test
asks for the weights at the same moment, whatever its start-up took), then builds each model
of the spec with ``create_model(name, pretrained=...)`` and prints one JSON line:
``{name: sha256 of the state dict}``. The spec may add a plain-URL weight (``url``, ``sha256``)
under the tag ``test_url`` of its model, as ``WeightSource`` records of torchvision's are.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys


def state_hash(model) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()


def url_weight(url_source: dict):
    """The ``test_url`` weight of ``url_source["model"]``: a plain URL with its SHA-256."""
    from ppnets.weights.sources import default_weight

    return dataclasses.replace(default_weight(url_source["model"]), tag="test_url", kind="url",
                               hf_hub_id=None, filename=None, revision=None,
                               url=url_source["url"], sha256=url_source["sha256"])


def main() -> None:
    spec = json.loads(sys.argv[1])
    import ppnets
    from ppnets.weights import pretrained

    if spec.get("url_source"):
        src = url_weight(spec["url_source"])
        pretrained.find_weight = lambda name, tag: src
    print("ready", flush=True)
    sys.stdin.readline()
    out = {}
    for name, weights in spec["models"]:
        out[f"{name}:{weights}"] = state_hash(ppnets.create_model(name, pretrained=weights))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
