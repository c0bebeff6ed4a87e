"""Flax linen layers (NHWC): LayerNorm, Converse2D, ConverseBlock, ConverseBlockAlpha, and the
convolution baselines of the paper's tables (:mod:`converse_jax.nn.baselines`)."""

from converse_jax.nn.converse import (
    Converse2D,
    ConverseBlock,
    ConverseBlockAlpha,
    LayerNorm,
    dense_init,
    gelu,
    softmax_normal_init,
)

from converse_jax.nn.baselines import (
    Conv2D,
    ConvBlock,
    ConvBlockAlpha,
    ConvTBlock,
    DepthwiseConvTranspose2D,
    ResidualBlock,
    pixel_shuffle,
    upsample_bilinear,
    upsample_nearest,
)

__all__ = [
    "Conv2D",
    "ConvBlock",
    "ConvBlockAlpha",
    "ConvTBlock",
    "DepthwiseConvTranspose2D",
    "ResidualBlock",
    "pixel_shuffle",
    "upsample_bilinear",
    "upsample_nearest",
    "Converse2D",
    "ConverseBlock",
    "ConverseBlockAlpha",
    "LayerNorm",
    "dense_init",
    "gelu",
    "softmax_normal_init",
]
