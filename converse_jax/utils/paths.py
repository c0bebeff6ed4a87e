"""Every path the project takes or writes: a local path or a Cloud Storage URL (``gs://bucket/...``).

:func:`as_path` turns what a user typed into a path object: a local path stays a
:class:`pathlib.Path` (relative to the current directory, ``~`` expanded: today's behaviour), a
``gs://`` URL becomes an :class:`etils.epath.Path`, whose Cloud Storage backend is ``gcsfs`` (the
``gcs`` extra: ``pip install 'converse-jax[gcs]'``); orbax, TFDS and grain read the same URLs
through ``etils.epath`` and tensorstore.  Without the extra a ``gs://`` path fails at once with one
line naming the extra (:class:`RemotePathError`), before anything is written anywhere.  Both kinds
share the methods the project uses (``/``, ``name``, ``stem``, ``suffix``, ``parent``, ``exists``,
``is_dir``, ``is_file``, ``iterdir``, ``glob``, ``mkdir``, ``open``, ``read_bytes``,
``read_text``, ``unlink``).

What an object store changes: there are no folders (:func:`makedirs` creates nothing remote: an
object's name holds its "folders"), no rename of a folder in one step and no append; one object is
written whole or not at all, which is what :mod:`converse_jax.utils.atomic` relies on there.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Union

from etils import epath

__all__ = ["AnyPath", "RemotePathError", "absolute", "as_path", "has_folder", "is_remote", "makedirs", "move_folder"]

AnyPath = Union[Path, epath.Path]  # noqa: UP007  (a runtime alias)
GCS_EXTRA = "pip install 'converse-jax[gcs]'"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class RemotePathError(ValueError):
    """A ``scheme://`` path that cannot be used here: an unknown scheme, or ``gs://`` without the ``gcs`` extra.

    Example:
      >>> try:
      ...     as_path("ftp://host/run", "--workdir")
      ... except ValueError as err:  # a ValueError: the command-line tools print it as one line
      ...     print(type(err).__name__)
      RemotePathError
    """


def is_remote(path: str | os.PathLike) -> bool:
    """True for a URL such as ``gs://bucket/run`` (a ``scheme://`` prefix), False for a local path.

    Example:
      >>> is_remote("gs://bucket/run"), is_remote("runs/a"), is_remote(Path("/tmp"))
      (True, False, False)
    """
    return _SCHEME.match(os.fspath(path)) is not None


class _NoBucketTypeChatter(logging.Filter):
    """Drops gcsfs's warning that it could not look up a bucket's type (no default credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Could not determine bucket type" not in record.getMessage()


def _check_remote(text: str, what: str) -> None:
    scheme = _SCHEME.match(text)[1]
    if scheme != "gs":
        raise RemotePathError(f"{what}: {text}: {scheme}:// is not supported (a local path or gs://bucket/...)")
    try:
        import gcsfs  # noqa: F401  (epath's gs:// backend)
    except ImportError:
        raise RemotePathError(f"{what}: {text} is on Cloud Storage, which needs the gcs extra: {GCS_EXTRA}") from None
    import fsspec

    # Other processes and tensorstore write the same workdir: list what is there, not a cached listing.
    fsspec.config.conf.setdefault("gs", {}).setdefault("use_listings_cache", False)
    gcs_log = logging.getLogger("gcsfs")
    if not any(isinstance(f, _NoBucketTypeChatter) for f in gcs_log.filters):
        gcs_log.addFilter(_NoBucketTypeChatter())


def as_path(path: str | os.PathLike, what: str = "path") -> AnyPath:
    """``path`` as a path object: :class:`pathlib.Path` (``~`` expanded) or, for ``gs://``, :class:`etils.epath.Path`.

    Args:
      path: a local path (relative ones are taken from the current directory) or ``gs://bucket/...``.
      what: how the error names the argument (a flag such as ``'--workdir'``).

    Raises:
      RemotePathError: (a ``ValueError``) another scheme than ``gs://``, or ``gs://`` without gcsfs.

    Example:
      >>> as_path("~/runs") == Path.home() / "runs"
      True
      >>> as_path("s3://bucket/run", "--workdir")
      Traceback (most recent call last):
      ...
      converse_jax.utils.paths.RemotePathError: --workdir: s3://bucket/run: s3:// is not supported (a local path or gs://bucket/...)
    """
    if is_remote(path):
        text = os.fspath(path)
        _check_remote(text, what)
        return epath.Path(text)
    return Path(path).expanduser()


def absolute(path: str | os.PathLike, what: str = "path") -> AnyPath:
    """:func:`as_path`, made absolute when local (a URL already is).

    Example:
      >>> absolute("run") == Path.cwd() / "run"
      True
    """
    path = as_path(path, what)
    return path if is_remote(path) else path.absolute()


def has_folder(path: AnyPath) -> bool:
    """Whether a file can be written at ``path``: its local folder exists; always for a URL (no folders).

    Example:
      >>> has_folder(Path("/no/such/folder/x.png")), has_folder(Path.cwd() / "x.png")
      (False, True)
    """
    return is_remote(path) or path.parent.is_dir()


def makedirs(path: str | os.PathLike, what: str = "path") -> AnyPath:
    """Creates the local folder ``path`` with its parents (no error if it exists); nothing for a URL.

    An object store has no folders: the objects written under ``gs://bucket/run/`` are the run.

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     made = makedirs(os.path.join(tmp, "a", "b"))
      ...     made.is_dir()
      True
    """
    path = as_path(path, what)
    if not is_remote(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def move_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Moves the folder ``source`` to ``target`` (absent), creating ``target``'s parents.

    Local: one :func:`os.replace` (atomic on one file system).  ``gs://``: every object is copied
    to its new name, then deleted (not atomic: an interrupted move leaves objects in both places).

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     _ = makedirs(os.path.join(tmp, "a"))
      ...     move_folder(os.path.join(tmp, "a"), os.path.join(tmp, "set_aside", "a"))
      ...     sorted(p.name for p in Path(tmp).iterdir())
      ['set_aside']
    """
    source, target = as_path(source), as_path(target)
    if not is_remote(source):
        makedirs(target.parent)
        os.replace(source, target)
        return
    import fsspec

    fs, _ = fsspec.core.url_to_fs(os.fspath(source))
    fs.mv(os.fspath(source), os.fspath(target), recursive=True)
