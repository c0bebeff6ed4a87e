"""Restoring many images over every device and every process.

* :func:`my_share`: with ``jax.distributed`` (a pod's hosts), process ``i`` of ``P`` takes the
  items ``i, i + P, i + 2P, ...`` of a list every process computed the same way (file-name order),
  so the processes split a folder without talking to each other.
* :func:`gather_json`: what each process found (a JSON value), on every process, in process order
  (``evaluate`` gathers its score rows so that process 0 writes ``results.csv`` once).
* :class:`DeviceBatcher`: images of one shape are gathered until there is one per local device,
  stacked into one NHWC batch placed along the ``'data'`` axis of a ``Mesh`` over the local
  devices (``NamedSharding(mesh, P('data'))``), and restored by one call of the network, as
  training shards its batches (:mod:`converse_jax.train.mesh`).  The last, incomplete batch of a
  shape is padded with copies of its last image (their results are dropped).  Every image is
  restored by the same program on its own batch row, so the results equal a one-device run's up
  to float32 rounding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["DeviceBatcher", "gather_json", "my_share"]

T = TypeVar("T")


def my_share(items: Sequence[T]) -> list[T]:
    """This process's items: every ``process_count``-th from ``process_index`` (all of them in one process).

    Example:
      >>> my_share(["a.png", "b.png", "c.png"])  # one process
      ['a.png', 'b.png', 'c.png']
    """
    return list(items)[jax.process_index() :: jax.process_count()]


def gather_json(value: Any) -> list[Any]:
    """``value`` (JSON-serialisable) of every process, in process order; every process calls it.

    The UTF-8 JSON texts travel as uint8 arrays padded to the longest
    (``multihost_utils.process_allgather``).

    Example:
      >>> gather_json({"rows": [1, 2]})  # one process
      [{'rows': [1, 2]}]
    """
    if jax.process_count() == 1:
        return [value]
    data = np.frombuffer(json.dumps(value).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: data.size] = data
    texts = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(bytes(texts[i, : sizes[i]])) for i in range(len(sizes))]


class DeviceBatcher:
    """Runs ``fn`` (NHWC float32 -> NHWC) on batches of same-shape images, one image per local device.

    :meth:`add` queues ``(key, image)`` and returns the ``(key, result)`` pairs of the batch it
    ran (else nothing): a full batch of one shape, or, when more than one batch of images of
    different shapes waits, the fullest of their batches (padded), so that at most one batch's
    worth of images is held; :meth:`flush` runs what is left.  A result is a float32 ``(H', W',
    C')`` NumPy array, or the exception of a type in ``reported`` that ``fn`` raised for its batch
    (e.g. a shape the network cannot take), so that the caller can report each image.

    Example:
      >>> batcher = DeviceBatcher(lambda x: x * 2)
      >>> done = batcher.add("a", np.ones((2, 3, 1), np.float32))  # one device: a batch of one
      >>> [(key, y.shape, float(y[0, 0, 0])) for key, y in done + batcher.flush()]
      [('a', (2, 3, 1), 2.0)]
    """

    def __init__(
        self,
        fn: Callable[[jax.Array], jax.Array],
        devices: Sequence[jax.Device] | None = None,
        reported: tuple[type[Exception], ...] = (),
    ):
        self.fn, self.reported = fn, reported
        devices = list(jax.local_devices() if devices is None else devices)
        self.size = len(devices)
        self.sharding = NamedSharding(Mesh(np.array(devices), ("data",)), PartitionSpec("data"))
        self._queues: dict[tuple[int, ...], list[tuple[Any, np.ndarray]]] = {}

    def add(self, key: Any, image: np.ndarray) -> list[tuple[Any, np.ndarray | Exception]]:
        self._queues.setdefault(np.shape(image), []).append((key, image))
        fullest = max(self._queues, key=lambda shape: len(self._queues[shape]))
        if len(self._queues[fullest]) < self.size and sum(map(len, self._queues.values())) <= self.size:
            return []
        return self._run(self._queues.pop(fullest))

    def flush(self) -> list[tuple[Any, np.ndarray | Exception]]:
        queues, self._queues = list(self._queues.values()), {}
        return [done for queue in queues for done in self._run(queue)]

    def _run(self, queue: list[tuple[Any, np.ndarray]]) -> list[tuple[Any, np.ndarray | Exception]]:
        images = [image for _, image in queue]
        images += [images[-1]] * (self.size - len(images))
        batch = np.stack(images).astype(np.float32)
        try:
            x = batch if self.size == 1 else jax.device_put(batch, self.sharding)
            y = np.asarray(self.fn(x))
        except self.reported as err:  # reported per image by the caller
            return [(key, err) for key, _ in queue]
        return [(key, y[i]) for i, (key, _) in enumerate(queue)]
