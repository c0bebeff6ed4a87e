"""The project's own checkpoint format for converted or trained model variables.

A *variable store* is a directory::

    <path>/
      converse_variables.json     manifest: format tag, arch, user metadata, array listing,
                                  name of the data folder (the commit record)
      variables-<hex>/            an orbax checkpoint (StandardCheckpointHandler) of the
                                  variables as a nested dict of NumPy arrays

Restoring needs only this directory (no original ``.pth``, no model code).

Atomicity: the arrays are written by orbax into a fresh ``variables-<hex>`` folder (orbax itself
writes to a temporary folder and renames it when complete); then the manifest is written to a
temporary file in the same directory and moved over ``converse_variables.json`` with
:func:`os.replace`. That rename is the commit: a reader sees either the old complete store or the
new one, never a mix. A save that fails at any step removes what it wrote (and the store directory
itself when the save created it); after a successful overwrite the previous data folder is deleted.
Single-process use only (no multi-host coordination).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from converse_jax.atomic import write_text as _write_text_atomic

__all__ = ["MANIFEST_NAME", "load_metadata", "load_variables", "save_variables"]

MANIFEST_NAME = "converse_variables.json"
_FORMAT = "converse-jax-variables"
_FORMAT_VERSION = 1
_DATA_PREFIX = "variables-"


def _to_numpy_tree(tree: Any, where: str, listing: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Copy a nested mapping of arrays into plain dicts of NumPy arrays, validating names and leaves."""
    if not isinstance(tree, Mapping):
        raise ValueError(f"variables: {where or 'the top level'} must be a mapping, got {type(tree).__name__}")
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if not isinstance(name, str) or not name or "." in name or "/" in name:
            raise ValueError(
                f"variables: key {name!r} under {where or 'the top level'} must be a non-empty str "
                "without '.' or '/' (orbax joins names with '.', so such keys could collide)"
            )
        sub = f"{where}/{name}" if where else name
        if isinstance(value, Mapping):
            out[name] = _to_numpy_tree(value, sub, listing)
            continue
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise ValueError(f"variables: leaf {sub!r} is a {type(value).__name__}, expected an array")
        array = np.asarray(value)
        if array.dtype.kind in "OSUMm" or (array.dtype.kind == "V" and array.dtype.names is not None):
            raise ValueError(f"variables: leaf {sub!r} has dtype {array.dtype}, expected a numeric or bool array")
        if array.size == 0:
            raise ValueError(f"variables: leaf {sub!r} has shape {array.shape}; empty arrays cannot be stored")
        out[name] = array
        listing[sub] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    return out


