"""Tie a layer's parameters to its input, so that XLA computes what it derives from them per call.

ConverseNet applies one stack of 7 blocks 5 times, Converse-USRNet its stack of 7 blocks 5 times
(shared weights). Whatever a layer derives from its parameters alone -- the transfer function
``M = (F̄_K + λ) / (|F_K|² + λ)`` of a Converse2D layer, ``(C, Hp, Wp/2+1)`` complex, or a bias
broadcast to the image's shape that XLA's CPU dot fusions materialise -- is the same expression
at every application, so XLA computes it once, ahead of the first, and keeps it alive to the
last: image-sized buffers per shared layer for the whole program. Passing the parameters
through :func:`jax.lax.optimization_barrier` together with the layer's input makes them depend
on that input, which XLA cannot move across: each application derives them afresh when its
input is ready and frees them after.

The barrier is the identity: values and results are the same (the golden tests hold); it costs
the recomputation of ``M`` per application, a few elementwise passes over the frequency grid.
XLA's memory estimate of whole-image ConverseNet and Converse-USRNet at 2048×2048 on the CPU
went from 77.2 GiB to 7.2 GiB (``benchmarks/tiling.py``, docs/tiling.md);
``tests/test_layers.py`` checks that 5 applications of a shared stack need about the memory of one.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
from flax.linen.dtypes import promote_dtype
from flax.nnx.nn.dtypes import promote_dtype as nnx_promote_dtype

__all__ = ["tie", "tied_promote_dtype", "tied_promote_dtype_nnx"]

Arrays = TypeVar("Arrays", bound=tuple[Any, ...])


def tie(x: Any, *params: Any) -> Any:
    """``(x, *params)`` unchanged, with ``params`` made to depend on ``x`` (see the module docstring).

    Example:
      >>> import jax.numpy as jnp
      >>> x, w, b = tie(jnp.ones(2), jnp.full(2, 3.0), None)  # None (an absent bias) passes through
      >>> x.tolist(), w.tolist(), b
      ([1.0, 1.0], [3.0, 3.0], None)
    """
    return jax.lax.optimization_barrier((x, *params))


def tied_promote_dtype(*args: jax.Array | None, dtype: Any = None, inexact: bool = True) -> list[jax.Array | None]:
    """Flax's ``promote_dtype`` for ``nn.Dense(promote_dtype=...)``: the layer's input ``x``,
    kernel and bias promoted as Flax does, after :func:`tie` (the bias broadcast is then made
    per application).

    Example:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> layer = nn.Dense(2, promote_dtype=tied_promote_dtype)
      >>> y, variables = layer.init_with_output(jax.random.key(0), jnp.ones((1, 3)))
      >>> bool(jnp.allclose(y, nn.Dense(2).apply(variables, jnp.ones((1, 3)))))
      True
    """
    return promote_dtype(*tie(*args), dtype=dtype, inexact=inexact)


def tied_promote_dtype_nnx(args: Arrays, /, *, dtype: Any = None, inexact: bool = True) -> Arrays:
    """:func:`tied_promote_dtype` for ``nnx.Linear(promote_dtype=...)``, which passes ``(x, kernel,
    bias)`` as one tuple.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> layer = nnx.Linear(3, 2, promote_dtype=tied_promote_dtype_nnx, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((1, 3))).shape
      (1, 2)
    """
    return nnx_promote_dtype(tie(*args), dtype=dtype, inexact=inexact)
