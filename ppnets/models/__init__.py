"""Model families. Importing this package registers every variant."""
import importlib

# One module per family; each registers its variant table on import.
_FAMILIES = [
    "resnet", "spconv",
    "fasternet", "shufflenet", "mobilenetv1", "mobilenetv2", "mobilenetv3",
    "repvgg", "mobileone", "repvit",
    "poolformer", "efficientformer", "efficientformerv2",
    "deit", "levit", "mobilevit",
]

for _name in _FAMILIES:
    importlib.import_module(f"{__name__}.{_name}")
