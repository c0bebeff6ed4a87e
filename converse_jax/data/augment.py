"""Geometric augmentation and random cropping of training patches (KAIR ``augment_img``).

The eight modes are the dihedral group of the square, numbered as in KAIR's ``augment_img``
(``rot90`` turns counter-clockwise in the (H, W) plane, ``flipud`` reverses H):

====  ==========================
mode  transform
====  ==========================
0     identity
1     ``flipud(rot90(x))`` (transpose)
2     ``flipud(x)``
3     ``rot90(x, 3)``
4     ``flipud(rot90(x, 2))`` (left-right flip)
5     ``rot90(x)``
6     ``rot90(x, 2)``
7     ``flipud(rot90(x, 3))`` (anti-transpose)
====  ==========================

All functions work on numpy arrays of layout HW or HWC (any dtype) and never touch the channel
axis.

>>> import numpy as np
>>> x = np.arange(6).reshape(2, 3)
>>> augment(x, 5)
array([[2, 5],
       [1, 4],
       [0, 3]])
>>> bool(np.array_equal(augment_inverse(augment(x, 3), 3), x))
True
"""

from __future__ import annotations

import operator

import numpy as np

from converse_jax.utils.validate import check_int

NUM_MODES = 8

# mode -> mode of the inverse transform (rot90 and rot90**3 undo each other; the rest are
# involutions).
_INVERSE_MODE = (0, 1, 2, 5, 4, 3, 6, 7)


def _check_image(img: np.ndarray, name: str = "img") -> np.ndarray:
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"{name} must have layout HW or HWC, got shape {img.shape}")
    return img


def _check_mode(mode: int) -> int:
    try:
        m = operator.index(mode)
    except TypeError:
        raise ValueError(f"mode must be an integer in 0..7, got {mode!r}") from None
    if isinstance(mode, bool) or not 0 <= m < NUM_MODES:
        raise ValueError(f"mode must be an integer in 0..7, got {mode!r}")
    return m


def augment(img: np.ndarray, mode: int) -> np.ndarray:
    """Applies KAIR augmentation ``mode`` (0..7) to an HW or HWC image.

    Args:
      img: array of shape (H, W) or (H, W, C), any dtype.
      mode: integer in 0..7 (see the module table).

    Returns:
      A C-contiguous array of the same dtype; (H, W) are swapped for modes 1, 3, 5 and 7.

    Example:
      >>> x = np.arange(6).reshape(2, 3, 1)  # HWC, one channel
      >>> augment(x, 1).shape  # transpose: H and W swap, C untouched
      (3, 2, 1)
      >>> augment(x, 2)[..., 0]  # flipud: rows reversed
      array([[3, 4, 5],
             [0, 1, 2]])
    """
    img = _check_image(img)
    m = _check_mode(mode)
    if m == 0:
        out = img
    elif m == 1:
        out = np.flipud(np.rot90(img))
    elif m == 2:
        out = np.flipud(img)
    elif m == 3:
        out = np.rot90(img, k=3)
    elif m == 4:
        out = np.flipud(np.rot90(img, k=2))
    elif m == 5:
        out = np.rot90(img)
    elif m == 6:
        out = np.rot90(img, k=2)
    else:
        out = np.flipud(np.rot90(img, k=3))
    return np.ascontiguousarray(out)


def inverse_mode(mode: int) -> int:
    """The mode ``m'`` with ``augment(augment(x, mode), m') == x`` for every image ``x``.

    Example:
      >>> [inverse_mode(m) for m in range(8)]  # the two quarter turns undo each other
      [0, 1, 2, 5, 4, 3, 6, 7]
      >>> x = np.arange(6).reshape(2, 3)
      >>> bool(np.array_equal(augment(augment(x, 3), inverse_mode(3)), x))
      True
    """
    return _INVERSE_MODE[_check_mode(mode)]


