"""Bad arguments to ``converse2d`` raise ``ValueError`` naming the argument and what was expected."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from converse_jax import converse2d, converse2d_reference

X = jnp.zeros((2, 6, 5, 3))
K = jnp.full((3, 3, 3), 1 / 9)


@pytest.mark.parametrize("fn", [converse2d, converse2d_reference])
@pytest.mark.parametrize(
    "args,kwargs,pattern",
    [
        ((jnp.zeros((6, 5, 3)), K, 0.1), {}, r"x must have shape \(N, H, W, C\)"),
        ((jnp.zeros((2, 6, 5, 3), jnp.int32), K, 0.1), {}, "x must be a real floating"),
        ((X, jnp.zeros((3, 3)), 0.1), {}, "kernel must have shape"),
        ((X, jnp.zeros((3, 3, 4)), 0.1), {}, "kernel has 4 channels but x has C=3"),
        ((X, jnp.zeros((5, 3, 3, 3)), 0.1), {}, r"kernel with a batch axis must have shape \(N=2"),
        ((X, K, jnp.ones(4)), {}, "lam must be a scalar"),
        ((X, K, jnp.ones((3, 3))), {}, "lam must be a scalar"),
        ((X, K, 0.0), {}, "lam must be > 0"),
        ((X, K, jnp.array([0.1, -1.0, 0.1])), {}, "lam must be > 0"),
        ((X, K, float("inf")), {}, "lam must be > 0 and finite everywhere, got inf"),
        ((X, K, jnp.array([0.1, jnp.nan, 0.1])), {}, "lam must be > 0 and finite everywhere, got nan"),
        ((X, K, 0.1), {"scale": 0}, "scale must be an integer >= 1"),
        ((X, K, 0.1), {"scale": 1.5}, "scale must be an integer >= 1"),
        ((X, K, 0.1), {"scale": True}, "scale must be an integer >= 1"),
        ((X, K, 0.1), {"padding": -1}, "padding must be an integer >= 0"),
        ((X, K, 0.1), {"padding": 1, "padding_mode": "zeros"}, "padding_mode must be one of"),
        ((X, K, 0.1), {"padding": 5, "padding_mode": "reflect"}, "reflect padding must be smaller"),
        ((X, K, 0.1), {"padding": 6, "padding_mode": "circular"}, "circular padding must not exceed"),
        ((X, jnp.ones((7, 7, 3)), 0.1), {}, r"kernel of size \(7, 7\) does not fit"),
        ((X, K, 0.1), {"x0": jnp.zeros((2, 6, 5, 3)), "scale": 2}, r"x0 must have shape"),
    ],
)
def test_bad_arguments(fn, args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn(*args, **kwargs)


def test_lambda_positivity_is_not_checked_on_tracers():
    """Under jit λ is abstract; shapes are still checked, values cannot be."""
    out = jax.jit(lambda lam: converse2d(X, K, lam))(jnp.float32(0.1))
    assert out.shape == X.shape
    with pytest.raises(ValueError, match="lam must be a scalar"):
        jax.jit(lambda lam: converse2d(X, K, lam))(jnp.ones(4))


@pytest.mark.parametrize("fn", [converse2d, converse2d_reference])
@pytest.mark.parametrize("scale", [1, 2])
def test_invalid_lambda_under_jit_gives_nan_channels(fn, scale):
    """Under jit an invalid λ (≤ 0, NaN, ±inf) cannot be rejected: its channels come out NaN,
    the other channels are exactly those of a valid call; a scalar invalid λ: all NaN."""
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 7))
    k = jnp.full((3, 3, 7), 1 / 9)
    bad = jnp.array([0.1, 0.0, -1e-3, jnp.nan, jnp.inf, -jnp.inf, 0.2], jnp.float32)
    run = jax.jit(lambda lam: fn(x, k, lam, scale=scale, padding=2))
    out, good = run(bad), run(jnp.where(jnp.isfinite(bad) & (bad > 0), bad, 0.1))
    assert jnp.isnan(out).all(axis=(0, 1, 2)).tolist() == [False] + [True] * 5 + [False]
    assert bool(jnp.array_equal(out[..., ::6], good[..., ::6]))
    assert bool(jnp.isnan(run(jnp.float32(0.0))).all())


def test_large_replicate_and_constant_padding_are_accepted():
    """As in the official code, replicate/constant accept padding larger than the image."""
    x = jnp.ones((1, 5, 4, 2))
    k = jnp.full((7, 7, 2), 1 / 49)
    for mode in ("replicate", "constant"):
        assert converse2d(x, k, 1e-2, padding=6, padding_mode=mode).shape == x.shape
