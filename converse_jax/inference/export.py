"""Serving without Flax: a network's restore function as one file of serialized ``jax.export`` modules.

:func:`export_restorer` (``converse-jax export``) traces ``model.apply`` of any weights
:func:`converse_jax.pretrained.load` takes -- with the variables baked in as constants, in
evaluation mode, float32 matmuls at ``'highest'`` precision -- once per image shape, each with a
symbolic batch size ``b``::

    x (b, h, w, C) float32 [, kernel (b, kh, kw) float32]  ->  (b, s*h, s*w, C) float32

(``kernel`` only for non-blind deblurring, ``s`` the SR factor). The shapes are the tile
``(tile, tile)`` and every ``shapes`` entry (``--shape HxW``): the FFT sizes of the Converse2D
solves are static, so one module serves one image shape. Each is lowered to StableHLO for
``cpu``, ``cuda`` and ``tpu`` (``jax.export``'s multi-platform lowering). The one operation
outside StableHLO's standard set is XLA's ``LayoutConstraint`` (a layout hint of the Converse2D
operator that XLA on every platform understands); the export allows it explicitly.

The artifact is one file, written atomically::

    converse-jax export\n        the magic line
    {JSON header}\n              network, task, channels, scale, kernel shape, tile, tile margin and mirror,
                                 platforms, the byte size, shape and CRC-32 of every
                                 module, and a CRC-32 of the header itself
    module bytes ...             ``Exported.serialize()`` of each module, in the header's order

:func:`load_exported` and :class:`ExportedRestorer` need only ``jax`` and ``numpy`` (this module
imports neither Flax nor model code; :func:`export_restorer` imports them when called). An image
whose shape was exported is restored whole -- the in-process result up to float32 rounding; any
other image goes through :func:`converse_jax.inference.tiling.tiled_apply` with the artifact's
tile, margin and mirroring, as ``restore --tile`` does. Windows are never larger than the image and nothing
is padded, so an image narrower than the tile in some axis needs its own shape
(:class:`~converse_jax.inference.restorer.ShapeError` otherwise, which ``restore`` reports as a
skipped image). :func:`restore_exported` backs ``converse-jax restore --exported``: the restore
loop of :func:`converse_jax.inference.restore.restore_images`, shared with ``--weights``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from converse_jax.inference.restore import Network, RestoreResult, restore_images
from converse_jax.inference.restorer import ShapeError
from converse_jax.inference.tiling import tiled_apply, window_span
from converse_jax.utils.atomic import write_bytes
from converse_jax.utils.checksum import crc32
from converse_jax.utils.paths import absolute, as_path, has_folder
from converse_jax.utils.validate import check_int

__all__ = ["ExportedRestorer", "export_restorer", "load_exported", "parse_shape", "restore_exported"]

PLATFORMS = ("cpu", "cuda", "tpu")
"""Platforms every module is lowered for (one serialized module serves all three)."""

MAGIC = b"converse-jax export\n"
"""First line of every artifact."""

FORMAT = 1
"""Version of the artifact layout (the header's ``format``)."""

DEFAULT_TILE = 512
"""Window side (input pixels) of an artifact when ``export`` is given none."""

_ALLOWED_CUSTOM_CALLS = (jax_export.DisabledSafetyCheck.custom_call("LayoutConstraint"),)


def parse_shape(text: str) -> tuple[int, int]:
    """``'HxW'`` as ``(H, W)`` (positive ints).

    >>> parse_shape("321x481")
    (321, 481)
    >>> parse_shape("321")
    Traceback (most recent call last):
    ...
    ValueError: shape: expected HxW with positive integers (e.g. 480x320), got '321'
    """
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"shape: expected HxW with positive integers (e.g. 480x320), got {text!r}")
    return int(parts[0]), int(parts[1])


