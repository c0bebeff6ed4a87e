"""Checksums and finiteness of stored weights: what every save records and every load verifies.

A tree is a nested mapping of arrays (a variable store's variables, the EMA parameters of a
training checkpoint); a leaf is named by its keys joined with ``/`` (``params/head/kernel``).
:func:`tree_crcs` gives a CRC-32 of each leaf's bytes, computed when the weights are saved and
stored with them; :func:`weights_problem` checks weights read back against it (flipped bytes
that the storage layer decodes without complaint give finite garbage) and for NaN/infinity, and
says what is wrong in a few words (None when nothing is).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["crc32", "root_cause", "tree_crcs", "weights_problem"]


def crc32(array: Any) -> int:
    """CRC-32 of an array's bytes (C order), as Python ``int``.

    Example:
      >>> zeros, ones = np.zeros(3, np.float32), np.ones(3, np.float32)
      >>> crc32(zeros) == crc32(zeros.copy()), crc32(ones) == crc32(zeros)
      (True, False)
    """
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _named_leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from _named_leaves(value, name)
        else:
            yield name, value


def tree_crcs(tree: Mapping[str, Any]) -> dict[str, int]:
    """``{leaf name: CRC-32}`` of a nested mapping of arrays (names: keys joined with ``/``).

    Example:
      >>> sorted(tree_crcs({"params": {"w": np.ones(2), "b": np.zeros(1)}}))
      ['params/b', 'params/w']
    """
    return {name: crc32(np.asarray(leaf)) for name, leaf in _named_leaves(tree)}


def weights_problem(tree: Mapping[str, Any], crcs: Mapping[str, int] | None, *, finite: bool = True) -> str | None:
    """What is wrong with weights read back: leaves that differ from ``crcs`` (None: not checked),
    leaves missing from the tree, or (``finite=True``) floating-point leaves holding a NaN or an
    infinity; None if nothing.

    Example:
      >>> tree = {"params": {"w": np.ones(2, np.float32)}}
      >>> crcs = tree_crcs(tree)
      >>> weights_problem(tree, crcs) is None
      True
      >>> tree["params"]["w"][0] = 5
      >>> weights_problem(tree, crcs)
      'params/w differs from its checksum'
      >>> weights_problem({"params": {"w": np.array([np.nan], np.float32)}}, None)
      'params/w holds NaN or infinity'
    """
    leaves = dict(_named_leaves(tree))
    if crcs is not None:
        missing = sorted(set(crcs) - set(leaves))
        if missing:
            return f"{', '.join(missing[:3])} missing"
        bad = [name for name, crc in crcs.items() if crc32(np.asarray(leaves[name])) != crc]
        if len(bad) == 1:
            return f"{bad[0]} differs from its checksum"
        if bad:
            return f"{', '.join(bad[:3])} ({len(bad)} arrays) differ from their checksums"
    nonfinite = [
        name for name, leaf in leaves.items()
        if finite and np.issubdtype(np.asarray(leaf).dtype, np.inexact) and not np.isfinite(np.asarray(leaf)).all()
    ]  # fmt: skip
    if nonfinite:
        return f"{', '.join(nonfinite[:3])} {'holds' if len(nonfinite) == 1 else 'hold'} NaN or infinity"
    return None


def root_cause(error: BaseException) -> str:
    """The root cause of ``error`` in one line (tensorstore's specs and dumps cut off).

    Example:
      >>> try:
      ...     try:
      ...         open("no/such/file")
      ...     except OSError as err:
      ...         raise ValueError("cannot read") from err
      ... except ValueError as err:
      ...     print(root_cause(err))
      FileNotFoundError: [Errno 2] No such file or directory: 'no/such/file'
    """
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()
    line = (text[0] if text else "").split(" [tensorstore_spec")[0]
    return f"{type(error).__name__}: {line}"[:300]
