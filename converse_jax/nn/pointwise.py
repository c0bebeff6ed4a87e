"""The contraction of every 1×1 convolution (Flax ``Dense`` / ``nnx.Linear`` over NHWC channels).

``pointwise_dot_general`` is a drop-in ``dot_general`` for ``nn.Dense(..., dot_general=...)``: for
the dense layer's own contraction (the last axis of ``x`` (..., C_in) with the first of the kernel
(C_in, C_out)) it flattens ``x`` to a matrix (M, C_in) first, M = N·H·W, a free reshape. The
result is the same product; what changes is its gradient. Differentiating the 4-D contraction
gives XLA a weight gradient that contracts three axes, ``Σ_{n,h,w} x[n,h,w,i] g[n,h,w,o]``,
which its CPU backend runs as a transposed copy of the cotangent and a generic dot instead of
the (M, C_in)ᵀ·(M, C_out) matrix product: the value and both gradients of Converse-DnCNN's
expand convolution take 11.0 ms instead of 17.5 ms at batch 8 of 40×40 and 51.5 ms instead of
108 ms on a 256×256 image (one thread, ``python benchmarks/pointwise.py``, 2026-11-30). Any
other contraction goes to ``lax.dot_general`` unchanged.
"""

from __future__ import annotations

from typing import Any

import jax
from jax import lax

__all__ = ["pointwise_dot_general"]


def pointwise_dot_general(
    lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any, precision: Any = None,
    preferred_element_type: Any = None, **kwargs: Any,
) -> jax.Array:
    """``lax.dot_general`` with a dense layer's contraction done as a matrix product.

    The contraction of ``lhs`` (..., K) with ``rhs`` (K, F) over K, no batch dimensions (what
    ``nn.Dense`` asks for) runs on ``lhs`` reshaped to (M, K) and returns (..., F); other
    ``dimension_numbers``, and any explicit ``out_sharding`` (``nnx.Linear`` passes one, usually
    None) or other keyword, go to ``lax.dot_general`` as they are. Same value, cheaper weight
    gradient on the CPU (module docstring).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x, w = jnp.ones((2, 4, 4, 3)), jnp.ones((3, 5))
      >>> dims = (((3,), (0,)), ((), ()))
      >>> y = pointwise_dot_general(x, w, dims)
      >>> y.shape, bool((y == jax.lax.dot_general(x, w, dims)).all())
      ((2, 4, 4, 5), True)
    """
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    dense = (tuple(lhs_contract) == (lhs.ndim - 1,) and tuple(rhs_contract) == (0,)
             and not lhs_batch and not rhs_batch and rhs.ndim == 2 and lhs.ndim > 2)
    if kwargs.get("out_sharding") is None:
        kwargs.pop("out_sharding", None)
    if not dense or kwargs:
        return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type, **kwargs)
    flat = lhs.reshape(-1, lhs.shape[-1])
    out = lax.dot_general(flat, rhs, (((1,), (0,)), ((), ())), precision=precision,
                          preferred_element_type=preferred_element_type)
    return out.reshape(*lhs.shape[:-1], rhs.shape[1])
