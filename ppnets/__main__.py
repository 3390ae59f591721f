"""``python -m ppnets <command> ...``: the ``ppnets`` command without its console script."""
import sys

from ppnets.cli.main import main

sys.exit(main())
