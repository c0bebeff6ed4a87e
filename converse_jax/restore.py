"""Running a model-zoo network on image files: checked weights, a jitted forward, PNG output.

:class:`Restorer` pairs a registry name with weights (an official ``.pth`` or a variable store
saved by ``converse-jax convert``), refuses weights that belong to another network, and exposes
the network as an NHWC float32 function with optional x8 self-ensemble and tiled inference.
:func:`restore_path` restores one image file or a folder of images and writes PNGs; it backs
``converse-jax restore``.

What ``restore`` feeds the network is the image *as the user has it*: a noisy photo for a
denoiser, a low-resolution image for an SR network, a blurred image for a deblurring network
(plus its blur kernel for the non-blind ``*_usrnet`` models). None of the released networks takes
a noise level, so there is no noise-level input. For demonstrations, ``degrade=True`` treats the
input as a *clean* image and first synthesises the degradation of the evaluation protocol
(:mod:`converse_jax.evaluate`): AWGN of ``sigma`` (default 25) for denoisers, MATLAB bicubic
down-scaling by the model's factor for SR, circular blur with ``kernel`` plus AWGN of ``sigma``
(default 2.55) for deblurring; the synthesised input is saved beside each output as
``<name>_degraded.png``.

Images are read with :class:`converse_jax.batch.BatchReader` as uint8 with the model's channel
count (RGB input to a gray model is converted with BT.601 luma, and a note on stderr says so
once; gray input to an RGB model is repeated), scaled to [0, 1] with ``uint2single`` and restored
outputs are stored as ``uint8(round(clip(y, 0, 1) * 255))`` (``single2uint``), exactly as the
official test scripts do. An image that cannot be decoded is skipped and reported, and the rest
of the batch is done; colliding or unwritable outputs are refused before the weights are loaded
(see :func:`restore_path`).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from tqdm import tqdm

from converse_jax.atomic import atomic_open
from converse_jax.batch import BatchReader, Skipped, check_collisions, check_writable_folder
from converse_jax.data.sources import IMAGE_EXTENSIONS, folder_images, read_image
from converse_jax.inference import self_ensemble_x8, tiled_apply
from converse_jax.models.registry import ModelSpec, get_spec
from converse_jax.protocol import deblur_input, denoise_input, single2uint, sr_input, uint2single

__all__ = ["RestoreResult", "Restorer", "default_tile_overlap", "load_kernel", "restore_path", "write_png"]

ArrayFn = Callable[[jax.Array], jax.Array]

DEFAULT_SIGMA = {"denoise": 25.0, "deblur": 2.55, "deblur_nonblind": 2.55}
"""Noise level (0..255 scale) of each task's test protocol; used by ``degrade`` when ``sigma`` is None."""


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
      task: ``'denoise'``, ``'sr'``, ``'deblur'`` (blind) or ``'deblur_nonblind'`` (needs a kernel).
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

        self.spec: ModelSpec = get_spec(model_name)
        self.name = model_name
        module, variables = load(weights, arch=model_name)
        self.module = module
        self.variables = jax.device_put(variables)
        self.task: str = self.spec.task
        self.in_channels: int = int(getattr(module, "in_channels", self.spec.in_channels))
        self.scale: int = self.spec.scale
        self._takes_train = "train" in inspect.signature(type(module).__call__).parameters

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
        if self.task == "deblur_nonblind":
            if kernel is None:
                raise ValueError(f"kernel: {self.name} is a non-blind deblurring model and needs the blur kernel")
            kernel = jnp.asarray(kernel, jnp.float32)
        elif kernel is not None:
            raise ValueError(f"kernel: {self.name} ({self.task}) does not take a blur kernel")
        with jax.default_matmul_precision("highest"):
            return _jitted_apply(self.module, self._takes_train, self.variables, x, kernel)

    def function(
        self,
        kernel: np.ndarray | None = None,
        *,
        x8: bool = False,
        tile: int | None = None,
        tile_overlap: int | None = None,
        progress: bool = False,
    ) -> ArrayFn:
        """The restorer as ``fn(x) -> y`` on NHWC float32 batches, with inference options.

        Args:
          kernel: the ``(kh, kw)`` blur kernel for ``deblur_nonblind`` models (else None).
          x8: average over the 8 flips/rotations of the input (x8 self-ensemble). For
            ``deblur_nonblind`` models the kernel is flipped/rotated together with the image
            (the blur of a transformed image is the transformed kernel's blur).
          tile: apply the network to overlapping ``tile`` x ``tile`` windows (fixed shape: one
            compilation) blended with sin^2 ramps (:func:`converse_jax.inference.tiled_apply`);
            None = whole image. With ``x8`` each tile is self-ensembled.
          tile_overlap: overlap of neighbouring windows in input pixels (``< tile``); None:
            :func:`default_tile_overlap` (``min(32, tile // 4)``).
          progress: show a tqdm bar over the tiles.

        Returns:
          A function mapping (N, H, W, C) to float32 (N, scale*H, scale*W, C) :class:`jax.Array`.
        """
        if kernel is not None:
            kernel = load_kernel(kernel).astype(np.float32)
        if self.task == "deblur_nonblind" and kernel is None:
            raise ValueError(f"kernel: {self.name} is a non-blind deblurring model and needs the blur kernel")
        if self.task != "deblur_nonblind" and kernel is not None:
            raise ValueError(f"kernel: {self.name} ({self.task}) does not take a blur kernel")

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
def _jitted_apply(module: Any, takes_train: bool, variables: Any, x: jax.Array, kernel: jax.Array | None) -> jax.Array:
    """``module.apply(variables, x[, kernel, 1])`` (``train=False`` where the module takes it), jitted.

    Shared by all :class:`Restorer` instances: equal modules (same class and hyper-parameters)
    reuse one compilation per input shape. ``kernel`` None: blind call ``apply(v, x)``;
    otherwise the non-blind call ``apply(v, x, kernel, sf=1)``.
    """
    rest = () if kernel is None else (kernel, 1)
    return module.apply(variables, x, *rest, **({"train": False} if takes_train else {}))


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


