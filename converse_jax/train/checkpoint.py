"""Checkpoints of a training run: orbax ``CheckpointManager`` in ``WORKDIR/checkpoints``.

Each checkpoint ``WORKDIR/checkpoints/<step>/`` holds three items:

* ``state``: the whole :class:`~converse_jax.train.state.TrainState` (step, params,
  batch_stats, optimizer state, EMA params, RNG key) -- ``ocp.args.StandardSave``;
* ``data``: the position of every process's grain data iterator, one JSON file per process
  (``grain.checkpoint.CheckpointSave``), so a resumed run reads exactly the batches the
  uninterrupted run would have read;
* ``integrity``: a CRC-32 of every state array and of every data-iterator state, computed on
  the host at save (:mod:`converse_jax.train.integrity`);

plus, for checkpoints written at an evaluation, the validation metrics (``{'psnr', 'ssim'}``).
Kept: the ``keep`` most recent checkpoints and the one with the highest validation PSNR
(orbax ``LatestN`` ∪ ``BestN(n=1)``).  Saves are asynchronous (arrays are copied to host before
``save`` returns, so the next step may donate them) and atomic (a step folder appears only when
complete; unfinished temporary folders are removed on start-up).  A state holding a NaN or an
infinity is never saved.  All processes call every method (orbax coordinates the multi-host
writes).

Restoring (:meth:`Checkpointer.restore`) checks the checkpoint against its record; which one a
restarted run resumes from, and what happens to damaged ones, is :mod:`converse_jax.train.resume`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging as py_logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy as ocp_preservation

from converse_jax.tasks import rank_value
from converse_jax.train.faults import TrainingError
from converse_jax.train.integrity import (
    RECORD_VERSION,
    CheckpointDamaged,
    data_crc,
    layout_mismatch,
    make_record,
    nonfinite_leaves,
    state_mismatch,
)
from converse_jax.train.mesh import to_host
from converse_jax.train.state import TrainState
from converse_jax.utils.checksum import root_cause
from converse_jax.utils.paths import absolute, as_path
from converse_jax.utils.quiet import quiet_closed_loop_noise

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
ITEMS = ("state", "data", "integrity")


def _agree(damaged: bool) -> bool:
    """True if this process or any other found the checkpoint damaged (multi-process: allgather)."""
    if jax.process_count() == 1:
        return damaged
    return bool(np.asarray(multihost_utils.process_allgather(np.int32(damaged))).any())


class _OrbaxChatter(py_logging.Filter):
    """Drops orbax's INFO records (dozens per save), its warning for saves without metrics, and
    its tracebacks of a full disk (the run reports that in one line: :func:`disk_full`)."""

    def filter(self, record: py_logging.LogRecord) -> bool:
        if record.exc_info and disk_full(record.exc_info[1]) or disk_full(Exception(record.getMessage())):
            return False  # orbax's, tensorstore's and asyncio's reports of the failed writes
        orbax = f"{os.sep}orbax{os.sep}" in record.pathname
        if _SAVE_FAILED.is_set() and (orbax or ".orbax-checkpoint-tmp" in record.getMessage()):
            return False  # the writes still in flight fail too, as their folders are removed
        if not orbax:
            return True
        return record.levelno >= py_logging.WARNING and "did not provide metrics" not in record.getMessage()


_SAVE_FAILED = threading.Event()
"""Set once a save failed on a full disk in this process: orbax's later reports are noise then."""
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "File too large", "Disk quota exceeded")


def disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is a write that failed because the disk or quota is full.

    Example:
      >>> disk_full(OSError(errno.ENOSPC, "No space left on device")), disk_full(ValueError("bad"))
      (True, False)
    """
    while error is not None:
        if isinstance(error, OSError) and error.errno in _DISK_FULL or any(t in str(error) for t in _DISK_FULL_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def quiet_orbax_logs() -> None:
    """Hides orbax's routine log messages from the absl log handler (errors still show).

    Orbax logs every step of every save at INFO level; command-line programs call this once so
    that the training log shows the run, not the checkpointing.  Calling it again does nothing.

    Example:
      >>> import logging, os
      >>> from absl import logging as absl_logging
      >>> quiet_orbax_logs()
      >>> def shown(level, message, package="orbax"):
      ...     path = os.path.join(os.sep, "site-packages", package, "checkpoint", "manager.py")
      ...     record = logging.LogRecord(package, level, path, 1, message, None, None)
      ...     return bool(absl_logging.get_absl_handler().filter(record))
      >>> shown(logging.INFO, "Saving item"), shown(logging.ERROR, "Save failed")
      (False, True)
      >>> shown(logging.INFO, "step 100: loss 0.03", package="converse_jax")  # others untouched
      True
    """
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _OrbaxChatter) for f in handler.filters):
        handler.addFilter(_OrbaxChatter())


class Checkpointer:
    """Saves and restores training checkpoints in ``workdir/checkpoints``.

    Args:
      workdir: the run's folder (created if missing).
      keep: number of most recent checkpoints kept (>= 1); the best by ``best_metric`` is kept
        in addition.
      best_metric: the validation metric that ranks checkpoints (higher is better), the task's
        :attr:`converse_jax.tasks.Task.best_metric` (``'psnr_y'`` for SR); read with
        :func:`converse_jax.tasks.rank_value` (``'psnr'`` where a checkpoint lacks it).

    Example:
      A round trip of a train state and a grain iterator's position; with ``keep=1`` the latest
      checkpoint (12) and the best by PSNR (4) survive, 8 is deleted:

      >>> import tempfile, grain, jax, jax.numpy as jnp, optax
      >>> from converse_jax.train.state import create_train_state
      >>> state = create_train_state({"params": {"w": jnp.arange(3.0)}}, optax.sgd(0.1), jax.random.PRNGKey(0))
      >>> data = iter(grain.MapDataset.range(100).to_iter_dataset())  # stands in for the batches
      >>> with tempfile.TemporaryDirectory() as workdir:
      ...     ckpt = Checkpointer(workdir, keep=1)
      ...     for step in (4, 8, 12):
      ...         _ = [next(data) for _ in range(4)]  # four "batches" per step
      ...         metrics = {"psnr": 30.0 - step} if step < 12 else None  # evaluated at 4 and 8
      ...         print(ckpt.save(step, state.replace(step=jnp.int32(step)), data, metrics))
      ...     print(ckpt.save(12, state, data))  # exists already: nothing written
      ...     ckpt.wait()
      ...     print(ckpt.all_steps(), ckpt.latest_step(), ckpt.best_step(), ckpt.metrics(4))
      ...     resumed = iter(grain.MapDataset.range(100).to_iter_dataset())
      ...     restored = ckpt.restore(4, abstract_like(state), resumed)
      ...     ckpt.close()
      True
      True
      True
      False
      [4, 12] 12 4 {'psnr': 26.0}
      >>> int(restored.step), restored.params["w"].tolist()
      (4, [0.0, 1.0, 2.0])
      >>> next(resumed)  # the iterator continues where it was at step 4
      4
    """

    def __init__(self, workdir: str | os.PathLike, *, keep: int, best_metric: str = "psnr") -> None:
        if int(keep) < 1:
            raise ValueError(f"keep (keep_checkpoints) must be >= 1, got {keep!r}")
        # orbax refuses relative paths; a user's relative workdir is taken from the current directory.
        self.directory = os.path.join(os.fspath(absolute(workdir, "workdir")), CHECKPOINT_DIR)
        rank = functools.partial(rank_value, name=best_metric)
        policy = ocp_preservation.AnyPreservationPolicy(
            [
                ocp_preservation.LatestN(n=int(keep)),
                ocp_preservation.BestN(get_metric_fn=rank, n=1, keep_checkpoints_without_metrics=False),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            best_fn=rank,  # also makes orbax store the metrics with each checkpoint
            best_mode="max",
            cleanup_tmp_directories=True,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        # A failed asynchronous save or read prints late tracebacks from orbax's threads before
        # the failure reaches this class, which reports it in one line: dropped from the start.
        quiet_closed_loop_noise()
        self._failed = False
        self.workdir = os.path.dirname(self.directory)

    def all_steps(self) -> list[int]:
        """Steps of the checkpoints on disk, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """Most recent complete checkpoint, or None."""
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """Checkpoint with the highest ``best_metric`` among those saved with metrics, or None."""
        return self._manager.best_step()

    def metrics(self, step: int) -> dict[str, float] | None:
        """The validation metrics stored with checkpoint ``step`` (None if saved without)."""
        return self._manager.metrics(step)

    def save(
        self,
        step: int,
        state: TrainState,
        data_iterator: grain.DatasetIterator,
        metrics: dict[str, float] | None = None,
    ) -> bool:
        """Starts saving ``state``, the iterator position and their integrity record as checkpoint ``step``.

        Returns False (and writes nothing) if checkpoint ``step`` already exists.  ``metrics``
        (``{'psnr': dB, ...}``) ranks the checkpoint for the "best" one (by ``best_metric``).  Raises
        :class:`~converse_jax.train.faults.TrainingError` (and writes nothing) if a state array
        holds a NaN or an infinity.
        """
        if step in self._manager.all_steps():
            return False
        host = jax.tree.map(to_host, state)
        bad = nonfinite_leaves(host)
        if bad:
            raise TrainingError(f"checkpoint {step} not saved: non-finite values in {', '.join(bad[:3])}")
        crc = data_crc(data_iterator.get_state())
        crcs = [crc] if jax.process_count() == 1 else multihost_utils.process_allgather(np.uint32(crc)).tolist()
        with self._reporting_disk_full(step):
            return self._manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    data=grain.checkpoint.CheckpointSave(data_iterator),
                    integrity=ocp.args.JsonSave(make_record(host, crcs)),
                ),
                metrics=None if metrics is None else {k: float(v) for k, v in metrics.items()},
                force=True,
            )

    @contextlib.contextmanager
    def _reporting_disk_full(self, step: int | None) -> Iterator[None]:
        """Turns a save that failed on a full disk (this one or an earlier asynchronous one) into one
        :class:`~converse_jax.train.faults.TrainingError` line, after removing the unfinished checkpoint."""
        try:
            yield
        except Exception as error:
            if not disk_full(error):
                raise
            self._failed = True
            _SAVE_FAILED.set()
            with contextlib.suppress(Exception):
                self._manager.wait_until_finished()
            self._remove_unfinished()
            kept = self.all_steps()
            raise TrainingError(
                f"the disk is full: a checkpoint could not be written in {self.directory} ({root_cause(error)}); "
                f"its partial files were removed, the checkpoints kept are {kept or 'none'}; free space and run the "
                "same command to resume"
            ) from None

    def _remove_unfinished(self) -> None:
        """Removes orbax's temporary folders of checkpoints that were never finished (process 0).

        Writes still in flight in orbax's threads may recreate them for a moment: removed until
        none is left for half a second (at most 10 s).
        """
        if jax.process_index() != 0:
            return
        deadline, quiet_since = time.monotonic() + 10, None
        while time.monotonic() < deadline:
            names = [n for n in os.listdir(self.directory) if ".orbax-checkpoint-tmp" in n] if os.path.isdir(self.directory) else []
            for name in names:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            now = time.monotonic()
            quiet_since = (quiet_since or now) if not names else None
            if quiet_since is not None and now - quiet_since >= 0.5:
                return
            time.sleep(0.1)

    def step_path(self, step: int) -> str:
        """The folder of checkpoint ``step``."""
        return os.path.join(self.directory, str(int(step)))

    def _record(self, step: int) -> dict[str, Any] | None:
        """The integrity record of ``step`` (None for a checkpoint written without one)."""
        if not (as_path(self.step_path(step)) / "integrity").is_dir():
            logging.warning("checkpoint %d has no integrity record (an older version wrote it); not verified", step)
            return None
        try:
            record = self._manager.restore(step, args=ocp.args.Composite(integrity=ocp.args.JsonRestore()))
            record = record["integrity"]
            valid = (
                record["version"] == RECORD_VERSION
                and len(record["data"]) == jax.process_count()
                and all({"shape", "dtype", "crc32"} <= entry.keys() for entry in record["state"].values())
            )
        except Exception as error:  # any unreadable record is damage
            reason = f"its integrity record cannot be read ({root_cause(error)})"
            raise CheckpointDamaged(step, self.step_path(step), reason) from None
        if not valid:
            raise CheckpointDamaged(step, self.step_path(step), "its integrity record is not valid")
        return record

    def _check_data(self, step: int, record: dict[str, Any] | None) -> None:
        """Checks this process's data-iterator JSON of ``step`` against the record."""
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        what = f"its data-iterator state {name}"
        try:
            state = json.loads((as_path(self.step_path(step)) / "data" / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CheckpointDamaged(step, self.step_path(step), f"{what} cannot be read ({root_cause(error)})") from None
        if not isinstance(state, dict):
            raise CheckpointDamaged(step, self.step_path(step), f"{what} is not a JSON object")
        if record is not None and data_crc(state) != record["data"][jax.process_index()]:
            raise CheckpointDamaged(step, self.step_path(step), f"{what} differs from its checksum")

    def _verified_state(self, step: int, abstract_state: TrainState) -> TrainState:
        """Checkpoint ``step``'s state, checked against its integrity record and for finiteness."""
        record = self._record(step)
        if record is not None:
            mismatch = layout_mismatch(record, abstract_state)
            if mismatch:
                raise TrainingError(
                    f"checkpoint {step} at {self.step_path(step)} holds another train state than this config "
                    f"builds ({mismatch}); use the config it was written with, or another workdir"
                )
        self._check_data(step, record)
        try:
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            state = self._manager.restore(step, args=args)
        except Exception as error:  # tensorstore/orbax raise many types for unreadable files
            reason = f"its arrays cannot be read ({root_cause(error)})"
            raise CheckpointDamaged(step, self.step_path(step), reason) from None
        host = jax.tree.map(to_host, state["state"])
        reason = state_mismatch(record, host) if record is not None else None
        bad = nonfinite_leaves(host)
        if reason is None and bad:
            reason = f"non-finite values in {', '.join(bad[:3])}"
        if reason is not None:
            raise CheckpointDamaged(step, self.step_path(step), reason)
        return state["state"]

    def restore(
        self, step: int, abstract_state: TrainState, data_iterator: grain.DatasetIterator | None = None
    ) -> TrainState:
        """Reads checkpoint ``step`` and verifies it against its integrity record.

        Args:
          step: an existing step.
          abstract_state: a state of ``jax.ShapeDtypeStruct`` leaves with shardings (e.g.
            ``jax.eval_shape`` of the initialisation plus the target shardings); arrays are
            restored with those shardings.
          data_iterator: if given, its position is set to the saved one (in place).

        Returns:
          the restored state.

        Raises:
          CheckpointDamaged: the checkpoint cannot be read, fails its checksums or holds a
            non-finite array (on any process).
          ValueError: ``step`` is not a checkpoint.
          TrainingError: its arrays have other names, shapes or dtypes than ``abstract_state``
            (another config wrote it).
        """
        if step not in self._manager.all_steps():
            raise ValueError(f"step {step} is not a checkpoint in {self.directory}; have {self.all_steps()}")
        try:
            state, reason = self._verified_state(step, abstract_state), None
        except CheckpointDamaged as error:
            state, reason = None, error
        if _agree(reason is not None):
            raise reason or CheckpointDamaged(step, self.step_path(step), "another process could not verify it")
        if data_iterator is not None:
            try:
                args = ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(data_iterator))
                self._manager.restore(step, args=args)
            except Exception as error:  # grain raises KeyError/TypeError/... for a bogus state
                reason = f"its data-iterator state cannot be restored ({root_cause(error)})"
                raise CheckpointDamaged(step, self.step_path(step), reason) from None
        return state

    def read_state(self, step: int) -> dict[str, Any]:
        """Checkpoint ``step``'s train state as saved, without a template (for inspection and export).

        Returns:
          nested dicts of numpy arrays with the :class:`TrainState` field names as top-level keys
          (``'step'``, ``'params'``, ``'batch_stats'``, ``'opt_state'``, ``'ema_params'``,
          ``'rng'``); containers inside ``opt_state`` come back as dicts or lists.
        """
        if step not in self._manager.all_steps():
            raise ValueError(f"step {step} is not a checkpoint in {self.directory}; have {self.all_steps()}")
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        return jax.tree.map(np.asarray, restored["state"])

    def reload(self) -> None:
        """Reads the list of checkpoints from disk again (after folders were moved)."""
        self._manager.reload()

    def wait(self) -> None:
        """Blocks until every started save is on disk (a full disk: one-line ``TrainingError``)."""
        with self._reporting_disk_full(None):
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager (after a full disk was reported: quietly)."""
        if not self._failed:
            with self._reporting_disk_full(None):
                self._manager.close()
            return
        with contextlib.suppress(Exception):
            self._manager.close()
        self._remove_unfinished()


def abstract_like(state: TrainState) -> TrainState:
    """``jax.ShapeDtypeStruct`` tree (with shardings) of a concrete or ``eval_shape`` state.

    The template :meth:`Checkpointer.restore` takes: same tree structure, every leaf a
    ``jax.ShapeDtypeStruct`` of the leaf's shape, dtype and sharding (None for ``eval_shape``
    leaves without one).  No array data is kept.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from converse_jax.train.state import create_train_state
      >>> state = create_train_state({"params": {"w": jnp.zeros((3, 2))}}, optax.adam(1e-3), jax.random.PRNGKey(0))
      >>> abstract = abstract_like(state)
      >>> abstract.params["w"].shape, abstract.params["w"].dtype, abstract.rng.dtype
      ((3, 2), dtype('float32'), dtype('uint32'))
      >>> all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(abstract))
      True
      >>> abstract.params["w"].sharding == state.params["w"].sharding
      True
    """
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), state
    )
