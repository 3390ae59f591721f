"""ppnets: PaddlePaddle reproductions of efficient vision backbones.

    import ppnets
    model = ppnets.create_model("spconv_resnet20_cifar_a2")    # 10 classes: a CIFAR-10 model
    ppnets.list_models("spconv_*"), ppnets.model_info("spconv_resnet20_cifar_a2")
"""
from .factory import create_model
from .layers import reparameterize_model
from .registry import list_models, model_info
from .version import __version__

__all__ = ["create_model", "list_models", "model_info", "reparameterize_model", "__version__"]
