"""The lock of a ``gs://`` workdir (``converse_jax/train/lease.py``) on the local GCS emulator:
one holder at a time, named to the others; renewed while held; taken over once its holder is gone
(this host's process killed, or another host's lease expired); deleted on release."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from converse_jax.train.lease import _Store
from converse_jax.train.lock import WorkdirBusy, acquire
from converse_jax.utils.paths import as_path

pytestmark = pytest.mark.slow


def test_a_second_run_is_refused_by_name_until_the_first_releases(gcs_dir):
    first = acquire(gcs_dir)
    record = json.loads((as_path(gcs_dir) / ".lock").read_text())
    assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid()) and record["expires"] > time.time()
    with pytest.raises(WorkdirBusy) as busy:
        acquire(gcs_dir)
    assert str(busy.value).startswith(
        f"--workdir: {gcs_dir} is in use by host {socket.gethostname()}, process {os.getpid()}, started "
    )
    first.release()
    first.release()  # a second release does nothing
    assert not (as_path(gcs_dir) / ".lock").exists()
    acquire(gcs_dir).release()


def test_a_held_lease_is_renewed_and_a_killed_holder_frees_it_at_once(gcs_dir):
    script = (
        "import sys, time\nfrom converse_jax.train.lease import acquire_lease\n"
        f"lease = acquire_lease({gcs_dir!r}, lease_s=3.0)\nprint('held', flush=True)\ntime.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        time.sleep(6.5)  # over two lease lengths: only the renewals (every 1 s) keep it
        with pytest.raises(WorkdirBusy, match=f"process {holder.pid}, started "):
            acquire(gcs_dir)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    acquire(gcs_dir).release()  # kill -9 on this host: taken over without waiting for the lease


def test_another_hosts_lock_is_taken_over_when_its_lease_expires(gcs_dir):
    store = _Store(f"{gcs_dir}/.lock")
    record = {"host": "elsewhere", "pid": 1, "started": "2026-12-04 10:00:00 UTC", "expires": time.time() + 3.0}
    first = store.write(record, 0)
    with pytest.raises(FileExistsError):
        store.write(record, 0)  # the precondition: a second creator of the object fails
    with pytest.raises(WorkdirBusy, match=r"in use by host elsewhere, process 1, .*its lease runs out in [1-3] s"):
        acquire(gcs_dir)
    time.sleep(3.5)
    lock = acquire(gcs_dir)
    assert json.loads((as_path(gcs_dir) / ".lock").read_text())["host"] == socket.gethostname()
    with pytest.raises(FileExistsError):
        store.write(record, first)  # the expired holder cannot write over its successor
    lock.release()
