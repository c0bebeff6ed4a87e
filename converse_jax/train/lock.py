"""One owner per training workdir: ``WORKDIR/.lock``, held for the whole run by process 0.

:func:`acquire` takes the workdir's lock or raises :class:`WorkdirBusy`, one line naming the
holder (host, process id, start time, read from the lock file).  The one interface every
implementation keeps: ``acquire(workdir)`` returns the held lock, whose ``release()`` ends it.

The local implementation is an exclusive ``fcntl.flock`` on ``WORKDIR/.lock``: the kernel drops
it when its process ends however it ends (exit, exception, ``kill -9``), so a holder that died
never blocks a resume, and no stale-lock guessing is needed.  The file itself stays (it is
rewritten with the new holder by the next owner).

An object store (``gs://``) has no such lock: a ``gs://`` workdir's lock is a leased object,
created and renewed under Cloud Storage's generation preconditions
(:mod:`converse_jax.train.lease`), behind the same :func:`acquire`.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket

from typing import TYPE_CHECKING, Any

from converse_jax.train.faults import TrainingError
from converse_jax.utils.paths import is_remote

if TYPE_CHECKING:
    from converse_jax.train.lease import Lease

__all__ = ["LOCK_NAME", "WorkdirBusy", "WorkdirLock", "acquire", "describe_holder", "holder_record"]

LOCK_NAME = ".lock"


class WorkdirBusy(TrainingError):
    """Another live process holds the workdir's lock (the message names it; a
    :class:`~converse_jax.train.faults.TrainingError`, so ``train`` reports it in one line).

    Example:
      >>> issubclass(WorkdirBusy, TrainingError)
      True
    """


class WorkdirLock:
    """The held lock of one workdir (from :func:`acquire`); :meth:`release` ends it.

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     lock = acquire(tmp)
      ...     holder = json.loads(open(os.path.join(tmp, LOCK_NAME)).read())
      ...     lock.release()
      ...     print(holder["pid"] == os.getpid(), sorted(holder))
      True ['host', 'pid', 'started']
    """

    def __init__(self, path: str | None, fd: int | None) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        """Releases the lock (closing the file drops the ``flock``); a second call does nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder_record() -> dict[str, Any]:
    """This process as a lock's holder: ``{'host', 'pid', 'started'}`` (start time in UTC).

    Example:
      >>> record = holder_record()
      >>> sorted(record), record["pid"] == os.getpid(), record["started"].endswith(" UTC")
      (['host', 'pid', 'started'], True, True)
    """
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": started}


def describe_holder(record: Any, unknown: str) -> str:
    """``'host H, process P, started T'`` from a :func:`holder_record`, or ``unknown`` when
    ``record`` is not one.

    Example:
      >>> describe_holder({"host": "h", "pid": 7, "started": "2026-12-04 10:00:00 UTC"}, "?")
      'host h, process 7, started 2026-12-04 10:00:00 UTC'
      >>> describe_holder({}, "another run")
      'another run'
    """
    try:
        return f"host {record['host']}, process {record['pid']}, started {record['started']}"
    except (KeyError, TypeError):
        return unknown


def _holder(path: str) -> str:
    unknown = "a process that has not written its name yet"
    try:
        with open(path, encoding="utf-8") as f:
            return describe_holder(json.load(f), unknown)
    except (OSError, ValueError):
        return unknown


def acquire(workdir: str | os.PathLike) -> WorkdirLock | Lease:
    """Takes ``workdir``'s lock (the folder must exist) and writes this process into the lock file
    (a ``gs://`` workdir: into the lock object, :func:`~converse_jax.train.lease.acquire_lease`).

    Raises:
      WorkdirBusy: a live process holds it: ``--workdir: DIR is in use by host H, process P,
        started T (one run per workdir)``.

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     first = acquire(tmp)
      ...     try:
      ...         acquire(tmp)
      ...     except WorkdirBusy as err:
      ...         print(str(err).replace(tmp, "DIR").split(" by ")[0])
      ...     first.release()
      ...     acquire(tmp).release()  # free again
      --workdir: DIR is in use
    """
    if is_remote(workdir):
        from converse_jax.train.lease import acquire_lease  # gcsfs only for a gs:// workdir

        return acquire_lease(os.fspath(workdir))
    path = os.path.join(os.fspath(workdir), LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkdirBusy(
            f"--workdir: {workdir} is in use by {_holder(path)} (one run per workdir; wait for it or stop it)"
        ) from None
    record = json.dumps(holder_record()) + "\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode(), 0)
    return WorkdirLock(path, fd)
