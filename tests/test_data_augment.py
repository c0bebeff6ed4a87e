"""Tests of converse_jax.data.augment: the 8 KAIR modes, their inverses and the crop helpers."""

from __future__ import annotations

import numpy as np
import pytest

from converse_jax.data.augment import (
    NUM_MODES,
    augment,
    augment_inverse,
    inverse_mode,
    random_crop,
    random_crop_aligned,
)


def _kair_augment_img(img, mode):
    """KAIR utils_image.augment_img, transcribed from paper_notes section 6."""
    return [
        lambda x: x,
        lambda x: np.flipud(np.rot90(x)),
        lambda x: np.flipud(x),
        lambda x: np.rot90(x, k=3),
        lambda x: np.flipud(np.rot90(x, k=2)),
        lambda x: np.rot90(x),
        lambda x: np.rot90(x, k=2),
        lambda x: np.flipud(np.rot90(x, k=3)),
    ][mode](img)


@pytest.fixture
def img():
    return np.arange(4 * 5 * 2, dtype=np.uint8).reshape(4, 5, 2)


def test_modes_match_kair_and_are_distinct(img):
    outs = [augment(img, m) for m in range(NUM_MODES)]
    for m, out in enumerate(outs):
        np.testing.assert_array_equal(out, _kair_augment_img(img, m))
        assert out.dtype == img.dtype and out.flags.c_contiguous
        assert out.shape == ((5, 4, 2) if m in (1, 3, 5, 7) else (4, 5, 2))
    keys = {o.tobytes() + bytes(o.shape) for o in outs}
    assert len(keys) == NUM_MODES


def test_mode_semantics(img):
    np.testing.assert_array_equal(augment(img, 1), img.transpose(1, 0, 2))  # transpose
    np.testing.assert_array_equal(augment(img, 4), img[:, ::-1])  # left-right flip
    np.testing.assert_array_equal(augment(img, 2), img[::-1])  # up-down flip
    # rot90 is counter-clockwise: the top-right pixel goes to the top-left.
    assert augment(img, 5)[0, 0, 0] == img[0, -1, 0]


@pytest.mark.parametrize("mode", range(NUM_MODES))
def test_inverse(img, mode):
    np.testing.assert_array_equal(augment_inverse(augment(img, mode), mode), img)
    np.testing.assert_array_equal(augment(augment_inverse(img, mode), mode), img)
    assert inverse_mode(inverse_mode(mode)) == mode


def test_2d_images():
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(augment(x, 6), x[::-1, ::-1])


@pytest.mark.parametrize("bad", [-1, 8, 2.0, True, "1"])
def test_bad_mode(img, bad):
    with pytest.raises(ValueError, match="mode"):
        augment(img, bad)


def test_bad_image():
    with pytest.raises(ValueError, match="img"):
        augment(np.zeros((2, 2, 2, 2)), 0)


def test_random_crop_deterministic_and_in_bounds():
    img = np.arange(10 * 12 * 3).reshape(10, 12, 3)
    a = random_crop(np.random.default_rng(5), img, 4)
    b = random_crop(np.random.default_rng(5), img, 4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 4, 3)
    # The crop is a contiguous window of the image.
    top, left = np.argwhere(img[..., 0] == a[0, 0, 0])[0]
    np.testing.assert_array_equal(img[top : top + 4, left : left + 4], a)
    # Every position is reachable (3 rows x 3 cols of positions for a 3x3 crop of 5x5).
    small = np.arange(25).reshape(5, 5)
    rng = np.random.default_rng(0)
    corners = {int(random_crop(rng, small, 3)[0, 0]) for _ in range(300)}
    assert corners == {0, 1, 2, 5, 6, 7, 10, 11, 12}
    np.testing.assert_array_equal(random_crop(rng, small, 5), small)


def test_random_crop_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="smaller than the crop size"):
        random_crop(rng, np.zeros((4, 9)), 5)
    with pytest.raises(ValueError, match="size"):
        random_crop(rng, np.zeros((4, 9)), 0)


def test_random_crop_aligned():
    scale = 3
    hr = np.random.default_rng(1).integers(0, 255, (30, 36, 3)).astype(np.uint8)
    lr = hr[::scale, ::scale]  # any LR with pixel (i, j) <-> HR block (3i.., 3j..)
    rng = np.random.default_rng(2)
    for _ in range(10):
        lp, hp = random_crop_aligned(rng, lr, hr, 4, scale)
        assert lp.shape == (4, 4, 3) and hp.shape == (12, 12, 3)
        np.testing.assert_array_equal(hp[::scale, ::scale], lp)
    with pytest.raises(ValueError, match="hr"):
        random_crop_aligned(rng, lr, hr[:20], 4, scale)
    with pytest.raises(ValueError, match="lr_size"):
        random_crop_aligned(rng, lr, hr, 11, scale)
