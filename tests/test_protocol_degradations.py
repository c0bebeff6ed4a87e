"""Test-protocol degradations against the official scripts (golden degradations.npz, 7.1-7.6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image
from scipy import ndimage

from converse_jax.protocol import (
    add_gaussian_noise,
    bicubic_downsample,
    circular_blur,
    circular_blur_uint8,
    deblur_input,
    denoise_input,
    imresize,
    modcrop,
    single2uint,
    sr_input,
    uint2single,
)


@pytest.fixture(scope="module")
def golden():
    with np.load(shared_path("golden/degradations.npz")) as data:
        yield data


def _read_png(relpath: str) -> np.ndarray:
    """uint8 image from shared/data/testsets (RGB -> (H, W, 3), gray -> (H, W, 1))."""
    with Image.open(shared_path(f"data/testsets/{relpath}")) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16") else im)
    return arr if arr.ndim == 3 else arr[..., None]


# --- basic helpers -------------------------------------------------------------------------


def test_uint2single_is_float64_division_rounded_once():
    u = np.arange(256, dtype=np.uint8)
    out = uint2single(u)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32(u / 255.0))
    np.testing.assert_array_equal(out, u.astype(np.float32) / np.float32(255))
    # README 7: multiplying by a float32 1/255 differs for 126 of the 256 values.
    assert int(np.sum(out != u.astype(np.float32) * np.float32(1 / 255))) == 126


def test_uint2single_matches_golden(golden):
    np.testing.assert_array_equal(uint2single(golden["denoise/clean_uint8"]), golden["denoise/clean"])
    np.testing.assert_array_equal(
        uint2single(golden["imresize/butterfly/input_uint8"]), golden["imresize/butterfly/input"]
    )


def test_single2uint_matches_golden(golden):
    out = single2uint(golden["rgb2ycbcr/input_float64"])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, golden["rgb2ycbcr/input_uint8"])
    np.testing.assert_array_equal(single2uint(np.array([-0.2, 0.5 / 255, 1.5 / 255, 2.0])), [0, 0, 2, 255])


def test_modcrop():
    img = np.arange(10 * 7 * 3).reshape(10, 7, 3)
    out = modcrop(img, 4)
    np.testing.assert_array_equal(out, img[:8, :4])
    out[:] = -1
    assert img.min() == 0  # a copy, not a view
    assert modcrop(np.zeros((10, 7)), 1).shape == (10, 7)
    assert modcrop(np.zeros((10, 7)), 5).shape == (10, 5)


# --- denoising (7.5) -----------------------------------------------------------------------


def test_denoise_input_bit_exact(golden):
    clean = golden["denoise/clean_uint8"]
    np.testing.assert_array_equal(clean, _read_png(str(golden["denoise/image"])))
    sigma_255 = float(golden["denoise/sigma"]) * 255
    assert sigma_255 / 255 == float(golden["denoise/sigma"])
    noisy = denoise_input(clean, round(sigma_255), seed=int(golden["denoise/seed"]))
    assert noisy.dtype == np.float32 and str(noisy.dtype) == str(golden["denoise/noisy_dtype"])
    np.testing.assert_array_equal(noisy, golden["denoise/noisy"])


def test_add_gaussian_noise_is_legacy_numpy(golden):
    sigma = float(golden["denoise/sigma"])
    shape = golden["denoise/noise"].shape
    zeros = np.zeros(shape, np.float32)
    np.testing.assert_array_equal(add_gaussian_noise(zeros, sigma, 0), golden["denoise/noise"].astype(np.float32))
    np.testing.assert_allclose(
        add_gaussian_noise(zeros, sigma, 0).reshape(-1)[:10], golden["denoise/noise_first10"], atol=1e-8
    )
    # float64 add + one rounding, not a float32 add (the latter differs at many pixels)
    clean = golden["denoise/clean"]
    f32_add = clean + golden["denoise/noise"].astype(np.float32)
    assert int(np.sum(f32_add != golden["denoise/noisy"])) == int(golden["denoise/noisy_f32add_mismatch_count"])
    np.testing.assert_array_equal(add_gaussian_noise(clean, sigma, 0), golden["denoise/noisy"])
    assert not np.array_equal(add_gaussian_noise(clean, sigma, 1), golden["denoise/noisy"])


# --- SR (7.2) ------------------------------------------------------------------------------


def test_sr_input_matches_official(golden):
    sfs = [int(s) for s in golden["sr/sfs"]]
    assert sfs
    for sf in sfs:
        names = list(golden[f"sr_x{sf}/names"])
        assert names
        for name in names:
            p = f"sr_x{sf}/{name}"
            img = _read_png(f"CSet5/{name}.png")
            assert img.shape == tuple(golden[f"{p}/orig_shape"]), name
            assert int(golden[f"{p}/sf"]) == sf
            hr, lr = sr_input(img, sf)
            assert hr.dtype == np.uint8 and hr.shape == tuple(golden[f"{p}/hr_shape"]), name
            assert lr.dtype == np.float32 and lr.shape == golden[f"{p}/lr"].shape, name
            np.testing.assert_allclose(lr, golden[f"{p}/lr"], rtol=0, atol=2e-6, err_msg=name)
            lr64 = imresize(uint2single(hr), 1 / sf, precision="float64")
            np.testing.assert_allclose(lr64, golden[f"{p}/lr_f64"], rtol=0, atol=1e-12, err_msg=name)


def test_sr_modcrop_and_bicubic_downsample():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (26, 19, 3)).astype(np.uint8)
    hr, lr = sr_input(img, 3)
    np.testing.assert_array_equal(hr, img[:24, :18])
    assert lr.shape == (8, 6, 3)
    np.testing.assert_array_equal(lr, bicubic_downsample(uint2single(hr), 3))
    np.testing.assert_array_equal(lr, imresize(uint2single(hr), 1 / 3, True, precision="float32"))


# --- deblurring (7.6) ----------------------------------------------------------------------


def test_circular_blur_uint8_matches_official(golden):
    img_h, kernel = golden["deblur/img_H"], golden["deblur/kernel"]
    blurred = circular_blur_uint8(img_h, kernel)
    assert blurred.dtype == np.uint8 and blurred.shape == img_h.shape
    ref, ref_f64 = golden["deblur/blurred"], golden["deblur/blurred_f64"]
    far = np.abs(ref_f64 - np.round(ref_f64)) >= 1e-9
    assert int((~far).sum()) == int(golden["deblur/near_integer_count"])
    np.testing.assert_array_equal(blurred[far], ref[far])
    # We sum in SciPy's exact tap order, so even the near-integer positions agree.
    np.testing.assert_array_equal(blurred, ref)
    float_blur = circular_blur(img_h.astype(np.float64), kernel)
    np.testing.assert_allclose(float_blur, ref_f64, rtol=0, atol=1e-11)


def test_deblur_input_matches_official(golden):
    img = _read_png(str(golden["deblur/image"]))
    assert img.shape == tuple(golden["deblur/orig_shape"])
    sf = int(golden["deblur/sf"])
    assert math.lcm(sf, 8) == int(golden["deblur/modcrop"])
    sigma_255 = 2.55
    assert sigma_255 / 255 == float(golden["deblur/sigma"])
    hr, lr = deblur_input(img, golden["deblur/kernel"], sf=sf, sigma_255=sigma_255, seed=int(golden["deblur/seed"]))
    np.testing.assert_array_equal(hr, golden["deblur/img_H"])
    assert lr.dtype == np.float32 and str(lr.dtype) == str(golden["deblur/noisy_dtype"])
    np.testing.assert_array_equal(lr, golden["deblur/noisy"])


def test_deblur_noise_from_stored_blurred(golden):
    noisy = add_gaussian_noise(uint2single(golden["deblur/blurred"]), float(golden["deblur/sigma"]), 0)
    np.testing.assert_array_equal(noisy, golden["deblur/noisy"])
    first10 = add_gaussian_noise(np.zeros(10, np.float32), float(golden["deblur/sigma"]), 0)
    np.testing.assert_allclose(first10, golden["deblur/noise_first10"], atol=1e-9)


def test_deblur_input_downsamples_after_blur():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (35, 50, 3)).astype(np.uint8)
    kernel = rng.random((5, 5))
    kernel /= kernel.sum()
    hr, lr = deblur_input(img, kernel, sf=3, sigma_255=0.0)
    assert hr.shape == (24, 48, 3)  # modcrop to lcm(3, 8) = 24
    np.testing.assert_array_equal(lr, uint2single(circular_blur_uint8(hr, kernel)[0::3, 0::3]))


@pytest.mark.parametrize("ksize", [(3, 3), (4, 4), (7, 7), (5, 2)])
def test_circular_blur_equals_scipy_convolve_wrap(ksize):
    rng = np.random.default_rng(sum(ksize))
    img = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    kernel = rng.normal(size=ksize)  # signed: exercises truncation toward zero and uint8 wrap-around
    kernel[0, 0] = 0.0
    np.testing.assert_array_equal(circular_blur_uint8(img, kernel), ndimage.convolve(img, kernel[..., None], mode="wrap"))
    x = rng.random((9, 11)).astype(np.float32)
    out = circular_blur(x, kernel)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ndimage.convolve(x, kernel, mode="wrap"))


@pytest.mark.parametrize("ksize", [(3, 5), (4, 2)])
def test_circular_blur_definition(ksize):
    rng = np.random.default_rng(4)
    x = rng.random((6, 8, 2))
    k = rng.random(ksize)
    expected = np.zeros_like(x)
    for p in range(ksize[0]):
        for q in range(ksize[1]):
            # out[i, j] = sum k[p, q] x[i + kh//2 - p, j + kw//2 - q]
            expected += k[p, q] * np.roll(x, shift=(p - ksize[0] // 2, q - ksize[1] // 2), axis=(0, 1))
    np.testing.assert_allclose(circular_blur(x, k), expected, atol=1e-14)


def test_truncation_not_rounding():
    img = np.full((6, 6), 10, np.uint8)
    img[0, 0] = 15
    kernel = np.full((3, 3), 1 / 9)  # neighbours of (0, 0) get 10 + 5/9 = 10.56 -> 10, not 11
    out = circular_blur_uint8(img, kernel)
    assert out[1, 1] == 10 and out.max() == 10
    assert circular_blur(img.astype(np.float64), kernel)[1, 1] == pytest.approx(10 + 5 / 9)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: uint2single(np.zeros(3, np.float32)), "img must be uint8"),
        (lambda: single2uint(np.zeros(3, np.uint8)), "float dtype"),
        (lambda: modcrop(np.zeros((4, 4)), 0), "m: expected an int >= 1"),
        (lambda: modcrop(np.zeros(4), 2), "img must have shape"),
        (lambda: add_gaussian_noise(np.zeros(3, np.uint8), 0.1), "float dtype"),
        (lambda: add_gaussian_noise(np.zeros(3), -0.1), "sigma"),
        (lambda: add_gaussian_noise(np.zeros(3), 0.1, seed=-1), "seed"),
        (lambda: circular_blur_uint8(np.zeros((4, 4)), np.ones((3, 3))), "img_uint8 must be uint8"),
        (lambda: circular_blur(np.zeros((4, 4), np.uint8), np.ones((3, 3))), "float dtype"),
        (lambda: circular_blur(np.zeros((4, 4)), np.ones((3, 3, 1))), "kernel must be a 2-D"),
        (lambda: circular_blur(np.zeros((4, 4)), np.full((3, 3), np.nan)), "kernel must be finite"),
        (lambda: bicubic_downsample(np.zeros((8, 8)), 0), "sf: expected an int >= 1"),
        (lambda: denoise_input(np.zeros((8, 8), np.float32), 25), "clean_uint8 must be uint8"),
        (lambda: sr_input(np.zeros((8, 8, 3)), 4), "hr_uint8 must be uint8"),
        (lambda: sr_input(np.zeros((8, 8, 3), np.uint8), 2.5), "sf: expected an int >= 1"),
        (lambda: deblur_input(np.zeros((8, 8, 3), np.uint8), np.ones(3)), "kernel must be a 2-D"),
        (lambda: deblur_input(np.zeros((8, 8, 3), np.uint8), np.ones((3, 3)), sigma_255=float("inf")), "sigma_255"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
