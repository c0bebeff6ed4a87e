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
but cheaper. Three paths:

* **Scale 1, default prior** (:math:`X_0 = Y`): the solve is a filter,
  :math:`X^* = F^{-1}[F Y \cdot M]` with the kernel-only transfer function
  :math:`M = (\bar F_K + \lambda) / (|F_K|^2 + \lambda)`: one ``rfft2`` of the padded input and one
  ``irfft2``, the FFT floor. ``M`` is never materialised per sample for a shared kernel and is
  computed in the same fused loop as the product.
* **Scale s > 1, default prior**: since :math:`F X_0 = T_s[F Y]\cdot B` (``B`` the transfer
  function of the s×s box) and :math:`T_s[W]` is the spectrum of the zero-inserted up-sampling
  of :math:`w = F^{-1}W`, the solution is :math:`X^* = X_0 + \mathrm{corr}_K(\uparrow_s w)` with
  :math:`w = F^{-1}_{coarse}[F Y \cdot Q]`, :math:`Q = (1 - \langle F_K B\rangle_s) /
  (\langle |F_K|^2\rangle_s + \lambda)`. Both FFTs run on the *coarse* grid; the correlation of
  the zero-inserted ``w`` with the kernel is assembled phase by phase (each of the s×s output
  phases receives the ≈(k/s)² taps that land on it), directly in NHWC at the output size.
* **Explicit prior** ``x0``: the formula above in the Fourier domain on the fine grid.

The kernel's transfer function is evaluated directly from its k×k taps (a small real matrix
product along one axis, then a k-term real sum along the other that fuses with its consumer),
never by an FFT of a mostly-zero array or a complex matrix product. Data are moved to NCHW so
the FFT axes are trailing (XLA's FFT works on the minor axes); the move happens on the unpadded
array (the padded sizes are often not multiples of the transpose tile) and padding is done in
NCHW.

:func:`use_implementation` switches every call traced inside it to the literal Algorithm-1
transcription (for benchmarks and cross-checks of whole networks).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.layout import Layout, with_layout_constraint

from converse_jax.ops.reference import converse2d_reference
from converse_jax.ops.validation import (
    PADDING_MODES,
    Geometry,
    check_args,
    invalid_lam_to_nan,
    solve_dtype,
)

_HIGHEST = jax.lax.Precision.HIGHEST

IMPLEMENTATIONS: tuple[str, ...] = ("fast", "reference")
_IMPLEMENTATION = contextvars.ContextVar("converse2d_implementation", default="fast")


@contextlib.contextmanager
def use_implementation(name: str) -> Iterator[None]:
    """Context manager selecting the algorithm of :func:`converse2d` for calls traced inside it.

    ``name``: ``"fast"`` (this module's closed forms, the default) or ``"reference"`` (the literal
    Algorithm 1 of :func:`converse_jax.ops.reference.converse2d_reference`). Both give the same
    results up to rounding. The choice is read when a call is *traced*, and JAX caches traces
    per function object without knowing of this setting: a function already traced (by
    ``jax.jit``, ``make_jaxpr``, ...) keeps its implementation inside and outside the block, so
    trace a fresh function object (e.g. a new ``lambda``) inside it. The setting is a
    ``contextvars`` variable, local to the thread (and asyncio task) that enters the block.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x, k = jnp.ones((1, 8, 8, 2)), jnp.full((3, 3, 2), 1 / 9)
      >>> with use_implementation("reference"):
      ...     ref = jax.jit(lambda x: converse2d(x, k, 1e-2, padding=2))(x)
      >>> bool(jnp.allclose(ref, converse2d(x, k, 1e-2, padding=2), atol=1e-5))
      True
    """
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"name must be one of {IMPLEMENTATIONS}, got {name!r}")
    token = _IMPLEMENTATION.set(name)
    try:
        yield
    finally:
        _IMPLEMENTATION.reset(token)


# --------------------------------------------------------------------------- kernel spectra


@lru_cache(maxsize=512)
def _dft_rows(size: int, taps: int, freqs: tuple[int, ...]) -> np.ndarray:
    """E[i, a] = exp(-2πi·f_i·(a − ⌊taps/2⌋)/size): the DFT at frequency f_i of a tap a placed at
    offset a − ⌊taps/2⌋ on a grid of ``size``. Exact integer phase reduction keeps it accurate
    in float32. Returns (len(freqs), taps) complex128."""
    f = np.asarray(freqs)[:, None]
    a = np.arange(taps)[None, :] - taps // 2
    return np.exp(-2j * np.pi * ((f * a) % size) / size)


