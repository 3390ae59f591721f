"""`ppnets study x86-precision` as a script, with its run record: bf16 and INT8 beside fp32 on
Paddle Inference, ONNX Runtime and OpenVINO, latency and top-1 (docs/deploy.md).

    python reproduce/x86_precision.py --pretrained W --list-file LIST          # full run
    python reproduce/x86_precision.py --pretrained W --list-file LIST --smoke  # pipeline check
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python reproduce/x.py` from a source checkout
    sys.path.insert(0, REPO)


def main(argv=None) -> int:
    from ppnets.cli.study_precision import run_reproduce_script

    return run_reproduce_script(__file__, argv)


if __name__ == "__main__":
    sys.exit(main())
