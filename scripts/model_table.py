"""Print or update the generated model table (one row per registered model).

    python scripts/model_table.py                        # print the table
    python scripts/model_table.py --write                # update it in docs/models.md
    python scripts/model_table.py --write --target OTHER.md

The table goes between the marker lines of the target file (``ppnets.tools.model_table``); a
test fails when the committed file is out of date.
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing

from ppnets.tools import model_table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/model_table.py",
                                     description="Print or update the generated model table.")
    parser.add_argument("--write", action="store_true",
                        help="replace the table in the target file (atomically)")
    parser.add_argument("--target", default=model_table.table_path(), metavar="FILE",
                        help="the Markdown file with the table's marker lines "
                             "(default: the checkout's docs/models.md)")
    args = parser.parse_args(argv)
    if not args.write:
        print(model_table.render())
        return 0
    try:
        changed = model_table.update(args.target)
    except (OSError, ValueError) as exc:
        print(f"error: {args.target}: {exc}", file=sys.stderr)
        return 2
    print(f"{'updated' if changed else 'already current:'} {args.target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
