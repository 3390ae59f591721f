"""Worked examples that use ppnets the way a downstream project does, through its public API.

* :mod:`.segmentation` -- semantic segmentation over a features-only backbone: a minimal FPN and
  head over ``create_model(name, features_only=True)``, trained by :func:`ppnets.engine.fit`
  with a dense task (:class:`~ppnets.examples.segmentation.SegmentationTask`) on a generated
  (synthetic) shapes data set whose masks are exact, then exported whole to Paddle Inference.
"""
