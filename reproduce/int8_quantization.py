"""INT8 post-training quantization and quantization-aware training with PaddleSlim, measured on
real CIFAR-10 images (ppnets.deploy.quant; docs/deploy.md "INT8").

    python reproduce/int8_quantization.py \
        --data-file ../shared/data/cifar-10-python-partial.tar.gz \
        --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 repvgg_a0 \
        --epochs 3 --qat-epochs 1 --output-dir results/deploy/int8

Per model, each in its own process (PaddleSlim switches Paddle to static mode):

1. FP32: ``ppnets.engine.fit`` from scratch at 32x32 (Adam 1e-3, constant LR, batch 64), then
   the deploy form (``reparameterize_model``) is evaluated on the test split;
2. PTQ: legacy export of the deploy form -> ``quant_post_static`` (hist, per-channel weights),
   calibrated on ``--calib-images`` training images -> top-1 of the INT8-simulated program;
   for re-parameterizable models also per-tensor weights (``abs_max``: the setting in which the
   RepVGG/MobileOne INT8 collapse is usually reported) and PTQ of the *train form* (un-fused
   branches, each quantized separately) as a mitigation probe;
3. QAT: ``paddleslim.QAT`` on the trained model, fine-tuned ``--qat-epochs`` with the engine;
   for re-parameterizable models on the fused deploy form (QAT of the deployed weights,
   the mitigation of Ding et al.'s RepOpt / Chu et al.'s QARepVGG papers in its simplest form).

Writes ``<output-dir>/<model>.json`` and ``<output-dir>/int8_results.json`` + ``.md``. Each
per-model JSON carries its provenance (``run``: machine, git commit, command, times; ``data``:
file, md5, image counts; ``epochs``, ``qat_epochs``, ``max_steps_per_epoch``, the
``steps_per_epoch`` actually run and the ``full_steps_per_epoch`` of the data) and the FP32
model's prediction spread (``fp32_predictions``): a model that predicts one class for every test image is marked
``degenerate`` and its deltas are not reported as results. The table reads its labels from
these fields. The CIFAR-10 subset (4,829 train / 932 test images) is NOT a benchmark:
accuracies are for the before/after comparison only.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppnets.experiments import int8  # noqa: E402

if __name__ == "__main__":
    sys.exit(int8.main(script="reproduce/int8_quantization.py"))
