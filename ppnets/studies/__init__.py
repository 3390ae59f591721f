"""The papers' latency studies (docs/latency_studies.md): ``ppnets study NAME``.

One module per study, each defining ``measure``, ``judge``, ``describe``, ``render`` and
``figure`` and registering them as a :class:`~ppnets.studies.study.Study` in :data:`STUDIES`;
``reproduce/latency_*.py`` run the same code. Shared pieces: :mod:`ppnets.studies.study`
(options, the runner that measures through :mod:`ppnets.bench` on each runtime asked for, judges
each runtime alone, merges device results and writes JSON + Markdown + PNG atomically) and
:mod:`ppnets.studies.published` (the papers' numbers, sourced).

    from ppnets.studies import StudyOptions, run_study
    result = run_study("fasternet-table1", StudyOptions(
        quick=True, output_dir="/tmp/t1", runtimes=("paddle_inference", "onnxruntime")))
    result.doc["runtimes"]["onnxruntime"]["pconv_over_dwconv"], result.paths["markdown"]
    result.doc["claims_by_runtime"]     # does each claim hold, per runtime
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from . import efficientformer_observations, fasternet_table1, mobileone_blocks
from . import shufflenetv2_guidelines, zoo
from .study import Study, StudyError, StudyOptions, StudyResult

# name (``ppnets study NAME``) -> study, in the order ``ppnets study --list`` shows them
STUDIES: Dict[str, Study] = {s.name: s for s in (
    fasternet_table1.STUDY, shufflenetv2_guidelines.STUDY, mobileone_blocks.STUDY,
    efficientformer_observations.STUDY, zoo.STUDY)}


def get_study(name: str) -> Study:
    """The registered study ``name``; a KeyError that lists the names otherwise."""
    try:
        return STUDIES[name]
    except KeyError:
        raise KeyError(f"no study {name!r}; the studies are {', '.join(STUDIES)} "
                       "(ppnets study --list)") from None


def run_study(name: str, options: Optional[StudyOptions] = None, *,
              command: Optional[str] = None,
              run_record: Optional[Dict[str, Any]] = None) -> StudyResult:
    """Run the study ``name`` (:meth:`Study.run`); ``options`` default to the study's own."""
    return get_study(name).run(options, command=command, run_record=run_record)


__all__ = ["STUDIES", "Study", "StudyError", "StudyOptions", "StudyResult", "get_study",
           "run_study"]
