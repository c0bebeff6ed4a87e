"""A registry network with checked weights as an NHWC float32 function: :class:`Restorer`.

:class:`Restorer` pairs a registry name with weights (anything
:func:`converse_jax.pretrained.load` takes: an official ``.pth``, a converted variable store, a
training workdir or an official checkpoint's name), refuses weights that belong to another
network, and calls the network the way its task says (:meth:`converse_jax.tasks.Task.apply`:
with the blur kernel and scale factor 1 for non-blind deblurring, ``train=False`` where the
module takes it). :meth:`Restorer.function` composes the x8 self-ensemble (the kernel is
flipped/rotated with the image for non-blind deblurring) and tiled inference with it in one
place; :mod:`converse_jax.inference.restore`, :mod:`converse_jax.inference.evaluate` and
:mod:`converse_jax.cli.showcase` all run networks through it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from converse_jax.inference.tiling import self_ensemble_x8, tiled_apply
from converse_jax.models.registry import ModelSpec, get_spec
from converse_jax.tasks import Task, get_task

__all__ = ["Restorer", "default_tile_overlap", "load_kernel"]


def load_kernel(kernel: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """A blur kernel as a float64 ``(kh, kw)`` array, from a ``.npy`` file or an array.

    The file is read with ``allow_pickle=False``. The kernel must be 2-D, finite and non-empty
    (the released deblurring models use 7x7 kernels that are non-negative and sum to 1; the
    values are not renormalised here).

    >>> load_kernel(np.ones((3, 3)) / 9).shape
    (3, 3)
    """
    if isinstance(kernel, (str, os.PathLike)):
        path = Path(kernel)
        if not path.is_file():
            raise FileNotFoundError(f"kernel: {path} does not exist or is not a file")
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"kernel: {path} is not a plain .npy array ({err})") from err
    else:
        arr = np.asarray(kernel)
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"kernel: expected a non-empty 2-D numeric (kh, kw) array, got shape {arr.shape} ({arr.dtype})")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("kernel: must be finite")
    return arr


class Restorer:
    """A registry network with weights checked to belong to it, as an NHWC float32 function.

    Args:
      model_name: registry name (``converse-jax models`` lists them).
      weights: anything :func:`converse_jax.pretrained.load` takes: an official checkpoint's
        name (downloaded and cached), an official PyTorch ``.pth``, a variable-store directory
        (written by ``converse-jax convert`` or :func:`converse_jax.pretrained.save_variables`)
        or a training workdir (its best checkpoint's EMA weights).

    Raises:
      ValueError: unknown ``model_name``; weights of another network (the message names both);
        weights that do not fit the network. FileNotFoundError: ``weights`` does not exist.

    Attributes:
      name, spec: the registry name and :class:`~converse_jax.models.registry.ModelSpec`.
      task: ``'denoise'``, ``'sr'``, ``'deblur'`` (blind) or ``'deblur_nonblind'`` (needs a kernel);
        ``kind``: its :class:`~converse_jax.tasks.Task`.
      in_channels, scale: image channels (1 gray, 3 RGB) and output/input size ratio.
      module, variables: the Flax module and its variables (on the default device).

    Calling the restorer applies the network once under ``jax.jit`` (one compilation per
    distinct input shape) with float32 matmul precision ``'highest'`` (so GPU results do not
    drop to TF32): ``restorer(x)`` or, for ``deblur_nonblind``, ``restorer(x, kernel)``, with
    ``x`` float32 NHWC ``(N, H, W, in_channels)`` -> ``(N, scale*H, scale*W, in_channels)``.

    Example:
      A tiny DnCNN with zero weights (its output ``x - f(x)`` is then ``x`` itself):

      >>> import tempfile
      >>> import jax
      >>> from converse_jax.models import abstract_variables, get_model
      >>> from converse_jax.pretrained import save_variables
      >>> kwargs = {"features": 4, "num_layers": 3}  # a tiny DnCNN: out = x - f(x)
      >>> shapes = abstract_variables(get_model("dncnn", **kwargs))
      >>> zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)  # f = 0: out = x
      >>> tmp = tempfile.TemporaryDirectory()
      >>> root = Path(tmp.name)
      >>> weights = save_variables(root / "weights", zeros, arch="dncnn",
      ...                          metadata={"model_kwargs": kwargs})
      >>> restorer = Restorer("dncnn", weights)
      >>> restorer.task, restorer.in_channels, restorer.scale
      ('denoise', 1, 1)
      >>> x = np.random.default_rng(0).random((2, 16, 16, 1), np.float32)
      >>> y = restorer(x)
      >>> y.shape, y.dtype, bool(jnp.array_equal(y, x))
      ((2, 16, 16, 1), dtype('float32'), True)
      >>> restorer.function(x8=True)(x).shape  # x8 self-ensemble
      (2, 16, 16, 1)
      >>> Restorer("converse_dncnn", weights)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: weights: ...weights hold a 'dncnn' network, but the model is 'converse_dncnn'
      >>> tmp.cleanup()
    """

    def __init__(self, model_name: str, weights: str | os.PathLike[str]):
        from converse_jax.pretrained import load  # deferred: orbax is slow to import

        module, variables = load(weights, arch=model_name)  # first: a run imports the module of its network
        self.spec: ModelSpec = get_spec(model_name)
        self.name = model_name
        self.module = module
        self.variables = jax.device_put(variables)
        self.task: str = self.spec.task
        self.kind: Task = get_task(self.task)
        values = self.spec.data_values(module)
        self.in_channels: int = int(values["channels"])
        self.scale: int = int(values["scale"])

    def __call__(self, x: jax.Array | np.ndarray, kernel: jax.Array | np.ndarray | None = None) -> jax.Array:
        """Apply the network to ``x`` (N, H, W, in_channels) float32 in [0, 1].

        Args:
          x: NHWC degraded images.
          kernel: ``(kh, kw)`` or ``(N, kh, kw)`` blur kernel, required by ``deblur_nonblind``
            models (cast to float32, as the official script does) and rejected otherwise.

        Returns:
          float32 (N, scale*H, scale*W, in_channels) restored images (not clipped).
        """
        x = jnp.asarray(x, jnp.float32)
        self._check_kernel(kernel)
        kernel = None if kernel is None else jnp.asarray(kernel, jnp.float32)
        with jax.default_matmul_precision("highest"):
            return _jitted_apply(self.module, self.kind, self.variables, x, kernel)

    def _check_kernel(self, kernel: object) -> None:
        """A kernel exactly when the task's network takes one."""
        if self.kind.takes_kernel and kernel is None:
            raise ValueError(f"kernel: {self.name} is a non-blind deblurring model and needs the blur kernel")
        if not self.kind.takes_kernel and kernel is not None:
            raise ValueError(f"kernel: {self.name} ({self.task}) does not take a blur kernel")

    def function(
        self,
        kernel: np.ndarray | None = None,
        *,
        x8: bool = False,
        tile: int | None = None,
        tile_overlap: int | None = None,
        progress: bool = False,
    ) -> Callable[[jax.Array], jax.Array]:
        """The restorer as ``fn(x) -> y`` on NHWC float32 batches, with inference options.

        Args:
          kernel: the ``(kh, kw)`` blur kernel for ``deblur_nonblind`` models (else None).
          x8: average over the 8 flips/rotations of the input (x8 self-ensemble). For
            ``deblur_nonblind`` models the kernel is flipped/rotated together with the image
            (the blur of a transformed image is the transformed kernel's blur).
          tile: apply the network to overlapping ``tile`` x ``tile`` windows (fixed shape: one
            compilation) blended with sin^2 ramps (:func:`converse_jax.inference.tiling.tiled_apply`);
            None = whole image. With ``x8`` each tile is self-ensembled.
          tile_overlap: overlap of neighbouring windows in input pixels (``< tile``); None:
            :func:`default_tile_overlap` (``min(32, tile // 4)``).
          progress: show a tqdm bar over the tiles.

        Returns:
          A function mapping (N, H, W, C) to float32 (N, scale*H, scale*W, C) :class:`jax.Array`.
        """
        if kernel is not None:
            kernel = load_kernel(kernel).astype(np.float32)
        self._check_kernel(kernel)

        def base(x: jax.Array) -> jax.Array:
            if not x8:
                return self(x, kernel)
            if kernel is None:
                return self_ensemble_x8(self, x)
            return _self_ensemble_x8_with_kernel(self, x, kernel)

        if tile is None:
            return base
        if tile_overlap is None:
            tile_overlap = default_tile_overlap(tile)
        return lambda x: tiled_apply(base, x, tile=tile, overlap=tile_overlap, scale=self.scale, progress=progress)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _jitted_apply(module: Any, task: Task, variables: Any, x: jax.Array, kernel: jax.Array | None) -> jax.Array:
    """``task.apply(module, variables, x, kernel)`` in evaluation mode, jitted.

    Shared by all :class:`Restorer` instances: equal modules (same class and hyper-parameters)
    reuse one compilation per input shape and task.
    """
    return task.apply(module, variables, x, kernel, train=False)


