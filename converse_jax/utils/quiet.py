"""Quiet orbax: the log records and late tracebacks of orbax that the project reports itself in one line.

:func:`quiet_orbax` silences orbax's warnings while a store or a checkpoint is read (items read
without their handlers, absent optional metadata files); :func:`quiet_closed_loop_noise` drops
the tracebacks that a failed orbax read prints after the fact (its reads still in flight finish
after orbax closed its event loop).
"""

from __future__ import annotations

import contextlib
import logging
import sys
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
        error, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
        closed_loop = isinstance(error, RuntimeError) and str(error) == "Event loop is closed"
        orbax_read = code is not None and "orbax" in code.co_filename  # an abandoned read coroutine
        if not (closed_loop or orbax_read):
            self.previous(unraisable)


def quiet_closed_loop_noise() -> None:
    """Installs :class:`_ClosedLoopFilter` as ``sys.unraisablehook`` (once).

    Example:
      >>> quiet_closed_loop_noise(); quiet_closed_loop_noise()
      >>> type(sys.unraisablehook).__name__
      '_ClosedLoopFilter'
    """
    if not isinstance(sys.unraisablehook, _ClosedLoopFilter):
        sys.unraisablehook = _ClosedLoopFilter(sys.unraisablehook)
