"""Restoring image files: ``converse-jax restore``, one loop for zoo networks and exported ones.

:func:`restore_images` is the loop every ``restore`` runs through, whatever computes the
network: :func:`restore_path` (``--weights``: a :class:`~converse_jax.inference.restorer.Restorer`
in this process) and :func:`converse_jax.inference.export.restore_exported` (``--exported``: a
serialized artifact) only say what the network is (:class:`Network`) and how to load it.

What ``restore`` feeds the network is the image *as the user has it*: a noisy photo for a
denoiser, a low-resolution image for an SR network, a blurred image for a deblurring network
(plus its blur kernel for the non-blind ``*_usrnet`` models). None of the released networks takes
a noise level, so there is no noise-level input. For demonstrations, ``degrade=True`` treats the
input as a *clean* image and first synthesises its task's test degradation, the one
``converse-jax evaluate`` uses (:meth:`converse_jax.tasks.Task.degrade`): AWGN of ``sigma`` (default
25) for denoisers, MATLAB bicubic down-scaling by the model's factor for SR, circular blur with
``kernel`` plus AWGN of ``sigma`` (default 2.55) for deblurring; the synthesised input is saved
beside each output as ``<name>_degraded.png``.

Images are read with :class:`converse_jax.inference.batch.BatchReader` as uint8 with the model's
channel count (RGB input to a gray model is converted with BT.601 luma, and a note on stderr says
so once; gray input to an RGB model is repeated), scaled to [0, 1] with ``uint2single`` and
restored outputs are stored as ``uint8(round(clip(y, 0, 1) * 255))`` (``single2uint``), exactly as
the official test scripts do, with :func:`converse_jax.utils.images.write_png`. An image that
cannot be decoded (truncated, corrupt, 16-bit) is skipped and reported, and the rest of the batch
is done; colliding or unwritable outputs are refused before the network is loaded.

Without ``tile``, :func:`restore_path` restores each image whole when XLA's memory analysis of
the compiled network says it fits in the device's free memory
(:mod:`converse_jax.inference.memory`), and otherwise in tiles (one line on stderr says so):
:meth:`~converse_jax.inference.restorer.Restorer.function` with ``tile="auto"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from converse_jax.inference.batch import BatchReader, Skipped, check_collisions, check_writable_folder, notify
from converse_jax.inference.restorer import Restorer, ShapeError, load_kernel
from converse_jax.inference.shard import DeviceBatcher, my_share
from converse_jax.inference.tiling import window_span
from converse_jax.protocol import single2uint, uint2single
from converse_jax.tasks import Task, get_task
from converse_jax.utils.images import IMAGE_EXTENSIONS, image_files, write_png
from converse_jax.utils.paths import AnyPath, as_path, is_remote, makedirs
from converse_jax.utils.validate import check_int

__all__ = ["Network", "RestoreResult", "restore_images", "restore_path"]

ImageFn = Callable[[np.ndarray], np.ndarray]
"""A loaded network on one image: float32 ``(1, H, W, C)`` -> ``(1, s*H, s*W, C)``."""


@dataclass(frozen=True)
class Network:
    """What the restore loop knows of a network before loading it.

    Attributes:
      name: shown in notes (the registry name, or the artifact's network).
      task: its :class:`~converse_jax.tasks.Task` (checks the options, degrades with ``degrade``).
      in_channels: image channels (1 gray, 3 RGB). scale: output/input size ratio.

    >>> Network("converse_dncnn", get_task("denoise"), 1, 1).task.name
    'denoise'
    """

    name: str
    task: Task
    in_channels: int
    scale: int


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


def _plan(source: Path, target: Path) -> tuple[list[Path], list[Path], Path]:
    """Inputs, their output PNGs and the output folder (not created) of :func:`restore_images`."""
    if source.is_dir():
        files = list(image_files(source, "input_path"))
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


def restore_images(
    network: Network,
    load: Callable[[np.ndarray | None, bool], tuple[Network, ImageFn]],
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    degrade: bool = False,
    sigma: float | None = None,
    kernel: str | os.PathLike[str] | np.ndarray | None = None,
    progress: bool = True,
    resume: bool = False,
    shard: bool = True,
) -> RestoreResult:
    """Restore one image file or every image of a folder and write the results as PNG.

    The whole request is checked before ``load`` is called or any image is restored: the
    options (by ``network.task``), the inputs, outputs that would collide (``x.png`` and ``x.bmp``
    both become ``x.png``) or overwrite an input, and that the output folder can be written (a
    file is created there and removed). An input image that cannot be decoded is skipped (one line
    ``skipped PATH: REASON`` on stderr, listed in the result's ``skipped``) and the batch goes on;
    so is an image the network cannot take (``fn`` raises :class:`ShapeError`).

    Args:
      network: what is restored with (name, task, channels, scale), as known before loading.
      load: ``load(kernel, single)`` loads the network and returns it as loaded (its channels may
        differ from the registry's for a trained variant) with its :data:`ImageFn`; ``kernel``
        is the float64 blur kernel for networks that take one (else None), ``single`` whether
        one image is restored (a progress bar may then go over its tiles).
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
      kernel: blur kernel (``.npy`` path or 2-D array). Required for networks that take one
        (the kernel that blurred the input), and for ``degrade`` with any deblurring network;
        rejected otherwise.
      progress: tqdm progress bar over the images.
      resume: leave out the inputs whose output already exists (a restore run interrupted and
        started again: outputs are written atomically, so one that exists is complete).
      shard: batch images of one shape over every local device
        (:class:`~converse_jax.inference.shard.DeviceBatcher`); False: one device.  With
        ``jax.distributed`` each process restores its share of the files
        (:func:`~converse_jax.inference.shard.my_share`) either way.

    Returns:
      :class:`RestoreResult`: the restored-image paths this process wrote (input order) and the
      skipped inputs.

    Example:
      A "network" that returns its input (any function of the right shape will do):

      >>> import tempfile
      >>> root = Path(tempfile.mkdtemp())
      >>> noisy = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
      >>> _ = write_png(root / "noisy.png", noisy)
      >>> identity = Network("identity", get_task("denoise"), 1, 1)
      >>> load = lambda kernel, single: (identity, lambda x: x)
      >>> out = restore_images(identity, load, root / "noisy.png", root / "out", progress=False)
      >>> [p.name for p in out.written], out.skipped
      (['out.png'], ())
    """
    task = network.task
    k = load_kernel(kernel) if kernel is not None else None
    noise = task.check_request(network.name, sigma=sigma, kernel=k, degrade=degrade)
    pairs, folder = _checked_outputs(as_path(input_path, "input_path"), as_path(output_path, "output_path"), degrade)
    pairs = my_share(pairs)  # with jax.distributed: this process's share of the files
    todo = [(i, file, out) for i, (file, out) in enumerate(pairs) if not (resume and out.exists())]
    if len(todo) < len(pairs):
        notify(f"resume: {len(pairs) - len(todo)} of {len(pairs)} outputs already written, not restored again")
    if not todo:
        return RestoreResult(())
    network, fn = load(k if task.takes_kernel else None, len(pairs) == 1)
    makedirs(folder)
    reader = BatchReader(network.in_channels, network.name)
    batcher = DeviceBatcher(fn, None if shard else jax.local_devices()[:1], reported=(ShapeError,))
    by_index: dict[int, AnyPath] = {}  # the written PNGs by input position (batches finish out of order)

    def finish(done: list) -> None:
        for (i, _, out), y in reader.outputs(done, lambda item: item[1]):
            by_index[i] = write_png(out, single2uint(y))

    for i, file, out in tqdm(todo, desc=network.name, unit="img", disable=not progress or len(todo) == 1):
        img = reader.read(file)
        if img is None:
            continue
        if degrade:
            x = task.degrade(img, scale=network.scale, sigma=noise, kernel=k)[1]
            write_png(_degraded_path(out), single2uint(x))
        else:
            x = uint2single(img)
        finish(batcher.add((i, file, out), x))
    finish(batcher.flush())
    written = [by_index[i] for i in sorted(by_index)]
    return RestoreResult(tuple(written), tuple(reader.skipped))


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
    tile_margin: int | None = None,
    progress: bool = True,
    resume: bool = False,
) -> RestoreResult:
    """Restore image files with a zoo network and its weights: :func:`restore_images` with a
    :class:`~converse_jax.inference.restorer.Restorer` (loaded after the request is checked).

    Args:
      model_name: registry name, e.g. ``'converse_dncnn'``.
      weights: official ``.pth``, variable-store directory or training workdir of that network.
      input_path, output_path, degrade, sigma, kernel, resume: as :func:`restore_images` (images
        of one shape are batched over every local device).
      x8: x8 self-ensemble (8 network calls per image or tile).
      tile: restore in ``tile`` x ``tile`` windows (>= 8) kept on their middle
        (:func:`converse_jax.inference.tiling.tiled_apply`); None: whole images, or tiles of the
        network's default size for an image whose whole-image inference would not fit in the
        device's memory (a note on stderr says so).
      tile_margin: context around each tile's kept middle in input pixels
        (``2 * tile_margin`` less than the image pixels a window holds: ``tile``, or half of it
        for a network with mirrored windows); None: the network's
        :attr:`~converse_jax.inference.restorer.Restorer.tile_margin`. Needs ``tile``.
      progress: tqdm progress bar (over the images; over the tiles for a single image).

    Example:
      A tiny DnCNN with zero weights (it returns its input unchanged):

      >>> import tempfile
      >>> import jax
      >>> from converse_jax.models import abstract_variables, get_model
      >>> from converse_jax.pretrained import save_variables
      >>> from converse_jax.utils.images import read_image
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
      >>> _ = restore_path("dncnn", weights, root / "clean", root / "demo", degrade=True, tile=8,
      ...                  progress=False)
      >>> sorted(p.name for p in (root / "demo").iterdir())  # restored and degraded input
      ['a.png', 'a_degraded.png']
      >>> tmp.cleanup()
    """
    from converse_jax.models.registry import get_spec

    spec = get_spec(model_name)
    if tile is not None:
        tile = check_int(tile, "tile", minimum=8)
    if tile_margin is not None:
        if tile is None:
            raise ValueError("tile_margin: needs tile")
        held = window_span(tile, spec.tile_mirror)
        tile_margin = check_int(tile_margin, "tile_margin", minimum=0, below=(held + 1) // 2)

    def load(k: np.ndarray | None, single: bool) -> tuple[Network, ImageFn]:
        restorer = Restorer(model_name, weights)
        loaded = Network(model_name, restorer.kind, restorer.in_channels, restorer.scale)
        return loaded, restorer.function(k, x8=x8, tile="auto" if tile is None else tile, tile_margin=tile_margin,
                                         progress=progress and single)

    network = Network(model_name, get_task(spec.task), spec.in_channels, spec.scale)
    return restore_images(network, load, input_path, output_path, degrade=degrade, sigma=sigma, kernel=kernel,
                          progress=progress, resume=resume)


def _checked_outputs(source: Path, target: Path, degrade: bool) -> tuple[list[tuple[Path, Path]], Path]:
    """(input, output PNG) pairs and the output folder, refused when outputs collide, overwrite an
    input or cannot be written (nothing is loaded or restored yet)."""
    files, outputs, folder = _plan(source, target)
    pairs = list(zip(files, outputs))
    check_collisions(pairs + [(f, _degraded_path(o)) for f, o in pairs if degrade])
    for file, out in pairs:
        if out.exists() and _same_file(out, file):
            raise ValueError(f"output_path: writing {out} would overwrite the input image; choose another output")
    check_writable_folder(folder, "output_path")
    return pairs, folder


def _same_file(a: AnyPath, b: AnyPath) -> bool:
    """Whether ``a`` and ``b`` name one file (local: after symbolic links; URLs: the same URL)."""
    if is_remote(a) or is_remote(b):
        return os.fspath(a) == os.fspath(b)
    return a.resolve() == b.resolve()


def _degraded_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_degraded.png")
