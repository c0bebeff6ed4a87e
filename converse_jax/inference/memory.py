"""Whether a compiled program fits in its device's memory: XLA's estimate against what is free.

:func:`program_bytes` reads XLA's memory analysis of a compiled program (arguments, outputs and
temporaries, less what outputs alias); :func:`free_bytes` is what the device can still give:
``bytes_limit - bytes_in_use`` of ``device.memory_stats()`` on accelerators, and on the CPU the
host's available memory (``MemAvailable`` of ``/proc/meminfo``, capped by the memory cgroup's
limit minus its usage where the process runs under a limit). ``restore`` uses them to
tile an image automatically when its whole-image inference would not fit
(:meth:`converse_jax.inference.restorer.Restorer.function`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["free_bytes", "program_bytes"]


def program_bytes(compiled: Any) -> int | None:
    """Peak bytes XLA plans for a compiled program, or None when the backend gives no analysis.

    ``argument + output + temp - alias`` of ``compiled.memory_analysis()`` (``compiled`` from
    ``jax.jit(f).lower(...).compile()``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> compiled = jax.jit(lambda x: x * 2).lower(jnp.zeros((256, 256), jnp.float32)).compile()
      >>> program_bytes(compiled) >= 2 * 256 * 256 * 4  # the argument and the output
      True
    """
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError):  # a backend without the analysis
        return None
    if stats is None:
        return None
    return int(
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    )


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 or v1), or None without a limit."""
    files = {"": ("memory.max", "memory.current"), "memory": ("memory.limit_in_bytes", "memory.usage_in_bytes")}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers not in files:
            continue
        folder = Path("/sys/fs/cgroup") / controllers / path.lstrip("/")
        try:
            limit, usage = ((folder / name).read_text().strip() for name in files[controllers])
            if limit != "max" and int(limit) < 2**60:  # v1 writes a huge number for "no limit"
                return int(limit) - int(usage)
        except (OSError, ValueError):
            continue
    return None


def _host_available() -> int:
    """Available host memory in bytes (``MemAvailable``; free pages where /proc is absent)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
        else:
            raise ValueError("no MemAvailable")
    except (OSError, ValueError):
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    headroom = _cgroup_headroom()
    return available if headroom is None else min(available, headroom)


def free_bytes(device: Any) -> int:
    """Bytes ``device`` can still allocate: its allocator's free memory, or the host's on CPU.

    Example:
      >>> import jax
      >>> free_bytes(jax.devices("cpu")[0]) > 0
      True
    """
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return _host_available()
