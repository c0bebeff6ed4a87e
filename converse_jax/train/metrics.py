"""Training metrics on disk: ``WORKDIR/metrics.jsonl`` and TensorBoard event files.

* ``metrics.jsonl``: one JSON object per logged step, e.g.
  ``{"step": 100, "loss": 0.031, "learning_rate": 0.0001, "steps_per_sec": 12.5}``, and on
  evaluation steps also ``"psnr"`` (dB) and ``"ssim"``.  Floats are written with ``repr``
  precision, so values read back are bit-identical to the float32 values logged (a
  non-finite value is written as ``NaN`` / ``Infinity``, which Python's ``json`` reads back).
* ``WORKDIR/tensorboard/``: the same scalars as TensorBoard events (``tensorboardX``, no
  TensorFlow needed); view with ``tensorboard --logdir WORKDIR/tensorboard``.

Only process 0 writes.  When a run resumes from step ``s``, records after ``s`` left by the
interrupted run are dropped from ``metrics.jsonl`` (the file is rewritten atomically) and
TensorBoard is told to purge events after ``s``, so the files read as one uninterrupted run.

In a ``gs://`` workdir (objects cannot be appended to) ``metrics.jsonl`` is uploaded whole at
every logged step, and the TensorBoard events object at every flush (tensorboardX's GCS writer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from tensorboardX import SummaryWriter

from converse_jax.utils.atomic import write_text
from converse_jax.utils.paths import as_path, is_remote, makedirs

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, float]]:
    """All records of ``workdir/metrics.jsonl`` in file order (empty if the file is missing).

    Returns:
      one dict per line, ``{'step': int, name: float, ...}``.

    Example:
      Values come back bit-identical to the float32 values logged:

      >>> import tempfile, numpy as np
      >>> with tempfile.TemporaryDirectory() as workdir:
      ...     print(read_metrics(workdir))  # no metrics.jsonl yet
      ...     writer = MetricWriter(workdir)
      ...     writer.write(10, {"loss": np.float32(0.1)})
      ...     writer.close()
      ...     records = read_metrics(workdir)
      []
      >>> records
      [{'step': 10, 'loss': 0.10000000149011612}]
      >>> records[0]["loss"] == float(np.float32(0.1))
      True
    """
    path = as_path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_atomic(path: str, text: str) -> None:
    write_text(path, text, newline=None)


class MetricWriter:
    """Writes scalar metrics of logged steps to ``metrics.jsonl`` and TensorBoard.

    Args:
      workdir: the run's folder.
      enabled: write anything at all (``jax.process_index() == 0``).
      resume_step: the step a resumed run restarts from; records with a larger step are
        removed.  None for a fresh run.

    Example:
      A run logs steps 100-300, is interrupted and resumes from its step-200 checkpoint: the
      step-300 record of the first attempt is replaced by the resumed run's.

      >>> import os, tempfile
      >>> with tempfile.TemporaryDirectory() as workdir:
      ...     writer = MetricWriter(workdir)
      ...     for step, loss in [(100, 0.25), (200, 0.125), (300, 0.0625)]:
      ...         writer.write(step, {"loss": loss})
      ...     writer.close()
      ...     resumed = MetricWriter(workdir, resume_step=200)
      ...     resumed.write(300, {"loss": 0.05, "psnr": 27.5})
      ...     resumed.close()
      ...     print(sorted(os.listdir(workdir)))
      ...     records = read_metrics(workdir)
      ['metrics.jsonl', 'tensorboard']
      >>> for record in records:
      ...     print(record)
      {'step': 100, 'loss': 0.25}
      {'step': 200, 'loss': 0.125}
      {'step': 300, 'loss': 0.05, 'psnr': 27.5}
    """

    def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self._path = os.path.join(os.fspath(workdir), METRICS_FILE)
        self._tb: SummaryWriter | None = None
        if not enabled:
            return
        makedirs(workdir)
        kept = [] if resume_step is None else [r for r in read_metrics(workdir) if r["step"] <= resume_step]
        self._lines = [json.dumps(r) + "\n" for r in kept]  # gs://: the whole object, uploaded at each write
        if kept or as_path(self._path).exists():
            _write_atomic(self._path, "".join(self._lines))
        self._file = None if is_remote(workdir) else open(self._path, "a", encoding="utf-8")
        purge = None if resume_step is None else resume_step + 1
        self._tb = SummaryWriter(os.path.join(os.fspath(workdir), TENSORBOARD_DIR), purge_step=purge)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """Records ``scalars`` (name -> number) for ``step``: one JSON line + TensorBoard scalars."""
        if not self.enabled:
            return
        if "step" in scalars:
            raise ValueError("scalars must not contain 'step'; pass it as the step argument")
        record = {"step": int(step)}
        for name, value in scalars.items():
            record[name] = float(value)
            self._tb.add_scalar(name, record[name], int(step))
        if self._file is None:
            self._lines.append(json.dumps(record) + "\n")
            _write_atomic(self._path, "".join(self._lines))
        else:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        self._tb.flush()

    def close(self) -> None:
        """Flushes and closes the files."""
        if self.enabled:
            if self._file is not None:
                self._file.close()
            self._tb.close()
