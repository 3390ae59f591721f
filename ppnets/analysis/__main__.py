"""``python -m ppnets.analysis`` is now ``ppnets complexity`` (commands live in ppnets.cli)."""
import sys

print("error: python -m ppnets.analysis is now `ppnets complexity ...` (the same options)",
      file=sys.stderr)
sys.exit(2)
