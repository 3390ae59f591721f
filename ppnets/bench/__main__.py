"""``python -m ppnets.bench``: the same command as ``ppnets bench``."""
import sys

from ppnets.cli.common import run_command

sys.exit(run_command("ppnets.cli.bench", prog="python -m ppnets.bench"))
