"""Optimisation: Adam with KAIR's step schedule, optional gradient clipping, EMA of the weights.

The recipe of the KAIR option files the ConverseNet baselines come from (see
``shared/paper_notes.md`` section 6): Adam, learning rate 1e-4 multiplied by 0.5 at each
milestone (PyTorch ``MultiStepLR``), L1 loss, and for MSRResNet an EMA of the generator weights
with decay 0.999.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

PyTree = Any


def _check_milestones(milestones: Sequence[int]) -> tuple[int, ...]:
    try:
        ms = tuple(int(m) for m in milestones)
    except (TypeError, ValueError):
        raise ValueError(f"lr_milestones must be a sequence of integers, got {milestones!r}") from None
    if any(m <= 0 for m in ms) or list(ms) != sorted(set(ms)):
        raise ValueError(f"lr_milestones must be strictly increasing positive integers, got {milestones!r}")
    return ms


def lr_schedule(learning_rate: float, milestones: Sequence[int], decay: float) -> optax.Schedule:
    """Piecewise-constant learning rate, multiplied by ``decay`` at every milestone.

    ``lr(count) = learning_rate * decay ** #{m in milestones : count >= m}``, where ``count`` is
    the number of updates applied before this one (optax's convention): PyTorch's
    ``MultiStepLR`` stepped once per iteration as KAIR does, i.e. update number ``m + 1``
    (1-based) is the first to use the decayed rate.  This is ``optax.piecewise_constant_schedule``
    with the arguments checked.

    >>> s = lr_schedule(1e-4, [2, 4], 0.5)
    >>> [round(float(s(c)), 9) for c in range(5)]
    [0.0001, 0.0001, 5e-05, 5e-05, 2.5e-05]
    >>> lr_schedule(1e-4, [4, 2], 0.5)
    Traceback (most recent call last):
    ...
    ValueError: lr_milestones must be strictly increasing positive integers, got [4, 2]
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not 0 < decay <= 1:
        raise ValueError(f"lr_decay must be in (0, 1], got {decay!r}")
    ms = _check_milestones(milestones)
    return optax.piecewise_constant_schedule(float(learning_rate), {m: float(decay) for m in ms})


def make_optimizer(
    learning_rate: float,
    milestones: Sequence[int],
    decay: float,
    grad_clip_norm: float | None = None,
) -> optax.GradientTransformation:
    """Adam (betas 0.9/0.999, eps 1e-8, no weight decay) on :func:`lr_schedule`.

    Args:
      learning_rate: initial rate.
      milestones: update counts at which the rate is multiplied by ``decay``.
      decay: factor in (0, 1] (0.5: halving).
      grad_clip_norm: if positive, gradients are first rescaled to global L2 norm at most this
        (``optax.clip_by_global_norm``); ``None`` or 0 disables clipping.

    Returns:
      an ``optax.GradientTransformation`` (its state counts updates for the schedule).

    Example:
      Adam moves each weight by about the learning rate against the sign of its gradient; the
      second update, past the milestone 1, uses half the rate:

      >>> import jax.numpy as jnp, optax
      >>> tx = make_optimizer(0.1, milestones=[1], decay=0.5, grad_clip_norm=1.0)
      >>> params = {"w": jnp.zeros(2)}
      >>> opt_state = tx.init(params)
      >>> grads = {"w": jnp.array([3.0, -4.0])}  # clipped to global norm 1: [0.6, -0.8]
      >>> for _ in range(2):
      ...     updates, opt_state = tx.update(grads, opt_state, params)
      ...     params = optax.apply_updates(params, updates)
      ...     print([round(float(u), 4) for u in updates["w"]])
      [-0.1, 0.1]
      [-0.05, 0.05]
      >>> make_optimizer(0.1, [], 0.5, grad_clip_norm=-1.0)
      Traceback (most recent call last):
      ...
      ValueError: grad_clip_norm must be None, 0 or positive, got -1.0
    """
    if grad_clip_norm is not None and grad_clip_norm < 0:
        raise ValueError(f"grad_clip_norm must be None, 0 or positive, got {grad_clip_norm!r}")
    adam = optax.adam(lr_schedule(learning_rate, milestones, decay), b1=0.9, b2=0.999, eps=1e-8)
    if grad_clip_norm:
        return optax.chain(optax.clip_by_global_norm(float(grad_clip_norm)), adam)
    return adam


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
    """Effective EMA decay for the update that produces step ``step`` (1-based).

    ``min(decay, (1 + step) / (10 + step))``: the warm-up of TensorFlow's
    ``ExponentialMovingAverage(num_updates=step)``, so that the average forgets the random
    initialisation within the first few hundred steps instead of ~1/(1 - decay) steps; after
    ``step >= (10 decay - 1) / (1 - decay)`` (8,991 steps for 0.999) it is exactly ``decay``.

    ``step``: an integer scalar (or array); the result is float32 of the same shape.

    Example:
      >>> [round(float(ema_decay_at(0.999, step)), 4) for step in (1, 10, 100, 10_000)]
      [0.1818, 0.55, 0.9182, 0.999]
    """
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.asarray(decay, jnp.float32), (1.0 + step) / (10.0 + step))


def ema_update(ema_params: PyTree, params: PyTree, decay: float, step: jax.Array) -> PyTree:
    """One EMA step: ``ema <- d * ema + (1 - d) * params`` with ``d = ema_decay_at(decay, step)``.

    ``decay = 0`` makes the average the current parameters.  Leaves keep their dtype.

    Args:
      ema_params, params: pytrees of the same structure.
      decay: target decay in [0, 1).
      step: the step the new parameters belong to (1 for the first update).

    Returns:
      the new average, a pytree of ``params``' structure, shapes and dtypes.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"w": jnp.ones(2)}
      >>> ema = ema_update({"w": jnp.zeros(2)}, params, 0.999, step=1)  # warm-up: d = 2/11
      >>> [round(float(v), 4) for v in ema["w"]]
      [0.8182, 0.8182]
      >>> ema_update(ema, params, 0.0, step=2)["w"].tolist()  # decay 0: the parameters themselves
      [1.0, 1.0]
    """
    if not 0 <= decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {decay!r}")
    d = ema_decay_at(decay, step)
    return jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(p.dtype), ema_params, params)
