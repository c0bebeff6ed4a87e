"""Serving without Flax: a network's restore function as one serialized ``jax.export`` artifact.

:func:`export_restorer` (``converse-jax export``) traces ``model.apply`` of any weights
:func:`converse_jax.pretrained.load` takes -- with the variables baked in as constants, in
evaluation mode, float32 matmuls at ``'highest'`` precision -- at a fixed tile shape and a
symbolic batch size ``b``::

    x (b, tile, tile, C) float32 [, kernel (b, kh, kw) float32]  ->  (b, s*tile, s*tile, C) float32

(``kernel`` only for non-blind deblurring, ``s`` the SR factor), lowers it to StableHLO for
``cpu``, ``cuda`` and ``tpu`` in one artifact (``jax.export``'s multi-platform lowering) and
writes ``Exported.serialize()``. The one operation outside StableHLO's standard set is XLA's
``LayoutConstraint`` (a layout hint of the Converse2D operator that XLA on every platform
understands); the export allows it explicitly.

:func:`load_exported` and :class:`ExportedRestorer` need only ``jax`` and ``numpy`` (this
module imports neither Flax nor model code; :func:`export_restorer` imports them when called):
the restorer reads tile, channels, scale and kernel shape from the artifact itself and restores
images of any size with :func:`converse_jax.inference.tiling.tiled_apply` (fixed-size overlapping
tiles blended with sin^2 ramps, one compilation). :func:`restore_files` backs
``converse-jax restore --exported``: image files in, PNG files out (uint8 with the official
``round(clip(y, 0, 1) * 255)``; a colour file given to a gray network is converted with PIL's
BT.601 luma, as everywhere in this project).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from converse_jax.utils.atomic import write_bytes
from converse_jax.inference.tiling import tiled_apply

__all__ = ["ExportedRestorer", "export_restorer", "load_exported", "restore_files"]

PLATFORMS = ("cpu", "cuda", "tpu")
"""Platforms every artifact is lowered for (one serialized module serves all three)."""

_ALLOWED_CUSTOM_CALLS = (jax_export.DisabledSafetyCheck.custom_call("LayoutConstraint"),)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def export_restorer(
    weights: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tile: int = 256,
    kernel_size: int = 7,
    platforms: Sequence[str] = PLATFORMS,
    model: str | None = None,
) -> Path:
    """Write the serialized ``jax.export`` artifact of ``weights``' network at a tile shape.

    Args:
      weights: anything :func:`converse_jax.pretrained.load` takes (official name, ``.pth``,
        converted folder, training workdir).
      out: the artifact file to write (atomically; its folder must exist).
      tile: input tile side in pixels (>= 8); SR networks output ``scale * tile``.
      kernel_size: side of the blur kernel input of non-blind deblurring networks.
      platforms: lowering platforms (default cpu, cuda and tpu).
      model: registry name the weights must hold (refused otherwise, naming both), or None.

    Returns:
      ``out`` as an absolute :class:`~pathlib.Path`.

    Example:
      A tiny Converse-DnCNN, exported and run back without Flax:

      >>> import tempfile
      >>> from converse_jax.models import abstract_variables, get_model
      >>> from converse_jax.pretrained import save_variables
      >>> kwargs = {"features": 4, "num_blocks": 1}
      >>> shapes = abstract_variables(get_model("converse_dncnn", **kwargs))
      >>> variables = jax.tree.map(lambda s: np.full(s.shape, 0.1, s.dtype), shapes)
      >>> tmp = tempfile.TemporaryDirectory()
      >>> store = save_variables(Path(tmp.name) / "w", variables, arch="converse_dncnn",
      ...                        metadata={"model_kwargs": kwargs})
      >>> path = export_restorer(store, Path(tmp.name) / "dncnn.jax", tile=16)
      >>> restorer = load_exported(path)
      >>> restorer.tile, restorer.in_channels, restorer.scale, restorer.kernel_shape, restorer.platforms
      (16, 1, 1, None, ('cpu', 'cuda', 'tpu'))
      >>> restorer.restore(np.zeros((1, 40, 24, 1), np.float32)).shape  # any size: tiled
      (1, 40, 24, 1)
      >>> tmp.cleanup()
    """
    from converse_jax.models.registry import spec_of
    from converse_jax.pretrained.load import load
    from converse_jax.tasks import get_task
    from converse_jax.utils.validate import check_int

    tile, kernel_size = check_int(tile, "tile", minimum=8), check_int(kernel_size, "kernel_size")
    out = Path(out).expanduser().absolute()
    if not out.parent.is_dir():
        raise ValueError(f"out: folder {out.parent} does not exist")
    module, variables = load(weights, arch=model)
    spec = spec_of(module)
    channels = int(spec.data_values(module)["channels"])
    task = get_task(spec.task)
    nonblind = task.takes_kernel

    def restore(x, *kernel):
        return task.apply(module, variables, x, *kernel, train=False)

    (b,) = jax_export.symbolic_shape("b")
    specs = [jax.ShapeDtypeStruct((b, tile, tile, channels), jnp.float32)]
    if nonblind:
        specs.append(jax.ShapeDtypeStruct((b, kernel_size, kernel_size), jnp.float32))
    with jax.default_matmul_precision("highest"):
        exported = jax_export.export(
            jax.jit(restore), platforms=tuple(platforms), disabled_checks=_ALLOWED_CUSTOM_CALLS
        )(*specs)
    write_bytes(out, bytes(exported.serialize()))
    return out


class ExportedRestorer:
    """A deserialized restore function: applies it to tiles and tiles images of any size.

    Args:
      exported: a ``jax.export.Exported`` written by :func:`export_restorer`.

    Attributes:
      tile: input tile side. in_channels: image channels (1 gray, 3 RGB). scale: output/input
      size ratio. kernel_shape: ``(kh, kw)`` of the blur kernel input, or None for networks
      without one. platforms: the platforms the artifact runs on.

    Example:
      >>> ExportedRestorer(object())  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: exported: expected a jax.export.Exported, got object
    """

    def __init__(self, exported: jax_export.Exported):
        if not isinstance(exported, jax_export.Exported):
            raise ValueError(f"exported: expected a jax.export.Exported, got {type(exported).__name__}")
        x_aval, out_aval = exported.in_avals[0], exported.out_avals[0]
        self.exported = exported
        self.tile = int(x_aval.shape[1])
        self.in_channels = int(x_aval.shape[3])
        self.scale = int(out_aval.shape[1]) // self.tile
        self.kernel_shape = tuple(int(d) for d in exported.in_avals[1].shape[1:]) if len(exported.in_avals) > 1 else None
        self.platforms = tuple(exported.platforms)
        self._call = jax.jit(exported.call)

    def __call__(self, x: np.ndarray | jax.Array, kernel: np.ndarray | None = None) -> jax.Array:
        """The network on a batch of tiles ``(B, tile, tile, C)`` -> ``(B, s*tile, s*tile, C)``."""
        args = [jnp.asarray(x, jnp.float32)]
        if self.kernel_shape is not None:
            args.append(jnp.broadcast_to(jnp.asarray(kernel, jnp.float32), (args[0].shape[0], *self.kernel_shape)))
        return self._call(*args)

    def restore(
        self,
        x: np.ndarray | jax.Array,
        kernel: np.ndarray | None = None,
        *,
        overlap: int | None = None,
        progress: bool = False,
    ) -> jax.Array:
        """Restore NHWC float32 images ``(N, H, W, C)`` of any size -> ``(N, s*H, s*W, C)`` (not clipped).

        Args:
          x: degraded images in [0, 1].
          kernel: ``(kh, kw)`` blur kernel, required exactly when :attr:`kernel_shape` is set.
          overlap: tile overlap in input pixels (default ``min(32, tile // 4)``).
          progress: tqdm bar over the tiles.
        """
        if (kernel is None) != (self.kernel_shape is None):
            need = f"needs a {self.kernel_shape} blur kernel" if self.kernel_shape else "takes no blur kernel"
            raise ValueError(f"kernel: this exported network {need}")
        if kernel is not None:
            kernel = np.asarray(kernel, np.float32)
            if kernel.shape != self.kernel_shape:
                raise ValueError(f"kernel: expected shape {self.kernel_shape}, got {kernel.shape}")
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[3] != self.in_channels:
            raise ValueError(f"x: expected (N, H, W, {self.in_channels}) images, got shape {x.shape}")
        overlap = min(32, self.tile // 4) if overlap is None else overlap
        return tiled_apply(
            lambda t: self(t, kernel), x, tile=self.tile, overlap=overlap, scale=self.scale, progress=progress
        )


def load_exported(path: str | os.PathLike[str]) -> ExportedRestorer:
    """Read an artifact written by :func:`export_restorer` (or ``converse-jax export``).

    Example:
      >>> load_exported("missing.jax")
      Traceback (most recent call last):
      ...
      FileNotFoundError: exported: missing.jax does not exist
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"exported: {path} does not exist")
    try:
        exported = jax_export.deserialize(bytearray(path.read_bytes()))
    except Exception as err:  # the flatbuffer reader raises assorted errors on foreign bytes
        raise ValueError(f"exported: {path} is not a serialized jax.export artifact ({err})") from err
    return ExportedRestorer(exported)


def _read(path: Path, channels: int) -> np.ndarray:
    """Image file -> float32 (H, W, channels) in [0, 1] (PIL 'L' = BT.601 luma for gray)."""
    from PIL import Image

    with Image.open(path) as image:
        arr = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    return (arr.reshape(*arr.shape[:2], channels) / 255.0).astype(np.float32)


def _png_bytes(y: np.ndarray) -> bytes:
    """float (H, W, C) -> PNG of ``uint8(round(clip(y, 0, 1) * 255))``."""
    import io

    from PIL import Image

    img = np.uint8((np.clip(y, 0, 1) * 255.0).round())
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
    return buf.getvalue()


def restore_files(
    exported: str | os.PathLike[str] | ExportedRestorer,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    kernel: str | os.PathLike[str] | np.ndarray | None = None,
    overlap: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Restore an image file, or every image of a folder, with an exported network; write PNGs.

    Args:
      exported: an artifact path or a loaded :class:`ExportedRestorer`.
      input_path: an image file or a folder of images (not recursive).
      output_path: for a file, the ``.png`` to write (or an existing folder); for a folder, a
        folder (created) receiving ``<stem>.png`` per image.
      kernel: the blur kernel (``.npy`` path or array) for a non-blind deblurring network.
      overlap: tile overlap (default ``min(32, tile // 4)``). progress: tqdm bar over the images.

    Returns:
      the written paths.

    Example:
      >>> restore_files("missing.jax", "in.png", "out.png")
      Traceback (most recent call last):
      ...
      FileNotFoundError: exported: missing.jax does not exist
    """
    from tqdm import tqdm

    restorer = exported if isinstance(exported, ExportedRestorer) else load_exported(exported)
    if isinstance(kernel, (str, os.PathLike)):
        kernel = np.load(Path(kernel), allow_pickle=False)
    source, target = Path(input_path), Path(output_path)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"input_path: folder {source} holds no image ({', '.join(_IMAGE_SUFFIXES)})")
        target.mkdir(parents=True, exist_ok=True)
        outputs = [target / f"{f.stem}.png" for f in files]
    elif source.is_file():
        files = [source]
        out = target / f"{source.stem}.png" if target.is_dir() else target
        if out.suffix.lower() != ".png":
            raise ValueError(f"output_path: outputs are PNG files; got {out.name}")
        if not out.parent.is_dir():
            raise ValueError(f"output_path: folder {out.parent} does not exist")
        outputs = [out]
    else:
        raise FileNotFoundError(f"input_path: {source} does not exist")
    for file, out in tqdm(list(zip(files, outputs)), unit="img", disable=not progress):
        if out.exists() and out.resolve() == file.resolve():
            raise ValueError(f"output_path: writing {out} would overwrite the input image; choose another output")
        x = _read(file, restorer.in_channels)[None]
        y = np.asarray(restorer.restore(x, kernel, overlap=overlap))[0]
        write_bytes(out, _png_bytes(y))
    return outputs
