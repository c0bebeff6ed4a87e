"""What a training run does when a step goes wrong: the non-finite policy and :class:`TrainingError`.

The jitted train step (:func:`converse_jax.train.step.make_train_step`) reports for every step a
boolean ``finite`` (loss and global gradient norm both finite) and leaves the parameters,
BatchNorm statistics, optimizer state and EMA unchanged when it is False, so the state in memory
never becomes non-finite.  The flags stay on the device until the loop syncs with the host anyway
(at a log record, an evaluation or a checkpoint); :class:`PendingSteps` collects them and applies
``config.on_nonfinite``:

* ``'stop'`` (default): raise :class:`TrainingError` naming the first non-finite step; the loop
  checks before every save, so nothing after the last finite checkpoint is written;
* ``'skip'``: log a warning and go on (the bad steps' updates were skipped); the log record
  counts them in ``'nonfinite_steps'``.

A SIGTERM (preemption) or SIGINT (Ctrl-C) is a fault the run survives: :class:`Preemption` turns it into "save a
checkpoint after this step and return".
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

NONFINITE_POLICIES = ("stop", "skip")
"""Values of ``config.on_nonfinite``."""


class TrainingError(RuntimeError):
    """A fault the run cannot go on through; ``str(error)`` is one line for the user.

    Raised for a non-finite loss or gradient under ``on_nonfinite='stop'`` and when no
    checkpoint of the work folder is intact.  Programs print the message, not a traceback.

    Example:
      >>> str(TrainingError("no intact checkpoint in /runs/a/checkpoints"))
      'no intact checkpoint in /runs/a/checkpoints'
      >>> issubclass(TrainingError, RuntimeError)
      True
    """


def check_policy(policy: Any) -> str:
    """``policy`` after checking it is one of :data:`NONFINITE_POLICIES` (``ValueError`` otherwise).

    Example:
      >>> check_policy("skip")
      'skip'
      >>> check_policy("ignore")
      Traceback (most recent call last):
      ...
      ValueError: config.on_nonfinite must be one of ('stop', 'skip'), got 'ignore'
    """
    if policy not in NONFINITE_POLICIES:
        raise ValueError(f"config.on_nonfinite must be one of {NONFINITE_POLICIES}, got {policy!r}")
    return policy


class PendingSteps:
    """Losses and ``finite`` flags of the steps since the last host sync (device scalars).

    Args:
      policy: ``'stop'`` or ``'skip'`` (see the module docstring).

    :meth:`add` keeps the step's device scalars without reading them; :meth:`check` reads the
    flags (one transfer) and applies the policy; :meth:`take_loss` returns the mean finite loss
    since the previous call and how many steps were not finite.

    Example:
      >>> import jax.numpy as jnp
      >>> pending = PendingSteps("skip")
      >>> for step, loss in [(1, 0.5), (2, float("nan")), (3, 0.25)]:
      ...     pending.add(step, {"loss": jnp.float32(loss), "finite": jnp.isfinite(loss)})
      >>> pending.check()  # logs a warning for step 2
      [2]
      >>> pending.take_loss()  # mean of the finite losses, number of non-finite steps
      (0.375, 1)
      >>> pending = PendingSteps("stop")
      >>> pending.add(7, {"loss": jnp.float32(jnp.inf), "finite": jnp.bool_(False)})
      >>> pending.check("the last checkpoint is 5")
      Traceback (most recent call last):
      ...
      converse_jax.train.faults.TrainingError: non-finite loss or gradient at step 7 (config.on_nonfinite='stop'): the run stopped; the last checkpoint is 5
    """

    def __init__(self, policy: str) -> None:
        self.policy = check_policy(policy)
        self._losses: list[tuple[jax.Array, jax.Array]] = []
        self._unchecked: list[tuple[int, jax.Array]] = []

    def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
        """Keeps step ``step``'s ``metrics['loss']`` and ``metrics['finite']`` (no host sync)."""
        self._losses.append((metrics["loss"], metrics["finite"]))
        self._unchecked.append((step, metrics["finite"]))

    def check(self, context: str = "") -> list[int]:
        """Reads the flags added since the previous check; returns the non-finite steps.

        Under ``'stop'`` a non-finite step raises :class:`TrainingError` naming the first one
        (``context`` is appended to the message, e.g. which checkpoint is kept); under ``'skip'``
        each is logged as a warning.
        """
        if not self._unchecked:
            return []
        flags = jax.device_get([flag for _, flag in self._unchecked])
        bad = [step for (step, _), ok in zip(self._unchecked, flags) if not ok]
        self._unchecked = []
        if bad and self.policy == "stop":
            message = f"non-finite loss or gradient at step {bad[0]} (config.on_nonfinite='stop'): the run stopped"
            raise TrainingError(f"{message}; {context}" if context else message)
        for step in bad:
            logging.warning("step %d: non-finite loss or gradient; its update was skipped", step)
        return bad

    def take_loss(self) -> tuple[float, int]:
        """``(mean finite loss, number of non-finite steps)`` since the previous call (NaN if none)."""
        values = jax.device_get(self._losses)
        self._losses = []
        finite = [float(loss) for loss, ok in values if ok]
        return (float(np.mean(finite)) if finite else float("nan")), len(values) - len(finite)


class Preemption:
    """SIGTERM or SIGINT (Ctrl-C) -> "stop after this step": a flag (single process) or JAX's preemption sync point.

    A context manager: on the main thread of a single-process run it installs a handler for
    both signals that sets the flag (the previous handlers are restored on exit); a second
    SIGINT raises ``KeyboardInterrupt`` at once (the user insists).  ``reached(step)`` says
    whether to save and stop after ``step`` (multi-process: all processes agree on the step);
    :attr:`signal_name` names the signal that asked.

    Example:
      >>> import os, signal
      >>> with Preemption() as preemption:
      ...     os.kill(os.getpid(), signal.SIGINT)
      ...     print(preemption.reached(1), preemption.signal_name)
      True SIGINT
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._previous: dict[int, Any] = {}
        self.signal_name = "SIGTERM"

    def __enter__(self) -> Preemption:
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        if signum == signal.SIGINT and self._flag.is_set() and self.signal_name == "SIGINT":
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self._flag.set()

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:
            return bool(multihost_utils.reached_preemption_sync_point(step))
        return self._flag.is_set()

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
