"""What ``--workdir`` may be, checked before a run writes anything into it.

A run trains into a new or empty folder, or resumes a training workdir (``config.json`` beside
``checkpoints/``, see :mod:`converse_jax.pretrained.runs`).  :func:`check_workdir` refuses, in
one line naming ``--workdir``:

* a file, or a folder that holds anything else (a variable store of converted weights, a folder
  of images, someone's home): training would mix its files with theirs and ``--weights DIR``
  would then load the wrong thing;
* a resume whose config builds another network than the one the checkpoints were trained with:
  the fields of :data:`NETWORK_FIELDS` must equal those of the workdir's ``config.json`` (they
  are what :func:`converse_jax.pretrained.load` rebuilds the network from), so ``load(RUN)``
  always rebuilds the network its checkpoints were trained with.  The other fields (learning
  rate, steps, intervals, data folders) may change; ``config.json`` then records the new ones.
"""

from __future__ import annotations

import json
from typing import Any

from converse_jax.train.lock import LOCK_NAME
from converse_jax.utils.paths import as_path

__all__ = ["NETWORK_FIELDS", "RUN_FILES", "check_workdir"]

NETWORK_FIELDS = ("model", "model_overrides", "dtype", "data.task", "data.channels", "data.scale", "data.kernel_size")
"""Config fields (dotted) that decide which network a run trains and what it computes."""

RUN_FILES = frozenset({"config.json", "checkpoints", "damaged_checkpoints", "metrics.jsonl", "tensorboard", LOCK_NAME})
"""What a training run writes into its workdir."""


def _field(record: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """The :data:`NETWORK_FIELDS` of a config record, dicts flattened (``model_overrides.features``)."""
    out = {}
    for name in NETWORK_FIELDS:
        value = _field(record, name)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, item in items:
            out[name if key is None else f"{name}.{key}"] = item
    return out


def check_workdir(workdir: str, record: dict[str, Any]) -> None:
    """``ValueError`` (one line naming ``--workdir``) if a run of config ``record`` may not use ``workdir``.

    ``record``: the config as ``config.json`` would hold it (JSON types).  Returns None for a
    missing or empty folder, a folder holding only what a run writes before its first checkpoint,
    or a training workdir whose :data:`NETWORK_FIELDS` equal ``record``'s.

    Example:
      >>> import os, tempfile
      >>> record = {"model": "converse_dncnn", "model_overrides": {"features": 4}}
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     check_workdir(os.path.join(tmp, "new"), record)  # fine: a new folder
      ...     _ = open(os.path.join(tmp, "notes.txt"), "w").write("mine")
      ...     try:
      ...         check_workdir(tmp, record)
      ...     except ValueError as err:
      ...         print(str(err).replace(tmp, "DIR"))
      --workdir: DIR is not a training workdir (it holds notes.txt); give a new or empty folder
    """
    folder = as_path(workdir, "--workdir")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--workdir: {workdir} is a file, not a folder")
    if not folder.is_dir():
        return
    entries = sorted(entry.name for entry in folder.iterdir())
    others = [e for e in entries if e not in RUN_FILES]
    if others:
        what = "converted weights (a variable store)" if "_CHECKPOINT_METADATA" in others else ", ".join(others[:4])
        raise ValueError(
            f"--workdir: {workdir} is not a training workdir (it holds {what}); give a new or empty folder"
        )
    checkpoints = folder / "checkpoints"
    if not (checkpoints.is_dir() and any(True for _ in checkpoints.iterdir())):
        return  # nothing trained yet: nothing to keep consistent with
    path = folder / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"--workdir: {path} cannot be read ({err}); its checkpoints' config is unknown") from None
    new, old = _flat(record), _flat(saved)
    differ = [name for name in sorted(new.keys() | old.keys()) if new.get(name) != old.get(name)]
    if differ:
        changes = "; ".join(
            f"--config.{name}={new.get(name)!r} (the checkpoints: {old.get(name)!r})" for name in differ
        )
        raise ValueError(
            f"--workdir: {workdir} holds checkpoints of another network: {changes}; resume with the config they were "
            "trained with, or give another --workdir"
        )
