"""Mathematical properties of ``converse2d``, independent of any reference implementation,
and agreement of the fast closed form with the literal Algorithm-1 transcription on the paths
the golden file does not cover (explicit prior, per-sample kernels, per-sample λ)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from converse_jax import converse2d, converse2d_reference


def circular_blur_subsample(x: np.ndarray, k: np.ndarray, s: int) -> np.ndarray:
    """(x ⊛ k)↓s with circular boundaries, by direct summation (NHWC; k (kh, kw, C)).

    Tap (a, b) of the kernel acts at offset (a − ⌊kh/2⌋, b − ⌊kw/2⌋), the operator's convention.
    """
    kh, kw, _ = k.shape
    out = np.zeros_like(x)
    for a in range(kh):
        for b in range(kw):
            shifted = np.roll(x, (a - kh // 2, b - kw // 2), axis=(1, 2))
            out += k[a, b] * shifted
    return out[:, ::s, ::s, :]


def _rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize("lam", [1e-3, 1.0, 1e3])
def test_exact_recovery_when_prior_is_the_solution(scale, lam):
    with jax.enable_x64(True):
        x = _rand(0, 2, 6 * scale, 5 * scale, 3)
        k = np.abs(_rand(1, 5, 5, 3)) + 0.1
        y = circular_blur_subsample(x, k, scale)
        out = converse2d(jnp.asarray(y), jnp.asarray(k), lam, scale=scale, x0=jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(out), x, atol=1e-9 * np.abs(x).max())


def test_tiny_lambda_inverts_an_invertible_kernel_from_any_prior():
    with jax.enable_x64(True):
        x = _rand(2, 1, 9, 10, 2)
        k = np.zeros((3, 3, 2))
        k[1, 1] = 1.0
        k[0, 1] = 0.3  # |F_K| ≥ 0.7 everywhere: invertible
        y = circular_blur_subsample(x, k, 1)
        x0 = _rand(3, 1, 9, 10, 2)
        out = converse2d(jnp.asarray(y), jnp.asarray(k), 1e-12, x0=jnp.asarray(x0))
        np.testing.assert_allclose(np.asarray(out), x, atol=1e-8)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_large_lambda_returns_the_prior(scale):
    with jax.enable_x64(True):
        y = jnp.asarray(_rand(4, 2, 5, 6, 3))
        k = jnp.asarray(np.abs(_rand(5, 3, 3, 3)))
        out = converse2d(y, k, 1e9, scale=scale, padding=1, padding_mode="replicate")
        nearest = jnp.repeat(jnp.repeat(y, scale, axis=1), scale, axis=2)
        np.testing.assert_allclose(np.asarray(out), np.asarray(nearest), atol=1e-7)
        x0 = jnp.asarray(_rand(6, 2, 5 * scale, 6 * scale, 3))
        out = converse2d(y, k, 1e9, scale=scale, x0=x0)
        np.testing.assert_allclose(np.asarray(out), np.asarray(x0), atol=1e-7)


@pytest.mark.parametrize(
    "scale,padding,mode",
    [(1, 0, "circular"), (1, 2, "reflect"), (2, 2, "replicate"), (3, 1, "constant"), (2, 0, "circular")],
)
@pytest.mark.parametrize("explicit_prior", [False, True])
def test_fast_path_equals_algorithm_1(scale, padding, mode, explicit_prior):
    with jax.enable_x64(True):
        n, h, w, c = 2, 7, 6, 3
        x = jnp.asarray(_rand(7, n, h, w, c))
        k = jnp.asarray(_rand(8, n, 4, 3, c))  # per-sample, non-square, even height
        lam = jnp.asarray(np.abs(_rand(9, n, c)) * 1e-2 + 1e-4)  # per-sample λ
        x0 = jnp.asarray(_rand(10, n, h * scale, w * scale, c)) if explicit_prior else None
        kw = dict(scale=scale, padding=padding, padding_mode=mode, x0=x0)
        fast = converse2d(x, k, lam, **kw)
        ref = converse2d_reference(x, k, lam, **kw)
        assert fast.shape == (n, h * scale, w * scale, c)
        np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), atol=1e-10 * np.abs(ref).max())


def test_vmap_over_per_sample_kernels_equals_loop():
    x = jnp.asarray(_rand(11, 4, 8, 8, 2), jnp.float32)
    k = jnp.asarray(np.abs(_rand(12, 4, 5, 5, 2)), jnp.float32)
    f = lambda xi, ki: converse2d(xi[None], ki, 1e-2, scale=2, padding=2)[0]
    vmapped = jax.vmap(f)(x, k)
    looped = jnp.stack([f(x[i], k[i]) for i in range(4)])
    batched = converse2d(x, k, 1e-2, scale=2, padding=2)
    np.testing.assert_allclose(np.asarray(vmapped), np.asarray(looped), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-5, atol=1e-5)


def test_shared_kernel_equals_repeated_per_sample_kernel_and_broadcast_lambda():
    x = jnp.asarray(_rand(13, 3, 6, 7, 4), jnp.float32)
    k = jnp.asarray(np.abs(_rand(14, 3, 3, 4)), jnp.float32)
    lam = jnp.asarray([1e-2, 2e-2, 3e-2, 4e-2], jnp.float32)
    shared = converse2d(x, k, lam, padding=2, padding_mode="reflect")
    per_sample = converse2d(
        x, jnp.broadcast_to(k, (3, *k.shape)), jnp.broadcast_to(lam, (3, 4)),
        padding=2, padding_mode="reflect",
    )
    np.testing.assert_allclose(np.asarray(shared), np.asarray(per_sample), rtol=1e-5, atol=1e-6)


def test_jit_equals_eager():
    x = jnp.asarray(_rand(15, 2, 6, 6, 3), jnp.float32)
    k = jnp.asarray(np.abs(_rand(16, 2, 2, 3)), jnp.float32)
    f = lambda x, k: converse2d(x, k, 1e-3, scale=2, padding=2, padding_mode="replicate")
    np.testing.assert_allclose(np.asarray(jax.jit(f)(x, k)), np.asarray(f(x, k)), rtol=1e-5, atol=1e-5)


class JitAndEagerTest(chex.TestCase):
    """The same properties hold with and without ``jax.jit`` (``chex.variants``)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_large_lambda_returns_the_nearest_upsampling(self):
        with jax.enable_x64(True):
            y = jnp.asarray(_rand(4, 1, 5, 6, 3))
            k = jnp.asarray(np.abs(_rand(5, 3, 3, 3)))
            f = self.variant(lambda y, k: converse2d(y, k, 1e9, scale=2, padding=1, padding_mode="replicate"))
            nearest = jnp.repeat(jnp.repeat(y, 2, axis=1), 2, axis=2)
            np.testing.assert_allclose(np.asarray(f(y, k)), np.asarray(nearest), atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_exact_recovery_when_prior_is_the_solution(self):
        with jax.enable_x64(True):
            x = _rand(0, 1, 8, 6, 2)
            k = np.abs(_rand(1, 3, 3, 2)) + 0.1
            y = circular_blur_subsample(x, k, 2)
            f = self.variant(lambda y, k, x0: converse2d(y, k, 1.0, scale=2, x0=x0))
            out = f(jnp.asarray(y), jnp.asarray(k), jnp.asarray(x))
            np.testing.assert_allclose(np.asarray(out), x, atol=1e-9 * np.abs(x).max())


@pytest.mark.parametrize("scale,padding,mode", [(1, 2, "circular"), (2, 1, "reflect"), (3, 0, "circular")])
def test_gradients_match_finite_differences(scale, padding, mode):
    with jax.enable_x64(True):
        x = jnp.asarray(_rand(17, 1, 5, 4, 2))
        k = jnp.asarray(np.abs(_rand(18, 3, 3, 2)))
        bias = jnp.asarray([0.5, -1.0])

        @jax.jit
        def f(x, k, bias):
            lam = jax.nn.sigmoid(bias - 4.0) + 1e-3
            return converse2d(x, k, lam, scale=scale, padding=padding, padding_mode=mode)

        check_grads(f, (x, k, bias), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)
        x0 = jnp.asarray(_rand(19, 1, 5 * scale, 4 * scale, 2))
        g = jax.jit(
            lambda x, k, x0: converse2d(x, k, 0.05, scale=scale, padding=padding, padding_mode=mode, x0=x0)
        )
        check_grads(g, (x, k, x0), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_zero_kernel_gradient_is_finite():
    """|F_K|² is computed as re² + im², so a zero kernel has finite gradients (no NaN)."""
    x = jnp.ones((1, 4, 4, 1))
    grad = jax.grad(lambda k: converse2d(x, k, 1e-2).sum())(jnp.zeros((3, 3, 1)))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_float32_in_float32_out():
    x = jnp.ones((1, 4, 4, 2), jnp.float32)
    k = jnp.ones((2, 2, 2), jnp.float32) / 4
    assert converse2d(x, k, 1e-2, scale=2).dtype == jnp.float32
