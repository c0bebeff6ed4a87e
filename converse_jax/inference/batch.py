"""What the batch tools (``restore``, ``evaluate``) do before and around the work on each image.

A batch must finish even when some inputs are bad, and must fail *before* the work when its
outputs cannot be written:

* :class:`BatchReader` decodes the input images one at a time; an image that cannot be decoded
  (truncated, corrupt, 16-bit, not an image) is *skipped*: one line ``skipped PATH: REASON`` on
  stderr, recorded in ``reader.skipped``, and the caller goes on with the next image. It also
  says once (on stderr) when colour images are converted to gray for a gray model.
* :func:`check_collisions` refuses, before any work, inputs that would be written to the same
  output (``x.png`` and ``x.bmp`` both become ``x.png``).
* :func:`check_writable_folder` proves an output folder writable by creating (and removing) a
  file in it (or in its nearest existing ancestor, when the folder is yet to be created): the
  only check that also holds for root, for read-only mounts and for immutable folders
  (permission bits alone do not tell).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from converse_jax.utils.images import open_image
from converse_jax.utils.paths import as_path, is_remote

__all__ = ["BatchReader", "Skipped", "check_collisions", "check_writable_folder", "notify"]

Item = TypeVar("Item")

def notify(line: str) -> None:
    """Print one line on stderr without breaking a running tqdm progress bar.

    Example:
      >>> import contextlib, io
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     notify("skipped a.png: image file is truncated")
      >>> err.getvalue()
      'skipped a.png: image file is truncated\\n'
    """
    tqdm.write(line, file=sys.stderr)


@dataclass(frozen=True)
class Skipped:
    """An input image the batch could not use: its path and the reason (one line).

    Example:
      >>> Skipped(Path("in/x.png"), "image file is truncated").line()
      'skipped in/x.png: image file is truncated'
    """

    path: Path
    reason: str

    def line(self) -> str:
        """``'skipped PATH: REASON'``."""
        return f"skipped {self.path}: {self.reason}"


class BatchReader:
    """Reads the images of a batch as uint8 ``(H, W, channels)``, skipping those it cannot decode.

    Args:
      channels: 1 (gray, BT.601 luma of colour files) or 3 (RGB; gray files repeated).
      model: the model's name, used in the one-time colour-to-gray note.

    Attributes:
      skipped: the :class:`Skipped` inputs so far, in reading order.

    Example:
      >>> import contextlib, io, tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> good, bad = Path(tmp.name) / "good.png", Path(tmp.name) / "bad.png"
      >>> from converse_jax.utils.images import write_png
      >>> _ = write_png(good, np.zeros((4, 4, 3), np.uint8))
      >>> _ = bad.write_bytes(good.read_bytes()[:40])  # a truncated PNG
      >>> reader = BatchReader(1, "converse_dncnn")
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     images = [reader.read(good), reader.read(bad)]
      >>> images[0].shape, images[1], [s.path.name for s in reader.skipped]
      ((4, 4, 1), None, ['bad.png'])
      >>> print(err.getvalue().replace(tmp.name, "DIR"), end="")  # doctest: +ELLIPSIS
      note: converse_dncnn takes gray images; colour inputs are converted to gray (BT.601 luma), first DIR/good.png
      skipped DIR/bad.png: ...
      >>> tmp.cleanup()
    """

    def __init__(self, channels: int, model: str) -> None:
        self.channels = channels
        self.model = model
        self.skipped: list[Skipped] = []
        self._noted = False

    def read(self, path: str | os.PathLike[str]) -> np.ndarray | None:
        """The image at ``path``, or None when it cannot be decoded (reported and recorded)."""
        path = as_path(path)
        try:
            array, colour = open_image(path, self.channels)
        except OSError as err:  # undecodable (UnreadableImageError) or unreadable (open's error)
            self.skip(path, getattr(err, "reason", None) or err.strerror or str(err))
            return None
        if colour and self.channels == 1 and not self._noted:
            self._noted = True
            notify(
                f"note: {self.model} takes gray images; colour inputs are converted to gray "
                f"(BT.601 luma), first {path}"
            )
        return array

    def skip(self, path: str | os.PathLike[str], reason: str) -> None:
        """Record ``path`` as skipped for ``reason`` (one line) and say so on stderr."""
        self.skipped.append(Skipped(as_path(path), reason))
        notify(self.skipped[-1].line())

    def outputs(
        self, done: Iterable[tuple[Item, Any]], path_of: Callable[[Item], str | os.PathLike[str]]
    ) -> Iterator[tuple[Item, np.ndarray]]:
        """The ``(item, output)`` pairs of a :class:`~converse_jax.inference.shard.DeviceBatcher`
        that hold an output; an item whose output is the exception the network raised for it (an
        image of a size it cannot take, in ``reported``) is skipped by its path, ``path_of(item)``.

        Example:
          >>> import contextlib, io
          >>> reader = BatchReader(3, "conversenet")
          >>> done = [("a.png", np.zeros(2)), ("b.png", ValueError("5x3 image: too small"))]
          >>> with contextlib.redirect_stderr(io.StringIO()) as err:
          ...     kept = [name for name, _ in reader.outputs(done, Path)]
          >>> kept, err.getvalue()
          (['a.png'], 'skipped b.png: 5x3 image: too small\\n')
        """
        for item, y in done:
            if isinstance(y, Exception):
                self.skip(path_of(item), str(y))
            else:
                yield item, y


def check_collisions(pairs: Iterable[tuple[Path, Path]], what: str = "output_path") -> None:
    """Refuse a batch where two inputs would be written to the same output, before any work.

    Args:
      pairs: ``(input, output)`` paths; an input may have several outputs (one pair each).
      what: the argument named in the message.

    Raises:
      ValueError: naming both inputs and the shared output.

    Example:
      >>> check_collisions([(Path("a.png"), Path("out/a.png")), (Path("b.png"), Path("out/b.png"))])
      >>> check_collisions([(Path("x.png"), Path("out/x.png")), (Path("x.bmp"), Path("out/x.png"))])
      Traceback (most recent call last):
      ...
      ValueError: output_path: x.png and x.bmp would both be written to out/x.png; rename one of them (nothing was written)
    """
    owner: dict[Path, Path] = {}
    for source, out in pairs:
        first = owner.setdefault(out, source)
        if first != source:
            raise ValueError(
                f"{what}: {first.name} and {source.name} would both be written to {out}; "
                "rename one of them (nothing was written)"
            )


def check_writable_folder(folder: str | os.PathLike[str], what: str) -> Path:
    """Prove that files can be created in ``folder`` (or, if it does not exist yet, that it can be
    created), without leaving anything behind.

    A file is created and removed in ``folder``, or in its nearest existing ancestor when
    ``folder`` does not exist (the caller creates it later, once its other checks have passed).

    Args:
      folder: the output folder.
      what: the argument named in the message (e.g. ``'out_dir'``).

    Returns:
      ``folder`` as a :class:`~pathlib.Path`.

    Raises:
      ValueError: ``folder`` or an ancestor is a file, or the folder refuses a new file
        (read-only mount, immutable, no permission); the message names the folder and the cause.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> check_writable_folder(Path(tmp.name) / "new" / "out", "out_dir").exists()  # checked, not created
      False
      >>> _ = (Path(tmp.name) / "file").write_text("x")
      >>> check_writable_folder(Path(tmp.name) / "file" / "out", "out_dir")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: out_dir: cannot write into .../file/out: .../file is a file, not a folder
      >>> tmp.cleanup()
    """
    path = as_path(folder, what)
    if is_remote(path):  # no folders to check: a bucket's permissions show at the first write
        return path
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what}: cannot write into {path}: {existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"{what}: cannot write into {path}: {err.strerror or err}") from None
    return path
