"""Flax NNX API: the reverse-convolution layers as native ``nnx.Module`` s and every network of
the zoo (with the official weights) as an NNX module.

>>> from flax import nnx
>>> import jax.numpy as jnp
>>> from converse_jax.nnx import ConverseBlock
>>> ConverseBlock(8, rngs=nnx.Rngs(0))(jnp.ones((1, 16, 16, 8))).shape
(1, 16, 16, 8)

Layers: :mod:`converse_jax.nnx.layers`; conversion from linen and loading weights:
:mod:`converse_jax.nnx.convert` (why the networks are bridged rather than re-written is
explained there).
"""

from converse_jax.nnx.convert import from_linen, load_nnx
from converse_jax.nnx.layers import Converse2D, ConverseBlock, ConverseBlockAlpha, LayerNorm

__all__ = ["Converse2D", "ConverseBlock", "ConverseBlockAlpha", "LayerNorm", "from_linen", "load_nnx"]
