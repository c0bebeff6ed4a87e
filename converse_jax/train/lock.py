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

from converse_jax.train.faults import TrainingError
from converse_jax.train.lease import Lease, acquire_lease
from converse_jax.utils.paths import is_remote

__all__ = ["LOCK_NAME", "WorkdirBusy", "WorkdirLock", "acquire"]

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


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return f"host {record['host']}, process {record['pid']}, started {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


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
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": started}) + "\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode(), 0)
    return WorkdirLock(path, fd)
