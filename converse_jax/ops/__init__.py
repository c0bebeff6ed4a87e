"""Pure-functional reverse convolution (no Flax): the fast operator and the Algorithm-1 reference."""

from converse_jax.ops.converse2d import converse2d
from converse_jax.ops.reference import converse2d_reference
from converse_jax.ops.validation import PADDING_MODES

__all__ = ["converse2d", "converse2d_reference", "PADDING_MODES"]
