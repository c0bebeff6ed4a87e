"""Every device: a 1-D ``Mesh`` over all devices, shardings, global batches, multi-host start-up.

Data parallelism the ``jit`` way (the successor of ``pmap``): the batch is split along the mesh
axis ``'data'`` (``NamedSharding(mesh, P('data'))``), parameters and optimizer state are
replicated (``NamedSharding(mesh, P())``), and one ``jax.jit`` program with these shardings runs
on 1 CPU, 8 simulated CPU devices, GPUs or a TPU pod; XLA inserts the gradient all-reduce.

Multi-host: every process runs the same program; :func:`maybe_initialize_distributed` joins
them, each process reads only its own block of the global batch and
:func:`global_batch` assembles the blocks into one global array.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def create_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """1-D mesh with axis ``'data'`` over ``devices`` (default: ``jax.devices()``, all processes).

    Example:
      >>> import jax
      >>> mesh = create_mesh()
      >>> mesh.axis_names, mesh.devices.size == jax.device_count()
      (('data',), True)
      >>> dict(create_mesh(jax.devices()[:1]).shape)  # a mesh over chosen devices
      {'data': 1}
      >>> create_mesh([])
      Traceback (most recent call last):
      ...
      ValueError: devices must not be empty
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices must not be empty")
    return Mesh(np.asarray(devs, dtype=object), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of batch arrays: leading (batch) axis split over ``'data'``, the rest whole.

    Example:
      >>> import jax
      >>> sharding = batch_sharding(create_mesh())
      >>> tuple(sharding.spec)
      ('data',)
      >>> # each device holds B / device_count examples of a (B, H, W, C) batch
      >>> sharding.shard_shape((8, 12, 12, 3)) == (8 // jax.device_count(), 12, 12, 3)
      True
    """
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of parameters, optimizer state and evaluation inputs: a full copy per device.

    Example:
      >>> sharding = replicated_sharding(create_mesh())
      >>> tuple(sharding.spec), sharding.is_fully_replicated, sharding.shard_shape((3, 3))
      ((), True, (3, 3))
    """
    return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
    """Raises ``ValueError`` unless the global batch splits evenly over devices and processes.

    Example:
      >>> import jax
      >>> mesh = create_mesh()
      >>> check_batch_size(4 * jax.device_count(), mesh)  # fine: returns None
      >>> check_batch_size(0, mesh)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: batch_size (global) must be a positive multiple of the device count ..., got 0
    """
    n_dev = mesh.devices.size
    n_proc = jax.process_count()
    if global_batch_size < 1 or global_batch_size % n_dev or global_batch_size % n_proc:
        raise ValueError(
            f"batch_size (global) must be a positive multiple of the device count {n_dev} and of the "
            f"process count {n_proc}, got {global_batch_size}"
        )


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Host-local batch -> global ``jax.Array`` batch sharded along ``'data'``.

    Args:
      local_batch: this process's block of the global batch, arrays with leading dimension
        ``global_batch_size / process_count`` (process ``i`` holds the ``i``-th contiguous block,
        as :func:`converse_jax.data.create_train_iterator` yields it).
      mesh: the mesh of :func:`create_mesh`.

    Returns:
      The same keys, each a global array of leading dimension ``global_batch_size`` laid out
      with :func:`batch_sharding` (``jax.make_array_from_process_local_data``).

    Example:
      >>> import numpy as np
      >>> mesh = create_mesh()
      >>> local = {"input": np.zeros((2, 8, 8, 1), np.float32), "target": np.ones((2, 8, 8, 1), np.float32)}
      >>> batch = global_batch(local, mesh)  # one process: its block is the whole global batch
      >>> batch["target"].shape, tuple(batch["target"].sharding.spec), float(batch["target"].sum())
      ((2, 8, 8, 1), ('data',), 128.0)
    """
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def replicate(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """A host array that is the same on every process -> a replicated global array.

    ``x``: any shape and dtype; the result has the same shape and dtype, a full copy on every
    device of ``mesh`` (:func:`replicated_sharding`).

    Example:
      >>> import numpy as np
      >>> image = replicate(np.zeros((1, 12, 12, 3), np.float32), create_mesh())
      >>> image.shape, image.dtype, image.sharding.is_fully_replicated
      ((1, 12, 12, 3), dtype('float32'), True)
    """
    return jax.make_array_from_process_local_data(replicated_sharding(mesh), np.asarray(x))


def to_host(x: jax.Array) -> np.ndarray:
    """A replicated (or fully addressable) array as numpy, read from a local device's copy.

    The result has ``x``'s shape and dtype; on a multi-process job it works for replicated
    arrays (``np.asarray`` would fail there: not every shard is on this process).

    Example:
      >>> import numpy as np
      >>> step = replicate(np.int32(7), create_mesh())
      >>> host = to_host(step)
      >>> type(host).__name__, host.dtype, int(host)
      ('ndarray', dtype('int32'), 7)
    """
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return np.asarray(x.addressable_data(0))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def _cluster_detected() -> bool:
    """Whether a multi-process launcher JAX can auto-configure from is present.

    Slurm (``SLURM_NTASKS > 1``), Open MPI (``OMPI_COMM_WORLD_SIZE > 1``) or a multi-host Cloud
    TPU slice (``TPU_WORKER_HOSTNAMES`` naming several hosts).
    """
    if (_env_int("SLURM_NTASKS") or 1) > 1 or (_env_int("OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return True
    return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def maybe_initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins a multi-process JAX job when one is configured; a no-op for a single process.

    Must run before any other JAX call.  Values come from the arguments, else from the
    environment variables ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.  With ``num_processes > 1`` the job is joined
    with these values; with none given but a Slurm / Open MPI / multi-host TPU environment
    detected, ``jax.distributed.initialize()`` configures itself.  CPU devices of different
    processes talk through gloo collectives (``jax_cpu_collectives_implementation``).

    Returns:
      True if ``jax.distributed.initialize`` was called.

    Example:
      >>> maybe_initialize_distributed(num_processes=1)  # one process: nothing to join
      False
      >>> maybe_initialize_distributed("10.0.0.1:1234", num_processes=2, process_id=2)
      Traceback (most recent call last):
      ...
      ValueError: process_id must be in [0, 2), got 2
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if num_processes is not None and num_processes > 1:
        if coordinator_address is None or process_id is None:
            raise ValueError(
                "a multi-process job needs coordinator_address (JAX_COORDINATOR_ADDRESS) and "
                "process_id (JAX_PROCESS_ID) as well as num_processes"
            )
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
        )
    elif num_processes is None and _cluster_detected():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator_address)
    else:
        return False
    logging.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )
    return True
