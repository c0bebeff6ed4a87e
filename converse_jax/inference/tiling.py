"""Model-agnostic inference helpers: x8 self-ensemble and fixed-size tiled application.

Both take ``fn``, any callable mapping a float32 NHWC :class:`jax.Array` ``(B, h, w, C)`` to a
float32 NHWC array ``(B, h*scale, w*scale, C_out)`` (e.g. a jitted ``model.apply`` with its
variables bound), and both return a :class:`jax.Array`, so they compose either way round::

    restored = tiled_apply(lambda t: self_ensemble_x8(model_fn, t), noisy, tile=256, overlap=32)

Layout is NHWC throughout (spatial axes 1 and 2).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

__all__ = ["self_ensemble_x8", "tiled_apply"]

ArrayFn = Callable[[jax.Array], jax.Array]


def _check_nhwc(x: np.ndarray | jax.Array, name: str = "x") -> None:
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{name}: expected an NHWC array of shape (N, H, W, C), got shape {getattr(x, 'shape', None)}")
    if min(x.shape) < 1:
        raise ValueError(f"{name}: every dimension must be >= 1, got shape {x.shape}")


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
    _check_nhwc(x)
    x = jnp.asarray(x, jnp.float32)
    partial_sums: list[tuple[int, jax.Array]] = []  # pairwise summation: (number of terms as log2, sum)
    for flip in (False, True):
        flipped = x[:, :, ::-1] if flip else x
        for k in range(4):
            y = jnp.asarray(fn(jnp.rot90(flipped, k, axes=(1, 2))), jnp.float32)
            _check_nhwc(y, "fn output")
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


def _tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride`` px, the last one flush with the end."""
    if size <= tile:
        return [0]
    return [*range(0, size - tile, stride), size - tile]


def _blend_window(length: int, ramp: int, taper_start: bool, taper_end: bool) -> np.ndarray:
    """1-D weights: 1 inside, a Hann ramp sin^2(pi/2 (i+1/2)/ramp) > 0 over ``ramp`` px at tapered ends.

    Two ramps of adjacent tiles overlapping by exactly ``ramp`` px sum to one (sin^2 + cos^2).
    """
    w = np.ones(length, np.float32)
    if ramp > 0:
        rise = (np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2).astype(np.float32)
        if taper_start:
            w[:ramp] = np.minimum(w[:ramp], rise)
        if taper_end:
            w[-ramp:] = np.minimum(w[-ramp:], rise[::-1])
    return w


