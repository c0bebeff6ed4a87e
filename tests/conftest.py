"""Shared test fixtures.

The read-only reference material (golden files, test images, official weights) lives in
``../shared`` beside the repository (override with ``CONVERSE_SHARED``). Tests that need it
skip with a clear reason when it is absent, e.g. on a user's machine.

The suite compiles well over a thousand small XLA programs, and LLVM's optimisation of the
generated machine code was about a third of its time: the test processes turn it off
(``QUICK_COMPILE``, added to ``XLA_FLAGS`` before JAX starts its backend). XLA's HLO passes, which
decide the arithmetic, run in full; what may change is the last bits of float32 results (how
the machine code rounds), well inside every tolerance here. The commands the tests run in
subprocesses as a user would (README, installed wheel, training runs) drop ``XLA_FLAGS`` and
compile with the defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

QUICK_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {QUICK_COMPILE}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONVERSE_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(relpath: str) -> Path:
    """Path of ``relpath`` inside the shared folder; skips the test when it is missing."""
    path = SHARED / relpath
    if not path.exists():
        pytest.skip(f"shared reference material not found: {path} (set CONVERSE_SHARED)")
    return path


def packages_imported_by(statement: str, packages: set[str]) -> list[str]:
    """The ``packages`` (top-level names) that ``statement`` imports in a fresh interpreter, sorted."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def shared():
    """The ``shared_path`` helper as a fixture."""
    return shared_path


@pytest.fixture(scope="session")
def gcs_server():
    """One ``gcp-storage-emulator`` per test session (``tests/gcs_server.py``), its environment set
    in this process (and so inherited by the commands the tests start)."""
    import gcs_server as server_lib

    server = server_lib.start()
    patch = pytest.MonkeyPatch()
    for name, value in server.env.items():
        patch.setenv(name, value)
    yield server
    patch.undo()
    server.stop()


@pytest.fixture
def gcs_dir(gcs_server, request) -> str:
    """A fresh ``gs://`` prefix for one test on the session's emulator (objects under it are the test's)."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)
    return f"gs://{gcs_server.bucket}/{name}"
