"""Sources of clean (high-resolution) training and validation images.

Every source yields ``(name, image)`` pairs where ``image`` is a uint8 numpy array of layout HWC
with the requested channel count:

``channels=1`` (gray, BT.601 luma) or ``channels=3`` (RGB), decoded and converted by
:mod:`converse_jax.utils.images`.

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

from converse_jax.utils.images import check_channels, image_files, read_image, to_channels
from converse_jax.utils.paths import as_path

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


@functools.cache
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

    Files (:func:`converse_jax.utils.images.image_files`: extensions case-insensitive; sub-folders are not searched)
    are sorted by file name; ``name`` is the file name without extension.  Each access decodes the
    file again (nothing is cached), so large folders such as DIV2K cost no memory.  Picklable.

    Args:
      path: an existing folder with at least one image file (``ValueError`` otherwise).
      channels: 1 (BT.601 gray) or 3 (RGB).

    Example:
      >>> import tempfile
      >>> from PIL import Image
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
        self.files: tuple[Path, ...] = image_files(path)
        self.path = as_path(path)

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
      >>> from PIL import Image
      >>> tmp = tempfile.TemporaryDirectory()
      >>> Image.fromarray(np.full((16, 12, 3), 200, np.uint8)).save(Path(tmp.name) / "x.png")
      >>> name, img = folder_images(tmp.name, 1)[0]
      >>> name, img.shape, img.dtype, int(img[0, 0, 0])
      ('x', (16, 12, 1), dtype('uint8'), 200)
      >>> tmp.cleanup()
      >>> folder_images(tmp.name, 1)  # the folder is gone  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: path: '...' is not an existing folder of images
    """
    return FolderImages(path, channels)
