"""MATLAB-compatible bicubic ``imresize`` (the official ``imresize_np``), in numpy.

The official test and training scripts (KAIR ``utils_image.imresize_np``) resize with MATLAB's
``imresize(img, s, 'bicubic')`` semantics:

* output size ``ceil(H*s) x ceil(W*s)``; the resize is separable, first along H, then along W;
* 1-D resampling of a length-``n`` signal to ``m = ceil(n*s)`` samples: output ``i = 1..m``
  (1-based) is centred at the input coordinate ``u = i/s + (1 - 1/s)/2``;
* Keys cubic kernel with ``a = -0.5``; for ``s < 1`` with antialiasing the kernel is widened to
  ``h(x) = s*k(s*x)`` with support ``4/s``;
* taps ``j = floor(u - support/2) + t``, ``t = 0 .. ceil(support)+1``, weights ``h(u - j)``
  normalised to sum 1 per output;
* 'symmetric' boundary (``... b a | a b ... y z | z y ...``); weights landing on the same input
  sample are added. No clipping, no rounding.

Each 1-D resampling is a dense ``(m, n)`` matrix, so ``out[..., c] = M_H @ img[..., c] @ M_W.T``.

The official code computes in **float32** throughout (sample positions, weights, buffers, the
intermediate after the H pass, the products). ``precision="float32"`` emulates it: positions and
weights are evaluated step by step in float32 exactly as the official routine does, the products
are accumulated in float64 and rounded to float32 after each pass. ``precision="float64"`` is the
exact formula in float64 (what the official code gives when every tensor is float64).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["resize_matrix", "imresize"]

_PRECISIONS = ("float32", "float64")


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel (a = -0.5), evaluated operation by operation in ``x.dtype``.

    The operation order follows the official routine so that float32 rounding is reproduced.
    """
    f = x.dtype.type
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (f(1.5) * absx3 - f(2.5) * absx2 + f(1.0)) * (absx <= 1)
    outer = (f(-0.5) * absx3 + f(2.5) * absx2 - f(4.0) * absx + f(2.0)) * ((absx > 1) & (absx <= 2))
    return inner + outer


def _taps(in_size: int, scale: float, antialiasing: bool, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Per-output tap weights ``(m, P)`` in ``dtype`` and 0-based, mirrored input indices ``(m, P)``."""
    out_size = math.ceil(in_size * scale)
    f = np.dtype(dtype).type
    widen = scale < 1 and antialiasing
    kernel_width = 4 / scale if widen else 4.0
    x = np.arange(1, out_size + 1, dtype=dtype)
    u = x / f(scale) + f(0.5 * (1 - 1 / scale))
    left = np.floor(u - f(kernel_width / 2))
    num_taps = math.ceil(kernel_width) + 2
    positions = left[:, None] + np.arange(num_taps, dtype=dtype)[None, :]
    distance = u[:, None] - positions
    weights = f(scale) * _cubic(distance * f(scale)) if widen else _cubic(distance)
    # Normalise by the correctly rounded row sum (float64 sum rounded once to ``dtype``); for
    # float32 this matches the official (pairwise/vectorised) float32 reduction best.
    weights = weights / np.sum(weights, axis=1, keepdims=True, dtype=np.float64).astype(dtype)
    index = positions.astype(np.int64) - 1  # 0-based
    index = np.mod(index, 2 * in_size)
    index = np.where(index >= in_size, 2 * in_size - 1 - index, index)
    return weights, index


def _check_resize_args(in_size: int, scale: float) -> None:
    if isinstance(in_size, bool) or not isinstance(in_size, (int, np.integer)) or in_size < 1:
        raise ValueError(f"in_size must be a positive int, got {in_size!r}")
    if not (isinstance(scale, (int, float, np.integer, np.floating)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite positive number, got {scale!r}")


@functools.lru_cache(maxsize=256)
def _matrix(in_size: int, scale: float, antialiasing: bool, precision: str) -> np.ndarray:
    """Cached read-only float64 ``(ceil(in_size*scale), in_size)`` matrix; weights in ``precision``."""
    weights, index = _taps(in_size, scale, antialiasing, np.float32 if precision == "float32" else np.float64)
    mat = np.zeros((weights.shape[0], in_size), dtype=np.float64)
    rows = np.broadcast_to(np.arange(weights.shape[0])[:, None], index.shape)
    np.add.at(mat, (rows, index), weights.astype(np.float64))
    mat.setflags(write=False)
    return mat


def resize_matrix(in_size: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """1-D MATLAB bicubic resampling matrix, exact formula in float64.

    Args:
      in_size: input length ``n >= 1``.
      scale: resize factor ``s > 0`` (e.g. ``1/4`` or ``3``); output length ``m = ceil(n*s)``.
      antialiasing: widen the kernel for ``s < 1`` (MATLAB default); no effect for ``s >= 1``.

    Returns:
      float64 array ``(m, n)``; entry ``[i, j]`` is the total weight of input sample ``j`` (0-based)
      in output ``i``, boundary samples mirrored ('symmetric'). Rows sum to 1. The array is a
      fresh writable copy of a cached matrix.

    >>> m = resize_matrix(16, 1/2)
    >>> m.shape
    (8, 16)
    >>> [round(v * 256) for v in m[3, 3:11]]  # an interior row: 8 taps
    [-3, -9, 29, 111, 111, 29, -9, -3]
    """
    _check_resize_args(in_size, scale)
    return _matrix(int(in_size), float(scale), bool(antialiasing), "float64").copy()


def imresize(
    img: np.ndarray, scale: float, antialiasing: bool = True, *, precision: str = "float32"
) -> np.ndarray:
    """MATLAB-style bicubic resize of an ``(H, W)`` or ``(H, W, C)`` image (``imresize_np``).

    Args:
      img: real array ``(H, W)`` or ``(H, W, C)``, any real dtype (values are not rescaled; with
        ``precision="float32"`` they are first rounded to float32, as the official code does).
      scale: resize factor ``s > 0``; output ``(ceil(H*s), ceil(W*s)[, C])``.
      antialiasing: widen the kernel when downscaling (MATLAB default True).
      precision: ``"float32"`` reproduces the official float32 code (float32 positions and
        weights, float32 intermediate after the H pass) and returns float32;
        ``"float64"`` evaluates the exact formula in float64 and returns float64.

    Returns:
      The resized image, same number of dimensions as ``img``; not clipped, not rounded.

    >>> x = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> imresize(x, 1/2).shape, imresize(x, 1/2).dtype
    ((2, 2), dtype('float32'))
    >>> float(imresize(np.ones((5, 7, 3)), 3, precision="float64").max())
    1.0
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"img must have shape (H, W) or (H, W, C), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"img must have a real numeric dtype, got {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"img must have H, W >= 1, got shape {arr.shape}")
    _check_resize_args(arr.shape[0], scale)
    scale = float(scale)
    aa = bool(antialiasing)
    mat_h = _matrix(arr.shape[0], scale, aa, precision)
    mat_w = _matrix(arr.shape[1], scale, aa, precision)
    if precision == "float32":
        x = arr.astype(np.float32).astype(np.float64)
    else:
        x = arr.astype(np.float64)
    tmp = np.tensordot(mat_h, x, axes=([1], [0]))  # (h, W[, C])
    if precision == "float32":
        tmp = tmp.astype(np.float32).astype(np.float64)
    out = np.tensordot(mat_w, tmp, axes=([1], [1]))  # (w, h[, C])
    out = np.ascontiguousarray(np.swapaxes(out, 0, 1))
    return out.astype(np.float32) if precision == "float32" else out
