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

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> variables = {"params": {"w": jnp.ones(2)}, "batch_stats": {"mean": jnp.zeros(2)}}
      >>> state = create_train_state(variables, optax.sgd(0.1), jax.random.PRNGKey(0))
      >>> sorted(state.variables())  # what model.apply takes
      ['batch_stats', 'params']
      >>> state = state.replace(step=state.step + 1, params={"w": jnp.full(2, 3.0)})
      >>> state.variables()["params"]["w"].tolist(), state.variables(ema=True)["params"]["w"].tolist()
      ([3.0, 3.0], [1.0, 1.0])
      >>> # a pytree: it goes through jax.jit and jax.tree functions as one value
      >>> int(jax.jit(lambda s: s.replace(step=s.step + 1))(state).step)
      2
      >>> [leaf.shape for leaf in jax.tree.leaves(state)]  # step, params, batch_stats, ema, rng
      [(), (2,), (2,), (2,), (2,)]
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

    Example:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, optax
      >>> variables = nn.Dense(2).init(jax.random.PRNGKey(0), jnp.ones((1, 3)))
      >>> state = create_train_state(variables, optax.adam(1e-3), jax.random.PRNGKey(1))
      >>> int(state.step), state.batch_stats, state.ema_params["kernel"].shape
      (0, {}, (3, 2))
      >>> int(state.opt_state[0].count)  # Adam's update counter
      0
      >>> create_train_state({**variables, "cache": {}}, optax.adam(1e-3), jax.random.PRNGKey(1))
      Traceback (most recent call last):
      ...
      ValueError: variables may only hold 'params' and 'batch_stats' collections, got extra ['cache']
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
