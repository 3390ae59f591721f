"""ppnets: PaddlePaddle reproductions of efficient vision backbones.

    import ppnets
    model = ppnets.create_model("spconv_resnet20_a2", num_classes=10)
    ppnets.list_models("spconv_*"), ppnets.model_info("spconv_resnet20_a2")
"""
from .layers import reparameterize_model
from .registry import create_model, list_models, model_info

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "model_info", "reparameterize_model", "__version__"]
