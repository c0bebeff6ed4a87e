"""A real Cloud Storage server for the tests: ``gcp-storage-emulator`` on a free loopback port.

:func:`start` runs the emulator (in memory, with the protocol fixes of ``tests/gcs_emulator.py``) in a subprocess, creates one bucket and returns the
environment that points every client at it: ``STORAGE_EMULATOR_HOST`` (gcsfs, google-cloud-storage,
tensorboardX), ``TENSORSTORE_GCS_HTTP_URL`` and ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` (tensorstore,
which writes orbax's arrays).  ``conftest.py`` starts one per test session (fixture ``gcs_server``)
and gives each test its own prefix (fixture ``gcs_dir``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BUCKET = "converse-test"


@dataclass
class GcsServer:
    """A running emulator: its URL, its bucket, the environment that points the clients at it."""

    url: str
    bucket: str
    env: dict[str, str]
    process: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(timeout: float = 60.0) -> GcsServer:
    """Starts the emulator, waits until it answers and creates bucket :data:`BUCKET`."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    program = Path(__file__).with_name("gcs_emulator.py")
    process = subprocess.Popen(
        [sys.executable, str(program), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gcp-storage-emulator did not start on port {port}") from None
            time.sleep(0.05)
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "any"}
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    ).create_bucket(BUCKET)
    return GcsServer(url, BUCKET, env, process)
