"""The command behind scripts/model_table.py and scripts/feature_table.py: print a generated
table, or write it between the marker lines of its docs file (``--write``, atomically)."""
import argparse
import sys


def main(table, argv=None) -> int:
    """``table``: a :class:`ppnets.tools.generated_table.GeneratedTable`."""
    parser = argparse.ArgumentParser(prog=f"python {table.script}",
                                     description="Print or update the generated table "
                                                 f"in docs/{table.doc}.")
    parser.add_argument("--write", action="store_true",
                        help="replace the table in the target file (atomically)")
    parser.add_argument("--target", default=table.table_path(), metavar="FILE",
                        help="the Markdown file with the table's marker lines "
                             f"(default: the checkout's docs/{table.doc})")
    args = parser.parse_args(argv)
    if not args.write:
        print(table.render())
        return 0
    try:
        changed = table.update(args.target)
    except (OSError, ValueError) as exc:
        print(f"error: {args.target}: {exc}", file=sys.stderr)
        return 2
    print(f"{'updated' if changed else 'already current:'} {args.target}", file=sys.stderr)
    return 0
