"""Evaluation metrics of the official test scripts: ``rgb2ycbcr``, PSNR and SSIM (numpy).

These reproduce KAIR ``utils_image.rgb2ycbcr`` / ``calculate_psnr`` / ``calculate_ssim`` exactly
(golden ``degradations.npz`` section 7.3-7.4), including the dtype rules of ``rgb2ycbcr`` but
without its in-place mutation of float inputs.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["rgb2ycbcr", "calculate_psnr", "calculate_ssim"]

# BT.601 studio-range coefficients on the 0..255 scale (MATLAB rgb2ycbcr), columns Y, Cb, Cr.
_YCBCR_MATRIX = (
    (65.481, -37.797, 112.0),
    (128.553, -74.203, -93.786),
    (24.966, 112.0, -18.214),
)
_YCBCR_OFFSET = (16.0, 128.0, 128.0)


def rgb2ycbcr(img: np.ndarray, only_y: bool = True) -> np.ndarray:
    """RGB -> YCbCr (BT.601 studio range, as MATLAB), official KAIR dtype semantics.

    With R, G, B on the 0..255 scale, evaluated in float64 (products summed R, G, B in order)::

        Y  = ( 65.481 R + 128.553 G +  24.966 B) / 255 + 16
        Cb = (-37.797 R -  74.203 G + 112.0   B) / 255 + 128
        Cr = (112.0   R -  93.786 G -  18.214 B) / 255 + 128

    Args:
      img: ``(..., 3)`` RGB image, uint8 (values 0..255) or float (values in [0, 1]).
        For float input ``R, G, B = 255*x`` is computed in the input dtype first (float32
        rounding included), as the official code does. The caller's array is not modified
        (the official function multiplies float inputs by 255 in place; this one does not).
      only_y: return only Y, shape ``img.shape[:-1]``; otherwise ``img.shape`` with channels
        Y, Cb, Cr.

    Returns:
      Array of ``img``'s dtype: uint8 input -> round-half-even to uint8 (0..255 scale);
      float input -> the 0..255-scale result divided by 255 once more (so Y is in
      [16/255, 235/255]), not rounded.

    >>> rgb2ycbcr(np.array([[[255, 255, 255]]], dtype=np.uint8))
    array([[235]], dtype=uint8)
    >>> float(rgb2ycbcr(np.zeros((1, 1, 3)), only_y=True)[0, 0]) == 16 / 255
    True
    """
    arr = np.asarray(img)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"img must have 3 (RGB) channels in its last axis, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        rgb = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.floating):
        rgb = (arr * arr.dtype.type(255.0)).astype(np.float64)
    else:
        raise ValueError(f"img must be uint8 or a float dtype, got {arr.dtype}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    channels = (0,) if only_y else (0, 1, 2)
    planes = [
        (r * _YCBCR_MATRIX[0][c] + g * _YCBCR_MATRIX[1][c] + b * _YCBCR_MATRIX[2][c]) / 255.0 + _YCBCR_OFFSET[c]
        for c in channels
    ]
    out = planes[0] if only_y else np.stack(planes, axis=-1)
    if arr.dtype == np.uint8:
        return np.round(out).astype(np.uint8)
    return (out / 255.0).astype(arr.dtype)


def _crop_pair(img1: np.ndarray, img2: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of ``(H, W)`` / ``(H, W, C)`` images and crop ``border`` pixels per side, float64."""
    a, b = np.asarray(img1), np.asarray(img2)
    if a.shape != b.shape:
        raise ValueError(f"img1 and img2 must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"img1/img2 must have shape (H, W) or (H, W, C), got {a.shape}")
    for name, x in (("img1", a), ("img2", b)):
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"{name} must have a real numeric dtype, got {x.dtype}")
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"border must be a non-negative int, got {border!r}")
    h, w = a.shape[:2]
    if 2 * border >= h or 2 * border >= w:
        raise ValueError(f"border={border} leaves no pixels of a {h}x{w} image")
    a = a[border : h - border, border : w - border].astype(np.float64)
    b = b[border : h - border, border : w - border].astype(np.float64)
    return a, b


def calculate_psnr(img1: np.ndarray, img2: np.ndarray, border: int = 0) -> float:
    """PSNR in dB on the 0..255 scale, as the official ``calculate_psnr``.

    Args:
      img1, img2: same-shape ``(H, W)`` or ``(H, W, C)`` images on the 0..255 scale (normally
        uint8); converted to float64 without rescaling.
      border: pixels dropped on every side of both images before the comparison.

    Returns:
      ``20 log10(255 / sqrt(mse))`` with mse the mean squared difference over all remaining
      values (channels pooled); ``inf`` when the images are identical.

    >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 255
    >>> round(calculate_psnr(a, b), 4)  # mse = 255^2 / 16
    12.0412
    """
    a, b = _crop_pair(img1, img2, border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 20 * math.log10(255.0 / math.sqrt(mse))


@functools.lru_cache(maxsize=1)
def _gauss11() -> np.ndarray:
    """1-D Gaussian, 11 taps, sigma 1.5, sum 1 (``cv2.getGaussianKernel(11, 1.5)``)."""
    t = np.arange(11, dtype=np.float64) - 5.0
    g = np.exp(-(t * t) / (2 * 1.5**2))
    g = g / g.sum()
    g.setflags(write=False)
    return g


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """'Valid' correlation of a 2-D float64 array with the separable 11x11 Gaussian window."""
    g = _gauss11()
    rows = np.lib.stride_tricks.sliding_window_view(x, 11, axis=0) @ g  # (H-10, W)
    return np.lib.stride_tricks.sliding_window_view(rows, 11, axis=1) @ g  # (H-10, W-10)


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two float64 2-D planes (0..255 scale): mean of the valid-region SSIM map."""
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    mu1 = _filter_valid(x)
    mu2 = _filter_valid(y)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(x * x) - mu1_sq
    sigma2_sq = _filter_valid(y * y) - mu2_sq
    sigma12 = _filter_valid(x * y) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def calculate_ssim(img1: np.ndarray, img2: np.ndarray, border: int = 0) -> float:
    """SSIM on the 0..255 scale, as the official ``calculate_ssim``.

    After dropping ``border`` pixels per side (float64, no rescaling): Gaussian 11x11 window
    (sigma 1.5, sum 1) applied only where it lies fully inside the image ("valid", output
    ``(H-2b-10, W-2b-10)``); population moments ``sigma1^2 = <x^2> - mu1^2`` etc.;
    ``C1 = (0.01*255)^2``, ``C2 = (0.03*255)^2``;
    ``map = (2 mu1 mu2 + C1)(2 sigma12 + C2) / ((mu1^2 + mu2^2 + C1)(sigma1^2 + sigma2^2 + C2))``;
    SSIM = mean of the map.

    Args:
      img1, img2: same-shape ``(H, W)`` or ``(H, W, C)`` images on the 0..255 scale. For
        ``(H, W, C)`` the SSIM of each channel is computed on its own and the plain mean of the
        ``C`` values is returned (``C = 3``: the official RGB rule; ``C = 1``: the squeezed 2-D
        image). No Y conversion is done here.
      border: pixels dropped on every side; the cropped image must be at least 11x11.

    Returns:
      SSIM as a Python float (exactly 1.0 for identical images).

    >>> a = (np.arange(256).reshape(16, 16) % 251).astype(np.uint8)
    >>> calculate_ssim(a, a)
    1.0
    """
    a, b = _crop_pair(img1, img2, border)
    if a.shape[0] < 11 or a.shape[1] < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after the border crop, got {a.shape[:2]}")
    if a.ndim == 2:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[2])]))
