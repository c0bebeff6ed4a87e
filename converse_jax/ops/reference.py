"""Reference reverse convolution: a literal transcription of the paper's Algorithm 1.

This is the oracle of the tests and the baseline of the benchmarks, not the fast path
(see :func:`converse_jax.ops.converse2d.converse2d`). It follows the official PyTorch operator
step by step, with complex FFTs over the full up-scaled grid:

1. pad the input by ``padding`` (NHWC, spatial axes only);
2. ``y_s`` = zero-insertion up-sampling (samples at rows/cols 0, s, 2s, ...), ``x_0`` = nearest
   up-sampling of the padded input (or the given prior, padded by ``padding·scale``);
3. ``F_K`` = FFT of the kernel placed top-left on the (s·h)×(s·w) grid and rolled by −⌊k/2⌋;
4. ``R = conj(F_K)·FFT(y_s) + FFT(λ·x_0)``;
5. ``Q = blockavg(F_K·R) / (blockavg(|F_K|²) + λ)`` over the s×s aliasing blocks;
6. ``X = (R − conj(F_K)·tile(Q)) / λ``; output = real(IFFT(X)) cropped by ``padding·scale``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from converse_jax.ops.validation import broadcast_lam, check_args, crop_spatial, pad_spatial, solve_dtype


def _block_average(a: jax.Array, s: int) -> jax.Array:
    """Mean of the s×s contiguous blocks of the (s·h, s·w) axes 1, 2 of an (N, s·h, s·w, C) array."""
    n, sh, sw, c = a.shape
    return a.reshape(n, s, sh // s, s, sw // s, c).mean(axis=(1, 3))


def converse2d_reference(
    x: jax.Array,
    kernel: jax.Array,
    lam: Any,
    *,
    scale: int = 1,
    padding: int = 0,
    padding_mode: str = "circular",
    x0: jax.Array | None = None,
) -> jax.Array:
    """Algorithm 1 of the paper, transcribed literally (slow; for tests and benchmarks).

    Same arguments, shapes (NHWC) and result as :func:`converse_jax.converse2d`: ``x``
    (N, H, W, C), ``kernel`` (kh, kw, C) or (N, kh, kw, C) per sample, ``lam`` a scalar, (C,) or
    (N, C), optional ``x0`` (N, H·s, W·s, C) -> (N, H·s, W·s, C) in ``x``'s dtype (half
    precision solved in float32; invalid λ under ``jit`` gives NaN channels).

    Example (with a delta kernel the forward model is plain subsampling, so the ×2 solution
    reproduces the input on the coarse grid):

      >>> import jax, numpy as np
      >>> x = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1) / 64
      >>> delta = np.zeros((3, 3, 1), np.float32)
      >>> delta[1, 1, 0] = 1.0
      >>> # jit: one compilation instead of one per operation (4× faster here)
      >>> y = jax.jit(lambda x, k: converse2d_reference(x, k, 1e-2, scale=2, padding=2))(x, delta)
      >>> y.shape
      (1, 16, 16, 1)
      >>> bool(np.allclose(y[:, ::2, ::2], x, atol=1e-4))
      True
    """
    g = check_args(x, kernel, lam, scale, padding, padding_mode, x0)
    s, p = g.scale, g.padding
    out_dtype = jnp.result_type(x)
    dtype = solve_dtype(out_dtype)  # float16/bfloat16 are solved in float32
    xp = pad_spatial(jnp.asarray(x, dtype), p, padding_mode)
    n, hp, wp, c = xp.shape
    sh, sw = s * hp, s * wp

    ys = jnp.zeros((n, sh, sw, c), dtype).at[:, ::s, ::s, :].set(xp)
    if x0 is None:
        x0p = jnp.repeat(jnp.repeat(xp, s, axis=1), s, axis=2)
    else:
        x0p = pad_spatial(jnp.asarray(x0, dtype), p * s, padding_mode)
    lam_b = broadcast_lam(lam, g, dtype)

    k = jnp.asarray(kernel, dtype)
    k = k if g.per_sample_kernel else k[None]
    otf = jnp.zeros((k.shape[0], sh, sw, c), dtype).at[:, : g.kh, : g.kw, :].set(k)
    otf = jnp.roll(otf, (-(g.kh // 2), -(g.kw // 2)), axis=(1, 2))
    fk = jnp.fft.fft2(otf, axes=(1, 2))
    fk_conj = jnp.conj(fk)
    fk2 = jnp.real(fk) ** 2 + jnp.imag(fk) ** 2

    r = fk_conj * jnp.fft.fft2(ys, axes=(1, 2)) + jnp.fft.fft2(lam_b * x0p, axes=(1, 2))
    q = _block_average(fk * r, s) / (_block_average(fk2, s) + lam_b)
    xf = (r - fk_conj * jnp.tile(q, (1, s, s, 1))) / lam_b
    out = jnp.real(jnp.fft.ifft2(xf, axes=(1, 2))).astype(dtype)
    return crop_spatial(out, p * s).astype(out_dtype)
