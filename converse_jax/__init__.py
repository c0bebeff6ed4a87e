"""converse-jax: Reverse Convolution (Converse2D) and the ConverseNets in JAX/Flax.

The functional operator is importable without Flax::

    from converse_jax import converse2d

Flax layers live in :mod:`converse_jax.nn`, networks in :mod:`converse_jax.models`,
official-weight conversion in :mod:`converse_jax.pretrained`.
"""

from converse_jax.ops import converse2d, converse2d_reference

__all__ = ["converse2d", "converse2d_reference"]
__version__ = "0.1.0"
