"""Experiments: the training studies of the papers, run by the thin scripts of ``reproduce/``.

* :mod:`.options` -- the shared command line (``--data-file``, ``--output-dir``, ``-o``, ...);
* :mod:`.record` -- the run record (command, git commit, machine, times) and result files;
* :mod:`.training` -- a table of config rows trained with :func:`ppnets.engine.fit` and
  tabulated beside the paper (the ablation and ImageNet scripts);
* :mod:`.spconv_cifar10` -- the SPConv paper's CIFAR-10 experiments;
* :mod:`.int8` -- the INT8 (PaddleSlim PTQ / QAT) study on real CIFAR-10 images.
"""
from . import int8, spconv_cifar10  # noqa: F401
from .options import add_imagenet_options, add_variant_options, build_parser, common_overrides
from .record import RunRecord, provenance_lines, save_json, save_text
from .training import BASE_COLUMNS, Variant, cifar_data, imagenet_data, published, run_variants

__all__ = ["add_imagenet_options", "add_variant_options", "build_parser", "common_overrides",
           "RunRecord", "provenance_lines", "save_json", "save_text", "BASE_COLUMNS", "Variant",
           "cifar_data", "imagenet_data", "published", "run_variants", "int8", "spconv_cifar10"]
