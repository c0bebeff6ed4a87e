"""Will the train step fit?  XLA's memory estimate of the compiled step against what the device has.

Before the first step the loop compiles the train step ahead of time
(``jax.jit(...).lower(state, batch).compile()``) and reads XLA's own analysis of the executable
(:class:`StepMemory`): its arguments (train state and batch), outputs, the part of the outputs
that reuses the donated arguments' buffers, and the temporaries (activations kept for the
backward pass, scratch).  Per device, the step needs at most

    ``peak = arguments + outputs − aliased + temporaries``.

What a device has (:func:`device_memory`): on an accelerator the allocator's ``bytes_limit``
(``device.memory_stats()``); on the CPU the host memory still available (``MemAvailable`` of
``/proc/meminfo``, or what the cgroup limit leaves, whichever is less), shared by the process's
CPU devices.  A step fits when ``peak <= HEADROOM × have`` (the rest: the runtime, the data
pipeline, fragmentation).

Two settings lower the peak without changing what is learned: ``remat`` (each block's
activations are recomputed in the backward pass; large savings on GPUs and TPUs, little on the
CPU) and gradient accumulation (``grad_accum_steps`` = k: the step runs k micro-batches of B/k
one after the other and averages their gradients; the global batch, and with it the recipe,
stays).  :func:`fit_step` tries them in order of the smallest change (:func:`candidate_settings`)
and either stops with one line naming the numbers and the first setting that fits
(``config.fit_memory='stop'``), applies it (``'auto'``), or only reports (``'off'``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from converse_jax.train.faults import TrainingError

__all__ = [
    "FIT_POLICIES",
    "HEADROOM",
    "Setting",
    "StepMemory",
    "candidate_settings",
    "capped",
    "check_setting",
    "device_memory",
    "mesh_memory",
    "fit_step",
    "format_bytes",
]

FIT_POLICIES = ("stop", "auto", "off")
"""Values of ``config.fit_memory``: stop with the fix, apply the fix, or do not compare."""

HEADROOM = 0.9
"""The fraction of a device's memory a train step may plan to use."""


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units with three significant digits.

    Example:
      >>> format_bytes(15_320_000_000), format_bytes(1_500_000), format_bytes(512)
      ('14.3 GiB', '1.43 MiB', '512 B')
    """
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """XLA's memory analysis of one compiled executable, in bytes per device.

    Attributes:
      argument, output, alias, temp: ``compiled.memory_analysis()``'s sizes of the arguments,
        the outputs, the outputs that reuse (donated) argument buffers, and the temporaries.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> compiled = jax.jit(lambda x: jnp.sin(x) * 2, donate_argnums=0).lower(jnp.zeros(1024)).compile()
      >>> memory = StepMemory.of(compiled)
      >>> memory.argument, memory.output  # 1024 float32 in, 1024 out
      (4096, 4096)
      >>> memory.peak == memory.argument + memory.output - memory.alias + memory.temp
      True
    """

    argument: int
    output: int
    alias: int
    temp: int

    @property
    def peak(self) -> int:
        """``argument + output − alias + temp``: the most the executable holds at once."""
        return self.argument + self.output - self.alias + self.temp

    @classmethod
    def of(cls, compiled: Any) -> StepMemory | None:
        """The analysis of ``compiled`` (a ``jax.stages.Compiled``), or None where the backend has none."""
        try:
            analysis = compiled.memory_analysis()
        except (NotImplementedError, AttributeError, RuntimeError):
            return None
        if analysis is None:
            return None
        return cls(
            int(analysis.argument_size_in_bytes),
            int(analysis.output_size_in_bytes),
            int(analysis.alias_size_in_bytes),
            int(analysis.temp_size_in_bytes),
        )

    def parts(self) -> str:
        """The peak's two parts, e.g. ``'temporaries 14.2 GiB, state and batch 40 MiB'``."""
        rest = self.argument + self.output - self.alias
        return f"temporaries {format_bytes(self.temp)}, state and batch {format_bytes(rest)}"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat(path: str, key: str) -> int:
    """A ``key value`` line of a cgroup ``memory.stat`` file (0 when absent)."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def host_available() -> tuple[int, str] | None:
    """Host memory a new allocation can still get, and where the number comes from.

    The lesser of ``MemAvailable`` (``/proc/meminfo``) and what the memory cgroup's limit leaves
    (v2 ``memory.max − memory.current``, v1 ``limit_in_bytes − usage_in_bytes``, inactive file
    pages counted as free); None off Linux.

    Example:
      >>> have = host_available()
      >>> have is None or (have[0] > 0 and have[1] in ("MemAvailable", "cgroup limit"))
      True
    """
    meminfo = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    meminfo = int(line.split()[1]) * 1024
    except OSError:
        return None
    if meminfo is None:
        return None
    best = (meminfo, "MemAvailable")
    for limit, usage, stat, inactive in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat", "total_inactive_file"),
    ):
        cap, used = _read_int(f"/sys/fs/cgroup/{limit}"), _read_int(f"/sys/fs/cgroup/{usage}")
        if cap is not None and used is not None and cap < 2**62:
            left = cap - used + _stat(f"/sys/fs/cgroup/{stat}", inactive)
            if left < best[0]:
                best = (max(left, 0), "cgroup limit")
    return best


def device_memory(device: jax.Device) -> tuple[int, str] | None:
    """Bytes one train step may use on ``device`` (before :data:`HEADROOM`) and what they are.

    Accelerators: ``device.memory_stats()['bytes_limit']``.  CPU: :func:`host_available`
    divided among this process's CPU devices (they share the host's memory).  None when the
    backend reports neither.

    Example:
      >>> import jax
      >>> have = device_memory(jax.devices("cpu")[0])
      >>> have is None or "available host memory" in have[1]
      True
    """
    if device.platform == "cpu":
        host = host_available()
        if host is None:
            return None
        share = len(jax.local_devices(backend="cpu"))
        where = f"available host memory ({host[1]}" + (f", shared by {share} CPU devices)" if share > 1 else ")")
        return host[0] // share, where
    try:
        stats = device.memory_stats()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]), f"the memory of {device.device_kind} (bytes_limit)"


def mesh_memory(mesh: Mesh) -> tuple[int, str] | None:
    """:func:`device_memory` of this process's first device of ``mesh``; on multi-process jobs the
    least over the processes (so that all of them choose the same setting).

    Example:
      >>> from converse_jax.train.mesh import create_mesh
      >>> have = mesh_memory(create_mesh())
      >>> have is None or have[0] > 0
      True
    """
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    have = device_memory(local[0])
    if jax.process_count() == 1:
        return have
    least = int(multihost_utils.process_allgather(np.int64(-1 if have is None else have[0])).min())
    return None if least < 0 else (least, f"{have[1]} (least of {jax.process_count()} processes)")


def capped(have: tuple[int, str] | None, limit_gb: float) -> tuple[int, str] | None:
    """``have`` lowered to ``limit_gb`` GiB when that is less (``config.memory_limit_gb``; 0: no limit).

    Example:
      >>> capped((16 * 2**30, "the GPU"), 6)
      (6442450944, 'config.memory_limit_gb')
      >>> capped((4 * 2**30, "the GPU"), 6), capped(None, 0)
      ((4294967296, 'the GPU'), None)
    """
    if not limit_gb or (have is not None and have[0] <= limit_gb * 2**30):
        return have
    return int(limit_gb * 2**30), "config.memory_limit_gb"


@dataclasses.dataclass(frozen=True)
class Setting:
    """The memory settings of a train step: ``remat`` and ``grad_accum_steps`` (micro-batches per step).

    Example:
      >>> Setting(remat=True, grad_accum_steps=4).flags()
      '--config.remat=True --config.grad_accum_steps=4'
      >>> Setting(remat=False, grad_accum_steps=1).flags()  # the recipe as it is
      ''
    """

    remat: bool
    grad_accum_steps: int

    def flags(self) -> str:
        """The command-line overrides that select this setting (nothing for the defaults)."""
        out = ["--config.remat=True"] if self.remat else []
        if self.grad_accum_steps > 1:
            out.append(f"--config.grad_accum_steps={self.grad_accum_steps}")
        return " ".join(out)


def candidate_settings(current: Setting, per_device_batch: int) -> list[Setting]:
    """The settings to try, smallest change first: ``current``, then more micro-batches.

    Micro-batch counts are the multiples of ``current.grad_accum_steps`` that divide
    ``per_device_batch``, ascending; at each count without ``remat`` before with it (a setting
    already on stays on).  Fewer micro-batches come first because they keep the device busiest;
    ``remat`` recomputes the forward pass (about 1.4× the step time on the H200).

    Example:
      >>> [(s.remat, s.grad_accum_steps) for s in candidate_settings(Setting(False, 1), 4)]
      [(False, 1), (True, 1), (False, 2), (True, 2), (False, 4), (True, 4)]
      >>> [(s.remat, s.grad_accum_steps) for s in candidate_settings(Setting(True, 2), 12)]
      [(True, 2), (True, 4), (True, 6), (True, 12)]
    """
    remats = (True,) if current.remat else (False, True)
    counts = [k for k in range(current.grad_accum_steps, per_device_batch + 1)
              if per_device_batch % k == 0 and k % current.grad_accum_steps == 0]  # fmt: skip
    return [Setting(remat, k) for k in counts for remat in remats]


def fit_step(
    compile_step: Callable[[Setting], Any],
    current: Setting,
    *,
    per_device_batch: int,
    have: tuple[int, str] | None,
    policy: str,
) -> tuple[Any, Setting, StepMemory | None]:
    """Compiles the train step for ``current`` and, if it does not fit, finds the setting that does.

    Args:
      compile_step: ``Setting -> jax.stages.Compiled`` (the train step compiled for the batch).
      current: the config's setting.
      per_device_batch: the global batch over the device count (micro-batch counts divide it).
      have: :func:`device_memory` of the devices (None: unknown, nothing is compared).
      policy: ``config.fit_memory``: ``'stop'`` raises :class:`TrainingError` (one line: the
        estimate, what the device has, the first setting that fits and its estimate), ``'auto'``
        returns that setting's step instead, ``'off'`` returns ``current``'s without comparing.

    Returns:
      ``(compiled step, its setting, its StepMemory or None)``.

    The search compiles as few candidates as it can: temporaries are taken to shrink at most in
    proportion to the micro-batch (their part per example is all that shrinks), so a candidate
    whose proportional estimate does not fit is skipped without compiling.

    Example:
      A "step" whose temporaries are 1000 bytes per example of a batch of 8, on a device with
      4000 bytes (3600 usable):

      >>> def compile_step(setting):  # stands in for jit(...).lower(...).compile()
      ...     class Compiled:
      ...         def memory_analysis(self):
      ...             temp = 8000 // setting.grad_accum_steps
      ...             return type("M", (), dict(argument_size_in_bytes=100, output_size_in_bytes=100,
      ...                                       alias_size_in_bytes=100, temp_size_in_bytes=temp))
      ...     return Compiled()
      >>> _, setting, memory = fit_step(compile_step, Setting(False, 1), per_device_batch=8,
      ...                               have=(4000, "test memory"), policy="auto")
      >>> setting, memory.peak
      (Setting(remat=False, grad_accum_steps=4), 2100)
      >>> fit_step(compile_step, Setting(False, 1), per_device_batch=8, have=(4000, "test memory"), policy="stop")
      Traceback (most recent call last):
      ...
      converse_jax.train.faults.TrainingError: the train step needs 7.91 KiB per device by XLA's estimate (temporaries 7.81 KiB, state and batch 100 B) but test memory is 3.91 KiB (90% usable: 3.52 KiB); it fits with --config.grad_accum_steps=4 (2.05 KiB), or set --config.fit_memory=auto to apply that
    """
    if policy not in FIT_POLICIES:
        raise ValueError(f"config.fit_memory must be one of {FIT_POLICIES}, got {policy!r}")
    compiled = compile_step(current)
    memory = StepMemory.of(compiled)
    if policy == "off" or memory is None or have is None:
        if memory is None or have is None:
            logging.warning("train step memory not compared: %s", "no XLA estimate" if memory is None else "device memory unknown")
        return compiled, current, memory
    usable = int(HEADROOM * have[0])
    if memory.peak <= usable:
        return compiled, current, memory
    found = _search(compile_step, current, memory, per_device_batch, usable)
    need = (
        f"the train step needs {format_bytes(memory.peak)} per device by XLA's estimate "
        f"({memory.parts()}) but {have[1]} is {format_bytes(have[0])} "
        f"({HEADROOM:.0%} usable: {format_bytes(usable)})"
    )
    if found is None:
        raise TrainingError(f"{need}; no setting fits, not even one example per device and micro-batch with remat")
    step, setting, fitting = found
    if policy == "stop":
        raise TrainingError(
            f"{need}; it fits with {setting.flags()} ({format_bytes(fitting.peak)}), "
            "or set --config.fit_memory=auto to apply that"
        )
    logging.warning("%s; applying %s (%s)", need, setting.flags(), format_bytes(fitting.peak))
    return step, setting, fitting


def _search(compile_step, current: Setting, memory: StepMemory, per_device_batch: int, usable: int):
    """The first candidate after ``current`` whose compiled step fits in ``usable`` bytes, or None."""
    measured = {current.remat: (current.grad_accum_steps, memory)}
    for setting in candidate_settings(current, per_device_batch)[1:]:
        base = measured.get(setting.remat)
        if base is not None:
            k0, m0 = base
            lower_bound = m0.peak - m0.temp + m0.temp * k0 // setting.grad_accum_steps
            if lower_bound > usable:
                continue
        compiled = compile_step(setting)
        estimate = StepMemory.of(compiled)
        if estimate is None:
            return None
        measured.setdefault(setting.remat, (setting.grad_accum_steps, estimate))
        if estimate.peak <= usable:
            return compiled, setting, estimate
    return None


def check_setting(setting: Setting, batch_size: int, device_count: int) -> None:
    """``ValueError`` unless the global batch splits into ``device_count`` × ``grad_accum_steps`` parts.

    Example:
      >>> check_setting(Setting(False, 4), batch_size=64, device_count=2)  # 8 per device and micro-batch
      >>> check_setting(Setting(False, 3), batch_size=64, device_count=1)
      Traceback (most recent call last):
      ...
      ValueError: config.grad_accum_steps=3 must divide the batch per device (config.batch_size=64 over 1 devices: 64)
    """
    per_device = batch_size // device_count
    if per_device % setting.grad_accum_steps:
        raise ValueError(
            f"config.grad_accum_steps={setting.grad_accum_steps} must divide the batch per device "
            f"(config.batch_size={batch_size} over {device_count} devices: {per_device})"
        )

