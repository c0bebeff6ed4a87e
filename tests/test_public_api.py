"""The package's front door: the curated API of ``converse_jax/__init__.py``, imported lazily, and
runtime dependencies that the library really uses."""

from __future__ import annotations

import importlib
import re
import tomllib

import pytest
from conftest import REPO_ROOT, packages_imported_by

import converse_jax

# Runtime dependencies the package never imports by name, and why they are still needed.
USED_INDIRECTLY = {
    "array-record": "tensorflow-datasets reads and writes the array_record files of data/tfds_folder.py",
    "flatbuffers": "jax.export serializes its artifacts with it (inference/export.py)",
}
IMPORT_NAMES = {"orbax-checkpoint": "orbax", "tensorflow-datasets": "tensorflow_datasets", "ml-collections": "ml_collections",
                "absl-py": "absl", "pillow": "PIL", "scikit-image": "skimage", "tensorboardX": "tensorboardX"}  # fmt: skip


def test_importing_the_operator_loads_neither_flax_nor_orbax():
    statement = "from converse_jax import converse2d, converse2d_reference"
    assert packages_imported_by(statement, {"flax", "orbax", "optax", "grain", "tensorflow_datasets"}) == []


@pytest.mark.parametrize("name", converse_jax.__all__)
def test_every_public_name_is_the_object_of_its_module(name):
    obj = getattr(converse_jax, name)
    assert obj is getattr(importlib.import_module(converse_jax._API[name]), name)
    assert name in dir(converse_jax)


def test_the_api_covers_the_zoo_and_refuses_other_names():
    assert {"converse2d", "get_model", "register_model", "list_models", "load", "Restorer", "get_task",
            "register_task", "train_and_evaluate"} <= set(converse_jax.__all__)  # fmt: skip
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        converse_jax.nope  # noqa: B018


def test_every_runtime_dependency_is_used_by_the_library():
    """Each ``[project] dependencies`` entry is imported somewhere in ``converse_jax/`` (or listed in
    :data:`USED_INDIRECTLY` with the reason); the ones only tests use belong to the ``test`` extra."""
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "converse_jax").rglob("*.py"))
    unused = []
    for dep in deps:
        dist = re.match(r"[A-Za-z0-9_.-]+", dep)[0]
        module = IMPORT_NAMES.get(dist, dist.replace("-", "_"))
        if dist not in USED_INDIRECTLY and not re.search(rf"^\s*(import|from) {re.escape(module)}\b", source, re.M):
            unused.append(dist)
    assert not unused, f"runtime dependencies the library does not import: {unused}"
