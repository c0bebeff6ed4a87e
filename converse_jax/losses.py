"""Training losses.

>>> import numpy as np
>>> float(l1_loss(np.array([0.0, 1.0, 3.0]), np.array([1.0, 1.0, 1.0])))
1.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["l1_loss"]


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error over all elements, as PyTorch's ``nn.L1Loss()`` (reduction 'mean').

    Args:
      pred, target: arrays of the same shape (any layout), floating.

    Returns:
      Scalar ``mean(|pred − target|)`` in the promoted dtype of the inputs. Its gradient w.r.t.
      ``pred`` is ``sign(pred − target) / pred.size`` where they differ. Where they are exactly
      equal it is ``+1 / pred.size`` (JAX's derivative of ``|·|`` at 0), not 0 as in PyTorch.

    Example:
      >>> import jax.numpy as jnp
      >>> pred, target = jnp.zeros((2, 8, 8, 3)), jnp.full((2, 8, 8, 3), 0.5)  # NHWC batches
      >>> l1_loss(pred, target).shape, float(l1_loss(pred, target))
      ((), 0.5)
    """
    if jnp.shape(pred) != jnp.shape(target):
        raise ValueError(
            f"pred and target must have the same shape, got {jnp.shape(pred)} and {jnp.shape(target)}"
        )
    return jnp.mean(jnp.abs(jnp.asarray(pred) - jnp.asarray(target)))
