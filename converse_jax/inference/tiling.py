"""Model-agnostic inference helpers: x8 self-ensemble and fixed-size tiled application.

Both take ``fn``, any callable mapping a float32 NHWC :class:`jax.Array` ``(B, h, w, C)`` to a
float32 NHWC array ``(B, h*scale, w*scale, C_out)`` (e.g. a jitted ``model.apply`` with its
variables bound), and both return a :class:`jax.Array`, so they compose either way round::

    restored = tiled_apply(lambda t: self_ensemble_x8(model_fn, t), noisy, tile=512, margin=64)

Layout is NHWC throughout (spatial axes 1 and 2).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from converse_jax.utils.validate import check_int, check_nhwc

__all__ = ["DEFAULT_TILE_MARGIN", "self_ensemble_x8", "tiled_apply", "window_span"]

DEFAULT_TILE_MARGIN = 64
"""Tile margin (input pixels) of a network that states none (no ``tile_margin`` attribute)."""

ArrayFn = Callable[[jax.Array], jax.Array]


def self_ensemble_x8(fn: ArrayFn, x: np.ndarray | jax.Array) -> jax.Array:
    """Average ``fn`` over the 8 dihedral transforms of the spatial axes ("x8 self-ensemble").

    For each ``flip`` in (no, left-right) and ``k`` in 0..3, ``fn`` is applied to
    ``rot90(flip(x), k)`` and its output is mapped back with ``flip(rot90(y, -k))``; the result is
    the mean of the 8 back-mapped outputs. An ``fn`` that commutes with these transforms (e.g. an
    isotropic filter with symmetric padding) is returned unchanged (up to rounding).

    Args:
      fn: maps ``(N, h, w, C)`` float32 to ``(N, s*h, s*w, C_out)`` (the same factor ``s`` on
        both axes, so rotated outputs line up). For a non-square input the odd rotations call
        ``fn`` with ``h`` and ``w`` swapped, so ``fn`` must accept both shapes (a jitted ``fn``
        compiles twice).
      x: ``(N, H, W, C)`` array, cast to float32.

    Returns:
      float32 :class:`jax.Array` ``(N, s*H, s*W, C_out)``. The 8 outputs are summed pairwise,
      so an ``fn`` whose 8 back-mapped outputs are identical is reproduced bit-exactly.

    Example:
      >>> zero_corner = lambda t: t.at[:, 0, 0].set(0.0)  # zeroes the top-left pixel
      >>> y = jax.jit(lambda x: self_ensemble_x8(zero_corner, x))(jnp.ones((1, 4, 4, 1)))
      >>> np.asarray(y[0, :, :, 0]).tolist()  # each corner is top-left in 2 of the 8 transforms
      [[0.75, 1.0, 1.0, 0.75], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.75, 1.0, 1.0, 0.75]]
      >>> up2 = lambda t: jnp.repeat(jnp.repeat(t, 2, axis=1), 2, axis=2)  # commutes: unchanged
      >>> x = jnp.arange(6.0).reshape(1, 2, 3, 1)
      >>> y = jax.jit(lambda x: self_ensemble_x8(up2, x))(x)
      >>> y.shape, y.dtype, bool(jnp.array_equal(y, up2(x)))
      ((1, 4, 6, 1), dtype('float32'), True)
    """
    check_nhwc(x, "x")
    x = jnp.asarray(x, jnp.float32)
    partial_sums: list[tuple[int, jax.Array]] = []  # pairwise summation: (number of terms as log2, sum)
    for flip in (False, True):
        flipped = x[:, :, ::-1] if flip else x
        for k in range(4):
            y = jnp.asarray(fn(jnp.rot90(flipped, k, axes=(1, 2))), jnp.float32)
            check_nhwc(y, "fn output")
            y = jnp.rot90(y, -k, axes=(1, 2))
            y = y[:, :, ::-1] if flip else y
            if partial_sums and y.shape != partial_sums[0][1].shape:
                raise ValueError(
                    f"fn: outputs of the transformed inputs disagree in shape: {y.shape} vs {partial_sums[0][1].shape}"
                )
            level = 0
            while partial_sums and partial_sums[-1][0] == level:
                y = partial_sums.pop()[1] + y
                level += 1
            partial_sums.append((level, y))
    (_, total), = partial_sums
    return total / 8.0


def _axis_windows(
    size: int, tile: int, margin: int, mirror: bool = False
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Windows along one axis: ``(indices, kept, core)`` per window.

    ``indices`` are the image rows (or columns) a window holds, in order; ``kept`` are the
    positions in the window of the ``core`` rows, whose outputs are kept. An axis no longer than
    ``tile`` is one window (the whole axis). Otherwise, without ``mirror``, a window is the
    periodic range ``[start - margin, start + core + margin)`` of ``tile`` rows taken modulo
    ``size`` and sorted, so a window that reaches over the image border starts at row 0 and ends
    at row ``size - 1`` exactly as the image does (the network's own border handling applies
    there) and its cut lies inside the image, ``margin`` rows from the core. With ``mirror``
    the periodic range holds ``span`` = :func:`window_span` rows, unsorted, and is followed by
    its first ``tile - span`` rows in reverse order: the window is symmetric, so a network that
    treats its input as periodic meets no jump where the window's last row wraps to its first.
    """
    if size <= tile:
        everything = np.arange(size)
        return [(everything, everything, everything)]
    span = window_span(tile, mirror)
    core = span - 2 * margin
    windows = []
    for start in [*range(0, size - core, core), size - core]:
        rows = np.arange(start, start + core)
        held = (start - margin + np.arange(span)) % size
        if mirror:
            window = np.concatenate([held, held[tile - span - 1 :: -1]])
            first = int(np.argmax(window == 0)) if 0 in held else 0  # the image's first row leads
            windows.append((np.roll(window, -first), (margin + np.arange(core) - first) % tile, rows))
        else:
            indices = np.sort(held)
            windows.append((indices, np.searchsorted(indices, rows), rows))
    return windows


