"""ppnets: PaddlePaddle reproductions of efficient vision backbones.

    import ppnets
    model = ppnets.create_model("spconv_resnet20_cifar_a2")    # 10 classes: a CIFAR-10 model
    ppnets.list_models("spconv_*"), ppnets.model_info("spconv_resnet20_cifar_a2")
"""
import warnings

from .paddle_check import require_paddle

# Before anything imports Paddle: a missing or too old Paddle is reported with the pip commands
# for the user's machine, not as an ImportError from deep inside a model file.
require_paddle()

# Paddle warns at import that ccache is missing, which only matters when compiling custom C++
# operators; ppnets compiles none, so the warning is noise for every ppnets user.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

from .factory import create_model  # noqa: E402
from .layers import reparameterize_model  # noqa: E402
from .registry import list_models, model_info  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["create_model", "list_models", "model_info", "reparameterize_model", "__version__"]
