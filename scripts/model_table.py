"""Print or update the generated model table (one row per registered model).

    python scripts/model_table.py                        # print the table
    python scripts/model_table.py --write                # update it in docs/models.md
    python scripts/model_table.py --write --target OTHER.md

The table goes between the marker lines of the target file (``ppnets.tools.model_table``); a
test fails when the committed file is out of date.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing

from _generated_table_command import main  # noqa: E402  (scripts/, this file's folder)
from ppnets.tools.model_table import TABLE  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(TABLE))