def _self_ensemble_x8_with_kernel(fn: Callable[[jax.Array, np.ndarray], jax.Array], x: jax.Array, kernel: np.ndarray) -> jax.Array:
    """x8 self-ensemble of a non-blind deblurrer: image and kernel get the same flip/rotation.

    For ``flip`` in (no, left-right) and ``k`` in 0..3: ``y = fn(T(x), T(kernel))`` with
    ``T = rot90(flip(.), k)`` over the spatial axes, mapped back by ``T^-1``; the mean of the 8.
    """
    x = jnp.asarray(x, jnp.float32)
    total = None
    for flip in (False, True):
        xf = x[:, :, ::-1] if flip else x
        kf = kernel[:, ::-1] if flip else kernel
        for k in range(4):
            y = fn(jnp.rot90(xf, k, axes=(1, 2)), np.ascontiguousarray(np.rot90(kf, k)))
            y = jnp.rot90(y, -k, axes=(1, 2))
            y = y[:, :, ::-1] if flip else y
            total = y if total is None else total + y
    return total / 8.0


def default_tile_overlap(tile: int) -> int:
    """The overlap used when none is given: ``min(32, tile // 4)``, valid for every tile >= 8.

    >>> default_tile_overlap(256), default_tile_overlap(30), default_tile_overlap(8)
    (32, 7, 2)
    """
    return min(32, tile // 4)

