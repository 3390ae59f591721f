"""EfficientFormer's latency-driven slimming (V1) for your device: supernet, latency table,
greedy slimming to several latency targets, networks that ppnets.create_model builds.

Paper: "EfficientFormer: Vision Transformers at MobileNet Speed", arXiv:2206.01191, §4. The
search is ``ppnets.search.v1``; the recipe is configs/search/efficientformer_cifar10.yaml
(``--config`` another, ``-o key=value`` to change one value). Writes ``search.json`` (the table,
each target's network with predicted and measured latency, the action log), ``search.md``,
``search.png``, ``run_record.json`` and the latency table ``lut_<target>.json`` into
``--output-dir`` (``<output-dir>/smoke`` with ``--smoke``). The same command as ``ppnets search
efficientformer``; see docs/search.md.

    python reproduce/efficientformer_search.py --smoke \
        --data-file ../shared/data/cifar-10-python-partial.tar.gz
    python reproduce/efficientformer_search.py --data-file cifar-10-python.tar.gz \
        --latency-targets-ms 0.5 0.4 0.3 --output-dir outputs/search/v1
    python reproduce/efficientformer_search.py --data-file cifar-10-python.tar.gz \
        --lut lut_arm.json --latency-targets-ms 4 3 2     # a table built on a phone
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppnets.cli.search import script_main  # noqa: E402

SCRIPT = "reproduce/efficientformer_search.py"


def main(argv: Optional[Sequence[str]] = None) -> int:
    return script_main("efficientformer", __doc__.split("\n\n")[0], SCRIPT, argv)


if __name__ == "__main__":
    sys.exit(main())
