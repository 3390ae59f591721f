"""``python -m ppnets.convert``: the same command as ``ppnets convert``."""
import sys

from ppnets.cli.common import run_command

sys.exit(run_command("ppnets.cli.convert", prog="python -m ppnets.convert"))
