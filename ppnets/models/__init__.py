"""Model families. Importing this package registers every variant: each family module
registers its variant table on import."""
from . import (  # noqa: F401
               deit,
               efficientformer,
               efficientformerv2,
               fasternet,
               levit,
               mobilenetv1,
               mobilenetv2,
               mobilenetv3,
               mobileone,
               mobilevit,
               poolformer,
               repvgg,
               repvit,
               resnet,
               shufflenet,
               spconv,
)
