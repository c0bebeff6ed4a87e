"""The lock of a ``gs://`` workdir: a leased object, created and renewed under generation preconditions.

Cloud Storage has no file locks, but it writes an object only if a precondition holds:
``ifGenerationMatch=0`` creates the object only when none of that name exists, and
``ifGenerationMatch=G`` replaces it only while it is still generation ``G``; a failed precondition
is answered 412 and writes nothing. The lock of ``gs://B/RUN`` is the object ``gs://B/RUN/.lock``
holding the holder record (host, process id, start time, as the local lock file) plus ``token``
(this holder's random id) and ``expires`` (Unix time):

* :func:`acquire_lease` reads the object. Absent: it creates it (precondition 0). Held and not
  expired: :class:`~converse_jax.train.lock.WorkdirBusy`, naming the holder and when its lease
  runs out. Expired, or held by a process of this host that no longer exists (``kill -9``): it
  replaces it (precondition on the generation it read). A failed precondition means another run
  took it first: busy, naming that run.
* While held, a daemon thread renews the lease every third of its length (precondition on the
  generation it wrote last); a renewal that finds another holder logs that the lock was lost.
* :meth:`Lease.release` stops the renewals and deletes the object (precondition on its generation).

A run killed on another host holds the workdir until its lease expires (``lease_s``, 60 s by
default, after its last renewal); on the same host the next run takes it over at once. Expiry
compares the hosts' clocks, which Cloud VMs keep within milliseconds of each other.

The module is the ``gs://`` half of :func:`converse_jax.train.lock.acquire`, which is its public
entry (and holds the doctest of the local half); it exports nothing else, since every call needs
a Cloud Storage server. ``tests/test_lease.py`` exercises it against the local GCS emulator.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

from absl import logging

from converse_jax.train.lock import LOCK_NAME, WorkdirBusy, describe_holder, holder_record

__all__ = ["LEASE_S"]

LEASE_S = 60.0


class _Store:
    """The one object of a lock on Cloud Storage, through gcsfs's JSON API calls (``url``: ``gs://B/KEY``)."""

    def __init__(self, url: str) -> None:
        import fsspec  # the gcs extra; as_path has checked it is installed

        self.fs = fsspec.filesystem("gs")
        self.bucket, _, self.key = url.removeprefix("gs://").partition("/")
        self.url = url

    def _object_url(self) -> str:
        """The JSON API's URL of the object (its metadata; ``alt=media`` for its bytes)."""
        return f"{self.fs._location}/storage/v1/b/{quote(self.bucket)}/o/{quote(self.key, safe='')}"

    def read(self) -> tuple[dict[str, Any], int] | None:
        """The record and its generation, or None when there is no lock object."""
        try:
            info = self.fs.call("GET", self._object_url(), json_out=True)
            generation = int(info["generation"])
            data = self.fs.call("GET", self._object_url(), alt="media", generation=str(generation))[1]
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data)
        except ValueError:  # written by something else: treated as a lock that expired
            record = {}
        return record, generation

    def write(self, record: dict[str, Any], generation: int) -> int:
        """Writes ``record`` if the object is still ``generation`` (0: absent); its new generation.

        Raises:
          FileExistsError: the precondition failed (another holder wrote it).
        """
        url = f"{self.fs._location}/upload/storage/v1/b/{quote(self.bucket)}/o"
        parts = [b"--lock", b"Content-Type: application/json; charset=UTF-8", b"", json.dumps({"name": self.key}).encode(),
                 b"--lock", b"Content-Type: application/json", b"", json.dumps(record).encode(), b"--lock--"]  # fmt: skip
        info = self.fs.call("POST", url, uploadType="multipart", ifGenerationMatch=str(generation), data=b"\n".join(parts),
                            headers={"Content-Type": 'multipart/related; boundary="lock"'}, json_out=True)  # fmt: skip
        return int(info["generation"])

    def delete(self, generation: int) -> None:
        """Deletes the object if it is still ``generation`` (nothing if it is not)."""
        try:
            self.fs.call("DELETE", self._object_url(), ifGenerationMatch=str(generation))
        except (FileNotFoundError, FileExistsError):
            pass


class Lease:
    """A held ``gs://`` workdir lock (from :func:`acquire_lease`); renewed until :meth:`release`."""

    def __init__(self, store: _Store, record: dict[str, Any], generation: int, lease_s: float) -> None:
        self.path, self._store, self._record = store.url, store, record
        self._generation, self._lease_s = generation, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="workdir-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                record = {**self._record, "expires": time.time() + self._lease_s}
                self._generation = self._store.write(record, self._generation)
            except FileExistsError:
                logging.error(
                    "--workdir: the lock %s was taken by another run: this run no longer owns the workdir", self.path
                )
                return
            except OSError as err:  # a network hiccup: the next renewal tries again
                logging.warning("--workdir: renewing the lock %s failed (%s); retrying", self.path, err)

    def release(self) -> None:
        """Stops renewing and deletes the lock object; a second call does nothing."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._store.delete(self._generation)


def _gone(record: dict[str, Any], now: float) -> bool:
    """Whether the holder of ``record`` has lost the lock: its lease expired, or it was a process
    of this host that no longer exists."""
    if not isinstance(record.get("expires"), (int, float)) or record["expires"] <= now:
        return True
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def acquire_lease(workdir: str, lease_s: float = LEASE_S) -> Lease:
    """Takes the lock of the ``gs://`` folder ``workdir`` (see the module docstring).

    Raises:
      WorkdirBusy: another live run holds it: ``--workdir: URL is in use by host H, process P,
        started T (one run per workdir; its lease runs out in N s if it has died)``.
    """
    store = _Store(f"{workdir.rstrip('/')}/{LOCK_NAME}")
    mine = {**holder_record(), "token": uuid.uuid4().hex}
    current = store.read()
    if current is not None and not _gone(current[0], time.time()):
        left = max(0, round(current[0]["expires"] - time.time()))
        raise WorkdirBusy(f"--workdir: {workdir} is in use by {describe_holder(current[0], 'another run')} (one run per workdir; "
                          f"its lease runs out in {left} s if it has died)")  # fmt: skip
    try:
        generation = store.write({**mine, "expires": time.time() + lease_s}, 0 if current is None else current[1])
    except FileExistsError:
        taken = store.read()
        holder = describe_holder(None if taken is None else taken[0], "another run")
        raise WorkdirBusy(f"--workdir: {workdir} is in use by {holder} (one run per workdir)") from None
    return Lease(store, mine, generation, lease_s)
