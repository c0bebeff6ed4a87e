"""Integrity records of checkpoints: a CRC-32 of every array of the train state and of the data state.

:class:`~converse_jax.train.checkpoint.Checkpointer` computes the record on the host when it
saves (from the same host copies it checks for non-finite values) and stores it as the
checkpoint's ``integrity`` item (``integrity/metadata`` JSON)::

    {"version": 1,
     "state": {".params['head']['kernel']": {"shape": [1, 4], "dtype": "float32", "crc32": 123}, ...},
     "data": [crc32 of process 0's data-iterator state, ...]}

Leaves are named by ``jax.tree_util.keystr`` of their path in the
:class:`~converse_jax.train.state.TrainState`; a data-iterator state's checksum is over its
canonical JSON (sorted keys, no spaces), so it does not depend on how the file was formatted.
At restore the arrays read back are checked against the record: flipped bytes that the storage
layer decodes without complaint (a corrupted OCDBT data file can give finite garbage) are caught.
A failed check is a :class:`CheckpointDamaged` whose message is one line (step, path, cause;
:func:`converse_jax.utils.checksum.root_cause` shortens orbax's and tensorstore's errors to theirs).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from converse_jax.utils.checksum import crc32

RECORD_VERSION = 1


def _leaves(tree: Any) -> dict[str, Any]:
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def data_crc(iterator_state: Any) -> int:
    """CRC-32 of a data-iterator state (a JSON-serialisable dict) over its canonical JSON.

    Example:
      >>> data_crc({"next_index": 4, "epoch": 0}) == data_crc({"epoch": 0, "next_index": 4})
      True
      >>> data_crc({"next_index": 4}) == data_crc({"next_index": 5})
      False
    """
    return zlib.crc32(json.dumps(iterator_state, sort_keys=True, separators=(",", ":")).encode())


def make_record(host_state: Any, data_crcs: list[int]) -> dict[str, Any]:
    """The integrity record of a state of host (numpy) arrays and the processes' data checksums.

    Example:
      >>> import numpy as np
      >>> record = make_record({"w": np.arange(3.0, dtype=np.float32)}, [data_crc({"next_index": 4})])
      >>> record["state"]["['w']"]["shape"], record["state"]["['w']"]["dtype"], len(record["data"])
      ([3], 'float32', 1)
    """
    state = {
        name: {"shape": list(np.shape(leaf)), "dtype": str(np.asarray(leaf).dtype), "crc32": crc32(np.asarray(leaf))}
        for name, leaf in _leaves(host_state).items()
    }
    return {"version": RECORD_VERSION, "state": state, "data": [int(c) for c in data_crcs]}


def layout_mismatch(record: dict[str, Any], abstract_state: Any) -> str | None:
    """How the record's leaves differ in name, shape or dtype from a template state, or None.

    A difference means the checkpoint holds another network or optimizer than the template (a
    different config), not that it is damaged.

    Example:
      >>> import jax, numpy as np
      >>> record = make_record({"w": np.zeros(3, np.float32)}, [])
      >>> print(layout_mismatch(record, {"w": jax.ShapeDtypeStruct((3,), np.float32)}))
      None
      >>> layout_mismatch(record, {"w": jax.ShapeDtypeStruct((4,), np.float32)})
      "['w'] is float32 [3] in the checkpoint, float32 [4] in this run"
    """
    expected = {n: (list(leaf.shape), str(np.dtype(leaf.dtype))) for n, leaf in _leaves(abstract_state).items()}
    saved = {n: (entry["shape"], entry["dtype"]) for n, entry in record["state"].items()}
    if saved.keys() != expected.keys():
        only_saved = ", ".join(sorted(saved.keys() - expected.keys())[:3]) or "none"
        only_run = ", ".join(sorted(expected.keys() - saved.keys())[:3]) or "none"
        return f"arrays only in the checkpoint: {only_saved}; only in this run: {only_run}"
    for name, (shape, dtype) in expected.items():
        if saved[name] != (shape, dtype):
            return f"{name} is {saved[name][1]} {saved[name][0]} in the checkpoint, {dtype} {shape} in this run"
    return None


def state_mismatch(record: dict[str, Any], host_state: Any) -> str | None:
    """Which arrays of a restored host state differ from their recorded checksums, or None.

    Example:
      >>> import numpy as np
      >>> w = np.arange(4.0, dtype=np.float32)
      >>> record = make_record({"w": w, "b": np.zeros(2, np.float32)}, [])
      >>> print(state_mismatch(record, {"w": w, "b": np.zeros(2, np.float32)}))
      None
      >>> w[2] = 7.0  # one flipped value
      >>> print(state_mismatch(record, {"w": w, "b": np.zeros(2, np.float32)}))
      1 of 2 arrays differ from their checksums: ['w']
    """
    leaves = _leaves(host_state)
    bad = [name for name, entry in record["state"].items() if crc32(np.asarray(leaves[name])) != entry["crc32"]]
    if not bad:
        return None
    return f"{len(bad)} of {len(leaves)} arrays differ from their checksums: {', '.join(bad[:3])}"


def nonfinite_leaves(host_state: Any) -> list[str]:
    """Names of the floating-point arrays of a host state that hold a NaN or an infinity.

    Example:
      >>> import numpy as np
      >>> nonfinite_leaves({"w": np.array([1.0, np.nan]), "b": np.zeros(2), "step": np.int32(3)})
      ["['w']"]
    """
    return [
        name
        for name, leaf in _leaves(host_state).items()
        if jnp.issubdtype(np.asarray(leaf).dtype, jnp.inexact) and not np.isfinite(np.asarray(leaf)).all()
    ]


class CheckpointDamaged(Exception):
    """Checkpoint ``step`` at ``path`` cannot be read or fails its integrity check (``reason``)."""

    def __init__(self, step: int, path: str, reason: str) -> None:
        super().__init__(f"checkpoint {step} at {path} is damaged: {reason}")
        self.step = step