def window_span(tile: int, mirror: bool) -> int:
    """Image pixels a ``tile``-px window holds along a cut axis: ``tile``, or ``ceil(tile / 2)``
    when it is mirrored (the rest is their mirror image). A margin must stay below half of it.

    >>> window_span(512, False), window_span(512, True), window_span(63, True)
    (512, 256, 32)
    """
    return (tile + 1) // 2 if mirror else tile


def _scaled(positions: np.ndarray, scale: int) -> np.ndarray:
    """Output positions of input positions under ``scale``x up-sampling."""
    return (scale * positions[:, None] + np.arange(scale)).ravel()


def tiled_apply(
    fn: ArrayFn,
    x: np.ndarray | jax.Array,
    *,
    tile: int,
    margin: int,
    scale: int = 1,
    mirror: bool = False,
    batch_tiles: int = 1,
    progress: bool = False,
) -> jax.Array:
    """Apply ``fn`` to ``tile`` x ``tile`` windows of ``x`` and keep the middle of each output.

    Overlap-save, as block FFT filtering does it: each window holds a core of
    ``tile - 2 * margin`` px and ``margin`` px of context on every side; the network's output
    is kept on the core only, and the cores tile the image (the last one along an axis flush
    with the image's end). Context that would lie beyond the image border is taken from the
    opposite border, and the window's rows and columns are then put in image order (see
    :func:`_axis_windows`): a window touching the border begins with the image's first row and
    ends with its last, so the network's padding -- circular, replicate or zero, per layer --
    meets the image border just as it does on the whole image, and the window's cut lies
    ``margin`` px inside the image. A network whose receptive-field radius is at most
    ``margin`` is thus reproduced exactly; a global one (FFT solves) up to the influence of
    what lies beyond ``margin`` px. Nothing is padded: an axis no longer than ``tile`` is one
    window of the image's own length.

    ``mirror`` is for networks that treat their input as periodic (circular padding, FFT
    solves) and reach far: an axis longer than ``tile`` is cut into windows of
    :func:`window_span` ``(tile, True)`` image pixels (the periodic range around each core,
    unsorted), each followed by its mirror image, so ``fn`` still gets ``tile`` pixels per cut
    axis, and the window's wrap-around, which would join two unrelated edges of the image, joins
    each edge to itself (a window over the image border is turned to begin with the image's
    first row, as above). What this buys the
    released deblurring networks is measured in docs/tiling.md. Every call of ``fn`` gets
    ``(batch_tiles * N, min(H, tile), min(W, tile), C)`` (a jitted ``fn`` compiles once per
    image shape class); the last call is filled up with repeats of its last window.

    Args:
      fn: maps float32 ``(B, h, w, C)`` to ``(B, scale*h, scale*w, C_out)`` jax arrays.
      x: ``(N, H, W, C)`` image batch (NumPy or JAX), cast to float32.
      tile: window side in input pixels, ``>= 8``.
      margin: context kept around each core in input pixels, ``0 <= 2 * margin < tile``.
      scale: spatial up-scaling factor of ``fn`` (1 for restoration, 2/3/4 for SR).
      mirror: mirror each window along its cut axes (above); then ``2 * margin < window_span(tile, True)``.
      batch_tiles: windows per call of ``fn`` (stacked along the batch axis), ``>= 1``.
      progress: show a tqdm progress bar over the calls of ``fn``.

    Returns:
      float32 :class:`jax.Array` ``(N, scale*H, scale*W, C_out)``.

    Example:
      >>> calls = []
      >>> def box3(t):  # a 3x3 box filter with zero padding: receptive-field radius 1
      ...     calls.append(t.shape)
      ...     p = jnp.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)))
      ...     return sum(p[:, i : i + t.shape[1], j : j + t.shape[2]] for i in range(3) for j in range(3)) / 9
      >>> x = np.random.default_rng(0).random((1, 20, 20, 3), np.float32)
      >>> y = tiled_apply(box3, x, tile=8, margin=1)
      >>> y.shape, bool(jnp.allclose(y, box3(x), atol=1e-6))  # margin >= radius: exact
      ((1, 20, 20, 3), True)
      >>> len(calls) - 1, set(calls[:-1])  # 4 x 4 windows of 8 x 8 (the last call was the check)
      (16, {(1, 8, 8, 3)})
      >>> up2 = lambda t: jnp.repeat(jnp.repeat(t, 2, axis=1), 2, axis=2)
      >>> tiled_apply(up2, x, tile=8, margin=2, scale=2, batch_tiles=4).shape
      (1, 40, 40, 3)
      >>> def wrap3(t):  # the same box filter with circular padding: the image is periodic
      ...     return sum(jnp.roll(t, (i, j), axis=(1, 2)) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9
      >>> calls.clear()
      >>> y = tiled_apply(lambda t: calls.append(t.shape) or wrap3(t), x, tile=16, margin=1, mirror=True)
      >>> bool(jnp.allclose(y, wrap3(x), atol=1e-6)), set(calls)  # 8-px windows and their mirror images
      (True, {(1, 16, 16, 3)})
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    check_nhwc(x, "x")
    tile = check_int(tile, "tile", minimum=8)
    margin = check_int(margin, "margin", minimum=0)
    span = window_span(tile, mirror)
    if 2 * margin >= span:
        whose = f"the mirrored windows' {span} px" if mirror else f"the tile ({tile})"
        raise ValueError(f"margin: must be less than half {whose}, got {margin}")
    scale = check_int(scale, "scale")
    batch_tiles = check_int(batch_tiles, "batch_tiles")

    image = np.asarray(x, dtype=np.float32)
    n, h, w, _ = image.shape
    rows, cols = _axis_windows(h, tile, margin, mirror), _axis_windows(w, tile, margin, mirror)
    windows = [(r, c) for r in rows for c in cols]
    shape = (min(h, tile), min(w, tile))
    out: np.ndarray | None = None
    groups = [windows[g : g + batch_tiles] for g in range(0, len(windows), batch_tiles)]
    for group in tqdm(groups, desc="tiles", unit="call", disable=not progress):
        filled = group + [group[-1]] * (batch_tiles - len(group))
        batch = np.concatenate([image[:, r[0][:, None], c[0][None, :]] for r, c in filled], axis=0)
        y = np.asarray(fn(jnp.asarray(batch)), dtype=np.float32)
        expected = (batch_tiles * n, scale * shape[0], scale * shape[1])
        if y.ndim != 4 or y.shape[:3] != expected:
            raise ValueError(
                f"fn: returned shape {y.shape} for input {batch.shape}; expected {expected + ('C_out',)} "
                f"(scale={scale})"
            )
        if out is None:
            out = np.zeros((n, scale * h, scale * w, y.shape[-1]), np.float32)
        y = y.reshape(batch_tiles, n, *y.shape[1:])
        for t, (r, c) in enumerate(group):
            rows_in, cols_in = _scaled(r[1], scale), _scaled(c[1], scale)
            rows_out, cols_out = _scaled(r[2], scale), _scaled(c[2], scale)
            out[:, rows_out[:, None], cols_out[None, :]] = y[t][:, rows_in[:, None], cols_in[None, :]]
    return jnp.asarray(out)