def augment_inverse(img: np.ndarray, mode: int) -> np.ndarray:
    """Undoes :func:`augment`: ``augment_inverse(augment(x, mode), mode) == x``.

    Args:
      img: array of shape (H, W) or (H, W, C) produced by ``augment(x, mode)``.
      mode: the mode that was applied, integer in 0..7.

    Returns:
      A C-contiguous array of the same dtype and the shape of the original ``x``.

    Example:
      >>> x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)  # HWC
      >>> [augment(x, m).shape[:2] for m in (0, 1)]
      [(2, 3), (3, 2)]
      >>> all(np.array_equal(augment_inverse(augment(x, m), m), x) for m in range(8))
      True
    """
    return augment(img, inverse_mode(mode))


def random_crop(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Crops a ``size`` x ``size`` window at a uniformly random position.

    The top-left corner is drawn as ``top = rng.integers(0, H - size + 1)`` then
    ``left = rng.integers(0, W - size + 1)`` (every valid position equally likely).

    Args:
      rng: numpy random generator (consumed: two integer draws).
      img: array of shape (H, W) or (H, W, C) with H, W >= size.
      size: side of the square crop, >= 1.

    Returns:
      A view of ``img`` of shape (size, size) or (size, size, C).

    Example:
      >>> img = np.arange(36).reshape(6, 6)  # pixel value = 6 * row + column
      >>> crop = random_crop(np.random.default_rng(0), img, 2)
      >>> crop.shape
      (2, 2)
      >>> top, left = divmod(int(crop[0, 0]), 6)  # where the window was taken
      >>> bool(np.array_equal(crop, img[top : top + 2, left : left + 2]))
      True
    """
    img = _check_image(img)
    size = check_int(size, "size")
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"img of size {h}x{w} is smaller than the crop size {size}")
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return img[top : top + size, left : left + size]


def random_crop_aligned(
    rng: np.random.Generator, lr: np.ndarray, hr: np.ndarray, lr_size: int, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crops aligned windows from a low-resolution image and its high-resolution original.

    As KAIR's ``DatasetSR``: an ``lr_size`` window at a random LR position (top, left) and the HR
    window ``hr[scale*top : scale*(top+lr_size), scale*left : scale*(left+lr_size)]``.

    Args:
      rng: numpy random generator (consumed: two integer draws).
      lr: array (h, w[, C]).
      hr: array (H, W[, C]) with H >= scale*h and W >= scale*w (a modcropped original).
      lr_size: LR crop side, >= 1, at most min(h, w).
      scale: integer scale factor >= 1.

    Returns:
      ``(lr_patch, hr_patch)`` of shapes (lr_size, lr_size[, C]) and
      (scale*lr_size, scale*lr_size[, C]) (views).

    Example:
      >>> lr = np.arange(16).reshape(4, 4)  # pixel value = 4 * row + column
      >>> hr = np.arange(64).reshape(8, 8)  # pixel value = 8 * row + column
      >>> lr_patch, hr_patch = random_crop_aligned(np.random.default_rng(0), lr, hr, 2, 2)
      >>> lr_patch.shape, hr_patch.shape
      ((2, 2), (4, 4))
      >>> top, left = divmod(int(lr_patch[0, 0]), 4)
      >>> bool(np.array_equal(hr_patch, hr[2 * top : 2 * top + 4, 2 * left : 2 * left + 4]))
      True
    """
    lr = _check_image(lr, "lr")
    hr = _check_image(hr, "hr")
    lr_size = check_int(lr_size, "lr_size")
    scale = check_int(scale, "scale")
    h, w = lr.shape[:2]
    if hr.shape[0] < scale * h or hr.shape[1] < scale * w:
        raise ValueError(
            f"hr of size {hr.shape[0]}x{hr.shape[1]} is smaller than scale*lr = "
            f"{scale * h}x{scale * w}"
        )
    if h < lr_size or w < lr_size:
        raise ValueError(f"lr of size {h}x{w} is smaller than lr_size {lr_size}")
    top = int(rng.integers(0, h - lr_size + 1))
    left = int(rng.integers(0, w - lr_size + 1))
    lr_patch = lr[top : top + lr_size, left : left + lr_size]
    hs = scale * lr_size
    hr_patch = hr[scale * top : scale * top + hs, scale * left : scale * left + hs]
    return lr_patch, hr_patch
