"""Sources of clean (high-resolution) training and validation images.

Every source yields ``(name, image)`` pairs where ``image`` is a uint8 numpy array of layout HWC
with the requested channel count:

* ``channels=1``: gray, converted from colour with ITU-R BT.601 luma exactly as PIL's ``'L'``
  mode, ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16`` (i.e. 0.299 R + 0.587 G + 0.114 B,
  rounded);
* ``channels=3``: RGB; gray images are repeated over the three channels, an alpha channel is
  dropped (PIL ``'RGB'`` conversion).

Three kinds of source:

* :func:`embedded_images` -- sample photographs shipped inside scikit-image's wheel (no download,
  works offline and on Colab), with a fixed train/validation split;
* :func:`folder_images` -- a plain folder of png/jpg/bmp/tif files (e.g. Train400, BSD400,
  DIV2K_train_HR), decoded lazily;
* :func:`converse_jax.data.tfds_folder.tfds_images` -- a prepared TFDS dataset, read TF-free.

Lazy sources are random-access sequences (``len`` and integer indexing), so they can be handed to
``grain.MapDataset.source`` directly.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# scikit-image 0.26 sample images that load from the wheel without pooch or a download, are
# natural photographs (no synthetic patterns, binary masks or alpha logos) and are at least
# 172 pixels on each side.  ``cat`` is left out: it is the same picture as ``chelsea``.
EMBEDDED_VALIDATION: tuple[str, ...] = ("camera", "chelsea", "coins")
"""Held-out embedded images.  ``camera`` is the cameraman of Set12, so it must not be trained on."""

EMBEDDED_TRAIN: tuple[str, ...] = (
    "astronaut",
    "brick",
    "cell",
    "clock",
    "coffee",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
"""Embedded training images (disjoint from :data:`EMBEDDED_VALIDATION`)."""

EMBEDDED_SPLITS: dict[str, tuple[str, ...]] = {
    "train": EMBEDDED_TRAIN,
    "validation": EMBEDDED_VALIDATION,
}


def check_channels(channels: int) -> int:
    """Returns ``channels`` as an int after checking it is 1 (gray) or 3 (RGB)."""
    try:
        c = operator.index(channels)
    except TypeError:
        raise ValueError(f"channels must be 1 or 3, got {channels!r}") from None
    if isinstance(channels, bool) or c not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return c


def pil_to_array(image: Image.Image, channels: int) -> np.ndarray:
    """Converts a PIL image to a uint8 HWC array with ``channels`` (1 or 3) channels.

    8-bit modes (``1``, ``L``, ``P``, ``LA``, ``RGB``, ``RGBA``, ``CMYK``, ...) are converted with
    PIL (BT.601 luma for gray, channel repetition for RGB); 16-bit or float images are rejected.

    Returns:
      Array (H, W, channels), dtype uint8, C-contiguous.
    """
    channels = check_channels(channels)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise ValueError(f"image mode {image.mode!r} (16-bit or float) is not supported; use 8-bit")
    converted = image.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(converted, dtype=np.uint8)
    if channels == 1:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Converts a uint8 image (HW, HW1, HW3 or HW4) to uint8 HWC with ``channels`` channels.

    Same conversion as :func:`pil_to_array` (BT.601 luma like PIL ``'L'``; gray repeated to RGB;
    alpha dropped).

    >>> rgb = np.array([[[255, 0, 0], [10, 20, 30]]], dtype=np.uint8)
    >>> to_channels(rgb, 1)[..., 0]
    array([[76, 18]], dtype=uint8)
    """
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"img must be uint8, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"img must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {img.shape}")
    return pil_to_array(Image.fromarray(img), channels)