def write_png(path: str | os.PathLike[str], img: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image as PNG, atomically.

    Written with :func:`converse_jax.atomic.atomic_open` (temporary file in the target folder,
    then :func:`os.replace`; the user's umask applies), so a reader never sees a partial file.
    The folder must exist.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
      >>> path = write_png(Path(tmp.name) / "x.png", img)
      >>> path.name, bool(np.array_equal(read_image(path, 3), img))
      ('x.png', True)
      >>> write_png(Path(tmp.name) / "y.png", img / 255)
      Traceback (most recent call last):
      ...
      ValueError: img: expected uint8 (H, W), (H, W, 1) or (H, W, 3), got float64 (4, 4, 3)
      >>> tmp.cleanup()
    """
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"img: expected uint8 (H, W), (H, W, 1) or (H, W, 3), got {arr.dtype} {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    path = Path(path)
    with atomic_open(path, "wb") as f:
        Image.fromarray(arr).save(f, format="PNG")
    return path


def _degrade(restorer: Restorer, img: np.ndarray, sigma: float | None, kernel: np.ndarray | None) -> np.ndarray:
    """The evaluation protocol's degraded input of a clean uint8 image (float32 HWC)."""
    if restorer.task == "denoise":
        return denoise_input(img, DEFAULT_SIGMA["denoise"] if sigma is None else sigma)
    if restorer.task == "sr":
        return sr_input(img, restorer.scale)[1]
    if kernel is None:
        raise ValueError(f"kernel: degrading for {restorer.name} ({restorer.task}) needs the blur kernel")
    return deblur_input(img, kernel, 1, DEFAULT_SIGMA[restorer.task] if sigma is None else sigma)[1]


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_path` did: the restored images written and the inputs it skipped.

    Example:
      >>> result = RestoreResult((Path("out/a.png"),), (Skipped(Path("in/b.png"), "image file is truncated"),))
      >>> [p.name for p in result.written], [s.line() for s in result.skipped]
      (['a.png'], ['skipped in/b.png: image file is truncated'])
    """

    written: tuple[Path, ...]
    skipped: tuple[Skipped, ...] = ()


def default_tile_overlap(tile: int) -> int:
    """The overlap used when none is given: ``min(32, tile // 4)``, valid for every tile >= 8.

    >>> default_tile_overlap(256), default_tile_overlap(30), default_tile_overlap(8)
    (32, 7, 2)
    """
    return min(32, tile // 4)


def _plan(source: Path, target: Path, in_channels: int) -> tuple[list[Path], list[Path], Path]:
    """Inputs, their output PNGs and the output folder (not created) of :func:`restore_path`."""
    if source.is_dir():
        files = list(folder_images(source, in_channels).files)
        if target.exists() and not target.is_dir():
            raise ValueError(f"output_path: {target} exists and is not a folder (the input is a folder)")
        return files, [target / f"{f.stem}.png" for f in files], target
    if not source.is_file():
        raise FileNotFoundError(f"input_path: {source} does not exist")
    if source.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"input_path: {source} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
    if target.is_dir():
        out = target / f"{source.stem}.png"
    elif target.suffix.lower() == ".png":
        out = target
    elif target.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"output_path: outputs are written as PNG; use a .png name instead of {target.name}")
    else:
        out = target.with_name(target.name + ".png")
    if not out.parent.is_dir():
        raise ValueError(f"output_path: folder {out.parent} does not exist")
    return [source], [out], out.parent


def _check_options(task: str, model_name: str, degrade: bool, sigma: float | None, k: np.ndarray | None) -> None:
    """Refuse ``sigma``/``kernel`` combinations that do not apply to the model's task."""
    if sigma is not None:
        if not degrade:
            raise ValueError("sigma: only used with degrade=True (--degrade); the networks take no noise level")
        if task == "sr":
            raise ValueError(f"sigma: {model_name} is an SR model; its degradation has no noise")
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma: expected a finite number >= 0, got {sigma!r}")
    if k is not None and task not in ("deblur", "deblur_nonblind"):
        raise ValueError(f"kernel: {model_name} ({task}) does not use a blur kernel")
    if k is not None and task == "deblur" and not degrade:
        raise ValueError(f"kernel: {model_name} is a blind deblurring model; a kernel is only used with --degrade")
    if k is None and (task == "deblur_nonblind" or (degrade and task == "deblur")):
        raise ValueError(f"kernel: {model_name} ({task}) needs the blur kernel here (--kernel K.npy)")


def restore_path(
    model_name: str,
    weights: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    degrade: bool = False,
    sigma: float | None = None,
    kernel: str | os.PathLike[str] | np.ndarray | None = None,
    x8: bool = False,
    tile: int | None = None,
    tile_overlap: int | None = None,
    progress: bool = True,
) -> RestoreResult:
    """Restore one image file or every image of a folder and write the results as PNG.

    The whole request is checked before the weights are loaded or any image is restored: the
    options, the inputs, outputs that would collide (``x.png`` and ``x.bmp`` both become
    ``x.png``) or overwrite an input, and that the output folder can be written (a file is
    created there and removed). An input image that cannot be decoded is skipped (one line
    ``skipped PATH: REASON`` on stderr, listed in the result's ``skipped``) and the batch goes on.

    Args:
      model_name: registry name, e.g. ``'converse_dncnn'``.
      weights: official ``.pth`` or variable-store directory of that network.
      input_path: an image file (png/jpg/bmp/tif) or a folder of them (not recursive).
      output_path: for a file input, the output file (``.png`` is appended unless the name
        ends in ``.png``; other image suffixes are rejected) or an existing folder to write
        ``<stem>.png`` into; for a folder input, a folder (created if needed) that receives
        ``<stem>.png`` per image. An output that would overwrite its input is rejected.
      degrade: treat the inputs as clean images and synthesise the evaluation protocol's
        degradation first (see the module docstring); the degraded input is also written, as
        ``<stem>_degraded.png`` (clipped and rounded to uint8) beside the output.
      sigma: noise level on the 0..255 scale used by ``degrade`` (default 25 for denoisers, 2.55
        for deblurring); only valid with ``degrade`` (the networks take no noise level) and not
        for SR.
      kernel: blur kernel (``.npy`` path or 2-D array). Required for ``deblur_nonblind`` models
        (the kernel that blurred the input), and for ``degrade`` with any deblurring model;
        rejected otherwise.
      x8: x8 self-ensemble (8 network calls per image or tile).
      tile: tiled inference with ``tile`` x ``tile`` input windows (>= 8) for images too large
        for memory; None processes whole images.
      tile_overlap: overlap of neighbouring tiles in input pixels (``0 <= tile_overlap < tile``);
        None: :func:`default_tile_overlap` (``min(32, tile // 4)``).
      progress: tqdm progress bar (over the images; over the tiles for a single image).

    Returns:
      :class:`RestoreResult`: the written restored-image paths (input order) and the skipped inputs.

    Example:
      A tiny DnCNN with zero weights (it returns its input unchanged):

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
      >>> noisy = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
      >>> _ = write_png(root / "noisy.png", noisy)
      >>> out = restore_path("dncnn", weights, root / "noisy.png", root / "restored", progress=False)
      >>> [p.name for p in out.written], bool(np.array_equal(read_image(out.written[0], 1)[..., 0], noisy))
      (['restored.png'], True)
      >>> (root / "clean").mkdir(); _ = write_png(root / "clean" / "a.png", noisy)
      >>> _ = restore_path("dncnn", weights, root / "clean", root / "demo", degrade=True, progress=False)
      >>> sorted(p.name for p in (root / "demo").iterdir())  # restored and degraded input
      ['a.png', 'a_degraded.png']
      >>> tmp.cleanup()
    """
    spec = get_spec(model_name)
    task = spec.task
    k = load_kernel(kernel) if kernel is not None else None
    _check_options(task, model_name, degrade, sigma, k)
    if tile is not None:
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 8:
            raise ValueError(f"tile: expected an int >= 8 or None, got {tile!r}")
        tile_overlap = default_tile_overlap(tile) if tile_overlap is None else tile_overlap
        if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or not 0 <= tile_overlap < tile:
            raise ValueError(f"tile_overlap: expected an int >= 0 and below the tile size {tile}, got {tile_overlap!r}")

    source = Path(input_path)
    files, outputs, folder = _plan(source, Path(output_path), spec.in_channels)
    pairs = list(zip(files, outputs))
    check_collisions(pairs + [(f, _degraded_path(o)) for f, o in pairs if degrade])
    for file, out in pairs:
        if out.exists() and out.resolve() == file.resolve():
            raise ValueError(f"output_path: writing {out} would overwrite the input image; choose another output")
    check_writable_folder(folder, "output_path")

    restorer = Restorer(model_name, weights)
    folder.mkdir(parents=True, exist_ok=True)
    reader = BatchReader(restorer.in_channels, model_name)
    fn = restorer.function(
        k if task == "deblur_nonblind" else None,
        x8=x8,
        tile=tile,
        tile_overlap=tile_overlap,
        progress=progress and len(files) == 1,
    )
    written = []
    for file, out in tqdm(pairs, desc=model_name, unit="img", disable=not progress or len(files) == 1):
        img = reader.read(file)
        if img is None:
            continue
        if degrade:
            x = _degrade(restorer, img, sigma, k)
            write_png(_degraded_path(out), single2uint(x))
        else:
            x = uint2single(img)
        y = np.asarray(fn(jnp.asarray(x[None])))[0]
        written.append(write_png(out, single2uint(y)))
    return RestoreResult(tuple(written), tuple(reader.skipped))


def _degraded_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_degraded.png")
