"""Training the ConverseNets: optax, every device through a ``Mesh``, orbax checkpoints, metrics.

Entry point: ``python train.py --config=configs/NAME.py --workdir=DIR`` (repository root), which
calls :func:`maybe_initialize_distributed` and :func:`train_and_evaluate`.  Modules:

* :mod:`~converse_jax.train.state` -- :class:`TrainState` (step, params, batch_stats,
  opt_state, ema_params, rng);
* :mod:`~converse_jax.train.optim` -- Adam, KAIR step schedule, gradient clipping, EMA;
* :mod:`~converse_jax.train.mesh` -- 1-D device mesh, shardings, global batches, multi-host;
* :mod:`~converse_jax.train.step` -- jitted train step (with gradient accumulation), per-task
  model call, evaluation;
* :mod:`~converse_jax.train.memory` -- the step's memory estimate against the device's, settings that fit;
* :mod:`~converse_jax.train.shorten` -- ``--steps N``: a recipe shortened with its schedule;
* :mod:`~converse_jax.train.report` -- what a run says at start and at the end;
* :mod:`~converse_jax.train.checkpoint` -- orbax checkpoints with data-iterator state;
* :mod:`~converse_jax.train.integrity` -- checksums of checkpoints, verified at restore;
* :mod:`~converse_jax.train.resume` -- resuming from the newest intact checkpoint;
* :mod:`~converse_jax.train.faults` -- the non-finite policy and :class:`TrainingError`;
* :mod:`~converse_jax.train.metrics` -- ``metrics.jsonl`` and TensorBoard writer;
* :mod:`~converse_jax.train.loop` -- :func:`train_and_evaluate`.
"""

from converse_jax.train.checkpoint import Checkpointer, abstract_like, quiet_orbax_logs
from converse_jax.train.faults import NONFINITE_POLICIES, PendingSteps, TrainingError
from converse_jax.train.loop import REQUIRED_FIELDS, check_config, check_model_data, train_and_evaluate
from converse_jax.train.mesh import (
    DATA_AXIS,
    batch_sharding,
    check_batch_size,
    create_mesh,
    global_batch,
    maybe_initialize_distributed,
    replicate,
    replicated_sharding,
    to_host,
)
from converse_jax.train.metrics import MetricWriter, read_metrics
from converse_jax.train.optim import ema_decay_at, ema_update, lr_schedule, make_optimizer
from converse_jax.train.resume import resume_from_intact
from converse_jax.train.state import TrainState, create_train_state
from converse_jax.train.step import (
    apply_model,
    evaluate,
    init_variables,
    make_predict_fn,
    make_train_step,
)

__all__ = [
    "DATA_AXIS",
    "NONFINITE_POLICIES",
    "REQUIRED_FIELDS",
    "Checkpointer",
    "MetricWriter",
    "PendingSteps",
    "TrainState",
    "TrainingError",
    "abstract_like",
    "apply_model",
    "batch_sharding",
    "check_batch_size",
    "check_config",
    "check_model_data",
    "create_mesh",
    "create_train_state",
    "ema_decay_at",
    "ema_update",
    "evaluate",
    "global_batch",
    "init_variables",
    "lr_schedule",
    "make_optimizer",
    "make_predict_fn",
    "make_train_step",
    "maybe_initialize_distributed",
    "quiet_orbax_logs",
    "read_metrics",
    "replicate",
    "replicated_sharding",
    "resume_from_intact",
    "to_host",
    "train_and_evaluate",
]
