"""Shared test fixtures.

The read-only reference material (golden files, test images, official weights) lives in
``../shared`` beside the repository (override with ``CONVERSE_SHARED``). Tests that need it
skip with a clear reason when it is absent, e.g. on a user's machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_default_matmul_precision", "highest")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONVERSE_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(relpath: str) -> Path:
    """Path of ``relpath`` inside the shared folder; skips the test when it is missing."""
    path = SHARED / relpath
    if not path.exists():
        pytest.skip(f"shared reference material not found: {path} (set CONVERSE_SHARED)")
    return path


@pytest.fixture
def shared():
    """The ``shared_path`` helper as a fixture."""
    return shared_path
