"""Model families. Importing this package registers every variant."""
import importlib

# One module per family; each registers its variant table on import.
_FAMILIES = [
    "spconv",
]

for _name in _FAMILIES:
    importlib.import_module(f"{__name__}.{_name}")
