"""``python -m ppnets.convert`` is now ``ppnets convert`` (commands live in ppnets.cli)."""
import sys

print("error: python -m ppnets.convert is now `ppnets convert ...` (the same options)",
      file=sys.stderr)
sys.exit(2)
