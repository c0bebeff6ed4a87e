"""Random blur-kernel generators: validity, determinism, variety, documented structure."""

from __future__ import annotations

import numpy as np
import pytest

from converse_jax.protocol import anisotropic_gaussian_kernel, motion_blur_kernel, random_blur_kernel

GENERATORS = [anisotropic_gaussian_kernel, motion_blur_kernel, random_blur_kernel]


@pytest.mark.parametrize("gen", GENERATORS)
@pytest.mark.parametrize("size", [3, 7, 9])
def test_valid_kernels(gen, size):
    rng = np.random.default_rng(size)
    for _ in range(25):
        k = gen(rng, size=size)
        assert k.shape == (size, size) and k.dtype == np.float64
        assert np.all(np.isfinite(k))
        assert k.min() >= 0
        assert abs(k.sum() - 1) <= 1e-12


@pytest.mark.parametrize("gen", GENERATORS)
def test_deterministic_given_rng(gen):
    a = [gen(np.random.default_rng(123)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    rng1, rng2 = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(5):
        np.testing.assert_array_equal(gen(rng1), gen(rng2))


@pytest.mark.parametrize("gen", GENERATORS)
def test_variety(gen):
    rng = np.random.default_rng(0)
    kernels = np.stack([gen(rng) for _ in range(30)]).reshape(30, -1)
    dists = np.abs(kernels[:, None, :] - kernels[None, :, :]).sum(-1)
    off_diag = dists[~np.eye(30, dtype=bool)]
    assert off_diag.min() > 1e-3  # no two kernels alike
    assert kernels.max(axis=1).std() > 0.01  # peakedness varies


def _second_moments(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.meshgrid(np.arange(k.shape[0]), np.arange(k.shape[1]), indexing="ij")
    mean = np.array([(k * r).sum(), (k * c).sum()])
    dr, dc = r - mean[0], c - mean[1]
    cov = np.array([[(k * dr * dr).sum(), (k * dr * dc).sum()], [(k * dr * dc).sum(), (k * dc * dc).sum()]])
    return mean, cov


def test_gaussian_is_centred_anisotropic_and_within_range():
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(40):
        k = anisotropic_gaussian_kernel(rng, size=7, min_var=0.2, max_var=3.0)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)  # point-symmetric about the centre
        mean, cov = _second_moments(k)
        np.testing.assert_allclose(mean, [3, 3], atol=1e-12)
        eig = np.linalg.eigvalsh(cov)
        assert 0.15 < eig[0] and eig[1] < 3.0  # the 7x7 window truncates the largest variances
        ratios.append(eig[1] / eig[0])
    assert max(ratios) > 3 and min(ratios) < 1.5  # both elongated and round ones


def test_gaussian_formula():
    rng = np.random.default_rng(5)
    k = anisotropic_gaussian_kernel(rng, size=5, min_var=1.0, max_var=1.0)  # isotropic, variance 1
    r, c = np.meshgrid(np.arange(5) - 2.0, np.arange(5) - 2.0, indexing="ij")
    expected = np.exp(-0.5 * (r**2 + c**2))
    np.testing.assert_allclose(k, expected / expected.sum(), atol=1e-15)


def test_gaussian_draw_order():
    rng = np.random.default_rng(9)
    u = np.random.default_rng(9).random(3)
    lam1, lam2, theta = 0.5 + u[0] * 1.5, 0.5 + u[1] * 1.5, u[2] * np.pi
    q = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(q @ np.diag([lam1, lam2]) @ q.T)
    r, c = np.meshgrid(np.arange(7) - 3.0, np.arange(7) - 3.0, indexing="ij")
    z = np.stack([c, r], -1)
    expected = np.exp(-0.5 * np.einsum("...i,ij,...j->...", z, inv, z))
    np.testing.assert_allclose(
        anisotropic_gaussian_kernel(rng, 7, 0.5, 2.0), expected / expected.sum(), rtol=1e-12, atol=1e-15
    )


def test_motion_support_fits_box_and_varies():
    rng = np.random.default_rng(2)
    extents = set()
    for _ in range(60):
        k = motion_blur_kernel(rng, size=7)
        rows, cols = np.nonzero(k > 0)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height == width and height in (3, 5, 7)  # the L x L box, centred in 7 x 7
        assert rows.min() == (7 - height) // 2 and cols.min() == (7 - width) // 2
        extents.add(int(height))
    assert extents == {3, 5, 7}
    assert len({motion_blur_kernel(np.random.default_rng(s), 9, min_extent=9).argmax() for s in range(20)}) > 3


def test_motion_kernels_are_not_symmetric_blobs():
    rng = np.random.default_rng(3)
    asym = [np.abs(k - k[::-1, ::-1]).sum() for k in (motion_blur_kernel(rng, 7, min_extent=7) for _ in range(20))]
    assert np.median(asym) > 0.1


def test_random_blur_kernel_mixture():
    kinds = []
    rng = np.random.default_rng(4)
    for _ in range(40):
        k = random_blur_kernel(rng)
        kinds.append(bool(np.allclose(k, k[::-1, ::-1], atol=1e-12)))
    assert 5 < sum(kinds) < 35  # both families occur
    rng = np.random.default_rng(6)
    assert all(np.allclose(k, k[::-1, ::-1]) for k in (random_blur_kernel(rng, motion_prob=0.0) for _ in range(5)))
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    rng_b.random()
    np.testing.assert_array_equal(random_blur_kernel(rng_a, motion_prob=1.0), motion_blur_kernel(rng_b))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: anisotropic_gaussian_kernel(np.random.RandomState(0)), "rng must be a numpy.random.Generator"),
        (lambda: motion_blur_kernel(0), "rng must be a numpy.random.Generator"),
        (lambda: anisotropic_gaussian_kernel(np.random.default_rng(), size=6), "size must be an odd int"),
        (lambda: motion_blur_kernel(np.random.default_rng(), size=1), "size must be an odd int"),
        (lambda: anisotropic_gaussian_kernel(np.random.default_rng(), min_var=2.0, max_var=1.0), "min_var"),
        (lambda: anisotropic_gaussian_kernel(np.random.default_rng(), min_var=0.0), "min_var"),
        (lambda: motion_blur_kernel(np.random.default_rng(), min_extent=4), "min_extent"),
        (lambda: motion_blur_kernel(np.random.default_rng(), size=7, min_extent=9), "min_extent"),
        (lambda: motion_blur_kernel(np.random.default_rng(), num_steps=1), "num_steps"),
        (lambda: random_blur_kernel(np.random.default_rng(), motion_prob=1.5), "motion_prob"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
