"""Layers shared by the model families."""
import warnings

from .activations import HardSigmoid, HardSwish, ReLU6, create_act, hard_sigmoid, register_act
from .conv_bn import BNLinear, ConvBN
from .drop import DropPath, LayerScale, drop_path
from .helpers import channel_shuffle, known_size, make_divisible, to_2tuple
from .init import init_trunc_normal, init_weights_fan_out, torch_default_init
from .rep_block import RepConvBN
from .reparam import (ReparamMixin, assign, bn_scale_shift, default_dtype_like, dtype_name,
                      fold_layer_scale, fuse_bn, fuse_linear_bn, identity_kernel, new_conv_like,
                      pad_1x1_to_kxk, reparameterize_children, reparameterize_model,
                      scale_outputs)
from .se import SqueezeExcite

# Paddle 3.x's BatchNorm1D/2D/3D warn "When training, we now always track global mean and
# variance." on every train-mode forward, whatever the arguments: a note about a past change of
# Paddle's, with nothing for the user to do. Exactly that message is silenced.
warnings.filterwarnings("ignore", message="When training, we now always track global mean and "
                        "variance", category=UserWarning, module=r"paddle\.nn\.layer\.norm")

__all__ = [
    "HardSigmoid", "HardSwish", "ReLU6", "create_act", "hard_sigmoid", "register_act",
    "BNLinear", "ConvBN", "DropPath", "LayerScale", "drop_path",
    "channel_shuffle", "make_divisible", "to_2tuple", "ReparamMixin", "fuse_bn", "identity_kernel",
    "new_conv_like", "pad_1x1_to_kxk", "reparameterize_model", "reparameterize_children",
    "fold_layer_scale", "scale_outputs", "SqueezeExcite", "bn_scale_shift",
    "fuse_linear_bn", "assign", "default_dtype_like", "dtype_name", "known_size",
    "init_trunc_normal", "init_weights_fan_out", "torch_default_init", "RepConvBN",
]
