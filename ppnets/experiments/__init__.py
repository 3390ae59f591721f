"""Experiments: the training studies of the papers, run by the thin scripts of ``reproduce/``.

* :mod:`.options` -- :class:`ExperimentOptions`, the environment of a run (data, output folder,
  device, config overrides, smoke, ...; the command lines that fill it are
  :mod:`ppnets.cli.experiment`'s);
* :mod:`.record` -- the run record (command, git commit, machine, times) and result files;
* :mod:`.training` -- a table of config rows trained with :func:`ppnets.engine.fit` and
  tabulated beside the paper (the ablation and ImageNet scripts);
* :mod:`.spconv_cifar10` -- the SPConv paper's CIFAR-10 experiments;
* :mod:`.zoo_accuracy` -- the ImageNet accuracy table of the published weights;
* :mod:`.int8` -- the INT8 (PaddleSlim PTQ / QAT) study on real CIFAR-10 images.
"""
from .options import ExperimentError, ExperimentOptions
from .record import RunRecord, provenance_lines, save_json, save_text
from .training import BASE_COLUMNS, Variant, cifar_data, imagenet_data, published, run_variants

__all__ = ["ExperimentOptions", "ExperimentError", "RunRecord", "provenance_lines", "save_json",
           "save_text", "BASE_COLUMNS", "Variant", "cifar_data", "imagenet_data", "published",
           "run_variants"]
