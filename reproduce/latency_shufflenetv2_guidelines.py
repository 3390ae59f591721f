"""Latency study: see docs/latency_studies.md and `ppnets.studies.shufflenetv2_guidelines`.

    python reproduce/latency_shufflenetv2_guidelines.py                 # full run on this CPU (a few minutes)
    python reproduce/latency_shufflenetv2_guidelines.py --quick         # pipeline check: subset, 3 repeats
    python reproduce/latency_shufflenetv2_guidelines.py --device cpu gpu --arm-results arm.json
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python reproduce/x.py` from a source checkout
    sys.path.insert(0, REPO)


def main(argv=None) -> int:
    from ppnets.studies.study import run_latency_study
    from ppnets.studies.shufflenetv2_guidelines import main as study_main

    return run_latency_study(__file__, study_main, argv)


if __name__ == "__main__":
    sys.exit(main())
