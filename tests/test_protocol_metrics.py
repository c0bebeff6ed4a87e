"""rgb2ycbcr, PSNR and SSIM against the official helpers (golden degradations.npz, 7.3-7.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_path

from converse_jax.protocol import calculate_psnr, calculate_ssim, rgb2ycbcr


@pytest.fixture(scope="module")
def golden():
    with np.load(shared_path("golden/degradations.npz")) as data:
        yield data


@pytest.mark.parametrize("dt", ["uint8", "float32", "float64"])
def test_rgb2ycbcr_matches_official(golden, dt):
    x = golden[f"rgb2ycbcr/input_{dt}"]
    before = x.copy()
    y = rgb2ycbcr(x, only_y=True)
    ycbcr = rgb2ycbcr(x, only_y=False)
    np.testing.assert_array_equal(x, before)  # the official function mutates float inputs; ours must not
    ref_y, ref_ycbcr = golden[f"rgb2ycbcr/{dt}/y"], golden[f"rgb2ycbcr/{dt}/ycbcr"]
    assert y.dtype == ref_y.dtype and ycbcr.dtype == ref_ycbcr.dtype
    assert y.shape == ref_y.shape == x.shape[:2]
    assert ycbcr.shape == ref_ycbcr.shape == x.shape
    if dt == "float64":
        np.testing.assert_allclose(y, ref_y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ycbcr, ref_ycbcr, rtol=0, atol=1e-12)
    else:
        # uint8: exact by the README; float32: we reproduce the float32 rounding of 255*x, so exact too.
        np.testing.assert_array_equal(y, ref_y)
        np.testing.assert_array_equal(ycbcr, ref_ycbcr)


def test_rgb2ycbcr_range_and_white_black():
    extremes = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    np.testing.assert_array_equal(rgb2ycbcr(extremes, only_y=False), [[[16, 128, 128], [235, 128, 128]]])
    np.testing.assert_allclose(rgb2ycbcr(extremes / 255.0), [[16 / 255, 235 / 255]], atol=1e-15)


def _metric_cases(golden):
    cases = list(golden["metrics/case_keys"])
    borders = [int(b) for b in golden["metrics/borders"]]
    assert cases and borders
    return cases, borders


def _assert_metric(value, ref, atol, what):
    if math.isinf(ref):
        assert value == ref, what
    else:
        assert abs(value - ref) <= atol, f"{what}: {value!r} vs {ref!r}"


def test_psnr_ssim_match_official(golden):
    cases, borders = _metric_cases(golden)
    for case in cases:
        p = f"metrics/{case}"
        img1, img2 = golden[f"{p}/img1"], golden[f"{p}/img2"]
        for b in borders:
            _assert_metric(calculate_psnr(img1, img2, b), float(golden[f"{p}/psnr_b{b}"]), 1e-10, f"{case} psnr b{b}")
            _assert_metric(calculate_ssim(img1, img2, b), float(golden[f"{p}/ssim_b{b}"]), 1e-10, f"{case} ssim b{b}")


def test_y_channel_metrics_match_official(golden):
    cases, borders = _metric_cases(golden)
    rgb_cases = [c for c in cases if f"metrics/{c}/img1_y" in golden.files]
    assert rgb_cases
    for case in rgb_cases:
        p = f"metrics/{case}"
        y1, y2 = rgb2ycbcr(golden[f"{p}/img1"]), rgb2ycbcr(golden[f"{p}/img2"])
        np.testing.assert_array_equal(y1, golden[f"{p}/img1_y"])
        np.testing.assert_array_equal(y2, golden[f"{p}/img2_y"])
        for b in borders:
            _assert_metric(calculate_psnr(y1, y2, b), float(golden[f"{p}/psnr_y_b{b}"]), 1e-10, f"{case} psnr_y b{b}")
            _assert_metric(calculate_ssim(y1, y2, b), float(golden[f"{p}/ssim_y_b{b}"]), 1e-10, f"{case} ssim_y b{b}")


def test_identical_images():
    img = np.random.default_rng(0).integers(0, 256, (20, 17, 3)).astype(np.uint8)
    assert calculate_psnr(img, img) == float("inf")
    assert calculate_ssim(img, img) == 1.0


def test_psnr_formula_pools_channels():
    a = np.zeros((6, 6, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 10  # mse = 100 / 3 over all values
    assert calculate_psnr(a, b) == pytest.approx(20 * math.log10(255 / math.sqrt(100 / 3)), abs=1e-12)
    b[0, :, :] = 200  # border 1 drops row 0
    assert calculate_psnr(a, b, border=1) == pytest.approx(20 * math.log10(255 / math.sqrt(100 / 3)), abs=1e-12)


def test_ssim_channel_rules():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 20, 3)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    per_channel = [calculate_ssim(a[..., c], b[..., c]) for c in range(3)]
    assert calculate_ssim(a, b) == pytest.approx(np.mean(per_channel), abs=1e-15)
    assert calculate_ssim(a[..., :1], b[..., :1]) == calculate_ssim(a[..., 0], b[..., 0])
    assert 0 < calculate_ssim(a, b) < 1
    # float inputs on the 0..255 scale give the same value as uint8
    assert calculate_ssim(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(calculate_ssim(a, b), abs=1e-12)


def test_ssim_matches_direct_window_sum():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (13, 12)).astype(np.float64)
    y = rng.integers(0, 256, (13, 12)).astype(np.float64)
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / g.sum() ** 2
    vals = []
    for i in range(3):
        for j in range(2):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            m1, m2 = (win * px).sum(), (win * py).sum()
            s1, s2 = (win * px * px).sum() - m1**2, (win * py * py).sum() - m2**2
            s12 = (win * px * py).sum() - m1 * m2
            c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
            vals.append((2 * m1 * m2 + c1) * (2 * s12 + c2) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2)))
    assert calculate_ssim(x, y) == pytest.approx(np.mean(vals), abs=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: calculate_psnr(np.zeros((8, 8)), np.zeros((8, 9))), "same shape"),
        (lambda: calculate_ssim(np.zeros((16, 16, 3)), np.zeros((16, 16))), "same shape"),
        (lambda: calculate_psnr(np.zeros(8), np.zeros(8)), r"\(H, W\)"),
        (lambda: calculate_psnr(np.zeros((8, 8)), np.zeros((8, 8)), border=4), "border"),
        (lambda: calculate_psnr(np.zeros((8, 8)), np.zeros((8, 8)), border=-1), "border"),
        (lambda: calculate_ssim(np.zeros((12, 12)), np.zeros((12, 12)), border=1), "11x11"),
        (lambda: rgb2ycbcr(np.zeros((4, 4, 4))), "3 \\(RGB\\) channels"),
        (lambda: rgb2ycbcr(np.zeros((4, 4, 3), np.int32)), "uint8 or a float"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
