"""Argument checking shared by the fast and the reference reverse-convolution operators.

Everything here runs on static shapes at trace time, so it costs nothing inside ``jax.jit``.
Every failure is a ``ValueError`` that names the argument and what was expected.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PADDING_MODES: dict[str, str] = {
    # PyTorch name -> jnp.pad mode
    "circular": "wrap",
    "reflect": "reflect",
    "replicate": "edge",
    "constant": "constant",
}


@dataclass(frozen=True)
class Geometry:
    """Static sizes of one reverse-convolution call.

    Attributes:
      n, h, w, c: input batch, height, width, channels (unpadded, NHWC).
      scale: integer up-sampling factor s.
      padding: pixels added on every side before the solve (coarse grid).
      hp, wp: padded coarse size (h + 2p, w + 2p).
      kh, kw: kernel size.
      per_sample_kernel: whether the kernel has a leading batch axis.
      lam_shape: the shape ``lam`` is broadcast to: ``()``, ``(C,)`` or ``(N, C)``.
    """

    n: int
    h: int
    w: int
    c: int
    scale: int
    padding: int
    hp: int
    wp: int
    kh: int
    kw: int
    per_sample_kernel: bool
    lam_shape: tuple[int, ...]


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if ivalue < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {ivalue}")
    return ivalue


def _check_lam_positive(lam: Any) -> None:
    """Checks ``0 < lam < inf`` when its value is known at trace time (skipped for tracers;
    under ``jit`` :func:`invalid_lam_to_nan` makes the affected channels NaN instead)."""
    if isinstance(lam, jax.core.Tracer):
        return
    values = np.asarray(lam, np.float64)
    bad = ~((values > 0) & np.isfinite(values))
    if bad.any():
        raise ValueError(f"lam must be > 0 and finite everywhere, got {float(values[bad].ravel()[0])}")


def invalid_lam_to_nan(lam: jax.Array) -> jax.Array:
    """``lam`` with every entry that is not finite and > 0 (λ ≤ 0, NaN, ±inf) replaced by NaN.

    Under ``jax.jit`` λ's value is unknown when the arguments are checked; the solve divides by
    ``|F_K|² + λ``, which for λ ≤ 0 gives finite but meaningless numbers. Making λ NaN turns
    every output of the affected channels NaN (visible) instead. Valid entries pass unchanged
    (values and gradients).

    Example:
      >>> import jax.numpy as jnp
      >>> jnp.isnan(invalid_lam_to_nan(jnp.array([1e-2, 0.0, -1.0, jnp.inf, jnp.nan]))).tolist()
      [False, True, True, True, True]
    """
    return jnp.where((lam > 0) & jnp.isfinite(lam), lam, jnp.nan)


def solve_dtype(dtype: Any) -> np.dtype:
    """The dtype the solve runs in for an input of ``dtype``: float32 for the half-precision
    floats (float16, bfloat16; XLA's FFTs take only float32/float64), ``dtype`` itself otherwise.

    Example:
      >>> import jax.numpy as jnp
      >>> [str(solve_dtype(d)) for d in (jnp.bfloat16, jnp.float16, jnp.float32)]
      ['float32', 'float32', 'float32']
    """
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


def check_args(
    x: jax.Array,
    kernel: jax.Array,
    lam: Any,
    scale: Any,
    padding: Any,
    padding_mode: str,
    x0: jax.Array | None,
) -> Geometry:
    """Validates the arguments of ``converse2d`` and returns the static geometry."""
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must have shape (N, H, W, C) (NHWC), got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"x must be a real floating array, got dtype {jnp.result_type(x)}")
    n, h, w, c = jnp.shape(x)
    scale = _as_int(scale, "scale", 1)
    padding = _as_int(padding, "padding", 0)
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}"
        )

    kshape = jnp.shape(kernel)
    if len(kshape) == 3:
        per_sample = False
        kh, kw, kc = kshape
    elif len(kshape) == 4:
        per_sample = True
        kn, kh, kw, kc = kshape
        if kn != n:
            raise ValueError(
                f"kernel with a batch axis must have shape (N={n}, kh, kw, C), got {kshape}"
            )
    else:
        raise ValueError(
            f"kernel must have shape (kh, kw, C) or (N, kh, kw, C), got shape {kshape}"
        )
    if kc != c:
        raise ValueError(f"kernel has {kc} channels but x has C={c}; expected the same")

    lshape = tuple(jnp.shape(lam))
    if lshape not in ((), (1,), (c,), (n, c)):
        raise ValueError(
            f"lam must be a scalar, shape (C,)=({c},) or (N, C)=({n}, {c}), got shape {lshape}"
        )
    _check_lam_positive(lam)

    if padding > 0:
        if padding_mode == "reflect" and (padding >= h or padding >= w):
            raise ValueError(
                f"reflect padding must be smaller than the spatial size, got padding={padding} "
                f"for H={h}, W={w}"
            )
        if padding_mode == "circular" and (padding > h or padding > w):
            raise ValueError(
                f"circular padding must not exceed the spatial size (it would wrap more than "
                f"once), got padding={padding} for H={h}, W={w}"
            )
    hp, wp = h + 2 * padding, w + 2 * padding
    if kh > scale * hp or kw > scale * wp:
        raise ValueError(
            f"kernel of size ({kh}, {kw}) does not fit the padded, up-scaled FFT grid "
            f"({scale * hp}, {scale * wp}); use a larger padding or a smaller kernel"
        )
    if x0 is not None and tuple(jnp.shape(x0)) != (n, scale * h, scale * w, c):
        raise ValueError(
            f"x0 must have shape (N, H*scale, W*scale, C) = {(n, scale * h, scale * w, c)}, "
            f"got {tuple(jnp.shape(x0))}"
        )
    return Geometry(n, h, w, c, scale, padding, hp, wp, kh, kw, per_sample, lshape)


def pad_spatial(x: jax.Array, padding: int, padding_mode: str) -> jax.Array:
    """Pads the two spatial axes of an NHWC array by ``padding`` on every side.

    Modes have PyTorch's meanings: ``circular`` wraps, ``reflect`` mirrors without repeating the
    edge sample, ``replicate`` repeats the edge sample, ``constant`` pads zeros.
    """
    if padding == 0:
        return x
    widths = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    return jnp.pad(x, widths, mode=PADDING_MODES[padding_mode])


def crop_spatial(x: jax.Array, border: int) -> jax.Array:
    """Removes ``border`` pixels from every side of the spatial axes of an NHWC array."""
    if border == 0:
        return x
    return x[:, border:-border, border:-border, :]


def broadcast_lam(lam: Any, geom: Geometry, dtype: Any) -> jax.Array:
    """λ as an array of shape (N or 1, 1, 1, C) for broadcasting against NHWC arrays."""
    lam = invalid_lam_to_nan(jnp.asarray(lam, dtype))
    if lam.ndim == 2:
        return lam[:, None, None, :]
    return jnp.broadcast_to(lam.reshape(-1), (geom.c,))[None, None, None, :]
