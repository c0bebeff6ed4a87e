"""Image degradations of the official test protocols and training pipelines (numpy, HWC).

Bit-exact reproductions of the KAIR helpers the official ``main_test_*.py`` scripts use
(golden ``degradations.npz`` section 7): ``uint2single``, ``single2uint``, ``modcrop``, the
legacy-numpy Gaussian noise, SciPy's circular ``ndimage.convolve(..., mode='wrap')`` on uint8
images (truncating store), MATLAB bicubic downsampling, and the three per-task input builders
``denoise_input``, ``sr_input`` and ``deblur_input``.

Images are ``(H, W)`` or ``(H, W, C)`` (HWC), uint8 on 0..255 or float in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from converse_jax.protocol.imresize import imresize
from converse_jax.utils.validate import check_int, check_level

__all__ = [
    "uint2single",
    "single2uint",
    "modcrop",
    "add_gaussian_noise",
    "circular_blur_uint8",
    "circular_blur",
    "bicubic_downsample",
    "denoise_input",
    "sr_input",
    "deblur_input",
]

# SciPy's ndimage filters skip weights whose magnitude is at most DBL_EPSILON.
_SKIP_WEIGHT = np.finfo(np.float64).eps


def _check_image(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C) with H, W >= 1, got {arr.shape}")
    return arr


def _check_uint8(img: np.ndarray, name: str) -> np.ndarray:
    arr = _check_image(img, name)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {arr.dtype}")
    return arr


def _check_float(img: np.ndarray, name: str) -> np.ndarray:
    arr = _check_image(img, name)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must have a float dtype, got {arr.dtype}")
    return arr


def _check_kernel(kernel: np.ndarray) -> np.ndarray:
    k = np.asarray(kernel)
    if k.ndim != 2 or k.shape[0] < 1 or k.shape[1] < 1:
        raise ValueError(f"kernel must be a 2-D (kh, kw) array, got shape {k.shape}")
    if not (np.issubdtype(k.dtype, np.integer) or np.issubdtype(k.dtype, np.floating)):
        raise ValueError(f"kernel must have a real numeric dtype, got {k.dtype}")
    k = k.astype(np.float64)
    if not np.all(np.isfinite(k)):
        raise ValueError("kernel must be finite")
    return k


def uint2single(img: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 in [0, 1]: ``float32(u / 255.)`` (divided in float64, rounded once).

    Args:
      img: uint8 array of any shape.

    Returns:
      float32 array of the same shape. (Multiplying by a float32 ``1/255`` would differ.)

    >>> uint2single(np.array([0, 1, 255], np.uint8))
    array([0.        , 0.00392157, 1.        ], dtype=float32)
    """
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"img must be uint8, got {arr.dtype}")
    return (arr / 255.0).astype(np.float32)


def single2uint(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8: ``uint8(round(clip(x, 0, 1) * 255))``, round half to even.

    The clip and the product are evaluated in ``img``'s float dtype, as the official code does.

    >>> single2uint(np.array([-0.1, 0.5, 1.2], np.float32))
    array([  0, 128, 255], dtype=uint8)
    """
    arr = np.asarray(img)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"img must have a float dtype, got {arr.dtype}")
    return np.round(np.clip(arr, 0, 1) * arr.dtype.type(255.0)).astype(np.uint8)


def modcrop(img: np.ndarray, m: int) -> np.ndarray:
    """Keep the first ``H - H % m`` rows and ``W - W % m`` columns (a copy).

    Args:
      img: ``(H, W)`` or ``(H, W, C)`` image, any dtype.
      m: positive int modulus.

    >>> modcrop(np.zeros((10, 7, 3)), 4).shape
    (8, 4, 3)
    """
    arr = _check_image(img, "img")
    m = check_int(m, "m")
    h, w = arr.shape[0], arr.shape[1]
    return arr[: h - h % m, : w - w % m].copy()


def add_gaussian_noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add the official test-script AWGN: ``float32(float64(img) + N(0, sigma^2))``.

    The noise is ``numpy.random.RandomState(seed).normal(0, sigma, img.shape)`` (legacy
    MT19937 + legacy Gaussian, bit-identical to ``np.random.seed(seed); np.random.normal(...)``),
    added in float64 and rounded once to float32. No clipping.

    Args:
      img: float image of any shape (normally float32 in [0, 1]).
      sigma: noise standard deviation on the image's scale (e.g. ``25/255``).
      seed: legacy RandomState seed (the scripts reset it to 0 for every image).

    Returns:
      float32 array of ``img``'s shape.

    >>> add_gaussian_noise(np.zeros(3, np.float32), 1.0).tolist()  # seed 0: 1.764, 0.400, 0.979
    [1.764052391052246, 0.40015721321105957, 0.978738009929657]
    """
    arr = np.asarray(img)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"img must have a float dtype, got {arr.dtype}")
    sigma = check_level(sigma, "sigma")
    seed = check_int(seed, "seed", minimum=0, below=2**32)
    noise = np.random.RandomState(seed).normal(0, sigma, arr.shape)
    return (arr.astype(np.float64) + noise).astype(np.float32)


