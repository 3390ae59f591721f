"""`ppnets study efficientformer-observations` as a script, with its run record.

    python reproduce/latency_efficientformer_observations.py  # full run
    python reproduce/latency_efficientformer_observations.py --quick  # pipeline check
    python reproduce/latency_efficientformer_observations.py --runtimes all  # every runtime here
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python reproduce/x.py` from a source checkout
    sys.path.insert(0, REPO)


def main(argv=None) -> int:
    from ppnets.cli.study import run_reproduce_script

    return run_reproduce_script("efficientformer-observations", __file__, argv)


if __name__ == "__main__":
    sys.exit(main())
