"""The project's own checkpoint format for converted or trained model variables.

A *variable store* is an orbax checkpoint folder, laid out as one step of a training run's
``WORKDIR/checkpoints/<step>/`` (the same orbax handlers and metadata)::

    <path>/
      _CHECKPOINT_METADATA    orbax's step metadata; its ``custom_metadata`` holds
                              {"converse_jax": {"format_version": 2, "arch": ..., "metadata": {...}}}
      variables/              orbax StandardSave item: the variables as a nested dict of arrays

Restoring needs only this folder (no original ``.pth``, no model code); :func:`restore_item`
reads any such item -- a store's ``variables`` or a training checkpoint's ``state`` -- as raw
NumPy arrays, without a template.

Atomicity: orbax writes the checkpoint into a fresh hidden folder beside ``path`` (itself
through a temporary folder renamed when complete), which is then renamed onto ``path``. When
``path`` already holds a store (``overwrite=True``), the old one is first renamed aside and deleted
only after the new one is in place: a reader sees the old store, the new one, or (for the
instant between the two renames) none -- never a mix. A save that fails removes what it wrote.
Single-process use only (no multi-host coordination).

Folders written by converse-jax before this format (a ``converse_variables.json`` manifest beside
a ``variables-<hex>`` folder) are refused with the command that converts the ``.pth`` again.
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

from converse_jax.utils.checksum import root_cause, tree_crcs, weights_problem
from converse_jax.utils.paths import absolute, is_remote
from converse_jax.utils.quiet import quiet_closed_loop_noise, quiet_orbax

__all__ = ["ITEM", "load_metadata", "load_variables", "restore_item", "save_variables", "stored_arch"]

ITEM = "variables"
"""Name of the orbax item holding the variables."""
_KEY = "converse_jax"
_FORMAT_VERSION = 2
_LEGACY_MANIFEST = "converse_variables.json"


def _to_numpy_tree(tree: Any, where: str = "") -> dict[str, Any]:
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
            out[name] = _to_numpy_tree(value, sub)
            continue
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise ValueError(f"variables: leaf {sub!r} is a {type(value).__name__}, expected an array")
        array = np.asarray(value)
        if array.dtype.kind in "OSUMm" or (array.dtype.kind == "V" and array.dtype.names is not None):
            raise ValueError(f"variables: leaf {sub!r} has dtype {array.dtype}, expected a numeric or bool array")
        if array.size == 0:
            raise ValueError(f"variables: leaf {sub!r} has shape {array.shape}; empty arrays cannot be stored")
        out[name] = array
    return out



def _is_store(path: Path) -> bool:
    return (path / _LEGACY_MANIFEST).is_file() or (path / "_CHECKPOINT_METADATA").is_file()


def _custom(path: Path) -> dict[str, Any]:
    """The ``converse_jax`` record of the store at ``path``, checked (format version, arch)."""
    if not path.exists():
        raise FileNotFoundError(f"path: variable store {path} does not exist")
    if (path / _LEGACY_MANIFEST).is_file():
        raise ValueError(
            f"path: {path} was written by an older converse-jax (a {_LEGACY_MANIFEST} manifest); "
            f"convert the checkpoint again: converse-jax convert IN.pth {path} --overwrite"
        )
    if not path.is_dir() or not (path / ITEM).is_dir():
        raise ValueError(f"path: {path} is not a variable store (no orbax item {ITEM!r} inside)")
    import orbax.checkpoint as ocp  # deferred: importing orbax is slow

    with quiet_orbax(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        record = (checkpointer.metadata(path).custom_metadata or {}).get(_KEY)
    if not isinstance(record, dict) or not isinstance(record.get("arch"), str):
        raise ValueError(f"path: {path} is an orbax checkpoint without the {_KEY!r} record of a variable store")
    if record.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"path: {path} has format_version {record.get('format_version')!r}; this code reads version {_FORMAT_VERSION}"
        )
    return record


def _check_target(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise ValueError(f"path: parent directory {path.parent} does not exist")
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"path: {path} exists and is not a directory")
    if _is_store(path):
        if not overwrite:
            raise FileExistsError(f"path: variable store {path} already exists (pass overwrite=True)")
    elif any(path.iterdir()):
        raise ValueError(f"path: {path} is a non-empty directory that is not a variable store")


def _commit(staged: Path, path: Path) -> None:
    """Rename the complete ``staged`` checkpoint onto ``path`` (moving an old store aside first)."""
    if path.exists() and any(path.iterdir()):
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
        os.rename(path, old)
        try:
            os.rename(staged, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, path)  # onto an absent or empty directory: one atomic step


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
      arch: name of the architecture (e.g. ``'converse_dncnn'``), stored in orbax's metadata.
      metadata: optional JSON-serialisable dict (e.g. constructor arguments, training step,
        source checkpoint); ``NaN``/``inf`` are not allowed.
      overwrite: replace an existing store at ``path``. When ``False`` an existing store raises
        ``FileExistsError`` and is left untouched. Either way a non-store file or a non-empty
        directory that is not a store is never overwritten (``ValueError``).

    Returns:
      The absolute path of the store.

    Raises:
      ValueError: bad ``arch``/``metadata``/``variables`` , missing parent, or ``path`` is not a
        store. FileExistsError: ``path`` is a store and ``overwrite`` is False.

    On any failure nothing new is left behind: a previous store is intact and a store directory
    created by this call is removed.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> variables = {"params": {"dense": {"kernel": np.ones((2, 3), np.float32),
      ...                                   "bias": np.zeros(3, np.float32)}}}
      >>> path = save_variables(Path(tmp.name) / "store", variables, arch="my_net")
      >>> path.name, sorted(p.name for p in path.iterdir() if not p.name.endswith(".txt"))
      ('store', ['_CHECKPOINT_METADATA', 'variables'])
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
    tree = _to_numpy_tree(variables)
    if next(_leaves(tree), None) is None:
        raise ValueError("variables: holds no arrays")
    record = {"format_version": _FORMAT_VERSION, "arch": arch, "metadata": metadata, "crc32": tree_crcs(tree)}
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata: must be JSON-serialisable without NaN/inf: {err}") from err
    if is_remote(path):
        raise ValueError(f"path: {path}: a variable store is written to a local folder (then copied to a bucket as it is)")
    path = Path(path).expanduser().absolute()
    _check_target(path, overwrite)

    import orbax.checkpoint as ocp

    staged = path.with_name(f".{path.name}.new-{uuid.uuid4().hex}")
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            checkpointer.save(staged, args=ocp.args.Composite(**{ITEM: ocp.args.StandardSave(tree)}),
                              custom_metadata={_KEY: record})
        _commit(staged, path)
    finally:
        for leftover in path.parent.glob(f"{staged.name}*"):  # the staged folder, orbax's temporary one
            shutil.rmtree(leftover, ignore_errors=True)
    return path


def _leaves(tree: Mapping[str, Any]):
    for value in tree.values():
        if isinstance(value, Mapping):
            yield from _leaves(value)
        else:
            yield value


def restore_item(item_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """An orbax StandardSave/PyTree item as saved: nested dicts of NumPy arrays, no template.

    Reads the store's ``variables`` item, or a training checkpoint's ``state`` item
    (``WORKDIR/checkpoints/<step>/state``), read-only and independent of the devices that wrote it.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> path = save_variables(Path(tmp.name) / "s", {"params": {"w": np.arange(3.0)}}, arch="net")
      >>> restore_item(path / ITEM)["params"]["w"].tolist()
      [0.0, 1.0, 2.0]
      >>> tmp.cleanup()
    """
    import jax
    import orbax.checkpoint as ocp

    with ocp.PyTreeCheckpointer() as checkpointer:
        tree = checkpointer.metadata(item_dir).item_metadata.tree
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        return checkpointer.restore(item_dir, args=ocp.args.PyTreeRestore(restore_args=restore_args))


def load_variables(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """Load a variable store written by :func:`save_variables`.

    Args:
      path: the store directory.

    Returns:
      ``(arch, variables)``: the architecture name and the variables as nested plain dicts of
      NumPy arrays (host memory; shapes and dtypes exactly as saved, values bit-identical).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: ``path`` is not a store (a folder of the older manifest format gets the command
        that converts it again), or is damaged: its arrays cannot be read or differ from the
        checksums written at save time. Values are returned bit-exactly as saved, NaN and
        infinity included (:func:`converse_jax.pretrained.load` refuses those).

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
    path = absolute(path, "weights")
    record = _custom(path)
    try:
        with quiet_orbax():
            tree = _to_numpy_tree(restore_item(path / ITEM))
    except Exception as err:  # orbax/tensorstore raise many types for damaged files
        quiet_closed_loop_noise()
        raise ValueError(f"path: variable store {path} is damaged: its arrays cannot be read ({root_cause(err)})") from err
    problem = weights_problem(tree, record.get("crc32"), finite=False)
    if problem:
        raise ValueError(f"path: variable store {path} is damaged: {problem}")
    return record["arch"], tree


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata`` dict stored by :func:`save_variables` at ``path`` (reads only orbax's metadata).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> path = save_variables(Path(tmp.name) / "s", {"params": {"w": np.ones(2)}}, arch="net",
      ...                       metadata={"step": 1000, "model_kwargs": {"features": 16}})
      >>> load_metadata(path)
      {'step': 1000, 'model_kwargs': {'features': 16}}
      >>> tmp.cleanup()
    """
    return _custom(absolute(path, "weights"))["metadata"]


def stored_arch(path: str | os.PathLike[str]) -> str:
    """The architecture name stored by :func:`save_variables` at ``path`` (reads only orbax's metadata).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> stored_arch(save_variables(Path(tmp.name) / "s", {"params": {"w": np.ones(2)}}, arch="net"))
      'net'
      >>> tmp.cleanup()
    """
    return _custom(absolute(path, "weights"))["arch"]
