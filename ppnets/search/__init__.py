"""Latency-driven architecture search for EfficientFormer: the V1 slimming and the V2 MES search
that the papers describe (arXiv:2206.01191 §4, arXiv:2212.08059 §4) and the authors did not
release. See docs/search.md.

* :mod:`.lut` (latency table of a target: Paddle Inference CPU/GPU via ``ppnets.bench``, or a
  Paddle Lite table built on the device by ``lut_device.py`` of ``ppnets/cli/device/``),
  :mod:`.mes` (the V2 score), :mod:`.slimming` (the greedy loop shared by both),
  :mod:`.sharing` (weight inheritance);
* V1: :mod:`.space_v1`, :mod:`.supernet_v1`, :mod:`.v1`; V2: :mod:`.space_v2`,
  :mod:`.supernet_v2`, :mod:`.v2`; :mod:`.runner` (options, measurement, baselines, result
  files) and :mod:`.data` (held-out split, supernet training through the engine) serve both.
  The command is ``ppnets search efficientformer|efficientformerv2`` (:mod:`ppnets.cli.search`).
"""