def _check_int(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def tiled_apply(
    fn: ArrayFn,
    x: np.ndarray | jax.Array,
    *,
    tile: int,
    overlap: int,
    scale: int = 1,
    batch_tiles: int = 1,
    progress: bool = False,
) -> jax.Array:
    """Apply ``fn`` to overlapping fixed-size tiles of ``x`` and blend the outputs.

    Along each spatial axis, windows of ``tile`` px start every ``tile - overlap`` px and the
    last one is placed flush with the border (so it may overlap its neighbour by more). An image
    axis shorter than ``tile`` is first reflect-padded at the bottom/right to ``tile`` px (a 1-px
    axis is repeated; the padding is cropped from the output). Hence every call of ``fn`` gets exactly
    ``(batch_tiles * N, tile, tile, C)``: a jitted ``fn`` compiles once. When the number of
    windows is not a multiple of ``batch_tiles`` the last call is filled up with repeats of its
    last window (their outputs are discarded).

    Each ``(scale*tile)``-px output tile is weighted by the outer product of two 1-D windows that
    are 1 in the middle and rise as sin^2 over ``scale*overlap`` px at each edge that borders
    another tile (never at the image border; never zero), accumulated on the host, and divided
    by the summed weights: ``out = sum_t w_t * y_t / sum_t w_t``. Where ``fn`` is local with a
    receptive-field radius ``r <= overlap / 2``, pixels farther than ``r`` from every inner tile
    edge are exact, and a tile's inexact pixels within ``r`` of its inner edges enter the blend
    with a relative weight of about ``sin^2(pi r / (2 overlap))`` or less.
    Device memory holds only one call's input and output.

    Args:
      fn: maps float32 ``(B, tile, tile, C)`` to ``(B, scale*tile, scale*tile, C_out)`` jax arrays.
      x: ``(N, H, W, C)`` image batch (NumPy or JAX), cast to float32.
      tile: window size in input pixels, ``>= 8``.
      overlap: overlap of neighbouring windows in input pixels, ``0 <= overlap < tile``.
      scale: spatial up-scaling factor of ``fn`` (1 for restoration, 2/3/4 for SR).
      batch_tiles: windows per call of ``fn`` (stacked along the batch axis), ``>= 1``.
      progress: show a tqdm progress bar over the calls of ``fn``.

    Returns:
      float32 :class:`jax.Array` ``(N, scale*H, scale*W, C_out)``.

    Example:
      >>> calls = []
      >>> def double(t):  # records the shape of each call
      ...     calls.append(t.shape)
      ...     return 2 * t
      >>> x = np.random.default_rng(0).random((1, 20, 20, 3), np.float32)
      >>> y = tiled_apply(double, x, tile=8, overlap=4)
      >>> y.shape, bool(jnp.allclose(y, 2 * x))  # the blend weights sum to one
      ((1, 20, 20, 3), True)
      >>> len(calls), set(calls)  # 4 x 4 windows, every call the same shape
      (16, {(1, 8, 8, 3)})
      >>> up2 = lambda t: jnp.repeat(jnp.repeat(t, 2, axis=1), 2, axis=2)
      >>> tiled_apply(up2, x, tile=8, overlap=2, scale=2, batch_tiles=4).shape
      (1, 40, 40, 3)
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    _check_nhwc(x)
    tile = _check_int(tile, "tile", 8)
    overlap = _check_int(overlap, "overlap", 0)
    if overlap >= tile:
        raise ValueError(f"overlap: must be smaller than tile ({tile}), got {overlap}")
    scale = _check_int(scale, "scale", 1)
    batch_tiles = _check_int(batch_tiles, "batch_tiles", 1)

    image = np.asarray(x, dtype=np.float32)
    n, h, w, _ = image.shape
    ph, pw = max(h, tile), max(w, tile)
    if (ph, pw) != (h, w):
        image = np.pad(image, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="reflect")
    stride = tile - overlap
    rows, cols = _tile_starts(ph, tile, stride), _tile_starts(pw, tile, stride)
    windows = [(i, j) for i in rows for j in cols]
    out_tile, ramp = scale * tile, scale * overlap

    def weight(start: int, size: int) -> np.ndarray:
        return _blend_window(out_tile, ramp, start > 0, start + tile < size)

    acc: np.ndarray | None = None
    weight_sum = np.zeros((scale * ph, scale * pw), np.float32)
    groups = [windows[g : g + batch_tiles] for g in range(0, len(windows), batch_tiles)]
    for group in tqdm(groups, desc="tiles", unit="call", disable=not progress):
        filled = group + [group[-1]] * (batch_tiles - len(group))
        batch = np.concatenate([image[:, i : i + tile, j : j + tile] for i, j in filled], axis=0)
        y = np.asarray(fn(jnp.asarray(batch)), dtype=np.float32)
        expected = (batch_tiles * n, out_tile, out_tile)
        if y.ndim != 4 or y.shape[:3] != expected:
            raise ValueError(
                f"fn: returned shape {y.shape} for input {batch.shape}; expected {expected + ('C_out',)} "
                f"(scale={scale})"
            )
        if acc is None:
            acc = np.zeros((n, scale * ph, scale * pw, y.shape[-1]), np.float32)
        y = y.reshape(batch_tiles, n, out_tile, out_tile, y.shape[-1])
        for t, (i, j) in enumerate(group):
            wt = np.outer(weight(i, ph), weight(j, pw))
            rs, cs = slice(scale * i, scale * i + out_tile), slice(scale * j, scale * j + out_tile)
            acc[:, rs, cs] += y[t] * wt[None, :, :, None]
            weight_sum[rs, cs] += wt
    out = acc / weight_sum[None, :, :, None]
    return jnp.asarray(out[:, : scale * h, : scale * w])
