r"""Depthwise reverse convolution ("Converse2D"), fast closed form with real FFTs.

Per sample and channel the operator solves, on the padded grid with circular boundaries,

.. math::  X^* = \arg\min_X \|Y - (X \circledast K)\downarrow_s\|^2 + \lambda \|X - X_0\|^2,

with ``Y`` the (padded) input, ``K`` the kernel, ``s`` the scale and ``X_0`` the prior (default:
nearest-neighbour up-sampling of ``Y``). With :math:`F` the 2-D DFT on the (s·h)×(s·w) grid,
:math:`\bar F_K` the conjugate kernel transfer function, :math:`\langle\cdot\rangle_s` the average
over the s×s aliasing blocks (an (h, w) spectrum) and :math:`T_s` its s×s tiling back:

.. math::  F X^* = F X_0 + \bar F_K \cdot T_s\!\left[\frac{F Y - F\big((K \circledast X_0)\downarrow_s\big)}
           {\langle |F_K|^2\rangle_s + \lambda}\right].

This is algebraically identical to Algorithm 1 of the paper (see :mod:`converse_jax.ops.reference`)
but cheaper:

* With the default prior, :math:`F X_0 = T_s[F Y]\cdot B` where ``B`` is the transfer function of
  the s×s box, so the whole solve is one multiplication of the tiled input spectrum by a transfer
  function ``M`` that depends only on the kernel and λ:
  :math:`M = B + \bar F_K \cdot T_s[(1 - \langle F_K B\rangle_s) / (\langle |F_K|^2\rangle_s + \lambda)]`.
  For ``scale == 1`` this is :math:`M = (\bar F_K + \lambda) / (|F_K|^2 + \lambda)`.
  The data path is one ``rfft2`` of the padded input and one ``irfft2`` of the output.
* ``M`` is computed once per call per channel (per sample only for per-sample kernels), with the
  kernel's DFT evaluated directly by two small DFT matrices (the kernel has k×k taps), not by an
  FFT of a mostly-zero array.
* Real FFTs over the two trailing axes (the data is moved to NCHW inside, so the FFT axes are
  contiguous) halve the work.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from converse_jax.ops.validation import Geometry, check_args, crop_spatial, pad_spatial

_HIGHEST = jax.lax.Precision.HIGHEST


@lru_cache(maxsize=256)
def _dft_matrix(size: int, taps: int, half: bool) -> np.ndarray:
    """E[u, a] = exp(-2πi·u·(a − ⌊taps/2⌋)/size): the DFT of a centred tap a, for u < size
    (or u ≤ size//2 when ``half``). Exact integer phase reduction keeps it accurate in float32."""
    rows = size // 2 + 1 if half else size
    u = np.arange(rows)[:, None]
    a = np.arange(taps)[None, :] - taps // 2
    phase = (u * a) % size
    return np.exp(-2j * np.pi * phase / size)


@lru_cache(maxsize=256)
def _box_transfer(size: int, s: int, half: bool) -> np.ndarray:
    """1-D DFT of the length-s box at offset 0 on a grid of ``size``: Σ_t exp(-2πi·u·t/size)."""
    rows = size // 2 + 1 if half else size
    u = np.arange(rows)[:, None]
    t = np.arange(s)[None, :]
    return np.exp(-2j * np.pi * ((u * t) % size) / size).sum(axis=1)


def _kernel_otf(kernel: jax.Array, sh: int, sw: int, half: bool, cdtype: Any) -> jax.Array:
    """Transfer function of the kernel on an (sh, sw) grid, NCHW-shaped.

    Args:
      kernel: (K, kh, kw, C) real, K ∈ {1, N}.
      half: return only the non-negative column frequencies (rfft layout, sw//2 + 1 columns).
    Returns:
      (K, C, sh, sw or sw//2+1) complex: the FFT of the kernel placed top-left and rolled by −⌊k/2⌋.
    """
    _, kh, kw, _ = kernel.shape
    eh = jnp.asarray(_dft_matrix(sh, kh, False), cdtype)
    ew = jnp.asarray(_dft_matrix(sw, kw, half), cdtype)
    return jnp.einsum("ua,nabc,vb->ncuv", eh, kernel.astype(cdtype), ew, precision=_HIGHEST)


def _block_average(a: jax.Array, s: int) -> jax.Array:
    """Mean over the s×s contiguous blocks of the last two axes: (..., s·h, s·w) -> (..., h, w)."""
    *lead, sh, sw = a.shape
    return a.reshape(*lead, s, sh // s, s, sw // s).mean(axis=(-4, -2))


def _hermitian_full(half: jax.Array, w: int) -> jax.Array:
    """Full-width spectrum (..., h, w) of a real signal from its rfft half (..., h, w//2+1)."""
    h = half.shape[-2]
    ncols = w - (w // 2 + 1)
    if ncols == 0:
        return half
    rows = (-np.arange(h)) % h
    cols = w - np.arange(w // 2 + 1, w)
    mirror = jnp.conj(half[..., rows, :][..., cols])
    return jnp.concatenate([half, mirror], axis=-1)


def _tile_to_half(full: jax.Array, s: int, sw: int) -> jax.Array:
    """s×s tiling of a full (..., h, w) spectrum, restricted to the rfft half of the (s·h, s·w) grid."""
    w = full.shape[-1]
    cols = np.arange(sw // 2 + 1) % w
    return jnp.tile(full[..., cols], (1,) * (full.ndim - 2) + (s, 1))


def _lam_nchw(lam: Any, g: Geometry, dtype: Any) -> jax.Array:
    """λ as (N or 1, C, 1, 1)."""
    lam = jnp.asarray(lam, dtype)
    if lam.ndim == 2:
        return lam[:, :, None, None]
    return jnp.broadcast_to(lam.reshape(-1), (g.c,))[None, :, None, None]


def _transfer(kernel: jax.Array, lam: jax.Array, g: Geometry, cdtype: Any) -> jax.Array:
    """M with F X* = T_s[F Y]·M for the default (nearest-neighbour) prior, rfft half layout.

    Returns (N or 1, C, s·hp, s·wp//2+1) complex.
    """
    s = g.scale
    sh, sw = s * g.hp, s * g.wp
    if s == 1:
        fk = _kernel_otf(kernel, sh, sw, True, cdtype)
        fk2 = jnp.real(fk) ** 2 + jnp.imag(fk) ** 2
        return (jnp.conj(fk) + lam) / (fk2 + lam)
    fk = _kernel_otf(kernel, sh, sw, False, cdtype)
    fk2 = jnp.real(fk) ** 2 + jnp.imag(fk) ** 2
    box = jnp.asarray(
        np.outer(_box_transfer(sh, s, False), _box_transfer(sw, s, False)), cdtype
    )
    a0 = _block_average(fk2, s)
    c1 = _block_average(fk * box, s)
    t = (1.0 - c1) / (a0 + lam)
    half = sw // 2 + 1
    return box[:, :half] + jnp.conj(fk[..., :half]) * jnp.tile(t, (1, 1, s, s))[..., :half]


def _solve_with_prior(
    fy: jax.Array, x0p: jax.Array, kernel: jax.Array, lam: jax.Array, g: Geometry, cdtype: Any
) -> jax.Array:
    """Spectrum (rfft half, fine grid) of the solution for an explicit prior ``x0p`` (NCHW, padded)."""
    s = g.scale
    sh, sw = s * g.hp, s * g.wp
    fx0 = jnp.fft.rfft2(x0p)
    fk_half = _kernel_otf(kernel, sh, sw, True, cdtype)
    if s == 1:
        a0 = jnp.real(fk_half) ** 2 + jnp.imag(fk_half) ** 2
        return fx0 + jnp.conj(fk_half) * (fy - fk_half * fx0) / (a0 + lam)
    fk = _kernel_otf(kernel, sh, sw, False, cdtype)
    a0 = _block_average(jnp.real(fk) ** 2 + jnp.imag(fk) ** 2, s)
    z = jnp.fft.irfft2(fk_half * fx0, s=(sh, sw))[..., ::s, ::s]
    resid = _hermitian_full(fy - jnp.fft.rfft2(z), g.wp)
    return fx0 + jnp.conj(fk_half) * _tile_to_half(resid / (a0 + lam), s, sw)


def converse2d(
    x: jax.Array,
    kernel: jax.Array,
    lam: Any,
    *,
    scale: int = 1,
    padding: int = 0,
    padding_mode: str = "circular",
    x0: jax.Array | None = None,
) -> jax.Array:
    """Depthwise reverse convolution (the paper's Converse2D), closed form.

    Solves, per sample and channel, ``argmin_X ||Y − (X ⊛ K)↓s||² + λ||X − X0||²`` with circular
    convolution on the padded grid, and crops the padding off the result.

    Args:
      x: (N, H, W, C) real floating input Y (NHWC).
      kernel: (kh, kw, C) depthwise kernel shared by the batch, or (N, kh, kw, C) one per sample.
        Tap (⌊kh/2⌋, ⌊kw/2⌋) is the kernel's origin.
      lam: regularisation weight λ > 0: a scalar, (C,) or (N, C).
      scale: integer up-sampling factor s ≥ 1.
      padding: pixels p ≥ 0 added on every spatial side of ``x`` before the solve.
      padding_mode: ``"circular"`` (wrap), ``"reflect"`` (mirror, edge sample not repeated),
        ``"replicate"`` (edge) or ``"constant"`` (zeros) — PyTorch's meanings.
      x0: optional prior X0 of shape (N, H·s, W·s, C); padded by p·s in ``padding_mode``.
        Default: nearest-neighbour up-sampling of the padded input, as the official operator.

    Returns:
      (N, H·s, W·s, C) array of ``x``'s dtype: the solution with p·s pixels cropped per side.

    Raises:
      ValueError: on malformed shapes or values, naming the argument.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 3))
      >>> k = jnp.full((3, 3, 3), 1 / 9)
      >>> converse2d(x, k, 1e-2, scale=2, padding=2, padding_mode="replicate").shape
      (1, 16, 16, 3)
    """
    g = check_args(x, kernel, lam, scale, padding, padding_mode, x0)
    s, p = g.scale, g.padding
    dtype = jnp.result_type(x)
    cdtype = jnp.result_type(dtype, jnp.complex64)
    sh, sw = s * g.hp, s * g.wp

    y = jnp.transpose(pad_spatial(jnp.asarray(x), p, padding_mode), (0, 3, 1, 2))
    k = jnp.asarray(kernel, dtype)
    k = k if g.per_sample_kernel else k[None]
    lam_b = _lam_nchw(lam, g, dtype)
    fy = jnp.fft.rfft2(y)

    if x0 is None:
        m = _transfer(k, lam_b, g, cdtype)
        if s > 1:
            fy = _tile_to_half(_hermitian_full(fy, g.wp), s, sw)
        xf = fy * m
    else:
        x0p = jnp.transpose(pad_spatial(jnp.asarray(x0, dtype), p * s, padding_mode), (0, 3, 1, 2))
        xf = _solve_with_prior(fy, x0p, k, lam_b, g, cdtype)

    out = jnp.fft.irfft2(xf, s=(sh, sw)).astype(dtype)
    return crop_spatial(jnp.transpose(out, (0, 2, 3, 1)), p * s)
