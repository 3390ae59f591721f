"""INT8 with PaddleSlim (PTQ and QAT) measured on real CIFAR-10 images: the study of
``ppnets.experiments.int8`` (what it runs and records is in its docstring; docs/deploy.md "INT8").

    python reproduce/int8_quantization.py \
        --data-file ../shared/data/cifar-10-python-partial.tar.gz \
        --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 repvgg_a0 mobileone_s0 \
        --epochs 4 --qat-epochs 1 --output-dir results/deploy/int8
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppnets.experiments import int8  # noqa: E402

if __name__ == "__main__":
    sys.exit(int8.main(script="reproduce/int8_quantization.py"))
