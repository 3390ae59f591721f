"""Print or update the generated table of feature maps (one row per registered model).

    python scripts/feature_table.py                      # print the table
    python scripts/feature_table.py --write              # update it in docs/features.md
    python scripts/feature_table.py --write --target OTHER.md

The table goes between the marker lines of the target file (``ppnets.tools.feature_table``); a
test fails when the committed file is out of date.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing

from _generated_table_command import main  # noqa: E402  (scripts/, this file's folder)
from ppnets.tools.feature_table import TABLE  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(TABLE))
