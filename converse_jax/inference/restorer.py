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

from converse_jax.inference.batch import notify
from converse_jax.inference.memory import free_bytes, program_bytes
from converse_jax.inference.tiling import DEFAULT_TILE_MARGIN, self_ensemble_x8, tiled_apply, window_span
from converse_jax.tasks import Task, get_task

__all__ = ["Restorer", "ShapeError", "load_kernel"]


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

class ShapeError(ValueError):
    """An image whose size the network cannot restore; :func:`~converse_jax.inference.restore.restore_images`
    and ``evaluate`` skip it (``skipped PATH: REASON``).

    >>> str(ShapeError("150x200 is not an exported shape"))
    '150x200 is not an exported shape'
    """


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
      step: for a training workdir, the checkpoint loaded (the best intact one); else None.
      tile_margin: context in input pixels each tile needs for tiled inference to keep the
        whole-image result: the record's :attr:`~converse_jax.models.registry.ModelSpec.tile_margin`
        (for networks with global solves, the margin measured by ``benchmarks/tiling.py``), else
        :data:`~converse_jax.inference.tiling.DEFAULT_TILE_MARGIN`.
      tile_mirror: whether its windows are mirrored (the record's
        :attr:`~converse_jax.models.registry.ModelSpec.tile_mirror`; ``tiled_apply``'s ``mirror``).

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
        from converse_jax.models.registry import get_spec  # deferred: the restore loop imports no Flax
        from converse_jax.pretrained import load  # deferred: orbax is slow to import

        loaded: dict[str, Any] = {}
        module, variables = load(weights, arch=model_name, loaded=loaded)  # first: a run imports the module of its network
        self.step = loaded.get("step")
        self.spec = get_spec(model_name)
        self.name = model_name
        self.module = module
        self.variables = jax.device_put(variables)
        self.task: str = self.spec.task
        self.kind: Task = get_task(self.task)
        values = self.spec.data_values(module)
        self.in_channels: int = int(values["channels"])
        self.scale: int = int(values["scale"])
        self.tile_margin: int = DEFAULT_TILE_MARGIN if self.spec.tile_margin is None else self.spec.tile_margin
        self.tile_mirror: bool = self.spec.tile_mirror
        self._noted: set[int] = set()
        self._size_problems: dict[tuple, str | None] = {}

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
        self._check_size(x, kernel)
        with jax.default_matmul_precision("highest"):
            return _jitted_apply(self.module, self.kind, self.variables, x, kernel)

    def _check_size(self, x: jax.Array, kernel: jax.Array | None) -> None:
        """:class:`ShapeError` if the network cannot take an image of ``x``'s size (traced once per shape, not run)."""
        key = (x.shape, None if kernel is None else kernel.shape)
        if key not in self._size_problems:
            spec = [jax.ShapeDtypeStruct(a.shape, jnp.float32) if a is not None else None for a in (x, kernel)]
            try:
                jax.eval_shape(lambda *a: _jitted_apply(self.module, self.kind, self.variables, *a), *spec)
                self._size_problems[key] = None
            except ValueError as err:
                self._size_problems[key] = " ".join(str(err).split())
        if self._size_problems[key] is not None:
            raise ShapeError(f"{x.shape[1]}x{x.shape[2]} is too small for {self.name} ({self._size_problems[key]})")

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
        tile: int | str | None = None,
        tile_margin: int | None = None,
        progress: bool = False,
    ) -> Callable[[jax.Array], jax.Array]:
        """The restorer as ``fn(x) -> y`` on NHWC float32 batches, with inference options.

        Args:
          kernel: the ``(kh, kw)`` blur kernel for ``deblur_nonblind`` models (else None).
          x8: average over the 8 flips/rotations of the input (x8 self-ensemble). For
            ``deblur_nonblind`` models the kernel is flipped/rotated together with the image
            (the blur of a transformed image is the transformed kernel's blur).
          tile: None: the whole image at once. An int: ``tile`` x ``tile`` windows kept on their
            middle (:func:`converse_jax.inference.tiling.tiled_apply`, one compilation); with
            ``x8`` each window is self-ensembled. ``"auto"``: the whole image when XLA's memory
            analysis of the compiled network says it fits in the device's free memory
            (:meth:`whole_image_bytes`, :func:`~converse_jax.inference.memory.free_bytes`), else
            the largest tiles that fit (:meth:`fitting_tile`), announced by one line on stderr.
          tile_margin: context around each window's kept middle in input pixels; None:
            :meth:`margin_for` the tile.
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

        def tiled(x: jax.Array, size: int) -> jax.Array:
            margin = self.margin_for(size) if tile_margin is None else tile_margin
            return tiled_apply(
                base, x, tile=size, margin=margin, scale=self.scale, mirror=self.tile_mirror, progress=progress
            )

        def auto(x: jax.Array) -> jax.Array:
            self._check_size(x, kernel)
            shape, kernel_shape = np.shape(x), None if kernel is None else kernel.shape
            need, free = self.whole_image_bytes(shape, kernel_shape), free_bytes(jax.devices()[0])
            if need is None or need <= free:
                return base(x)
            size = self.fitting_tile(shape, need, free, kernel_shape)
            notify(f"note: a {shape[1]}x{shape[2]} image needs {need / 2**30:.1f} GiB for whole-image inference, "
                   f"{free / 2**30:.1f} GiB are free: restoring it in {size}-px tiles")
            return tiled(x, size)

        if tile is None:
            return base
        if tile == "auto":
            return auto
        return lambda x: tiled(x, tile)

    def margin_for(self, tile: int) -> int:
        """The margin used with ``tile``-px windows when none is given: :attr:`tile_margin`, at most
        a quarter of the image pixels a window holds
        (:func:`~converse_jax.inference.tiling.window_span`), so half of them are kept. A smaller margin than the network's costs accuracy
        (``docs/tiling.md``), so a note on stderr says so once per tile size.

        >>> import types
        >>> restorer = types.SimpleNamespace(name="net", tile_margin=64, tile_mirror=False, _noted=set())
        >>> Restorer.margin_for(restorer, 512), Restorer.margin_for(restorer, 128)  # doctest: +ELLIPSIS
        (64, 32)
        >>> restorer.tile_mirror = True  # windows of 256 and 64 image pixels
        >>> Restorer.margin_for(restorer, 512), Restorer.margin_for(restorer, 128)  # doctest: +ELLIPSIS
        (64, 16)
        """
        margin = min(self.tile_margin, window_span(tile, self.tile_mirror) // 4)
        if margin < self.tile_margin and tile not in self._noted:
            self._noted.add(tile)
            notify(f"note: {tile}-px tiles leave room for {margin}-px margins, less than the {self.tile_margin} px "
                   f"{self.name} needs to match its whole-image result closely (docs/tiling.md)")
        return margin

    def fitting_tile(
        self, shape: tuple[int, ...], need: int, free: int, kernel_shape: tuple[int, ...] | None = None
    ) -> int:
        """The largest window side (a multiple of 32) whose network call fits in ``free`` bytes.

        Starts from the whole image's ``need`` bytes for ``shape`` scaled by area (activations
        dominate), keeps a fifth of ``free`` spare, and shrinks by a quarter until XLA's analysis
        of the window agrees.

        Raises:
          MemoryError: not even a 64-px window fits.
        """
        smallest = 64
        size = int((0.8 * free * shape[1] * shape[2] / need) ** 0.5) // 32 * 32
        while size >= smallest:
            window = (shape[0], min(size, shape[1]), min(size, shape[2]), shape[3])
            if (self.whole_image_bytes(window, kernel_shape) or 0) <= free:
                return size
            size = size * 3 // 4 // 32 * 32
        raise MemoryError(f"{self.name}: not even a {smallest}-px tile fits in the {free / 2**30:.2f} GiB free")

    def whole_image_bytes(self, shape: tuple[int, ...], kernel_shape: tuple[int, ...] | None = None) -> int | None:
        """Peak bytes XLA plans for one network call on float32 ``shape`` = (N, H, W, C), or None
        when the backend gives no memory analysis (:func:`~converse_jax.inference.memory.program_bytes`).

        The program is compiled (not run); a later call on the same shape reuses the compilation.
        """
        x = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
        k = None if kernel_shape is None else jax.ShapeDtypeStruct(tuple(kernel_shape), jnp.float32)
        with jax.default_matmul_precision("highest"):
            compiled = _jitted_apply.lower(self.module, self.kind, self.variables, x, k).compile()
        return program_bytes(compiled)


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