def read_image(path: str | os.PathLike, channels: int) -> np.ndarray:
    """Reads an image file into a uint8 (H, W, channels) array (see :func:`pil_to_array`).

    Args:
      path: an image file PIL can decode (8-bit modes).
      channels: 1 (BT.601 gray) or 3 (RGB; gray files repeated).

    Returns:
      uint8 array (H, W, channels), C-contiguous.

    Raises:
      OSError: the file cannot be decoded (truncated, corrupt, not an image, unsupported mode);
        the message names the file and the cause.  A missing file raises PIL's
        ``FileNotFoundError`` (which names it too).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> rgb = np.zeros((4, 6, 3), np.uint8); rgb[..., 0] = 255  # a red 4x6 picture
      >>> Image.fromarray(rgb).save(Path(tmp.name) / "red.png")
      >>> img = read_image(Path(tmp.name) / "red.png", 3)
      >>> img.shape, img.dtype, bool(np.array_equal(img, rgb))
      ((4, 6, 3), dtype('uint8'), True)
      >>> gray = read_image(Path(tmp.name) / "red.png", 1)  # BT.601 luma of pure red
      >>> gray.shape, int(gray[0, 0, 0])
      ((4, 6, 1), 76)
      >>> data = (Path(tmp.name) / "red.png").read_bytes()
      >>> _ = (Path(tmp.name) / "cut.png").write_bytes(data[: len(data) // 2])  # truncated
      >>> read_image(Path(tmp.name) / "cut.png", 3)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      OSError: cannot decode image '.../cut.png': ...
      >>> tmp.cleanup()
    """
    try:
        with Image.open(path) as image:
            return pil_to_array(image, channels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        if getattr(error, "filename", None):  # FileNotFoundError & co. already name the file
            raise
        raise OSError(f"cannot decode image {os.fspath(path)!r}: {error}") from error


@functools.lru_cache(maxsize=None)
def _embedded(name: str, channels: int) -> np.ndarray:
    import skimage.data  # local import: only this source needs scikit-image

    arr = to_channels(np.asarray(getattr(skimage.data, name)()), channels)
    arr.setflags(write=False)
    return arr


def embedded_images(split: str, channels: int) -> list[tuple[str, np.ndarray]]:
    """Sample photographs from scikit-image's wheel with a fixed train/validation split.

    ``split='train'`` gives the 14 images of :data:`EMBEDDED_TRAIN` (astronaut, brick, cell,
    clock, coffee, grass, gravel, hubble_deep_field, immunohistochemistry, moon, page, retina,
    rocket, text); ``split='validation'`` gives :data:`EMBEDDED_VALIDATION` (camera, chelsea,
    coins).  Nothing is downloaded.  Sizes range from 172x448 (text) to 1411x1411 (retina).

    Args:
      split: ``'train'`` or ``'validation'``.
      channels: 1 (BT.601 gray) or 3 (RGB; gray pictures repeated).

    Returns:
      List of ``(name, image)`` in the order above; ``image`` is a read-only uint8 array
      (H, W, channels), cached across calls.

    Example:
      >>> [(name, img.shape) for name, img in embedded_images("validation", 1)]
      [('camera', (512, 512, 1)), ('chelsea', (300, 451, 1)), ('coins', (303, 384, 1))]
      >>> embedded_images("validation", 1)[0][1].flags.writeable
      False
    """
    if split not in EMBEDDED_SPLITS:
        raise ValueError(f"split must be one of {sorted(EMBEDDED_SPLITS)}, got {split!r}")
    channels = check_channels(channels)
    return [(name, _embedded(name, channels)) for name in EMBEDDED_SPLITS[split]]


class FolderImages(Sequence):
    """Lazy random-access sequence of ``(name, uint8 HWC image)`` over the image files of a folder.

    Files (extensions :data:`IMAGE_EXTENSIONS`, case-insensitive; sub-folders are not searched)
    are sorted by file name; ``name`` is the file name without extension.  Each access decodes the
    file again (nothing is cached), so large folders such as DIV2K cost no memory.  Picklable.

    Args:
      path: an existing folder with at least one image file (``ValueError`` otherwise).
      channels: 1 (BT.601 gray) or 3 (RGB).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(Path(tmp.name) / "b.png")
      >>> Image.fromarray(np.zeros((4, 4), np.uint8)).save(Path(tmp.name) / "a.bmp")
      >>> _ = (Path(tmp.name) / "notes.txt").write_text("not an image")
      >>> images = FolderImages(tmp.name, channels=3)
      >>> len(images), [(name, img.shape) for name, img in images]  # sorted, .txt skipped
      (2, [('a', (4, 4, 3)), ('b', (8, 6, 3))])
      >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike, channels: int):
        self.channels = check_channels(channels)
        root = Path(path)
        if not root.is_dir():
            raise ValueError(f"path {str(root)!r} is not an existing folder of images")
        self.files: tuple[Path, ...] = tuple(
            sorted(
                (p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                key=lambda p: p.name,
            )
        )
        if not self.files:
            raise ValueError(
                f"path {str(root)!r} contains no image files (expected {', '.join(IMAGE_EXTENSIONS)})"
            )
        self.path = root

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray]:
        index = operator.index(index)
        if not -len(self.files) <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} images")
        path = self.files[index]
        return path.stem, read_image(path, self.channels)

    def __repr__(self) -> str:
        return f"FolderImages({str(self.path)!r}, channels={self.channels}, n={len(self)})"


def folder_images(path: str | os.PathLike, channels: int) -> FolderImages:
    """Images of a plain folder (png/jpg/jpeg/bmp/tif/tiff), sorted by file name, decoded lazily.

    Args:
      path: an existing folder containing at least one image file.
      channels: 1 (BT.601 gray) or 3 (RGB).

    Returns:
      A :class:`FolderImages` sequence of ``(name, image)`` with ``image`` uint8
      (H, W, channels).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> Image.fromarray(np.full((16, 12, 3), 200, np.uint8)).save(Path(tmp.name) / "x.png")
      >>> name, img = folder_images(tmp.name, 1)[0]
      >>> name, img.shape, img.dtype, int(img[0, 0, 0])
      ('x', (16, 12, 1), dtype('uint8'), 200)
      >>> tmp.cleanup()
      >>> folder_images(tmp.name, 1)  # the folder is gone  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: path '...' is not an existing folder of images
    """
    return FolderImages(path, channels)