def _json_text(arch: str, metadata: dict[str, Any], data_name: str, listing: dict[str, Any]) -> str:
    manifest = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "arch": arch,
        "metadata": metadata,
        "data": data_name,
        "arrays": listing,
    }
    return json.dumps(manifest, indent=2, allow_nan=False) + "\n"


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"path: variable store {path} does not exist")
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir() or not manifest_path.is_file():
        raise ValueError(f"path: {path} is not a variable store (no {MANIFEST_NAME} inside)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"path: manifest {manifest_path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ValueError(f"path: {manifest_path} is not a {_FORMAT} manifest")
    if manifest.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"path: {manifest_path} has format_version {manifest.get('format_version')!r}; "
            f"this code reads version {_FORMAT_VERSION}"
        )
    data = manifest.get("data")
    if not isinstance(data, str) or not data.startswith(_DATA_PREFIX) or "/" in data:
        raise ValueError(f"path: {manifest_path} names an invalid data folder {data!r}")
    return manifest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def save_variables(
    path: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    arch: str,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save model variables and their architecture name as a variable store at ``path``.

    Args:
      path: the store directory. Its parent must exist. ``path`` may be absent, an empty
        directory, or (only with ``overwrite=True``) an existing variable store.
      variables: nested mapping (e.g. Flax ``{'params': {...}}``) whose leaves are NumPy or JAX
        arrays of any numeric/bool dtype and shape (no empty arrays). Keys must be non-empty
        strings without ``'.'`` or ``'/'``. Leaves are stored as NumPy arrays, bit-exactly.
      arch: name of the architecture (e.g. ``'converse_dncnn'``), stored in the manifest.
      metadata: optional JSON-serialisable dict (e.g. constructor arguments, training step,
        source checkpoint); ``NaN``/``inf`` are not allowed.
      overwrite: replace an existing store at ``path``. When ``False`` an existing store raises
        ``FileExistsError`` and is left untouched. Either way a non-store file or a non-empty
        directory that is not a store is never overwritten (``ValueError``).

    Returns:
      The absolute path of the store.

    Raises:
      ValueError: bad ``arch``/``metadata``/``variables``, missing parent, or ``path`` is not a
        store. FileExistsError: ``path`` is a store and ``overwrite`` is False.

    On any failure nothing new is left behind: a previous store is intact and a store directory
    created by this call is removed.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> variables = {"params": {"dense": {"kernel": np.ones((2, 3), np.float32),
      ...                                   "bias": np.zeros(3, np.float32)}}}
      >>> path = save_variables(Path(tmp.name) / "store", variables, arch="my_net")
      >>> path.name, (path / MANIFEST_NAME).is_file(), len(list(path.glob("variables-*")))
      ('store', True, 1)
      >>> save_variables(path, variables, arch="my_net")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      FileExistsError: path: variable store ...store already exists (pass overwrite=True)
      >>> path == save_variables(path, variables, arch="my_net", overwrite=True)
      True
      >>> tmp.cleanup()
    """
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"arch: expected a non-empty str, got {arch!r}")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata: expected a dict or None, got {type(metadata).__name__}")
    listing: dict[str, dict[str, Any]] = {}
    tree = _to_numpy_tree(variables, "", listing)
    if not listing:
        raise ValueError("variables: holds no arrays")
    try:
        _json_text(arch, metadata, _DATA_PREFIX, listing)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata: must be JSON-serialisable without NaN/inf: {err}") from err

    path = Path(path).expanduser().absolute()
    if not path.parent.is_dir():
        raise ValueError(f"path: parent directory {path.parent} does not exist")
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"path: {path} exists and is not a directory")
        if (path / MANIFEST_NAME).exists():
            if not overwrite:
                raise FileExistsError(f"path: variable store {path} already exists (pass overwrite=True)")
        elif any(path.iterdir()):
            raise ValueError(f"path: {path} is a non-empty directory that is not a variable store")
        created = False
    else:
        path.mkdir()
        created = True

    import orbax.checkpoint as ocp  # deferred: importing orbax is slow

    data_name = f"{_DATA_PREFIX}{uuid.uuid4().hex}"
    data_dir = path / data_name
    try:
        with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer:
            checkpointer.save(data_dir, args=ocp.args.StandardSave(tree))
        _write_text_atomic(path / MANIFEST_NAME, _json_text(arch, metadata, data_name, listing))
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for entry in path.glob(f"{data_name}*"):  # the data folder and any orbax temp folder
                _remove(entry)
        raise
    for entry in path.iterdir():  # the replaced data folder and leftovers of interrupted saves
        if entry.name != data_name and entry.name.startswith((_DATA_PREFIX, f".{MANIFEST_NAME}.tmp-")):
            _remove(entry)
    return path


def load_variables(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """Load a variable store written by :func:`save_variables`.

    Args:
      path: the store directory.

    Returns:
      ``(arch, variables)``: the architecture name and the variables as nested plain dicts of
      NumPy arrays (host memory; shapes and dtypes exactly as saved, values bit-identical).

    Raises:
      FileNotFoundError: ``path`` does not exist. ValueError: ``path`` is not a store, its
      manifest is invalid, or the stored arrays do not match the manifest's listing.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> kernel = np.random.default_rng(0).standard_normal((3, 3, 1, 2)).astype(np.float32)
      >>> variables = {"params": {"conv": {"kernel": kernel}}, "state": {"step": np.array(7)}}
      >>> arch, loaded = load_variables(save_variables(Path(tmp.name) / "s", variables, arch="cnn"))
      >>> arch, loaded["params"]["conv"]["kernel"].shape, loaded["params"]["conv"]["kernel"].dtype
      ('cnn', (3, 3, 1, 2), dtype('float32'))
      >>> bool(np.array_equal(loaded["params"]["conv"]["kernel"], kernel)), int(loaded["state"]["step"])
      (True, 7)
      >>> tmp.cleanup()
    """
    path = Path(path).expanduser().absolute()
    manifest = _read_manifest(path)
    data_dir = path / manifest["data"]
    if not data_dir.is_dir():
        raise ValueError(f"path: data folder {data_dir} named by the manifest is missing")

    import orbax.checkpoint as ocp

    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer:
        restored = checkpointer.restore(data_dir)
    listing: dict[str, dict[str, Any]] = {}
    variables = _to_numpy_tree(restored, "", listing)
    if listing != manifest.get("arrays"):
        raise ValueError(f"path: arrays in {data_dir} do not match the listing in its manifest")
    return manifest["arch"], variables


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata`` dict stored by :func:`save_variables` at ``path`` (reads only the manifest).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> path = save_variables(Path(tmp.name) / "s", {"params": {"w": np.ones(2)}}, arch="net",
      ...                       metadata={"step": 1000, "model_kwargs": {"features": 16}})
      >>> load_metadata(path)
      {'step': 1000, 'model_kwargs': {'features': 16}}
      >>> tmp.cleanup()
    """
    return _read_manifest(Path(path).expanduser().absolute())["metadata"]