def _circular_conv_f64(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """SciPy-order circular convolution of ``(H, W[, C])`` with a 2-D kernel, float64 result.

    ``out[i, j] = sum_{p, q} k[p, q] * img[(i + kh//2 - p) mod H, (j + kw//2 - q) mod W]``,
    realised as SciPy does: correlate with the flipped kernel ``w = k[::-1, ::-1]`` centred at
    ``((kh-1)//2, (kw-1)//2)``, taps visited row-major, weights ``|w| <= eps`` skipped, float64
    products added one at a time starting from 0 (no fused multiply-add).
    """
    kh, kw = kernel.shape
    w = kernel[::-1, ::-1]
    # Centre of the flipped kernel in SciPy's correlation (convolve, origin 0): (k-1)//2.
    ch, cw = (kh - 1) // 2, (kw - 1) // 2
    h, wd = img.shape[0], img.shape[1]
    # Wrap-padded copy: padded[a, b] = img[(a - ch) mod H, (b - cw) mod W].
    rows = (np.arange(h + kh - 1) - ch) % h
    cols = (np.arange(wd + kw - 1) - cw) % wd
    padded = img.astype(np.float64)[rows][:, cols]
    acc = np.zeros((h, wd) + img.shape[2:], dtype=np.float64)
    tmp = np.empty_like(acc)
    for p in range(kh):
        for q in range(kw):
            weight = w[p, q]
            if abs(weight) <= _SKIP_WEIGHT:
                continue
            np.multiply(padded[p : p + h, q : q + wd], weight, out=tmp)
            acc += tmp
    return acc


def circular_blur_uint8(img_uint8: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Official deblurring blur: ``scipy.ndimage.convolve(img_uint8, kernel[..., None], mode='wrap')``.

    Each channel gets the circular 2-D convolution
    ``out[i, j] = sum_{p, q} k[p, q] * img[(i + kh//2 - p) mod H, (j + kw//2 - q) mod W]``
    (SciPy's centring; ``(3, 3)`` for 7x7), summed in SciPy's exact order in float64, then
    stored into uint8 the way SciPy does with a C cast: **truncation toward zero** (not
    rounding). Out-of-range sums wrap modulo 256 as observed on x86-64 (impossible for
    non-negative kernels summing to 1).

    Args:
      img_uint8: uint8 ``(H, W)`` or ``(H, W, C)`` image.
      kernel: 2-D ``(kh, kw)`` real kernel (converted to float64, as SciPy does).

    Returns:
      uint8 array of ``img_uint8``'s shape.

    >>> img = np.full((4, 4), 10, np.uint8)
    >>> circular_blur_uint8(img, np.full((3, 3), 1 / 9))[0, 0]  # 9 * (10/9) lands below 10
    np.uint8(9)
    """
    arr = _check_uint8(img_uint8, "img_uint8")
    acc = _circular_conv_f64(arr, _check_kernel(kernel))
    return np.mod(np.trunc(acc).astype(np.int64), 256).astype(np.uint8)


def circular_blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular 2-D convolution of a float image (the float counterpart of ``circular_blur_uint8``).

    ``out[i, j, c] = sum_{p, q} k[p, q] * img[(i + kh//2 - p) mod H, (j + kw//2 - q) mod W, c]``
    (``scipy.ndimage.convolve(..., mode='wrap')``), accumulated in float64 in SciPy's order and
    returned in ``img``'s dtype. No clipping, no rounding.

    Args:
      img: float ``(H, W)`` or ``(H, W, C)`` image.
      kernel: 2-D ``(kh, kw)`` real kernel.

    >>> x = np.zeros((5, 5), np.float32); x[0, 0] = 1
    >>> k = np.arange(9.0).reshape(3, 3)
    >>> circular_blur(x, k)[:2, :2]  # delta at (0, 0) -> kernel centred there (wrapped)
    array([[4., 5.],
           [7., 8.]], dtype=float32)
    """
    arr = _check_float(img, "img")
    return _circular_conv_f64(arr, _check_kernel(kernel)).astype(arr.dtype)


def bicubic_downsample(hr: np.ndarray, sf: int) -> np.ndarray:
    """MATLAB bicubic ``x1/sf`` downsampling with antialiasing, float32 (official SR pipeline).

    ``imresize(hr, 1/sf, antialiasing=True, precision="float32")``: output
    ``(ceil(H/sf), ceil(W/sf)[, C])``, float32, not clipped or quantised.

    Args:
      hr: float ``(H, W)`` or ``(H, W, C)`` image in [0, 1] (normally float32, modcropped to sf).
      sf: positive int scale factor.

    Returns:
      float32 ``(ceil(H/sf), ceil(W/sf)[, C])`` image.

    Example:
      >>> lr = bicubic_downsample(np.full((8, 6, 3), 0.5, np.float32), 2)
      >>> lr.shape, lr.dtype
      ((4, 3, 3), dtype('float32'))
      >>> bool(np.allclose(lr, 0.5))  # the bicubic weights sum to one
      True
    """
    arr = _check_float(hr, "hr")
    sf = check_int(sf, "sf")
    return imresize(arr, 1 / sf, True, precision="float32")


def denoise_input(clean_uint8: np.ndarray, sigma_255: float, seed: int = 0) -> np.ndarray:
    """Noisy network input of the official denoising test (``main_test_converse_dncnn.py``).

    Official steps: ``img_L = uint2single(img_H)``; ``np.random.seed(seed)``;
    ``img_L += np.random.normal(0, sigma_255/255., img_L.shape)`` (float64 add, float32 store,
    no clipping).

    Args:
      clean_uint8: uint8 ``(H, W)`` or ``(H, W, C)`` clean image (gray tests: ``(H, W, 1)``).
      sigma_255: noise level on the 0..255 scale (e.g. 25).
      seed: noise seed, reset to it for every image (0 in the scripts).

    Returns:
      float32 noisy image of the input's shape.

    Example:
      >>> noisy = denoise_input(np.zeros((1, 3, 1), np.uint8), 255)  # sigma 255/255 = 1
      >>> noisy.shape, noisy.dtype
      ((1, 3, 1), dtype('float32'))
      >>> [round(float(v), 3) for v in noisy.ravel()]  # the seed-0 legacy normals
      [1.764, 0.4, 0.979]
    """
    arr = _check_uint8(clean_uint8, "clean_uint8")
    sigma_255 = check_level(sigma_255, "sigma_255")
    return add_gaussian_noise(uint2single(arr), sigma_255 / 255.0, seed)


def sr_input(hr_uint8: np.ndarray, sf: int) -> tuple[np.ndarray, np.ndarray]:
    """HR reference and LR input of the official SR test (``main_test_converse_srresnet.py``).

    Official steps: ``img = uint2single(hr)``, ``img = modcrop(img, sf)``,
    ``lr = imresize_np(img, 1/sf)`` (antialiasing on, float32, not quantised); the PSNR/SSIM
    reference is ``modcrop(hr_uint8, sf)``.

    Args:
      hr_uint8: uint8 ``(H, W, 3)`` (or any ``(H, W[, C])``) HR image.
      sf: positive int scale factor.

    Returns:
      ``(hr_uint8 modcropped to sf, lr float32 of shape (H//sf, W//sf[, C]))``.

    Example:
      >>> hr, lr = sr_input(np.full((10, 9, 3), 51, np.uint8), 4)
      >>> hr.shape, hr.dtype, lr.shape, lr.dtype
      ((8, 8, 3), dtype('uint8'), (2, 2, 3), dtype('float32'))
      >>> bool(np.allclose(lr, 0.2))  # 51/255, a flat image stays flat
      True
    """
    arr = _check_uint8(hr_uint8, "hr_uint8")
    sf = check_int(sf, "sf")
    hr = modcrop(arr, sf)
    return hr, bicubic_downsample(uint2single(hr), sf)


def deblur_input(
    img_uint8: np.ndarray,
    kernel: np.ndarray,
    sf: int = 1,
    sigma_255: float = 2.55,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """HR reference and network input of the official deblurring test (``main_test_converse_usrnet.py``).

    Official steps: ``img_H = modcrop(img, lcm(sf, 8))``;
    ``img_L = ndimage.convolve(img_H, kernel[..., None], mode='wrap')`` on uint8 (truncating);
    ``img_L = img_L[0::sf, 0::sf]``; ``img_L = uint2single(img_L)``; ``np.random.seed(seed)``;
    ``img_L += np.random.normal(0, sigma_255/255., img_L.shape)`` (float64 add, float32 store,
    unclipped). Note ``2.55/255 = 0.009999999999999998``.

    Args:
      img_uint8: uint8 ``(H, W, 3)`` (or any ``(H, W[, C])``) image.
      kernel: 2-D blur kernel, e.g. the 7x7 float64 ``kernel_<i>.npy``.
      sf: positive int downsampling factor (1 for the deblurring table).
      sigma_255: noise level on the 0..255 scale.
      seed: noise seed (0 in the script).

    Returns:
      ``(img_H uint8 modcropped to lcm(sf, 8), img_L float32 of shape (H'/sf, W'/sf[, C]))``.

    Example:
      >>> img = np.random.default_rng(0).integers(0, 256, (20, 17, 3), dtype=np.uint8)
      >>> delta = np.zeros((7, 7)); delta[3, 3] = 1  # a blur that changes nothing
      >>> hr, lr = deblur_input(img, delta, sigma_255=0)
      >>> hr.shape, lr.shape, lr.dtype  # modcropped to 8
      ((16, 16, 3), (16, 16, 3), dtype('float32'))
      >>> bool(np.array_equal(lr, uint2single(hr)))
      True
      >>> deblur_input(img, delta, sf=2)[1].shape  # every second pixel
      (8, 8, 3)
    """
    arr = _check_uint8(img_uint8, "img_uint8")
    sf = check_int(sf, "sf")
    sigma_255 = check_level(sigma_255, "sigma_255")
    img_h = modcrop(arr, math.lcm(sf, 8))
    blurred = circular_blur_uint8(img_h, kernel)[0::sf, 0::sf]
    return img_h, add_gaussian_noise(uint2single(blurred), sigma_255 / 255.0, seed)
