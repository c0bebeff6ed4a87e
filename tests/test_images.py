"""``converse_jax.utils.images``: the one module that reads, writes and composes images.

Real PNG/BMP files throughout; the module's lightness is checked in a fresh interpreter.
"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import packages_imported_by
from PIL import Image

from converse_jax.utils.images import (
    UnreadableImageError,
    caption_height,
    captioned_grid,
    image_files,
    open_image,
    read_image,
    write_png,
)


def test_importable_without_jax_grain_or_tfds():
    assert (
        packages_imported_by("import converse_jax.utils.images", {"jax", "grain", "tensorflow_datasets", "flax"}) == []
    )


def test_reads_8_bit_files_and_refuses_16_bit_ones(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.bmp")
    img, colour = open_image(tmp_path / "rgb.bmp", 3)
    assert colour and img.dtype == np.uint8 and np.array_equal(img, rgb)
    gray = read_image(tmp_path / "rgb.bmp", 1)
    np.testing.assert_array_equal(gray[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))  # BT.601 luma
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(tmp_path / "deep.png")  # would clip to a flat 255
    with pytest.raises(UnreadableImageError, match="16-bit or float") as err:
        read_image(tmp_path / "deep.png", 1)
    assert "deep.png" in str(err.value) and err.value.reason.startswith("image mode 'I")
    (tmp_path / "cut.png").write_bytes((tmp_path / "rgb.bmp").read_bytes()[:30])
    with pytest.raises(UnreadableImageError, match="cut.png"):
        read_image(tmp_path / "cut.png", 3)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png", 3)


def test_write_png_is_atomic_and_lossless(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", img)
    write_png(tmp_path / "a.png", img[..., :1])  # replaces the file; (H, W, 1) is stored as gray
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left
    with Image.open(tmp_path / "a.png") as stored:
        assert stored.mode == "L"
        np.testing.assert_array_equal(np.asarray(stored), img[..., 0])
    with pytest.raises(ValueError, match="img: expected uint8"):
        write_png(tmp_path / "b.png", img.astype(np.float32))
    assert image_files(tmp_path) == (tmp_path / "a.png",)


def test_captions_scale_with_the_panels():
    small, large = np.zeros((24, 24), np.uint8), np.zeros((512, 512, 3), np.uint8)
    row_small = captioned_grid([[small, small]], [["noisy 20.17 dB", "restored"]])
    row_large = captioned_grid([[large, large]], [["noisy 20.17 dB", "restored"]])
    band_small, band_large = caption_height(24), caption_height(512)
    assert band_large > 2.5 * band_small  # a 512-px panel gets a 4x larger font than a 24-px one
    assert row_small.shape == (band_small + 24, 2 * 24 + 4) and row_large.shape == (band_large + 512, 2 * 512 + 4, 3)

    def text_height(band: np.ndarray) -> int:
        rows = np.nonzero((band < 128).any(axis=tuple(range(1, band.ndim))))[0]
        return int(rows[-1] - rows[0] + 1)

    assert text_height(row_large[:band_large]) >= 3 * text_height(row_small[:band_small])
    np.testing.assert_array_equal(row_large[band_large:, 516:], large)  # panels copied unchanged


def test_grid_of_multi_line_captions_mixes_gray_and_rgb():
    gray = np.full((32, 32), 50, np.uint8)
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200
    grid = captioned_grid([[gray, rgb], [rgb, gray]], [["a\nb\nc", "d"], ["e", "f"]], gap=2, border=3)
    band = caption_height(32, 3)
    assert grid.shape == (2 * (band + 32) + 2 + 6, 2 * 32 + 2 + 6, 3)
    np.testing.assert_array_equal(grid[3 + band : 3 + band + 32, 3:35], np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(grid[3 + band : 3 + band + 32, 37:69], rgb)
    with pytest.raises(ValueError, match="one caption per panel"):
        captioned_grid([[gray]], [["a", "b"]])
    with pytest.raises(ValueError, match="one height"):
        captioned_grid([[gray, rgb[:16]]], [["a", "b"]])
