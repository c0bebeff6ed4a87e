"""Reading a training run's weights: ``WORKDIR/config.json`` + the orbax checkpoints.

A *training workdir* is the folder written by ``train.py`` /
:func:`converse_jax.train.train_and_evaluate`::

    WORKDIR/config.json                    the run's config (``model``, ``model_overrides``, ...) and
                                           ``model_module``, the module that registered the network
    WORKDIR/checkpoints/<step>/state       the TrainState, an orbax StandardSave item
    WORKDIR/checkpoints/<step>/metrics     validation metrics of an evaluation step (orbax)

:func:`read_run` restores one checkpoint's ``state`` item read-only, as raw NumPy arrays and
without a template (so it does not depend on the training code's classes or on the devices the
run used), and returns the EMA parameters (``ema_params``, what validation scored) plus the
BatchNorm statistics where the network has them. The default checkpoint is the best by the
validation metric stored with it that the network's task ranks by
(:attr:`converse_jax.tasks.Task.best_metric`: Y PSNR for SR, PSNR otherwise; orbax's
``best_step``, the same ranking the training run keeps its best checkpoint by); without any
evaluated checkpoint, the latest.

A network registered outside the package (a user's module) is imported from the module the run
recorded (``model_module``) when it is not registered yet, so every tool given the run finds it;
that module must be importable (on ``PYTHONPATH``), else one ``ValueError`` line names it.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converse_jax.models.registry import MODELS, get_spec
from converse_jax.pretrained.store import restore_item
from converse_jax.tasks import get_task, rank_value
from converse_jax.utils.checksum import root_cause, weights_problem
from converse_jax.utils.paths import absolute, as_path
from converse_jax.utils.quiet import quiet_closed_loop_noise, quiet_orbax

__all__ = ["RunWeights", "is_run", "read_run", "run_arch"]

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunWeights:
    """One checkpoint of a training run, ready for ``get_model(arch, **model_kwargs).apply(variables, ...)``.

    Attributes:
      arch: registry name (``config.model``). model_kwargs: ``config.model_overrides``.
      variables: ``{'params': ema_params[, 'batch_stats': ...]}`` as nested dicts of NumPy arrays.
      step: the checkpoint's step. metrics: the validation metrics saved with it (or None).

    Example:
      >>> w = RunWeights("converse_dncnn", {"features": 4}, {"params": {}}, 100, {"psnr": 27.5})
      >>> w.arch, w.step, w.metrics["psnr"]
      ('converse_dncnn', 100, 27.5)
    """

    arch: str
    model_kwargs: dict[str, Any]
    variables: dict[str, Any]
    step: int
    metrics: dict[str, float] | None


def is_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a training workdir (has ``config.json`` and a ``checkpoints`` folder).

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     before = is_run(tmp)
      ...     (Path(tmp) / CHECKPOINT_DIR).mkdir(); _ = (Path(tmp) / CONFIG_NAME).write_text("{}")
      ...     print(before, is_run(tmp))
      False True
    """
    path = as_path(path, "weights")
    return (path / CONFIG_NAME).is_file() and (path / CHECKPOINT_DIR).is_dir()


