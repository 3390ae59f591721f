"""Layers shared by the model families."""
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

__all__ = [
    "HardSigmoid", "HardSwish", "ReLU6", "create_act", "hard_sigmoid", "register_act",
    "BNLinear", "ConvBN", "DropPath", "LayerScale", "drop_path",
    "channel_shuffle", "make_divisible", "to_2tuple", "ReparamMixin", "fuse_bn", "identity_kernel",
    "new_conv_like", "pad_1x1_to_kxk", "reparameterize_model", "reparameterize_children",
    "fold_layer_scale", "scale_outputs", "SqueezeExcite", "bn_scale_shift",
    "fuse_linear_bn", "assign", "default_dtype_like", "dtype_name", "known_size",
    "init_trunc_normal", "init_weights_fan_out", "torch_default_init", "RepConvBN",
]