@lru_cache(maxsize=512)
def _box_rows(size: int, s: int, freqs: tuple[int, ...]) -> np.ndarray:
    """1-D DFT of the length-s box at offset 0 on a grid of ``size`` at the frequencies ``freqs``:
    Σ_{t<s} exp(-2πi·f·t/size), (len(freqs),) complex128."""
    f = np.asarray(freqs)[:, None]
    t = np.arange(s)[None, :]
    return np.exp(-2j * np.pi * ((f * t) % size) / size).sum(axis=1)


def _kernel_dft(
    kernel: jax.Array, size_h: int, size_w: int, rows: tuple[int, ...], cols: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
    """Real and imaginary part of the kernel's transfer function at the given frequencies.

    Args:
      kernel: (K, kh, kw, C) real, tap (⌊kh/2⌋, ⌊kw/2⌋) at the origin of an (size_h, size_w) grid.
      rows, cols: the row and column frequencies wanted.
    Returns:
      (re, im), each (K, C, len(rows), len(cols)) of the kernel's dtype.

    The map is linear in the kernel. Forward: the column DFT is a small real matrix product
    (computed once), the row DFT an explicit sum over the kh taps that XLA fuses into whatever
    consumes it. Derivatives (a custom JVP, linear in the tangent): the row DFT as a matrix
    product, whose transpose — the kernel gradient — is one efficient matrix product instead of
    kh reductions over the whole spectrum.
    """
    return _kernel_dft_fused(kernel, (size_h, size_w, rows, cols))


def _column_dft(kernel: jax.Array, size_w: int, cols: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """Stage 1 of :func:`_kernel_dft`: (K, kh, kw, C) -> (re, im) each (K, C, kh, len(cols))."""
    ew = _dft_rows(size_w, kernel.shape[2], cols)
    dtype = kernel.dtype
    # (K, C, kh, kw) first, so the product's natural output order (K, C, kh, cols) keeps the
    # frequency axis minor, as its consumers read it (a strided layout there costs ~10×).
    kt = jnp.transpose(kernel, (0, 3, 1, 2))
    tr = jnp.einsum("ncab,vb->ncav", kt, jnp.asarray(ew.real, dtype), precision=_HIGHEST)
    ti = jnp.einsum("ncab,vb->ncav", kt, jnp.asarray(ew.imag, dtype), precision=_HIGHEST)
    return tr, ti


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _kernel_dft_fused(kernel: jax.Array, spec: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
    """:func:`_kernel_dft` with the row DFT as a fusible k-term sum; ``spec`` = (size_h,
    size_w, rows, cols)."""
    size_h, size_w, rows, cols = spec
    dtype = kernel.dtype
    kh = kernel.shape[1]
    tr, ti = _column_dft(kernel, size_w, cols)
    eh = _dft_rows(size_h, kh, rows)
    ehr = jnp.asarray(eh.real, dtype)
    ehi = jnp.asarray(eh.imag, dtype)
    re = im = None
    for a in range(kh):
        cr, ci = ehr[:, a, None], ehi[:, a, None]
        ar, ai = tr[:, :, a, None, :], ti[:, :, a, None, :]
        re_a, im_a = cr * ar - ci * ai, cr * ai + ci * ar
        re = re_a if re is None else re + re_a
        im = im_a if im is None else im + im_a
    assert re is not None and im is not None  # kh >= 1
    return re, im


def _kernel_dft_matmul(kernel: jax.Array, spec: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
    """:func:`_kernel_dft` with the row DFT as one real matrix product (the derivative's form)."""
    size_h, size_w, rows, cols = spec
    dtype = kernel.dtype
    kh = kernel.shape[1]
    tr, ti = _column_dft(kernel, size_w, cols)
    eh = _dft_rows(size_h, kh, rows)
    # [re; im] = [[Er, -Ei], [Ei, Er]] @ [tr; ti] along the tap axis.
    block = np.block([[eh.real, -eh.imag], [eh.imag, eh.real]])
    both = jnp.einsum(
        "ua,ncav->ncuv", jnp.asarray(block, dtype), jnp.concatenate([tr, ti], axis=2), precision=_HIGHEST
    )
    return both[:, :, : len(rows)], both[:, :, len(rows) :]


@_kernel_dft_fused.defjvp
def _kernel_dft_fused_jvp(spec: tuple[Any, ...], primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, ...]:
    (kernel,), (dkernel,) = primals, tangents
    return _kernel_dft_fused(kernel, spec), _kernel_dft_matmul(dkernel, spec)


def _lam_nchw(lam: Any, g: Geometry, dtype: Any) -> jax.Array:
    """λ as (N or 1, C, 1, 1); invalid entries (≤ 0, NaN, inf) NaN (see :func:`invalid_lam_to_nan`)."""
    lam = invalid_lam_to_nan(jnp.asarray(lam, dtype))
    if lam.ndim == 2:
        return lam[:, :, None, None]
    return jnp.broadcast_to(lam.reshape(-1), (g.c,))[None, :, None, None]


# --------------------------------------------------------------------------- layout helpers


_ROW_MAJOR = Layout(major_to_minor=(0, 1, 2, 3))


def _pad_index(n: int, padding: int, padding_mode: str) -> np.ndarray:
    """Source index of each of the n + 2p padded positions along one axis (non-constant modes)."""
    i = np.arange(-padding, n + padding)
    if padding_mode == "circular":
        return i % n
    if padding_mode == "replicate":
        return np.clip(i, 0, n - 1)
    i = np.abs(i)  # reflect (validation guarantees padding < n)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def _jnp_pad_nchw(y: jax.Array, padding: int, padding_mode: str) -> jax.Array:
    """``jnp.pad`` of the two trailing axes of ``y`` by ``padding`` in ``padding_mode``."""
    widths = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    return jnp.pad(y, widths, mode=PADDING_MODES[padding_mode])


@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _pad_nchw(y: jax.Array, padding: int, padding_mode: str) -> jax.Array:
    """Pads the two trailing axes of ``y`` by ``padding`` in a non-constant ``padding_mode``.

    Forward: one gather with constant indices per axis, which XLA fuses into a single pass
    (``jnp.pad``'s edge and wrap modes build the result from concatenated slices, which was
    slower on the CPU). Derivatives: ``jnp.pad`` of the tangent, whose transpose — the
    gradient — folds the border back with slices and adds; the gather's own transpose would be
    a scatter-add, slower still.
    """
    return jnp.take(
        jnp.take(y, _pad_index(y.shape[2], padding, padding_mode), axis=2),
        _pad_index(y.shape[3], padding, padding_mode),
        axis=3,
    )


@_pad_nchw.defjvp
def _pad_nchw_jvp(padding: int, padding_mode: str, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, ...]:
    (y,), (dy,) = primals, tangents
    return _pad_nchw(y, padding, padding_mode), _jnp_pad_nchw(dy, padding, padding_mode)


def _to_nchw_padded(x: jax.Array, padding: int, padding_mode: str) -> jax.Array:
    """NHWC (N, H, W, C) -> NCHW (N, C, H + 2p, W + 2p), padded in ``padding_mode``.

    The transposed array is pinned to the row-major layout: left free, XLA's layout assignment
    turns the transpose into a relabelling and moves the physical transposition into the
    padding's fused loop, which reads the input with a stride of C and ran ~3× slower on CPU.
    """
    y = with_layout_constraint(jnp.transpose(x, (0, 3, 1, 2)), _ROW_MAJOR)
    if padding == 0:
        return y
    if padding_mode == "constant":
        return _jnp_pad_nchw(y, padding, padding_mode)
    return _pad_nchw(y, padding, padding_mode)


def _from_nchw_cropped(y: jax.Array, border: int) -> jax.Array:
    """NCHW (N, C, H, W) -> NHWC (N, H − 2b, W − 2b, C), ``border`` pixels cropped per side."""
    if border:
        y = y[:, :, border:-border, border:-border]
    return jnp.transpose(y, (0, 2, 3, 1))


def _periodic_window(a: jax.Array, axis: int, start: int, length: int) -> jax.Array:
    """``a[..., (start + arange(length)) mod n, ...]`` along ``axis`` (period n = a.shape[axis])."""
    n = a.shape[axis]
    if 0 <= start and start + length <= n:
        return jax.lax.slice_in_dim(a, start, start + length, axis=axis)
    return jnp.take(a, (start + np.arange(length)) % n, axis=axis)


# --------------------------------------------------------------------------- the three paths


def _scale1_transfer(kernel: jax.Array, lam: jax.Array, g: Geometry) -> jax.Array:
    """M = (conj(F_K) + λ) / (|F_K|² + λ) on the padded grid's half spectrum.

    ``kernel``: (K, kh, kw, C), K = 1 or N; ``lam``: (N or 1, C, 1, 1). Returns (K', C, hp,
    wp // 2 + 1) complex, K' the larger of K and λ's leading size.
    """
    fr, fi = _kernel_dft(kernel, g.hp, g.wp, tuple(range(g.hp)), tuple(range(g.wp // 2 + 1)))
    den = fr * fr + fi * fi + lam
    return jax.lax.complex((fr + lam) / den, -fi / den)


def _filter_scale1(yp: jax.Array, kernel: jax.Array, lam: jax.Array, g: Geometry) -> jax.Array:
    """Scale 1, default prior: irfft2(rfft2(yp)·M) on the padded NCHW grid (N, C, hp, wp)."""
    return jnp.fft.irfft2(jnp.fft.rfft2(yp) * _scale1_transfer(kernel, lam, g), s=(g.hp, g.wp))


def _upsample_default_prior(
    x: jax.Array, yp: jax.Array, kernel: jax.Array, lam: jax.Array, g: Geometry
) -> jax.Array:
    """Scale > 1, default prior: X0 + corr_K(zero-insertion ↑s of w), cropped; NHWC output.

    ``x``: the unpadded input (N, H, W, C); ``yp``: it padded, NCHW (N, C, hp, wp).
    """
    s, p = g.scale, g.padding
    hp, wp = g.hp, g.wp
    wh = wp // 2 + 1
    # Q on the coarse half spectrum from the kernel spectrum at the s×s aliases of each frequency.
    rows = tuple(u + hp * j for j in range(s) for u in range(hp))
    cols = tuple(v + wp * j for j in range(s) for v in range(wh))
    fr, fi = _kernel_dft(kernel, s * hp, s * wp, rows, cols)
    dtype = fr.dtype
    box = np.outer(_box_rows(s * hp, s, rows), _box_rows(s * wp, s, cols))
    br, bi = jnp.asarray(box.real, dtype), jnp.asarray(box.imag, dtype)
    shape6 = (*fr.shape[:2], s, hp, s, wh)

    def alias_mean(a: jax.Array) -> jax.Array:
        return a.reshape(shape6).mean(axis=(2, 4))

    a0 = alias_mean(fr * fr + fi * fi)
    c1r = alias_mean(fr * br - fi * bi)
    c1i = alias_mean(fr * bi + fi * br)
    den = a0 + lam
    q = jax.lax.complex((1.0 - c1r) / den, -c1i / den)
    w = jnp.fft.irfft2(jnp.fft.rfft2(yp) * q, s=(hp, wp))  # (N, C, hp, wp)

    # Fine row s·i0 + φ takes tap a from coarse row i0 + δ when φ + a − ⌊kh/2⌋ = s·δ.
    def taps(k: int) -> dict[int, list[tuple[int, int]]]:
        out: dict[int, list[tuple[int, int]]] = {phi: [] for phi in range(s)}
        for phi in range(s):
            for a in range(k):
                if (phi + a - k // 2) % s == 0:
                    out[phi].append((a, (phi + a - k // 2) // s))
        return out

    th, tw = taps(g.kh), taps(g.kw)
    dh = [d for v in th.values() for _, d in v] or [0]
    dw = [d for v in tw.values() for _, d in v] or [0]
    lo_h, lo_w = min(dh), min(dw)
    win = _periodic_window(w, 2, p + lo_h, g.h + max(dh) - lo_h)
    win = _periodic_window(win, 3, p + lo_w, g.w + max(dw) - lo_w)
    win = jnp.transpose(win, (0, 2, 3, 1))  # NHWC window of w
    kern = kernel.astype(x.dtype)
    phases = []
    for phi in range(s):
        row = []
        for psi in range(s):
            acc = x
            for a, da in th[phi]:
                for b, db in tw[psi]:
                    part = win[:, da - lo_h : da - lo_h + g.h, db - lo_w : db - lo_w + g.w, :]
                    acc = acc + kern[:, a, b, :][:, None, None, :] * part
            row.append(acc)
        phases.append(jnp.stack(row, axis=3))  # (N, H, W, s, C)
    out = jnp.stack(phases, axis=2)  # (N, H, s, W, s, C)
    return out.reshape(g.n, s * g.h, s * g.w, g.c)


def _solve_with_prior(
    yp: jax.Array, x0p: jax.Array, kernel: jax.Array, lam: jax.Array, g: Geometry
) -> jax.Array:
    """Explicit prior: the solution on the padded fine NCHW grid (N, C, s·hp, s·wp).

    ``yp``: padded input NCHW (N, C, hp, wp); ``x0p``: padded prior NCHW (N, C, s·hp, s·wp).
    """
    s = g.scale
    hp, wp = g.hp, g.wp
    sh, sw = s * hp, s * wp
    half = sw // 2 + 1
    fy = jnp.fft.rfft2(yp)
    fx0 = jnp.fft.rfft2(x0p)
    if s == 1:
        fr, fi = _kernel_dft(kernel, sh, sw, tuple(range(sh)), tuple(range(half)))
        fk = jax.lax.complex(fr, fi)
        update = (fy - fk * fx0) / (fr * fr + fi * fi + lam)
        return jnp.fft.irfft2(fx0 + jnp.conj(fk) * update, s=(sh, sw))
    # Fine-grid kernel spectrum, full width (the aliases of a coarse frequency span all of it).
    fr, fi = _kernel_dft(kernel, sh, sw, tuple(range(sh)), tuple(range(sw)))
    fk_half = jax.lax.complex(fr[..., :half], fi[..., :half])
    a0 = (fr * fr + fi * fi).reshape(*fr.shape[:2], s, hp, s, wp).mean(axis=(2, 4))
    z = jnp.fft.irfft2(fk_half * fx0, s=(sh, sw))[..., ::s, ::s]  # (K ⊛ X0)↓s
    resid = jnp.fft.fft2(yp - z) / (a0 + lam)  # full coarse spectrum (N, C, hp, wp)
    tiled = jnp.tile(resid[..., np.arange(half) % wp], (1, 1, s, 1))
    return jnp.fft.irfft2(fx0 + jnp.conj(fk_half) * tiled, s=(sh, sw))


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
      ValueError: on malformed shapes or values, naming the argument; λ ≤ 0, NaN or inf when
        its value is known (outside ``jit``).

    Dtypes: ``kernel``, ``lam`` and ``x0`` are cast to ``x``'s dtype. float16 and bfloat16 inputs
    are solved in float32 (FFTs, transfer function, division) and the result is rounded to the
    input's dtype; float32 and float64 are solved in their own precision. On the golden cases
    (every 8th, ``python tests/test_converse2d_dtypes.py 8``) the relative RMS error of a
    bfloat16 call against the float64 solution of its rounded inputs is 1.65e-3 (median; float16:
    2.04e-4), equal (ratio 1.000, median and max) to that of rounding the float64 solution
    itself: the operator adds nothing measurable beyond the output rounding. Against the
    float64 result of the *unrounded* inputs the error is 2.8e-3 median, 2.7e-2 max (float16:
    3.4e-4, 5.1e-3): input rounding, amplified where ``|F_K|² ≈ λ``.

    Invalid λ under ``jit``: λ's value is unknown when a traced call is checked, so entries
    that are ≤ 0, NaN or inf are replaced by NaN and every output of the affected channels
    (all of them for a scalar λ) is NaN — never plausible numbers.

    Inside ``with use_implementation("reference"):`` calls run the literal Algorithm 1 instead.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 3))
      >>> k = jnp.full((3, 3, 3), 1 / 9)
      >>> converse2d(x, k, 1e-2, scale=2, padding=2, padding_mode="replicate").shape
      (1, 16, 16, 3)
    """
    if _IMPLEMENTATION.get() == "reference":
        return converse2d_reference(
            x, kernel, lam, scale=scale, padding=padding, padding_mode=padding_mode, x0=x0
        )
    g = check_args(x, kernel, lam, scale, padding, padding_mode, x0)
    s, p = g.scale, g.padding
    x = jnp.asarray(x)
    out_dtype = x.dtype
    dtype = solve_dtype(out_dtype)
    x = x.astype(dtype)
    k = jnp.asarray(kernel, dtype)
    k = k if g.per_sample_kernel else k[None]
    lam_b = _lam_nchw(lam, g, dtype)
    yp = _to_nchw_padded(x, p, padding_mode)

    if x0 is not None:
        x0p = _to_nchw_padded(jnp.asarray(x0, dtype), p * s, padding_mode)
        out = _solve_with_prior(yp, x0p, k, lam_b, g)
        return _from_nchw_cropped(out.astype(dtype), p * s).astype(out_dtype)
    if s == 1:
        return _from_nchw_cropped(_filter_scale1(yp, k, lam_b, g).astype(dtype), p).astype(out_dtype)
    return _upsample_default_prior(x, yp, k, lam_b, g).astype(out_dtype)
