"""What a training run says: one block at start, one line at the end.

At start (:func:`start_block`): the network and its parameter count, the batch (global, per
device, micro-batches), the steps and the learning-rate milestones, the train step's memory
estimate against what the device has (:mod:`converse_jax.train.memory`), and the devices.  At the
end, and when a SIGTERM stops the run (:func:`end_line`): the best checkpoint's step, its
validation score and its folder, and the ``converse-jax evaluate`` command that scores it.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh

from converse_jax.tasks import Task, rank_value
from converse_jax.train.memory import HEADROOM, Setting, StepMemory, format_bytes

__all__ = ["end_line", "start_block"]


def start_block(
    config: ml_collections.ConfigDict,
    task: Task,
    mesh: Mesh,
    params: Any,
    setting: Setting,
    memory: StepMemory | None,
    have: tuple[int, str] | None,
    start_step: int,
) -> str:
    """The run's description, four lines (network, batch, memory, devices).

    Args:
      config: the training config (its model, batch size, steps, milestones).
      task: the network's task.
      mesh: the device mesh.
      params: the parameters (counted).
      setting: the memory setting the step was compiled with.
      memory, have: :class:`StepMemory` of the compiled step and :func:`~converse_jax.train.memory.device_memory`
        (None: unknown).
      start_step: the step the run starts from (0, or the resumed checkpoint's).

    Example:
      >>> import numpy as np
      >>> from converse_jax.configs import get_config
      >>> from converse_jax.tasks import get_task
      >>> from converse_jax.train.mesh import create_mesh
      >>> mesh = create_mesh(jax.devices()[:1])
      >>> memory = StepMemory(argument=10 * 2**20, output=10 * 2**20, alias=10 * 2**20, temp=3 * 2**30)
      >>> print(start_block(get_config("converse_dncnn"), get_task("denoise"), mesh, {"w": np.zeros(1000)},
      ...                   Setting(False, 4), memory, (16 * 2**30, "test memory"), start_step=0))
      converse_dncnn (denoise), 1,000 parameters: steps 0 to 1,075,000, learning rate 0.0001 x0.5 at 200,000, 400,000, 600,000, 800,000, 1,000,000, 2,000,000
      batch 64: 64 per device, as 4 micro-batches of 16 (config.grad_accum_steps=4), remat off
      train step memory: 3.01 GiB per device by XLA's estimate (temporaries 3 GiB, state and batch 10 MiB); test memory: 16 GiB (90% usable)
      devices: 1 x cpu, 1 process
    """
    n_params = sum(int(x.size) for x in jax.tree.leaves(params))
    milestones = ", ".join(f"{m:,}" for m in config.lr_milestones) or "none"
    per_device = config.batch_size // mesh.devices.size
    k = setting.grad_accum_steps
    micro = f", as {k} micro-batches of {per_device // k} (config.grad_accum_steps={k})" if k > 1 else ""
    if memory is None:
        estimate = "train step memory: no estimate on this backend"
    else:
        estimate = f"train step memory: {format_bytes(memory.peak)} per device by XLA's estimate ({memory.parts()})"
    if have is not None:
        estimate += f"; {have[1]}: {format_bytes(have[0])} ({HEADROOM:.0%} usable)"
    kinds = sorted({d.device_kind for d in mesh.devices.flat})
    return "\n".join([
        f"{config.model} ({task.name}), {n_params:,} parameters: steps {start_step:,} to {config.num_train_steps:,}, "
        f"learning rate {config.learning_rate:g} x{config.lr_decay:g} at {milestones}",
        f"batch {config.batch_size}: {per_device} per device{micro}, remat {'on' if setting.remat else 'off'}",
        estimate,
        f"devices: {mesh.devices.size} x {', '.join(kinds)}, {jax.process_count()} process"
        + ("es" if jax.process_count() > 1 else ""),
    ])  # fmt: skip


def end_line(
    workdir: str,
    task: Task,
    data_cfg: ml_collections.ConfigDict,
    best: int | None,
    latest: int | None,
    metrics: dict[str, float] | None,
) -> str:
    """One line: the checkpoint ``converse-jax evaluate --weights WORKDIR`` loads, and that command.

    Args:
      workdir: the run's folder as the user gave it (the command is meant for the same directory).
      task: the network's task (its ranking metric, whether it takes a kernel).
      data_cfg: the data config (a ``val_dir`` becomes the command's ``--data``).
      best, latest: the best-ranked and the latest checkpoint's steps (None: none).
      metrics: the best checkpoint's validation scores (given when ``best`` is).

    Example:
      >>> from converse_jax.data import default_data_config
      >>> from converse_jax.tasks import get_task
      >>> print(end_line("runs/a", get_task("denoise"), default_data_config("denoise"), 700, 700, {"psnr": 27.384}))
      best checkpoint: step 700, psnr 27.38 dB, runs/a/checkpoints/700; evaluate it: converse-jax evaluate --weights runs/a --data TEST_IMAGES --out runs/a/eval
      >>> print(end_line("runs/a", get_task("denoise"), default_data_config("denoise"), None, 6, None))
      latest checkpoint: step 6 (no validation scores), runs/a/checkpoints/6; evaluate it: converse-jax evaluate --weights runs/a --data TEST_IMAGES --out runs/a/eval
    """
    if best is None and latest is None:
        return f"no checkpoint in {os.path.join(workdir, 'checkpoints')}"
    command = ["converse-jax", "evaluate", "--weights", workdir, "--data", data_cfg.get("val_dir") or "TEST_IMAGES"]
    if task.takes_kernel:
        command += ["--kernel", "KERNEL.npy"]
    command += ["--out", os.path.join(workdir, "eval")]
    if best is not None:
        name = task.best_metric if task.best_metric in metrics else "psnr"
        what, step = f"best checkpoint: step {best}, {name} {rank_value(metrics, name):.2f} dB", best
    else:
        what, step = f"latest checkpoint: step {latest} (no validation scores)", latest
    return f"{what}, {os.path.join(workdir, 'checkpoints', str(step))}; evaluate it: {shlex.join(command)}"
