"""The training state: one pytree holding everything a train step reads and writes.

:class:`TrainState` is a ``flax.struct`` dataclass, so it is a JAX pytree (it passes through
``jax.jit``, can be donated, sharded and checkpointed by orbax as one tree).  Its fields are
plain arrays and nested dicts -- no functions -- so an abstract copy
(``jax.eval_shape``) describes it completely for restoring.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training.

    Attributes:
      step: int32 scalar, number of optimizer updates applied so far.
      params: the model's ``'params'`` collection (a nested dict of float32 arrays).
      batch_stats: the ``'batch_stats'`` collection of BatchNorm models (running means and
        variances), or an empty dict for models without BatchNorm.
      opt_state: the optax optimizer state of ``params``.
      ema_params: exponential moving average of ``params`` (same structure); evaluation and the
        saved "best" weights use it.
      rng: uint32 ``(2,)`` raw PRNG key; each step splits it and hands the sub-key to the model
        as its ``'dropout'`` stream (the step is deterministic given the state and the batch).
    """

    step: jax.Array
    params: PyTree
    batch_stats: PyTree
    opt_state: optax.OptState
    ema_params: PyTree
    rng: jax.Array

    def variables(self, *, ema: bool = False) -> dict[str, PyTree]:
        """The flax variables dict ``{'params': ..., ['batch_stats': ...]}`` for ``model.apply``.

        ``ema=True`` uses ``ema_params`` instead of ``params``.
        """
        out = {"params": self.ema_params if ema else self.params}
        if self.batch_stats:
            out["batch_stats"] = self.batch_stats
        return out


def create_train_state(
    variables: dict[str, PyTree], tx: optax.GradientTransformation, rng: jax.Array
) -> TrainState:
    """A fresh state at step 0 from initialised model variables.

    Args:
      variables: ``model.init(...)`` output: ``'params'`` and optionally ``'batch_stats'``; any
        other collection is an error.
      tx: the optimizer; its state is ``tx.init(params)``.
      rng: raw uint32 ``(2,)`` PRNG key (``jax.random.PRNGKey(seed)``).

    Returns:
      ``TrainState(step=0, params, batch_stats or {}, tx.init(params), ema_params=params, rng)``.
    """
    if "params" not in variables:
        raise ValueError(f"variables must contain a 'params' collection, got {sorted(variables)}")
    unknown = set(variables) - {"params", "batch_stats"}
    if unknown:
        raise ValueError(
            f"variables may only hold 'params' and 'batch_stats' collections, got extra {sorted(unknown)}"
        )
    rng = jnp.asarray(rng)
    if rng.dtype != jnp.uint32 or rng.shape != (2,):
        raise ValueError(f"rng must be a raw uint32 (2,) PRNG key, got {rng.dtype} {rng.shape}")
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=dict(variables.get("batch_stats", {})),
        opt_state=tx.init(params),
        ema_params=jax.tree.map(jnp.array, params),
        rng=rng,
    )
