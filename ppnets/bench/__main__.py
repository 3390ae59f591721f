"""``python -m ppnets.bench`` is now ``ppnets bench`` (commands live in ppnets.cli)."""
import sys

print("error: python -m ppnets.bench is now `ppnets bench ...` (the same options)",
      file=sys.stderr)
sys.exit(2)
