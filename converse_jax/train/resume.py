"""Which checkpoint a restarted run resumes from: the newest intact one; damaged ones are set aside.

:func:`resume_from_intact` verifies checkpoints (:meth:`Checkpointer.restore
<converse_jax.train.checkpoint.Checkpointer.restore>`: readable, arrays and data-iterator state
matching their integrity record, finite) from the newest down to the first intact one, then the
best one by validation PSNR.  Each damaged checkpoint is reported in one line (step, path, cause)
and moved to ``WORKDIR/damaged_checkpoints/<step>`` -- kept for inspection, out of the orbax
folder so it is neither one of the ``keep`` most recent checkpoints nor the best, and so a
re-run step can be saved again.  Older checkpoints are not read: retention deletes them before
it could delete the intact one resumed from (which only goes after ``keep`` newer saves).
If no checkpoint is intact nothing is moved and :class:`~converse_jax.train.faults.TrainingError`
says so.
"""

from __future__ import annotations

import os

import grain
import jax
from absl import logging
from jax.experimental import multihost_utils

from converse_jax.train.checkpoint import DAMAGED_DIR, Checkpointer
from converse_jax.train.faults import TrainingError
from converse_jax.train.integrity import CheckpointDamaged
from converse_jax.train.state import TrainState
from converse_jax.utils.paths import as_path, move_folder


def resume_from_intact(
    ckpt: Checkpointer, abstract_state: TrainState, data_iterator: grain.DatasetIterator
) -> TrainState | None:
    """The newest intact checkpoint's state (the iterator is set to its position); None if there are none.

    Args:
      ckpt: the run's checkpointer.
      abstract_state: the restore template (see :meth:`Checkpointer.restore
        <converse_jax.train.checkpoint.Checkpointer.restore>`).
      data_iterator: this process's training iterator, set in place.

    Raises:
      TrainingError: there are checkpoints but none is intact (nothing was moved).

    Example:
      >>> import os, tempfile, grain, jax, jax.numpy as jnp, optax
      >>> from converse_jax.train.checkpoint import abstract_like
      >>> from converse_jax.train.state import create_train_state
      >>> state = create_train_state({"params": {"w": jnp.arange(3.0)}}, optax.sgd(0.1), jax.random.PRNGKey(0))
      >>> data = iter(grain.MapDataset.range(100).to_iter_dataset())
      >>> with tempfile.TemporaryDirectory() as workdir:
      ...     ckpt = Checkpointer(workdir, keep=3)
      ...     for step in (1, 2):
      ...         _ = next(data)
      ...         _ = ckpt.save(step, state.replace(step=jnp.int32(step)), data)
      ...     ckpt.wait()
      ...     with open(os.path.join(ckpt.step_path(2), "data", "process_0-of-1.json"), "w") as f:
      ...         _ = f.write("")  # checkpoint 2's data-iterator state is lost
      ...     resumed_data = iter(grain.MapDataset.range(100).to_iter_dataset())
      ...     resumed = resume_from_intact(ckpt, abstract_like(state), resumed_data)
      ...     print(int(resumed.step), ckpt.all_steps(), os.listdir(os.path.join(workdir, "damaged_checkpoints")))
      ...     ckpt.close()
      1 [1] ['2']
      >>> next(resumed_data)  # checkpoint 1's position
      1
    """
    steps = sorted(ckpt.all_steps(), reverse=True)
    state, damaged = None, []
    for step in steps:  # newest first, down to the first intact one
        try:
            state = ckpt.restore(step, abstract_state, data_iterator)
            resumed = step
            break
        except CheckpointDamaged as error:
            damaged.append(error)
    if state is None and damaged:
        for error in damaged:
            logging.error("%s", error)
        raise TrainingError(
            f"no intact checkpoint in {ckpt.directory} (checkpoints {sorted(steps)} are damaged, see above); "
            "nothing was changed: move the folder away to start afresh"
        )
    intact = {resumed} if state is not None else set()
    while damaged or ckpt.best_step() not in intact | {None}:
        for error in damaged:
            logging.error("%s; moved to %s", error, _set_aside(ckpt, error.step))
        ckpt.reload()
        damaged, best = [], ckpt.best_step()
        if best not in intact | {None}:  # the best must be intact too
            try:
                ckpt.restore(best, abstract_state)
                intact.add(best)
            except CheckpointDamaged as error:
                damaged.append(error)
    if state is not None:
        logging.info("resumed from checkpoint %d in %s", resumed, ckpt.directory)
    return state


def _set_aside(ckpt: Checkpointer, step: int) -> str:
    """Moves damaged checkpoint ``step`` to ``WORKDIR/damaged_checkpoints/`` (process 0); returns where."""
    target = os.path.join(ckpt.workdir, DAMAGED_DIR, str(step))
    suffix = 1
    while as_path(target).exists():
        target = os.path.join(ckpt.workdir, DAMAGED_DIR, f"{step}.{suffix}")
        suffix += 1
    if jax.process_index() == 0:
        move_folder(ckpt.step_path(step), target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"converse_jax_set_aside_{step}")
    return target
