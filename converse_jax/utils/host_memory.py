"""Host memory that XLA's CPU runtime frees stays in the process and is reused (glibc).

XLA's CPU runtime allocates the buffers of an executable afresh on every call and frees them
after; for a training step or an inference these are large temporary buffers (gigabytes for a
Converse-DnCNN training step). glibc serves large blocks with a fresh ``mmap`` and unmaps them on
``free`` -- from the runtime's worker threads always, because a thread's own arena holds at most
64 MiB -- so every call faults in each 4 KiB page it touches again, which costs a large part of
a step's time on CPU (the measurements: ``docs/benchmarks.md``, "Host memory").

:func:`keep_freed_memory` sets glibc (``mallopt``) so that all threads share the main arena
(``M_ARENA_MAX`` 1), large blocks come from the heap instead of ``mmap`` (``M_MMAP_MAX`` 0) and
the heap is never trimmed (``M_TRIM_THRESHOLD`` unlimited): the second call of an executable
reuses the pages of the first and faults on none. The price: the process keeps its peak heap
until it exits, which is what a training or evaluation process reaches anyway (memory freed by
other code in the process is reused only where the runtime's next buffer fits into it). The
``converse-jax`` command, ``train.py`` and the demo call it at start; call it yourself first thing in a
script (before the first JAX computation: threads get their arena when they start), or set the
same policy from the shell::

    MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=18446744073709551615 python my_script.py
"""

from __future__ import annotations

import ctypes
import ctypes.util
import warnings

__all__ = ["keep_freed_memory"]

# mallopt parameters of glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))  # -1: SIZE_MAX, never trim


def _mallopt():
    """glibc's ``mallopt`` of this process, or None (another C library: musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc.mallopt


def _jax_runtime_started() -> bool:
    """Whether JAX has created its backends (and with them the CPU runtime's threads)."""
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started and started())


def keep_freed_memory() -> bool:
    """Makes glibc keep and reuse freed memory (see the module docstring); process-wide.

    Returns True when the policy was applied, False where the C library is not glibc (nothing
    changes there). Warns when JAX's runtime had already started: its threads keep their own
    arenas then, and their large buffers are still mapped afresh on every call. Calling it
    again is harmless.

    Example (in a fresh process, before any JAX computation; here JAX may already run, hence
    the caught warning):
      >>> import sys, warnings
      >>> with warnings.catch_warnings(record=True):
      ...     applied = keep_freed_memory()
      >>> applied == sys.platform.startswith("linux")  # glibc on this Linux
      True
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if _jax_runtime_started():
        warnings.warn(
            "keep_freed_memory() called after JAX started its runtime: threads that already "
            "have an arena keep it; call it before the first JAX computation",
            RuntimeWarning,
            stacklevel=2,
        )
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS)
