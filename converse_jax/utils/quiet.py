"""Quiet orbax: the log records and late tracebacks of orbax that the project reports itself in one line.

:func:`quiet_orbax` silences orbax's warnings while a store or a checkpoint is read (items read
without their handlers, absent optional metadata files); :func:`quiet_closed_loop_noise` drops
the tracebacks that a failed orbax read or write prints after the fact (its reads and writes still
in flight finish after orbax closed its event loop).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["quiet_closed_loop_noise", "quiet_orbax"]


@contextlib.contextmanager
def quiet_orbax() -> Iterator[None]:
    """Silences orbax's warnings about reading items without their handlers and absent optional metadata files.

    Example:
      >>> with quiet_orbax():
      ...     logging.getLogger("absl").level
      40
    """
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _closed_loop(error: BaseException | None) -> bool:
    """Whether ``error`` is asyncio's ``RuntimeError('Event loop is closed')``."""
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


class _ClosedLoopFilter:
    """``sys.unraisablehook`` that drops the late noise of a failed orbax read.

    When orbax fails to read a checkpoint, the reads still in flight finish after orbax closed
    its event loop (each prints a traceback of ``RuntimeError: Event loop is closed``) and its
    abandoned read coroutines print their errors when collected; the damage itself is reported
    in one line.  Everything else goes to the previous hook.
    """

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, unraisable: Any) -> None:
        code = getattr(unraisable.object, "cr_code", None)
        orbax_read = code is not None and "orbax" in code.co_filename  # an abandoned read coroutine
        if not (_closed_loop(unraisable.exc_value) or orbax_read):
            self.previous(unraisable)


class _ClosedLoopExceptHook:
    """``sys.excepthook`` that drops ``Event loop is closed`` raised outside the main thread.

    tensorstore finishes a write of a failed orbax save on its own thread and hands the result
    to orbax's event loop, which is closed by then; tensorstore prints that error through
    ``sys.excepthook`` (``PyErr_Print``).  The main thread's errors, and every other error, go
    to the previous hook.
    """

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, kind: type[BaseException], error: BaseException, tb: Any) -> None:
        if not (_closed_loop(error) and threading.current_thread() is not threading.main_thread()):
            self.previous(kind, error, tb)


def quiet_closed_loop_noise() -> None:
    """Installs :class:`_ClosedLoopFilter` as ``sys.unraisablehook`` and :class:`_ClosedLoopExceptHook`
    as ``sys.excepthook`` (once each).

    Example:
      >>> quiet_closed_loop_noise(); quiet_closed_loop_noise()
      >>> type(sys.unraisablehook).__name__, type(sys.excepthook).__name__
      ('_ClosedLoopFilter', '_ClosedLoopExceptHook')
      >>> type(sys.excepthook.previous).__name__  # installed once: the previous hook is not a filter
      'builtin_function_or_method'
    """
    if not isinstance(sys.unraisablehook, _ClosedLoopFilter):
        sys.unraisablehook = _ClosedLoopFilter(sys.unraisablehook)
    if not isinstance(sys.excepthook, _ClosedLoopExceptHook):
        sys.excepthook = _ClosedLoopExceptHook(sys.excepthook)
