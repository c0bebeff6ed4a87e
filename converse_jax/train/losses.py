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
      ``pred`` is ``sign(pred − target) / pred.size``, 0 where they are exactly equal, as
      PyTorch's (``|d|`` is written ``sign(d)·d``: JAX's own derivative of ``|·|`` at 0 is +1).

    Example:
      >>> import jax.numpy as jnp
      >>> pred, target = jnp.zeros((2, 8, 8, 3)), jnp.full((2, 8, 8, 3), 0.5)  # NHWC batches
      >>> l1_loss(pred, target).shape, float(l1_loss(pred, target))
      ((), 0.5)
      >>> import jax
      >>> jax.grad(l1_loss)(jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 1.0, 1.0])).tolist()  # tie: 0
      [-0.3333333432674408, 0.0, 0.3333333432674408]
    """
    if jnp.shape(pred) != jnp.shape(target):
        raise ValueError(
            f"pred and target must have the same shape, got {jnp.shape(pred)} and {jnp.shape(target)}"
        )
    diff = jnp.asarray(pred) - jnp.asarray(target)
    return jnp.mean(jax.lax.stop_gradient(jnp.sign(diff)) * diff)
