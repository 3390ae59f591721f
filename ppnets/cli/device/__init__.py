"""Commands that run on the device itself -- an ARM phone or board -- without ppnets or paddle:
standard library + numpy + paddlelite. They are copied there beside their helpers
(``ppnets deploy device-files``, and every latency grid: ``ppnets lut export-grid``,
``ppnets search ... --export-lite-grid``); see docs/deploy.md.

* ``lite_runner.py``: the latency of one ``.nb`` as a ``ppnets.bench/1`` record (on this host:
  ``ppnets deploy lite-bench``);
* ``lut_device.py``: a latency table timed on the device from an exported grid.
"""
