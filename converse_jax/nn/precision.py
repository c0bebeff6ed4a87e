"""Mixed precision the Flax way: ``dtype`` (computation) and ``param_dtype`` (storage).

Every layer and network of the project has the two attributes of Flax's own layers:

* ``param_dtype`` (default float32): the dtype parameters are created and stored in.
* ``dtype`` (default None): the dtype of the computation. ``None`` keeps the input's dtype
  (Flax's ``nn.Dense`` / ``nn.BatchNorm`` promote it with their float32 parameters), which for
  float32 inputs is the float32 computation of the paper, bit for bit.

Whatever ``dtype`` says, three things keep at least float32: the reverse-convolution solve
(:func:`converse_jax.ops.converse2d` solves half-precision inputs in float32, and the layers pass
it the kernel and λ in float32), the LayerNorm statistics and the residual stream of the
ConverseBlocks (:func:`converse_jax.nn.converse.block_forward`). Networks return their output in
the dtype of their input image, so a float32 pipeline around a bfloat16 network stays float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from converse_jax.ops.validation import solve_dtype

__all__ = ["compute_dtype", "precision", "solve_dtype"]


def compute_dtype(dtype: Any, x: jax.Array) -> np.dtype:
    """The computation dtype of a layer: ``dtype``, or ``x``'s dtype when ``dtype`` is None.

    Example:
      >>> import jax.numpy as jnp
      >>> str(compute_dtype(None, jnp.ones(2))), str(compute_dtype("bfloat16", jnp.ones(2)))
      ('float32', 'bfloat16')
    """
    return jnp.dtype(x.dtype if dtype is None else dtype)


def precision(module: Any) -> dict[str, Any]:
    """``{'dtype': …, 'param_dtype': …}`` of ``module``, to pass on to its sub-layers.

    Example:
      >>> import jax.numpy as jnp
      >>> from converse_jax.nn import LayerNorm
      >>> precision(LayerNorm(dtype=jnp.bfloat16))["dtype"].__name__
      'bfloat16'
    """
    return {"dtype": module.dtype, "param_dtype": module.param_dtype}
