"""Atomic file writes with the user's permissions: the one writer every output of the project uses.

:func:`atomic_open` yields a file object on a temporary file created in the *target's own folder*
(so the final rename never crosses a file system); when the ``with`` block ends without an
exception the data is flushed and ``fsync``-ed, the file gets the mode a plain ``open(path, 'w')``
would give it (``0o666 & ~umask``: ``tempfile.mkstemp`` alone creates ``-rw-------`` files) and
it is moved over ``path`` with :func:`os.replace`. A reader therefore sees the old file or the
complete new one, never a partial one; on an exception the temporary file is removed and
``path`` is left untouched. :func:`write_text` and :func:`write_bytes` are the one-call forms.

On Cloud Storage (``gs://``, :mod:`converse_jax.utils.paths`) the data is gathered in memory and
uploaded as one object when the block ends: an object appears whole or not at all, and an
exception uploads nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from converse_jax.utils.paths import AnyPath, as_path, is_remote

__all__ = ["atomic_open", "default_file_mode", "write_bytes", "write_text"]


def default_file_mode() -> int:
    """The permission bits ``open(path, 'w')`` gives a new file: ``0o666 & ~umask``.

    Example:
      >>> old = os.umask(0o022); oct(default_file_mode()); _ = os.umask(old)
      '0o644'
    """
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it appears complete or not at all (see the module docstring).

    Args:
      path: the file to (re)place; its folder must exist (a ``gs://`` URL: one object).
      mode: ``'wb'`` (bytes) or ``'w'`` (text; ``kwargs`` such as ``encoding`` and ``newline`` go to
        :func:`open`, ``encoding`` defaults to UTF-8).

    Yields:
      The open temporary file; write to it inside the ``with`` block.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> target = Path(tmp.name) / "notes.txt"
      >>> with atomic_open(target, "w") as f:
      ...     _ = f.write("hello\\n")
      >>> target.read_text(), sorted(p.name for p in Path(tmp.name).iterdir())
      ('hello\\n', ['notes.txt'])
      >>> oct(target.stat().st_mode & 0o777) == oct(default_file_mode())
      True
      >>> tmp.cleanup()
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: expected 'w' or 'wb', got {mode!r}")
    if is_remote(path):
        with _object_open(as_path(path), mode, **kwargs) as f:
            yield f
        return
    path = Path(path)
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the file the user asked for, not the temporary one
        raise type(err)(err.errno, err.strerror, str(path)) from err
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _object_open(path: AnyPath, mode: str, **kwargs: Any) -> Iterator[IO[Any]]:
    """:func:`atomic_open` for an object store: buffered in memory, uploaded in one piece at the end."""
    buffer = io.BytesIO()
    if mode == "wb":
        yield buffer
    else:
        kwargs.setdefault("encoding", "utf-8")
        text = io.TextIOWrapper(buffer, write_through=True, **kwargs)
        yield text
        text.detach()
    path.write_bytes(buffer.getvalue())


def write_text(path: str | os.PathLike[str], text: str, *, newline: str | None = "") -> AnyPath:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a :class:`~pathlib.Path` (``gs://``: an ``epath.Path``).

    ``newline=''`` (default) writes ``'\\n'`` as is on every platform.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> write_text(Path(tmp.name) / "a.csv", "x,y\\n1,2\\n").read_text()
      'x,y\\n1,2\\n'
      >>> tmp.cleanup()
    """
    with atomic_open(path, "w", newline=newline) as f:
        f.write(text)
    return as_path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> AnyPath:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a :class:`~pathlib.Path` (``gs://``: an ``epath.Path``).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> write_bytes(Path(tmp.name) / "a.bin", b"\\x00\\x01").read_bytes()
      b'\\x00\\x01'
      >>> tmp.cleanup()
    """
    with atomic_open(path, "wb") as f:
        f.write(data)
    return as_path(path)