def export_restorer(
    weights: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tile: int | None = None,
    tile_margin: int | None = None,
    shapes: Sequence[tuple[int, int]] = (),
    kernel_size: int = 7,
    platforms: Sequence[str] = PLATFORMS,
    model: str | None = None,
) -> Path:
    """Write the artifact of ``weights``' network for the tile and for each of ``shapes``.

    Args:
      weights: anything :func:`converse_jax.pretrained.load` takes (official name, ``.pth``,
        converted folder, training workdir).
      out: the artifact file to write (atomically; its folder must exist).
      tile: window side in input pixels (>= 8) for images of other shapes; SR networks output
        ``scale * tile``. None: :data:`DEFAULT_TILE`.
      tile_margin: context around each window's kept middle (``2 * tile_margin`` less than the
        image pixels a window holds: ``tile``, or half of it for a network with mirrored windows);
        None: the network's, at most half that (:meth:`converse_jax.inference.restorer.Restorer.margin_for`).
      shapes: ``(H, W)`` input shapes to export as whole images too (restored exactly).
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
      >>> path = export_restorer(store, Path(tmp.name) / "dncnn.jax", tile=16, tile_margin=4, shapes=[(10, 12)])
      >>> restorer = load_exported(path)
      >>> restorer.network, restorer.tile, restorer.tile_margin, restorer.shapes, restorer.kernel_shape
      ('converse_dncnn', 16, 4, ((16, 16), (10, 12)), None)
      >>> restorer.restore(np.zeros((1, 40, 24, 1), np.float32)).shape  # any size >= the tile: tiled
      (1, 40, 24, 1)
      >>> restorer.restore(np.zeros((1, 10, 12, 1), np.float32)).shape  # an exported shape: whole
      (1, 10, 12, 1)
      >>> tmp.cleanup()
    """
    from converse_jax.inference.restorer import Restorer
    from converse_jax.pretrained.load import weights_arch

    tile = DEFAULT_TILE if tile is None else check_int(tile, "tile", minimum=8)
    kernel_size = check_int(kernel_size, "kernel_size")
    out = absolute(out, "out")
    if not has_folder(out):
        raise ValueError(f"out: folder {out.parent} does not exist")
    sizes = list(dict.fromkeys([(tile, tile), *(tuple(check_int(d, "shapes") for d in s) for s in shapes)]))
    restorer = Restorer(weights_arch(weights) if model is None else model, weights)
    margin = restorer.margin_for(tile) if tile_margin is None else tile_margin
    margin = check_int(margin, "tile_margin", minimum=0, below=(window_span(tile, restorer.tile_mirror) + 1) // 2)
    module, variables, task = restorer.module, restorer.variables, restorer.kind

    def restore(x, *kernel):
        return task.apply(module, variables, x, *kernel, train=False)

    (b,) = jax_export.symbolic_shape("b")
    blobs = []
    for h, w in sizes:
        specs = [jax.ShapeDtypeStruct((b, h, w, restorer.in_channels), jnp.float32)]
        if task.takes_kernel:
            specs.append(jax.ShapeDtypeStruct((b, kernel_size, kernel_size), jnp.float32))
        with jax.default_matmul_precision("highest"):
            exported = jax_export.export(
                jax.jit(restore), platforms=tuple(platforms), disabled_checks=_ALLOWED_CUSTOM_CALLS
            )(*specs)
        blobs.append(bytes(exported.serialize()))
    header = {
        "format": FORMAT,
        "network": restorer.name,
        "task": restorer.task,
        "in_channels": restorer.in_channels,
        "scale": restorer.scale,
        "kernel_shape": [kernel_size, kernel_size] if task.takes_kernel else None,
        "tile": tile,
        "tile_margin": margin,
        "tile_mirror": restorer.tile_mirror,
        "platforms": list(platforms),
        "modules": [{"shape": list(size), "bytes": len(blob), "crc32": crc32(np.frombuffer(blob, np.uint8))}
                    for size, blob in zip(sizes, blobs)],
    }
    header["crc32"] = _header_crc(header)
    write_bytes(out, MAGIC + json.dumps(header).encode() + b"\n" + b"".join(blobs))
    return out


class ExportedRestorer:
    """A loaded artifact: its network on exported shapes, and images of any size through them.

    Args:
      header: the artifact's JSON header (see the module docstring).
      modules: one ``jax.export.Exported`` per header module, in order.

    Attributes:
      network, task: the registry name and task of the network exported. in_channels: image
      channels (1 gray, 3 RGB). scale: output/input size ratio. kernel_shape: ``(kh, kw)`` of the
      blur kernel input, or None. tile, tile_margin, tile_mirror: the tiling of other shapes
      (``tiled_apply``'s ``tile``, ``margin``, ``mirror``). shapes: the
      ``(H, W)`` input shapes exported (the tile's first). platforms: where the modules run.
      header: the JSON header as read.

    Example:
      >>> ExportedRestorer({"format": 2}, [])
      Traceback (most recent call last):
      ...
      ValueError: exported: artifact format 2 is not supported (this converse-jax reads format 1)
    """

    def __init__(self, header: dict[str, Any], modules: Sequence[jax_export.Exported]):
        if header.get("format") != FORMAT:
            raise ValueError(
                f"exported: artifact format {header.get('format')} is not supported (this converse-jax reads format {FORMAT})"
            )
        self.header = header
        self.network: str = header["network"]
        self.task: str = header["task"]
        self.in_channels: int = header["in_channels"]
        self.scale: int = header["scale"]
        self.kernel_shape = None if header["kernel_shape"] is None else tuple(header["kernel_shape"])
        self.tile: int = header["tile"]
        self.tile_margin: int = header["tile_margin"]
        self.tile_mirror: bool = header.get("tile_mirror", False)  # absent before mirrored tiles
        self.platforms = tuple(header["platforms"])
        self.shapes = tuple(tuple(m["shape"]) for m in header["modules"])
        self._calls = {shape: jax.jit(m.call) for shape, m in zip(self.shapes, modules)}

    def info(self) -> str:
        """What the artifact holds, one fact per line (``restore --exported FILE --info``)."""
        shapes = ", ".join(f"{h}x{w}" for h, w in self.shapes[1:]) or "none"
        lines = [
            f"network      {self.network} ({self.task}, x{self.scale}, {self.in_channels} channel(s))",
            f"kernel       {'x'.join(map(str, self.kernel_shape)) if self.kernel_shape else 'none'}",
            f"tile         {self.tile} px, margin {self.tile_margin} px{', mirrored' if self.tile_mirror else ''} "
            "(images of other shapes)",
            f"shapes       {shapes} (restored whole)",
            f"platforms    {', '.join(self.platforms)}",
        ]
        return "\n".join(lines)

    def __call__(self, x: np.ndarray | jax.Array, kernel: np.ndarray | None = None) -> jax.Array:
        """The network on a batch ``(B, H, W, C)`` of an exported shape -> ``(B, s*H, s*W, C)``."""
        call = self._calls.get(tuple(np.shape(x)[1:3]))
        if call is None:
            raise ShapeError(f"x: {np.shape(x)[1]}x{np.shape(x)[2]} is not an exported shape ({self._shape_list()})")
        args = [jnp.asarray(x, jnp.float32)]
        if self.kernel_shape is not None:
            args.append(jnp.broadcast_to(jnp.asarray(kernel, jnp.float32), (args[0].shape[0], *self.kernel_shape)))
        return call(*args)

    def _shape_list(self) -> str:
        return ", ".join(f"{h}x{w}" for h, w in self.shapes)

    def restore(
        self, x: np.ndarray | jax.Array, kernel: np.ndarray | None = None, *, progress: bool = False
    ) -> jax.Array:
        """Restore NHWC float32 images ``(N, H, W, C)`` -> ``(N, s*H, s*W, C)`` (not clipped).

        An exported shape runs whole; any other image runs in ``tile`` x ``tile`` windows with
        ``tile_margin`` px of context (:func:`~converse_jax.inference.tiling.tiled_apply`), which
        needs ``H, W >= tile``.

        Args:
          x: degraded images in [0, 1].
          kernel: ``(kh, kw)`` blur kernel, required exactly when :attr:`kernel_shape` is set.
          progress: tqdm bar over the tiles.

        Raises:
          ShapeError: the image is neither an exported shape nor at least the tile on both sides.
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
        h, w = x.shape[1:3]
        if (h, w) in self._calls:
            return self(x, kernel)
        if min(h, w) < self.tile:
            raise ShapeError(
                f"{h}x{w} is neither an exported shape ({self._shape_list()}) nor at least the {self.tile}-px tile; "
                f"export it with --shape {h}x{w}"
            )
        return tiled_apply(
            lambda t: self(t, kernel), x, tile=self.tile, margin=self.tile_margin, scale=self.scale,
            mirror=self.tile_mirror, progress=progress,
        )


def _header_crc(header: dict[str, Any]) -> int:
    """CRC-32 of a header's canonical JSON without its own ``crc32`` entry."""
    fields = {key: value for key, value in header.items() if key != "crc32"}
    return crc32(np.frombuffer(json.dumps(fields, sort_keys=True).encode(), np.uint8))


def _check_crcs(path: Path, header: dict[str, Any], blobs: list[bytes]) -> None:
    """``ValueError`` naming ``path`` if the header or a module differs from the checksums written at export."""
    if "crc32" in header and header["crc32"] != _header_crc(header):
        raise ValueError(f"exported: {path} is damaged: its header differs from its checksum")
    for i, (entry, blob) in enumerate(zip(header["modules"], blobs)):
        if "crc32" in entry and entry["crc32"] != crc32(np.frombuffer(blob, np.uint8)):
            raise ValueError(f"exported: {path} is damaged: module {i} (shape {entry.get('shape')}) differs from its checksum")


def load_exported(path: str | os.PathLike[str]) -> ExportedRestorer:
    """Read an artifact written by :func:`export_restorer` (or ``converse-jax export``), verified.

    The header and every module are checked against the CRC-32 written at export (artifacts
    written before the checksums existed are read unverified); a mismatch, a truncated file or
    a module that does not deserialize is a ``ValueError`` naming the file.

    Example:
      >>> load_exported("missing.jax")
      Traceback (most recent call last):
      ...
      FileNotFoundError: exported: missing.jax does not exist
    """
    path = as_path(path, "exported")
    if not path.is_file():
        raise FileNotFoundError(f"exported: {path} does not exist")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"exported: {path} is not a converse-jax export artifact (it does not start with {MAGIC!r})")
    line_end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : line_end])
        sizes = [int(m["bytes"]) for m in header["modules"]]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"exported: {path} has a damaged header ({err})") from None
    offsets = np.cumsum([line_end + 1, *sizes])
    if offsets[-1] != len(data):
        raise ValueError(f"exported: {path} is truncated or damaged ({len(data)} bytes, the header says {offsets[-1]})")
    blobs = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    _check_crcs(path, header, blobs)
    try:
        modules = [jax_export.deserialize(bytearray(blob)) for blob in blobs]
    except Exception as err:  # the flatbuffer reader raises assorted errors on foreign bytes
        raise ValueError(f"exported: {path} holds a damaged module ({err})") from err
    return ExportedRestorer(header, modules)


