"""Image files and captioned figures, with PIL and numpy only (no JAX, grain or TFDS).

Every tool of the project reads, writes and composes images here:

* **Reading** (:func:`read_image`, :func:`open_image`): any 8-bit file PIL decodes, as a uint8
  ``(H, W, channels)`` array -- ``channels=1`` is ITU-R BT.601 luma exactly as PIL's ``'L'``
  mode, ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16`` (0.299 R + 0.587 G + 0.114 B,
  rounded); ``channels=3`` is RGB (gray repeated, alpha dropped). 16-bit and float files are
  refused rather than clipped to a constant image. A file that cannot be decoded raises
  ``OSError`` naming it. :func:`image_files` lists a folder's images (:data:`IMAGE_EXTENSIONS`).
* **Writing** (:func:`write_png`): uint8 arrays as PNG, atomically (a reader never sees a
  partial file; :func:`converse_jax.utils.atomic.atomic_open`).
* **Figures** (:func:`captioned_grid`): rows of panels, each under a caption whose font scales
  with the panel size (:func:`font_px`), so captions stay readable on 24-px and 512-px panels.

Layout is HWC throughout (``(H, W)`` is accepted for gray where noted).
"""

from __future__ import annotations

import io
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from converse_jax.utils.atomic import atomic_open
from converse_jax.utils.paths import as_path, is_remote

__all__ = [
    "DECODE_ERRORS",
    "IMAGE_EXTENSIONS",
    "UnreadableImageError",
    "caption_height",
    "captioned_grid",
    "check_channels",
    "font_px",
    "image_files",
    "open_image",
    "pil_to_array",
    "read_image",
    "to_channels",
    "write_png",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File name suffixes (case-insensitive) taken as images."""

DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
"""What PIL raises on files it cannot decode (truncated, corrupt, foreign, too large)."""

_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class UnreadableImageError(OSError):
    """An image file that cannot be decoded; ``reason`` says why in one line.

    >>> err = UnreadableImageError("in/x.png", "image file is truncated")
    >>> str(err), err.reason
    ("cannot decode image 'in/x.png': image file is truncated", 'image file is truncated')
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"cannot decode image {os.fspath(path)!r}: {reason}")
        self.reason = reason


def check_channels(channels: int) -> int:
    """``channels`` as an int after checking it is 1 (gray) or 3 (RGB).

    >>> check_channels(3)
    3
    >>> check_channels(2)
    Traceback (most recent call last):
    ...
    ValueError: channels must be 1 or 3, got 2
    """
    try:
        c = operator.index(channels)
    except TypeError:
        raise ValueError(f"channels must be 1 or 3, got {channels!r}") from None
    if isinstance(channels, bool) or c not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return c