def _config(workdir: Path) -> tuple[str, dict[str, Any]]:
    try:
        config = json.loads((workdir / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"weights: {workdir / CONFIG_NAME} is not a readable JSON config: {err}") from err
    if not isinstance(config, dict):
        config = {}
    model, overrides = config.get("model"), config.get("model_overrides") or {}
    if not isinstance(model, str) or not isinstance(overrides, dict):
        raise ValueError(
            f"weights: {workdir / CONFIG_NAME} must hold 'model' (a registry name) and 'model_overrides' (a dict)"
        )
    _import_network(workdir / CONFIG_NAME, model, config.get("model_module"))
    return model, overrides


def _import_network(config_file: Path, model: str, module: object) -> None:
    """Registers ``model`` by importing ``module`` (where the run's network was defined) unless it is known."""
    if model in MODELS or not isinstance(module, str) or not module:
        return
    try:
        importlib.import_module(module)
    except Exception as err:  # any failure of the user's module: report it on one line
        raise ValueError(
            f"weights: {config_file}: network {model!r} is defined in module {module!r}, which cannot be imported "
            f"({type(err).__name__}: {' '.join(str(err).split())}); put its folder on PYTHONPATH"
        ) from err


def run_arch(workdir: str | os.PathLike[str]) -> str:
    """The registry name a training workdir trained (``config.model`` of its ``config.json``).

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     _ = (Path(tmp) / CONFIG_NAME).write_text('{"model": "conversenet", "model_overrides": {}}')
      ...     print(run_arch(tmp))
      conversenet
    """
    return _config(as_path(workdir, "weights"))[0]


def _metrics(directory: Path, step: int) -> dict[str, float] | None:
    """The validation metrics saved with checkpoint ``step`` (None if saved without)."""
    try:
        return json.loads((directory / str(step) / "metrics" / "metrics").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pick_step(directory: Path, step: int | None, best_metric: str) -> tuple[int, list[int], dict[str, float] | None]:
    """``step`` (checked) or the best by ``best_metric`` (else the latest), all steps, and its metrics.

    Ranked as the training run's :class:`~converse_jax.train.checkpoint.Checkpointer` ranks: the
    task's :attr:`~converse_jax.tasks.Task.best_metric` read with :func:`converse_jax.tasks.rank_value`.
    """
    import orbax.checkpoint as ocp  # deferred: importing orbax is slow

    rank = functools.partial(rank_value, name=best_metric)
    options = ocp.CheckpointManagerOptions(read_only=True, best_fn=rank, best_mode="max")
    with ocp.CheckpointManager(directory, options=options) as manager:
        steps = sorted(manager.all_steps())
        if not steps:
            raise ValueError(f"weights: {directory} holds no complete checkpoint")
        if step is None:
            step = manager.best_step()
            step = steps[-1] if step is None else step
        elif step not in steps:
            raise ValueError(f"step: {step} is not a checkpoint in {directory}; have {steps}")
        return int(step), [int(s) for s in steps], manager.metrics(step)


def read_run(workdir: str | os.PathLike[str], step: int | None = None) -> RunWeights:
    """The EMA weights of one checkpoint of a training workdir (read-only), verified.

    The weights read back are checked against the CRC-32 of each array that training recorded
    when it saved the checkpoint (its ``integrity`` item) and for NaN/infinity.  When the chosen
    checkpoint fails (flipped bytes, truncated files, or one that a running training is deleting
    as it is read), the newest other checkpoint that passes is loaded instead and a warning line
    says so (logger ``converse_jax.pretrained.runs``, which also logs the step loaded at INFO
    level; the command-line tools show both); with an explicit ``step`` there is no fallback.

    Args:
      workdir: the run's folder (``WORKDIR/config.json``, ``WORKDIR/checkpoints``).
      step: the checkpoint to read; None = the best by the task's validation metric (the
        latest when no checkpoint was saved with metrics).

    Returns:
      :class:`RunWeights` (arch and hyper-parameters from ``config.json``, the EMA variables,
      the step actually loaded).

    Raises:
      FileNotFoundError: ``workdir`` is not a training workdir. ValueError: unreadable config,
      no checkpoint, ``step`` is not one of the checkpoints (the message lists them), or no
      intact checkpoint (the message names the damage).

    Example:
      >>> read_run("no/such/run")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      FileNotFoundError: weights: no/such/run is not a training workdir (no config.json and checkpoints/ inside)
    """
    path = as_path(workdir, "weights")
    if not is_run(path):
        raise FileNotFoundError(f"weights: {workdir} is not a training workdir (no {CONFIG_NAME} and {CHECKPOINT_DIR}/ inside)")
    arch, model_kwargs = _config(path)
    directory = absolute(path) / CHECKPOINT_DIR
    with quiet_orbax():
        chosen, steps, metrics = _pick_step(directory, step, get_task(get_spec(arch).task).best_metric)
        order = [chosen] if step is not None else [chosen, *(s for s in reversed(steps) if s != chosen)]
        damage = []
        for candidate in order:
            try:
                variables = _verified_variables(directory / str(candidate))
            except ValueError as err:
                damage.append(str(err))
                continue
            if damage:
                _LOG.warning("%s; loaded checkpoint %d instead", damage[0], candidate)
                metrics = _metrics(directory, candidate)
            _LOG.info("weights: %s: checkpoint %d", workdir, candidate)
            return RunWeights(arch, dict(model_kwargs), variables, candidate, None if metrics is None else dict(metrics))
    more = f" (and {len(damage) - 1} other checkpoints)" if len(damage) > 1 else ""
    raise ValueError(f"{damage[0]}{more}; no intact checkpoint to load")


def _verified_variables(step_dir: Path) -> dict[str, Any]:
    """The EMA variables of checkpoint ``step_dir``, checked against its integrity record; ValueError naming the damage."""
    try:
        state = restore_item(step_dir / "state")
    except Exception as err:  # orbax/tensorstore raise many types for damaged or vanishing files
        quiet_closed_loop_noise()
        raise ValueError(f"weights: checkpoint {step_dir} is damaged: its arrays cannot be read ({root_cause(err)})") from err
    if "ema_params" not in state:
        raise ValueError(f"weights: checkpoint {step_dir} has no 'ema_params' (keys {sorted(state)})")
    variables = {"params": state["ema_params"]}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    problem = weights_problem(variables, _recorded_crcs(step_dir))
    if problem:
        raise ValueError(f"weights: checkpoint {step_dir} is damaged: {problem}")
    return variables


def _recorded_crcs(step_dir: Path) -> dict[str, int] | None:
    """The CRC-32 training recorded for the EMA variables of ``step_dir`` (None: no record, an older run).

    Training names leaves by their path in the TrainState (``.ema_params['head']['kernel']``);
    here they are named as :func:`~converse_jax.utils.checksum.tree_crcs` names the variables
    (``params/head/kernel``).
    """
    try:
        record = json.loads((step_dir / "integrity" / "metadata").read_text(encoding="utf-8"))
        entries = record["state"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"weights: checkpoint {step_dir} is damaged: its integrity record cannot be read ({err})") from err
    crcs = {}
    for name, entry in entries.items():
        field, _, rest = name.lstrip(".").partition("[")
        if field in _VARIABLE_OF:
            crcs["/".join([_VARIABLE_OF[field], *re.findall(r"\['([^']*)'\]", "[" + rest)])] = entry["crc32"]
    return crcs


_VARIABLE_OF = {"ema_params": "params", "batch_stats": "batch_stats"}
"""TrainState field -> the variable collection :func:`read_run` returns it as."""