def restore_exported(
    exported: str | os.PathLike[str] | ExportedRestorer,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    degrade: bool = False,
    sigma: float | None = None,
    kernel: str | os.PathLike[str] | np.ndarray | None = None,
    progress: bool = True,
    resume: bool = False,
) -> RestoreResult:
    """Restore image files with an exported network: :func:`~converse_jax.inference.restore.restore_images`.

    Args:
      exported: an artifact path or a loaded :class:`ExportedRestorer`.
      input_path, output_path, degrade, sigma, kernel, progress, resume: as
        :func:`~converse_jax.inference.restore.restore_images` (on one device: the artifact was
        exported for one). Images of a shape the artifact
        cannot restore (see :meth:`ExportedRestorer.restore`) are skipped like unreadable ones.

    Example:
      >>> restore_exported("missing.jax", "in.png", "out.png")
      Traceback (most recent call last):
      ...
      FileNotFoundError: exported: missing.jax does not exist
    """
    from converse_jax.tasks import get_task

    artifact = exported if isinstance(exported, ExportedRestorer) else load_exported(exported)
    network = Network(artifact.network, get_task(artifact.task), artifact.in_channels, artifact.scale)

    def load(k: np.ndarray | None, single: bool):
        if k is not None and k.shape != artifact.kernel_shape:
            raise ValueError(f"kernel: the artifact takes {artifact.kernel_shape} kernels, got {k.shape}")
        return network, lambda x: artifact.restore(x, k, progress=progress and single)

    return restore_images(network, load, input_path, output_path, degrade=degrade, sigma=sigma, kernel=kernel,
                          progress=progress, resume=resume, shard=False)
