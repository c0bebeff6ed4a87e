"""Flax linen layers (NHWC): LayerNorm, Converse2D, ConverseBlock, ConverseBlockAlpha."""

from converse_jax.nn.converse import (
    Converse2D,
    ConverseBlock,
    ConverseBlockAlpha,
    LayerNorm,
    dense_init,
    gelu,
    softmax_normal_init,
)

__all__ = [
    "Converse2D",
    "ConverseBlock",
    "ConverseBlockAlpha",
    "LayerNorm",
    "dense_init",
    "gelu",
    "softmax_normal_init",
]
