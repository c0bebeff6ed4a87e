"""The training loop: ``train_and_evaluate(config, workdir)``.

What one run does, on every device of every process (see :mod:`converse_jax.train.mesh`):

1. Checks before writing anything: builds the network ``get_model(config.model,
   **config.model_overrides)``, with ``remat=True`` / ``dtype=config.dtype`` where set
   (``config.dtype``, optional: the computation dtype, e.g. ``"bfloat16"``), traces it on one
   patch, checks the batch against the devices and the workdir (:mod:`converse_jax.train.workdir`:
   a new or empty folder, or a run of the same network), and builds the data iterator of this
   process (``config.data``, seed ``config.seed``).  Then it takes the workdir's lock
   (:mod:`converse_jax.train.lock`: one run per workdir), builds the validation set and Adam with
   the step schedule (:mod:`converse_jax.train.optim`).  ``workdir/config.json`` (the config and
   the module that registered the network) is written once the run resumed and its step fits in
   memory (steps 2 and 3); a run refused before that leaves no folder it created behind.
2. Resumes from the newest intact checkpoint in ``workdir/checkpoints`` if there is one (train
   state, RNG and data-iterator position -- the resumed run computes bit-identically what the
   uninterrupted run would have; damaged checkpoints are reported and set aside, see
   :mod:`converse_jax.train.resume`), else initialises from
   ``config.seed``.
3. Compiles the train step ahead of time for the first batch and compares XLA's memory estimate
   of it with what the device has (:mod:`converse_jax.train.memory`): a step that does not fit
   stops the run before its first step with one line giving both numbers and the setting that
   fits (``config.remat``, ``config.grad_accum_steps`` micro-batches), or, with
   ``config.fit_memory='auto'``, runs in that setting.  Then it logs one block: network, parameter
   count, batch (global, per device, micro-batches), steps and milestones, the memory estimate,
   the devices (:func:`converse_jax.train.report.start_block`); a learning-rate milestone at or
   past the end of the run is a warning.
4. Runs the train step until ``config.num_train_steps``, the host at most
   :data:`MAX_STEPS_AHEAD` steps ahead of the device; every ``log_every_steps`` it
   writes ``{'step', 'loss' (mean over the finite steps since the previous record),
   'learning_rate', 'steps_per_sec'[, 'nonfinite_steps']}`` to ``workdir/metrics.jsonl`` and
   TensorBoard; a non-finite loss or gradient is handled as ``config.on_nonfinite`` says
   (:mod:`converse_jax.train.faults`; checked at every record and before every save, so a
   non-finite state is never saved); every ``eval_every_steps``
   (and at the end) it evaluates the EMA weights on the validation set with the model's task
   (:meth:`converse_jax.tasks.Task.scores`: PSNR/SSIM on the uint8-rounded, clipped output as
   the evaluation protocol -- border 0 for denoising, ``scale`` for SR, 1 for deblurring -- plus
   ``psnr_y``/``ssim_y`` for RGB SR), adds them to that step's record, and saves a checkpoint
   ranked by the task's :attr:`~converse_jax.tasks.Task.best_metric` (Y PSNR for SR, PSNR
   otherwise); it also saves every ``checkpoint_every_steps`` and at the end.
5. On SIGTERM (preemption) or SIGINT (Ctrl-C) it finishes the current step, saves a checkpoint and returns (the
   program then exits with status 0); on multi-process jobs the processes agree on the step
   through JAX's preemption sync point.
6. At the end, and after such a signal, it logs one line: the best checkpoint's step, its score and
   folder, and the ``converse-jax evaluate`` command for it (:func:`converse_jax.train.report.end_line`).

A tqdm progress bar (process 0, stderr) shows steps/s and the last logged loss.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
from absl import logging
from tqdm import tqdm

from converse_jax.utils.atomic import write_text
from converse_jax.utils.paths import as_path, is_remote, makedirs
from converse_jax.data import create_eval_set, create_train_iterator, default_data_config
from converse_jax.models import ModelSpec, get_model, get_spec, spec_of
from converse_jax.tasks import Task, get_task
from converse_jax.train.checkpoint import Checkpointer
from converse_jax.train.faults import PendingSteps, Preemption, check_policy
from converse_jax.train.lock import LOCK_NAME, acquire
from converse_jax.train.memory import FIT_POLICIES, Setting, capped, check_setting, fit_step, mesh_memory
from converse_jax.train.metrics import MetricWriter
from converse_jax.train.mesh import check_batch_size, create_mesh, global_batch, replicated_sharding, to_host
from converse_jax.train.optim import lr_schedule, make_optimizer
from converse_jax.train.report import end_line, start_block
from converse_jax.train.resume import resume_from_intact
from converse_jax.train.shorten import milestones_past_end
from converse_jax.train.state import TrainState, create_train_state
from converse_jax.train.step import evaluate, init_variables, make_predict_fn, make_train_step
from converse_jax.train.workdir import check_workdir

REQUIRED_FIELDS = (
    "model",
    "model_overrides",
    "data",
    "batch_size",
    "num_train_steps",
    "learning_rate",
    "lr_milestones",
    "lr_decay",
    "grad_clip_norm",
    "ema_decay",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "seed",
    "remat",
)
"""Fields every training config has (see ``configs/default.py``).  Optional: ``on_nonfinite``
(``'stop'`` when absent; :data:`converse_jax.train.faults.NONFINITE_POLICIES`), ``grad_accum_steps``
(1), ``fit_memory`` (``'stop'``; :data:`converse_jax.train.memory.FIT_POLICIES`) and
``memory_limit_gb`` (0: none)."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``ValueError`` naming the field if ``config`` lacks a field or holds a bad value.

    Checks that every field of :data:`REQUIRED_FIELDS` is present, the step counts, batch size
    and ``keep_checkpoints`` are positive integers, ``eval_every_steps`` and ``seed`` are
    non-negative integers, ``ema_decay`` is in [0, 1), ``on_nonfinite`` (if present) is
    ``'stop'`` or ``'skip'``, ``grad_accum_steps`` (if present) is a positive integer,
    ``fit_memory`` (if present) one of ``'stop'``, ``'auto'``, ``'off'``, and ``remat`` is not
    hidden in ``model_overrides``.  Returns None for a valid config.

    Example:
      A complete config for a tiny run (``configs/*.py`` build them with
      ``configs/default.py``'s ``base_config``):

      >>> import ml_collections
      >>> from converse_jax.data import default_data_config
      >>> config = ml_collections.ConfigDict(dict(
      ...     model="converse_dncnn", model_overrides=dict(features=4, num_blocks=1),
      ...     data=default_data_config("denoise"), batch_size=2, num_train_steps=10,
      ...     learning_rate=1e-3, lr_milestones=(8,), lr_decay=0.5, grad_clip_norm=None,
      ...     ema_decay=0.9, log_every_steps=5, eval_every_steps=0, checkpoint_every_steps=10,
      ...     keep_checkpoints=1, seed=0, remat=False))
      >>> check_config(config)  # valid: returns None
      >>> config.ema_decay = 1.0
      >>> check_config(config)
      Traceback (most recent call last):
      ...
      ValueError: config.ema_decay must be in [0, 1), got 1.0
      >>> del config["seed"]
      >>> check_config(config)
      Traceback (most recent call last):
      ...
      ValueError: config is missing the fields ['seed']
    """
    missing = [f for f in REQUIRED_FIELDS if f not in config]
    if missing:
        raise ValueError(f"config is missing the fields {missing}")
    for name in ("batch_size", "num_train_steps", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
    for name in ("eval_every_steps", "seed"):
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"config.{name} must be a non-negative integer (0: never), got {value!r}")
    rate = config.learning_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"config.learning_rate must be a finite number > 0, got {rate!r}")
    if not 0 <= config.ema_decay < 1:
        raise ValueError(f"config.ema_decay must be in [0, 1), got {config.ema_decay!r}")
    check_policy(config.get("on_nonfinite", "stop"))
    accum = config.get("grad_accum_steps", 1)
    if isinstance(accum, bool) or not isinstance(accum, int) or accum < 1:
        raise ValueError(f"config.grad_accum_steps must be a positive integer, got {accum!r}")
    if config.get("fit_memory", "stop") not in FIT_POLICIES:
        raise ValueError(f"config.fit_memory must be one of {FIT_POLICIES}, got {config.fit_memory!r}")
    limit = config.get("memory_limit_gb", 0.0)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 0:
        raise ValueError(f"config.memory_limit_gb must be a number >= 0 (0: the device's memory), got {limit!r}")
    if "remat" in config.model_overrides:
        raise ValueError("set config.remat, not config.model_overrides.remat")


def _example_batch(data_cfg: ml_collections.ConfigDict, task: Task) -> dict[str, np.ndarray]:
    """Placeholders of the shapes of one training batch (batch 1) for initialisation: the task's."""
    cfg = default_data_config(data_cfg.task)
    cfg.update(data_cfg)
    side = cfg.patch_size // _scale(cfg)
    x = np.zeros((1, side, side, cfg.channels), np.float32)
    return task.placeholder_batch(x, **({"kernel_size": cfg.kernel_size} if "kernel_size" in cfg else {}))


def _scale(data_cfg: ml_collections.ConfigDict) -> int:
    """The output/input size ratio of the data: ``data_cfg.scale`` for SR data, else 1."""
    return int(data_cfg.get("scale", 1)) if get_task(data_cfg.task).upscales else 1


def check_model_data(model: Any, data_cfg: ml_collections.ConfigDict) -> None:
    """``ValueError`` if what the network needs (its record's
    :meth:`~converse_jax.models.ModelSpec.data_values`: ``channels``, the SR ``scale``, a
    non-blind network's ``kernel_size``) disagrees with the data config.

    ``model``: a registered network (only its attributes are read, nothing is run); ``data_cfg``:
    a data config (fields it lacks take :func:`converse_jax.data.default_data_config`'s values;
    only the fields the data has are compared). Returns None when they agree.

    Example:
      >>> from converse_jax.data import default_data_config
      >>> from converse_jax.models import get_model
      >>> model = get_model("converse_dncnn", features=4, num_blocks=1)  # gray: in_channels=1
      >>> data = default_data_config("denoise")
      >>> check_model_data(model, data)  # gray denoising data: fine
      >>> data.channels = 3
      >>> check_model_data(model, data)
      Traceback (most recent call last):
      ...
      ValueError: config.model_overrides.in_channels=1 does not match config.data.channels=3
    """
    cfg = default_data_config(data_cfg.task)
    cfg.update(data_cfg)
    spec = spec_of(model)
    for data_field, value in spec.data_values(model).items():
        if data_field in cfg and value != cfg[data_field]:
            hparam = spec.data_hparams.get(data_field)
            what = f"config.model_overrides.{hparam}" if hparam else f"{spec.name}'s fixed {data_field}"
            raise ValueError(f"{what}={value!r} does not match config.data.{data_field}={cfg[data_field]!r}")


def _check_patch_size(model: Any, task: Task, data_cfg: ml_collections.ConfigDict, mesh: Any) -> None:
    """``ValueError`` naming ``config.data.patch_size`` if the network cannot take patches of that size
    (traced only: :func:`jax.eval_shape` of the initialisation, nothing is computed)."""
    example = _example_batch(data_cfg, task)
    try:
        jax.eval_shape(lambda: init_variables(model, task.name, example, jax.random.PRNGKey(0), mesh))
    except ValueError as err:
        side = example["input"].shape[1]
        raise ValueError(
            f"config.data.patch_size={data_cfg.patch_size}: {spec_of(model).name} cannot take {side}x{side} input "
            f"patches ({' '.join(str(err).split())})"
        ) from None


def _config_record(config: ml_collections.ConfigDict, spec: ModelSpec) -> dict[str, Any]:
    """What ``workdir/config.json`` holds: the config and ``model_module``, the module that
    registered the network (the tools import it when given the run)."""
    return {**json.loads(config.to_json_best_effort()), "model_module": spec.module}


def _write_config(record: dict[str, Any], workdir: str) -> None:
    """``workdir/config.json`` (process 0), written atomically."""
    write_text(os.path.join(workdir, "config.json"), json.dumps(record, indent=2, sort_keys=True) + "\n")


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    train_iterator: grain.DatasetIterator | None = None,
) -> TrainState:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints) and returns the state.

    A SIGTERM or SIGINT received at any time (set-up included) makes the run finish the current step, save
    a checkpoint and return.

    Args:
      config: a training config (``configs/*.py``; fields :data:`REQUIRED_FIELDS`).
      workdir: folder for ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/``, ``config.json``.
      train_iterator: this process's training batches instead of
        ``create_train_iterator(config.data, ...)``, e.g. that iterator wrapped in a
        ``grain.DatasetIterator`` that transforms the batches; its ``get_state()`` must be JSON
        (it is checkpointed).

    Raises:
      TrainingError: a non-finite step under ``on_nonfinite='stop'``, or no intact checkpoint
        to resume from (:mod:`converse_jax.train.faults`); the message is one line.

    Returns:
      the final :class:`TrainState` (replicated global arrays): at ``num_train_steps``, or at
      the step where a SIGTERM or SIGINT stopped the run.

    Example:
      A real run compiles and trains, which takes longer than an example should; see
      ``configs/demo.py`` for a small one (a Converse-DnCNN that trains in minutes on a CPU:
      ``python train.py --config=configs/demo.py --workdir=/tmp/demo``, or ``make demo``).
      What runs here is the validation that comes first: a config that cannot work is refused
      before anything is compiled or written (:func:`check_config`, then the model/data checks).

      >>> import os, tempfile, ml_collections
      >>> from converse_jax.data import default_data_config
      >>> config = ml_collections.ConfigDict(dict(
      ...     model="converse_dncnn", model_overrides=dict(features=4, num_blocks=1),
      ...     data=default_data_config("sr"), batch_size=2, num_train_steps=10,
      ...     learning_rate=1e-3, lr_milestones=(8,), lr_decay=0.5, grad_clip_norm=None,
      ...     ema_decay=0.9, log_every_steps=5, eval_every_steps=0, checkpoint_every_steps=10,
      ...     keep_checkpoints=1, seed=0, remat=False))
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     workdir = os.path.join(tmp, "run")
      ...     try:
      ...         train_and_evaluate(config, workdir)  # SR data for a denoising network
      ...     except ValueError as error:
      ...         print(error)
      ...     print(os.path.exists(workdir))  # nothing was written
      config.data.task must be 'denoise' for model 'converse_dncnn' (task 'denoise'), got 'sr'
      False
    """
    check_config(config)
    as_path(workdir, "workdir")  # a gs:// workdir without the gcs extra fails here, before anything is written
    with Preemption() as preemption:
        return _train(config, os.fspath(workdir), preemption, train_iterator)


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported by its name (not ``__main__``, not a file loaded by path)."""
    try:
        return module != "__main__" and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _task_of(config: ml_collections.ConfigDict) -> tuple[ModelSpec, Task]:
    """The record and :class:`~converse_jax.tasks.Task` of ``config.model``, checked against
    ``config.data.task``; the network's module must be importable by name (the run records it)."""
    try:
        spec = get_spec(config.model)
    except ValueError as err:
        raise ValueError(f"config.model: {err}") from None
    if not _importable(spec.module):
        raise ValueError(
            f"config.model: {spec.name!r} is defined in {spec.module!r}, which cannot be imported by name; define it "
            "in a module on PYTHONPATH (the run records the module, and evaluate/restore/export import it)"
        )
    task = get_task(spec.task)
    if config.data.task != task.data_task:
        raise ValueError(
            f"config.data.task must be {task.data_task!r} for model {config.model!r} (task {task.name!r}), "
            f"got {config.data.task!r}"
        )
    return spec, task


def _train(
    config: ml_collections.ConfigDict,
    workdir: str,
    preemption: Preemption,
    train_iter: grain.DatasetIterator | None,
) -> TrainState:
    """The body of :func:`train_and_evaluate`: set-up, resumption, :func:`_run_steps`, clean-up."""
    spec, task = _task_of(config)
    is_main = jax.process_index() == 0
    # config.dtype (optional): computation dtype, e.g. "bfloat16"; parameters and optimizer state stay float32.
    # Passed only when set, so a network without remat/dtype hyper-parameters trains as it is.
    options = {"remat": True} if config.remat else {}
    if config.get("dtype") is not None:
        options["dtype"] = config.dtype
    try:
        model = get_model(config.model, **options, **config.model_overrides.to_dict())
    except (TypeError, ValueError) as err:
        raise ValueError(f"config.model_overrides: {' '.join(str(err).split())}") from None
    check_model_data(model, config.data)
    mesh = create_mesh()
    _check_patch_size(model, task, config.data, mesh)
    check_batch_size(config.batch_size, mesh)
    check_setting(Setting(config.remat, config.get("grad_accum_steps", 1)), config.batch_size, mesh.devices.size)
    check_workdir(workdir, _config_record(config, spec))
    past = milestones_past_end(config)
    if past and is_main:
        logging.warning(
            "config.lr_milestones %s: at or past the end of the run (%s steps), never applied "
            "(--steps N shortens a recipe with its milestones)", ", ".join(f"{m:,}" for m in past),
            f"{config.num_train_steps:,}",
        )  # fmt: skip
    if train_iter is None:
        train_iter = create_train_iterator(
            config.data, global_batch_size=config.batch_size, seed=config.seed,
            process_index=jax.process_index(), process_count=jax.process_count(),
        )  # fmt: skip
    # Every check above wrote nothing; from here on the run owns the workdir.
    created = not as_path(workdir, "--workdir").is_dir()
    lock = None
    try:
        if is_main:
            makedirs(workdir, "--workdir")
            lock = acquire(workdir)
        return _train_owned(config, workdir, preemption, train_iter, spec, task, model, mesh)
    except BaseException:
        if created and lock is not None and not is_remote(workdir):
            _remove_if_untouched(workdir)
        raise
    finally:
        close = getattr(train_iter, "close", None)
        if close is not None:
            close()
        if lock is not None:
            lock.release()


def _remove_if_untouched(workdir: str) -> None:
    """Removes a workdir this run created when the run stopped before writing anything but its lock."""
    for name in ("checkpoints", "tensorboard"):
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
    if os.listdir(workdir) == [LOCK_NAME]:
        os.remove(os.path.join(workdir, LOCK_NAME))
        os.rmdir(workdir)


def _train_owned(config, workdir, preemption, train_iter, spec, task, model, mesh) -> TrainState:
    """The run once it holds the workdir: resumption, the memory check, ``config.json``, the steps."""
    is_main = jax.process_index() == 0
    tx = make_optimizer(config.learning_rate, config.lr_milestones, config.lr_decay, config.grad_clip_norm)
    init_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
    example = _example_batch(config.data, task)

    def fresh_state() -> TrainState:
        variables = init_variables(model, task, example, init_key, mesh)
        return jax.jit(lambda v, k: create_train_state(v, tx, k), out_shardings=replicated_sharding(mesh))(
            variables, state_key
        )

    ckpt = Checkpointer(workdir, keep=config.keep_checkpoints, best_metric=task.best_metric)
    try:
        abstract = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated_sharding(mesh)),
            jax.eval_shape(fresh_state),
        )
        state = resume_from_intact(ckpt, abstract, train_iter)
        resumed = state is not None
        state = state if resumed else fresh_state()
        train_step, config, first = _fit_step(config, model, task, tx, mesh, state, train_iter)
        if is_main:  # the config the checkpoints are trained with, kept with them
            _write_config(_config_record(config, spec), workdir)
        writer = MetricWriter(workdir, enabled=is_main, resume_step=int(to_host(state.step)) if resumed else None)
        batches = itertools.chain([first], (global_batch(batch, mesh) for batch in train_iter))
        try:
            state = _run_steps(config, state, train_step, batches, train_iter, ckpt, writer, model, task, mesh,
                               preemption)  # fmt: skip
        finally:
            writer.close()
        ckpt.wait()
        if is_main:
            best = ckpt.best_step()
            metrics = None if best is None else ckpt.metrics(best)
            logging.info("%s", end_line(workdir, task, config.data, best, ckpt.latest_step(), metrics))
        return state
    finally:
        ckpt.close()


def step_compiler(
    model: Any, tx: Any, task: Task, ema_decay: float, mesh: Any, state: TrainState, batch: dict[str, jax.Array]
) -> Callable[[Setting], jax.stages.Compiled]:
    """``setting -> make_train_step(...)`` compiled ahead of time for ``state`` and ``batch``.

    The network is ``model`` with ``remat=setting.remat``; the step accumulates
    ``setting.grad_accum_steps`` micro-batches.  ``state`` and ``batch`` may be arrays or
    ``jax.ShapeDtypeStruct`` with shardings (replicated state, batch sharded on ``'data'``).

    Example:
      >>> import jax, numpy as np
      >>> from converse_jax.models import get_model
      >>> from converse_jax.tasks import get_task
      >>> from converse_jax.train import create_mesh, create_train_state, global_batch, make_optimizer
      >>> from converse_jax.train.memory import StepMemory
      >>> mesh, tx = create_mesh(), make_optimizer(1e-3, [], 0.5)
      >>> model = get_model("converse_dncnn", features=4, num_blocks=1)
      >>> zeros = np.zeros((2 * jax.device_count(), 8, 8, 1), np.float32)
      >>> variables = init_variables(model, "denoise", {"input": zeros}, jax.random.PRNGKey(0), mesh)
      >>> state = jax.eval_shape(lambda: create_train_state(variables, tx, jax.random.PRNGKey(1)))
      >>> state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated_sharding(mesh)), state)
      >>> compile_step = step_compiler(model, tx, get_task("denoise"), 0.999, mesh, state,
      ...                              global_batch({"input": zeros, "target": zeros}, mesh))
      >>> memory = [StepMemory.of(compile_step(Setting(False, k))) for k in (1, 2)]
      >>> memory[1].temp < memory[0].temp  # two micro-batches: fewer activations alive at once
      True
    """

    def compile_step(setting: Setting) -> jax.stages.Compiled:
        step = make_train_step(
            _with_remat(model, setting.remat), tx, task=task.name, ema_decay=ema_decay, mesh=mesh,
            grad_accum_steps=setting.grad_accum_steps,
        )  # fmt: skip
        return step.lower(state, batch).compile()

    return compile_step


def _with_remat(model: Any, remat: bool) -> Any:
    """``model`` with ``remat`` set; a network without that hyper-parameter (a user's) is kept as it is
    when ``remat`` is off, and refused in one line when it is on."""
    if "remat" in getattr(type(model), "__dataclass_fields__", {}):
        return model.clone(remat=remat)
    if remat:
        raise ValueError(f"config.remat: {type(model).__name__} has no remat hyper-parameter")
    return model


def _fit_step(config, model, task, tx, mesh, state, train_iter):
    """The train step compiled ahead of time in a memory setting that fits (:func:`fit_step`).

    Compiled for ``state`` and the next batch of ``train_iter``.  Returns ``(compiled step, config,
    that batch)``: the config with the setting applied (a copy) when ``config.fit_memory='auto'``
    changed it; the batch is the first step's.
    Logs the run's :func:`start_block` (every process: each has its own devices and memory).
    """
    batch = global_batch(next(train_iter), mesh)
    current = Setting(config.remat, config.get("grad_accum_steps", 1))
    have = capped(mesh_memory(mesh), config.get("memory_limit_gb", 0.0))
    compile_step = step_compiler(model, tx, task, config.ema_decay, mesh, state, batch)
    compiled, setting, memory = fit_step(
        compile_step, current, per_device_batch=config.batch_size // mesh.devices.size, have=have,
        policy=config.get("fit_memory", "stop"),
    )  # fmt: skip
    is_main = jax.process_index() == 0
    if setting != current:
        config = config.copy_and_resolve_references()
        with config.unlocked():
            config.remat, config.grad_accum_steps = setting.remat, setting.grad_accum_steps
    logging.info("%s", start_block(config, task, mesh, state.params, setting, memory, have, int(to_host(state.step))))
    if is_main and state.batch_stats and setting.grad_accum_steps > 1:
        logging.warning(
            "%s has BatchNorm: with %d micro-batches each is normalised by its own statistics (%d examples)",
            config.model, setting.grad_accum_steps, config.batch_size // setting.grad_accum_steps,
        )  # fmt: skip
    return compiled, config, batch


MAX_STEPS_AHEAD = 2
"""How many dispatched steps the host may be ahead of the finished ones (it then waits on the
oldest step's metrics), so that pending batches and buffers stay bounded and the progress bar's
rate is the device's."""


def _run_steps(config, state, train_step, batches, train_iter, ckpt, writer, model, task, mesh, preemption) -> TrainState:
    """Steps from ``state.step`` to ``config.num_train_steps`` with logging, evaluation, saves.

    ``batches``: the global batches, drawn one per step from ``train_iter`` (whose position the
    checkpoints save).  The host runs at most :data:`MAX_STEPS_AHEAD` steps ahead of the device.
    """
    is_main = jax.process_index() == 0
    eval_set = create_eval_set(config.data) if config.eval_every_steps else []
    scale = _scale(config.data)
    predict = make_predict_fn(model, task=task, mesh=mesh)
    schedule = lr_schedule(config.learning_rate, config.lr_milestones, config.lr_decay)
    pending = PendingSteps(config.get("on_nonfinite", "stop"))
    start = step = step_last = int(to_host(state.step))

    def kept() -> str:  # the context of a non-finite stop
        return f"the last checkpoint, {ckpt.latest_step()} in {ckpt.directory}, is kept and nothing was saved after it"

    bar = tqdm(total=config.num_train_steps, initial=start, unit="step", disable=not is_main, dynamic_ncols=True,
               desc=config.model)  # fmt: skip
    try:
        t_last = time.perf_counter()
        in_flight: collections.deque[dict[str, jax.Array]] = collections.deque()
        while step < config.num_train_steps:
            state, step_metrics = train_step(state, next(batches))
            step += 1
            pending.add(step, step_metrics)
            in_flight.append(step_metrics)
            if len(in_flight) > MAX_STEPS_AHEAD:
                jax.block_until_ready(in_flight.popleft())
            bar.update(1)
            last = step == config.num_train_steps
            do_eval = bool(config.eval_every_steps) and (step % config.eval_every_steps == 0 or last)
            if do_eval or step % config.log_every_steps == 0 or last:
                pending.check(kept())
                loss, nonfinite = pending.take_loss()
                record = {
                    "loss": loss,
                    "learning_rate": float(schedule(step - 1)),
                    "steps_per_sec": (step - step_last) / max(time.perf_counter() - t_last, 1e-9),
                }
                if nonfinite:
                    record["nonfinite_steps"] = nonfinite
                postfix = {"loss": f"{record['loss']:.4g}"}
                if do_eval:
                    result = evaluate(predict, state.variables(ema=True), eval_set, task=task, scale=scale, mesh=mesh)
                    scores = {k: v for k, v in result.items() if k != "per_image"}
                    record.update(scores)
                    postfix["psnr"] = f"{result['psnr']:.2f}"
                    logging.info(
                        "step %d: validation PSNR %.3f dB, SSIM %.4f (%s)", step, result["psnr"], result["ssim"],
                        ", ".join(f"{n} {p:.2f}" for n, p, _ in result["per_image"]),
                    )
                    ckpt.save(step, state, train_iter, scores)
                bar.set_postfix(postfix)
                writer.write(step, record)
                t_last, step_last = time.perf_counter(), step
            stop = preemption.reached(step)
            if step % config.checkpoint_every_steps == 0 or last or stop:
                pending.check(kept())
                ckpt.save(step, state, train_iter)
            if stop:
                logging.warning("%s: saved checkpoint %d in %s; stopping", preemption.signal_name, step, ckpt.directory)
                break
    finally:
        bar.close()
    return state
