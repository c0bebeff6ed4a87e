"""converse-jax: Reverse Convolution (Converse2D) and the ConverseNets in JAX/Flax.

The functional operator is importable without Flax::

    from converse_jax import converse2d

Flax layers live in :mod:`converse_jax.nn`, networks in :mod:`converse_jax.models`,
official-weight conversion in :mod:`converse_jax.pretrained`.
"""

__all__ = ["converse2d", "converse2d_reference"]
__version__ = "0.1.0"


def __getattr__(name: str):  # PEP 562: JAX is imported on first use, so light modules
    if name in __all__:  # (converse_jax.utils.images) import without it
        from converse_jax import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'converse_jax' has no attribute {name!r}")
