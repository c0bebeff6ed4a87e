"""Restoring image files with a model-zoo network: ``converse-jax restore``.

:func:`restore_path` restores one image file or a folder of images with a
:class:`~converse_jax.inference.restorer.Restorer` (re-exported here, with :func:`load_kernel` and
:func:`default_tile_overlap`) and writes PNGs (:func:`write_png`).

What ``restore`` feeds the network is the image *as the user has it*: a noisy photo for a
denoiser, a low-resolution image for an SR network, a blurred image for a deblurring network
(plus its blur kernel for the non-blind ``*_usrnet`` models). None of the released networks takes
a noise level, so there is no noise-level input. For demonstrations, ``degrade=True`` treats the
input as a *clean* image and first synthesises its task's test degradation, the one
``converse-jax evaluate`` uses (:meth:`converse_jax.tasks.Task.degrade`): AWGN of ``sigma`` (default 25) for denoisers, MATLAB bicubic
down-scaling by the model's factor for SR, circular blur with ``kernel`` plus AWGN of ``sigma``
(default 2.55) for deblurring; the synthesised input is saved beside each output as
``<name>_degraded.png``.

Images are read with :class:`converse_jax.inference.batch.BatchReader` as uint8 with the model's channel
count (RGB input to a gray model is converted with BT.601 luma, and a note on stderr says so
once; gray input to an RGB model is repeated), scaled to [0, 1] with ``uint2single`` and restored
outputs are stored as ``uint8(round(clip(y, 0, 1) * 255))`` (``single2uint``), exactly as the
official test scripts do. An image that cannot be decoded is skipped and reported, and the rest
of the batch is done; colliding or unwritable outputs are refused before the weights are loaded
(see :func:`restore_path`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from PIL import Image
from tqdm import tqdm

from converse_jax.utils.atomic import atomic_open
from converse_jax.inference.batch import BatchReader, Skipped, check_collisions, check_writable_folder
from converse_jax.data.sources import IMAGE_EXTENSIONS, folder_images, read_image
from converse_jax.models.registry import get_spec
from converse_jax.protocol import single2uint, uint2single
from converse_jax.inference.restorer import Restorer, default_tile_overlap, load_kernel
from converse_jax.tasks import get_task
from converse_jax.utils.validate import check_int

__all__ = ["RestoreResult", "Restorer", "default_tile_overlap", "load_kernel", "restore_path", "write_png"]


def write_png(path: str | os.PathLike[str], img: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image as PNG, atomically.

    Written with :func:`converse_jax.utils.atomic.atomic_open` (temporary file in the target folder,
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
    return [source], [out], out.parent


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
        ends in ``.png``; other image suffixes are rejected; its folder is created if needed) or
        an existing folder to write ``<stem>.png`` into; for a folder input, a folder (created
        if needed) that receives ``<stem>.png`` per image. An output that would overwrite its
        input is rejected.
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
    task = get_task(spec.task)
    k = load_kernel(kernel) if kernel is not None else None
    noise = task.check_request(model_name, sigma=sigma, kernel=k, degrade=degrade)
    if tile is not None:
        tile = check_int(tile, "tile", minimum=8)
        tile_overlap = default_tile_overlap(tile) if tile_overlap is None else tile_overlap
        tile_overlap = check_int(tile_overlap, "tile_overlap", minimum=0, below=tile)
    pairs, folder = _checked_outputs(Path(input_path), Path(output_path), spec.in_channels, degrade)

    restorer = Restorer(model_name, weights)
    folder.mkdir(parents=True, exist_ok=True)
    single = len(pairs) == 1
    fn = restorer.function(
        k if task.takes_kernel else None, x8=x8, tile=tile, tile_overlap=tile_overlap, progress=progress and single
    )
    reader = BatchReader(restorer.in_channels, model_name)
    written = []
    for file, out in tqdm(pairs, desc=model_name, unit="img", disable=not progress or single):
        img = reader.read(file)
        if img is None:
            continue
        if degrade:
            x = task.degrade(img, scale=restorer.scale, sigma=noise, kernel=k)[1]
            write_png(_degraded_path(out), single2uint(x))
        else:
            x = uint2single(img)
        y = np.asarray(fn(jnp.asarray(x[None])))[0]
        written.append(write_png(out, single2uint(y)))
    return RestoreResult(tuple(written), tuple(reader.skipped))


def _checked_outputs(source: Path, target: Path, in_channels: int, degrade: bool) -> tuple[list[tuple[Path, Path]], Path]:
    """(input, output PNG) pairs and the output folder, refused when outputs collide, overwrite an
    input or cannot be written (nothing is loaded or restored yet)."""
    files, outputs, folder = _plan(source, target, in_channels)
    pairs = list(zip(files, outputs))
    check_collisions(pairs + [(f, _degraded_path(o)) for f, o in pairs if degrade])
    for file, out in pairs:
        if out.exists() and out.resolve() == file.resolve():
            raise ValueError(f"output_path: writing {out} would overwrite the input image; choose another output")
    check_writable_folder(folder, "output_path")
    return pairs, folder


def _degraded_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_degraded.png")
