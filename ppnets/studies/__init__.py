"""The papers' latency studies (docs/latency_studies.md).

One module per study, each with ``main(argv, record=None)``; ``reproduce/latency_*.py`` are the
commands. Shared pieces: :mod:`ppnets.studies.study` (measure through :mod:`ppnets.bench`, merge
device results, write JSON + Markdown + PNG atomically) and :mod:`ppnets.studies.published`
(the papers' numbers, sourced).
"""
STUDIES = {
    "latency_fasternet_table1": "ppnets.studies.fasternet_table1",
    "latency_shufflenetv2_guidelines": "ppnets.studies.shufflenetv2_guidelines",
    "latency_mobileone_blocks": "ppnets.studies.mobileone_blocks",
    "latency_efficientformer_observations": "ppnets.studies.efficientformer_observations",
    "latency_zoo": "ppnets.studies.zoo",
}

__all__ = ["STUDIES"]
