"""``python -m ppnets.analysis``: the same command as ``ppnets complexity``."""
import sys

from ppnets.cli.common import run_command

sys.exit(run_command("ppnets.cli.complexity", prog="python -m ppnets.analysis"))
