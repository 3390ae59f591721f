"""Print or update the generated table of feature maps (one row per registered model).

    python scripts/feature_table.py                      # print the table
    python scripts/feature_table.py --write              # update it in docs/features.md
    python scripts/feature_table.py --write --target OTHER.md

The table goes between the marker lines of the target file (``ppnets.tools.feature_table``); a
test fails when the committed file is out of date.
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a source checkout without installing

from ppnets.tools import feature_table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/feature_table.py",
                                     description="Print or update the generated table of "
                                                 "feature maps.")
    parser.add_argument("--write", action="store_true",
                        help="replace the table in the target file (atomically)")
    parser.add_argument("--target", default=feature_table.table_path(), metavar="FILE",
                        help="the Markdown file with the table's marker lines "
                             "(default: the checkout's docs/features.md)")
    args = parser.parse_args(argv)
    if not args.write:
        print(feature_table.render())
        return 0
    try:
        changed = feature_table.update(args.target)
    except (OSError, ValueError) as exc:
        print(f"error: {args.target}: {exc}", file=sys.stderr)
        return 2
    print(f"{'updated' if changed else 'already current:'} {args.target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