def pil_to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A PIL image as a C-contiguous uint8 ``(H, W, channels)`` array.

    8-bit modes (``1``, ``L``, ``P``, ``LA``, ``RGB``, ``RGBA``, ``CMYK``, ...) are converted with
    PIL (BT.601 luma for gray, channel repetition for RGB); 16-bit or float images raise
    ``ValueError`` (converting them to 8 bits would clip them to a near-constant image).

    >>> pil_to_array(Image.new("RGB", (3, 2), (255, 0, 0)), 1)[..., 0].tolist()
    [[76, 76, 76], [76, 76, 76]]
    >>> pil_to_array(Image.new("I;16", (3, 2)), 1)
    Traceback (most recent call last):
    ...
    ValueError: image mode 'I;16' (16-bit or float) is not supported; use 8-bit
    """
    channels = check_channels(channels)
    if image.mode in _WIDE_MODES:
        raise ValueError(f"image mode {image.mode!r} (16-bit or float) is not supported; use 8-bit")
    arr = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return np.ascontiguousarray(arr[:, :, None] if channels == 1 else arr)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """A uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` array with ``channels`` channels.

    The conversion of :func:`pil_to_array` (BT.601 luma; gray repeated to RGB; alpha dropped).

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


def open_image(path: str | os.PathLike[str], channels: int) -> tuple[np.ndarray, bool]:
    """The image at ``path`` as uint8 ``(H, W, channels)`` and whether the file holds colour.

    Raises:
      UnreadableImageError: the file cannot be decoded (truncated, corrupt, not an image,
        16-bit or float); the message names the file and the cause. A missing or unreadable file
        raises the ``OSError`` of ``open`` (which names it too).

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = write_png(Path(tmp.name) / "red.png", np.full((2, 3, 3), (255, 0, 0), np.uint8))
    >>> img, colour = open_image(Path(tmp.name) / "red.png", 1)
    >>> img.shape, int(img[0, 0, 0]), colour
    ((2, 3, 1), 76, True)
    >>> tmp.cleanup()
    """
    channels = check_channels(channels)
    try:
        with Image.open(io.BytesIO(as_path(path).read_bytes()) if is_remote(path) else path) as image:
            return pil_to_array(image, channels), image.mode in _COLOUR_MODES
    except DECODE_ERRORS as error:
        if isinstance(error, OSError) and getattr(error, "filename", None):  # already names the file
            raise
        text = " ".join(str(error).split()) or type(error).__name__
        if not isinstance(error, (OSError, ValueError)):
            text = f"{type(error).__name__}: {text}"
        raise UnreadableImageError(path, text) from error


def read_image(path: str | os.PathLike[str], channels: int) -> np.ndarray:
    """The image at ``path`` as a C-contiguous uint8 ``(H, W, channels)`` array (see :func:`open_image`).

    Args:
      path: an image file PIL can decode (8-bit modes).
      channels: 1 (BT.601 gray) or 3 (RGB; gray files repeated).

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> rgb = np.zeros((4, 6, 3), np.uint8); rgb[..., 0] = 255  # a red 4x6 picture
      >>> _ = write_png(Path(tmp.name) / "red.png", rgb)
      >>> img = read_image(Path(tmp.name) / "red.png", 3)
      >>> img.shape, img.dtype, bool(np.array_equal(img, rgb))
      ((4, 6, 3), dtype('uint8'), True)
      >>> data = (Path(tmp.name) / "red.png").read_bytes()
      >>> _ = (Path(tmp.name) / "cut.png").write_bytes(data[: len(data) // 2])  # truncated
      >>> read_image(Path(tmp.name) / "cut.png", 3)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      converse_jax.utils.images.UnreadableImageError: cannot decode image '.../cut.png': ...
      >>> tmp.cleanup()
    """
    return open_image(path, channels)[0]


def image_files(folder: str | os.PathLike[str], what: str = "path") -> tuple[Path, ...]:
    """The image files of ``folder`` (:data:`IMAGE_EXTENSIONS`, not recursive), sorted by name.

    Raises:
      ValueError: ``folder`` is not a folder or holds no image file (the message starts with ``what``).

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> for name in ("b.PNG", "a.jpg", "notes.txt"):
    ...     _ = (Path(tmp.name) / name).write_bytes(b"")
    >>> [p.name for p in image_files(tmp.name)]
    ['a.jpg', 'b.PNG']
    >>> tmp.cleanup()
    """
    root = as_path(folder, what)
    if not root.is_dir():
        raise ValueError(f"{what}: {str(root)!r} is not an existing folder of images")
    files = tuple(sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                         key=lambda p: p.name))
    if not files:
        raise ValueError(f"{what}: {str(root)!r} contains no image files (expected {', '.join(IMAGE_EXTENSIONS)})")
    return files


def _as_hwc(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"{name}: expected uint8 (H, W), (H, W, 1) or (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr[:, :, None] if arr.ndim == 2 else arr


def write_png(path: str | os.PathLike[str], img: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image as PNG, atomically.

    A temporary file in the target folder is renamed over ``path`` (the user's umask applies),
    so a reader never sees a partial file. The folder must exist.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.

    Example:
      >>> import tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
      >>> path = write_png(Path(tmp.name) / "x.png", img)
      >>> path.name, bool(np.array_equal(read_image(path, 3), img))
      ('x.png', True)
      >>> write_png(Path(tmp.name) / "y.png", img / 255)
      Traceback (most recent call last):
      ...
      ValueError: img: expected uint8 (H, W), (H, W, 1) or (H, W, 3), got float64 (4, 4, 3)
      >>> tmp.cleanup()
    """
    arr = _as_hwc(img, "img")
    path = as_path(path)
    with atomic_open(path, "wb") as f:
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(f, format="PNG")
    return path


def font_px(side: int) -> int:
    """Nominal caption font size in pixels for panels whose smaller side is ``side`` px.

    >>> font_px(24), font_px(256), font_px(512)
    (8, 16, 32)
    """
    return max(8, side // 16)


def caption_height(side: int, lines: int = 1) -> int:
    """Height in pixels of a ``lines``-line caption above panels whose smaller side is ``side`` px.

    >>> caption_height(256, 3), caption_height(64, 3), caption_height(24)
    (58, 34, 14)
    """
    return lines * (font_px(side) + 2) + 4


def _fit_font(lines: list[str], widths: list[int], px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at the largest size <= ``px`` at which each line fits its width."""
    while True:
        font = ImageFont.load_default(size=px)
        if px <= 4 or all(font.getlength(line) <= width - 2 for line, width in zip(lines, widths)):
            return font
        px -= 1


def captioned_grid(
    rows: Sequence[Sequence[np.ndarray]],
    captions: Sequence[Sequence[str]],
    *,
    gap: int = 4,
    border: int = 0,
) -> np.ndarray:
    """Rows of panels, each panel under its caption, on white, as one uint8 image.

    Every caption band is :func:`caption_height` ``(side, lines)`` px tall, with ``side`` the
    smallest panel side of the figure and ``lines`` the most lines of any caption (lines are
    separated by ``"\\n"``). One font is used for the whole figure: Pillow's default at
    :func:`font_px` ``(side)`` px, shrunk until every line fits its panel's width. A row is
    ``gap`` px below the previous one, panels ``gap`` px apart, and ``border`` px of white
    surround the figure. The panels' pixels are copied unchanged: panel ``c`` of row 0 sits at
    ``out[border + band : border + band + h, x0 : x0 + w]`` with ``x0 = border + sum(widths before
    it) + c * gap`` and ``band = caption_height(side, lines)``.

    Args:
      rows: uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` panels; the panels of a row share
        one height. Gray and RGB may be mixed (gray panels are then repeated to RGB).
      captions: one caption string per panel, shaped like ``rows``.
      gap: white pixels between panels and between rows.
      border: white pixels around the figure.

    Returns:
      uint8 ``(H_total, W_total)`` when every panel is gray, else ``(H_total, W_total, 3)``.

    Example:
      >>> a, b = np.zeros((20, 30), np.uint8), np.full((20, 10), 7, np.uint8)
      >>> row = captioned_grid([[a, b]], [["noisy 20.17 dB", "restored"]])
      >>> band = caption_height(10)  # the smallest panel side is 10
      >>> row.shape, bool((row[band:, 34:] == 7).all())  # panels are copied unchanged
      ((34, 44), True)
      >>> bool((row[:band, :30] < 128).any())  # some caption text was drawn
      True
    """
    if len(rows) == 0 or len(rows) != len(captions) or any(
        len(r) == 0 or len(r) != len(c) for r, c in zip(rows, captions)
    ):
        raise ValueError("captions: expected one caption per panel and at least one panel per row")
    arrays = [[_as_hwc(p, f"rows[{i}][{j}]") for j, p in enumerate(row)] for i, row in enumerate(rows)]
    for i, row in enumerate(arrays):
        if any(a.shape[0] != row[0].shape[0] for a in row):
            raise ValueError(f"rows[{i}]: expected panels of one height, got {[a.shape[0] for a in row]}")
    side = min(min(a.shape[:2]) for row in arrays for a in row)
    texts = [[str(c).split("\n") for c in row] for row in captions]
    band = caption_height(side, max(len(t) for row in texts for t in row))
    widths = [sum(a.shape[1] for a in row) + gap * (len(row) - 1) for row in arrays]
    heights = [band + row[0].shape[0] for row in arrays]
    colour = any(a.shape[2] == 3 for row in arrays for a in row)
    canvas = Image.new("RGB" if colour else "L", (max(widths) + 2 * border,
                                                  sum(heights) + gap * (len(rows) - 1) + 2 * border), "white")
    lines = [(line, a.shape[1]) for row, text in zip(arrays, texts) for a, t in zip(row, text) for line in t]
    font = _fit_font([line for line, _ in lines], [w for _, w in lines], font_px(side))
    draw, top = ImageDraw.Draw(canvas), border
    for row, text, height in zip(arrays, texts, heights):
        left = border
        for panel, caption in zip(row, text):
            for i, line in enumerate(caption):
                draw.text((left + 1, top + 2 + i * (font_px(side) + 2)), line, fill="black", font=font)
            if colour:
                panel = np.repeat(panel, 3 // panel.shape[2], axis=2)
            canvas.paste(Image.fromarray(panel if colour else panel[:, :, 0]), (left, top + band))
            left += panel.shape[1] + gap
        top += height + gap
    return np.asarray(canvas)
